//! Fault injection on real services: a private RabbitMQ node stopped and started under load
//! (retries waiting in every short delay tier, a job in flight longer than the grace period),
//! deliveries handed back again and again, and a message at its lane's delivery limit. For
//! each: no job lost, none dead-lettered that should have succeeded, counts printed.
//!
//! Tests that stop the broker run on their own node (`common::PrivateRabbit`), so the rest of
//! the suite, running at the same time on the shared one, is not disturbed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{PrivateRabbit, TestEnv};
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
