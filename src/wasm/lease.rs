//! A lease: one fresh instance of one extractor, holding one pool slot, serving one document.
//! `release().await` of a never-called instance offers it back to its extractor's hot list (it
//! is still pristine) and otherwise tears it down, returning the slot; dropping an unreleased
//! lease does the same and logs (the fallback). A called instance is never reused. It must not
//! pick instances or tiers (`pool/leasing.rs` does, behind [`Home`]).

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;
use wasmtime::{Store, Trap};

use super::breaker::InputKey;
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

/// What a call needs besides the instance; computed once per pool, copied into each lease.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallSettings {
    pub(crate) epoch_tick: Duration,
    pub(crate) fuel: Option<u64>,
    pub(crate) max_input_bytes: u64,
}

/// The extractor a lease came from, as far as the lease needs it (`pool/leasing.rs` implements it).
pub(crate) trait Home: Send + Sync {
    /// The extractor's name.
    fn name(&self) -> &Arc<str>;
    /// Takes back a never-called instance if the extractor's hot list wants it; otherwise
    /// hands it back, to be torn down.
    fn shelve(&self, ready: Ready) -> Option<Ready>;
    /// A call used a hot instance up: the hot list needs a refill.
    fn spent(&self);
}

/// Where dropped leases' instances go to be torn down: tearing a store down (resetting its pool slot)
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
    home: Arc<dyn Home>,
    tier: Tier,
    ready: Option<Ready>,
    settings: CallSettings,
    reaper: Reaper,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("extractor", self.home.name()).field("tier", &self.tier).finish_non_exhaustive()
    }
}

impl Lease {
    pub(crate) fn new(home: Arc<dyn Home>, tier: Tier, ready: Ready, settings: CallSettings, reaper: Reaper) -> Self {
        metrics::counter!(m::WASM_LEASES_TOTAL, "tier" => tier.as_str()).increment(1);
        Lease { home, tier, ready: Some(ready), settings, reaper }
    }

    /// The Drop fallback: shelves the never-called instance, or hands it to the reaper thread
    /// (or drops it here if that thread is gone). False if the lease was already used up.
    fn reap(&mut self) -> bool {
        let Some(ready) = self.ready.take() else { return false };
        if let Some(ready) = self.home.shelve(ready)
            && let Err(std::sync::mpsc::SendError(ready)) = self.reaper.send(ready)
        {
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
        self.home.name()
    }

    /// Extracts one page in this instance, off the async runtime, stopped at `budget` (epoch
    /// deadline) and at the per-call memory cap. The instance is discarded afterwards, whatever
    /// happened (no state carries over between documents; a trapped instance is unusable). The
    /// teardown stays in the call's task, before the document is handed back: measured on two
    /// loaded cores, sending the document first and tearing down after made the job wait
    /// longer (the woken caller then competes with the teardown for a core). A hot lease asks
    /// for its refill after the call, so that instantiation does not compete with the call.
    pub async fn extract(
        self,
        html: String,
        url: String,
        options: riptide_extractor::Options,
        budget: Duration,
    ) -> Result<riptide_extractor::Document, WasmError> {
        self.run(html, url, options, budget).await.0
    }

    /// [`Lease::extract`], plus the key of the input when the call was a component fault (for
    /// the breaker, which counts a page that faults again only once). The key is computed only
    /// then, in the call's task: hashing every page would cost every call for the rare fault.
    pub(crate) async fn run(
        mut self,
        html: String,
        url: String,
        options: riptide_extractor::Options,
        budget: Duration,
    ) -> (Result<riptide_extractor::Document, WasmError>, Option<InputKey>) {
        let Some(ready) = self.ready.take() else { return (Err(WasmError::Closed), None) };
        let (home, settings, hot) = (self.home.clone(), self.settings, self.tier == Tier::Hot);
        // In the task, not after its await: a cancelled job must not leave the hot list short.
        let task = tokio::task::spawn_blocking(move || {
            let result = call(ready, home.name(), &html, &url, &options, budget, &settings);
            if hot {
                home.spent();
            }
            let key = result.as_ref().err().filter(|e| e.is_component_fault()).map(|_| input_key(&html, &options));
            (result, key)
        });
        let (result, key) = match task.await {
            Ok(done) => done,
            Err(e) => (Err(WasmError::Crashed(e.to_string())), None),
        };
        metrics::counter!(m::WASM_CALLS_TOTAL, "outcome" => outcome_label(&result)).increment(1);
        (result, key)
    }

    /// Ends a lease whose instance was never called: it goes back to the extractor's hot list
    /// when that list wants it (the instance is still pristine), else it is torn down here and
    /// the slot returned. Measured on two loaded cores, handing the teardown to the reaper
    /// thread made lease+release slower (it competes for the same cores and the slot comes back
    /// later), so only the `Drop` fallback uses it.
    pub async fn release(mut self) {
        if let Some(ready) = self.ready.take() {
            drop(self.home.shelve(ready));
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.reap() {
            tracing::debug!(extractor = %self.home.name(), tier = self.tier.as_str(), "WASM lease dropped without release; slot returned.");
        }
    }
}

/// Runs one call in `ready`'s store (blocking), then drops it (the teardown).
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

/// The breaker's key of one input: the page and the options (what the guest sees besides the
/// URL). The URL is left out: one page served under many URLs is still one page. SipHash with
/// fixed keys: a collision makes two bad pages count once, which only keeps calls in the sandbox
/// longer, so it need not resist a chosen collision.
fn input_key(html: &str, options: &riptide_extractor::Options) -> InputKey {
    let mut h = std::hash::DefaultHasher::new();
    html.hash(&mut h);
    options.mode.as_str().hash(&mut h);
    options.keep_selectors.hash(&mut h);
    options.drop_selectors.hash(&mut h);
    options.max_input_bytes.hash(&mut h);
    h.finish()
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
