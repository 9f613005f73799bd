//! `riptide bench`: the end-to-end benchmark. In one run, against a throwaway namespace and
//! the generated sample site on loopback, it measures
//! 1. extraction only: the extractor on the same pages, with the worker's parallelism;
//! 2. throughput: N jobs preloaded, a worker drains them (jobs/s until the last result);
//! 3. latency: jobs enqueued at half the measured throughput, queue-to-result p50/p99 as a
//!    downstream consumer sees it.
//!
//! The pipeline's overhead is the ratio of (2) to (1). It cleans up its namespace afterwards.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::broker::consume::ResultReader;
use crate::broker::publish::Publisher;
use crate::broker::{Lane, Topology, connect};
use crate::config::ExtractBackend;
use crate::config::{Config, WireFormat};
use crate::job::{JobRequest, JobResult, encode};
use crate::pools::Pools;
use crate::producer::{JobTemplate, enqueue};
use crate::sample_site;
use crate::worker::{self, WorkerOptions};
use riptide_extractor::Mode;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Jobs in the throughput phase (the latency phase uses half).
    pub jobs: usize,
    /// Distinct pages they cycle through.
    pub pages: usize,
    /// Repetitions; figures are medians over them.
    pub runs: usize,
}

/// Figures of one run.
#[derive(Debug, Clone, Default)]
pub struct RunFigures {
    /// The extraction engine of this run.
    pub engine: ExtractBackend,
    /// Extraction-only rate, pages per second.
    pub extract_per_sec: f64,
    /// Pipeline throughput, jobs per second.
    pub jobs_per_sec: f64,
    /// Queue-to-result latency at half load, median, milliseconds.
    pub p50_ms: f64,
    /// Queue-to-result latency at half load, 99th percentile, milliseconds.
    pub p99_ms: f64,
}

impl RunFigures {
    /// Pipeline throughput over extraction-only rate.
    pub fn ratio(&self) -> f64 {
        if self.extract_per_sec > 0.0 { self.jobs_per_sec / self.extract_per_sec } else { 0.0 }
    }
}

/// Runs the benchmark `options.runs` times and returns every run's figures.
pub async fn run(base: &Config, options: &BenchOptions) -> anyhow::Result<Vec<RunFigures>> {
    let stop = CancellationToken::new();
    let (addr, _site) = sample_site::serve("127.0.0.1:0".parse()?, options.pages, stop.clone()).await?;
    let urls: Vec<String> = (0..options.pages).map(|n| format!("http://{addr}/articles/{n}")).collect();
    let pages = fetch_pages(base, &urls).await?;
    let mut figures = Vec::new();
    // Pools alternate within each run, so machine noise hits both alike.
    for run in 1..=options.runs {
        for engine in [ExtractBackend::Wasm, ExtractBackend::Native] {
            let mut config = base.clone();
            config.namespace = format!("{}-bench-{}", base.namespace, &uuid::Uuid::new_v4().simple().to_string()[..8]);
            config.allow_private_networks = true;
            // Pacing off: every page comes from one loopback origin (the sample site), and
            // this measures the pipeline, not the politeness delay.
            config.politeness.default_delay_ms = 0;
            config.worker.engine = engine;
            let config = Arc::new(config);
            let result = one_run(&config, options, &urls, &pages).await;
            cleanup(&config).await;
            let run_figures = result?;
            eprintln!(
                "run {run} {engine:?}: extract-only {:.0} pages/s, pipeline {:.0} jobs/s (ratio {:.2}), latency p50 {:.1} ms p99 {:.1} ms",
                run_figures.extract_per_sec,
                run_figures.jobs_per_sec,
                run_figures.ratio(),
                run_figures.p50_ms,
                run_figures.p99_ms
            );
            figures.push(run_figures);
        }
    }
    stop.cancel();
    Ok(figures)
}

