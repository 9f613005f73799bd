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

/// Browsers alive in the pool (including draining ones).
pub const BROWSER_ALIVE: &str = "riptide_browser_alive";
/// Browser tabs leased to jobs now.
pub const BROWSER_LEASES: &str = "riptide_browser_leases";
/// Warm incognito contexts ready across browsers.
pub const BROWSER_WARM_CONTEXTS: &str = "riptide_browser_warm_contexts";
/// PSS of one browser's process tree in bytes, by `slot` (0..max_browsers).
pub const BROWSER_PSS_BYTES: &str = "riptide_browser_pss_bytes";
/// JS heap in use over one browser's leased tabs in bytes, by `slot`.
pub const BROWSER_JS_HEAP_BYTES: &str = "riptide_browser_js_heap_bytes";
/// Browsers launched.
pub const BROWSER_LAUNCHES_TOTAL: &str = "riptide_browser_launches_total";
/// Browsers recycled, by `reason` (pages, age, soft_limit, hard_limit, crash, unresponsive).
pub const BROWSER_RECYCLES_TOTAL: &str = "riptide_browser_recycles_total";
/// Crashes, by `kind` (browser, renderer).
pub const BROWSER_CRASHES_TOTAL: &str = "riptide_browser_crashes_total";
/// Renders finished, by `outcome` (ok, failed); its rate is pages per second.
pub const BROWSER_PAGES_TOTAL: &str = "riptide_browser_pages_total";
/// Render duration in seconds, lease to captured DOM (successful renders).
pub const BROWSER_RENDER_SECONDS: &str = "riptide_browser_render_seconds";

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
    metrics::describe_gauge!(BROWSER_ALIVE, "Browsers alive in the pool.");
    metrics::describe_gauge!(BROWSER_LEASES, "Browser tabs leased to jobs.");
    metrics::describe_gauge!(BROWSER_WARM_CONTEXTS, "Warm incognito contexts ready.");
    metrics::describe_gauge!(BROWSER_PSS_BYTES, metrics::Unit::Bytes, "PSS of a browser's process tree, by slot.");
    metrics::describe_gauge!(
        BROWSER_JS_HEAP_BYTES,
        metrics::Unit::Bytes,
        "JS heap in use over a browser's leased tabs, by slot."
    );
    metrics::describe_counter!(BROWSER_LAUNCHES_TOTAL, "Browsers launched.");
    metrics::describe_counter!(BROWSER_RECYCLES_TOTAL, "Browsers recycled, by reason.");
    metrics::describe_counter!(BROWSER_CRASHES_TOTAL, "Browser and renderer crashes, by kind.");
    metrics::describe_counter!(BROWSER_PAGES_TOTAL, "Renders finished, by outcome.");
    metrics::describe_histogram!(
        BROWSER_RENDER_SECONDS,
        metrics::Unit::Seconds,
        "Render time from lease to captured DOM."
    );
}
