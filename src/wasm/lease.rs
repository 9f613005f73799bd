//! A lease: one fresh instance of one extractor, holding one pool slot, serving one document.
//! `release().await` returns the slot; dropping an unreleased lease returns it too and logs (the
//! fallback). It must not pick instances or tiers (`pool.rs` does).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;
use wasmtime::{Store, Trap};

use super::contract::{self, Extractor};
use super::engine::Host;
use super::error::WasmError;
use super::limits::MemoryCapExceeded;
use super::tier::Tier;
use crate::ops::metrics as m;

/// A live instance and the slot it occupies. Dropping it frees both (the store first).
pub(crate) struct Ready {
    pub(crate) store: Store<Host>,
    pub(crate) instance: Extractor,
    /// Held for its `Drop`, which returns the slot (after the store, declared first, is gone).
    #[expect(dead_code, reason = "held for its Drop only")]
    pub(crate) permit: OwnedSemaphorePermit,
}

/// What a call needs besides the instance.
#[derive(Debug, Clone)]
pub(crate) struct CallSettings {
    pub(crate) epoch_tick: Duration,
    pub(crate) fuel: Option<u64>,
    pub(crate) max_input_bytes: u64,
}

/// Where released instances go to be dropped: tearing a store down (resetting its pool slot)
/// costs tens of µs, which a dedicated thread pays instead of the job.
pub(crate) type Reaper = std::sync::mpsc::Sender<Ready>;

/// Starts the reaper thread; it ends when the last sender (pool or lease) is gone.
pub(crate) fn start_reaper() -> Result<Reaper, std::io::Error> {
    let (tx, rx) = std::sync::mpsc::channel::<Ready>();
    std::thread::Builder::new().name("riptide-wasm-reaper".into()).spawn(move || {
        while let Ok(ready) = rx.recv() {
            drop(ready);
        }
    })?;
    Ok(tx)
}

/// One leased instance. Serves one document ([`Lease::extract`]), then is released.
pub struct Lease {
    extractor: Arc<str>,
    tier: Tier,
    ready: Option<Ready>,
    settings: CallSettings,
    reaper: Reaper,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("extractor", &self.extractor).field("tier", &self.tier).finish_non_exhaustive()
    }
}

impl Lease {
    pub(crate) fn new(extractor: Arc<str>, tier: Tier, ready: Ready, settings: CallSettings, reaper: Reaper) -> Self {
        metrics::counter!(m::WASM_LEASES_TOTAL, "tier" => tier.as_str()).increment(1);
        Lease { extractor, tier, ready: Some(ready), settings, reaper }
    }

    /// Hands the instance to the reaper thread (or drops it here if that thread is gone).
    fn reap(&mut self) -> bool {
        let Some(ready) = self.ready.take() else { return false };
        if let Err(std::sync::mpsc::SendError(ready)) = self.reaper.send(ready) {
            drop(ready);
        }
        true
    }

    /// The tier that served this lease.
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// The extractor's name.
    pub fn extractor(&self) -> &str {
        &self.extractor
    }

    /// Extracts one page in this instance, off the async runtime, stopped at `budget` (epoch
    /// deadline) and at the per-call memory cap. The instance is discarded afterwards, whatever
    /// happened (no state carries over between documents; a trapped instance is unusable).
    pub async fn extract(
        mut self,
        html: String,
        url: String,
        options: riptide_extractor::Options,
        budget: Duration,
    ) -> Result<riptide_extractor::Document, WasmError> {
        let Some(ready) = self.ready.take() else { return Err(WasmError::Closed) };
        let (extractor, settings) = (self.extractor.clone(), self.settings.clone());
        let task =
            tokio::task::spawn_blocking(move || call(ready, &extractor, &html, &url, &options, budget, &settings));
        let result = task.await.map_err(|e| WasmError::Crashed(e.to_string()))?;
        metrics::counter!(m::WASM_CALLS_TOTAL, "outcome" => outcome_label(&result)).increment(1);
        result
    }

    /// Returns the slot, tearing the (never called) instance down here: measured on two loaded
    /// cores, handing it to the reaper thread made lease+release slower (the teardown competes
    /// for the same cores and the slot comes back later), so only the `Drop` fallback uses it.
    pub async fn release(mut self) {
        drop(self.ready.take());
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.reap() {
            tracing::debug!(extractor = %self.extractor, tier = self.tier.as_str(), "WASM lease dropped without release; slot returned.");
        }
    }
}

/// Runs one call in `ready`'s store (blocking).
fn call(
    mut ready: Ready,
    extractor: &str,
    html: &str,
    url: &str,
    options: &riptide_extractor::Options,
    budget: Duration,
    settings: &CallSettings,
) -> Result<riptide_extractor::Document, WasmError> {
    let tick_ms = settings.epoch_tick.as_millis().max(1);
    // Rounded up, plus one: the deadline counts tick boundaries, the first may be a moment away.
    let ticks = u64::try_from(budget.as_millis().div_ceil(tick_ms)).unwrap_or(u64::MAX / 2).saturating_add(1);
    ready.store.set_epoch_deadline(ticks);
    if let Some(fuel) = settings.fuel {
        // Fuel is enabled on the engine whenever `fuel` is set, so this cannot fail.
        let _ = ready.store.set_fuel(fuel);
    }
    let wit_options = contract::to_wit_options(options, settings.max_input_bytes);
    let result = ready.instance.call_extract(&mut ready.store, html, url, &wit_options);
    match result {
        Ok(Ok(doc)) => Ok(contract::from_wit_document(doc)),
        Ok(Err(e)) => Err(WasmError::Extractor(contract::from_wit_error(e))),
        Err(e) => Err(classify_trap(extractor, &e, budget)),
    }
}

/// A failed call: our limiter's cap, a deadline or fuel trap, or any other trap (a guest bug).
fn classify_trap(extractor: &str, e: &wasmtime::Error, budget: Duration) -> WasmError {
    if let Some(cap) = e.downcast_ref::<MemoryCapExceeded>() {
        return WasmError::MemoryCap { desired: cap.desired, cap: cap.cap };
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt | Trap::OutOfFuel) => WasmError::Timeout(budget),
        _ => WasmError::Trap {
            extractor: extractor.to_owned(),
            detail: e.chain().map(|c| c.to_string()).collect::<Vec<_>>().join(": "),
        },
    }
}

fn outcome_label(result: &Result<riptide_extractor::Document, WasmError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(WasmError::Extractor(_)) => "extractor_error",
        Err(WasmError::Timeout(_)) => "timeout",
        Err(WasmError::MemoryCap { .. }) => "memory_cap",
        Err(_) => "trap",
    }
}