async fn one_run(
    config: &Arc<Config>,
    options: &BenchOptions,
    urls: &[String],
    pages: &[(String, String)],
) -> anyhow::Result<RunFigures> {
    crate::migrate::migrate(config).await?;
    let extract_per_sec = extraction_only(config, pages, options.jobs).await?;
    let topology = Topology::new(&config.namespace)?;
    let connection = connect(&config.amqp_url, "riptide-bench").await?;
    // Read by a task of its own: the latency loop below selects between its ticker and the next
    // result, and a result read (and acked) in a branch that lost the race would be dropped.
    let mut results = ResultFeed::start(ResultReader::open(&connection, &topology).await?);

    // Throughput: preload, then time the worker from start to the last result.
    let job_urls: Vec<String> = (0..options.jobs).map(|i| format!("{}?j={i}", urls[i % urls.len()])).collect();
    enqueue(config, job_urls, &JobTemplate::default(), WireFormat::Msgpack, || {}).await?;
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let worker_task = tokio::spawn(worker::run(config.clone(), WorkerOptions::default(), shutdown.clone()));
    let mut received = 0;
    while received < options.jobs {
        results.next().await?;
        received += 1;
    }
    let jobs_per_sec = options.jobs as f64 / started.elapsed().as_secs_f64();

    // Latency: paced at half the measured throughput.
    let publisher = Publisher::open(&connection, &topology).await?;
    let latency_jobs = (options.jobs / 2).max(1);
    let interval = Duration::from_secs_f64(2.0 / jobs_per_sec.max(1.0));
    let mut sent_at: HashMap<String, Instant> = HashMap::new();
    let mut latencies = Vec::with_capacity(latency_jobs);
    let mut ticker = tokio::time::interval(interval);
    let mut next_job = 0;
    while latencies.len() < latency_jobs {
        tokio::select! {
            _ = ticker.tick(), if next_job < latency_jobs => {
                let id = format!("lat-{next_job}");
                let request = JobRequest { id: Some(id.clone()), ..JobRequest::for_url(format!("{}?l={next_job}", urls[next_job % urls.len()])) };
                let (body, content_type) = encode(&request, WireFormat::Msgpack)?;
                sent_at.insert(id.clone(), Instant::now());
                Publisher::confirmed(publisher.send_job(&body, content_type, &id, Lane::Normal).await?).await?;
                next_job += 1;
            }
            result = results.next() => {
                let result = result?;
                if let Some(sent) = sent_at.get(&result.job_id) {
                    latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                }
            }
        }
    }
    shutdown.cancel();
    worker_task.await??;
    publisher.close().await?;
    results.close().await;
    connection.close("bench done").await;
    latencies.sort_by(f64::total_cmp);
    Ok(RunFigures {
        engine: config.worker.engine,
        extract_per_sec,
        jobs_per_sec,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
    })
}

/// The results of a run, read by a task of their own, so that waiting for one can be cancelled
/// (by a `select!`) without losing it.
struct ResultFeed {
    results: tokio::sync::mpsc::Receiver<anyhow::Result<JobResult>>,
    reader: tokio::task::JoinHandle<ResultReader>,
    stop: CancellationToken,
}

impl ResultFeed {
    fn start(mut reader: ResultReader) -> Self {
        let (tx, results) = tokio::sync::mpsc::channel(1024);
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let reader = tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    () = stopped.cancelled() => break,
                    next = next_result(&mut reader) => next,
                };
                let failed = next.is_err();
                if tx.send(next).await.is_err() || failed {
                    break;
                }
            }
            reader
        });
        ResultFeed { results, reader, stop }
    }

    /// The next result (cancel-safe).
    async fn next(&mut self) -> anyhow::Result<JobResult> {
        self.results.recv().await.unwrap_or_else(|| Err(anyhow::anyhow!("the results reader stopped")))
    }

    async fn close(self) {
        self.stop.cancel();
        if let Ok(reader) = self.reader.await {
            reader.close().await;
        }
    }
}

async fn next_result(results: &mut ResultReader) -> anyhow::Result<JobResult> {
    let never = CancellationToken::new();
    tokio::time::timeout(Duration::from_secs(60), results.next_arriving(&never))
        .await
        .map_err(|_| anyhow::anyhow!("no result for 60 s; is the worker stuck?"))??
        .ok_or_else(|| anyhow::anyhow!("the results consumer ended"))
}

/// Fetches each page once, so extraction-only runs on exactly what the worker extracts.
async fn fetch_pages(config: &Config, urls: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let fetcher = crate::fetch::Fetcher::new(&config.fetch, true)?;
    let mut pages = Vec::with_capacity(urls.len());
    for url in urls {
        let page = fetcher.fetch(&url.parse()?, &Default::default(), Duration::from_secs(10), true).await?;
        pages.push((page.final_url.to_string(), page.html));
    }
    Ok(pages)
}

