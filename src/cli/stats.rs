//! `riptide stats`: one screen with the namespace's queues (ready, unacked, consumers, rates),
//! the dead-letter queue and the live workers (from their Redis heartbeats).
//!
//! Ready counts and consumers come over AMQP; unacked counts and rates come from RabbitMQ's
//! management API when `ops.management_url` is set and reachable (shown as `-` otherwise).

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use crate::broker::inspect::{Inspector, QueueDepth};
use crate::broker::{Topology, connect};
use crate::config::Config;
use crate::store::Store;

/// One queue row.
#[derive(Debug, Clone, Serialize)]
pub struct QueueRow {
    /// Logical name (jobs, jobs_high, retry, dlq, results).
    pub name: String,
    /// Messages ready.
    pub ready: u64,
    /// Messages delivered and not yet acked (management API).
    pub unacked: Option<u64>,
    /// Consumers.
    pub consumers: u64,
    /// Messages published per second (management API).
    pub publish_rate: Option<f64>,
    /// Messages acked per second (management API).
    pub ack_rate: Option<f64>,
}

/// Everything `riptide stats` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// The namespace.
    pub namespace: String,
    /// Queue rows.
    pub queues: Vec<QueueRow>,
    /// Live workers' heartbeat records.
    pub workers: Vec<HashMap<String, String>>,
    /// Whether the management API answered.
    pub management_api: bool,
    /// Origins paced and blocked now (politeness).
    pub hosts: super::hosts::HostCounts,
}

/// Collects the stats of `config`'s namespace.
pub async fn collect(config: &Config) -> anyhow::Result<Stats> {
    let topology = Topology::new(&config.namespace)?;
    let connection = connect(&config.amqp_url, "riptide-stats").await?;
    let depths = Inspector::open(&connection).await?.namespace_depths(&topology).await?;
    connection.close("stats").await;
    let management = management_figures(config, &depths).await;
    let management_api = management.is_some();
    let management = management.unwrap_or_default();
    let queues = depths
        .into_iter()
        .map(|depth| {
            let figures: Vec<&QueueFigures> = depth.queues.iter().filter_map(|q| management.get(q)).collect();
            let sum = |f: fn(&QueueFigures) -> f64| figures.iter().map(|x| f(x)).sum::<f64>();
            QueueRow {
                name: depth.name.to_string(),
                ready: depth.ready,
                unacked: management_api.then(|| sum(|f| f.unacked) as u64),
                consumers: depth.consumers,
                publish_rate: management_api.then(|| sum(|f| f.publish_rate)),
                ack_rate: management_api.then(|| sum(|f| f.ack_rate)),
            }
        })
        .collect();
    let store = Store::new(&config.redis_url, &config.namespace, &config.store)?;
    let mut workers = store.workers().await?;
    workers.sort_by(|a, b| a.get("worker").cmp(&b.get("worker")));
    let hosts = super::hosts::counts(config).await?;
    Ok(Stats { namespace: config.namespace.clone(), queues, workers, management_api, hosts })
}

#[derive(Debug, Default, Clone, Copy)]
struct QueueFigures {
    unacked: f64,
    publish_rate: f64,
    ack_rate: f64,
}

/// Per-queue figures from the management API, or `None` when it is not configured or
/// does not answer within two seconds.
async fn management_figures(config: &Config, depths: &[QueueDepth]) -> Option<HashMap<String, QueueFigures>> {
    if config.ops.management_url.is_empty() {
        return None;
    }
    let amqp = url::Url::parse(&config.amqp_url).ok()?;
    let vhost = match amqp.path().trim_start_matches('/') {
        "" | "%2f" | "%2F" => "%2F".to_string(),
        other => other.to_string(),
    };
    let user = urlencoding_decode(amqp.username());
    let password = amqp.password().map(urlencoding_decode);
    crate::fetch::install_crypto_provider();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).no_proxy().build().ok()?;
    let mut figures = HashMap::new();
    for queue in depths.iter().flat_map(|d| d.queues.iter()) {
        let url = format!("{}/api/queues/{vhost}/{queue}", config.ops.management_url.trim_end_matches('/'));
        let response = client.get(&url).basic_auth(&user, password.as_deref()).send().await.ok()?;
        let bytes = response.error_for_status().ok()?.bytes().await.ok()?;
        let body: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        let rate = |key: &str| body["message_stats"][key]["rate"].as_f64().unwrap_or(0.0);
        figures.insert(
            queue.clone(),
            QueueFigures {
                unacked: body["messages_unacknowledged"].as_f64().unwrap_or(0.0),
                publish_rate: rate("publish_details"),
                ack_rate: rate("ack_details"),
            },
        );
    }
    Some(figures)
}

