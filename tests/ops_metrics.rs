//! The metrics endpoint after a run of jobs: every family, counts matching what the test did,
//! queue and DLQ depth gauges matching the broker, and every metric the Grafana dashboard
//! queries present; the Docker compose and Prometheus files parse. Its own test binary: the metrics recorder is process-wide, so no other
//! test may add to its counts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{TestEnv, repo_file};
use riptide::job::Render;
use riptide::ops::health::Health;
use riptide::producer::JobTemplate;
use tokio_util::sync::CancellationToken;

async fn get(url: &str) -> (u16, String) {
    riptide::fetch::install_crypto_provider();
    let response = reqwest::Client::new().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, String::from_utf8_lossy(&response.bytes().await.unwrap()).into_owned())
}

/// The value of the first sample of `name` whose labels contain every `label` given.
fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']))
        .find(|line| labels.iter().all(|l| line.contains(l)))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Every metric name the dashboard's queries use.
fn dashboard_metrics() -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo_file("docker/grafana/dashboards/riptide.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut names = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for token in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if let Some(base) = token.strip_prefix("riptide_") {
                    let base = base.trim_end_matches("_bucket").trim_end_matches("_sum").trim_end_matches("_count");
                    names.insert(format!("riptide_{base}"));
                }
            }
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_exposes_every_family_with_matching_counts() {
    let env = TestEnv::with(|c| c.ops.poll_interval_ms = 200).await;
    let handle = riptide::ops::exporter::install().unwrap();
    let health = Health::default();
    let stop = CancellationToken::new();
    let (addr, _server) =
        riptide::ops::server::serve("127.0.0.1:0".parse().unwrap(), handle, health.clone(), stop.clone())
            .await
            .unwrap();

    let ok: Vec<String> = (0..6).map(|n| env.site.url(&format!("/page/{n}"))).collect();
    env.enqueue(ok, JobTemplate::default()).await;
    env.enqueue(vec![env.site.url("/status/404"), env.site.url("/status/410")], JobTemplate::default()).await;
    // One rendered job, so the browser pool starts and its families appear.
    env.enqueue(
        vec![env.site.url("/page/9")],
        JobTemplate { render: Some(Render::Headless), ..JobTemplate::default() },
    )
    .await;
    let worker_stop = CancellationToken::new();
    let options = riptide::worker::WorkerOptions { drain: false, health: health.clone() };
    let worker = tokio::spawn(riptide::worker::run(env.config.clone(), options, worker_stop.clone()));
    env.results(9, Duration::from_secs(60)).await;

    // The depth gauges come from the broker poll: wait for one after the dead letters landed.
    let deadline = Instant::now() + Duration::from_secs(15);
    let metrics = loop {
        let (status, body) = get(&format!("http://{addr}/metrics")).await;
        assert_eq!(status, 200);
        // The browser gauges are published by the pool's memory poll, once a second.
        if sample(&body, "riptide_queue_depth", &["queue=\"dlq\""]) == Some(2.0)
            // The browser families exist at zero from the start; wait for the live browser.
            && sample(&body, "riptide_browser_alive", &[]).is_some_and(|alive| alive >= 1.0)
        {
            break body;
        }
        assert!(Instant::now() < deadline, "DLQ depth gauge never reached 2 or no browser gauge:\n{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(sample(&metrics, "riptide_jobs_total", &["outcome=\"ok\""]), Some(7.0), "{metrics}");
    // A dead-lettered job's label says what its result says: failed.
    assert_eq!(sample(&metrics, "riptide_jobs_total", &["outcome=\"failed\"", "reason=\"http_status\""]), Some(2.0));
    assert_eq!(sample(&metrics, "riptide_dead_letters_total", &["reason=\"http_status\""]), Some(2.0));
    assert_eq!(sample(&metrics, "riptide_deliveries_total", &["lane=\"normal\""]), Some(9.0));
    // Only stages that ran are timed: six static fetches, one render (which fetched nothing).
    assert_eq!(sample(&metrics, "riptide_stage_duration_seconds_count", &["stage=\"fetch\""]), Some(6.0));
    assert_eq!(sample(&metrics, "riptide_stage_duration_seconds_count", &["stage=\"render\""]), Some(1.0));
    assert_eq!(sample(&metrics, "riptide_stage_duration_seconds_count", &["stage=\"extract\""]), Some(7.0));
    assert_eq!(sample(&metrics, "riptide_wasm_leases_total", &[]).map(|_| ()), Some(()), "WASM leases counted");
    assert_eq!(sample(&metrics, "riptide_browser_alive", &[]).map(|v| v >= 1.0), Some(true), "{metrics}");
    assert_eq!(sample(&metrics, "riptide_queue_depth", &["queue=\"jobs\""]), Some(0.0));
    assert_eq!(sample(&metrics, "riptide_broker_connected", &[]), Some(1.0));
    assert_eq!(sample(&metrics, "riptide_redis_connected", &[]), Some(1.0));
    for family in
        ["riptide_jobs_total", "riptide_stage_duration_seconds", "riptide_queue_depth", "riptide_queue_consumers"]
    {
        assert!(metrics.contains(&format!("# TYPE {family}")), "{family} missing");
    }
    assert!(!metrics.contains("http://"), "no URL may appear in a label");
    assert_eq!(get(&format!("http://{addr}/healthz")).await.0, 200);
    assert_eq!(get(&format!("http://{addr}/readyz")).await.0, 200);

    // Every metric the Grafana dashboard queries is described by this worker, except the
    // pools' families when those pools are not part of this build's pipeline yet.
    let missing: Vec<String> = dashboard_metrics()
        .into_iter()
        .filter(|name| !metrics.contains(&format!("# TYPE {name} ")) && !metrics.contains(&format!("# HELP {name} ")))
        .collect();
    assert!(missing.is_empty(), "dashboard queries metrics the worker does not expose: {missing:?}");

    worker_stop.cancel();
    worker.await.unwrap().unwrap();
    let (status, body) = get(&format!("http://{addr}/readyz")).await;
    assert_eq!(status, 503, "a stopped worker is not ready: {body}");
    stop.cancel();
    env.cleanup().await;
}

#[test]
fn compose_file_parses_and_names_the_services() {
    let text = std::fs::read_to_string(repo_file("docker/compose.yaml")).unwrap();
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).unwrap();
    let services = &docs[0]["services"];
    for name in ["rabbitmq", "redis", "migrate", "worker-1", "worker-2", "prometheus", "grafana"] {
        assert!(!services[name].is_badvalue(), "service {name} missing");
    }
    let prometheus = std::fs::read_to_string(repo_file("docker/prometheus.yml")).unwrap();
    let prometheus = yaml_rust2::YamlLoader::load_from_str(&prometheus).unwrap();
    assert!(!prometheus[0]["scrape_configs"][0]["static_configs"].is_badvalue());
    assert!(!dashboard_metrics().is_empty());
}
