//! The worker: consume the job lanes, run each delivery through the pipeline, settle it.
//!
//! Settling follows one rule: a delivery is acked only after everything it caused is durable
//! (document in Redis, result / retry / dead letter confirmed by the broker). Anything else
//! leaves it unacked, so a crash means redelivery, never loss. The worker owns connection
//! recovery (a session per connection) and graceful shutdown; stages live in the pipeline.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lapin::Connection;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::consume::LaneConsumers;
use crate::broker::headers;
use crate::broker::inspect::queue_depth;
use crate::broker::publish::{DeadLetterInfo, Publisher};
use crate::broker::{BrokerError, Lane, Topology, connect_patiently};
use crate::config::Config;
use crate::engines::Engines;
use crate::failure::Failure;
use crate::fetch::{Fetcher, FetcherBuildError};
use crate::job::CrawlJob;
use crate::ops::health::Health;
use crate::ops::metrics as m;
use crate::ops::poller::Poller;
use crate::pipeline::{Incoming, Pipeline, Verdict, failed_result};
use crate::retry::RetrySchedule;
use crate::store::{JobState, JobUpdate, Store, StoreError};

/// After the grace period, handed-back jobs get this long to nack before the connection
/// closes under them (the broker requeues whatever is still unacked then).
const HAND_BACK_WINDOW: Duration = Duration::from_secs(5);
/// How often a draining worker checks whether its queues are empty.
const DRAIN_POLL: Duration = Duration::from_millis(500);

/// Why a worker could not run.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// RabbitMQ setup failed or the topology is outdated.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// Redis setup failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Fetcher(#[from] FetcherBuildError),
    /// The extraction engine could not start.
    #[error(transparent)]
    Engines(#[from] crate::engines::EnginesError),
    /// Redis has an older schema than this worker needs.
    #[error("the Redis schema of namespace {namespace:?} is v{have}, this worker needs v{need}; run `riptide migrate`")]
    SchemaOutdated {
        /// The namespace.
        namespace: String,
        /// Version found.
        have: u32,
        /// Version needed.
        need: u32,
    },
}

/// Options of one worker run that are not configuration.
#[derive(Debug, Clone, Default)]
pub struct WorkerOptions {
    /// Exit once the job lanes and delay queues are empty and nothing is in flight.
    pub drain: bool,
    /// Readiness flags this worker keeps current (served on `/readyz`).
    pub health: Health,
}

/// What a worker did before it stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Jobs completed (ok or cached).
    pub done: u64,
    /// Retries scheduled.
    pub retried: u64,
    /// Messages dead-lettered.
    pub dead: u64,
    /// Deliveries handed back for redelivery (shutdown or settle failure).
    pub handed_back: u64,
}

#[derive(Debug, Default)]
struct Counters {
    done: AtomicU64,
    retried: AtomicU64,
    dead: AtomicU64,
    handed_back: AtomicU64,
}

impl Counters {
    fn report(&self) -> WorkerReport {
        WorkerReport {
            done: self.done.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dead: self.dead.load(Ordering::Relaxed),
            handed_back: self.handed_back.load(Ordering::Relaxed),
        }
    }
}

/// Everything a job task needs, shared by all tasks of a worker.
#[derive(Debug)]
struct Shared {
    config: Arc<Config>,
    topology: Topology,
    pipeline: Pipeline,
    schedule: RetrySchedule,
    worker_id: String,
    counters: Counters,
    /// Fires after the grace period: in-flight jobs stop and are handed back.
    abandon: CancellationToken,
}

/// How a session (one connection) ended.
enum SessionEnd {
    Shutdown,
    Lost(String),
}

