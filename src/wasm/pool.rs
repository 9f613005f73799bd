//! The tiered pool: loads the named extractors, keeps each in a tier (hot, warm, cold) by its
//! demand within the memory budget, leases instances under a slot semaphore, refills hot tiers
//! in the background, and routes calls through each extractor's circuit breaker (with the
//! bounded native fallback while it is open). It knows no queue, no storage, no network.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{Notify, Semaphore, broadcast};
use tokio_util::sync::CancellationToken;

use super::artifact::{ArtifactOutcome, ArtifactStore};
use super::breaker::{Breaker, BreakerState, Route};
use super::config::{DEFAULT_EXTRACTOR, WasmConfig};
use super::contract::{self, ExtractorPre};
use super::embedded;
use super::engine::{self, EpochTicker, Host};
use super::error::WasmError;
use super::events::WasmEvent;
use super::lease::{CallSettings, Home, Lease, Ready};
use super::tier::{self, Candidate, Demand, Limits, Tier};
use crate::native::NativeError;
use crate::ops::metrics as m;

/// Capacity of the event channel; a subscriber that lags loses the oldest events.
const EVENT_CAPACITY: usize = 256;
/// Bytes one idle hot instance is assumed to hold at least (store, tables, touched pages).
const MIN_INSTANCE_BYTES: u64 = 1 << 20;

/// Which engine produced a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// The WASM component.
    Wasm,
    /// The native core, because the extractor's breaker was open.
    NativeFallback,
}

/// One extraction's result.
#[derive(Debug, Clone)]
pub struct Extraction {
    /// The document.
    pub document: riptide_extractor::Document,
    /// The tier that served the lease; for `NativeFallback`, the tier the extractor sat in
    /// (no instance was leased).
    pub tier: Tier,
    /// Which engine ran.
    pub engine: Engine,
}

impl Engine {
    /// `wasm` or `native-fallback`, as results report it.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Wasm => "wasm",
            Engine::NativeFallback => "native-fallback",
        }
    }
}

/// The pool's state for `riptide stats`.
#[derive(Debug, Clone, Serialize)]
pub struct WasmPoolStats {
    /// `wasm.slots`.
    pub slots: u32,
    /// Slots held by idle hot instances and leases.
    pub slots_in_use: u32,
    /// Estimated memory held by warm code and idle hot instances, bytes.
    pub tier_memory_bytes: u64,
    /// `wasm.memory_budget_bytes`.
    pub memory_budget_bytes: u64,
    /// Components compiled by this process (0 after a restart with valid artifacts).
    pub compiles: u64,
    /// Artifact files removed at start or before a load (corrupt, foreign, stale).
    pub artifacts_rejected: u64,
    /// One entry per extractor, by name.
    pub extractors: Vec<ExtractorStats>,
}

/// One extractor's state.
#[derive(Debug, Clone, Serialize)]
pub struct ExtractorStats {
    /// The name jobs use.
    pub name: String,
    /// Name and version the component reports.
    pub component: String,
    /// Current tier.
    pub tier: Tier,
    /// Idle hot instances now.
    pub hot_idle: u32,
    /// Idle hot instances the plan wants.
    pub hot_target: u32,
    /// Leases served from each tier since start.
    pub leases_hot: u64,
    /// See `leases_hot`.
    pub leases_warm: u64,
    /// See `leases_hot`.
    pub leases_cold: u64,
    /// Moving average of leases per rebalance interval.
    pub demand: f64,
    /// Breaker state.
    pub breaker: BreakerState,
    /// Pages served by the native fallback.
    pub fallbacks: u64,
    /// How the compiled code was last obtained.
    pub artifact: ArtifactOutcome,
}

/// The tiered pool. A cheap `Clone` handle; `close` stops it for every clone.
#[derive(Clone)]
pub struct ExtractorPool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ExtractorPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtractorPool").field("extractors", &self.inner.by_name.keys()).finish_non_exhaustive()
    }
}

