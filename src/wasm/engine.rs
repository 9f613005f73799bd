//! The one wasmtime `Engine` of a worker: pooling instance allocator sized to the slot count,
//! epoch interruption driven by a ticker thread, and the store data
//! (`Host`) each instance gets. It must not load components (`artifact.rs`) or lease (`pool/leasing.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use wasmtime::component::ResourceTable;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::config::WasmConfig;
use super::error::WasmError;
use super::limits::CallLimiter;

/// Core instances one extractor component needs (main module, wit-component shim, fixups), with
/// headroom: a component over it fails to instantiate with wasmtime's clear message.
const CORE_INSTANCES_PER_COMPONENT: u32 = 4;
/// Guest stack, bytes: deep enough for the extractor's iterative walks, small enough that
/// runaway recursion traps quickly.
const MAX_WASM_STACK: usize = 1 << 20;
/// Hard ceiling per guest memory in the pool, bytes, above any sane per-call cap: a backstop.
const POOL_MAX_MEMORY: usize = 4 << 30;

/// Store data of one instance: WASI with nothing granted, and the per-call limiter.
pub(crate) struct Host {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: CallLimiter,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// A fresh store for one instance: no files, network, clock or environment granted (the
/// guest's std links WASI, but an empty context answers nothing useful), memory capped.
pub(crate) fn new_store(engine: &Engine, config: &WasmConfig) -> Store<Host> {
    let host = Host {
        wasi: WasiCtx::builder().build(),
        table: ResourceTable::new(),
        limiter: CallLimiter::new(config.call_memory_cap_bytes),
    };
    let mut store = Store::new(engine, host);
    store.limiter(|h| &mut h.limiter);
    // Until a call arms a real deadline, any execution (instantiation runs start functions)
    // gets a generous one rather than none.
    store.set_epoch_deadline(u64::MAX / 2);
    store.epoch_deadline_trap();
    if config.fuel_per_call.is_some() {
        // Refilled per call; a fresh store starts empty, so fuel for instantiation.
        let _ = store.set_fuel(u64::MAX / 2);
    }
    store
}

/// Builds the engine. Fuel, epoch and memory settings change generated code: artifacts are
/// stored under a key of these settings (`aot::engine_key`), so each setting has its own.
pub(crate) fn build(config: &WasmConfig) -> Result<Engine, WasmError> {
    let mut c = Config::new();
    c.epoch_interruption(true)
        .consume_fuel(config.fuel_per_call.is_some())
        .max_wasm_stack(MAX_WASM_STACK)
        .cranelift_opt_level(wasmtime::OptLevel::Speed);
    // Compiles run on one thread (the `parallel-compilation` feature is off): it bought nothing
    // on two contended cores (notes/wasm-limits.md 4a) and would compete with extraction calls.
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling(config)));
    Engine::new(&c).map_err(|e| WasmError::Engine(WasmError::boxed(e)))
}

fn pooling(config: &WasmConfig) -> PoolingAllocationConfig {
    let slots = config.slots.max(1);
    let mut p = PoolingAllocationConfig::default();
    p.total_component_instances(slots)
        .total_core_instances(slots * CORE_INSTANCES_PER_COMPONENT)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT * 2)
        .total_memories(slots)
        .max_memories_per_component(1)
        .total_tables(slots * CORE_INSTANCES_PER_COMPONENT)
        .total_stacks(slots)
        .max_memory_size(POOL_MAX_MEMORY)
        .linear_memory_keep_resident(usize::try_from(config.keep_resident_bytes).unwrap_or(usize::MAX))
        // Reset only the pages an instance touched (Linux >= 6.7; ignored elsewhere) instead of
        // memsetting up to `keep_resident_bytes` on every teardown.
        .pagemap_scan(wasmtime::Enabled::Auto)
        .max_unused_warm_slots(slots);
    p
}

/// The thread that advances the engine's epoch every tick; deadlines count ticks. Stopped on
/// drop (and by the pool's `close`).
#[derive(Debug)]
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: Engine, tick: std::time::Duration) -> Result<Self, WasmError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("riptide-wasm-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })
            .map_err(WasmError::Ticker)?;
        Ok(EpochTicker { stop, thread: Some(thread) })
    }

    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // The thread sleeps one tick at most, so this join is short; a panic in it (there
            // is no code that can panic) would only mean the ticker is already gone.
            let _ = thread.join();
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop();
    }
}