/// Runs a worker until `shutdown` fires (or, with `drain`, until the queues are empty).
pub async fn run(
    config: Arc<Config>,
    options: WorkerOptions,
    shutdown: CancellationToken,
) -> Result<WorkerReport, WorkerError> {
    let topology = Topology::new(&config.namespace)?;
    let store = Store::new(&config.redis_url, &config.namespace, &config.store)?;
    check_schema(&store, &topology, &shutdown).await?;
    let schedule = RetrySchedule::new(&config.retry, topology.retry_tiers.clone());
    let fetcher = Fetcher::new(&config.fetch, config.allow_private_networks)?;
    let engines = Engines::start(&config).await?;
    let pipeline = Pipeline::new(config.clone(), fetcher, engines.clone(), store, schedule.clone());
    let shared = Arc::new(Shared {
        worker_id: worker_id(),
        config,
        topology,
        pipeline,
        schedule,
        counters: Counters::default(),
        abandon: CancellationToken::new(),
    });
    m::initialize();
    let mut sessions = 0u64;
    loop {
        let connection = match connect_patiently(&shared.config.amqp_url, &shared.worker_id, &shutdown).await {
            Ok(connection) => connection,
            Err(BrokerError::Cancelled) => break,
            Err(error) => return Err(error.into()),
        };
        if sessions > 0 {
            metrics::counter!(m::BROKER_RECONNECTS_TOTAL).increment(1);
        }
        sessions += 1;
        let end = run_session(&shared, &connection, &options, &shutdown).await;
        options.health.set_broker(false);
        match end {
            Ok(SessionEnd::Shutdown) => {
                close_connection(&connection).await;
                break;
            }
            Ok(SessionEnd::Lost(why)) => tracing::warn!(reason = %why, "Lost the broker connection; reconnecting."),
            Err(error @ BrokerError::TopologyOutdated { .. }) => return Err(error.into()),
            Err(error) => tracing::warn!(%error, "Broker session failed; reconnecting."),
        }
    }
    engines.close().await;
    Ok(shared.counters.report())
}

async fn check_schema(store: &Store, topology: &Topology, shutdown: &CancellationToken) -> Result<(), WorkerError> {
    let have = store.patiently(shutdown, "schema check", || store.schema_version()).await?;
    if have < topology.redis_schema {
        return Err(WorkerError::SchemaOutdated {
            namespace: topology.namespace().to_string(),
            have,
            need: topology.redis_schema,
        });
    }
    Ok(())
}

