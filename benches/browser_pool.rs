//! Rendering throughput of three strategies on the same fixture pages, in one run:
//! the pool (a fresh incognito context per page, warm contexts, several tabs), a naive new
//! browser per page, and one reused tab with no isolation at all.
//!
//! Run: `cargo bench -p riptide --bench browser_pool` (under `cargo test` it is a smoke run of
//! a few pages). Knobs (environment): `BENCH_PAGES` (pooled and single-tab pages per run,
//! default 1000), `BENCH_NAIVE_PAGES` (default 30: a
//! browser launch per page is slow), `BENCH_RUNS` (default 1), `BENCH_TABS` (pool tabs,
//! default 3), `BENCH_WARM` (warm contexts, default = tabs), `BENCH_EXTRA_ARGS` (Chromium
//! switches for the pool, space-separated, no `--`), `BENCH_GUARD=1` (the pool's in-browser
//! request guard on, as in production, with the fixture's origin allowed; off by default: the
//! other strategies have no guard), `BENCH_POOL_ONLY=1` (only the pooled
//! path: a long run for its peak PSS). It prints pages/s, p50/p99 latency and peak PSS (sum over every Chromium
//! process of the strategy, sampled every 100 ms from /proc) per strategy and run, then the
//! medians over runs. It asserts nothing: figures on 2 shared cores are noisy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use chromiumoxide::cdp::browser_protocol::page::NavigateParams;
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use chromiumoxide::{Browser, Page};
use futures_util::StreamExt;
use riptide::browser::{BrowserConfig, BrowserPool, RenderRequest, capture_expression};
use url::Url;

const JS_HTML: &str = "<!doctype html><html><head><title>Late</title></head><body><div id=\"root\"></div><script>\
window.addEventListener('load', () => setTimeout(() => { const ul = document.createElement('ul'); ul.id = 'dyn';\
for (let i = 0; i < 200; i++) { const li = document.createElement('li'); li.textContent = 'item ' + i; ul.appendChild(li); }\
document.getElementById('root').appendChild(ul); }, 50));</script></body></html>";
const SPA_HTML: &str = "<!doctype html><html><head><title>App</title><script>\
window.addEventListener('load', async () => { const d = await (await fetch('/api/data')).json();\
document.getElementById('app').innerHTML = '<article><h1>' + d.title + '</h1><p>' + d.body + '</p></article>'; });\
</script></head><body><div id=\"app\"></div></body></html>";
const STATIC_HTML: &str = "<!doctype html><html><head><title>Static</title></head><body><h1>Static</h1>\
<p>Plain server-rendered text.</p></body></html>";

/// The fixture pages and the selector that says each is rendered.
const PAGES: [(&str, &str); 3] = [("/js", "#dyn"), ("/spa", "article"), ("/static", "h1")];

#[derive(Debug, Clone, Default)]
struct Figures {
    pages: usize,
    failed: usize,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    peak_pss_mib: f64,
}

