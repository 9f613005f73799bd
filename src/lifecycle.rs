//! The job lifecycle: the one owner of a job's state record (`running`, then `done`,
//! `retrying` or `dead`), of the retry decision (another attempt, and in which delay tier, or
//! the dead-letter queue), and of the job-level events, each of which logs and counts in one
//! `emit`.
//!
//! The pipeline asks it to mark a job running and to store a finished document; the worker
//! asks it what a failure means and, once the broker has confirmed the retry or dead letter,
//! to record that. It never touches the broker and never runs a stage.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::failure::{Failure, Retry};
use crate::job::{CrawlJob, JobResult, Outcome, Render, StageTimings};
use crate::ops::metrics as m;
use crate::retry::RetrySchedule;
use crate::store::{JobState, JobUpdate, Store, StoreError, StoredDoc};

/// What a failed attempt leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Another attempt, after waiting in the delay queue of `tier`.
    Retry {
        /// The delay tier (the jittered delay rounded up to a declared delay queue).
        tier: Duration,
        /// The number of the next attempt.
        next_attempt: u32,
    },
    /// No more attempts: the message goes to the dead-letter queue.
    DeadLetter,
}

/// The lifecycle of every job of one worker. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    store: Store,
    schedule: RetrySchedule,
}

impl Lifecycle {
    /// A lifecycle writing to `store` and retrying on `schedule`.
    pub fn new(store: Store, schedule: RetrySchedule) -> Self {
        Lifecycle { store, schedule }
    }

    /// Records that a worker is on `attempt` of `job`. Waits for Redis until `cancel` fires.
    pub async fn started(&self, job: &CrawlJob, attempt: u32, cancel: &CancellationToken) -> Result<(), StoreError> {
        let update =
            JobUpdate { state: JobState::Running, url: job.url.as_str(), attempt, failure: None, doc_key: None };
        self.store.patiently(cancel, "mark running", || self.store.update_job(&job.id, &update)).await
    }

    /// Stores the document and marks the job done, together (one Redis transaction), so a
    /// reader never sees `done` without its document.
    pub async fn completed(
        &self,
        job: &CrawlJob,
        attempt: u32,
        doc_key: &str,
        stored: &StoredDoc,
        cancel: &CancellationToken,
    ) -> Result<(), StoreError> {
        let update =
            JobUpdate { state: JobState::Done, url: job.url.as_str(), attempt, failure: None, doc_key: Some(doc_key) };
        self.store.patiently(cancel, "store document", || self.store.save_document(doc_key, stored, &update)).await
    }

    /// Retry while attempts remain and the failure is retryable; dead-letter otherwise. A
    /// retry waits in the smallest delay tier that covers its jittered delay (and any
    /// `Retry-After`), or the longest tier there is.
    pub fn decide(&self, job: &CrawlJob, failure: &Failure, attempt: u32) -> Decision {
        let Retry::Later { after } = failure.retry else { return Decision::DeadLetter };
        if attempt >= job.max_attempts {
            return Decision::DeadLetter;
        }
        match self.schedule.tier_for(self.schedule.delay(attempt, after)) {
            Some(tier) => Decision::Retry { tier, next_attempt: attempt + 1 },
            // A topology without delay queues cannot hold a retry; the failure stands.
            None => Decision::DeadLetter,
        }
    }

    /// The delay tier a politeness deferral of `wait` waits in (no attempt is used); `None`
    /// when the topology has no delay queues.
    pub fn deferral_tier(&self, wait: Duration) -> Option<Duration> {
        self.schedule.tier_at_most(wait)
    }

    /// Records that the job waits for politeness (after the broker confirmed the deferral);
    /// its attempt is unchanged.
    pub async fn deferred(&self, job: &CrawlJob, attempt: u32, cancel: &CancellationToken) {
        let update =
            JobUpdate { state: JobState::Deferred, url: job.url.as_str(), attempt, failure: None, doc_key: None };
        if let Err(error) =
            self.store.patiently(cancel, "record job state", || self.store.update_job(&job.id, &update)).await
        {
            tracing::warn!(job_id = %job.id, %error, "Could not record the job state.");
            metrics::counter!(m::SETTLE_FAILURES_TOTAL, "error_type" => "job_record").increment(1);
        }
    }

    /// Records that the job waits for `next_attempt` (after the broker confirmed the retry).
    pub async fn retrying(&self, job: &CrawlJob, next_attempt: u32, failure: &Failure, cancel: &CancellationToken) {
        self.record(job, JobState::Retrying, next_attempt.saturating_sub(1), failure, cancel).await;
    }

    /// Records that the job is dead (after the broker confirmed the dead letter).
    pub async fn dead(&self, job: &CrawlJob, attempts: u32, failure: &Failure, cancel: &CancellationToken) {
        self.record(job, JobState::Dead, attempts, failure, cancel).await;
    }

    /// The job record is for people asking "where is my job"; the broker already has the
    /// message, so a record that cannot be written (worker stopping while Redis is away) is
    /// counted and logged, and the delivery is still settled.
    async fn record(
        &self,
        job: &CrawlJob,
        state: JobState,
        attempt: u32,
        failure: &Failure,
        cancel: &CancellationToken,
    ) {
        let update = JobUpdate { state, url: job.url.as_str(), attempt, failure: Some(failure), doc_key: None };
        if let Err(error) =
            self.store.patiently(cancel, "record job state", || self.store.update_job(&job.id, &update)).await
        {
            tracing::warn!(job_id = %job.id, state = state.as_str(), %error, "Could not record the job state.");
            metrics::counter!(m::SETTLE_FAILURES_TOTAL, "error_type" => "job_record").increment(1);
        }
    }
}