async fn run_session(
    shared: &Arc<Shared>,
    connection: &Connection,
    options: &WorkerOptions,
    shutdown: &CancellationToken,
) -> Result<SessionEnd, BrokerError> {
    let inspect = connection.create_channel().await.map_err(BrokerError::Channel)?;
    shared.topology.verify(&inspect).await?;
    let publisher = Publisher::open(connection, &shared.topology).await?;
    let worker = &shared.config.worker;
    let mut lanes =
        LaneConsumers::open(connection, &shared.topology, worker.prefetch, worker.high_lane_weight, &shared.worker_id)
            .await?;
    tracing::info!(worker = %shared.worker_id, concurrency = worker.concurrency, namespace = shared.topology.namespace(), "Consuming jobs.");
    let permits = Arc::new(Semaphore::new(worker.concurrency));
    let in_flight = Arc::new(AtomicU64::new(0));
    let tracker = TaskTracker::new();
    let session_stop = shutdown.child_token();
    options.health.set_broker(true);
    let poller = Poller {
        channel: connection.create_channel().await.map_err(BrokerError::Channel)?,
        topology: shared.topology.clone(),
        store: shared.pipeline.store().clone(),
        health: options.health.clone(),
        worker_id: shared.worker_id.clone(),
        interval: Duration::from_millis(shared.config.ops.poll_interval_ms),
    };
    tracker.spawn(poller.run(heartbeat_fields(shared.clone(), in_flight.clone()), session_stop.clone()));
    tracker.spawn(crate::ops::events::forward(
        shared.pipeline.engines().subscribe(),
        connection.create_channel().await.map_err(BrokerError::Channel)?,
        shared.topology.events_exchange(),
        shared.worker_id.clone(),
        session_stop.clone(),
    ));
    if options.drain {
        tracker.spawn(watch_drain(shared.clone(), inspect, in_flight.clone(), session_stop.clone()));
    }
    let end = loop {
        let permit = tokio::select! {
            () = session_stop.cancelled() => break SessionEnd::Shutdown,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break SessionEnd::Shutdown,
            },
        };
        let next = tokio::select! {
            () = session_stop.cancelled() => break SessionEnd::Shutdown,
            next = lanes.next() => next,
        };
        let (lane, delivery) = match next {
            None => break SessionEnd::Lost("a consumer stream ended".into()),
            Some(Err(error)) => break SessionEnd::Lost(error.to_string()),
            Some(Ok(picked)) => picked,
        };
        metrics::counter!(m::DELIVERIES_TOTAL, "lane" => lane.as_str()).increment(1);
        let (shared, publisher, in_flight) = (shared.clone(), publisher.clone(), in_flight.clone());
        in_flight.fetch_add(1, Ordering::SeqCst);
        tracker.spawn(async move {
            metrics::gauge!(m::JOBS_IN_FLIGHT).increment(1.0);
            handle_delivery(&shared, &publisher, lane, delivery).await;
            metrics::gauge!(m::JOBS_IN_FLIGHT).decrement(1.0);
            in_flight.fetch_sub(1, Ordering::SeqCst);
            drop(permit);
        });
    };
    // Ends the poller, and the drain watcher when the stop came from outside.
    session_stop.cancel();
    if matches!(end, SessionEnd::Shutdown) {
        options.health.set_draining();
    }
    lanes.cancel().await;
    finish_in_flight(shared, &tracker).await;
    if let Err(error) = publisher.close().await {
        tracing::debug!(%error, "Closing the publish channel failed.");
    }
    lanes.close().await;
    Ok(end)
}

/// The heartbeat record `riptide stats` shows for this worker.
fn heartbeat_fields(shared: Arc<Shared>, in_flight: Arc<AtomicU64>) -> impl Fn() -> Vec<(&'static str, String)> + Send {
    let started_ms = crate::job::now_ms();
    move || {
        let report = shared.counters.report();
        let mut fields = vec![
            ("worker", shared.worker_id.clone()),
            ("started_ms", started_ms.to_string()),
            ("updated_ms", crate::job::now_ms().to_string()),
            ("concurrency", shared.config.worker.concurrency.to_string()),
            ("in_flight", in_flight.load(Ordering::SeqCst).to_string()),
            ("done", report.done.to_string()),
            ("retried", report.retried.to_string()),
            ("dead", report.dead.to_string()),
            ("handed_back", report.handed_back.to_string()),
        ];
        let engines = shared.pipeline.engines();
        if let Some(json) = engines.wasm().and_then(|pool| serde_json::to_string(&pool.stats()).ok()) {
            fields.push(("wasm", json));
        }
        if let Some(json) = engines.browser().and_then(|pool| serde_json::to_string(&pool.stats()).ok()) {
            fields.push(("browser", json));
        }
        fields
    }
}

/// Waits for in-flight jobs within the grace period, then hands the rest back.
async fn finish_in_flight(shared: &Shared, tracker: &TaskTracker) {
    tracker.close();
    let grace = shared.config.shutdown_grace();
    if tokio::time::timeout(grace, tracker.wait()).await.is_ok() {
        return;
    }
    tracing::warn!(
        in_flight = tracker.len(),
        grace_secs = grace.as_secs(),
        "Jobs still running after the grace period; handing them back."
    );
    shared.abandon.cancel();
    if tokio::time::timeout(HAND_BACK_WINDOW, tracker.wait()).await.is_err() {
        tracing::warn!(
            in_flight = tracker.len(),
            "Jobs did not stop; the broker will redeliver them when the connection closes."
        );
    }
}

