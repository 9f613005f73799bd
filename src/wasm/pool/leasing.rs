//! Leasing: a lease of one extractor is a pop from its hot list, else a slot (free, freed by
//! evicting another extractor's idle hot instance, or waited for up to `lease_timeout_ms`) and
//! an instantiation from its linked code (warm) or from its artifact (cold). Also the [`Home`]
//! a lease returns its never-called instance to. It must not change tiers (`rebalance.rs`) or
//! route through the breaker (`routing.rs`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::handle::{Entry, ExtractorPool, Inner, lock, tier_index};
use crate::wasm::engine;
use crate::wasm::error::WasmError;
use crate::wasm::events::WasmEvent;
use crate::wasm::lease::{Home, Lease, Ready};
use crate::wasm::tier::Tier;

impl ExtractorPool {
    /// Leases an instance of `extractor`: a pop when hot, an instantiation when warm, a load
    /// from the artifact when cold. Waits up to `lease_timeout_ms` for a free slot.
    pub async fn lease(&self, extractor: &str) -> Result<Lease, WasmError> {
        let entry = self.inner.entry(extractor)?;
        self.inner.lease(&entry).await
    }
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

impl Inner {
    pub(super) async fn lease(self: &Arc<Self>, entry: &Arc<Entry>) -> Result<Lease, WasmError> {
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
}
