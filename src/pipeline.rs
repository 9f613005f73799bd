//! One job, end to end: decode, mark running, cache check, get the page (static fetch,
//! headless render, or `auto`: static first, the browser when the page needs it), extract,
//! store. The result is a [`Verdict`] that the worker settles on the broker.
//!
//! The pipeline owns the order of the stages and the attempt's one deadline, shared by all
//! its stages; the retry decision and every job-state write belong to the lifecycle
//! (`lifecycle.rs`). It never touches the broker (publishing and acking are `worker.rs`).
//! Stages take typed inputs, return typed results and do not call each other.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use url::Url;

use crate::config::Config;
use crate::failure::{Failure, FailureReason};
use crate::fetch::canonical::{TrackingParams, canonicalize};
use crate::fetch::{FetchError, Validators};
use crate::job::{CrawlJob, JobResult, Outcome, Render, StageTimings, Summary, decode_request, id_from_bytes, now_ms};
use crate::lifecycle::{Decision, Lifecycle};
use crate::page::{Deadline, OutOfTime, Page, PageError, PageRequest, PageSource, millis};
use crate::politeness::{Admission, DeferReason, Politeness, PolitenessError};
use crate::pools::{ExtractStageError, Extracted, Pools};
use crate::store::{Store, StoreError, StoredDoc};

/// A message as it reached the worker, with what its headers say.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// The message body.
    pub body: &'a [u8],
    /// Its content type.
    pub content_type: Option<&'a str>,
    /// Which attempt this is (1-based).
    pub attempt: u32,
    /// When the job was first enqueued, Unix milliseconds, if known.
    pub enqueued_ms: Option<u64>,
    /// The politeness slot kept for a deferred job (Unix ms), if it has one.
    pub slot_ms: Option<u64>,
}

/// What to do with a delivery after the pipeline ran.
#[derive(Debug)]
pub enum Verdict {
    /// The document is stored: publish the result, then ack.
    Done(Box<JobResult>),
    /// Try again after waiting in the delay queue of `tier`, as attempt `next_attempt`.
    Retry {
        /// The job.
        job: Box<CrawlJob>,
        /// Why this attempt failed.
        failure: Failure,
        /// The delay tier to wait in.
        tier: Duration,
        /// The attempt number of the retry.
        next_attempt: u32,
    },
    /// Give up: dead-letter the message with its reason.
    Dead {
        /// The job, when the message decoded into one.
        job: Option<Box<CrawlJob>>,
        /// Why.
        failure: Failure,
        /// Attempts made.
        attempts: u32,
    },
    /// Politeness says not now: wait in the delay queue of `tier` without using an attempt.
    Defer {
        /// The job.
        job: Box<CrawlJob>,
        /// Why.
        reason: DeferReason,
        /// The delay tier to wait in.
        tier: Duration,
        /// The request slot kept for the job, if any.
        slot_ms: Option<u64>,
        /// The attempt it stays at.
        attempt: u32,
    },
    /// We are stopping and Redis is away: leave the delivery for redelivery.
    HandBack,
}

/// How an attempt that did not fail ended.
enum Attempted {
    /// A result to publish.
    Done(Box<JobResult>),
    /// Politeness deferred it.
    Deferred { reason: DeferReason, wait: Duration, slot_ms: Option<u64> },
}