struct Inner {
    config: WasmConfig,
    engine: wasmtime::Engine,
    artifacts: ArtifactStore,
    entries: Vec<Arc<Entry>>,
    by_name: HashMap<String, usize>,
    /// Every live instance (idle hot or leased) holds one permit: the pooling allocator fails
    /// instantly when full, so this is where waiting happens.
    slots: Arc<Semaphore>,
    events: broadcast::Sender<WasmEvent>,
    /// Shared with every entry, which checks it before taking an instance back.
    closed: Arc<AtomicBool>,
    stop: CancellationToken,
    /// Wakes the background task to refill hot tiers after a call used up a hot instance.
    refill: Arc<Notify>,
    ticker: Mutex<Option<EpochTicker>>,
    background: Mutex<Option<tokio::task::JoinHandle<()>>>,
    rejected: AtomicU64,
    /// Tears dropped leases' instances down off the request path (see `lease.rs`).
    reaper: super::lease::Reaper,
    /// Copied into every lease (computed once, not per lease).
    settings: CallSettings,
}

/// One named extractor.
struct Entry {
    name: Arc<str>,
    wasm: Arc<[u8]>,
    sha256: String,
    component: String,
    keep_warm: bool,
    code_bytes: u64,
    instance_bytes: u64,
    /// Leases since the last rebalance (demand sample).
    interval_leases: AtomicU64,
    leases: [AtomicU64; 3],
    fallbacks: AtomicU64,
    state: Mutex<EntryState>,
    /// The pool's: set by `close`, after which no instance is taken back.
    closed: Arc<AtomicBool>,
    /// The pool's: wakes the background refill.
    refill: Arc<Notify>,
}

impl Home for Entry {
    fn name(&self) -> &Arc<str> {
        &self.name
    }

    fn shelve(&self, ready: Ready) -> Option<Ready> {
        let mut state = lock(&self.state);
        // Read under the lock `close` empties the hot lists with, so nothing is shelved after.
        if self.closed.load(Ordering::SeqCst) || state.tier != Tier::Hot || state.hot.len() >= state.hot_target as usize
        {
            return Some(ready);
        }
        state.hot.push(ready);
        None
    }

    fn spent(&self) {
        self.refill.notify_one();
    }
}

