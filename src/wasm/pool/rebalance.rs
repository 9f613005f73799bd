//! Rebalancing: the background task that measures demand every `rebalance_interval_ms`, asks
//! `tier::plan` where each extractor belongs, moves them (loading code when leaving cold,
//! dropping it when going cold, evicting idle instances above a shrunk hot target) and tops hot
//! lists up with free slots. It must not lease (`leasing.rs`) nor decide placement itself
//! (`tier.rs` plans).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::handle::{Entry, ExtractorPool, Inner, lock};
use crate::wasm::engine;
use crate::wasm::events::WasmEvent;
use crate::wasm::lease::Ready;
use crate::wasm::tier::{self, Candidate, Limits, Tier};

impl ExtractorPool {
    /// Runs one demand measurement and rebalance now (the background task does it every
    /// `rebalance_interval_ms`); for tests and tools.
    pub async fn rebalance_now(&self) {
        let inner = self.inner.clone();
        let _ = tokio::task::spawn_blocking(move || inner.rebalance()).await;
    }
}

/// Measures demand, rebalances and refills every interval, and refills after hot instances are
/// used up. Holds the pool weakly: when every handle is gone without `close`, it ends at its
/// next wake-up (and dropping the pool stops the epoch ticker).
pub(super) async fn background(inner: Weak<Inner>, stop: CancellationToken, refill: Arc<Notify>) {
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
    fn rebalance(&self) {
        self.rebalance_with(true);
    }

    /// Blocking. Folds in the interval's demand (when `measure`), plans, moves extractors
    /// between tiers, then refills hot tiers.
    pub(super) fn rebalance_with(&self, measure: bool) {
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
    pub(super) fn refill_all(&self) {
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
}
