//! The metric catalogue: every metric name riptide emits, described once at startup.
//!
//! No other module spells a metric name. Labels are closed sets (`outcome`, `reason`,
//! `lane`, `stage`), never URLs, hosts, job ids or error text.

use crate::failure::FailureReason;
use crate::job::Outcome;

/// Deliveries settled, by `outcome` (ok, cached, failed as in the result; handed_back) and `reason`.
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
/// Messages ready in a queue, polled from the broker, by `queue` (jobs, jobs_high, retry, dlq, results).
pub const QUEUE_DEPTH: &str = "riptide_queue_depth";
/// Consumers of a queue, polled from the broker, by `queue`.
pub const QUEUE_CONSUMERS: &str = "riptide_queue_consumers";
/// 1 while this worker holds a broker connection, else 0.
pub const BROKER_CONNECTED: &str = "riptide_broker_connected";
/// 1 while Redis answers PING, else 0.
pub const REDIS_CONNECTED: &str = "riptide_redis_connected";
/// Jobs consumed from the broker, by `lane` (high, normal).
pub const DELIVERIES_TOTAL: &str = "riptide_deliveries_total";

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

/// WASM leases served, by `tier` (hot, warm, cold).
pub const WASM_LEASES_TOTAL: &str = "riptide_wasm_leases_total";
/// Extractors in each tier, by `tier`.
pub const WASM_EXTRACTORS: &str = "riptide_wasm_extractors";
/// Idle pre-instantiated (hot) instances, by `extractor` (configured names: a closed set).
pub const WASM_HOT_INSTANCES: &str = "riptide_wasm_hot_instances";
/// Instance slots in use (hot idle plus leased) out of `wasm.slots`.
pub const WASM_SLOTS_IN_USE: &str = "riptide_wasm_slots_in_use";
/// Estimated memory held by warm code and hot instances, bytes.
pub const WASM_TIER_MEMORY_BYTES: &str = "riptide_wasm_tier_memory_bytes";
/// Tier promotions, by `to` (warm, hot).
pub const WASM_PROMOTIONS_TOTAL: &str = "riptide_wasm_promotions_total";
/// Tier demotions, by `to` (warm, cold).
pub const WASM_DEMOTIONS_TOTAL: &str = "riptide_wasm_demotions_total";
/// Idle hot instances dropped to make room.
pub const WASM_EVICTIONS_TOTAL: &str = "riptide_wasm_evictions_total";
/// Breaker state per `extractor`: 0 closed, 1 half-open, 2 open.
pub const WASM_BREAKER_STATE: &str = "riptide_wasm_breaker_state";
/// Extraction calls in a component, by `outcome` (ok, extractor_error, timeout, memory_cap, trap).
pub const WASM_CALLS_TOTAL: &str = "riptide_wasm_calls_total";
/// Pages extracted by the native fallback while a breaker was open.
pub const WASM_FALLBACKS_TOTAL: &str = "riptide_wasm_fallbacks_total";
/// Component loads, by `outcome` (loaded from an artifact, compiled, rebuilt).
pub const WASM_ARTIFACTS_TOTAL: &str = "riptide_wasm_artifacts_total";

/// Jobs sent to wait in a delay queue without using an attempt, by `reason` (pacing,
/// host_blocked, robots).
pub const DEFERRALS_TOTAL: &str = "riptide_politeness_deferrals_total";
/// robots.txt fetches (one per origin per TTL for the fleet), by `outcome` (ok, allow_all, unreachable).
pub const ROBOTS_FETCHES_TOTAL: &str = "riptide_robots_fetches_total";
/// URLs robots.txt disallowed (their jobs fail with `robots_denied`).
pub const ROBOTS_DENIALS_TOTAL: &str = "riptide_robots_denials_total";
/// Origins blocked after a 429 or 503, by `source` (retry_after, backoff).
pub const HOST_BLOCKS_TOTAL: &str = "riptide_host_blocks_total";