/// Mutable per-extractor state; a std mutex, held for pops and pushes only, never across an
/// await or a compile.
struct EntryState {
    tier: Tier,
    pre: Option<ExtractorPre<Host>>,
    hot: Vec<Ready>,
    hot_target: u32,
    demand: Demand,
    breaker: Breaker,
    artifact: ArtifactOutcome,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave them inconsistent (plain field writes).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn tier_index(tier: Tier) -> usize {
    match tier {
        Tier::Hot => 0,
        Tier::Warm => 1,
        Tier::Cold => 2,
    }
}

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
        let task = tokio::spawn(background(Arc::downgrade(&inner), inner.stop.clone(), inner.refill.clone()));
        *lock(&inner.background) = Some(task);
        Ok(ExtractorPool { inner })
    }

    /// Extracts one page with `extractor`, within `budget`. Routes through the breaker: closed,
    /// a leased instance runs it; open, the native core runs it (pages up to
    /// `native_fallback_max_input_bytes`) and the result says `NativeFallback`.
    pub async fn extract(
        &self,
        extractor: &str,
        html: String,
        url: String,
        options: riptide_extractor::Options,
        budget: Duration,
    ) -> Result<Extraction, WasmError> {
        let entry = self.inner.entry(extractor)?;
        let route = self.inner.route(&entry);
        if route == Route::Fallback {
            return self.inner.fallback(&entry, html, url, options, budget).await;
        }
        let lease = match self.inner.lease(&entry).await {
            Ok(lease) => lease,
            Err(e) => {
                self.inner.record(&entry, route, Err(&e));
                return Err(e);
            }
        };
        let tier = lease.tier();
        let result = lease.extract(html, url, options, budget).await;
        self.inner.record(&entry, route, result.as_ref().map(|_| ()));
        Ok(Extraction { document: result?, tier, engine: Engine::Wasm })
    }

    /// Leases an instance of `extractor`: a pop when hot, an instantiation when warm, a load
    /// from the artifact when cold. Waits up to `lease_timeout_ms` for a free slot.
    pub async fn lease(&self, extractor: &str) -> Result<Lease, WasmError> {
        let entry = self.inner.entry(extractor)?;
        self.inner.lease(&entry).await
    }

    /// The pool's state now.
    pub fn stats(&self) -> WasmPoolStats {
        self.inner.stats()
    }

    /// Tier changes, evictions and breaker changes, as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<WasmEvent> {
        self.inner.events.subscribe()
    }

    /// Names of the loaded extractors.
    pub fn extractors(&self) -> Vec<String> {
        self.inner.entries.iter().map(|e| e.name.to_string()).collect()
    }

    /// Runs one demand measurement and rebalance now (the background task does it every
    /// `rebalance_interval_ms`); for tests and tools.
    pub async fn rebalance_now(&self) {
        let inner = self.inner.clone();
        let _ = tokio::task::spawn_blocking(move || inner.rebalance()).await;
    }

    /// Stops leasing, stops the background task, drops idle instances, waits (up to the lease
    /// timeout) for leased ones to come back, then stops the epoch ticker.
    pub async fn close(&self) {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        self.inner.stop.cancel();
        let task = lock(&self.inner.background).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        for entry in &self.inner.entries {
            let idle = std::mem::take(&mut lock(&entry.state).hot);
            drop(idle);
        }
        let all = self.inner.config.slots;
        let drained = tokio::time::timeout(self.inner.config.lease_timeout(), self.inner.slots.acquire_many(all)).await;
        if drained.is_err() {
            tracing::warn!("WASM pool closed with leases still out; their calls lose their deadline.");
        }
        self.inner.slots.close();
        let ticker = lock(&self.inner.ticker).take();
        if let Some(mut ticker) = ticker {
            tokio::task::spawn_blocking(move || ticker.stop()).await.ok();
        }
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
        let (engine, cache) = engine::build(&config)?;
        let (artifacts, _) = ArtifactStore::open(config.cache_dir(), cache)?;
        let mut files = Vec::new();
        for source in sources(&config)? {
            let sha = super::artifact::sha256_hex(&source.wasm);
            let (component, _) = artifacts.load(&engine, &source.name, &source.wasm, &sha)?;
            contract::link(&engine, &source.name, &component)?;
            files.extend(artifacts.files_of(&sha));
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

/// Measures demand, rebalances and refills every interval, and refills after hot instances are
/// used up. Holds the pool weakly: when every handle is gone without `close`, it ends at its
/// next wake-up (and dropping the pool stops the epoch ticker).
async fn background(inner: Weak<Inner>, stop: CancellationToken, refill: Arc<Notify>) {
    let Some(interval) = inner.upgrade().map(|i| i.config.rebalance_interval_ms) else { return };
    let mut tick = tokio::time::interval(Duration::from_millis(interval));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        let rebalance = tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => true,
            _ = refill.notified() => false,
        };
        let Some(worker) = inner.upgrade() else { return };
        let done = tokio::task::spawn_blocking(move || {
            if rebalance {
                worker.rebalance();
            } else {
                worker.refill_all();
            }
        });
        if let Err(e) = done.await {
            tracing::error!(error = %e, "WASM pool background step failed.");
        }
    }
}

impl Inner {
    /// Blocking: engine, artifacts, every component validated, tiers placed and filled.
    fn start(config: WasmConfig) -> Result<Inner, WasmError> {
        let (engine, cache) = engine::build(&config)?;
        let ticker = EpochTicker::start(engine.clone(), config.epoch_tick())?;
        let (artifacts, rejected) = ArtifactStore::open(config.cache_dir(), cache)?;
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let settings = CallSettings {
            epoch_tick: config.epoch_tick(),
            fuel: config.fuel_per_call,
            max_input_bytes: config.max_input_bytes,
        };
        let mut inner = Inner {
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
            rejected: AtomicU64::new(rejected as u64),
            reaper: super::lease::start_reaper().map_err(WasmError::Ticker)?,
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
        let sha256 = super::artifact::sha256_hex(&source.wasm);
        let (component, artifact) = self.artifacts.load(&self.engine, &source.name, &source.wasm, &sha256)?;
        metrics::counter!(m::WASM_ARTIFACTS_TOTAL, "outcome" => artifact.as_str()).increment(1);
        let pre = contract::link(&self.engine, &source.name, &component)?;
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

    fn entry(&self, name: &str) -> Result<Arc<Entry>, WasmError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(WasmError::Closed);
        }
        self.by_name
            .get(name)
            .map(|&i| self.entries[i].clone())
            .ok_or_else(|| WasmError::UnknownExtractor(name.to_owned()))
    }

