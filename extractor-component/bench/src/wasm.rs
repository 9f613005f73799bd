//! The bench's wasmtime host for the extractor component: engine and pooling configuration as the
//! worker uses it, one fresh store and instance per page, and conversion of the WIT document back
//! to the core type (so native and WASM results can be compared for identity). A measuring
//! harness, not the worker's pool (that lives in the worker's `src/wasm/`).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use riptide_extractor as core;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

wasmtime::component::bindgen!({ world: "extractor", path: "../../wit" });

use riptide::extractor::types as wit;

/// Where `cargo build --profile wasm --target wasm32-wasip2 -p riptide-extractor-guest` puts the
/// component, relative to the target directory.
pub const COMPONENT_PATH: &str = "wasm32-wasip2/wasm/riptide_extractor_guest.wasm";

/// Pool slots: the bench runs one call at a time.
const SLOTS: u32 = 2;
/// Per-call memory cap for the guest, as in the worker's default.
const MEMORY_CAP: usize = 256 << 20;
/// Epoch tick and per-call deadline (ticks): 10 ms x 1000 = 10 s.
const TICK: Duration = Duration::from_millis(10);
const DEADLINE_TICKS: u64 = 1000;

/// Store data: WASI context (nothing granted) and the memory high-water mark.
struct Host {
    wasi: WasiCtx,
    table: ResourceTable,
    peak: usize,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl wasmtime::ResourceLimiter for Host {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.peak = self.peak.max(desired);
        Ok(desired <= MEMORY_CAP)
    }

    fn table_growing(&mut self, _current: usize, _desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

/// A compiled, linked component ready to instantiate per call.
pub struct WasmExtractor {
    engine: Engine,
    pre: ExtractorPre<Host>,
    stop: Arc<AtomicBool>,
}

impl Drop for WasmExtractor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl WasmExtractor {
    /// Compiles and links the component at `path`.
    ///
    /// # Errors
    /// When the file is missing or is not a component of the `extractor` world.
    pub fn new(path: &Path) -> Result<WasmExtractor> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.max_wasm_stack(1 << 20);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(SLOTS)
            .total_core_instances(SLOTS * 4)
            .max_core_instances_per_component(8)
            .total_memories(SLOTS)
            .max_memories_per_component(1)
            .total_tables(SLOTS * 4)
            .total_stacks(SLOTS)
            .max_memory_size(MEMORY_CAP)
            .linear_memory_keep_resident(8 << 20)
            .max_unused_warm_slots(SLOTS);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;
        let component = Component::from_file(&engine, path)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("loading component {} (build it first: cargo build --profile wasm --target wasm32-wasip2 -p riptide-extractor-guest)", path.display()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        let pre = ExtractorPre::new(linker.instantiate_pre(&component)?)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (eng, flag) = (engine.clone(), stop.clone());
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(TICK);
                eng.increment_epoch();
            }
        });
        Ok(WasmExtractor { engine, pre, stop })
    }

    /// Extracts one page in a fresh instance; returns the result (the guest's typed error
    /// converted back to [`core::ExtractError`]) and the guest's peak linear memory in bytes.
    ///
    /// # Errors
    /// When the call traps (deadline, memory cap) or instantiation fails.
    pub fn extract(
        &self,
        html: &str,
        url: &str,
        opts: &core::Options,
    ) -> Result<(Result<core::Document, core::ExtractError>, usize)> {
        let mut store =
            Store::new(&self.engine, Host { wasi: WasiCtx::builder().build(), table: ResourceTable::new(), peak: 0 });
        store.limiter(|h| h);
        store.set_epoch_deadline(DEADLINE_TICKS);
        let ext = self.pre.instantiate(&mut store)?;
        let options = wit::Options {
            mode: opts.mode.as_str().to_owned(),
            keep_selectors: opts.keep_selectors.clone(),
            drop_selectors: opts.drop_selectors.clone(),
            max_input_bytes: opts.max_input_bytes as u64,
        };
        let res = ext.call_extract(&mut store, html, url, &options)?;
        let peak = store.data().peak;
        Ok((res.map(from_wit).map_err(error_from_wit), peak))
    }
}

fn error_from_wit(e: wit::ExtractError) -> core::ExtractError {
    match e {
        wit::ExtractError::InvalidInput(reason) => core::ExtractError::InvalidInput { reason },
        wit::ExtractError::TooLarge(l) => core::ExtractError::TooLarge { size: l.size, limit: l.limit },
        wit::ExtractError::UnsupportedMode(mode) => core::ExtractError::UnsupportedMode { mode },
        wit::ExtractError::Internal(reason) => core::ExtractError::Internal { reason },
    }
}

fn from_wit(d: wit::Document) -> core::Document {
    core::Document {
        url: d.url,
        title: d.title,
        byline: d.byline,
        published: d.published,
        site_name: d.site_name,
        description: d.description,
        language: d.language,
        text: d.text,
        markdown: d.markdown,
        links: d.links.into_iter().map(|l| core::Link { url: l.url, text: l.text, rel: l.rel }).collect(),
        media: d
            .media
            .into_iter()
            .map(|m| core::Media {
                url: m.url,
                kind: match m.kind {
                    wit::MediaKind::Image => core::MediaKind::Image,
                    wit::MediaKind::Video => core::MediaKind::Video,
                    wit::MediaKind::Audio => core::MediaKind::Audio,
                },
                alt: m.alt,
            })
            .collect(),
        word_count: d.word_count,
        reading_time_secs: d.reading_time_secs,
        quality: d.quality,
        extractor_version: d.extractor_version,
    }
}
