//! Loading: where components come from (`article`, embedded or configured, then
//! `components_dir/*.wasm`), getting their compiled code from the artifact store (load or
//! compile), linking and validating them against the contract, and building the pool at
//! `start`; also [`precompile`] for `riptide precompile`. It must not lease (`leasing.rs`) or
//! choose tiers (`rebalance.rs`): every extractor starts warm and the first rebalance places it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, broadcast};
use tokio_util::sync::CancellationToken;

use super::handle::{Entry, EntryState, ExtractorPool, Inner, lock};
use crate::ops::metrics as m;
use crate::wasm::artifact::{self, ArtifactOutcome, ArtifactStore};
use crate::wasm::breaker::Breaker;
use crate::wasm::config::{DEFAULT_EXTRACTOR, WasmConfig};
use crate::wasm::contract::{self, ExtractorPre};
use crate::wasm::embedded;
use crate::wasm::engine::{self, EpochTicker, Host};
use crate::wasm::error::WasmError;
use crate::wasm::lease::{self, CallSettings};
use crate::wasm::tier::{Demand, Tier};

/// Capacity of the event channel; a subscriber that lags loses the oldest events.
const EVENT_CAPACITY: usize = 256;
/// Bytes one idle hot instance is assumed to hold at least (store, tables, touched pages).
const MIN_INSTANCE_BYTES: u64 = 1 << 20;

/// A component to load: its name and bytes.
struct Source {
    name: String,
    wasm: Vec<u8>,
}

impl ExtractorPool {
    /// Starts the pool: builds the engine and ticker, loads `article` and every component in
    /// `components_dir` (from artifacts when valid), validates each against the contract, places
    /// them in tiers and fills the hot ones. Compiling happens here (off the request path), and
    /// only for components without a valid artifact.
    pub async fn start(config: WasmConfig) -> Result<Self, WasmError> {
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(WasmError::Config(problems));
        }
        let cfg = config.clone();
        let inner = tokio::task::spawn_blocking(move || Inner::start(cfg))
            .await
            .map_err(|e| WasmError::Crashed(e.to_string()))??;
        let inner = Arc::new(inner);
        let task = tokio::spawn(super::rebalance::background(
            Arc::downgrade(&inner),
            inner.stop.clone(),
            inner.refill.clone(),
        ));
        *lock(&inner.background) = Some(task);
        Ok(ExtractorPool { inner })
    }
}

/// Compiles (or loads) the artifact of every component the configuration names, for
/// `riptide precompile`. Returns the artifact files.
pub async fn precompile(config: &WasmConfig) -> Result<Vec<PathBuf>, WasmError> {
    let problems = config.problems();
    if !problems.is_empty() {
        return Err(WasmError::Config(problems));
    }
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        let engine = engine::build(&config)?;
        let (artifacts, _) = ArtifactStore::open(config.cache_dir(), &engine);
        let linker = contract::linker(&engine)?;
        let mut files = Vec::new();
        for source in sources(&config)? {
            let sha = artifact::sha256_hex(&source.wasm);
            let (component, _) = artifacts.load(&engine, &source.name, &source.wasm, &sha)?;
            contract::link(&engine, &linker, &source.name, &component)?;
            files.extend(artifacts.file_of(&sha));
        }
        Ok(files)
    })
    .await
    .map_err(|e| WasmError::Crashed(e.to_string()))?
}

/// `article` (configured file or embedded) then `components_dir/*.wasm`, sorted by name.
fn sources(config: &WasmConfig) -> Result<Vec<Source>, WasmError> {
    let article = match &config.default_component {
        Some(path) => read(path)?,
        None if embedded::ARTICLE.is_empty() => return Err(WasmError::NoDefaultComponent),
        None => embedded::ARTICLE.to_vec(),
    };
    let mut out = vec![Source { name: DEFAULT_EXTRACTOR.to_owned(), wasm: article }];
    let Some(dir) = &config.components_dir else { return Ok(out) };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(source) => return Err(WasmError::Io { path: dir.clone(), source }),
    };
    let mut paths: Vec<PathBuf> =
        entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "wasm")).collect();
    paths.sort();
    for path in paths {
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        if name == DEFAULT_EXTRACTOR {
            return Err(WasmError::Contract {
                extractor: name,
                detail: format!("{} would shadow the default extractor; use wasm.default_component", path.display()),
            });
        }
        out.push(Source { name, wasm: read(&path)? });
    }
    Ok(out)
}

fn read(path: &Path) -> Result<Vec<u8>, WasmError> {
    std::fs::read(path).map_err(|source| WasmError::Io { path: path.to_path_buf(), source })
}

