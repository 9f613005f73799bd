//! The worker: consume the job lanes, run each delivery through the pipeline, settle it.
//!
//! Settling follows one rule: a delivery is acked only after everything it caused is durable
//! (document in Redis, result / retry / dead letter confirmed by the broker). Anything else
//! leaves it unacked, so a crash means redelivery, never loss. The worker owns connection
//! recovery (a session per connection) and graceful shutdown; stages live in the pipeline,
//! job states and the retry decision in the lifecycle.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::consume::{JobDelivery, LaneConsumers};
use crate::broker::inspect::Inspector;
use crate::broker::publish::{DeadLetterInfo, Publisher};
use crate::broker::{BrokerConnection, BrokerError, Lane, Topology, connect_patiently};
use crate::config::Config;
use crate::fetch::{Fetcher, FetcherBuildError};
use crate::job::JobResult;
use crate::lifecycle::{HandBackCause, JobEvent, Lifecycle};
use crate::ops::health::Health;
use crate::ops::metrics as m;
use crate::ops::poller::Poller;
use crate::page::PageSource;
use crate::pipeline::{Incoming, Pipeline, Stages, Verdict};
use crate::politeness::{HostEvent, Politeness};
use crate::pools::{PoolEvent, Pools};
use crate::retry::RetrySchedule;
use crate::store::{Store, StoreError};

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
    Pools(#[from] crate::pools::PoolsError),
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
    /// Jobs deferred by politeness (no attempt used).
    pub deferred: u64,
    /// Messages dead-lettered.
    pub dead: u64,
    /// Deliveries handed back for redelivery (shutdown or settle failure).
    pub handed_back: u64,
}

#[derive(Debug, Default)]
struct Counters {
    done: AtomicU64,
    retried: AtomicU64,
    deferred: AtomicU64,
    dead: AtomicU64,
    handed_back: AtomicU64,
}

