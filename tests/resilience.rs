//! Crashes and outages: a worker killed with SIGKILL mid-flight, Redis stopped and started
//! mid-run, two workers on one queue, graceful shutdown. Every job must end in results or
//! the dead-letter queue; none may be lost.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{TestEnv, free_port, spawn_worker_with, start_redis};
use futures_util::StreamExt;
use lapin::options::BasicConsumeOptions;
use lapin::types::FieldTable;
use riptide::job::{JobResult, Outcome};
use riptide::producer::JobTemplate;
use tokio_util::sync::CancellationToken;

/// Collects every result of a namespace in the background.
struct Collector {
    results: Arc<Mutex<Vec<JobResult>>>,
    stop: CancellationToken,
}

impl Collector {
    async fn start(env: &TestEnv) -> Self {
        let connection = env.connection().await;
        let channel = connection.create_channel().await.unwrap();
        let queue = format!("{}.results", env.config.namespace);
        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "collector".into(),
                BasicConsumeOptions { no_ack: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let results = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let (sink, stopped) = (results.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stopped.cancelled() => break,
                    next = consumer.next() => match next {
                        Some(Ok(delivery)) => sink.lock().unwrap().push(serde_json::from_slice::<JobResult>(&delivery.data).unwrap()),
                        _ => break,
                    },
                }
            }
            let _ = connection.close(200, "done".into()).await;
        });
        Collector { results, stop }
    }

    fn distinct_jobs(&self) -> usize {
        self.results.lock().unwrap().iter().map(|r| r.job_id.clone()).collect::<HashSet<_>>().len()
    }

    async fn wait_for_jobs(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.distinct_jobs() < n {
            assert!(Instant::now() < deadline, "only {} of {n} jobs finished within {timeout:?}", self.distinct_jobs());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn finish(self) -> Vec<JobResult> {
        self.stop.cancel();
        self.results.lock().unwrap().clone()
    }
}

/// Every id has at least one ok result, and duplicates (redeliveries) carry the same
/// document. Returns how many duplicates there were.
fn assert_each_job_done_once(ids: &[String], results: &[JobResult]) -> usize {
    let mut by_job: HashMap<&str, Vec<&JobResult>> = HashMap::new();
    for result in results {
        by_job.entry(result.job_id.as_str()).or_default().push(result);
    }
    for id in ids {
        let seen = by_job.get(id.as_str()).unwrap_or_else(|| panic!("job {id} was lost"));
        assert!(seen.iter().all(|r| r.outcome == Outcome::Ok), "{seen:?}");
        let docs: HashSet<_> = seen.iter().map(|r| r.doc_key.clone()).collect();
        assert_eq!(docs.len(), 1, "duplicates of {id} must carry the same document: {seen:?}");
    }
    assert_eq!(by_job.len(), ids.len(), "results for unknown jobs");
    results.len() - ids.len()
}

fn spawn_worker_process(env: &TestEnv) -> Child {
    Command::new(env!("CARGO_BIN_EXE_riptide"))
        .args(["worker"])
        .env("RIPTIDE_NAMESPACE", &env.config.namespace)
        .env("RIPTIDE_ALLOW_PRIVATE_NETWORKS", "true")
        .env("RIPTIDE_WORKER__CONCURRENCY", "8")
        .env("RIPTIDE_WORKER__SHUTDOWN_GRACE_SECS", "5")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the riptide binary")
}

fn terminate(child: &mut Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "worker did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_flight_loses_nothing() {
    let env = TestEnv::new().await;
    let ids =
        env.enqueue((0..40).map(|n| env.site.url(&format!("/slow/200/{n}"))).collect(), JobTemplate::default()).await;
    let collector = Collector::start(&env).await;
    let mut first = spawn_worker_process(&env);
    collector.wait_for_jobs(5, Duration::from_secs(60)).await;
    first.kill().unwrap(); // SIGKILL, with jobs in flight
    first.wait().unwrap();
    let finished_before_restart = collector.distinct_jobs();
    assert!(finished_before_restart < 40, "the kill came too late to test anything");

    let mut second = spawn_worker_process(&env);
    collector.wait_for_jobs(40, Duration::from_secs(90)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    terminate(&mut second);
    let results = collector.finish();

    let duplicates = assert_each_job_done_once(&ids, &results);
    eprintln!(
        "SIGKILL test: {finished_before_restart} jobs done before the kill, {duplicates} duplicate result(s) after it"
    );
    assert!(env.dead_letters().await.is_empty());
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_and_started_mid_run_loses_nothing() {
    let port = free_port();
    let mut redis = start_redis(port);
    let env = TestEnv::with(|c| {
        c.redis_url = format!("redis://127.0.0.1:{port}");
        c.worker.concurrency = 4;
    })
    .await;
    let ids =
        env.enqueue((0..30).map(|n| env.site.url(&format!("/slow/150/{n}"))).collect(), JobTemplate::default()).await;
    let collector = Collector::start(&env).await;
    let worker = env.spawn_worker();
    collector.wait_for_jobs(5, Duration::from_secs(60)).await;

    redis.kill().unwrap();
    redis.wait().unwrap();
    let during_outage = collector.distinct_jobs();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_two_seconds = collector.distinct_jobs();
    redis = start_redis(port);

    collector.wait_for_jobs(30, Duration::from_secs(90)).await;
    let report = worker.stop().await;
    let results = collector.finish();
    redis.kill().unwrap();
    let _ = redis.wait();

    assert!(
        after_two_seconds <= during_outage + 4,
        "jobs kept finishing without Redis: {during_outage} -> {after_two_seconds}"
    );
    assert_each_job_done_once(&ids, &results);
    assert_eq!(report.dead, 0);
    assert!(env.dead_letters().await.is_empty());
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_one_queue() {
    let env = TestEnv::with(|c| c.worker.concurrency = 4).await;
    let ids =
        env.enqueue((0..40).map(|n| env.site.url(&format!("/slow/100/{n}"))).collect(), JobTemplate::default()).await;
    let (a, b) = (env.spawn_worker(), env.spawn_worker());
    let results = env.results(40, Duration::from_secs(60)).await;
    let (a, b) = (a.stop().await, b.stop().await);

    assert!(a.done > 0 && b.done > 0, "both workers took jobs: {a:?} {b:?}");
    assert_eq!(a.done + b.done, 40);
    assert_each_job_done_once(&ids, &results);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_in_flight_jobs_finish_within_the_grace_period() {
    let env = TestEnv::with(|c| c.worker.concurrency = 4).await;
    let ids =
        env.enqueue((0..4).map(|n| env.site.url(&format!("/slow/1500/{n}"))).collect(), JobTemplate::default()).await;
    let worker = env.spawn_worker();
    let deadline = Instant::now() + Duration::from_secs(20);
    while (0..4).map(|n| env.site.hits(&format!("/slow/1500/{n}")).len()).sum::<usize>() < 4 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = worker.stop().await;
    assert_eq!(report.done, 4, "{report:?}");
    let results = env.results(4, Duration::from_secs(5)).await;
    assert_each_job_done_once(&ids, &results);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_still_running_after_the_grace_period_are_handed_back() {
    let env = TestEnv::with(|c| {
        c.worker.concurrency = 3;
        c.worker.shutdown_grace_secs = 0;
    })
    .await;
    let ids =
        env.enqueue((0..3).map(|n| env.site.url(&format!("/slow/3000/{n}"))).collect(), JobTemplate::default()).await;
    let worker = env.spawn_worker();
    let deadline = Instant::now() + Duration::from_secs(20);
    while (0..3).map(|n| env.site.hits(&format!("/slow/3000/{n}")).len()).sum::<usize>() < 3 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = worker.stop().await;
    assert_eq!(report.handed_back, 3, "{report:?}");

    let again = spawn_worker_with(env.config.clone());
    let results = env.results(3, Duration::from_secs(30)).await;
    again.stop().await;
    assert_each_job_done_once(&ids, &results);
    env.cleanup().await;
}