impl Inner {
    /// Blocking: engine, artifacts, every component validated, tiers placed and filled.
    fn start(config: WasmConfig) -> Result<Inner, WasmError> {
        let engine = engine::build(&config)?;
        let ticker = EpochTicker::start(engine.clone(), config.epoch_tick())?;
        let (artifacts, _) = ArtifactStore::open(config.cache_dir(), &engine);
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let settings = CallSettings {
            epoch_tick: config.epoch_tick(),
            fuel: config.fuel_per_call,
            max_input_bytes: config.max_input_bytes,
        };
        let mut inner = Inner {
            linker: contract::linker(&engine)?,
            slots: Arc::new(Semaphore::new(config.slots as usize)),
            settings,
            config,
            engine,
            artifacts,
            entries: Vec::new(),
            by_name: HashMap::new(),
            events,
            closed: Arc::new(AtomicBool::new(false)),
            stop: CancellationToken::new(),
            refill: Arc::new(Notify::new()),
            ticker: Mutex::new(Some(ticker)),
            background: Mutex::new(None),
            reaper: lease::start_reaper().map_err(WasmError::Ticker)?,
        };
        for source in sources(&inner.config)? {
            let entry = inner.load_entry(source)?;
            inner.by_name.insert(entry.name.to_string(), inner.entries.len());
            inner.entries.push(Arc::new(entry));
        }
        inner.rebalance_with(false);
        Ok(inner)
    }

    /// Loads, links and validates one component; it starts warm (the plan then places it).
    fn load_entry(&self, source: Source) -> Result<Entry, WasmError> {
        let sha256 = artifact::sha256_hex(&source.wasm);
        let (component, artifact) = self.artifacts.load(&self.engine, &source.name, &source.wasm, &sha256)?;
        metrics::counter!(m::WASM_ARTIFACTS_TOTAL, "outcome" => artifact.as_str()).increment(1);
        let pre = contract::link(&self.engine, &self.linker, &source.name, &component)?;
        let info = contract::check_info(&source.name, &pre, engine::new_store(&self.engine, &self.config))?;
        tracing::info!(extractor = source.name, component = %format!("{} {}", info.name, info.version), artifact = artifact.as_str(), "WASM extractor loaded.");
        let range = component.image_range();
        let code_bytes = (range.end as usize).saturating_sub(range.start as usize) as u64;
        let pages = component.resources_required().and_then(|r| r.max_initial_memory_size).unwrap_or(0);
        let instance_bytes = (pages * 65_536).max(MIN_INSTANCE_BYTES);
        let keep_warm = source.name == DEFAULT_EXTRACTOR;
        // The default extractor starts as if in demand, so the first jobs find it hot.
        let demand = Demand { average: if keep_warm { self.config.hot_demand * 2.0 } else { 0.0 } };
        let breaker =
            Breaker::new(self.config.breaker_failure_threshold, Duration::from_millis(self.config.breaker_open_ms));
        let state =
            EntryState { tier: Tier::Warm, pre: Some(pre), hot: Vec::new(), hot_target: 0, demand, breaker, artifact };
        Ok(Entry {
            name: source.name.into(),
            wasm: source.wasm.into(),
            sha256,
            component: format!("{} {}", info.name, info.version),
            keep_warm,
            code_bytes,
            instance_bytes,
            interval_leases: AtomicU64::new(0),
            leases: Default::default(),
            fallbacks: AtomicU64::new(0),
            state: Mutex::new(state),
            closed: self.closed.clone(),
            refill: self.refill.clone(),
        })
    }

    /// A cold lease: load the artifact (verified) and link, off the runtime. The result is not
    /// kept: the plan, not one lease, decides what stays in memory.
    pub(super) async fn load_cold(self: &Arc<Self>, entry: &Arc<Entry>) -> Result<ExtractorPre<Host>, WasmError> {
        let (inner, entry) = (self.clone(), entry.clone());
        tokio::task::spawn_blocking(move || inner.load_pre(&entry).map(|(pre, _)| pre))
            .await
            .map_err(|e| WasmError::Crashed(e.to_string()))?
    }

    /// Blocking: the extractor's compiled code (from its artifact, or compiled), linked.
    pub(super) fn load_pre(&self, entry: &Entry) -> Result<(ExtractorPre<Host>, ArtifactOutcome), WasmError> {
        let (component, outcome) = self.artifacts.load(&self.engine, &entry.name, &entry.wasm, &entry.sha256)?;
        if outcome != ArtifactOutcome::Loaded {
            metrics::counter!(m::WASM_ARTIFACTS_TOTAL, "outcome" => outcome.as_str()).increment(1);
        }
        Ok((contract::link(&self.engine, &self.linker, &entry.name, &component)?, outcome))
    }
}