impl Counters {
    fn report(&self) -> WorkerReport {
        WorkerReport {
            done: self.done.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            deferred: self.deferred.load(Ordering::Relaxed),
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
    lifecycle: Lifecycle,
    /// The pools, for the heartbeat's stats, the events forwarder and closing.
    pools: Pools,
    /// Redis, for the poller's PING and heartbeat.
    store: Store,
    /// Politeness, for the host events forwarder.
    politeness: Politeness,
    worker_id: String,
    counters: Counters,
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
    let lifecycle = Lifecycle::new(store.clone(), RetrySchedule::new(&config.retry, topology.retry_tiers.clone()));
    let fetcher = Fetcher::new(&config.fetch, config.allow_private_networks)?;
    let pools = Pools::start(&config).await?;
    let min_tier = topology.retry_tiers.iter().min().copied().unwrap_or(Duration::from_secs(1));
    let politeness = Politeness::new(&config, store.clone(), fetcher.clone(), min_tier);
    let pages = PageSource::new(fetcher, pools.clone(), &config, Some(store.clone()));
    let stages = Stages {
        pages,
        pools: pools.clone(),
        store: store.clone(),
        lifecycle: lifecycle.clone(),
        politeness: politeness.clone(),
    };
    let pipeline = Pipeline::new(config.clone(), stages);
    let shared = Arc::new(Shared {
        worker_id: worker_id(),
        config,
        topology,
        pipeline,
        lifecycle,
        pools: pools.clone(),
        politeness,
        store,
        counters: Counters::default(),
    });
    m::initialize();
    // The browser pool starts on the first render; its series exist from the start all the same.
    crate::browser::initialize_metrics();
    crate::politeness::initialize_metrics();
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
        connection.close("worker stopping").await;
        match end {
            Ok(SessionEnd::Shutdown) => break,
            Ok(SessionEnd::Lost(why)) => tracing::warn!(reason = %why, "Lost the broker connection; reconnecting."),
            Err(error @ BrokerError::TopologyOutdated { .. }) => return Err(error.into()),
            Err(error) => tracing::warn!(%error, "Broker session failed; reconnecting."),
        }
    }
    pools.close().await;
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

/// One connection's worth of consuming. Its in-flight jobs belong to it: the token that
/// abandons them after the grace period is this session's own, so a slow job at the end of a
/// lost connection cannot poison the sessions that follow.
async fn run_session(
    shared: &Arc<Shared>,
    connection: &BrokerConnection,
    options: &WorkerOptions,
    shutdown: &CancellationToken,
) -> Result<SessionEnd, BrokerError> {
    let inspector = Inspector::open(connection).await?;
    shared.topology.verify(&inspector).await?;
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
    let abandon = CancellationToken::new();
    options.health.set_broker(true);
    let poller = Poller {
        inspector: Inspector::open(connection).await?,
        topology: shared.topology.clone(),
        store: shared.store.clone(),
        health: options.health.clone(),
        worker_id: shared.worker_id.clone(),
        interval: Duration::from_millis(shared.config.ops.poll_interval_ms),
    };
    tracker.spawn(poller.run(heartbeat_fields(shared.clone(), in_flight.clone()), session_stop.clone()));
    tracker.spawn(
        crate::broker::events::forward(
            shared.pools.subscribe(),
            PoolEvent::routing_key,
            connection,
            shared.topology.events_exchange(),
            shared.worker_id.clone(),
            session_stop.clone(),
        )
        .await?,
    );
    tracker.spawn(
        crate::broker::events::forward(
            shared.politeness.subscribe(),
            HostEvent::routing_key,
            connection,
            shared.topology.events_exchange(),
            shared.worker_id.clone(),
            session_stop.clone(),
        )
        .await?,
    );
    if options.drain {
        tracker.spawn(watch_drain(shared.clone(), inspector, in_flight.clone(), session_stop.clone()));
    } else {
        inspector.close().await;
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
        let delivery = match next {
            None => break SessionEnd::Lost("a consumer stream ended".into()),
            Some(Err(error)) => break SessionEnd::Lost(error.to_string()),
            Some(Ok(delivery)) => delivery,
        };
        metrics::counter!(m::DELIVERIES_TOTAL, "lane" => delivery.lane().as_str()).increment(1);
        let (shared, publisher, in_flight, abandon) =
            (shared.clone(), publisher.clone(), in_flight.clone(), abandon.clone());
        in_flight.fetch_add(1, Ordering::SeqCst);
        tracker.spawn(async move {
            metrics::gauge!(m::JOBS_IN_FLIGHT).increment(1.0);
            handle_delivery(&shared, &publisher, delivery, &abandon).await;
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
    finish_in_flight(shared, &tracker, &abandon).await;
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
            ("deferred", report.deferred.to_string()),
            ("dead", report.dead.to_string()),
            ("handed_back", report.handed_back.to_string()),
        ];
        let pools = &shared.pools;
        if let Some(json) = pools.wasm().and_then(|pool| serde_json::to_string(&pool.stats()).ok()) {
            fields.push(("wasm", json));
        }
        if let Some(json) = pools.browser().and_then(|pool| serde_json::to_string(&pool.stats()).ok()) {
            fields.push(("browser", json));
        }
        fields
    }
}

/// Waits for in-flight jobs within the grace period, then hands the rest back (by firing
/// this session's `abandon`).
async fn finish_in_flight(shared: &Shared, tracker: &TaskTracker, abandon: &CancellationToken) {
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
    abandon.cancel();
    if tokio::time::timeout(HAND_BACK_WINDOW, tracker.wait()).await.is_err() {
        tracing::warn!(
            in_flight = tracker.len(),
            "Jobs did not stop; the broker will redeliver them when the connection closes."
        );
    }
}

/// In drain mode: stops the session once nothing is in flight and every work queue is empty
/// twice in a row (a retry may be moving from a delay queue to its lane between two looks).
async fn watch_drain(shared: Arc<Shared>, inspector: Inspector, in_flight: Arc<AtomicU64>, stop: CancellationToken) {
    let mut idle_checks = 0;
    let queues = shared.topology.work_queues();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(DRAIN_POLL) => {}
        }
        let idle = in_flight.load(Ordering::SeqCst) == 0;
        let mut empty = idle;
        for queue in &queues {
            if !empty {
                break;
            }
            empty = matches!(inspector.queue_depth(queue).await, Ok((0, _)));
        }
        idle_checks = if empty { idle_checks + 1 } else { 0 };
        if idle_checks >= 2 {
            tracing::info!("Queues are empty and nothing is in flight; draining done.");
            stop.cancel();
            break;
        }
    }
    inspector.close().await;
}

async fn handle_delivery(shared: &Shared, publisher: &Publisher, delivery: JobDelivery, abandon: &CancellationToken) {
    let incoming = Incoming {
        body: delivery.body(),
        content_type: delivery.content_type(),
        attempt: delivery.attempt(),
        enqueued_ms: delivery.enqueued_ms(),
        slot_ms: delivery.slot_ms(),
    };
    let verdict = if last_delivery(&shared.topology, &delivery) {
        // Workers died or stopped on this message at every delivery so far. The broker would
        // dead-letter it at its next return without a result or a job state, so it ends here,
        // through the same confirmed path as every other dead letter.
        shared.pipeline.give_up(incoming, delivery.delivery_count())
    } else {
        tokio::select! {
            verdict = shared.pipeline.run(incoming, abandon) => verdict,
            () = abandon.cancelled() => Verdict::HandBack,
        }
    };
    let acked = match settle(shared, publisher, &delivery, verdict, abandon).await {
        Ok(()) => delivery.ack().await,
        Err(SettleError::HandBack) => {
            JobEvent::HandedBack { cause: HandBackCause::Stopping, error: None }.emit();
            shared.counters.handed_back.fetch_add(1, Ordering::Relaxed);
            hand_back(publisher, &delivery).await
        }
        Err(error) => {
            let text = error.to_string();
            JobEvent::HandedBack { cause: HandBackCause::SettleFailed, error: Some(&text) }.emit();
            shared.counters.handed_back.fetch_add(1, Ordering::Relaxed);
            delivery.requeue().await
        }
    };
    if let Err(error) = acked {
        // The channel is gone; the broker redelivers the message to another consumer.
        tracing::warn!(%error, "Could not ack or nack a delivery; the broker will redeliver it.");
        metrics::counter!(m::SETTLE_FAILURES_TOTAL, "error_type" => "ack").increment(1);
    }
}

/// Whether this delivery is the last the lane allows before the broker dead-letters the
/// message on its own (at-most-once, with no result and no job state).
fn last_delivery(topology: &Topology, delivery: &JobDelivery) -> bool {
    topology.delivery_limit.is_some_and(|limit| delivery.delivery_count().saturating_add(1) >= limit)
}

/// A delivery handed back while stopping goes back to its lane as a new message (confirmed,
/// then the delivery acked), so deploys do not use up the lane's delivery limit. When the
/// channel cannot publish any more, a plain requeue is all that is left.
async fn hand_back(publisher: &Publisher, delivery: &JobDelivery) -> Result<(), BrokerError> {
    match publisher.hand_back(delivery).await {
        Ok(()) => delivery.ack().await,
        Err(error) => {
            tracing::debug!(%error, "Could not republish the handed-back job; requeueing it instead.");
            delivery.requeue().await
        }
    }
}

/// Makes the verdict durable on the broker, then in the job record. `Err` means "do not ack".
async fn settle(
    shared: &Shared,
    publisher: &Publisher,
    delivery: &JobDelivery,
    verdict: Verdict,
    abandon: &CancellationToken,
) -> Result<(), SettleError> {
    let format = shared.config.worker.result_format;
    match verdict {
        Verdict::Done(result) => {
            publisher.publish_result(&result, format).await?;
            JobEvent::Finished { result: &result }.emit();
            shared.counters.done.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Verdict::Retry { job, failure, tier, next_attempt } => {
            publisher.publish_retry(delivery, Lane::for_priority(job.priority), tier, next_attempt, &failure).await?;
            shared.lifecycle.retrying(&job, next_attempt, &failure, abandon).await;
            JobEvent::Retried { job_id: &job.id, failure: &failure, next_attempt, tier }.emit();
            shared.counters.retried.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Verdict::Defer { job, reason, tier, slot_ms, attempt } => {
            let lane = Lane::for_priority(job.priority);
            publisher.publish_deferral(delivery, lane, tier, slot_ms, reason.as_str()).await?;
            shared.lifecycle.deferred(&job, attempt, abandon).await;
            JobEvent::Deferred { job_id: &job.id, reason, tier }.emit();
            shared.counters.deferred.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Verdict::Dead { job, failure, attempts } => {
            let info = DeadLetterInfo {
                failure: &failure,
                attempts,
                job_id: job.as_ref().map(|j| j.id.as_str()),
                source_queue: &shared.topology.lane_queue(delivery.lane()),
                worker: &shared.worker_id,
            };
            publisher.publish_dead_letter(delivery, &info).await?;
            if let Some(job) = &job {
                if let Err(error) = publisher.publish_result(&JobResult::failed(job, &failure, attempts), format).await
                {
                    // The dead letter is the record of this failure; the result is a courtesy.
                    tracing::warn!(job_id = %job.id, %error, "Could not publish the failed result; the dead letter stands.");
                    metrics::counter!(m::SETTLE_FAILURES_TOTAL, "error_type" => "failed_result").increment(1);
                }
                shared.lifecycle.dead(job, attempts, &failure, abandon).await;
            }
            JobEvent::DeadLettered { job_id: job.as_ref().map(|j| j.id.as_str()), failure: &failure, attempts }.emit();
            shared.counters.dead.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Verdict::HandBack => Err(SettleError::HandBack),
    }
}

/// Why a delivery was not acked.
#[derive(Debug, thiserror::Error)]
enum SettleError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
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
