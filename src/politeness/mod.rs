//! Politeness across the fleet: before a page is requested, every worker of a namespace asks
//! the same questions of the same Redis state, so the rules hold for the fleet, not per
//! process:
//! - robots.txt (`robots.rs`): may this URL be fetched at all (RFC 9309)?
//! - host backoff (`backoff.rs`): is the origin blocked after a 429 or 503?
//! - pacing (`pacing.rs`, the schedule in `store/hosts.rs`): when is the origin's next free
//!   request slot (one Redis round trip reserves it)?
//!
//! A slot a short wait away (`politeness.max_inline_wait_ms`) is waited for in place; a later
//! one is kept for the job while it waits in a delay queue ([`Admission::Defer`] carries it),
//! so the job neither holds a worker slot nor uses an attempt, and is not throttled again
//! when it comes back. It decides admission only: it must not settle jobs, publish or fetch
//! pages (robots.txt aside).

pub mod backoff;
pub mod pacing;
pub mod robots;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};
use url::Url;

use crate::config::{Config, PolitenessConfig};
use crate::fetch::Fetcher;
use crate::fetch::canonical::origin_key;
use crate::job::now_ms;
use crate::ops::metrics as m;
use crate::store::hosts::{Acquired, Acquisition};
use crate::store::{Store, StoreError};
pub use backoff::HostEvent;
use robots::{RobotsCache, RobotsError, RobotsVerdict};

/// How long before its slot a waiting job checks that the origin was not blocked meanwhile.
const BLOCK_CHECK_LEAD: Duration = Duration::from_millis(20);

/// Host events buffered for the forwarder.
const EVENT_BUFFER: usize = 256;

/// Why a job waits in a delay queue without using an attempt. A closed set: it labels
/// `riptide_politeness_deferrals_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeferReason {
    /// The origin's next request slot is further than `max_inline_wait_ms` away.
    Pacing,
    /// The origin is blocked after a 429 or 503.
    HostBlocked,
    /// The origin's robots.txt is unavailable for now (5xx, unreachable, being fetched).
    Robots,
}

impl DeferReason {
    /// Every reason, for initialising the metric at zero.
    pub const ALL: [DeferReason; 3] = [DeferReason::Pacing, DeferReason::HostBlocked, DeferReason::Robots];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DeferReason::Pacing => "pacing",
            DeferReason::HostBlocked => "host_blocked",
            DeferReason::Robots => "robots",
        }
    }
}

/// What politeness says about requesting a page now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Request it now (any short wait has been waited).
    Go,
    /// Not now: wait `wait` in a delay queue, keeping the slot reserved at `slot_ms`.
    Defer {
        /// Why.
        reason: DeferReason,
        /// How long until it may go.
        wait: Duration,
        /// The reserved request slot (Unix ms, this worker's clock), when one is kept.
        slot_ms: Option<u64>,
    },
    /// robots.txt disallows the URL for our user agent.
    Denied,
}

/// Why politeness could not decide.
#[derive(Debug, thiserror::Error)]
pub enum PolitenessError {
    /// Redis failed (retryable, as every store failure).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<RobotsError> for PolitenessError {
    fn from(error: RobotsError) -> Self {
        match error {
            RobotsError::Store(e) => PolitenessError::Store(e),
        }
    }
}

/// The politeness of one worker; its state is the fleet's, in Redis. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Politeness {
    config: PolitenessConfig,
    store: Store,
    fetcher: Fetcher,
    robots: RobotsCache,
    allow_private: bool,
    events: broadcast::Sender<HostEvent>,
    /// Jobs of this worker waiting in place for their slot: at most half its slots, so a
    /// flooded origin's short waits cannot fill the worker while other origins have work.
    inline: Arc<Semaphore>,
    /// This worker's reading of Redis's clock, on which slots are kept.
    clock: Arc<RedisClock>,
    /// The shortest delay tier: a deferred job is back no sooner, so a slot closer than
    /// this can only be kept by waiting in place.
    min_deferral: Duration,
}

impl Politeness {
    /// Politeness over `store` (the fleet's state), fetching robots.txt with `fetcher`;
    /// `min_deferral` is the shortest delay tier of the topology.
    pub fn new(config: &Config, store: Store, fetcher: Fetcher, min_deferral: Duration) -> Self {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Politeness {
            config: config.politeness.clone(),
            store,
            fetcher,
            robots: RobotsCache::new(&config.fetch.user_agent),
            allow_private: config.allow_private_networks,
            events,
            inline: Arc::new(Semaphore::new((config.worker.concurrency / 2).max(1))),
            clock: Arc::default(),
            min_deferral,
        }
    }

    /// Host events (`host.blocked`, `host.unblocked`) for the forwarder.
    pub fn subscribe(&self) -> broadcast::Receiver<HostEvent> {
        self.events.subscribe()
    }

