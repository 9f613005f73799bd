//! Fault injection on real services: a private RabbitMQ node stopped and started under load
//! (retries waiting in every short delay tier, a job in flight longer than the grace period),
//! deliveries handed back again and again, a message at its lane's delivery limit, Redis with
//! its append-only file killed mid-run, and a worker process killed again and again. For each:
//! no job lost, none dead-lettered that should have succeeded, counts printed.
//!
//! Tests that stop the broker run on their own node (`common::PrivateRabbit`), so the rest of
//! the suite, running at the same time on the shared one, is not disturbed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{
    Collector, PrivateRabbit, TestEnv, assert_each_job_done_once, free_port, spawn_worker_process, start_redis_with,
    terminate,
};
use lapin::options::{BasicGetOptions, BasicNackOptions};
use riptide::job::Outcome;
use riptide::producer::JobTemplate;

/// Messages ready in `queues` of the env's broker, summed.
async fn depth(env: &TestEnv, queues: &[String]) -> u32 {
    let connection = env.connection().await;
    let channel = connection.create_channel().await.unwrap();
    let mut total = 0;
    for queue in queues {
        let options = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
        total +=
            channel.queue_declare(queue.as_str().into(), options, Default::default()).await.unwrap().message_count();
    }
    let _ = connection.close(200, "".into()).await;
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_waiting_in_delay_queues_survive_a_broker_restart() {
    let rabbit = tokio::task::spawn_blocking(PrivateRabbit::start).await.unwrap();
    let url = rabbit.url();
    let env = TestEnv::with(|c| {
        c.amqp_url = url;
        c.worker.concurrency = 8;
    })
    .await;
    let topology = riptide::broker::Topology::new(&env.config.namespace).unwrap();
    // Each page answers 503 once with a Retry-After that lands its retry in one delay tier:
    // the short tiers expire while the broker is down, the long one must still hold its job.
    let short_tiers = [1u64, 2, 5, 10];
    let mut urls = Vec::new();
    for secs in short_tiers {
        for n in 0..3 {
            urls.push(env.site.url(&format!("/flaky/1/t{secs}-{n}?retry_after={secs}")));
        }
    }
    let long_url = env.site.url("/flaky/1/long?retry_after=600");
    urls.push(long_url);
    let ids = env.enqueue(urls.clone(), JobTemplate::default()).await;
    let worker = env.spawn_worker();

    // Wait until every job failed once and waits in a delay queue.
    let deadline = Instant::now() + Duration::from_secs(60);
    let delay_queues = topology.delay_queues();
    loop {
        let waiting = depth(&env, &delay_queues).await;
        if waiting as usize == urls.len() {
            break;
        }
        assert!(Instant::now() < deadline, "only {waiting} of {} jobs reached the delay queues", urls.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::task::block_in_place(|| rabbit.stop_app());
    tokio::time::sleep(Duration::from_secs(12)).await; // every short tier expires while down
    tokio::task::block_in_place(|| rabbit.start_app());

    let results = env.results(urls.len() - 1, Duration::from_secs(90)).await;
    let report = worker.stop().await;
    let finished: HashSet<&str> =
        results.iter().filter(|r| r.outcome == Outcome::Ok).map(|r| r.job_id.as_str()).collect();
    let long_waiting =
        depth(&env, &[topology.delay_queue(riptide::broker::Lane::Normal, Duration::from_secs(600))]).await;
    eprintln!(
        "broker restart: {} of {} short-tier retries came back ok, {long_waiting} long-tier retry still held, report {report:?}",
        finished.len(),
        urls.len() - 1
    );
    for id in &ids[..urls.len() - 1] {
        assert!(finished.contains(id.as_str()), "job {id} was lost across the broker restart");
    }
    assert_eq!(long_waiting, 1, "the 600 s retry left its delay queue");
    assert!(env.dead_letters().await.is_empty());
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_job_across_a_broker_restart_does_not_poison_the_worker() {
    let rabbit = tokio::task::spawn_blocking(PrivateRabbit::start).await.unwrap();
    let url = rabbit.url();
    let env = TestEnv::with(|c| {
        c.amqp_url = url;
        c.worker.shutdown_grace_secs = 2;
        c.job.max_timeout_ms = 60_000;
    })
    .await;
    let slow = env
        .enqueue(
            vec![env.site.url("/slow/30000/1")],
            JobTemplate { timeout_ms: Some(60_000), ..JobTemplate::default() },
        )
        .await;
    let worker = env.spawn_worker();
    let deadline = Instant::now() + Duration::from_secs(20);
    while env.site.hits("/slow/30000/1").is_empty() {
        assert!(Instant::now() < deadline, "the slow job never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The session ends with the slow job in flight past the grace period.
    tokio::task::block_in_place(|| rabbit.stop_app());
    tokio::time::sleep(Duration::from_secs(4)).await;
    tokio::task::block_in_place(|| rabbit.start_app());

    let after =
        env.enqueue((0..50).map(|n| env.site.url(&format!("/page/{n}"))).collect(), JobTemplate::default()).await;
    let results = env.results(51, Duration::from_secs(120)).await;
    let report = worker.stop().await;
    let ok: HashSet<&str> = results.iter().filter(|r| r.outcome == Outcome::Ok).map(|r| r.job_id.as_str()).collect();
    eprintln!("slow job across a restart: {} of 51 ok, report {report:?}", ok.len());
    for id in after.iter().chain(&slow) {
        assert!(ok.contains(id.as_str()), "job {id} did not end ok");
    }
    assert!(env.dead_letters().await.is_empty(), "healthy jobs were dead-lettered");
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_backs_at_shutdown_do_not_use_up_the_delivery_limit() {
    let env = TestEnv::with(|c| c.worker.shutdown_grace_secs = 0).await;
    let limit = riptide::broker::Topology::new(&env.config.namespace).unwrap().delivery_limit.unwrap();
    let ids = env.enqueue(vec![env.site.url("/slow/1500/1")], JobTemplate::default()).await;
    // Stop a worker mid-job more times than the lane allows deliveries.
    for round in 1..=(limit + 2) as usize {
        let worker = env.spawn_worker();
        let deadline = Instant::now() + Duration::from_secs(20);
        while env.site.hits("/slow/1500/1").len() < round {
            assert!(Instant::now() < deadline, "round {round}: the job was not redelivered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let report = worker.stop().await;
        assert_eq!(report.handed_back, 1, "round {round}: {report:?}");
    }
    let worker = env.spawn_worker();
    let results = env.results(1, Duration::from_secs(30)).await;
    worker.stop().await;
    eprintln!("{} hand-backs, then outcome {:?}", limit + 2, results[0].outcome);
    assert_eq!(results[0].job_id, ids[0]);
    assert_eq!(results[0].outcome, Outcome::Ok);
    assert!(env.dead_letters().await.is_empty());
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_at_its_delivery_limit_ends_dead_with_a_failed_result() {
    let env = TestEnv::new().await;
    let limit = riptide::broker::Topology::new(&env.config.namespace).unwrap().delivery_limit.unwrap();
    let ids = env.enqueue(vec![env.site.url("/page/1")], JobTemplate::default()).await;
    // A consumer that dies on the message at every delivery, as a crashing worker would.
    let connection = env.connection().await;
    let channel = connection.create_channel().await.unwrap();
    let lane = format!("{}.jobs", env.config.namespace);
    for _ in 0..limit - 1 {
        let message = loop {
            if let Some(m) = channel.basic_get(lane.as_str().into(), BasicGetOptions::default()).await.unwrap() {
                break m;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        message.delivery.acker.nack(BasicNackOptions { requeue: true, ..Default::default() }).await.unwrap();
    }
    let _ = connection.close(200, "".into()).await;

    let worker = env.spawn_worker();
    let results = env.results(1, Duration::from_secs(30)).await;
    let letters = env.wait_dead_letters(1, Duration::from_secs(10)).await;
    let report = worker.stop().await;
    assert_eq!(results[0].outcome, Outcome::Failed);
    assert_eq!(results[0].error.as_ref().map(|e| e.reason.as_str()), Some("delivery_limit"));
    assert_eq!(letters[0].reason(), "delivery_limit");
    assert_eq!(report.dead, 1);
    assert_eq!(env.site.hits("/page/1").len(), 0, "the exhausted message was run again");
    let store = riptide::store::Store::new(&env.config.redis_url, &env.config.namespace, &env.config.store).unwrap();
    let record = store.job_record(&ids[0]).await.unwrap();
    assert_eq!(record.get("state").map(String::as_str), Some("dead"));
    env.cleanup().await;
}

/// Redis as an operator runs it for durability (AOF, fsync on every write), killed with SIGKILL
/// mid-run and started again on the same file: every job ends once, and every document the
/// results point at is still stored afterwards, as is each job's final state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_with_its_aof_loses_no_document() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let aof = ["--appendonly", "yes", "--appendfsync", "always", "--dir", dir.path().to_str().unwrap()];
    let mut redis = start_redis_with(port, &aof);
    let env = TestEnv::with(|c| {
        c.redis_url = format!("redis://127.0.0.1:{port}");
        c.worker.concurrency = 4;
    })
    .await;
    let ids =
        env.enqueue((0..30).map(|n| env.site.url(&format!("/slow/150/{n}"))).collect(), JobTemplate::default()).await;
    let collector = Collector::start(&env).await;
    let worker = env.spawn_worker();
    collector.wait_for_jobs(10, Duration::from_secs(60)).await;
    redis.kill().unwrap(); // SIGKILL: no shutdown save, only what the AOF holds
    redis.wait().unwrap();
    let before_kill = collector.distinct_jobs();
    tokio::time::sleep(Duration::from_secs(1)).await;
    redis = start_redis_with(port, &aof);

    collector.wait_for_jobs(30, Duration::from_secs(90)).await;
    let report = worker.stop().await;
    let results = collector.finish();
    let duplicates = assert_each_job_done_once(&ids, &results);

    let store = riptide::store::Store::new(&env.config.redis_url, &env.config.namespace, &env.config.store).unwrap();
    let mut missing = Vec::new();
    for result in &results {
        let key = result.doc_key.as_deref().unwrap();
        if store.get_doc(key).await.unwrap().is_none() {
            missing.push(key.to_string());
        }
    }
    for id in &ids {
        assert_eq!(store.job_record(id).await.unwrap().get("state").map(String::as_str), Some("done"), "job {id}");
    }
    eprintln!("Redis AOF kill: {before_kill} jobs done before the kill, {duplicates} duplicate result(s)");
    assert!(missing.is_empty(), "documents lost with the Redis kill: {missing:?}");
    assert_eq!(report.dead, 0);
    env.cleanup().await;
    redis.kill().unwrap();
    let _ = redis.wait();
}

/// A worker process killed with SIGKILL three times, each time with jobs in flight, then one
/// left to finish: every job ends once with its document, nothing reaches the dead-letter
/// queue (three kills stay well inside the lanes' delivery limit of 10).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_again_and_again_loses_nothing() {
    let env = TestEnv::new().await;
    let ids =
        env.enqueue((0..60).map(|n| env.site.url(&format!("/slow/200/{n}"))).collect(), JobTemplate::default()).await;
    let collector = Collector::start(&env).await;
    let mut finished_at_kill = Vec::new();
    for round in 1..=3 {
        let mut worker = spawn_worker_process(&env);
        collector.wait_for_jobs(round * 8, Duration::from_secs(60)).await;
        worker.kill().unwrap();
        worker.wait().unwrap();
        finished_at_kill.push(collector.distinct_jobs());
    }
    assert!(finished_at_kill[2] < 60, "the kills came too late to test anything: {finished_at_kill:?}");

    let mut last = spawn_worker_process(&env);
    collector.wait_for_jobs(60, Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    terminate(&mut last);
    let results = collector.finish();

    let duplicates = assert_each_job_done_once(&ids, &results);
    eprintln!("repeated SIGKILL: jobs done at each kill {finished_at_kill:?}, {duplicates} duplicate result(s)");
    assert!(env.dead_letters().await.is_empty(), "nothing may be dead-lettered");
    env.cleanup().await;
}
