//! The Prometheus recorder: installed once per process, rendered by the ops server.
//!
//! Histogram buckets are set here for every `_seconds` metric, so latency histograms are
//! real histograms, not summaries. It records; it does not serve (see `server.rs`).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets of every `_seconds` histogram: 1 ms to 60 s, roughly ×2.5 apart, covering a
/// loopback fetch (sub-millisecond) up to a slow headless render.
const SECONDS_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global Prometheus recorder (once; later calls return the same handle) and
/// describes every metric of the catalogue.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), SECONDS_BUCKETS)?
        .build_recorder();
    let handle = recorder.handle();
    // Another thread may have won the race; its recorder stays, ours is dropped.
    if metrics::set_global_recorder(recorder).is_ok() {
        let _ = HANDLE.set(handle.clone());
        super::metrics::describe();
    }
    Ok(HANDLE.get().cloned().unwrap_or(handle))
}
