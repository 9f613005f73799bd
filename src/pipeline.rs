//! One job, end to end: decode, mark running, cache check, get the page (static fetch,
//! headless render, or `auto`: static first, the browser when the page needs it), extract,
//! store. The result is a [`Verdict`] that the worker settles on the broker.
//!
//! The pipeline owns the order of the stages and the retry decision; it never touches the
//! broker (publishing and acking are `worker.rs`). Stages take typed inputs, return typed
//! results and do not call each other.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use url::Url;

use crate::config::Config;
use crate::engines::{Engines, ExtractStageError, Extracted, RenderStageError};
use crate::failure::{Failure, Retry};
use crate::fetch::{FetchError, Fetcher};
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
    Render(#[from] RenderStageError),
    #[error(transparent)]
    Extract(#[from] ExtractStageError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl StageError {
    fn classify(&self) -> Failure {
        match self {
            StageError::Fetch(e) => e.classify(),
            StageError::Render(e) => e.classify(),
            StageError::Extract(e) => e.classify(),
            StageError::Store(e) => e.classify(),
        }
    }
}

/// How long a host found to need a browser stays remembered as such.
const RENDER_MEMO_TTL: Duration = Duration::from_secs(24 * 3600);

/// A page ready for extraction, however it was obtained.
#[derive(Debug)]
struct Page {
    final_url: Url,
    status: u16,
    html: String,
    render_used: Render,
}

/// The stages of a worker, shared by all its jobs.
#[derive(Debug, Clone)]
pub struct Pipeline {
    config: Arc<Config>,
    fetcher: Fetcher,
    engines: Engines,
    store: Store,
    schedule: RetrySchedule,
}

impl Pipeline {
    /// A pipeline over the given stages.
    pub fn new(config: Arc<Config>, fetcher: Fetcher, engines: Engines, store: Store, schedule: RetrySchedule) -> Self {
        Pipeline { config, fetcher, engines, store, schedule }
    }

    /// The engines, for stats, events and closing.
    pub fn engines(&self) -> &Engines {
        &self.engines
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
        let doc_key = self.store.doc_key(&job.url, job.mode);
        if let Some(stored) = self.fresh_cached(job, &doc_key, cancel).await? {
            let summary = ResultParts {
                outcome: Outcome::Cached,
                doc_key: &doc_key,
                stored: &stored,
                render_used: None,
                extracted_by: None,
            };
            return Ok(self.result(job, attempt, summary, timings.clone()));
        }
        let page = self.page(job, timings, cancel).await?;
        let (final_url, http_status, render_used) = (page.final_url.to_string(), page.status, page.render_used);
        let extracted = self.extract(job, page, timings).await?;
        let stored = StoredDoc {
            doc: extracted.document,
            fetched_at_ms: now_ms(),
            final_url,
            http_status,
            job_id: job.id.clone(),
        };
        self.save(job, attempt, &doc_key, &stored, timings, cancel).await?;
        let by = (extracted.engine, extracted.tier);
        let parts = ResultParts {
            outcome: Outcome::Ok,
            doc_key: &doc_key,
            stored: &stored,
            render_used: Some(render_used),
            extracted_by: Some(by),
        };
        Ok(self.result(job, attempt, parts, timings.clone()))
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

    /// The page as the job's render mode asks: static, headless, or `auto` (static unless
    /// the host is known to need a browser or the static page looks client-rendered).
    async fn page(
        &self,
        job: &CrawlJob,
        timings: &mut StageTimings,
        cancel: &CancellationToken,
    ) -> Result<Page, StageError> {
        match job.render {
            Render::Static => self.fetch(job, timings).await,
            Render::Headless => self.render(job, timings).await,
            Render::Auto => self.auto(job, timings, cancel).await,
        }
    }

    async fn auto(
        &self,
        job: &CrawlJob,
        timings: &mut StageTimings,
        cancel: &CancellationToken,
    ) -> Result<Page, StageError> {
        let host = job.url.host_str().unwrap_or_default();
        if self.store.patiently(cancel, "render memo", || self.store.needs_browser(host)).await? {
            return self.render(job, timings).await;
        }
        let page = self.fetch(job, timings).await?;
        if !crate::browser::looks_client_rendered(&page.html) {
            return Ok(page);
        }
        tracing::debug!(host, "The static page looks client-rendered; rendering it.");
        if let Err(error) = self.store.remember_needs_browser(host, RENDER_MEMO_TTL).await {
            // The memo only saves a later static fetch; the job itself goes on.
            tracing::warn!(host, %error, "Could not remember that the host needs a browser.");
        }
        self.render(job, timings).await
    }

    async fn fetch(&self, job: &CrawlJob, timings: &mut StageTimings) -> Result<Page, StageError> {
        let page =
            self.fetcher.fetch(&job.url, &job.headers, job.timeout(), self.config.allow_private_networks).await?;
        timings.fetch_ms = millis(page.elapsed);
        Ok(Page { final_url: page.final_url, status: page.status, html: page.html, render_used: Render::Static })
    }

    async fn render(&self, job: &CrawlJob, timings: &mut StageTimings) -> Result<Page, StageError> {
        let max_html_bytes = self.config.fetch.max_body_bytes as u64;
        let page = self.engines.render(&job.url, job.timeout(), job.wait_for.clone(), max_html_bytes).await?;
        timings.render_ms = millis(page.elapsed);
        Ok(Page {
            final_url: page.final_url,
            status: page.status.unwrap_or(200),
            html: page.html,
            render_used: Render::Headless,
        })
    }

    /// Takes the page by value: the HTML moves to the extraction thread instead of being copied.
    async fn extract(&self, job: &CrawlJob, page: Page, timings: &mut StageTimings) -> Result<Extracted, StageError> {
        let started = Instant::now();
        let extracted = self
            .engines
            .extract(&job.extractor, page.html, page.final_url.to_string(), job.mode, job.timeout())
            .await?;
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
        let update =
            JobUpdate { state: JobState::Done, url: job.url.as_str(), attempt, failure: None, doc_key: Some(doc_key) };
        self.store.patiently(cancel, "store document", || self.store.save_document(doc_key, stored, &update)).await?;
        timings.store_ms = millis(started.elapsed());
        Ok(())
    }

    fn result(&self, job: &CrawlJob, attempt: u32, parts: ResultParts<'_>, timings: StageTimings) -> JobResult {
        let ResultParts { outcome, doc_key, stored, render_used, extracted_by } = parts;
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

/// What a result says beyond the job itself.
struct ResultParts<'a> {
    outcome: Outcome,
    doc_key: &'a str,
    stored: &'a StoredDoc,
    /// How the page was obtained now (`None` when served from the cache).
    render_used: Option<Render>,
    /// Engine and pool tier of the extraction (`None` when served from the cache).
    extracted_by: Option<(&'static str, Option<&'static str>)>,
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

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
