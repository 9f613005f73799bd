//! The `riptide` command line: flags, logging setup, and one small function per subcommand
//! that calls the library. The only place besides `main.rs` that uses `anyhow`.
//!
//! Business logic lives in the library modules; a subcommand here parses, calls, prints.

pub mod bench;
pub mod dlq;
pub mod extract;
pub mod hosts;
pub mod stats;

use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use crate::broker::consume::ResultReader;
use crate::broker::{Topology, connect};
use crate::config::{Config, WireFormat};
use crate::job::{JobResult, Mode, Render};
use crate::producer::{JobTemplate, enqueue};
use crate::redact;
use crate::store::Store;
use crate::worker::{WorkerOptions, run as run_worker};

/// Input files with more lines than this get a progress bar.
const PROGRESS_BAR_LINES: usize = 300;

/// riptide: crawl jobs from RabbitMQ in, clean documents in Redis out.
#[derive(Debug, Parser)]
#[command(name = "riptide", version, about)]
pub struct Cli {
    /// Configuration file layered over the defaults (environment variables win over it).
    #[arg(long, global = true, env = "RIPTIDE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format: human (default on a terminal) or json.
    #[arg(long, global = true, env = "RIPTIDE_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log line format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Declare the broker topology and the Redis schema (idempotent; safe to run concurrently).
    Migrate,
    /// Consume and process jobs until SIGINT/SIGTERM.
    Worker {
        /// Exit once the job and retry queues are empty and nothing is in flight.
        #[arg(long)]
        drain: bool,
    },
    /// Enqueue crawl jobs, one per URL.
    Enqueue(EnqueueArgs),
    /// Print results from the default results queue, one JSON object per line.
    Results {
        /// Keep waiting for new results instead of stopping when the queue is empty.
        #[arg(long)]
        follow: bool,
        /// Stop after this many results.
        #[arg(long)]
        max: Option<usize>,
        /// One short line per result (outcome, words, title, URL) instead of JSON.
        #[arg(long)]
        brief: bool,
    },
    /// Compile every configured extractor component to its AOT artifact ahead of time, so a
    /// starting worker loads instead of compiling.
    Precompile,
    /// Extract one page (file, .html.gz or URL) or a directory of pages, with no broker.
    Extract(extract::ExtractArgs),
    /// One screen of queues, dead letters and workers.
    Stats {
        /// Refresh every this many seconds until interrupted.
        #[arg(long, value_name = "SECS")]
        watch: Option<u64>,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// The fleet's politeness state of an origin (or of every origin): next request slot,
    /// block, robots.txt.
    Hosts {
        /// An origin (`https://example.com`, `example.com:8080`); every origin when left out.
        origin: Option<String>,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Inspect, replay and purge dead letters.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Show where a job is (its state record in Redis).
    Status {
        /// The job id.
        id: String,
    },
    /// Serve the generated sample site on loopback until interrupted.
    SampleSite {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8089")]
        addr: SocketAddr,
        /// Number of article pages.
        #[arg(long, default_value_t = 20)]
        pages: usize,
    },
    /// Benchmark the whole pipeline against extraction alone on the same pages.
    Bench {
        /// Jobs per throughput run.
        #[arg(long, default_value_t = 2000)]
        jobs: usize,
        /// Distinct pages.
        #[arg(long, default_value_t = 50)]
        pages: usize,
        /// Runs; the summary gives medians.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Measure politeness instead: pacing on against off over many origins, and the
        /// request spacing achieved on one origin.
        #[arg(long)]
        politeness: bool,
        /// Origins of the politeness runs (more than `worker.concurrency`).
        #[arg(long, default_value_t = 32)]
        origins: usize,
        /// Pacing delay of the politeness runs, milliseconds.
        #[arg(long, default_value_t = 100)]
        delay_ms: u64,
    },
}

/// Options of `riptide enqueue`.
#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// URLs to crawl.
    pub urls: Vec<String>,
    /// Read URLs from this file, one per line (`-` for standard input); blank lines and `#` comments are skipped.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// What to extract.
    #[arg(long, value_parser = parse_mode)]
    pub mode: Option<Mode>,
    /// How to fetch.
    #[arg(long, value_parser = parse_render)]
    pub render: Option<Render>,
    /// 0 to 9; 5 and above use the high lane.
    #[arg(long)]
    pub priority: Option<u8>,
    /// Attempts before dead-lettering.
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// Per-attempt budget in milliseconds.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Serve a stored document younger than this many seconds.
    #[arg(long)]
    pub max_age_secs: Option<u64>,
    /// Message encoding.
    #[arg(long, value_enum, default_value = "msgpack")]
    pub format: FormatArg,
    /// Print the id of every accepted job.
    #[arg(long)]
    pub print_ids: bool,
}

/// Message encoding flag.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// application/json
    Json,
    /// application/msgpack
    Msgpack,
}

