//! The pool handle and the state it shares: [`ExtractorPool`] (a cheap `Clone`), `Inner` (engine,
//! artifacts, slots, events, background task) and one `Entry` per named extractor with its
//! mutable `EntryState`, plus `close`. It owns the shared state and the pool's lifecycle; it
//! must not pick instances (`leasing.rs`), move tiers (`rebalance.rs`) or load code
//! (`loading.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{Notify, Semaphore, broadcast};
use tokio_util::sync::CancellationToken;

use crate::wasm::artifact::{ArtifactOutcome, ArtifactStore};
use crate::wasm::breaker::Breaker;
use crate::wasm::config::WasmConfig;
use crate::wasm::contract::ExtractorPre;
use crate::wasm::engine::{EpochTicker, Host};
use crate::wasm::error::WasmError;
use crate::wasm::events::WasmEvent;
use crate::wasm::lease::{CallSettings, Ready, Reaper};
use crate::wasm::tier::{Demand, Tier};

/// The tiered pool. A cheap `Clone` handle; `close` stops it for every clone.
#[derive(Clone)]
pub struct ExtractorPool {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for ExtractorPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtractorPool").field("extractors", &self.inner.by_name.keys()).finish_non_exhaustive()
    }
}

/// What the handle, the leases' homes and the background task share.
pub(super) struct Inner {
    pub(super) config: WasmConfig,
    pub(super) engine: wasmtime::Engine,
    pub(super) artifacts: ArtifactStore,
    /// WASI, defined once; every component (at start, promotion, cold lease) links with it.
    pub(super) linker: wasmtime::component::Linker<Host>,
    pub(super) entries: Vec<Arc<Entry>>,
    pub(super) by_name: HashMap<String, usize>,
    /// Every live instance (idle hot or leased) holds one permit: the pooling allocator fails
    /// instantly when full, so this is where waiting happens.
    pub(super) slots: Arc<Semaphore>,
    pub(super) events: broadcast::Sender<WasmEvent>,
    /// Shared with every entry, which checks it before taking an instance back.
    pub(super) closed: Arc<AtomicBool>,
    pub(super) stop: CancellationToken,
    /// Wakes the background task to refill hot tiers after a call used up a hot instance.
    pub(super) refill: Arc<Notify>,
    pub(super) ticker: Mutex<Option<EpochTicker>>,
    pub(super) background: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Tears dropped leases' instances down off the request path (see `lease.rs`).
    pub(super) reaper: Reaper,
    /// Copied into every lease (computed once, not per lease).
    pub(super) settings: CallSettings,
}

/// One named extractor.
pub(super) struct Entry {
    pub(super) name: Arc<str>,
    pub(super) wasm: Arc<[u8]>,
    pub(super) sha256: String,
    pub(super) component: String,
    pub(super) keep_warm: bool,
    pub(super) code_bytes: u64,
    pub(super) instance_bytes: u64,
    /// Leases since the last rebalance (demand sample).
    pub(super) interval_leases: AtomicU64,
    /// Leases served per tier since start, indexed by `tier_index`.
    pub(super) leases: [AtomicU64; 3],
    pub(super) fallbacks: AtomicU64,
    pub(super) state: Mutex<EntryState>,
    /// The pool's: set by `close`, after which no instance is taken back.
    pub(super) closed: Arc<AtomicBool>,
    /// The pool's: wakes the background refill.
    pub(super) refill: Arc<Notify>,
}

/// Mutable per-extractor state; a std mutex, held for pops and pushes only, never across an
/// await or a compile.
pub(super) struct EntryState {
    pub(super) tier: Tier,
    pub(super) pre: Option<ExtractorPre<Host>>,
    pub(super) hot: Vec<Ready>,
    pub(super) hot_target: u32,
    pub(super) demand: Demand,
    pub(super) breaker: Breaker,
    pub(super) artifact: ArtifactOutcome,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave them inconsistent (plain field writes).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Index of `tier` in `Entry::leases`.
pub(super) fn tier_index(tier: Tier) -> usize {
    match tier {
        Tier::Hot => 0,
        Tier::Warm => 1,
        Tier::Cold => 2,
    }
}

impl ExtractorPool {
    /// Tier changes, evictions and breaker changes, as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<WasmEvent> {
        self.inner.events.subscribe()
    }

    /// Names of the loaded extractors.
    pub fn extractors(&self) -> Vec<String> {
        self.inner.entries.iter().map(|e| e.name.to_string()).collect()
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

impl Inner {
    /// The named extractor, unless the pool is closed.
    pub(super) fn entry(&self, name: &str) -> Result<Arc<Entry>, WasmError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(WasmError::Closed);
        }
        self.by_name
            .get(name)
            .map(|&i| self.entries[i].clone())
            .ok_or_else(|| WasmError::UnknownExtractor(name.to_owned()))
    }
}
