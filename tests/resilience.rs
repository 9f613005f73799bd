//! Crashes and outages: a worker killed with SIGKILL mid-flight, Redis stopped and started
//! mid-run, two workers on one queue, graceful shutdown. Every job must end in results or
//! the dead-letter queue; none may be lost.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{
    Collector, TestEnv, assert_each_job_done_once, free_port, spawn_worker_process, spawn_worker_with, start_redis,
    terminate,
};
use riptide::producer::JobTemplate;

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
