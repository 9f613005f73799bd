//! Liveness and readiness: the shared flags the worker sets and `/readyz` reads.
//!
//! Ready means: connected to the broker, Redis answers, and not draining for shutdown. It
//! holds state only; the worker and its poller decide when the flags change.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Readiness flags of one worker process. Cheap to clone; all clones share the flags.
#[derive(Debug, Clone, Default)]
pub struct Health {
    inner: Arc<Flags>,
}

#[derive(Debug, Default)]
struct Flags {
    broker: AtomicBool,
    redis: AtomicBool,
    draining: AtomicBool,
}

impl Health {
    /// Records whether a broker session is up.
    pub fn set_broker(&self, up: bool) {
        self.inner.broker.store(up, Ordering::SeqCst);
        metrics::gauge!(super::metrics::BROKER_CONNECTED).set(f64::from(u8::from(up)));
    }

    /// Records whether Redis answered the last PING.
    pub fn set_redis(&self, up: bool) {
        self.inner.redis.store(up, Ordering::SeqCst);
        metrics::gauge!(super::metrics::REDIS_CONNECTED).set(f64::from(u8::from(up)));
    }

    /// Marks the worker as stopping: it takes no new jobs, so it is not ready.
    pub fn set_draining(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
    }

    /// What keeps the worker from being ready; empty when it is ready.
    pub fn not_ready_because(&self) -> Vec<&'static str> {
        let mut reasons = Vec::new();
        if !self.inner.broker.load(Ordering::SeqCst) {
            reasons.push("broker disconnected");
        }
        if !self.inner.redis.load(Ordering::SeqCst) {
            reasons.push("redis unreachable");
        }
        if self.inner.draining.load(Ordering::SeqCst) {
            reasons.push("draining for shutdown");
        }
        reasons
    }
}
