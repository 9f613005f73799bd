//! `riptide extract`: one page (a file, `.html.gz` included, or a URL) or a directory of pages,
//! through the WASM component (default) or the native core, with no broker and no Redis: the
//! quickest way to see what riptide does, and the harness of the extraction benchmark.
//!
//! `--batch IN --out OUT` writes `OUT/<name>.json` per page (the document, plus its main
//! text under `articleBody`), the format `shared/bench/score.py` reads.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use riptide_extractor::{Document, Mode};

use tokio_util::sync::CancellationToken;
use url::Url;

use crate::config::{Config, ExtractBackend};
use crate::fetch::Fetcher;
use crate::job::{Render, StageTimings};
use crate::page::{Deadline, PageRequest, PageSource};
use crate::pools::Pools;
use crate::wasm::DEFAULT_EXTRACTOR;

/// Options of `riptide extract`.
#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// A file (`.html`, `.html.gz`) or an http(s) URL.
    #[arg(required_unless_present = "batch")]
    pub input: Option<String>,
    /// What to extract.
    #[arg(long, value_parser = super::parse_mode, default_value = "article")]
    pub mode: Mode,
    /// Output format for a single page.
    #[arg(long, value_enum, default_value = "json")]
    pub format: OutputFormat,
    /// Which extractor runs: the sandboxed WASM component or the native core.
    #[arg(long, value_enum, default_value = "wasm")]
    pub engine: BackendArg,
    /// How to get a URL: static HTTP, headless Chromium, or auto (static unless the page
    /// looks client-rendered).
    #[arg(long, value_parser = super::parse_render, default_value = "static")]
    pub render: crate::job::Render,
    /// The page's URL, for resolving relative links of a file (default: file:// of the path).
    #[arg(long)]
    pub url: Option<String>,
    /// Extract every `.html` / `.html.gz` file of this directory.
    #[arg(long, conflicts_with = "input", requires = "out")]
    pub batch: Option<PathBuf>,
    /// Where `--batch` writes one `<name>.json` per page.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Single-page output.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutputFormat {
    /// The whole document as JSON.
    Json,
    /// The Markdown of the main content.
    Markdown,
    /// The plain main text.
    Text,
}

/// Extraction backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// The WASM component through the instance pool.
    Wasm,
    /// The native core, in process.
    Native,
}

impl From<BackendArg> for ExtractBackend {
    fn from(arg: BackendArg) -> Self {
        match arg {
            BackendArg::Wasm => ExtractBackend::Wasm,
            BackendArg::Native => ExtractBackend::Native,
        }
    }
}

/// Generous per-page budget: a 20 MB page takes about 1.5 s through the component here.
const PAGE_BUDGET: Duration = Duration::from_secs(30);

/// The worker's own pools and page stage, so `riptide extract` and the worker never drift.
struct Tools {
    pools: Pools,
    pages: PageSource,
    /// For robots.txt (fetched once per run, not cached: there is no fleet here).
    fetcher: Fetcher,
    config: Config,
}

impl Tools {
    async fn start(config: &Config, backend: BackendArg) -> anyhow::Result<Self> {
        let mut config = config.clone();
        config.worker.engine = backend.into();
        let pools = Pools::start(&config).await?;
        let fetcher = Fetcher::new(&config.fetch, config.allow_private_networks)?;
        let pages = PageSource::new(fetcher.clone(), pools.clone(), &config, None);
        Ok(Tools { pools, pages, fetcher, config })
    }

    async fn extract(&self, html: String, url: String, mode: Mode) -> anyhow::Result<Document> {
        Ok(self.pools.extract(DEFAULT_EXTRACTOR, html, url, mode, PAGE_BUDGET).await?.document)
    }
}

