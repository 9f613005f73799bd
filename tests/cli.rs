//! The `riptide` binary's contract with people: clear errors for bad configuration and
//! refusal to run against an outdated topology.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

fn riptide() -> Command {
    Command::new(env!("CARGO_BIN_EXE_riptide"))
}

#[test]
fn a_bad_config_value_fails_at_start_naming_the_key() {
    let output = riptide().args(["status", "x"]).env("RIPTIDE_WORKER__CONCURRENCY", "lots").output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr).to_lowercase();
    assert!(stderr.contains("worker.concurrency") && stderr.contains("lots"), "{stderr}");

    let output = riptide()
        .args(["status", "x"])
        .env("RIPTIDE_RETRY__FACTOR", "0.5")
        .env("RIPTIDE_NAMESPACE", "")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("retry.factor") && stderr.contains("namespace"), "all problems at once: {stderr}");

    let output = riptide().args(["--config", "/nonexistent.toml", "status", "x"]).output().unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not exist"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_refuses_a_namespace_that_was_never_migrated() {
    let config = std::sync::Arc::new(common::test_config(|_| {}));
    let stop = tokio_util::sync::CancellationToken::new();
    let error = riptide::worker::run(config, Default::default(), stop).await.unwrap_err();
    assert!(error.to_string().contains("riptide migrate"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_is_idempotent_and_safe_to_run_concurrently() {
    let config = common::test_config(|_| {});
    let runs = (0..4).map(|_| riptide::migrate::migrate(&config));
    for result in futures_util::future::join_all(runs).await {
        result.unwrap();
    }
    riptide::migrate::migrate(&config).await.unwrap();
    riptide::migrate::remove(&config).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_and_results_commands_work_end_to_end() {
    let env = common::TestEnv::new().await;
    let ns = env.config.namespace.clone();
    let run = |args: &[&str]| {
        riptide()
            .args(args)
            .env("RIPTIDE_NAMESPACE", &ns)
            .env("RIPTIDE_ALLOW_PRIVATE_NETWORKS", "true")
            .output()
            .unwrap()
    };
    let url = env.site.url("/page/5");
    let enqueued =
        tokio::task::block_in_place(|| run(&["enqueue", &url, "ftp://nope/", "--print-ids", "--format", "json"]));
    assert_eq!(enqueued.status.code(), Some(2), "a rejected line makes the exit code 2");
    let stderr = String::from_utf8_lossy(&enqueued.stderr);
    assert!(stderr.contains("accepted 1 job(s), rejected 1") && stderr.contains("ftp"), "{stderr}");
    let id = String::from_utf8_lossy(&enqueued.stdout).trim().to_string();

    let worked = tokio::task::block_in_place(|| run(&["worker", "--drain"]));
    assert!(worked.status.success(), "{}", String::from_utf8_lossy(&worked.stderr));
    let results = tokio::task::block_in_place(|| run(&["results"]));
    let line = String::from_utf8_lossy(&results.stdout);
    let result: riptide::job::JobResult = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert_eq!(result.job_id, id);
    let status = tokio::task::block_in_place(|| run(&["status", &id]));
    assert!(String::from_utf8_lossy(&status.stdout).contains("\"done\""));
    env.cleanup().await;
}

/// A worker stopped by SIGTERM logs no ERROR: ERROR is for operators to act on, and a
/// normal shutdown used to log `lapin::channels: Connection error invalid channel state:
/// Closing` (a dropped channel closed in the background raced the connection's close).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_shutdown_logs_no_error() {
    let env = common::TestEnv::new().await;
    let mut child = riptide()
        .arg("worker")
        .env("RIPTIDE_NAMESPACE", &env.config.namespace)
        .env("RIPTIDE_OPS_ADDR", "127.0.0.1:0")
        .env("RIPTIDE_LOG_FORMAT", "human")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let output = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        (status, stderr)
    })
    .await
    .unwrap();
    assert!(output.0.success(), "{}", output.1);
    assert!(output.1.contains("Consuming jobs"), "the worker never consumed: {}", output.1);
    assert!(!output.1.contains("ERROR"), "a normal shutdown logged an ERROR:\n{}", output.1);
    env.cleanup().await;
}