    /// Whether `url` may be requested now, waiting up to `max_inline_wait_ms` for it.
    /// `kept_slot_ms` is the slot a deferred job reserved before (from its message; Redis's
    /// clock, Unix ms).
    pub async fn admit(&self, url: &Url, kept_slot_ms: Option<u64>) -> Result<Admission, PolitenessError> {
        let origin = origin_key(url);
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let port = url.port_or_known_default().unwrap_or(0);
        let mut crawl_delay = None;
        if obeys_robots(&self.config, &host) {
            let verdict =
                self.robots.verdict(&origin, url, &self.store, &self.fetcher, &self.config, self.allow_private).await?;
            match verdict {
                RobotsVerdict::Allowed { crawl_delay: delay } => crawl_delay = delay,
                RobotsVerdict::Denied => {
                    metrics::counter!(m::ROBOTS_DENIALS_TOTAL).increment(1);
                    return Ok(Admission::Denied);
                }
                RobotsVerdict::Unavailable { recheck_in } => {
                    return Ok(Admission::Defer { reason: DeferReason::Robots, wait: recheck_in, slot_ms: None });
                }
            }
        }
        let max_inline = Duration::from_millis(self.config.max_inline_wait_ms);
        // A slot kept through a deferral is the job's own: only a block can take it away. A
        // job back after its slot has lost it (the next one is someone else's) and queues anew.
        if let Some(slot) = kept_slot_ms {
            let wait = self.clock.until(slot);
            if wait > max_inline {
                return Ok(Admission::Defer { reason: DeferReason::Pacing, wait, slot_ms: Some(slot) });
            }
            if !wait.is_zero() {
                if let Ok(permit) = self.inline.clone().try_acquire_owned() {
                    return self.go_at(&origin, slot, permit).await;
                }
                // Half the worker already waits in place: the job goes back to the delay queues
                // (a slot closer than the shortest tier is lost then, and queued for anew).
                return Ok(Admission::Defer { reason: DeferReason::Pacing, wait, slot_ms: Some(slot) });
            }
        }
        let interval = pacing::interval(&self.config, &host, port, crawl_delay);
        // Twice at most: a block that ends within the inline wait is waited out once.
        for _ in 0..2 {
            // A slot is reserved only when the job can keep it: by waiting in place (with a
            // permit), or in a delay queue that brings it back before the slot. Otherwise a
            // reserved slot would pass unused and the origin's schedule would have a hole.
            let permit = self.inline.clone().try_acquire_owned().ok();
            let inline = if permit.is_some() { max_inline } else { Duration::ZERO };
            let acquisition = self.acquire(&origin, interval, (inline, self.min_deferral)).await?;
            match acquisition.acquired {
                Acquired::Blocked(left) if left <= max_inline => tokio::time::sleep(left).await,
                Acquired::Blocked(left) => return Ok(blocked(left)),
                Acquired::Slot { wait, .. } if wait.is_zero() => return Ok(Admission::Go),
                Acquired::Slot { wait, reserved: false, .. } => {
                    return Ok(Admission::Defer { reason: DeferReason::Pacing, wait, slot_ms: None });
                }
                Acquired::Slot { wait, reserved: true, .. } => {
                    let slot = acquisition.redis_now_ms.saturating_add(millis(wait));
                    if let Some(permit) = permit.filter(|_| wait <= max_inline) {
                        return self.go_at(&origin, slot, permit).await;
                    }
                    return Ok(Admission::Defer { reason: DeferReason::Pacing, wait, slot_ms: Some(slot) });
                }
            }
        }
        Ok(blocked(max_inline))
    }

    /// Tells the fleet that the origin of `url` refused with `status` (a 429 or 503 blocks it;
    /// other statuses do nothing).
    pub async fn refused(&self, url: &Url, status: u16, retry_after: Option<Duration>) -> Result<(), StoreError> {
        if !backoff::is_refusal(status) || self.config.max_block_secs == 0 {
            return Ok(());
        }
        let origin = origin_key(url);
        let max = Duration::from_secs(self.config.max_block_secs);
        let (block, newly) = self
            .store
            .record_refusal(
                &origin,
                retry_after,
                Duration::from_millis(self.config.base_block_ms),
                max,
                Duration::from_secs(self.config.block_quiet_secs),
            )
            .await?;
        if newly {
            backoff::blocked_event(&origin, status, block, retry_after.is_some()).emit(&self.events);
        }
        Ok(())
    }