async fn close_connection(connection: &Connection) {
    if let Err(error) = connection.close(200, "worker stopping".into()).await {
        tracing::debug!(%error, "Closing the broker connection failed.");
    }
}

/// In drain mode: stops the session once nothing is in flight and every work queue is empty
/// twice in a row (a retry may be moving from a delay queue to its lane between two looks).
async fn watch_drain(shared: Arc<Shared>, inspect: lapin::Channel, in_flight: Arc<AtomicU64>, stop: CancellationToken) {
    let mut idle_checks = 0;
    let queues = shared.topology.work_queues();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(DRAIN_POLL) => {}
        }
        let idle = in_flight.load(Ordering::SeqCst) == 0;
        let mut empty = idle;
        for queue in &queues {
            if !empty {
                break;
            }
            empty = matches!(queue_depth(&inspect, queue).await, Ok((0, _)));
        }
        idle_checks = if empty { idle_checks + 1 } else { 0 };
        if idle_checks >= 2 {
            tracing::info!("Queues are empty and nothing is in flight; draining done.");
            stop.cancel();
            return;
        }
    }
}

async fn handle_delivery(shared: &Shared, publisher: &Publisher, lane: Lane, delivery: Delivery) {
    let properties = &delivery.properties;
    let content_type = properties.content_type().as_ref().map(|ct| ct.as_str().to_string());
    let incoming = Incoming {
        body: &delivery.data,
        content_type: content_type.as_deref(),
        attempt: headers::get_u64(properties, headers::ATTEMPT).and_then(|a| u32::try_from(a).ok()).unwrap_or(1).max(1),
        enqueued_ms: headers::get_u64(properties, headers::ENQUEUED_MS)
            .or_else(|| properties.timestamp().map(|secs| secs.saturating_mul(1000))),
    };
    let verdict = tokio::select! {
        verdict = shared.pipeline.run(incoming, &shared.abandon) => verdict,
        () = shared.abandon.cancelled() => Verdict::HandBack,
    };
    let settled = settle(shared, publisher, lane, &delivery, verdict).await;
    let acked = match settled {
        Ok(()) => delivery.acker.ack(BasicAckOptions::default()).await.map(|_| ()),
        Err(error) => {
            if matches!(error, SettleError::HandBack) {
                tracing::info!("Worker stopping; handing the job back for redelivery.");
            } else {
                tracing::warn!(%error, "Could not settle the delivery; handing it back for redelivery.");
                metrics::counter!(m::SETTLE_FAILURES_TOTAL, "error_type" => "publish").increment(1);
            }
            metrics::counter!(m::JOBS_TOTAL, "outcome" => "handed_back", "reason" => "none").increment(1);
            shared.counters.handed_back.fetch_add(1, Ordering::Relaxed);
            delivery.acker.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await.map(|_| ())
        }
    };
    if let Err(error) = acked {
        // The channel is gone; the broker redelivers the message to another consumer.
        tracing::warn!(%error, "Could not ack or nack a delivery; the broker will redeliver it.");
        metrics::counter!(m::SETTLE_FAILURES_TOTAL, "error_type" => "ack").increment(1);
    }
}

