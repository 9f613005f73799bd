//! What happens to the pool, told once: each [`BrowserEvent`] is logged, counted in the metric
//! catalogue and broadcast to subscribers by its one `emit` (the shape of `wasm/events.rs`);
//! also the recycle reasons, the stats snapshot and the pool's metric series at zero.
//!
//! It must not publish to the broker itself: the worker forwards events to `riptide.events`
//! through `ops/` (the pool never touches the broker).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::ops::metrics as m;

use super::error::CrashKind;

/// Why a browser was replaced. A closed set: it labels `riptide_browser_recycles_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecycleReason {
    /// It rendered `pages_per_browser` pages.
    Pages,
    /// It lived `max_browser_age_secs`.
    Age,
    /// Its PSS went over `soft_limit_bytes`; it was drained, then replaced.
    SoftLimit,
    /// Its PSS went over `hard_limit_bytes`; it was killed at once.
    HardLimit,
    /// It or one of its renderers crashed.
    Crash,
    /// A CDP call to it timed out or a tab could not be cleaned up.
    Unresponsive,
}

impl RecycleReason {
    /// Every reason, in label order.
    pub const ALL: [RecycleReason; 6] = [
        RecycleReason::Pages,
        RecycleReason::Age,
        RecycleReason::SoftLimit,
        RecycleReason::HardLimit,
        RecycleReason::Crash,
        RecycleReason::Unresponsive,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RecycleReason::Pages => "pages",
            RecycleReason::Age => "age",
            RecycleReason::SoftLimit => "soft_limit",
            RecycleReason::HardLimit => "hard_limit",
            RecycleReason::Crash => "crash",
            RecycleReason::Unresponsive => "unresponsive",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Something that happened to a pooled browser. `slot` is the pool position (0..max_browsers),
/// a bounded label; `pid` identifies the process for operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum BrowserEvent {
    /// A browser started and answers CDP.
    Launched {
        /// Pool position.
        slot: usize,
        /// Browser process id.
        pid: u32,
    },
    /// A browser was taken out of service and its process tree killed and reaped.
    Recycled {
        /// Pool position.
        slot: usize,
        /// Browser process id.
        pid: u32,
        /// Why.
        reason: RecycleReason,
        /// Pages it rendered.
        pages: u64,
    },
    /// A browser went over the soft limit: no new leases, recycled when idle.
    SoftLimit {
        /// Pool position.
        slot: usize,
        /// Browser process id.
        pid: u32,
        /// Measured PSS of its process tree, bytes.
        pss_bytes: u64,
    },
    /// A browser went over the hard limit and was killed; its jobs got a retryable error.
    Evicted {
        /// Pool position.
        slot: usize,
        /// Browser process id.
        pid: u32,
        /// Measured PSS of its process tree, bytes.
        pss_bytes: u64,
    },
    /// A browser or a renderer crashed.
    Crashed {
        /// Pool position.
        slot: usize,
        /// Browser process id.
        pid: u32,
        /// Which process died.
        kind: CrashKind,
    },
}

impl BrowserEvent {
    /// The routing key on `riptide.events` (README, "Operations").
    pub fn routing_key(&self) -> &'static str {
        match self {
            BrowserEvent::Launched { .. } => "browser.launched",
            BrowserEvent::Recycled { .. } => "browser.recycled",
            BrowserEvent::SoftLimit { .. } => "browser.memory.soft_limit",
            BrowserEvent::Evicted { .. } => "browser.memory.evicted",
            BrowserEvent::Crashed { .. } => "browser.crashed",
        }
    }

    /// Logs, counts and broadcasts the event (nobody listening is fine: events may be dropped
    /// when nobody listens).
    pub(crate) fn emit(self, tx: &broadcast::Sender<BrowserEvent>) {
        match &self {
            BrowserEvent::Launched { slot, pid } => {
                tracing::info!(slot, pid, "Browser launched.");
                metrics::counter!(m::BROWSER_LAUNCHES_TOTAL).increment(1);
            }
            BrowserEvent::Recycled { slot, pid, reason, pages } => {
                tracing::info!(slot, pid, reason = reason.as_str(), pages, "Browser recycled.");
                metrics::counter!(m::BROWSER_RECYCLES_TOTAL, "reason" => reason.as_str()).increment(1);
            }
            BrowserEvent::SoftLimit { slot, pid, pss_bytes } => {
                tracing::info!(slot, pid, pss_bytes, "Browser over its soft memory limit; draining.");
            }
            BrowserEvent::Evicted { slot, pid, pss_bytes } => {
                // Counted as a `hard_limit` recycle, which always follows.
                tracing::warn!(slot, pid, pss_bytes, "Browser over its hard memory limit; killed.");
            }
            BrowserEvent::Crashed { slot, pid, kind } => {
                tracing::warn!(slot, pid, kind = kind.as_str(), "Browser crash.");
                metrics::counter!(m::BROWSER_CRASHES_TOTAL, "kind" => kind.as_str()).increment(1);
            }
        }
        let _ = tx.send(self);
    }
}