/// Extracts `count` pages with the engine of `config` and the worker's parallelism, as the
/// worker's extraction stage would, and returns pages per second.
async fn extraction_only(config: &Config, pages: &[(String, String)], count: usize) -> anyhow::Result<f64> {
    let pools = Pools::start(config).await?;
    let pages = Arc::new(pages.to_vec());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..config.worker.concurrency.max(1) {
        let (pages, next, pools) = (pages.clone(), next.clone(), pools.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    return anyhow::Ok(());
                }
                let (url, html) = &pages[i % pages.len()];
                pools.extract("article", html.clone(), url.clone(), Mode::Article, Duration::from_secs(30)).await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let rate = count as f64 / started.elapsed().as_secs_f64();
    pools.close().await;
    Ok(rate)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Deletes the namespace's queues, exchanges and Redis keys; a failure is logged (a
/// throwaway namespace left behind is untidy, not wrong).
pub async fn cleanup(config: &Config) {
    if let Err(error) = crate::migrate::remove(config).await {
        tracing::warn!(namespace = %config.namespace, %error, "Cleanup of the namespace failed.");
    }
}

/// The median of `values` (0 when empty).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    percentile(&values, 0.5)
}

/// Figures of `riptide bench --politeness`.
#[derive(Debug, Clone, Default)]
pub struct PolitenessFigures {
    /// Origins of the many-origins runs.
    pub origins: usize,
    /// Jobs of each many-origins run.
    pub jobs: usize,
    /// The delay of the paced runs, milliseconds.
    pub delay_ms: u64,
    /// Many origins, pacing off: jobs per second.
    pub off_jobs_per_sec: f64,
    /// Many origins, pacing on: jobs per second.
    pub on_jobs_per_sec: f64,
    /// Politeness round trips to Redis per job in the paced run.
    pub round_trips_per_job: f64,
    /// Jobs of the one-origin run.
    pub single_jobs: usize,
    /// One origin: the mean time between two results, milliseconds (the achieved spacing).
    pub achieved_spacing_ms: f64,
}

/// Politeness on against off over many origins (more origins than the worker's
/// concurrency), and the spacing achieved on one origin, each against the generated sample
/// site served on `origins` loopback ports.
pub async fn politeness(base: &Config, origins: usize, delay_ms: u64) -> anyhow::Result<PolitenessFigures> {
    let stop = CancellationToken::new();
    let mut sites = Vec::new();
    for _ in 0..origins.max(1) {
        let (addr, _site) = sample_site::serve("127.0.0.1:0".parse()?, 10, stop.clone()).await?;
        sites.push(addr);
    }
    // Ten pages per origin, interleaved, so every origin has work from the start.
    let urls: Vec<String> =
        (0..10).flat_map(|n| sites.iter().map(move |addr| format!("http://{addr}/articles/{n}"))).collect();
    // The one-origin run first: it also warms the extractor's artifacts for the two others.
    let single: Vec<String> = (0..20).map(|n| format!("http://{}/articles/{}?s={n}", sites[0], n % 10)).collect();
    let (spacing, _) = spacing_run(base, &single, delay_ms).await?;
    let off = paced_run(base, &urls, 0).await?.0;
    let (on, trips) = paced_run(base, &urls, delay_ms).await?;
    stop.cancel();
    Ok(PolitenessFigures {
        origins: sites.len(),
        jobs: urls.len(),
        delay_ms,
        off_jobs_per_sec: off,
        on_jobs_per_sec: on,
        round_trips_per_job: trips as f64 / urls.len() as f64,
        single_jobs: single.len(),
        achieved_spacing_ms: spacing,
    })
}

fn paced_config(base: &Config, delay_ms: u64) -> Arc<Config> {
    let mut config = base.clone();
    config.namespace = format!("{}-bench-{}", base.namespace, &uuid::Uuid::new_v4().simple().to_string()[..8]);
    config.allow_private_networks = true;
    // Pacing as the run says (0 = off); everything else as configured.
    config.politeness.default_delay_ms = delay_ms;
    Arc::new(config)
}

/// Runs `urls` through one worker with pacing at `delay_ms`; jobs per second and the
/// politeness round trips to Redis it made.
async fn paced_run(base: &Config, urls: &[String], delay_ms: u64) -> anyhow::Result<(f64, u64)> {
    let config = paced_config(base, delay_ms);
    let result = async {
        let (finished, trips) = timed_results(&config, urls).await?;
        let span = finished.last().copied().unwrap_or_default();
        Ok::<_, anyhow::Error>((urls.len() as f64 / span.as_secs_f64().max(1e-9), trips))
    }
    .await;
    cleanup(&config).await;
    result
}

/// One origin at `delay_ms`: the mean time between consecutive results, milliseconds.
async fn spacing_run(base: &Config, urls: &[String], delay_ms: u64) -> anyhow::Result<(f64, u64)> {
    let config = paced_config(base, delay_ms);
    let result = async {
        let (finished, trips) = timed_results(&config, urls).await?;
        let (Some(first), Some(last)) = (finished.first(), finished.last()) else { return Ok((0.0, trips)) };
        let gaps = finished.len().saturating_sub(1).max(1) as f64;
        Ok::<_, anyhow::Error>(((*last - *first).as_secs_f64() * 1000.0 / gaps, trips))
    }
    .await;
    cleanup(&config).await;
    result
}

/// Preloads `urls`, runs a worker, and returns when each result arrived (from the worker's
/// start, sorted) and the politeness round trips made meanwhile.
async fn timed_results(config: &Arc<Config>, urls: &[String]) -> anyhow::Result<(Vec<Duration>, u64)> {
    crate::migrate::migrate(config).await?;
    let topology = Topology::new(&config.namespace)?;
    let connection = connect(&config.amqp_url, "riptide-bench").await?;
    let mut results = ResultReader::open(&connection, &topology).await?;
    enqueue(config, urls.to_vec(), &JobTemplate::default(), WireFormat::Msgpack, || {}).await?;
    let trips_before = crate::store::hosts::round_trips();
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let worker_task = tokio::spawn(worker::run(config.clone(), WorkerOptions::default(), shutdown.clone()));
    let mut finished = Vec::with_capacity(urls.len());
    while finished.len() < urls.len() {
        next_result(&mut results).await?;
        finished.push(started.elapsed());
    }
    let trips = crate::store::hosts::round_trips().saturating_sub(trips_before);
    shutdown.cancel();
    worker_task.await??;
    results.close().await;
    connection.close("bench done").await;
    Ok((finished, trips))
}
