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
use riptide_extractor::{Document, Mode, Options};

use crate::browser::{BrowserPool, RenderRequest, looks_client_rendered};
use crate::config::Config;
use crate::fetch::Fetcher;
use crate::job::Render;
use crate::wasm::ExtractorPool;

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
    pub engine: EngineArg,
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

/// Extraction engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineArg {
    /// The WASM component through the instance pool.
    Wasm,
    /// The native core, in process.
    Native,
}

/// The engine chosen for this run.
enum Extractor {
    Wasm(ExtractorPool),
    Native,
}

/// Generous per-page budget: a 20 MB page takes about 1.5 s through the component here.
const PAGE_BUDGET: Duration = Duration::from_secs(30);

impl Extractor {
    async fn start(engine: EngineArg, config: &Config) -> anyhow::Result<Self> {
        Ok(match engine {
            EngineArg::Wasm => Extractor::Wasm(ExtractorPool::start(config.wasm.clone()).await?),
            EngineArg::Native => Extractor::Native,
        })
    }

    async fn extract(&self, html: String, url: String, mode: Mode) -> anyhow::Result<Document> {
        let options = Options { mode, ..Options::default() };
        match self {
            Extractor::Wasm(pool) => Ok(pool.extract("article", html, url, options, PAGE_BUDGET).await?.document),
            Extractor::Native => Ok(crate::native::extract(html, url, options, PAGE_BUDGET).await?),
        }
    }

    async fn close(self) {
        if let Extractor::Wasm(pool) = self {
            pool.close().await;
        }
    }
}

/// Runs `riptide extract`.
pub async fn run(config: &Config, args: ExtractArgs) -> anyhow::Result<ExitCode> {
    let extractor = Extractor::start(args.engine, config).await?;
    let result = match (&args.batch, &args.out, &args.input) {
        (Some(dir), Some(out), _) => batch(&extractor, dir, out, args.mode).await,
        (_, _, Some(input)) => single(config, &extractor, input, &args).await,
        _ => Err(anyhow::anyhow!("give a file or URL, or --batch DIR --out DIR")),
    };
    extractor.close().await;
    result
}

async fn single(config: &Config, extractor: &Extractor, input: &str, args: &ExtractArgs) -> anyhow::Result<ExitCode> {
    let (html, url) = if input.starts_with("http://") || input.starts_with("https://") {
        fetch_page(config, &input.parse()?, args.render).await?
    } else {
        let path = Path::new(input);
        (read_page(path)?, args.url.clone().unwrap_or_else(|| file_url(path)))
    };
    let doc = extractor.extract(html, url, args.mode).await?;
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&doc)?),
        OutputFormat::Markdown => println!("{}", doc.markdown),
        OutputFormat::Text => println!("{}", doc.text),
    }
    Ok(ExitCode::SUCCESS)
}

/// Fetches or renders a URL as the worker would for the same render mode.
async fn fetch_page(config: &Config, url: &url::Url, render: Render) -> anyhow::Result<(String, String)> {
    let timeout = Duration::from_secs(30);
    let fetcher = Fetcher::new(&config.fetch, config.allow_private_networks)?;
    let fetch_static = || async {
        let page = fetcher.fetch(url, &Default::default(), timeout, config.allow_private_networks).await?;
        anyhow::Ok((page.html, page.final_url.to_string()))
    };
    let render_headless = || async {
        let pool = BrowserPool::start(config.browser.clone(), config.allow_private_networks).await?;
        let max_html_bytes = config.fetch.max_body_bytes as u64;
        let rendered = pool.render(&RenderRequest { url: url.clone(), timeout, wait_for: None, max_html_bytes }).await;
        pool.close().await?;
        let page = rendered?;
        anyhow::Ok((page.html, page.final_url.to_string()))
    };
    match render {
        Render::Static => fetch_static().await,
        Render::Headless => render_headless().await,
        Render::Auto => {
            let (html, final_url) = fetch_static().await?;
            if looks_client_rendered(&html) {
                eprintln!("the static page looks client-rendered; rendering it in Chromium");
                render_headless().await
            } else {
                Ok((html, final_url))
            }
        }
    }
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

async fn batch(extractor: &Extractor, dir: &Path, out: &Path, mode: Mode) -> anyhow::Result<ExitCode> {
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
        match extractor.extract(html, file_url(path), mode).await {
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