/// Registers every series of the browser pool with its closed label sets at zero, so
/// dashboards and alerts see them before the pool's first render (the pool starts lazily).
/// Idempotent: counters are incremented by 0 and gauges by 0, so calling it again (at each
/// pool start) never resets a count. Call it once at worker startup, after the recorder is
/// installed (beside `ops::metrics::initialize`).
pub fn initialize_metrics() {
    metrics::counter!(m::BROWSER_LAUNCHES_TOTAL).increment(0);
    for reason in RecycleReason::ALL {
        metrics::counter!(m::BROWSER_RECYCLES_TOTAL, "reason" => reason.as_str()).increment(0);
    }
    for kind in [CrashKind::Browser, CrashKind::Renderer] {
        metrics::counter!(m::BROWSER_CRASHES_TOTAL, "kind" => kind.as_str()).increment(0);
    }
    for outcome in ["ok", "failed"] {
        metrics::counter!(m::BROWSER_PAGES_TOTAL, "outcome" => outcome).increment(0);
    }
    metrics::gauge!(m::BROWSER_ALIVE).increment(0.0);
    metrics::gauge!(m::BROWSER_LEASES).increment(0.0);
    metrics::gauge!(m::BROWSER_WARM_CONTEXTS).increment(0.0);
}

/// One live browser in a [`BrowserPoolStats`] snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrowserStats {
    /// Pool position.
    pub slot: usize,
    /// Browser process id.
    pub pid: u32,
    /// Jobs it serves now.
    pub leases: usize,
    /// Warm contexts ready on it.
    pub warm_contexts: usize,
    /// Pages it rendered.
    pub pages: u64,
    /// Time since launch.
    pub age: Duration,
    /// Last measured PSS of its process tree, bytes (0 before the first measurement).
    pub pss_bytes: u64,
    /// Last measured JS heap in use over its leased tabs, bytes.
    pub js_heap_bytes: u64,
    /// Set when it takes no new leases and waits to be recycled.
    pub draining: Option<RecycleReason>,
}

/// A snapshot of the pool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BrowserPoolStats {
    /// Browsers alive (including draining ones).
    pub browsers_alive: usize,
    /// Browsers being launched.
    pub browsers_launching: usize,
    /// Jobs holding a tab now.
    pub leases: usize,
    /// Warm contexts ready across browsers.
    pub warm_contexts: usize,
    /// Per live browser.
    pub browsers: Vec<BrowserStats>,
    /// Browsers launched since start.
    pub launches: u64,
    /// Recycles since start, by reason (index = `RecycleReason as usize`, see `recycles_for`).
    pub recycles: [u64; 6],
    /// Browser crashes since start.
    pub browser_crashes: u64,
    /// Renderer crashes since start.
    pub renderer_crashes: u64,
    /// Renders that returned a page.
    pub pages_ok: u64,
    /// Renders that failed.
    pub pages_failed: u64,
    /// Highest PSS of one browser's tree measured since start, bytes.
    pub peak_browser_pss_bytes: u64,
    /// Highest sum of PSS over all browsers measured at one time since start, bytes.
    pub peak_total_pss_bytes: u64,
    /// Whether Chromium runs with its sandbox (`browser.sandbox`).
    pub sandbox: bool,
    /// The user id Chromium runs as (`browser.run_as`).
    pub browser_uid: u32,
}

impl BrowserPoolStats {
    /// Recycles since start for one reason.
    pub fn recycles_for(&self, reason: RecycleReason) -> u64 {
        self.recycles.get(reason.index()).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_with_a_tag_and_route_by_kind() {
        let event = BrowserEvent::Recycled { slot: 1, pid: 42, reason: RecycleReason::SoftLimit, pages: 7 };
        let json = serde_json::to_value(&event).ok();
        let expected =
            serde_json::json!({"event": "recycled", "slot": 1, "pid": 42, "reason": "soft_limit", "pages": 7});
        assert_eq!(json, Some(expected));
        assert_eq!(event.routing_key(), "browser.recycled");
        let evicted = BrowserEvent::Evicted { slot: 0, pid: 1, pss_bytes: 2 };
        assert_eq!(evicted.routing_key(), "browser.memory.evicted");
    }

    #[test]
    fn recycle_reasons_index_their_counters() {
        for (index, reason) in RecycleReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), index);
        }
        let stats = BrowserPoolStats { recycles: [0, 0, 0, 3, 0, 0], ..BrowserPoolStats::default() };
        assert_eq!(stats.recycles_for(RecycleReason::HardLimit), 3);
    }
}
