//! One job, end to end: decode, mark running, cache check, fetch, extract, store. The result
//! is a [`Verdict`] that the worker settles on the broker.
//!
//! The pipeline owns the order of the stages and the retry decision; it never touches the
//! broker (publishing and acking are `worker.rs`). Stages take typed inputs, return typed
//! results and do not call each other.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::Config;
use crate::extract::{ENGINE_NATIVE, ExtractStageError, extract_native};
use crate::failure::{Failure, FailureReason, Retry};
use crate::fetch::{FetchError, FetchedPage, Fetcher};
use crate::job::{CrawlJob, JobResult, Outcome, Render, StageTimings, Summary, decode_request, id_from_bytes, now_ms};
use crate::retry::RetrySchedule;
use crate::store::{JobState, JobUpdate, Store, StoreError, StoredDoc};

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
}

/// What to do with a delivery after the pipeline ran.
#[derive(Debug)]
pub enum Verdict {
    /// The document is stored: publish the result, then ack.
    Done(Box<JobResult>),
    /// Try again after `delay`, as attempt `next_attempt`.
    Retry {
        /// The job.
        job: Box<CrawlJob>,
        /// Why this attempt failed.
        failure: Failure,
        /// How long to wait.
        delay: Duration,
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
    /// We are stopping and Redis is away: leave the delivery for redelivery.
    HandBack,
}

/// Why a stage failed.
#[derive(Debug, thiserror::Error)]
enum StageError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Extract(#[from] ExtractStageError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Unsupported(String),
}

impl StageError {
    fn classify(&self) -> Failure {
        match self {
            StageError::Fetch(e) => e.classify(),
            StageError::Extract(e) => e.classify(),
            StageError::Store(e) => e.classify(),
            StageError::Unsupported(message) => Failure::permanent(FailureReason::Unsupported, message.clone()),
        }
    }
}

/// The stages of a worker, shared by all its jobs.
#[derive(Debug, Clone)]
pub struct Pipeline {
    config: Arc<Config>,
    fetcher: Fetcher,
    store: Store,
    schedule: RetrySchedule,
}

impl Pipeline {
    /// A pipeline over the given stages.
    pub fn new(config: Arc<Config>, fetcher: Fetcher, store: Store, schedule: RetrySchedule) -> Self {
        Pipeline { config, fetcher, store, schedule }
    }

