//! The operator surface against real services: readiness following Redis, `dlq list`,
//! `dlq replay` after the page is fixed, `dlq purge`, and `stats --json` matching the broker.
//! The metrics endpoint has its own binary (`ops_metrics.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{TestEnv, free_port, start_redis};
use riptide::ops::health::Health;
use riptide::producer::JobTemplate;
use tokio_util::sync::CancellationToken;

async fn wait_ready(health: &Health, ready: bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while health.not_ready_because().is_empty() != ready {
        assert!(Instant::now() < deadline, "readiness stuck at {:?}", health.not_ready_because());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_redis() {
    let port = free_port();
    let mut redis = start_redis(port);
    let env = TestEnv::with(|c| {
        c.redis_url = format!("redis://127.0.0.1:{port}");
        c.ops.poll_interval_ms = 100;
    })
    .await;
    let health = Health::default();
    let stop = CancellationToken::new();
    let options = riptide::worker::WorkerOptions { drain: false, health: health.clone() };
    let worker = tokio::spawn(riptide::worker::run(env.config.clone(), options, stop.clone()));
    wait_ready(&health, true).await;

    redis.kill().unwrap();
    redis.wait().unwrap();
    wait_ready(&health, false).await;
    assert!(health.not_ready_because().contains(&"redis unreachable"));
    redis = start_redis(port);
    wait_ready(&health, true).await;

    stop.cancel();
    worker.await.unwrap().unwrap();
    redis.kill().unwrap();
    let _ = redis.wait();
    env.cleanup().await;
}

fn riptide_cli(env: &TestEnv, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_riptide"))
        .args(args)
        .env("RIPTIDE_NAMESPACE", &env.config.namespace)
        .env("RIPTIDE_ALLOW_PRIVATE_NETWORKS", "true")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_replay_succeeds_once_the_page_is_fixed_and_stats_match() {
    let env = TestEnv::new().await;
    // /flaky/1/... fails once with 503; with max_attempts 1 that first failure is final.
    let template = JobTemplate { max_attempts: Some(1), ..JobTemplate::default() };
    let ids = env.enqueue(vec![env.site.url("/flaky/1/fixme"), env.site.url("/status/404")], template).await;
    let worker = env.spawn_worker();
    env.results(2, Duration::from_secs(30)).await;
    worker.stop().await;

    let list = tokio::task::block_in_place(|| riptide_cli(&env, &["dlq", "list", "--json"]));
    let listed: Vec<serde_json::Value> =
        String::from_utf8_lossy(&list.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(listed.len(), 2, "{listed:?}");

    let stats = tokio::task::block_in_place(|| riptide_cli(&env, &["stats", "--json"]));
    assert!(stats.status.success(), "{}", String::from_utf8_lossy(&stats.stderr));
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    let dlq = stats["queues"].as_array().unwrap().iter().find(|q| q["name"] == "dlq").unwrap();
    assert_eq!(dlq["ready"], 2);

    let dry = tokio::task::block_in_place(|| riptide_cli(&env, &["dlq", "replay", &ids[0], "--dry-run"]));
    assert!(String::from_utf8_lossy(&dry.stdout).contains("would replay 1 of 1"), "{dry:?}");
    let replay = tokio::task::block_in_place(|| riptide_cli(&env, &["dlq", "replay", &ids[0]]));
    assert!(String::from_utf8_lossy(&replay.stdout).contains("replayed 1 of 1"), "{replay:?}");

    // The page answers now (its one failure is spent): the replayed job succeeds.
    let worker = env.spawn_worker();
    let results = env.results(1, Duration::from_secs(30)).await;
    worker.stop().await;
    assert_eq!(results[0].job_id, ids[0]);
    assert_eq!(results[0].outcome, riptide::job::Outcome::Ok);

    let purge = tokio::task::block_in_place(|| riptide_cli(&env, &["dlq", "purge", "--reason", "http_status"]));
    assert!(String::from_utf8_lossy(&purge.stdout).contains("purged 1"), "{purge:?}");
    assert!(env.dead_letters().await.is_empty());
    let refused = tokio::task::block_in_place(|| riptide_cli(&env, &["dlq", "purge"]));
    assert!(!refused.status.success(), "purge without a selection must refuse");
    env.cleanup().await;
}