impl Figures {
    fn rate(&self) -> f64 {
        self.pages as f64 / self.seconds
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn fixture() -> SocketAddr {
    let site = Router::new()
        .route("/js", get(|| async { Html(JS_HTML) }))
        .route("/spa", get(|| async { Html(SPA_HTML) }))
        .route("/static", get(|| async { Html(STATIC_HTML) }))
        .route(
            "/api/data",
            get(|| async {
                ([(header::CONTENT_TYPE, "application/json")], r#"{"title":"T","body":"B"}"#).into_response()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, site).await.unwrap() });
    addr
}

fn work(addr: SocketAddr, n: usize) -> Vec<(Url, &'static str)> {
    (0..n)
        .map(|i| {
            let (path, selector) = PAGES[i % PAGES.len()];
            (Url::parse(&format!("http://{addr}{path}")).unwrap(), selector)
        })
        .collect()
}

/// Samples the summed PSS of every process whose command line names `marker`, keeping the peak.
struct PssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl PssSampler {
    fn start(marker: PathBuf) -> Self {
        let (stop, peak) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let task = tokio::spawn({
            let (stop, peak) = (stop.clone(), peak.clone());
            async move {
                while !stop.load(Ordering::Relaxed) {
                    let marker = marker.clone();
                    let pss = tokio::task::spawn_blocking(move || pss_of(&marker)).await.unwrap_or(0);
                    peak.fetch_max(pss, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        PssSampler { stop, peak, task }
    }

    async fn finish(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.peak.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0)
    }
}

fn pss_of(marker: &Path) -> u64 {
    let needle = marker.display().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())))
        .filter(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("smaps_rollup")).ok())
        .filter_map(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .sum::<u64>()
        * 1024
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn figures(mut latencies: Vec<f64>, failed: usize, seconds: f64, peak_pss_mib: f64) -> Figures {
    latencies.sort_by(f64::total_cmp);
    Figures {
        pages: latencies.len(),
        failed,
        seconds,
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        peak_pss_mib,
    }
}

async fn pooled(addr: SocketAddr, n: usize, tabs: usize, root: &Path) -> (Figures, u64) {
    let config = BrowserConfig {
        min_browsers: 1,
        max_browsers: 1,
        tabs_per_browser: tabs,
        profile_root: Some(root.to_path_buf()),
        warm_contexts: env("BENCH_WARM", tabs),
        extra_args: std::env::var("BENCH_EXTRA_ARGS")
            .map(|args| args.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
        guard_allow_origins: vec![format!("http://{addr}")],
        ..BrowserConfig::default()
    };
    let guard = env("BENCH_GUARD", 0) == 1;
    let pool = BrowserPool::start(config, !guard).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await; // let the warm contexts fill, as in service
    let sampler = PssSampler::start(root.to_path_buf());
    let started = Instant::now();
    let results: Vec<Result<f64, String>> = futures_util::stream::iter(work(addr, n))
        .map(|(url, selector)| {
            let pool = pool.clone();
            async move {
                let request = RenderRequest {
                    url,
                    timeout: Duration::from_secs(30),
                    wait_for: Some(selector.into()),
                    max_html_bytes: 10 << 20,
                    user_agent: None,
                    headers: Vec::new(),
                };
                let t = Instant::now();
                pool.render(&request).await.map(|_| t.elapsed().as_secs_f64() * 1000.0).map_err(|e| e.to_string())
            }
        })
        .buffer_unordered(tabs)
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    let peak = sampler.finish().await;
    let recycles: u64 = pool.stats().recycles.iter().sum();
    pool.close().await.unwrap();
    let failed = results.iter().filter(|r| r.is_err()).count();
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        eprintln!("  pooled: first failure: {e}");
    }
    (figures(results.into_iter().filter_map(Result::ok).collect(), failed, seconds, peak), recycles)
}

async fn launch(dir: &Path) -> (Browser, tokio::task::JoinHandle<()>) {
    let config = chromiumoxide::BrowserConfig::builder()
        .chrome_executable(BrowserConfig::default().executable)
        .no_sandbox()
        .args([
            "disable-gpu",
            "disable-dev-shm-usage",
            "no-first-run",
            "disable-background-networking",
            "disable-component-update",
            "disable-sync",
        ])
        .user_data_dir(dir)
        .build()
        .unwrap();
    let (browser, mut handler) = Browser::launch(config).await.unwrap();
    let task = tokio::spawn(async move {
        while let Some(event) = handler.next().await {
            if event.is_err() {
                break;
            }
        }
    });
    (browser, task)
}

async fn render_in(page: &Page, url: &Url, selector: &str) -> Result<(), String> {
    let navigated = page.execute(NavigateParams::new(url.as_str())).await.map_err(|e| e.to_string())?;
    if let Some(error) = navigated.result.error_text.clone() {
        return Err(error);
    }
    let expression = capture_expression(Some(selector), &BrowserConfig::default(), Duration::from_secs(20));
    let params =
        EvaluateParams { await_promise: Some(true), return_by_value: Some(true), ..EvaluateParams::new(expression) };
    let value = page.evaluate_expression(params).await.map_err(|e| e.to_string())?;
    match value.value().and_then(|v| v.get("found")).and_then(|f| f.as_bool()) {
        Some(true) => Ok(()),
        _ => Err("selector not found".into()),
    }
}

async fn single_tab(addr: SocketAddr, n: usize, root: &Path) -> Figures {
    let (mut browser, handler) = launch(&root.join("single")).await;
    let page = browser.new_page("about:blank").await.unwrap();
    let sampler = PssSampler::start(root.to_path_buf());
    let (mut latencies, mut failed) = (Vec::new(), 0);
    let started = Instant::now();
    for (url, selector) in work(addr, n) {
        let t = Instant::now();
        match tokio::time::timeout(Duration::from_secs(30), render_in(&page, &url, selector)).await {
            Ok(Ok(())) => latencies.push(t.elapsed().as_secs_f64() * 1000.0),
            _ => failed += 1,
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let peak = sampler.finish().await;
    let _ = browser.close().await;
    let _ = browser.wait().await;
    handler.abort();
    figures(latencies, failed, seconds, peak)
}

async fn naive(addr: SocketAddr, n: usize, root: &Path) -> Figures {
    let sampler = PssSampler::start(root.to_path_buf());
    let (mut latencies, mut failed) = (Vec::new(), 0);
    let started = Instant::now();
    for (i, (url, selector)) in work(addr, n).into_iter().enumerate() {
        let t = Instant::now();
        let (mut browser, handler) = launch(&root.join(format!("naive-{i}"))).await;
        let rendered = match browser.new_page("about:blank").await {
            Ok(page) => tokio::time::timeout(Duration::from_secs(30), render_in(&page, &url, selector))
                .await
                .is_ok_and(|r| r.is_ok()),
            Err(_) => false,
        };
        let _ = browser.close().await;
        let _ = browser.wait().await;
        handler.abort();
        if rendered { latencies.push(t.elapsed().as_secs_f64() * 1000.0) } else { failed += 1 }
    }
    let seconds = started.elapsed().as_secs_f64();
    figures(latencies, failed, seconds, sampler.finish().await)
}

fn print(name: &str, f: &Figures) {
    println!(
        "  {name:<28} {:>5} ok {:>3} failed  {:>7.2} pages/s  p50 {:>7.1} ms  p99 {:>7.1} ms  peak PSS {:>7.1} MiB",
        f.pages,
        f.failed,
        f.rate(),
        f.p50_ms,
        f.p99_ms,
        f.peak_pss_mib
    );
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it,
    // and then it only checks that every strategy works, on a handful of pages.
    let full = std::env::args().any(|arg| arg == "--bench");
    let (default_pages, default_naive) = if full { (1000, 30) } else { (6, 1) };
    let pages = env("BENCH_PAGES", default_pages);
    let naive_pages = env("BENCH_NAIVE_PAGES", default_naive);
    let (runs, tabs) = (env("BENCH_RUNS", 1), env("BENCH_TABS", 3));
    let addr = fixture().await;
    let root = std::env::temp_dir().join(format!("riptide-bench-{}", std::process::id()));
    println!("browser_pool: {pages} pages (naive {naive_pages}), {runs} run(s), pool tabs {tabs}, wait_for per page");
    let mut all: Vec<[Figures; 4]> = Vec::new();
    for run in 1..=runs {
        println!("run {run}:");
        let (pooled_n, recycles) = pooled(addr, pages, tabs, &root.join("pool-n")).await;
        print(&format!("pooled isolated, {tabs} tabs"), &pooled_n);
        println!("  (pool recycles during the run: {recycles})");
        if env("BENCH_POOL_ONLY", 0) == 1 {
            continue; // a long pooled run for peak PSS only
        }
        let (pooled_1, _) = pooled(addr, pages, 1, &root.join("pool-1")).await;
        print("pooled isolated, 1 tab", &pooled_1);
        let single = single_tab(addr, pages, &root.join("single")).await;
        print("reused single tab", &single);
        let naive = naive(addr, naive_pages, &root.join("naive")).await;
        print("new browser per page", &naive);
        all.push([pooled_n, pooled_1, single, naive]);
    }
    if all.is_empty() {
        let _ = std::fs::remove_dir_all(&root);
        return;
    }
    let names = [
        format!("pooled isolated, {tabs} tabs"),
        "pooled isolated, 1 tab".into(),
        "reused single tab".into(),
        "new browser per page".into(),
    ];
    println!("medians over {runs} run(s):");
    for (i, name) in names.iter().enumerate() {
        let pick = |f: fn(&Figures) -> f64| median(all.iter().map(|r| f(&r[i])).collect());
        println!(
            "  {name:<28} {:>7.2} pages/s  p50 {:>7.1} ms  p99 {:>7.1} ms  peak PSS {:>7.1} MiB",
            pick(Figures::rate),
            pick(|f| f.p50_ms),
            pick(|f| f.p99_ms),
            pick(|f| f.peak_pss_mib)
        );
    }
    let single = median(all.iter().map(|r| r[2].rate()).collect());
    let pooled = median(all.iter().map(|r| r[0].rate()).collect());
    let pooled_1 = median(all.iter().map(|r| r[1].rate()).collect());
    println!(
        "pooled ({tabs} tabs) / single tab: {:.0}%; pooled (1 tab) / single tab: {:.0}%",
        100.0 * pooled / single,
        100.0 * pooled_1 / single
    );
    let _ = std::fs::remove_dir_all(&root);
}