    /// The store, for the worker's bookkeeping after settling.
    pub fn store(&self) -> &Store {
        &self.store
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

    async fn run_job(&self, job: CrawlJob, incoming: Incoming<'_>, cancel: &CancellationToken) -> Verdict {
        let mut timings = StageTimings {
            queue_wait_ms: incoming.enqueued_ms.map_or(0, |t| now_ms().saturating_sub(t)),
            ..StageTimings::default()
        };
        let update = JobUpdate {
            state: JobState::Running,
            url: job.url.as_str(),
            attempt: incoming.attempt,
            failure: None,
            doc_key: None,
        };
        if let Err(error) =
            self.store.patiently(cancel, "mark running", || self.store.update_job(&job.id, &update)).await
        {
            return self.after_failure(job, StageError::Store(error), incoming.attempt);
        }
        match self.attempt(&job, incoming.attempt, &mut timings, cancel).await {
            Ok(result) => Verdict::Done(Box::new(result)),
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
        attempt: u32,
        timings: &mut StageTimings,
        cancel: &CancellationToken,
    ) -> Result<JobResult, StageError> {
        ensure_supported(job)?;
        let doc_key = self.store.doc_key(&job.url, job.mode);
        if let Some(stored) = self.fresh_cached(job, &doc_key, cancel).await? {
            return Ok(self.result(job, attempt, Outcome::Cached, &doc_key, &stored, timings.clone()));
        }
        let page = self.fetch(job, timings).await?;
        let (final_url, http_status) = (page.final_url.to_string(), page.status);
        let doc = self.extract(job, page, timings).await?;
        let stored = StoredDoc { doc, fetched_at_ms: now_ms(), final_url, http_status, job_id: job.id.clone() };
        self.save(job, attempt, &doc_key, &stored, timings, cancel).await?;
        Ok(self.result(job, attempt, Outcome::Ok, &doc_key, &stored, timings.clone()))
    }

    async fn fresh_cached(
        &self,
        job: &CrawlJob,
        doc_key: &str,
        cancel: &CancellationToken,
    ) -> Result<Option<StoredDoc>, StageError> {
        let Some(max_age_secs) = job.max_age_secs else { return Ok(None) };
        let stored = self.store.patiently(cancel, "cache check", || self.store.get_doc(doc_key)).await?;
        let fresh_since = now_ms().saturating_sub(max_age_secs.saturating_mul(1000));
        Ok(stored.filter(|s| s.fetched_at_ms >= fresh_since))
    }

    async fn fetch(&self, job: &CrawlJob, timings: &mut StageTimings) -> Result<FetchedPage, StageError> {
        let page =
            self.fetcher.fetch(&job.url, &job.headers, job.timeout(), self.config.allow_private_networks).await?;
        timings.fetch_ms = millis(page.elapsed);
        Ok(page)
    }

    /// Takes the page by value: the HTML moves to the extraction thread instead of being copied.
    async fn extract(
        &self,
        job: &CrawlJob,
        page: FetchedPage,
        timings: &mut StageTimings,
    ) -> Result<riptide_extractor::Document, StageError> {
        let started = Instant::now();
        let doc = extract_native(page.html, page.final_url.to_string(), job.mode, job.timeout()).await?;
        timings.extract_ms = millis(started.elapsed());
        Ok(doc)
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
        let update =
            JobUpdate { state: JobState::Done, url: job.url.as_str(), attempt, failure: None, doc_key: Some(doc_key) };
        self.store.patiently(cancel, "store document", || self.store.save_document(doc_key, stored, &update)).await?;
        timings.store_ms = millis(started.elapsed());
        Ok(())
    }

    fn result(
        &self,
        job: &CrawlJob,
        attempt: u32,
        outcome: Outcome,
        doc_key: &str,
        stored: &StoredDoc,
        timings: StageTimings,
    ) -> JobResult {
        JobResult {
            v: crate::job::MESSAGE_VERSION,
            job_id: job.id.clone(),
            url: job.url.to_string(),
            final_url: Some(stored.final_url.clone()),
            outcome,
            doc_key: Some(doc_key.to_string()),
            summary: Some(Summary {
                title: stored.doc.title.clone(),
                word_count: stored.doc.word_count,
                language: stored.doc.language.clone(),
                quality: stored.doc.quality,
            }),
            http_status: Some(stored.http_status),
            render_used: Some(Render::Static),
            attempt,
            timings,
            engine: Some(ENGINE_NATIVE.to_string()),
            pool_tier: None,
            error: None,
            meta: job.meta.clone(),
            finished_at_ms: now_ms(),
        }
    }

    /// Retry while attempts remain and the failure is retryable; dead-letter otherwise.
    fn after_failure(&self, job: CrawlJob, error: StageError, attempt: u32) -> Verdict {
        if matches!(error, StageError::Store(StoreError::Cancelled)) {
            return Verdict::HandBack;
        }
        let failure = error.classify();
        match failure.retry {
            Retry::Later { after } if attempt < job.max_attempts => Verdict::Retry {
                delay: self.schedule.delay(attempt, after),
                next_attempt: attempt + 1,
                job: Box::new(job),
                failure,
            },
            _ => Verdict::Dead { job: Some(Box::new(job)), failure, attempts: attempt },
        }
    }
}

/// A failed result for a dead-lettered job, so downstream consumers hear of it too.
pub fn failed_result(job: &CrawlJob, failure: &Failure, attempts: u32) -> JobResult {
    JobResult {
        v: crate::job::MESSAGE_VERSION,
        job_id: job.id.clone(),
        url: job.url.to_string(),
        final_url: None,
        outcome: Outcome::Failed,
        doc_key: None,
        summary: None,
        http_status: None,
        render_used: None,
        attempt: attempts,
        timings: StageTimings::default(),
        engine: None,
        pool_tier: None,
        error: Some(crate::job::ErrorInfo {
            reason: failure.reason.as_str().to_string(),
            message: failure.message.clone(),
        }),
        meta: job.meta.clone(),
        finished_at_ms: now_ms(),
    }
}

/// Headless rendering arrives with the browser pool; until then such jobs are refused
/// clearly instead of being fetched statically behind the producer's back. `auto` means
/// "static unless the page needs a browser", which static alone honours for now.
fn ensure_supported(job: &CrawlJob) -> Result<(), StageError> {
    if job.render == Render::Headless {
        return Err(StageError::Unsupported(
            "render mode headless needs the browser pool, which this worker build does not have yet".into(),
        ));
    }
    Ok(())
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