/// The `outcome` label of a delivery handed back to the broker: not a result outcome (no
/// result is published), so it is not in [`Outcome`].
pub const OUTCOME_HANDED_BACK: &str = "handed_back";

/// Creates the worker's series with closed label sets at zero, so dashboards and `rate()`
/// see them before the first event (an absent series is not a zero).
pub fn initialize() {
    for reason in FailureReason::ALL {
        metrics::counter!(RETRIES_TOTAL, "reason" => reason.as_str()).absolute(0);
        metrics::counter!(DEAD_LETTERS_TOTAL, "reason" => reason.as_str()).absolute(0);
    }
    for outcome in [Outcome::Ok.as_str(), Outcome::Cached.as_str(), Outcome::NotModified.as_str(), OUTCOME_HANDED_BACK]
    {
        metrics::counter!(JOBS_TOTAL, "outcome" => outcome, "reason" => "none").absolute(0);
    }
    for reason in FailureReason::ALL {
        metrics::counter!(JOBS_TOTAL, "outcome" => Outcome::Failed.as_str(), "reason" => reason.as_str()).absolute(0);
    }
    for lane in ["high", "normal"] {
        metrics::counter!(DELIVERIES_TOTAL, "lane" => lane).absolute(0);
    }
    metrics::gauge!(JOBS_IN_FLIGHT).set(0.0);
}

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
    metrics::describe_gauge!(QUEUE_DEPTH, "Messages ready in a queue, polled from the broker.");
    metrics::describe_gauge!(QUEUE_CONSUMERS, "Consumers of a queue, polled from the broker.");
    metrics::describe_gauge!(BROKER_CONNECTED, "1 while the worker holds a broker connection.");
    metrics::describe_gauge!(REDIS_CONNECTED, "1 while Redis answers PING.");
    metrics::describe_counter!(DELIVERIES_TOTAL, "Jobs consumed from the broker, by lane.");
    metrics::describe_counter!(DEFERRALS_TOTAL, "Jobs deferred by politeness without using an attempt, by reason.");
    metrics::describe_counter!(ROBOTS_FETCHES_TOTAL, "robots.txt fetches, by outcome.");
    metrics::describe_counter!(ROBOTS_DENIALS_TOTAL, "URLs disallowed by robots.txt.");
    metrics::describe_counter!(HOST_BLOCKS_TOTAL, "Origins blocked for the fleet after a 429 or 503, by source.");
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
    metrics::describe_counter!(WASM_LEASES_TOTAL, "WASM instance leases, by tier.");
    metrics::describe_gauge!(WASM_EXTRACTORS, "WASM extractors per tier.");
    metrics::describe_gauge!(WASM_HOT_INSTANCES, "Idle pre-instantiated WASM instances, by extractor.");
    metrics::describe_gauge!(WASM_SLOTS_IN_USE, "WASM instance slots in use.");
    metrics::describe_gauge!(WASM_TIER_MEMORY_BYTES, metrics::Unit::Bytes, "Estimated memory of warm and hot tiers.");
    metrics::describe_counter!(WASM_PROMOTIONS_TOTAL, "WASM tier promotions, by target tier.");
    metrics::describe_counter!(WASM_DEMOTIONS_TOTAL, "WASM tier demotions, by target tier.");
    metrics::describe_counter!(WASM_EVICTIONS_TOTAL, "Idle WASM instances evicted.");
    metrics::describe_gauge!(WASM_BREAKER_STATE, "WASM breaker state (0 closed, 1 half-open, 2 open), by extractor.");
    metrics::describe_counter!(WASM_CALLS_TOTAL, "WASM extraction calls, by outcome.");
    metrics::describe_counter!(WASM_FALLBACKS_TOTAL, "Pages extracted natively while a breaker was open.");
    metrics::describe_counter!(WASM_ARTIFACTS_TOTAL, "WASM component loads, by outcome.");
}
