//! The metric catalogue: every metric name riptide emits, described once at startup.
//!
//! No other module spells a metric name. Labels are closed sets (`outcome`, `reason`,
//! `lane`, `stage`), never URLs, hosts, job ids or error text.

/// Jobs finished, by `outcome` (ok, cached, retried, dead, handed_back) and `reason`.
pub const JOBS_TOTAL: &str = "riptide_jobs_total";
/// Retries scheduled, by `reason`.
pub const RETRIES_TOTAL: &str = "riptide_retries_total";
/// Messages dead-lettered by the worker, by `reason`.
pub const DEAD_LETTERS_TOTAL: &str = "riptide_dead_letters_total";
/// Stage durations in seconds, by `stage` (queue_wait, fetch, extract, store).
pub const STAGE_DURATION_SECONDS: &str = "riptide_stage_duration_seconds";
/// Deliveries that could not be settled (publish, ack or nack failed), by `error_type`.
pub const SETTLE_FAILURES_TOTAL: &str = "riptide_settle_failures_total";
/// Times a job had to wait for Redis to come back.
pub const STORE_WAITS_TOTAL: &str = "riptide_store_waits_total";
/// Broker connections opened after the first (reconnects).
pub const BROKER_RECONNECTS_TOTAL: &str = "riptide_broker_reconnects_total";
/// Jobs in flight in this worker.
pub const JOBS_IN_FLIGHT: &str = "riptide_jobs_in_flight";

/// Registers the description of every metric, so an exporter lists them from the start.
pub fn describe() {
    metrics::describe_counter!(JOBS_TOTAL, "Jobs finished, by outcome and reason.");
    metrics::describe_counter!(RETRIES_TOTAL, "Retries scheduled, by reason.");
    metrics::describe_counter!(DEAD_LETTERS_TOTAL, "Messages dead-lettered by the worker, by reason.");
    metrics::describe_histogram!(STAGE_DURATION_SECONDS, metrics::Unit::Seconds, "Time spent per pipeline stage.");
    metrics::describe_counter!(SETTLE_FAILURES_TOTAL, "Deliveries whose publish, ack or nack failed.");
    metrics::describe_counter!(STORE_WAITS_TOTAL, "Times a job waited for Redis to come back.");
    metrics::describe_counter!(BROKER_RECONNECTS_TOTAL, "Broker reconnections.");
    metrics::describe_gauge!(JOBS_IN_FLIGHT, "Jobs being processed by this worker.");
}