/// Why a delivery went back to the broker unsettled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandBackCause {
    /// The worker is stopping (or its session ended) before the job finished.
    Stopping,
    /// The result, retry or dead letter could not be published.
    SettleFailed,
}

/// Something that happened to a job, as logs and metrics tell it.
#[derive(Debug)]
pub enum JobEvent<'a> {
    /// The job produced a document (now or from the cache) and its result was published.
    Finished {
        /// The published result.
        result: &'a JobResult,
    },
    /// The attempt failed and the job waits in a delay queue.
    Retried {
        /// The job.
        job_id: &'a str,
        /// Why the attempt failed.
        failure: &'a Failure,
        /// The number of the next attempt.
        next_attempt: u32,
        /// The delay tier it waits in.
        tier: Duration,
    },
    /// The message went to the dead-letter queue and a `failed` result was published.
    DeadLettered {
        /// The job, when the message decoded far enough to have an id.
        job_id: Option<&'a str>,
        /// Why.
        failure: &'a Failure,
        /// Attempts made.
        attempts: u32,
    },
    /// Politeness sent the job to wait in a delay queue; no attempt was used.
    Deferred {
        /// The job.
        job_id: &'a str,
        /// Why.
        reason: crate::politeness::DeferReason,
        /// The delay tier it waits in.
        tier: Duration,
    },
    /// The delivery went back to the broker for redelivery.
    HandedBack {
        /// Why.
        cause: HandBackCause,
        /// The error that stopped the settling, if one did.
        error: Option<&'a str>,
    },
}

impl JobEvent<'_> {
    /// Logs the event and counts it; labels come from closed sets ([`Outcome`], the failure
    /// reason), never from job data.
    pub fn emit(&self) {
        match self {
            JobEvent::Finished { result } => {
                record_stage_timings(result);
                count_job(result.outcome.as_str(), "none");
                tracing::info!(job_id = %result.job_id, outcome = result.outcome.as_str(), attempt = result.attempt, "Job finished.");
            }
            JobEvent::Retried { job_id, failure, next_attempt, tier } => {
                metrics::counter!(m::RETRIES_TOTAL, "reason" => failure.reason.as_str()).increment(1);
                tracing::info!(job_id, reason = %failure.reason, error = %failure.message, next_attempt, delay_ms = u64::try_from(tier.as_millis()).unwrap_or(u64::MAX), "Job failed; retrying later.");
            }
            JobEvent::Deferred { job_id, reason, tier } => {
                crate::politeness::count_deferral(*reason);
                tracing::debug!(
                    job_id,
                    reason = reason.as_str(),
                    delay_ms = u64::try_from(tier.as_millis()).unwrap_or(u64::MAX),
                    "Job deferred for politeness."
                );
            }
            JobEvent::DeadLettered { job_id, failure, attempts } => {
                metrics::counter!(m::DEAD_LETTERS_TOTAL, "reason" => failure.reason.as_str()).increment(1);
                count_job(Outcome::Failed.as_str(), failure.reason.as_str());
                tracing::warn!(job_id = job_id.unwrap_or("-"), reason = %failure.reason, error = %failure.message, attempts, "Job dead-lettered.");
            }
            JobEvent::HandedBack { cause, error } => {
                count_job(m::OUTCOME_HANDED_BACK, "none");
                match (cause, error) {
                    (HandBackCause::Stopping, _) => {
                        tracing::info!("Worker stopping; handing the job back for redelivery.");
                    }
                    (HandBackCause::SettleFailed, error) => {
                        metrics::counter!(m::SETTLE_FAILURES_TOTAL, "error_type" => "publish").increment(1);
                        tracing::warn!(
                            error = error.unwrap_or("-"),
                            "Could not settle the delivery; handing it back for redelivery."
                        );
                    }
                }
            }
        }
    }
}

fn count_job(outcome: &'static str, reason: &'static str) {
    metrics::counter!(m::JOBS_TOTAL, "outcome" => outcome, "reason" => reason).increment(1);
}

/// Records the stages that ran: a cached job only waited in the queue; a fetched job has a
/// fetch, a rendered one a render (an `auto` job that fell back to the browser has both).
fn record_stage_timings(result: &JobResult) {
    let StageTimings { queue_wait_ms, fetch_ms, render_ms, extract_ms, store_ms } = result.timings;
    let mut stages = vec![("queue_wait", queue_wait_ms)];
    if result.outcome == Outcome::Ok {
        if fetch_ms > 0 || result.render_used == Some(Render::Static) {
            stages.push(("fetch", fetch_ms));
        }
        if result.render_used == Some(Render::Headless) {
            stages.push(("render", render_ms));
        }
        stages.extend([("extract", extract_ms), ("store", store_ms)]);
    }
    for (stage, ms) in stages {
        metrics::histogram!(m::STAGE_DURATION_SECONDS, "stage" => stage).record(ms as f64 / 1000.0);
    }
}