/// Why a stage failed.
#[derive(Debug, thiserror::Error)]
enum StageError {
    #[error(transparent)]
    Page(#[from] PageError),
    #[error(transparent)]
    Extract(#[from] ExtractStageError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    OutOfTime(#[from] OutOfTime),
    #[error(transparent)]
    Politeness(#[from] PolitenessError),
    #[error("robots.txt of the site disallows this URL for our user agent")]
    RobotsDenied,
}

impl StageError {
    fn classify(&self) -> Failure {
        match self {
            StageError::Page(PageError::Fetch(e)) => e.classify(),
            StageError::Page(PageError::Render(e)) => e.classify(),
            StageError::Page(PageError::Memo(e)) | StageError::Store(e) => e.classify(),
            StageError::Page(PageError::OutOfTime(_)) | StageError::OutOfTime(_) => {
                Failure::retryable(FailureReason::Timeout, self.to_string())
            }
            StageError::Extract(e) => e.classify(),
            StageError::Politeness(PolitenessError::Store(e)) => e.classify(),
            StageError::RobotsDenied => Failure::permanent(FailureReason::RobotsDenied, self.to_string()),
        }
    }
}

/// The stages of a worker, shared by all its jobs.
#[derive(Debug, Clone)]
pub struct Pipeline {
    config: Arc<Config>,
    pages: PageSource,
    pools: Pools,
    /// Documents, for the cache check.
    store: Store,
    lifecycle: Lifecycle,
    /// Robots.txt, host blocks and pacing, shared with the fleet.
    politeness: Politeness,
    /// Query parameters canonical URLs drop (`fetch.tracking_params`).
    tracking: TrackingParams,
}

/// The stages of a pipeline, for [`Pipeline::new`].
#[derive(Debug)]
pub struct Stages {
    /// Pages: fetcher, browser and render memo.
    pub pages: PageSource,
    /// Extraction.
    pub pools: Pools,
    /// Documents.
    pub store: Store,
    /// Job states and the retry decision.
    pub lifecycle: Lifecycle,
    /// Politeness.
    pub politeness: Politeness,
}

impl Pipeline {
    /// A pipeline over the given stages.
    pub fn new(config: Arc<Config>, stages: Stages) -> Self {
        let tracking = TrackingParams::new(&config.fetch.tracking_params);
        let Stages { pages, pools, store, lifecycle, politeness } = stages;
        Pipeline { config, pages, pools, store, lifecycle, politeness, tracking }
    }

    /// Runs one attempt of the job in `incoming`. `cancel` interrupts waits on Redis.
    pub async fn run(&self, incoming: Incoming<'_>, cancel: &CancellationToken) -> Verdict {
        let job = match self.decode(incoming) {
            Ok(job) => job,
            Err(failure) => return Verdict::Dead { job: None, failure, attempts: incoming.attempt },
        };
        let span = tracing::info_span!("job", job_id = %job.id, attempt = incoming.attempt);
        self.run_job(job, incoming, cancel).instrument(span).await
    }

    /// The verdict for a message delivered as often as its lane allows: dead, with reason
    /// `delivery_limit`, without running it again (it killed or outlasted a worker each time).
    pub fn give_up(&self, incoming: Incoming<'_>, deliveries: u64) -> Verdict {
        let failure = Failure::permanent(
            FailureReason::DeliveryLimit,
            format!("delivered {} times without being settled; not running it again", deliveries.saturating_add(1)),
        );
        let job = self.decode(incoming).ok().map(Box::new);
        Verdict::Dead { job, failure, attempts: incoming.attempt }
    }

    async fn run_job(&self, job: CrawlJob, incoming: Incoming<'_>, cancel: &CancellationToken) -> Verdict {
        let mut timings = StageTimings {
            queue_wait_ms: incoming.enqueued_ms.map_or(0, |t| now_ms().saturating_sub(t)),
            ..StageTimings::default()
        };
        if let Err(error) = self.lifecycle.started(&job, incoming.attempt, cancel).await {
            return self.after_failure(job, StageError::Store(error), incoming.attempt);
        }
        match self.attempt(&job, incoming, &mut timings, cancel).await {
            Ok(Attempted::Done(result)) => Verdict::Done(result),
            Ok(Attempted::Deferred { reason, wait, slot_ms }) => match self.lifecycle.deferral_tier(wait) {
                Some(tier) => Verdict::Defer { job: Box::new(job), reason, tier, slot_ms, attempt: incoming.attempt },
                // No delay queues to wait in: the attempt fails retryably instead.
                None => self.after_failure(
                    job,
                    StageError::OutOfTime(OutOfTime { stage: "politeness", budget: wait }),
                    incoming.attempt,
                ),
            },
            Err(error) => self.after_failure(job, error, incoming.attempt),
        }
    }

    fn decode(&self, incoming: Incoming<'_>) -> Result<CrawlJob, Failure> {
        let request = decode_request(incoming.body, incoming.content_type, &self.config.job)?;
        Ok(request.validate(&self.config.job, || id_from_bytes(incoming.body))?)
    }

    async fn attempt(
        &self,
        job: &CrawlJob,
        incoming: Incoming<'_>,
        timings: &mut StageTimings,
        cancel: &CancellationToken,
    ) -> Result<Attempted, StageError> {
        let attempt = incoming.attempt;
        let canonical = canonicalize(&job.url, &self.tracking);
        let doc_key = self.store.doc_key(&canonical, job.mode);
        let known = self.store.patiently(cancel, "cache check", || self.store.get_doc(&doc_key)).await?;
        if let Some(stored) = known.as_ref().filter(|stored| is_fresh(job, stored)) {
            let summary = ResultParts {
                outcome: Outcome::Cached,
                canonical: &canonical,
                doc_key: &doc_key,
                stored,
                render_used: None,
                extracted_by: None,
            };
            return Ok(Attempted::Done(Box::new(self.result(job, attempt, summary, timings.clone()))));
        }
        match self.politeness.admit(&canonical, incoming.slot_ms).await? {
            Admission::Go => {}
            Admission::Denied => return Err(StageError::RobotsDenied),
            Admission::Defer { reason, wait, slot_ms } => return Ok(Attempted::Deferred { reason, wait, slot_ms }),
        }
        let deadline = Deadline::starting_now(job.timeout());
        let validators = known
            .as_ref()
            .map(|stored| Validators { etag: stored.etag.clone(), last_modified: stored.last_modified.clone() });
        let request = PageRequest {
            url: &job.url,
            headers: &job.headers,
            render: job.render,
            wait_for: job.wait_for.clone(),
            conditional: validators.as_ref(),
        };
        let page = match self.pages.get(&request, deadline, timings, cancel).await {
            Ok(page) => page,
            Err(error) => {
                self.tell_refusal(&canonical, &error).await;
                return Err(error.into());
            }
        };
        if page.not_modified() {
            let Some(stored) = known else {
                // A 304 to the producer's own conditional headers: there is nothing to serve.
                let url = crate::redact::url(page.final_url.as_str());
                return Err(PageError::Fetch(FetchError::Status { status: 304, url, retry_after: None }).into());
            };
            let keys = (canonical, doc_key);
            return self.not_modified(job, attempt, &keys, stored, page, timings, cancel).await;
        }
        let (final_url, http_status, render_used) = (page.final_url.to_string(), page.status, page.render_used);
        let Validators { etag, last_modified } = page.validators.clone();
        let extracted = self.extract(job, page, deadline, timings).await?;
        let stored = StoredDoc {
            doc: extracted.document,
            fetched_at_ms: now_ms(),
            final_url,
            http_status,
            job_id: job.id.clone(),
            etag,
            last_modified,
        };
        self.save(job, attempt, &doc_key, &stored, timings, cancel).await?;
        let by = (extracted.engine, extracted.tier);
        let parts = ResultParts {
            outcome: Outcome::Ok,
            canonical: &canonical,
            doc_key: &doc_key,
            stored: &stored,
            render_used: Some(render_used),
            extracted_by: Some(by),
        };
        Ok(Attempted::Done(Box::new(self.result(job, attempt, parts, timings.clone()))))
    }

    /// The site answered 304: the stored document is still the page. Its fetch time, TTL
    /// and validators are refreshed (rewritten with the job's done state), nothing is
    /// extracted, and the result says `not_modified`.
    #[allow(clippy::too_many_arguments)]
    async fn not_modified(
        &self,
        job: &CrawlJob,
        attempt: u32,
        (canonical, doc_key): &(Url, String),
        stored: StoredDoc,
        page: Page,
        timings: &mut StageTimings,
        cancel: &CancellationToken,
    ) -> Result<Attempted, StageError> {
        let refreshed = StoredDoc {
            fetched_at_ms: now_ms(),
            job_id: job.id.clone(),
            etag: page.validators.etag.or(stored.etag.clone()),
            last_modified: page.validators.last_modified.or(stored.last_modified.clone()),
            ..stored
        };
        self.save(job, attempt, doc_key, &refreshed, timings, cancel).await?;
        let parts = ResultParts {
            outcome: Outcome::NotModified,
            canonical,
            doc_key,
            stored: &refreshed,
            render_used: Some(page.render_used),
            extracted_by: None,
        };
        Ok(Attempted::Done(Box::new(self.result(job, attempt, parts, timings.clone()))))
    }

    /// A 429 or 503 blocks the origin for the fleet. The job itself follows the retry rules
    /// whatever happens here, so a block that cannot be recorded is logged, not failed on.
    async fn tell_refusal(&self, url: &Url, error: &PageError) {
        let PageError::Fetch(FetchError::Status { status, retry_after, .. }) = error else { return };
        if let Err(store_error) = self.politeness.refused(url, *status, *retry_after).await {
            tracing::warn!(status, error = %store_error, "Could not record the origin's refusal.");
        }
    }

    /// Takes the page by value: the HTML moves to the extraction thread instead of being copied.
    async fn extract(
        &self,
        job: &CrawlJob,
        page: Page,
        deadline: Deadline,
        timings: &mut StageTimings,
    ) -> Result<Extracted, StageError> {
        let budget = deadline.left_for("extract")?;
        let started = Instant::now();
        let extracted =
            self.pools.extract(&job.extractor, page.html, page.final_url.to_string(), job.mode, budget).await?;
        timings.extract_ms = millis(started.elapsed());
        Ok(extracted)
    }

    async fn save(
        &self,
        job: &CrawlJob,
        attempt: u32,
        doc_key: &str,
        stored: &StoredDoc,
        timings: &mut StageTimings,
        cancel: &CancellationToken,
    ) -> Result<(), StageError> {
        let started = Instant::now();
        self.lifecycle.completed(job, attempt, doc_key, stored, cancel).await?;
        timings.store_ms = millis(started.elapsed());
        Ok(())
    }

    fn result(&self, job: &CrawlJob, attempt: u32, parts: ResultParts<'_>, timings: StageTimings) -> JobResult {
        let ResultParts { outcome, canonical, doc_key, stored, render_used, extracted_by } = parts;
        JobResult {
            v: crate::job::MESSAGE_VERSION,
            job_id: job.id.clone(),
            url: job.url.to_string(),
            final_url: Some(stored.final_url.clone()),
            canonical_url: Some(canonical.to_string()),
            outcome,
            doc_key: Some(doc_key.to_string()),
            summary: Some(Summary {
                title: stored.doc.title.clone(),
                word_count: stored.doc.word_count,
                language: stored.doc.language.clone(),
                quality: stored.doc.quality,
            }),
            http_status: Some(stored.http_status),
            render_used,
            attempt,
            timings,
            engine: extracted_by.map(|(engine, _)| engine.to_string()),
            pool_tier: extracted_by.and_then(|(_, tier)| tier).map(str::to_string),
            error: None,
            meta: job.meta.clone(),
            finished_at_ms: now_ms(),
        }
    }

    /// What the lifecycle makes of the failure: another attempt or the dead-letter queue.
    fn after_failure(&self, job: CrawlJob, error: StageError, attempt: u32) -> Verdict {
        if matches!(error, StageError::Store(StoreError::Cancelled)) {
            return Verdict::HandBack;
        }
        let failure = error.classify();
        match self.lifecycle.decide(&job, &failure, attempt) {
            Decision::Retry { tier, next_attempt } => {
                Verdict::Retry { job: Box::new(job), failure, tier, next_attempt }
            }
            Decision::DeadLetter => Verdict::Dead { job: Some(Box::new(job)), failure, attempts: attempt },
        }
    }
}

/// Whether a stored document is young enough for the job's `max_age_secs` to serve it as is.
fn is_fresh(job: &CrawlJob, stored: &StoredDoc) -> bool {
    job.max_age_secs
        .is_some_and(|max_age_secs| stored.fetched_at_ms >= now_ms().saturating_sub(max_age_secs.saturating_mul(1000)))
}

/// What a result says beyond the job itself.
struct ResultParts<'a> {
    outcome: Outcome,
    /// The canonical URL of the job (its document key's source).
    canonical: &'a Url,
    doc_key: &'a str,
    stored: &'a StoredDoc,
    /// How the page was obtained now (`None` when served from the cache).
    render_used: Option<Render>,
    /// Engine and pool tier of the extraction (`None` when served from the cache).
    extracted_by: Option<(&'static str, Option<&'static str>)>,
}