    /// Waits for the job's slot (Redis's clock, Unix ms), then goes, unless the origin was
    /// blocked meanwhile (a 429 answered to the request before ours; one round trip, made
    /// shortly before the slot so its latency does not shift the request). `_permit` is one of
    /// the worker's inline waits (at most half its slots wait at once).
    async fn go_at(
        &self,
        origin: &str,
        slot: u64,
        _permit: OwnedSemaphorePermit,
    ) -> Result<Admission, PolitenessError> {
        tokio::time::sleep(self.clock.until(slot).saturating_sub(BLOCK_CHECK_LEAD)).await;
        if let Acquired::Blocked(left) =
            self.acquire(origin, Duration::ZERO, (Duration::ZERO, Duration::ZERO)).await?.acquired
        {
            return Ok(blocked(left));
        }
        tokio::time::sleep(self.clock.until(slot)).await;
        Ok(Admission::Go)
    }

    /// One acquire round trip; `keep` is (longest wait reserved for waiting in place,
    /// shortest wait reserved for a deferral).
    async fn acquire(
        &self,
        origin: &str,
        interval: Duration,
        keep: (Duration, Duration),
    ) -> Result<Acquisition, StoreError> {
        let sent = now_ms();
        let acquisition = self.store.acquire_slot(origin, interval, keep).await?;
        self.clock.observe(sent, acquisition.redis_now_ms, now_ms());
        if let Acquired::Slot { unblocked: true, .. } = acquisition.acquired {
            HostEvent::Unblocked { origin: origin.to_string() }.emit(&self.events);
        }
        Ok(acquisition)
    }
}

/// A job of a blocked origin waits out the block (no slot is kept: the origin's schedule
/// starts over when the block ends).
fn blocked(left: Duration) -> Admission {
    Admission::Defer { reason: DeferReason::HostBlocked, wait: left, slot_ms: None }
}

/// Whether robots.txt is consulted for `host`: `obey_robots` and not an exempt host.
pub fn obeys_robots(config: &PolitenessConfig, host: &str) -> bool {
    config.obey_robots && !is_exempt(config, host)
}

fn is_exempt(config: &PolitenessConfig, host: &str) -> bool {
    config.robots_exempt_hosts.iter().any(|h| h.trim().eq_ignore_ascii_case(host))
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The offset of Redis's clock from this worker's, from the acquire round trips: the one
/// with the shortest round trip in the last minute is the best estimate (NTP's rule), so a
/// slow round trip under load does not move this worker's slots.
#[derive(Debug, Default)]
struct RedisClock {
    /// (offset ms = Redis - local, round trip ms, measured at local ms).
    best: Mutex<Option<(i64, u64, u64)>>,
}

/// How long an offset estimate is trusted before a slower one may replace it.
const CLOCK_ESTIMATE_LIFE_MS: u64 = 60_000;

impl RedisClock {
    fn observe(&self, sent_ms: u64, redis_ms: u64, received_ms: u64) {
        let rtt = received_ms.saturating_sub(sent_ms);
        let midpoint = sent_ms.saturating_add(rtt / 2);
        let offset = i64::try_from(redis_ms).unwrap_or(i64::MAX).saturating_sub(i64::try_from(midpoint).unwrap_or(0));
        let mut best = self.best.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let replace = match *best {
            None => true,
            Some((_, best_rtt, at)) => rtt <= best_rtt || received_ms.saturating_sub(at) > CLOCK_ESTIMATE_LIFE_MS,
        };
        if replace {
            *best = Some((offset, rtt, received_ms));
        }
    }

    /// Redis's clock now, as far as this worker can tell.
    fn now(&self) -> u64 {
        let offset = self.best.lock().unwrap_or_else(std::sync::PoisonError::into_inner).map_or(0, |(o, _, _)| o);
        let local = i64::try_from(now_ms()).unwrap_or(i64::MAX);
        u64::try_from(local.saturating_add(offset)).unwrap_or(0)
    }

    /// Time until `slot` on Redis's clock (zero when it passed).
    fn until(&self, slot: u64) -> Duration {
        Duration::from_millis(slot.saturating_sub(self.now()))
    }
}

/// Creates the politeness series with their closed label sets at zero (the worker calls it
/// at start, beside the other subsystems' initialisers).
pub fn initialize_metrics() {
    for reason in DeferReason::ALL {
        metrics::counter!(m::DEFERRALS_TOTAL, "reason" => reason.as_str()).absolute(0);
    }
    for outcome in robots::FETCH_OUTCOMES {
        metrics::counter!(m::ROBOTS_FETCHES_TOTAL, "outcome" => outcome).absolute(0);
    }
    metrics::counter!(m::ROBOTS_DENIALS_TOTAL).absolute(0);
    for source in ["retry_after", "backoff"] {
        metrics::counter!(m::HOST_BLOCKS_TOTAL, "source" => source).absolute(0);
    }
}

/// Counts a deferral (once its message is safely in the delay queue).
pub fn count_deferral(reason: DeferReason) {
    metrics::counter!(m::DEFERRALS_TOTAL, "reason" => reason.as_str()).increment(1);
}
