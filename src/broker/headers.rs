//! The message headers riptide reads and writes (`x-riptide-*`), and helpers to read typed
//! values out of AMQP field tables.
//!
//! Plain data handling: no I/O.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};

/// Which attempt the message is for (1-based; absent means 1).
pub const ATTEMPT: &str = "x-riptide-attempt";
/// When the job was first enqueued, Unix milliseconds (for queue-wait and latency).
pub const ENQUEUED_MS: &str = "x-riptide-enqueued-ms";
/// The reason of the previous attempt's failure (on retries).
pub const LAST_REASON: &str = "x-riptide-last-reason";
/// The message of the previous attempt's failure (on retries).
pub const LAST_ERROR: &str = "x-riptide-last-error";
/// A job deferred by politeness: the request slot kept for it (Unix ms).
pub const SLOT_MS: &str = "x-riptide-slot-ms";
/// A job deferred by politeness: why (pacing, host_blocked, robots).
pub const DEFERRED: &str = "x-riptide-deferred";
/// Dead letters: the closed-set reason.
pub const REASON: &str = "x-riptide-reason";
/// Dead letters: the last error message.
pub const ERROR: &str = "x-riptide-error";
/// Dead letters: attempts made.
pub const ATTEMPTS: &str = "x-riptide-attempts";
/// Dead letters: when it was dead-lettered, RFC 3339.
pub const FAILED_AT: &str = "x-riptide-failed-at";
/// Dead letters: which worker process gave up on it.
pub const WORKER: &str = "x-riptide-worker";
/// Dead letters: the job id, when the message decoded far enough to have one.
pub const JOB_ID: &str = "x-riptide-job-id";
/// Dead letters: the queue it was consumed from.
pub const SOURCE_QUEUE: &str = "x-riptide-source-queue";

/// Set by quorum queues on a redelivery: how often the message was delivered before.
pub const DELIVERY_COUNT: &str = "x-delivery-count";

/// Headers the broker manages; they must not be copied onto a message we publish anew, or
/// its dead-letter history and delivery count would follow the job into the next attempt.
const BROKER_MANAGED: &[&str] = &[
    "x-death",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-first-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    "x-last-death-exchange",
    "x-delivery-count",
];

/// Reads an integer header, whatever integer width or string form the producer used.
pub fn get_u64(properties: &BasicProperties, key: &str) -> Option<u64> {
    let value = properties.headers().as_ref()?.inner().get(key)?;
    match value {
        AMQPValue::ShortShortUInt(v) => Some(u64::from(*v)),
        AMQPValue::ShortUInt(v) => Some(u64::from(*v)),
        AMQPValue::LongUInt(v) => Some(u64::from(*v)),
        AMQPValue::ShortShortInt(v) => u64::try_from(*v).ok(),
        AMQPValue::ShortInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::LongLongInt(v) => u64::try_from(*v).ok(),
        AMQPValue::Timestamp(v) => Some(*v),
        AMQPValue::LongString(s) => s.to_string().parse().ok(),
        AMQPValue::ShortString(s) => s.as_str().parse().ok(),
        _ => None,
    }
}

/// Reads a string header.
pub fn get_str(properties: &BasicProperties, key: &str) -> Option<String> {
    match properties.headers().as_ref()?.inner().get(key)? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

/// The message's headers minus the broker-managed ones.
pub fn carry_over(properties: &BasicProperties) -> FieldTable {
    let mut table = FieldTable::default();
    if let Some(headers) = properties.headers() {
        for (key, value) in headers.inner() {
            if !BROKER_MANAGED.contains(&key.as_str()) {
                table.insert(key.clone(), value.clone());
            }
        }
    }
    table
}

/// Removes a header.
pub fn remove(table: &mut FieldTable, key: &str) {
    let mut kept = FieldTable::default();
    for (k, v) in table.inner() {
        if k.as_str() != key {
            kept.insert(k.clone(), v.clone());
        }
    }
    *table = kept;
}

/// Sets a string header.
pub fn set_str(table: &mut FieldTable, key: &str, value: impl Into<String>) {
    table.insert(key.into(), AMQPValue::LongString(value.into().into()));
}

/// Sets an integer header.
pub fn set_u64(table: &mut FieldTable, key: &str, value: u64) {
    table.insert(key.into(), AMQPValue::LongLongInt(i64::try_from(value).unwrap_or(i64::MAX)));
}

/// Every header as a display string, for `riptide dlq show` and logs.
pub fn to_strings(properties: &BasicProperties) -> Vec<(String, String)> {
    properties
        .headers()
        .as_ref()
        .map(|headers| headers.inner().iter().map(|(k, v)| (k.as_str().to_string(), display_value(v))).collect())
        .unwrap_or_default()
}

fn display_value(value: &AMQPValue) -> String {
    match value {
        AMQPValue::LongString(s) => s.to_string(),
        AMQPValue::ShortString(s) => s.as_str().to_string(),
        AMQPValue::LongLongInt(v) => v.to_string(),
        AMQPValue::LongInt(v) => v.to_string(),
        AMQPValue::Boolean(v) => v.to_string(),
        other => format!("{other:?}"),
    }
}
