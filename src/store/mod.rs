//! Redis storage: documents, job state and the schema version, under the namespace prefix.
//!
//! Keys: `{ns}:doc:{mode}:{hash of canonical URL}` (MessagePack [`StoredDoc`], TTL),
//! `{ns}:job:{id}` (a hash: state, attempt, last error, doc key, timestamps; TTL) and
//! `{ns}:schema` (the schema version `riptide migrate` wrote). One job's writes go in one
//! MULTI. This module knows no queue; a failed write is an error for the caller, never a log
//! line. [`Store::patiently`] is how the pipeline waits out a Redis outage.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use deadpool_redis::redis::{self, AsyncCommands};
use deadpool_redis::{Pool, PoolError, Runtime, Timeouts};
use riptide_extractor::{Document, Mode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::config::StoreConfig;
use crate::failure::{Failure, FailureReason};

pub mod hosts;

/// Why a Redis operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis refused the command or the connection broke.
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// No connection could be had from the pool in time.
    #[error("Redis connection pool: {0}")]
    Pool(#[from] PoolError),
    /// The pool could not be built (bad URL).
    #[error("Redis pool setup: {0}")]
    Setup(String),
    /// A document could not be encoded.
    #[error("encoding a document: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    /// We were told to stop while waiting for Redis to come back.
    #[error("stopped while waiting for Redis")]
    Cancelled,
}

impl StoreError {
    /// Whether Redis is unreachable (as opposed to refusing a command): worth waiting for.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Redis(e) => {
                e.is_io_error() || e.is_connection_refusal() || e.is_timeout() || e.is_connection_dropped()
            }
            StoreError::Pool(_) => true,
            StoreError::Setup(_) | StoreError::Encode(_) | StoreError::Cancelled => false,
        }
    }

    /// Store failures are never the job's fault: always retryable.
    pub fn classify(&self) -> Failure {
        Failure::retryable(FailureReason::StoreUnavailable, self.to_string())
    }
}

/// A document as stored, with what is needed to answer a later cache check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDoc {
    /// The extracted document.
    pub doc: Document,
    /// When the page was fetched, Unix milliseconds.
    pub fetched_at_ms: u64,
    /// The URL after redirects.
    pub final_url: String,
    /// HTTP status of the fetch.
    pub http_status: u16,
    /// The job that produced it.
    pub job_id: String,
    /// The response's `ETag`, for the next crawl's conditional request (`If-None-Match`).
    #[serde(default)]
    pub etag: Option<String>,
    /// The response's `Last-Modified`, for the next crawl's `If-Modified-Since`.
    #[serde(default)]
    pub last_modified: Option<String>,
}

/// Where a job is, as kept in `{ns}:job:{id}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Accepted by `riptide enqueue`, not yet picked up.
    Queued,
    /// A worker is on it.
    Running,
    /// Waiting in a delay queue for its next attempt.
    Retrying,
    /// Finished; the document is stored.
    Done,
    /// Dead-lettered.
    Dead,
    /// Waiting in a delay queue for politeness (pacing, a host block, robots.txt), without
    /// using an attempt.
    Deferred,
}

impl JobState {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Retrying => "retrying",
            JobState::Done => "done",
            JobState::Dead => "dead",
            JobState::Deferred => "deferred",
        }
    }
}

/// One update of a job's state record.
#[derive(Debug, Clone)]
pub struct JobUpdate<'a> {
    /// The new state.
    pub state: JobState,
    /// The job's URL.
    pub url: &'a str,
    /// The attempt this update belongs to (1-based; 0 before the first).
    pub attempt: u32,
    /// The failure that caused it, for `retrying` and `dead`.
    pub failure: Option<&'a Failure>,
    /// The document key, for `done`.
    pub doc_key: Option<&'a str>,
}

