//! Operations: the metric catalogue (`metrics.rs`), the Prometheus recorder (`exporter.rs`),
//! readiness flags (`health.rs`), the HTTP server for `/metrics`, `/healthz`, `/readyz`
//! (`server.rs`) and the broker/Redis poller that keeps depth gauges and the worker's
//! heartbeat current (`poller.rs`).
//!
//! It reports what happens; it must not decide anything about jobs.

pub mod exporter;
pub mod health;
pub mod metrics;
pub mod poller;
pub mod server;