    async fn lease(self: &Arc<Self>, entry: &Arc<Entry>) -> Result<Lease, WasmError> {
        entry.interval_leases.fetch_add(1, Ordering::Relaxed);
        // No refill here: a lease released uncalled goes back to the list; the call that uses
        // the instance up asks for the refill (`Home::spent`).
        let popped = lock(&entry.state).hot.pop();
        if let Some(ready) = popped {
            return Ok(self.lease_from(entry, Tier::Hot, ready));
        }
        let permit = self.acquire_slot(entry).await?;
        let pre = lock(&entry.state).pre.clone();
        let (tier, pre) = match pre {
            Some(pre) => (Tier::Warm, pre),
            None => (Tier::Cold, self.load_cold(entry).await?),
        };
        let mut store = engine::new_store(&self.engine, &self.config);
        let instance = pre
            .instantiate(&mut store)
            .map_err(|e| WasmError::Instantiate { extractor: entry.name.to_string(), source: WasmError::boxed(e) })?;
        Ok(self.lease_from(entry, tier, Ready { store, instance, permit }))
    }

    fn lease_from(&self, entry: &Arc<Entry>, tier: Tier, ready: Ready) -> Lease {
        entry.leases[tier_index(tier)].fetch_add(1, Ordering::Relaxed);
        Lease::new(entry.clone(), tier, ready, self.settings, self.reaper.clone())
    }