/// The Redis side of riptide.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    prefix: String,
    config: StoreConfig,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl Store {
    /// A store on `redis_url` under `namespace`. Connections are made lazily.
    pub fn new(redis_url: &str, namespace: &str, config: &StoreConfig) -> Result<Self, StoreError> {
        let mut pool_config = deadpool_redis::Config::from_url(redis_url);
        let mut pool = deadpool_redis::PoolConfig::new(config.pool_size);
        // Bounded waits, so an unreachable Redis is an error we can retry, not a hang.
        pool.timeouts = Timeouts {
            wait: Some(Duration::from_secs(5)),
            create: Some(Duration::from_secs(2)),
            recycle: Some(Duration::from_secs(2)),
        };
        pool_config.pool = Some(pool);
        let pool = pool_config.create_pool(Some(Runtime::Tokio1)).map_err(|e| StoreError::Setup(e.to_string()))?;
        Ok(Store { pool, prefix: namespace.to_string(), config: config.clone() })
    }

    /// The key of the document for `canonical` (the URL as `fetch::canonical` spells it, so
    /// two spellings of one page share one document) in `mode`.
    pub fn doc_key(&self, canonical: &Url, mode: Mode) -> String {
        let digest = Sha256::digest(canonical.as_str().as_bytes());
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!("{}:doc:{}:{hex}", self.prefix, mode.as_str())
    }

    /// The key of a job's state record.
    pub fn job_key(&self, id: &str) -> String {
        format!("{}:job:{id}", self.prefix)
    }

    /// The key of the schema version.
    pub fn schema_key(&self) -> String {
        format!("{}:schema", self.prefix)
    }

    /// Round-trips a PING.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.get().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        Ok(())
    }

    /// Runs `op` until it succeeds, waiting out Redis outages with capped exponential backoff.
    /// Errors other than unavailability return at once; `cancel` ends the wait with
    /// [`StoreError::Cancelled`] so a stopping worker hands the job back instead of hanging.
    pub async fn patiently<T, F, Fut>(&self, cancel: &CancellationToken, what: &str, mut op: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_millis(self.config.max_wait_backoff_ms))
            .with_jitter()
            .without_max_times()
            .build();
        let mut waited = false;
        loop {
            match op().await {
                Ok(value) => {
                    if waited {
                        tracing::info!(operation = what, "Redis is reachable again.");
                    }
                    return Ok(value);
                }
                Err(error) if error.is_unavailable() => {
                    if !waited {
                        tracing::warn!(operation = what, %error, "Redis is unreachable; holding the job until it returns.");
                        metrics::counter!(crate::ops::metrics::STORE_WAITS_TOTAL).increment(1);
                        waited = true;
                    }
                    let delay = delays.next().unwrap_or(Duration::from_secs(1));
                    tokio::select! {
                        () = cancel.cancelled() => return Err(StoreError::Cancelled),
                        () = tokio::time::sleep(delay) => {}
                    }
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// The stored document under `key`, if any. A record that no longer decodes (an older
    /// format) counts as absent, so the page is fetched again and the record replaced.
    pub async fn get_doc(&self, key: &str) -> Result<Option<StoredDoc>, StoreError> {
        let mut conn = self.pool.get().await?;
        let bytes: Option<Vec<u8>> = conn.get(key).await?;
        Ok(bytes.and_then(|b| match rmp_serde::from_slice(&b) {
            Ok(doc) => Some(doc),
            Err(error) => {
                tracing::warn!(key, %error, "Stored document does not decode; treating it as a miss.");
                None
            }
        }))
    }

    /// Writes the document and marks the job done, in one MULTI.
    pub async fn save_document(
        &self,
        doc_key: &str,
        stored: &StoredDoc,
        update: &JobUpdate<'_>,
    ) -> Result<(), StoreError> {
        let bytes = rmp_serde::to_vec_named(stored)?;
        let mut pipe = redis::pipe();
        pipe.atomic().set_ex(doc_key, bytes, self.config.doc_ttl_secs).ignore();
        self.add_job_update(&mut pipe, &stored.job_id, update);
        let mut conn = self.pool.get().await?;
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// Records a job's new state.
    pub async fn update_job(&self, id: &str, update: &JobUpdate<'_>) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        self.add_job_update(&mut pipe, id, update);
        let mut conn = self.pool.get().await?;
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    fn add_job_update(&self, pipe: &mut redis::Pipeline, id: &str, update: &JobUpdate<'_>) {
        let key = self.job_key(id);
        let now = crate::job::now_ms().to_string();
        let mut fields: Vec<(&str, String)> = vec![
            ("state", update.state.as_str().to_string()),
            ("url", update.url.to_string()),
            ("attempt", update.attempt.to_string()),
            ("updated_ms", now.clone()),
        ];
        if let Some(failure) = update.failure {
            fields.push(("last_reason", failure.reason.as_str().to_string()));
            fields.push(("last_error", failure.message.clone()));
        }
        if let Some(doc_key) = update.doc_key {
            fields.push(("doc_key", doc_key.to_string()));
        }
        pipe.hset_nx(&key, "first_seen_ms", now).ignore();
        pipe.hset_multiple(&key, &fields).ignore();
        pipe.expire(&key, i64::try_from(self.config.job_ttl_secs).unwrap_or(i64::MAX)).ignore();
    }

    /// The state record of a job, empty when unknown (or expired).
    pub async fn job_record(&self, id: &str) -> Result<HashMap<String, String>, StoreError> {
        let mut conn = self.pool.get().await?;
        Ok(conn.hgetall(self.job_key(id)).await?)
    }

    /// The schema version recorded by `riptide migrate` (0 when none).
    pub async fn schema_version(&self) -> Result<u32, StoreError> {
        let mut conn = self.pool.get().await?;
        let version: Option<u32> = conn.get(self.schema_key()).await?;
        Ok(version.unwrap_or(0))
    }

    /// Raises the schema version to `version` unless it is already at least that: several
    /// workers migrating at once cannot move it backwards.
    pub async fn raise_schema_version(&self, version: u32) -> Result<u32, StoreError> {
        const RAISE: &str = "local cur = tonumber(redis.call('GET', KEYS[1]) or '0') \
             local new = tonumber(ARGV[1]) \
             if cur < new then redis.call('SET', KEYS[1], ARGV[1]) return new end \
             return cur";
        let mut conn = self.pool.get().await?;
        Ok(redis::cmd("EVAL").arg(RAISE).arg(1).arg(self.schema_key()).arg(version).query_async(&mut conn).await?)
    }

    /// Whether pages of `scope` (origin and first path segment) were found to need a browser
    /// recently (`{ns}:render:{scope}`).
    pub async fn needs_browser(&self, scope: &str) -> Result<bool, StoreError> {
        let mut conn = self.pool.get().await?;
        let found: Option<String> = conn.get(format!("{}:render:{scope}", self.prefix)).await?;
        Ok(found.is_some())
    }

    /// Remembers for `ttl` that pages of `scope` are client-rendered, so every worker's `auto`
    /// jobs there go to the browser directly instead of fetching statically first.
    pub async fn remember_needs_browser(&self, scope: &str, ttl: Duration) -> Result<(), StoreError> {
        let mut conn = self.pool.get().await?;
        conn.set_ex::<_, _, ()>(format!("{}:render:{scope}", self.prefix), "headless", ttl.as_secs().max(1)).await?;
        Ok(())
    }

    /// Writes this worker's heartbeat record `{ns}:worker:{id}`, expiring after `ttl` so a
    /// dead worker disappears from `riptide stats` by itself.
    pub async fn heartbeat(
        &self,
        worker_id: &str,
        fields: &[(&'static str, String)],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let key = format!("{}:worker:{worker_id}", self.prefix);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(&key)
            .ignore()
            .hset_multiple(&key, fields)
            .ignore()
            .pexpire(&key, i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
            .ignore();
        let mut conn = self.pool.get().await?;
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// Every live worker's heartbeat record.
    pub async fn workers(&self) -> Result<Vec<HashMap<String, String>>, StoreError> {
        let mut conn = self.pool.get().await?;
        let mut workers = Vec::new();
        for key in self.keys_matching(&format!("{}:worker:*", self.prefix)).await? {
            let record: HashMap<String, String> = conn.hgetall(&key).await?;
            if !record.is_empty() {
                workers.push(record);
            }
        }
        Ok(workers)
    }

    /// Deletes every key of this namespace (benchmarks and tests clean up with it).
    pub async fn delete_namespace(&self) -> Result<u64, StoreError> {
        let keys = self.keys_matching(&format!("{}:*", self.prefix)).await?;
        let mut conn = self.pool.get().await?;
        let mut deleted = 0;
        for chunk in keys.chunks(500) {
            deleted += conn.del::<_, u64>(chunk).await?;
        }
        Ok(deleted)
    }

    /// Every key matching `pattern`, by SCAN (never KEYS, which blocks Redis).
    async fn keys_matching(&self, pattern: &str) -> Result<Vec<String>, StoreError> {
        let mut conn = self.pool.get().await?;
        let mut cursor: u64 = 0;
        let mut found = Vec::new();
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut conn)
                .await?;
            found.extend(keys);
            if next == 0 {
                return Ok(found);
            }
            cursor = next;
        }
    }
}
