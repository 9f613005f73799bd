//! The pool's configuration: one typed section (`[wasm]` in the worker's config tree), every field
//! with its unit and what happens at the limit. It owns defaults and validation only; it must not
//! build pools or touch the disk (that is `engine.rs` and `artifact.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::tier::Tier;

/// Name of the default extractor (the embedded component, or `default_component`).
pub const DEFAULT_EXTRACTOR: &str = "article";

/// How the tiered WASM extractor pool is sized and bounded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WasmConfig {
    /// The `article` component (a `.wasm` file). Unset: the component embedded in the binary at
    /// build time (built from `extractor-component/guest` by `build.rs`).
    pub default_component: Option<PathBuf>,
    /// A directory of further named extractors: each `NAME.wasm` in it is loaded as extractor
    /// `NAME` (a job picks one by name). Unset or missing: only `article`. A file that fails
    /// validation fails startup, naming the file and what differs.
    pub components_dir: Option<PathBuf>,
    /// Where compiled (AOT) artifacts are kept between runs, keyed by component hash and engine
    /// settings. Unset: `$XDG_CACHE_HOME/riptide/wasm` or `~/.cache/riptide/wasm`, else
    /// `/tmp/riptide-wasm-cache`. Created private (0700); `*.cwasm` files there that riptide's
    /// manifest does not vouch for are deleted. Not riptide's own (another owner) or read-only:
    /// components are compiled in memory at start instead (logged); the worker still runs.
    pub aot_cache_dir: Option<PathBuf>,
    /// Live instances at once (hot idle plus leased), across all extractors: the concurrency
    /// ceiling and the pooling allocator's size. A lease beyond it waits up to `lease_timeout_ms`.
    pub slots: u32,
    /// Most pre-instantiated (hot) instances kept idle for one extractor.
    pub hot_max_per_extractor: u32,
    /// Most hot instances kept idle over all extractors; the rest of `slots` is for leases.
    pub hot_max_total: u32,
    /// Estimated memory the pool may keep for idle tiers (compiled code of warm extractors plus
    /// resident memory of hot instances), bytes. Over it, the least demanded are demoted.
    pub memory_budget_bytes: u64,
    /// Linear memory one call may grow to, bytes; growing past it stops the call with a
    /// memory-cap error (the input's fault: permanent).
    pub call_memory_cap_bytes: u64,
    /// Linear memory kept resident (not returned to the OS) per pool slot, bytes: fresh instances
    /// then skip page faults up to this size. RSS cost: `slots` x this.
    pub keep_resident_bytes: u64,
    /// Epoch tick, milliseconds: the resolution of call deadlines.
    pub epoch_tick_ms: u64,
    /// Fuel (roughly wasm instructions) per call; unset: no fuel metering (+12-24 % speed).
    /// Out of fuel stops the call with a timeout error.
    pub fuel_per_call: Option<u64>,
    /// How long a lease waits for a free slot before failing with `PoolExhausted`, milliseconds.
    pub lease_timeout_ms: u64,
    /// How often demand is measured and tiers rebalanced and refilled, milliseconds.
    pub rebalance_interval_ms: u64,
    /// Weight of the newest interval in the moving average of leases per interval, in (0, 1].
    pub demand_smoothing: f64,
    /// Average leases per interval at or above which an extractor is kept hot.
    pub hot_demand: f64,
    /// Average leases per interval at or above which an extractor is kept warm (below: cold).
    pub warm_demand: f64,
    /// Consecutive component faults (traps, `internal` errors, crashes), on this many *distinct*
    /// pages, before an extractor's breaker opens. A page that faults again counts once: its job
    /// fails permanently with its reason, and it says nothing more about the component.
    pub breaker_failure_threshold: u32,
    /// How long an open breaker stays open before one probe is let through, milliseconds.
    pub breaker_open_ms: u64,
    /// While a breaker is open, pages up to this size (bytes) are extracted by the native core;
    /// larger ones fail with a retryable `BreakerOpen`.
    pub native_fallback_max_input_bytes: usize,
    /// Pages longer than this (bytes) are refused by the extractor with `too-large` (permanent).
    pub max_input_bytes: u64,
    /// Extractors held at a fixed tier whatever their demand (`NAME = "hot" | "warm" | "cold"`);
    /// still within `hot_max_total`. For known hot paths, rarely used extractors, and benchmarks.
    pub pinned: BTreeMap<String, Tier>,
}

impl Default for WasmConfig {
    fn default() -> Self {
        WasmConfig {
            default_component: None,
            components_dir: None,
            aot_cache_dir: None,
            slots: 16,
            hot_max_per_extractor: 4,
            hot_max_total: 8,
            memory_budget_bytes: 256 << 20,
            call_memory_cap_bytes: 128 << 20,
            keep_resident_bytes: 8 << 20,
            epoch_tick_ms: 10,
            fuel_per_call: None,
            lease_timeout_ms: 5_000,
            rebalance_interval_ms: 1_000,
            demand_smoothing: 0.3,
            hot_demand: 1.0,
            warm_demand: 0.05,
            breaker_failure_threshold: 5,
            breaker_open_ms: 30_000,
            native_fallback_max_input_bytes: 2 << 20,
            max_input_bytes: 10 << 20,
            pinned: BTreeMap::new(),
        }
    }
}

impl WasmConfig {
    /// Every problem with the values, one line each (empty when usable).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut need = |ok: bool, msg: &str| {
            if !ok {
                out.push(format!("wasm.{msg}"));
            }
        };
        need(self.slots >= 1, "slots must be at least 1");
        need(self.hot_max_total < self.slots, "hot_max_total must be below slots (leases need free slots)");
        need(self.epoch_tick_ms >= 1, "epoch_tick_ms must be at least 1");
        need(self.call_memory_cap_bytes >= 1 << 20, "call_memory_cap_bytes must be at least 1 MiB");
        need(self.call_memory_cap_bytes <= 4 << 30, "call_memory_cap_bytes must be at most 4 GiB");
        need(self.demand_smoothing > 0.0 && self.demand_smoothing <= 1.0, "demand_smoothing must be in (0, 1]");
        need(self.warm_demand <= self.hot_demand, "warm_demand must not exceed hot_demand");
        need(self.breaker_failure_threshold >= 1, "breaker_failure_threshold must be at least 1");
        need(self.rebalance_interval_ms >= 10, "rebalance_interval_ms must be at least 10");
        need(self.fuel_per_call != Some(0), "fuel_per_call must be positive when set");
        out
    }

    /// The epoch tick as a duration.
    pub fn epoch_tick(&self) -> Duration {
        Duration::from_millis(self.epoch_tick_ms.max(1))
    }

    /// The bounded wait for a slot.
    pub fn lease_timeout(&self) -> Duration {
        Duration::from_millis(self.lease_timeout_ms)
    }

    /// The artifact directory, defaulted as documented on the field.
    pub fn cache_dir(&self) -> PathBuf {
        if let Some(dir) = &self.aot_cache_dir {
            return dir.clone();
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
        match base {
            Some(base) => base.join("riptide").join("wasm"),
            None => std::env::temp_dir().join("riptide-wasm-cache"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(WasmConfig::default().problems().is_empty());
    }

    #[test]
    fn every_problem_is_listed() {
        let config = WasmConfig { slots: 0, hot_max_total: 0, demand_smoothing: 0.0, ..WasmConfig::default() };
        assert_eq!(config.problems().len(), 3, "{:?}", config.problems());
    }
}