fn urlencoding_decode(raw: &str) -> String {
    url::form_urlencoded::parse(format!("x={raw}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

/// The pools of one worker, from the JSON its heartbeat carries.
fn pool_lines(worker: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let name = worker.get("worker").map_or("-", String::as_str);
    if let Some(wasm) = worker.get("wasm").and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok()) {
        out.push_str(&format!(
            "  {name} wasm: slots {}/{}, tier memory {} / {} MiB, compiles {}\n",
            wasm["slots_in_use"],
            wasm["slots"],
            wasm["tier_memory_bytes"].as_u64().unwrap_or(0) >> 20,
            wasm["memory_budget_bytes"].as_u64().unwrap_or(0) >> 20,
            wasm["compiles"]
        ));
        for e in wasm["extractors"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "    {:<12} tier {:<5} hot {}/{}  leases hot {} warm {} cold {}  breaker {}  fallbacks {}\n",
                e["name"].as_str().unwrap_or("-"),
                e["tier"].as_str().unwrap_or("-"),
                e["hot_idle"],
                e["hot_target"],
                e["leases_hot"],
                e["leases_warm"],
                e["leases_cold"],
                e["breaker"].as_str().unwrap_or("-"),
                e["fallbacks"]
            ));
        }
    }
    if let Some(browser) = worker.get("browser").and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok()) {
        out.push_str(&format!(
            "  {name} browsers: {} alive, {} leased tabs, {} warm contexts, pages ok {}, crashes {}\n",
            browser["browsers_alive"],
            browser["leases"],
            browser["warm_contexts"],
            browser["pages_ok"],
            browser["browser_crashes"]
        ));
        for b in browser["browsers"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "    pid {}  pages {}  PSS {} MiB\n",
                b["pid"],
                b["pages"],
                b["pss_bytes"].as_u64().unwrap_or(0) >> 20
            ));
        }
    }
    out
}

/// The one-screen table.
pub fn render(stats: &Stats) -> String {
    let mut out = format!("namespace {}\n\n", stats.namespace);
    out.push_str(&format!(
        "{:<10} {:>9} {:>9} {:>9} {:>10} {:>10}\n",
        "queue", "ready", "unacked", "consumers", "in/s", "acked/s"
    ));
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    for q in &stats.queues {
        out.push_str(&format!(
            "{:<10} {:>9} {:>9} {:>9} {:>10} {:>10}\n",
            q.name,
            q.ready,
            q.unacked.map_or("-".to_string(), |v| v.to_string()),
            q.consumers,
            opt(q.publish_rate),
            opt(q.ack_rate)
        ));
    }
    out.push_str(&format!(
        "\norigins: {} paced, {} blocked{} (riptide hosts)\n",
        stats.hosts.paced,
        stats.hosts.blocked,
        if stats.hosts.truncated { ", more not counted" } else { "" }
    ));
    out.push_str(&format!("\nworkers: {}\n", stats.workers.len()));
    let field = |w: &HashMap<String, String>, k: &str| w.get(k).cloned().unwrap_or_else(|| "-".to_string());
    for w in &stats.workers {
        out.push_str(&format!(
            "  {}  in flight {}/{}  done {}  retried {}  dead {}  handed back {}\n",
            field(w, "worker"),
            field(w, "in_flight"),
            field(w, "concurrency"),
            field(w, "done"),
            field(w, "retried"),
            field(w, "dead"),
            field(w, "handed_back")
        ));
    }
    for w in &stats.workers {
        out.push_str(&pool_lines(w));
    }
    if !stats.management_api {
        out.push_str("\n(unacked counts and rates need RabbitMQ's management API: ops.management_url)\n");
    }
    out
}
