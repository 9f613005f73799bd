//! What happens to the pool, told once: each [`WasmEvent`] is logged, counted in the metric
//! catalogue and broadcast to subscribers (the worker forwards them to `riptide.events`). It must
//! not publish to the broker itself (the pools know no broker).

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::breaker::BreakerState;
use super::tier::Tier;
use crate::ops::metrics as m;

/// A notable change in the pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WasmEvent {
    /// An extractor moved to a hotter tier (more demand).
    Promoted {
        /// The extractor.
        extractor: String,
        /// Its tier before.
        from: Tier,
        /// Its tier now.
        to: Tier,
    },
    /// An extractor moved to a colder tier (less demand, or the memory budget).
    Demoted {
        /// The extractor.
        extractor: String,
        /// Its tier before.
        from: Tier,
        /// Its tier now.
        to: Tier,
    },
    /// Idle hot instances were dropped to make room (a lease needed the slot, or the plan
    /// shrank the hot tier).
    Evicted {
        /// The extractor whose instances were dropped.
        extractor: String,
        /// How many.
        instances: u32,
    },
    /// The breaker changed state.
    Breaker {
        /// The extractor.
        extractor: String,
        /// The new state.
        state: BreakerState,
        /// Consecutive component failures at the change.
        failures: u32,
    },
}

impl WasmEvent {
    /// Routing key on `riptide.events`.
    pub fn routing_key(&self) -> &'static str {
        match self {
            WasmEvent::Promoted { .. } => "wasm.tier.promoted",
            WasmEvent::Demoted { .. } => "wasm.tier.demoted",
            WasmEvent::Evicted { .. } => "wasm.instance.evicted",
            WasmEvent::Breaker { state: BreakerState::Open, .. } => "wasm.breaker.opened",
            WasmEvent::Breaker { state: BreakerState::HalfOpen, .. } => "wasm.breaker.half_open",
            WasmEvent::Breaker { state: BreakerState::Closed, .. } => "wasm.breaker.closed",
        }
    }

    /// Logs, counts and broadcasts the event (nobody listening is fine).
    pub(crate) fn emit(self, tx: &broadcast::Sender<WasmEvent>) {
        match &self {
            WasmEvent::Promoted { extractor, from, to } => {
                tracing::info!(extractor, from = from.as_str(), to = to.as_str(), "WASM extractor promoted.");
                metrics::counter!(m::WASM_PROMOTIONS_TOTAL, "to" => to.as_str()).increment(1);
            }
            WasmEvent::Demoted { extractor, from, to } => {
                tracing::info!(extractor, from = from.as_str(), to = to.as_str(), "WASM extractor demoted.");
                metrics::counter!(m::WASM_DEMOTIONS_TOTAL, "to" => to.as_str()).increment(1);
            }
            WasmEvent::Evicted { extractor, instances } => {
                tracing::debug!(extractor, instances, "Idle WASM instances evicted.");
                metrics::counter!(m::WASM_EVICTIONS_TOTAL).increment(u64::from(*instances));
            }
            WasmEvent::Breaker { extractor, state, failures } => {
                if *state == BreakerState::Open {
                    tracing::warn!(extractor, failures, "WASM extractor breaker opened; using the native fallback.");
                } else {
                    tracing::info!(extractor, state = state.as_str(), "WASM extractor breaker changed state.");
                }
                metrics::gauge!(m::WASM_BREAKER_STATE, "extractor" => extractor.clone()).set(state.gauge());
            }
        }
        let _ = tx.send(self);
    }
}
