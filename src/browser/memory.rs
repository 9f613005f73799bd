//! Memory supervision of the pool's browsers: measuring each process tree (PSS from /proc,
//! read on a blocking thread) and judging a measurement against the soft and hard limits.
//!
//! It owns the measurement, the verdict, the peaks and the memory gauges. It must not change a
//! slot, drain, recycle or kill a browser: `pool.rs` acts on the verdict; `instance.rs` speaks
//! CDP (the JS heap) and `process.rs` reads /proc.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::ops::metrics as names;

use super::config::BrowserConfig;
use super::instance::Instance;
use super::process;

/// What one PSS measurement means for its browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Over `hard_limit_bytes`: kill it now; its jobs fail with a retryable error.
    Evict,
    /// Over `soft_limit_bytes`: no new leases, recycle when idle.
    SoftLimit,
    /// Within both limits.
    Within,
}

/// Judges one browser's PSS, in bytes, against the configured limits.
pub(crate) fn judge(pss_bytes: u64, config: &BrowserConfig) -> Verdict {
    if pss_bytes > config.hard_limit_bytes {
        Verdict::Evict
    } else if pss_bytes > config.soft_limit_bytes {
        Verdict::SoftLimit
    } else {
        Verdict::Within
    }
}

/// Highest measurements since the pool started, for the stats.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Peaks {
    /// Highest PSS of one browser's tree, bytes.
    pub browser: u64,
    /// Highest sum over all browsers measured in one pass, bytes.
    pub total: u64,
}

/// PSS of each browser's process tree, in the order of `live`, in bytes. The /proc walks run
/// on a blocking thread (a scan of every process must not hold an async worker); zombie
/// helpers re-parented to this process are reaped on the way.
pub(crate) async fn measure_pss(live: &[Arc<Instance>]) -> Vec<u64> {
    let roots: Vec<(u32, PathBuf)> = live.iter().map(|instance| (instance.pid, instance.profile_dir.clone())).collect();
    let owned: HashSet<u32> = roots.iter().map(|(pid, _)| *pid).collect();
    tokio::task::spawn_blocking(move || {
        process::sweep_zombies(&owned);
        roots.iter().map(|(pid, dir)| process::pss_bytes(&process::process_tree(*pid, dir))).collect::<Vec<u64>>()
    })
    .await
    .unwrap_or_default()
}

/// How long one JS heap query may take: a tab stuck in a script answers late or never, and
/// must not delay the next PSS pass.
pub(crate) fn heap_timeout(config: &BrowserConfig) -> Duration {
    Duration::from_millis(config.memory_poll_ms).min(config.cdp_timeout())
}

/// Sets the PSS gauge of a slot (0 when its browser is gone).
pub(crate) fn publish_pss(slot: usize, pss_bytes: u64) {
    metrics::gauge!(names::BROWSER_PSS_BYTES, "slot" => slot.to_string()).set(pss_bytes as f64);
}

/// Sets the JS heap gauge of a slot.
pub(crate) fn publish_heap(slot: usize, heap_bytes: u64) {
    metrics::gauge!(names::BROWSER_JS_HEAP_BYTES, "slot" => slot.to_string()).set(heap_bytes as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_exclusive_and_hard_wins() {
        let config = BrowserConfig { soft_limit_bytes: 10, hard_limit_bytes: 20, ..BrowserConfig::default() };
        assert_eq!(judge(10, &config), Verdict::Within);
        assert_eq!(judge(11, &config), Verdict::SoftLimit);
        assert_eq!(judge(20, &config), Verdict::SoftLimit);
        assert_eq!(judge(21, &config), Verdict::Evict);
    }
}
