//! The pool's state as numbers: [`WasmPoolStats`] for `riptide stats`, and the gauges published
//! from it after each rebalance or refill. Read-only: it must not change any state.

use std::sync::atomic::Ordering;

use serde::Serialize;

use super::handle::{ExtractorPool, Inner, lock};
use crate::ops::metrics as m;
use crate::wasm::artifact::ArtifactOutcome;
use crate::wasm::breaker::BreakerState;
use crate::wasm::tier::Tier;

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
    /// Artifacts refused at start or at a load (corrupt, truncated, foreign, not riptide's own).
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

impl ExtractorPool {
    /// The pool's state now.
    pub fn stats(&self) -> WasmPoolStats {
        self.inner.stats()
    }
}

impl Inner {
    pub(super) fn publish_gauges(&self) {
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

    pub(super) fn stats(&self) -> WasmPoolStats {
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
            artifacts_rejected: self.artifacts.refused() as u64,
            extractors,
        }
    }
}
