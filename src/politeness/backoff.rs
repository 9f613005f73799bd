//! Host backoff for the fleet: a 429 or 503 from an origin blocks it for every worker of the
//! namespace (until its `Retry-After`, capped, else a block that doubles with jitter while the
//! origin keeps refusing and starts over after a quiet period; the arithmetic is the Redis
//! script in `store/hosts.rs`), and the host events that tell operators so.
//!
//! Each [`HostEvent`] is logged, counted and broadcast by its one `emit`; the worker forwards
//! the broadcast to the events exchange (`host.blocked`, `host.unblocked`). It must not
//! publish to the broker itself, nor decide what happens to the job that got the refusal
//! (that job follows the retry rules, `lifecycle.rs`).

use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::ops::metrics as m;

/// Whether a response status blocks its origin for the fleet.
pub fn is_refusal(status: u16) -> bool {
    status == 429 || status == 503
}

/// Something that happened to an origin, as the events exchange tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HostEvent {
    /// The origin refused (429/503) and is blocked for the fleet.
    Blocked {
        /// `scheme://host:port`.
        origin: String,
        /// The status that started it.
        status: u16,
        /// How long the block lasts, milliseconds.
        block_ms: u64,
        /// Whether the site set the length (`Retry-After`) or the backoff did.
        retry_after: bool,
    },
    /// The block of an origin is over and a worker sent it a request again.
    Unblocked {
        /// `scheme://host:port`.
        origin: String,
    },
}

impl HostEvent {
    /// The routing key on the events exchange.
    pub fn routing_key(&self) -> &'static str {
        match self {
            HostEvent::Blocked { .. } => "host.blocked",
            HostEvent::Unblocked { .. } => "host.unblocked",
        }
    }

    /// Logs, counts and broadcasts the event (dropped when nobody subscribes).
    pub fn emit(self, events: &broadcast::Sender<HostEvent>) {
        match &self {
            HostEvent::Blocked { origin, status, block_ms, retry_after } => {
                metrics::counter!(m::HOST_BLOCKS_TOTAL, "source" => if *retry_after { "retry_after" } else { "backoff" })
                    .increment(1);
                tracing::warn!(origin, status, block_ms, retry_after, "Origin refused; blocked for the fleet.");
            }
            HostEvent::Unblocked { origin } => {
                tracing::info!(origin, "Origin block is over.");
            }
        }
        let _ = events.send(self);
    }
}

/// The block event of a refusal, from what the store recorded.
pub fn blocked_event(origin: &str, status: u16, block: Duration, retry_after: bool) -> HostEvent {
    HostEvent::Blocked {
        origin: origin.to_string(),
        status,
        block_ms: u64::try_from(block.as_millis()).unwrap_or(u64::MAX),
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_and_routing_keys() {
        assert!(is_refusal(429) && is_refusal(503));
        assert!(!is_refusal(500) && !is_refusal(404) && !is_refusal(200));
        let blocked = blocked_event("http://a.example:80", 429, Duration::from_secs(2), true);
        assert_eq!(blocked.routing_key(), "host.blocked");
        assert_eq!(HostEvent::Unblocked { origin: "x".into() }.routing_key(), "host.unblocked");
        let json = serde_json::to_value(&blocked).unwrap();
        assert_eq!(json["kind"], "blocked");
        assert_eq!(json["block_ms"], 2000);
    }
}