/// Runs `riptide extract`.
/// SIGINT and SIGTERM stop it cleanly: the browsers it started are closed before it exits.
pub async fn run(config: &Config, args: ExtractArgs) -> anyhow::Result<ExitCode> {
    let stop = crate::shutdown::on_signal();
    let tools = Tools::start(config, args.engine).await?;
    let work = async {
        match (&args.batch, &args.out, &args.input) {
            (Some(dir), Some(out), _) => batch(&tools, dir, out, args.mode).await,
            (_, _, Some(input)) => single(&tools, input, &args, &stop).await,
            _ => Err(anyhow::anyhow!("give a file or URL, or --batch DIR --out DIR")),
        }
    };
    let result = tokio::select! {
        result = work => result,
        () = stop.cancelled() => Err(anyhow::anyhow!("interrupted")),
    };
    tools.pools.close().await;
    result
}

async fn single(tools: &Tools, input: &str, args: &ExtractArgs, stop: &CancellationToken) -> anyhow::Result<ExitCode> {
    let (html, url) = if input.starts_with("http://") || input.starts_with("https://") {
        let url: Url = input.parse()?;
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        if crate::politeness::obeys_robots(&tools.config.politeness, &host) {
            use crate::politeness::robots::{RobotsVerdict, check_once};
            match check_once(&url, &tools.fetcher, &tools.config).await {
                RobotsVerdict::Allowed { .. } => {}
                RobotsVerdict::Denied => anyhow::bail!(
                    "robots_denied: the site's robots.txt disallows this URL for our user agent \
                     (politeness.obey_robots = false or robots_exempt_hosts for your own sites)"
                ),
                RobotsVerdict::Unavailable { .. } => anyhow::bail!(
                    "the site's robots.txt answered 5xx or could not be reached; RFC 9309 says fetch nothing for now"
                ),
            }
        }
        let request = PageRequest {
            url: &url,
            headers: &Default::default(),
            render: args.render,
            wait_for: None,
            conditional: None,
        };
        let mut timings = StageTimings::default();
        let page = tools.pages.get(&request, Deadline::starting_now(PAGE_BUDGET), &mut timings, stop).await?;
        if page.render_used == Render::Headless && args.render == Render::Auto {
            eprintln!("the static page looks client-rendered; it was rendered in Chromium");
        }
        (page.html, page.final_url.to_string())
    } else {
        let path = Path::new(input);
        (read_page(path)?, args.url.clone().unwrap_or_else(|| file_url(path)))
    };
    let doc = tools.extract(html, url, args.mode).await?;
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&doc)?),
        OutputFormat::Markdown => println!("{}", doc.markdown),
        OutputFormat::Text => println!("{}", doc.text),
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a page file, gunzipping `.gz`, and decodes it with its own charset declaration.
fn read_page(path: &Path) -> anyhow::Result<String> {
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .with_context(|| format!("gunzipping {}", path.display()))?;
        out
    } else {
        raw
    };
    Ok(riptide_extractor::decode_html(&bytes, None))
}

fn file_url(path: &Path) -> String {
    std::fs::canonicalize(path)
        .ok()
        .and_then(|p| url::Url::from_file_path(p).ok())
        .map_or_else(|| "file:///".to_string(), |u| u.to_string())
}

/// The page name: the file name without `.html` / `.html.gz` (or `.htm`).
fn page_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    ["html.gz", "htm.gz", "html", "htm"]
        .iter()
        .find_map(|ext| name.strip_suffix(&format!(".{ext}")).map(str::to_string))
}

async fn batch(tools: &Tools, dir: &Path, out: &Path, mode: Mode) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut pages: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter_map(|path| page_name(&path).map(|name| (name, path)))
        .collect();
    pages.sort();
    let started = Instant::now();
    let mut failed = 0;
    for (name, path) in &pages {
        let html = read_page(path)?;
        match tools.extract(html, file_url(path), mode).await {
            Ok(doc) => {
                let mut value = serde_json::to_value(&doc)?;
                value["articleBody"] = serde_json::Value::String(doc.text.clone());
                std::fs::write(out.join(format!("{name}.json")), serde_json::to_vec(&value)?)?;
            }
            Err(error) => {
                failed += 1;
                eprintln!("{name}: {error:#}");
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "extracted {} of {} page(s) into {} in {elapsed:.2} s ({:.0} pages/s wall)",
        pages.len() - failed,
        pages.len(),
        out.display(),
        pages.len() as f64 / elapsed.max(1e-9)
    );
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(2) })
}