pub(crate) fn parse_mode(s: &str) -> Result<Mode, String> {
    s.parse::<Mode>().map_err(|e| e.to_string())
}

pub(crate) fn parse_render(s: &str) -> Result<Render, String> {
    match s {
        "static" => Ok(Render::Static),
        "headless" => Ok(Render::Headless),
        "auto" => Ok(Render::Auto),
        other => Err(format!("unknown render mode {other:?}: static, headless or auto")),
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    init_logging(cli.log_format);
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Migrate => migrate(&config).await,
        Command::Worker { drain } => worker(config, drain).await,
        Command::Enqueue(args) => enqueue_command(&config, args).await,
        Command::Results { follow, max, brief } => results(&config, follow, max, brief).await,
        Command::Status { id } => status(&config, &id).await,
        Command::Extract(args) => extract::run(&config, args).await,
        Command::Precompile => {
            for path in crate::wasm::precompile(&config.wasm).await? {
                println!("{}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Stats { watch, json } => stats_command(&config, watch, json).await,
        Command::Dlq(command) => dlq::run(&config, command).await,
        Command::Hosts { origin, json } => {
            let rows = hosts::rows(&config, origin.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", hosts::render(&rows));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::SampleSite { addr, pages } => sample_site(addr, pages).await,
        Command::Bench { politeness: true, origins, delay_ms, .. } => {
            let f = bench::politeness(&config, origins, delay_ms).await?;
            println!(
                "riptide bench --politeness: {} origins, {} jobs, concurrency {}, delay {} ms",
                f.origins, f.jobs, config.worker.concurrency, f.delay_ms
            );
            println!("| figure | value |");
            println!("|---|---|");
            println!("| many origins, pacing off | {:.1} jobs/s |", f.off_jobs_per_sec);
            println!("| many origins, pacing on | {:.1} jobs/s |", f.on_jobs_per_sec);
            println!("| on / off | {:.0} % |", 100.0 * f.on_jobs_per_sec / f.off_jobs_per_sec.max(1e-9));
            println!("| politeness Redis round trips per job (paced run) | {:.2} |", f.round_trips_per_job);
            println!(
                "| one origin, {} jobs: mean spacing between results | {:.1} ms ({:+.1} % of the delay) |",
                f.single_jobs,
                f.achieved_spacing_ms,
                100.0 * (f.achieved_spacing_ms - f.delay_ms as f64) / (f.delay_ms.max(1) as f64)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench { jobs, pages, runs, .. } => bench_command(&config, jobs, pages, runs).await,
    }
}

/// The error and its causes on one line, skipping a cause whose text the message above it
/// already contains (many of our messages embed their source for the logs' sake).
pub fn error_chain(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

fn init_logging(format: Option<LogFormat>) {
    let filter = EnvFilter::try_from_env("RIPTIDE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,lapin=warn"));
    let json = match format {
        Some(LogFormat::Json) => true,
        Some(LogFormat::Human) => false,
        None => !std::io::stderr().is_terminal() && std::env::var_os("RIPTIDE_LOG_FORMAT").is_some(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn migrate(config: &Config) -> anyhow::Result<ExitCode> {
    let applied = crate::migrate::migrate(config).await?;
    for line in applied {
        println!("applied {line}");
    }
    println!(
        "namespace {:?} is at topology v{} on {}",
        config.namespace,
        Topology::new(&config.namespace)?.version,
        redact::url(&config.amqp_url)
    );
    Ok(ExitCode::SUCCESS)
}

async fn worker(config: Config, drain: bool) -> anyhow::Result<ExitCode> {
    let shutdown = crate::shutdown::on_signal();
    let health = crate::ops::health::Health::default();
    let metrics = crate::ops::exporter::install()?;
    let ops_stop = CancellationToken::new();
    let (_, ops_server) = crate::ops::server::serve(config.ops_addr, metrics, health.clone(), ops_stop.clone())
        .await
        .with_context(|| format!("binding the ops server to {} (ops_addr)", config.ops_addr))?;
    let report = run_worker(Arc::new(config), WorkerOptions { drain, health }, shutdown).await;
    ops_stop.cancel();
    ops_server.await?;
    let report = report?;
    tracing::info!(
        done = report.done,
        retried = report.retried,
        dead = report.dead,
        handed_back = report.handed_back,
        "Worker stopped."
    );
    Ok(ExitCode::SUCCESS)
}

async fn enqueue_command(config: &Config, args: EnqueueArgs) -> anyhow::Result<ExitCode> {
    let mut urls = args.urls.clone();
    if let Some(path) = &args.file {
        urls.extend(read_url_lines(path)?);
    }
    anyhow::ensure!(!urls.is_empty(), "no URLs given: pass them as arguments or with --file");
    let template = JobTemplate {
        mode: args.mode,
        render: args.render,
        priority: args.priority,
        max_attempts: args.max_attempts,
        timeout_ms: args.timeout_ms,
        max_age_secs: args.max_age_secs,
    };
    let format = match args.format {
        FormatArg::Json => WireFormat::Json,
        FormatArg::Msgpack => WireFormat::Msgpack,
    };
    let bar = (urls.len() > PROGRESS_BAR_LINES).then(|| indicatif::ProgressBar::new(urls.len() as u64));
    let report = enqueue(config, urls, &template, format, || {
        if let Some(bar) = &bar {
            bar.inc(1);
        }
    })
    .await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if args.print_ids {
        for id in &report.accepted {
            println!("{id}");
        }
    }
    for (line, reason) in &report.rejected {
        eprintln!("rejected {line:?}: {reason}");
    }
    eprintln!("accepted {} job(s), rejected {}", report.accepted.len(), report.rejected.len());
    Ok(if report.rejected.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

fn read_url_lines(path: &PathBuf) -> anyhow::Result<Vec<String>> {
    let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
        ))
    };
    let mut urls = Vec::new();
    for line in reader.lines() {
        let line = line?;
        let trimmed = line.trim();
        if !trimmed.is_empty() && !trimmed.starts_with('#') {
            urls.push(trimmed.to_string());
        }
    }
    Ok(urls)
}

async fn results(config: &Config, follow: bool, max: Option<usize>, brief: bool) -> anyhow::Result<ExitCode> {
    let topology = Topology::new(&config.namespace)?;
    let connection = connect(&config.amqp_url, "riptide-results").await?;
    let mut reader = ResultReader::open(&connection, &topology).await?;
    let stop = if follow { crate::shutdown::on_signal() } else { CancellationToken::new() };
    let limit = max.unwrap_or(usize::MAX);
    let mut printed = 0;
    while printed < limit {
        let next = if follow { reader.next_arriving(&stop).await? } else { reader.next_waiting().await? };
        let Some(result) = next else { break };
        print_result(&result, brief)?;
        printed += 1;
    }
    reader.close().await;
    connection.close("done").await;
    eprintln!("{printed} result(s)");
    Ok(ExitCode::SUCCESS)
}

/// Prints a result as one line of JSON, or briefly.
fn print_result(result: &JobResult, brief: bool) -> anyhow::Result<()> {
    if !brief {
        println!("{}", serde_json::to_string(result)?);
        return Ok(());
    }
    let detail = match (&result.summary, &result.error) {
        (Some(summary), _) => {
            format!("{:>6} words  {}", summary.word_count, summary.title.as_deref().unwrap_or("(no title)"))
        }
        (None, Some(error)) => format!("{}: {}", error.reason, error.message),
        (None, None) => String::new(),
    };
    println!("{:<7} {}  <{}>", result.outcome.as_str(), detail, result.url);
    Ok(())
}

async fn status(config: &Config, id: &str) -> anyhow::Result<ExitCode> {
    let store = Store::new(&config.redis_url, &config.namespace, &config.store)?;
    let record = store.job_record(id).await?;
    if record.is_empty() {
        eprintln!("no job {id:?} in namespace {:?} (unknown, or its record expired)", config.namespace);
        return Ok(ExitCode::from(3));
    }
    let sorted: std::collections::BTreeMap<_, _> = record.into_iter().collect();
    println!("{}", serde_json::to_string_pretty(&sorted)?);
    Ok(ExitCode::SUCCESS)
}

async fn stats_command(config: &Config, watch: Option<u64>, json: bool) -> anyhow::Result<ExitCode> {
    loop {
        let collected = stats::collect(config).await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&collected)?);
        } else {
            if watch.is_some() {
                // Clear the screen and go home, so --watch redraws in place.
                print!("\x1b[2J\x1b[H");
            }
            print!("{}", stats::render(&collected));
        }
        let Some(secs) = watch else { return Ok(ExitCode::SUCCESS) };
        tokio::time::sleep(Duration::from_secs(secs.max(1))).await;
    }
}

async fn sample_site(addr: SocketAddr, pages: usize) -> anyhow::Result<ExitCode> {
    let stop = crate::shutdown::on_signal();
    let (bound, handle) = crate::sample_site::serve(addr, pages, stop).await?;
    println!("http://{bound}/");
    handle.await?;
    Ok(ExitCode::SUCCESS)
}

async fn bench_command(config: &Config, jobs: usize, pages: usize, runs: usize) -> anyhow::Result<ExitCode> {
    let figures = bench::run(config, &bench::BenchOptions { jobs, pages, runs }).await?;
    println!(
        "riptide bench: {jobs} jobs x {runs} runs per engine, {pages} distinct ~100 KB pages, concurrency {}",
        config.worker.concurrency
    );
    println!("| figure (median of {runs} runs) | wasm (default) | native |");
    println!("|---|---|---|");
    let row = |label: &str, unit: &str, f: fn(&bench::RunFigures) -> f64| {
        let pick = |engine| bench::median(figures.iter().filter(|r| r.engine == engine).map(f).collect());
        println!(
            "| {label} | {:.2} {unit} | {:.2} {unit} |",
            pick(crate::config::ExtractBackend::Wasm),
            pick(crate::config::ExtractBackend::Native)
        );
    };
    row("extraction only (same pages, same parallelism)", "pages/s", |f| f.extract_per_sec);
    row("pipeline throughput (broker + fetch + extract + Redis + result)", "jobs/s", |f| f.jobs_per_sec);
    row("pipeline / extraction-only", "", bench::RunFigures::ratio);
    row("queue-to-result latency p50 at half load", "ms", |f| f.p50_ms);
    row("queue-to-result latency p99 at half load", "ms", |f| f.p99_ms);
    Ok(ExitCode::SUCCESS)
}