    /// A free slot: at once if there is one, else by evicting another extractor's idle hot
    /// instance, else waiting (bounded).
    async fn acquire_slot(&self, entry: &Entry) -> Result<tokio::sync::OwnedSemaphorePermit, WasmError> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        if self.evict_one(&entry.name)
            && let Ok(permit) = self.slots.clone().try_acquire_owned()
        {
            return Ok(permit);
        }
        let timeout = self.config.lease_timeout();
        match tokio::time::timeout(timeout, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(WasmError::Closed),
            Err(_) => Err(WasmError::PoolExhausted(timeout)),
        }
    }

    /// Drops one idle hot instance of the least demanded other extractor; true if one was.
    fn evict_one(&self, except: &str) -> bool {
        let victim = self
            .entries
            .iter()
            .filter(|e| *e.name != *except)
            .filter_map(|e| {
                let state = lock(&e.state);
                (!state.hot.is_empty()).then(|| (state.demand.average, e.clone()))
            })
            .min_by(|a, b| a.0.total_cmp(&b.0));
        let Some((_, victim)) = victim else { return false };
        let dropped = lock(&victim.state).hot.pop();
        if dropped.is_none() {
            return false;
        }
        drop(dropped);
        WasmEvent::Evicted { extractor: victim.name.to_string(), instances: 1 }.emit(&self.events);
        true
    }

    /// A cold lease: load the artifact (verified) and link, off the runtime. The result is not
    /// kept: the plan, not one lease, decides what stays in memory.
    async fn load_cold(self: &Arc<Self>, entry: &Arc<Entry>) -> Result<ExtractorPre<Host>, WasmError> {
        let (inner, entry) = (self.clone(), entry.clone());
        tokio::task::spawn_blocking(move || inner.load_pre(&entry).map(|(pre, _)| pre))
            .await
            .map_err(|e| WasmError::Crashed(e.to_string()))?
    }

    fn load_pre(&self, entry: &Entry) -> Result<(ExtractorPre<Host>, ArtifactOutcome), WasmError> {
        let (component, outcome) = self.artifacts.load(&self.engine, &entry.name, &entry.wasm, &entry.sha256)?;
        if outcome != ArtifactOutcome::Loaded {
            metrics::counter!(m::WASM_ARTIFACTS_TOTAL, "outcome" => outcome.as_str()).increment(1);
        }
        Ok((contract::link(&self.engine, &entry.name, &component)?, outcome))
    }

    fn route(&self, entry: &Entry) -> Route {
        let (route, changed, failures) = {
            let mut state = lock(&entry.state);
            let (route, changed) = state.breaker.route(Instant::now());
            (route, changed, state.breaker.failures())
        };
        if let Some(state) = changed {
            WasmEvent::Breaker { extractor: entry.name.to_string(), state, failures }.emit(&self.events);
        }
        route
    }

    /// Feeds a call's outcome to the breaker. Failures before the component was reached that
    /// are not its fault (no slot, closed) only release a probe.
    fn record(&self, entry: &Entry, route: Route, result: Result<(), &WasmError>) {
        let fault = result.err().is_some_and(WasmError::is_component_fault);
        let reached = match result {
            Ok(_) => true,
            Err(e) => fault || !matches!(e, WasmError::PoolExhausted(_) | WasmError::Closed),
        };
        let (changed, failures) = {
            let mut state = lock(&entry.state);
            if !reached {
                state.breaker.cancel_probe();
                return;
            }
            (state.breaker.record(route, fault, Instant::now()), state.breaker.failures())
        };
        if let Some(state) = changed {
            WasmEvent::Breaker { extractor: entry.name.to_string(), state, failures }.emit(&self.events);
        }
    }

    /// The native core, bounded in input size, while the breaker is open.
    async fn fallback(
        &self,
        entry: &Entry,
        html: String,
        url: String,
        mut options: riptide_extractor::Options,
        budget: Duration,
    ) -> Result<Extraction, WasmError> {
        let limit = self.config.native_fallback_max_input_bytes;
        if html.len() > limit {
            return Err(WasmError::BreakerOpen { extractor: entry.name.to_string(), size: html.len(), limit });
        }
        options.max_input_bytes = options.max_input_bytes.min(limit);
        let tier = lock(&entry.state).tier;
        let document = match crate::native::extract(html, url, options, budget).await {
            Ok(document) => document,
            Err(NativeError::Extractor(e)) => return Err(e.into()),
            Err(NativeError::Timeout(budget)) => return Err(WasmError::Timeout(budget)),
            Err(NativeError::Crashed(e)) => return Err(WasmError::Crashed(e)),
        };
        entry.fallbacks.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(m::WASM_FALLBACKS_TOTAL).increment(1);
        Ok(Extraction { document, tier, engine: Engine::NativeFallback })
    }

    fn rebalance(&self) {
        self.rebalance_with(true);
    }

    /// Blocking. Folds in the interval's demand (when `measure`), plans, moves extractors
    /// between tiers, then refills hot tiers.
    fn rebalance_with(&self, measure: bool) {
        let limits = Limits {
            hot_demand: self.config.hot_demand,
            warm_demand: self.config.warm_demand,
            hot_max_per_extractor: self.config.hot_max_per_extractor,
            hot_max_total: self.config.hot_max_total,
            memory_budget_bytes: self.config.memory_budget_bytes,
        };
        let candidates: Vec<Candidate> = self
            .entries
            .iter()
            .map(|e| {
                let leases = e.interval_leases.swap(0, Ordering::Relaxed);
                let mut state = lock(&e.state);
                if measure {
                    state.demand.observe(leases, self.config.demand_smoothing);
                }
                Candidate {
                    demand: state.demand.average,
                    code_bytes: e.code_bytes,
                    instance_bytes: e.instance_bytes,
                    keep_warm: e.keep_warm,
                    pinned: self.config.pinned.get(&*e.name).copied(),
                }
            })
            .collect();
        for (entry, placement) in self.entries.iter().zip(tier::plan(&candidates, &limits)) {
            self.apply(entry, placement.tier, placement.hot_target);
        }
        self.refill_all();
    }

    /// Moves one extractor to `tier`: loads code when leaving cold, drops it when going cold,
    /// drops idle instances above the new hot target.
    fn apply(&self, entry: &Entry, tier: Tier, hot_target: u32) {
        let needs_code = tier != Tier::Cold && lock(&entry.state).pre.is_none();
        let loaded = if needs_code {
            match self.load_pre(entry) {
                Ok(loaded) => Some(loaded),
                Err(e) => {
                    tracing::warn!(extractor = %entry.name, error = %e, "Could not promote a WASM extractor; it stays cold.");
                    return;
                }
            }
        } else {
            None
        };
        let (from, evicted) = {
            let mut state = lock(&entry.state);
            if let Some((pre, outcome)) = loaded {
                state.pre = Some(pre);
                state.artifact = outcome;
            }
            if tier == Tier::Cold {
                state.pre = None;
            }
            state.hot_target = hot_target;
            let keep = hot_target as usize;
            let extra: Vec<Ready> = if state.hot.len() > keep { state.hot.split_off(keep) } else { Vec::new() };
            let from = std::mem::replace(&mut state.tier, tier);
            (from, extra)
        };
        if !evicted.is_empty() {
            let instances = evicted.len() as u32;
            drop(evicted);
            WasmEvent::Evicted { extractor: entry.name.to_string(), instances }.emit(&self.events);
        }
        let extractor = entry.name.to_string();
        if tier > from {
            WasmEvent::Promoted { extractor, from, to: tier }.emit(&self.events);
        } else if tier < from {
            WasmEvent::Demoted { extractor, from, to: tier }.emit(&self.events);
        }
    }

    /// Blocking. Tops hot tiers up to their targets with free slots only (leases come first).
    fn refill_all(&self) {
        for entry in &self.entries {
            if self.closed.load(Ordering::SeqCst) {
                return;
            }
            self.refill(entry);
        }
        self.publish_gauges();
    }

    fn refill(&self, entry: &Entry) {
        loop {
            let pre = {
                let state = lock(&entry.state);
                if state.tier != Tier::Hot || state.hot.len() >= state.hot_target as usize {
                    return;
                }
                state.pre.clone()
            };
            let Some(pre) = pre else { return };
            let Ok(permit) = self.slots.clone().try_acquire_owned() else { return };
            let mut store = engine::new_store(&self.engine, &self.config);
            match pre.instantiate(&mut store) {
                Ok(instance) => {
                    let ready = Ready { store, instance, permit };
                    let mut state = lock(&entry.state);
                    // A released lease may have filled the list meanwhile; then this one goes.
                    if state.tier != Tier::Hot || state.hot.len() >= state.hot_target as usize {
                        drop(state);
                        drop(ready);
                        return;
                    }
                    state.hot.push(ready);
                }
                Err(e) => {
                    tracing::warn!(extractor = %entry.name, error = %e, "Could not pre-instantiate a WASM extractor.");
                    return;
                }
            }
        }
    }

    fn publish_gauges(&self) {
        let stats = self.stats();
        for tier in Tier::ALL {
            let n = stats.extractors.iter().filter(|e| e.tier == tier).count();
            metrics::gauge!(m::WASM_EXTRACTORS, "tier" => tier.as_str()).set(n as f64);
        }
        for e in &stats.extractors {
            metrics::gauge!(m::WASM_HOT_INSTANCES, "extractor" => e.name.clone()).set(f64::from(e.hot_idle));
        }
        metrics::gauge!(m::WASM_SLOTS_IN_USE).set(f64::from(stats.slots_in_use));
        metrics::gauge!(m::WASM_TIER_MEMORY_BYTES).set(stats.tier_memory_bytes as f64);
    }

    fn stats(&self) -> WasmPoolStats {
        let mut memory = 0u64;
        let extractors = self
            .entries
            .iter()
            .map(|e| {
                let state = lock(&e.state);
                let hot_idle = state.hot.len() as u32;
                if state.pre.is_some() {
                    memory += e.code_bytes;
                }
                memory += u64::from(hot_idle) * e.instance_bytes;
                ExtractorStats {
                    name: e.name.to_string(),
                    component: e.component.clone(),
                    tier: state.tier,
                    hot_idle,
                    hot_target: state.hot_target,
                    leases_hot: e.leases[0].load(Ordering::Relaxed),
                    leases_warm: e.leases[1].load(Ordering::Relaxed),
                    leases_cold: e.leases[2].load(Ordering::Relaxed),
                    demand: state.demand.average,
                    breaker: state.breaker.state(),
                    fallbacks: e.fallbacks.load(Ordering::Relaxed),
                    artifact: state.artifact,
                }
            })
            .collect();
        let slots = self.config.slots;
        WasmPoolStats {
            slots,
            slots_in_use: slots.saturating_sub(self.slots.available_permits() as u32),
            tier_memory_bytes: memory,
            memory_budget_bytes: self.config.memory_budget_bytes,
            compiles: self.artifacts.compiles() as u64,
            artifacts_rejected: self.rejected.load(Ordering::Relaxed),
            extractors,
        }
    }
}
