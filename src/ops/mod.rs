//! Operations: the metric catalogue (`metrics.rs`). The Prometheus endpoint, health checks and
//! events exchange publishing grow here.
//!
//! It reports what happens; it must not decide anything about jobs.

pub mod metrics;