/// Makes the verdict durable on the broker (and in the job record). `Err` means "do not ack".
async fn settle(
    shared: &Shared,
    publisher: &Publisher,
    lane: Lane,
    delivery: &Delivery,
    verdict: Verdict,
) -> Result<(), SettleError> {
    let format = shared.config.worker.result_format;
    match verdict {
        Verdict::Done(result) => {
            publisher.publish_result(&result, format).await?;
            record_stage_timings(&result.timings);
            metrics::counter!(m::JOBS_TOTAL, "outcome" => result.outcome.as_str(), "reason" => "none").increment(1);
            shared.counters.done.fetch_add(1, Ordering::Relaxed);
            tracing::info!(job_id = %result.job_id, outcome = result.outcome.as_str(), attempt = result.attempt, "Job finished.");
            Ok(())
        }
        Verdict::Retry { job, failure, delay, next_attempt } => {
            let lane = Lane::for_priority(job.priority);
            let tier = shared.schedule.tier_for(delay).ok_or(SettleError::NoDelayTier)?;
            publisher.publish_retry(&delivery.data, &delivery.properties, lane, tier, next_attempt, &failure).await?;
            record_state(shared, &job, JobState::Retrying, next_attempt - 1, &failure).await;
            metrics::counter!(m::RETRIES_TOTAL, "reason" => failure.reason.as_str()).increment(1);
            shared.counters.retried.fetch_add(1, Ordering::Relaxed);
            tracing::info!(job_id = %job.id, reason = %failure.reason, error = %failure.message, next_attempt, delay_ms = tier.as_millis() as u64, "Job failed; retrying later.");
            Ok(())
        }
        Verdict::Dead { job, failure, attempts } => {
            let info = DeadLetterInfo {
                failure: &failure,
                attempts,
                job_id: job.as_ref().map(|j| j.id.as_str()),
                source_queue: &shared.topology.lane_queue(lane),
                worker: &shared.worker_id,
            };
            publisher.publish_dead_letter(&delivery.data, &delivery.properties, &info).await?;
            if let Some(job) = &job {
                if let Err(error) = publisher.publish_result(&failed_result(job, &failure, attempts), format).await {
                    // The dead letter is the record of this failure; the result is a courtesy.
                    tracing::warn!(job_id = %job.id, %error, "Could not publish the failed result; the dead letter stands.");
                    metrics::counter!(m::SETTLE_FAILURES_TOTAL, "error_type" => "failed_result").increment(1);
                }
                record_state(shared, job, JobState::Dead, attempts, &failure).await;
            }
            metrics::counter!(m::DEAD_LETTERS_TOTAL, "reason" => failure.reason.as_str()).increment(1);
            metrics::counter!(m::JOBS_TOTAL, "outcome" => "dead", "reason" => failure.reason.as_str()).increment(1);
            shared.counters.dead.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(job_id = job.as_ref().map(|j| j.id.as_str()).unwrap_or("-"), reason = %failure.reason, error = %failure.message, attempts, "Job dead-lettered.");
            Ok(())
        }
        Verdict::HandBack => Err(SettleError::HandBack),
    }
}

/// The job record is for people asking "where is my job"; the broker already has the
/// message, so a record that cannot be written (worker stopping while Redis is away) is
/// counted and logged, and the delivery is still settled.
async fn record_state(shared: &Shared, job: &CrawlJob, state: JobState, attempt: u32, failure: &Failure) {
    let store: &Store = shared.pipeline.store();
    let update = JobUpdate { state, url: job.url.as_str(), attempt, failure: Some(failure), doc_key: None };
    if let Err(error) =
        store.patiently(&shared.abandon, "record job state", || store.update_job(&job.id, &update)).await
    {
        tracing::warn!(job_id = %job.id, state = state.as_str(), %error, "Could not record the job state.");
        metrics::counter!(m::SETTLE_FAILURES_TOTAL, "error_type" => "job_record").increment(1);
    }
}

fn record_stage_timings(timings: &crate::job::StageTimings) {
    for (stage, ms) in [
        ("queue_wait", timings.queue_wait_ms),
        ("fetch", timings.fetch_ms),
        ("extract", timings.extract_ms),
        ("store", timings.store_ms),
    ] {
        metrics::histogram!(m::STAGE_DURATION_SECONDS, "stage" => stage).record(ms as f64 / 1000.0);
    }
}

/// Why a delivery was not acked.
#[derive(Debug, thiserror::Error)]
enum SettleError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("the topology declares no delay queues")]
    NoDelayTier,
    #[error("handed back: the worker is stopping")]
    HandBack,
}

/// `host-pid`, so dead letters and connections name the process that handled them.
fn worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "riptide".to_string());
    format!("{host}-{}", std::process::id())
}
