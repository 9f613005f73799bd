//! The worker's poller: every interval it reads queue depths from the broker into gauges,
//! PINGs Redis for readiness, and writes the worker's heartbeat record for `riptide stats`.
//!
//! Depth gauges come from the broker, not from counting what this worker saw, so they are
//! right even when no job flows. It observes only; it never touches a message.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::health::Health;
use super::metrics as m;
use crate::broker::Topology;
use crate::broker::inspect::Inspector;
use crate::store::Store;

/// What the poller needs.
#[derive(Debug)]
pub struct Poller {
    /// Passive declares for the depths (a failed one closes its channel; ours never fail
    /// while the topology exists).
    pub inspector: Inspector,
    /// The namespace's names.
    pub topology: Topology,
    /// Redis, for PING and the heartbeat.
    pub store: Store,
    /// Readiness flags to update.
    pub health: Health,
    /// This worker's id.
    pub worker_id: String,
    /// Time between polls.
    pub interval: Duration,
}

impl Poller {
    /// Polls until `stop` fires. `heartbeat` produces the worker's current figures.
    pub async fn run(self, heartbeat: impl Fn() -> Vec<(&'static str, String)> + Send, stop: CancellationToken) {
        loop {
            self.poll_once(&heartbeat).await;
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(self.interval) => {}
            }
        }
        self.inspector.close().await;
    }

    async fn poll_once(&self, heartbeat: &(impl Fn() -> Vec<(&'static str, String)> + Send)) {
        match self.inspector.namespace_depths(&self.topology).await {
            Ok(depths) => {
                for depth in depths {
                    metrics::gauge!(m::QUEUE_DEPTH, "queue" => depth.name).set(depth.ready as f64);
                    metrics::gauge!(m::QUEUE_CONSUMERS, "queue" => depth.name).set(depth.consumers as f64);
                }
            }
            Err(error) => tracing::debug!(%error, "Polling queue depths failed; the session loop handles the broker."),
        }
        let redis_up = self.store.ping().await.is_ok();
        self.health.set_redis(redis_up);
        if redis_up {
            let ttl = self.interval.saturating_mul(3).max(Duration::from_secs(5));
            if let Err(error) = self.store.heartbeat(&self.worker_id, &heartbeat(), ttl).await {
                tracing::debug!(%error, "Writing the worker heartbeat failed.");
            }
        }
    }
}
