//! Routing one extraction: through the extractor's circuit breaker to a leased instance, or,
//! while the breaker is open, to the native core for pages up to
//! `native_fallback_max_input_bytes`; each outcome fed back to the breaker, a component fault
//! with the key of its page (so one bad page cannot open it alone). It owns
//! [`Extraction`] and [`ExtractedBy`]; it must not pick instances (`leasing.rs`) and holds no breaker
//! logic of its own (`breaker.rs`).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::handle::{Entry, ExtractorPool, Inner, lock};
use crate::native::NativeError;
use crate::ops::metrics as m;
use crate::wasm::breaker::{InputKey, Outcome, Route};
use crate::wasm::error::WasmError;
use crate::wasm::events::WasmEvent;
use crate::wasm::tier::Tier;

/// Which engine produced a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExtractedBy {
    /// The WASM component.
    Wasm,
    /// The native core, because the extractor's breaker was open.
    NativeFallback,
}

impl ExtractedBy {
    /// `wasm` or `native-fallback`, as results report it.
    pub fn as_str(self) -> &'static str {
        match self {
            ExtractedBy::Wasm => "wasm",
            ExtractedBy::NativeFallback => "native-fallback",
        }
    }
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
    pub engine: ExtractedBy,
}

impl ExtractorPool {
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
                self.inner.record(&entry, route, Err(&e), None);
                return Err(e);
            }
        };
        let tier = lease.tier();
        let (result, input) = lease.run(html, url, options, budget).await;
        self.inner.record(&entry, route, result.as_ref().map(|_| ()), input);
        Ok(Extraction { document: result?, tier, engine: ExtractedBy::Wasm })
    }
}

impl Inner {
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

    /// Feeds a call's outcome to the breaker, with the key of its input when it was a component
    /// fault (a page that faults again counts once). Failures before the component was reached
    /// that are not its fault (no slot, closed) only release a probe.
    fn record(&self, entry: &Entry, route: Route, result: Result<(), &WasmError>, input: Option<InputKey>) {
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
            let outcome = if fault { Outcome::Fault(input) } else { Outcome::Healthy };
            (state.breaker.record(route, outcome, Instant::now()), state.breaker.failures())
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
        Ok(Extraction { document, tier, engine: ExtractedBy::NativeFallback })
    }
}
