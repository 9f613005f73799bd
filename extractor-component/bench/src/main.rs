//! `bench-extract`: quality (F1 via `shared/bench/score.py`) and speed (pages per CPU-second) of the
//! extractor on the AEB pages, natively and through the WASM component, in one run, plus the guest's
//! peak linear memory per call and a native-vs-WASM identity check. A tool, not a test: timings
//! depend on the machine's load.
//!
//! Usage (from the repo root):
//! `cargo run --release -p riptide-extractor-bench -- [--data DIR] [--wasm FILE] [--passes N] [--out DIR] [--native-only]`
//!
//! Timing: the pages are gunzipped and charset-decoded into memory first; only the extraction loop
//! is timed, as CPU time of the measuring thread (`/proc/thread-self/schedstat`, the same clock as
//! `getrusage(RUSAGE_THREAD)` but in ns and reachable without `unsafe`); each figure is the median of
//! `--passes` passes. WASM: wasmtime 48.0.8, pooling allocator, epoch interruption armed on every
//! call, one fresh `Store` + instance per page (as the worker runs it); compiling the component is not
//! timed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use riptide_extractor::{Document, Options, decode_html, extract};
use riptide_extractor_bench::{WasmExtractor, thread_cpu_secs};

/// One benchmark page, decoded.
struct Page {
    id: String,
    url: String,
    html: String,
}

struct Args {
    data: PathBuf,
    wasm: PathBuf,
    passes: usize,
    out: PathBuf,
    native_only: bool,
}

/// The component built by `cargo build --profile wasm --target wasm32-wasip2 -p
/// riptide-extractor-guest`: in `$CARGO_TARGET_DIR`, in the target directory this binary runs
/// from, or in `./target`.
fn default_component(target: &str) -> PathBuf {
    let exe_target = std::env::current_exe().ok().and_then(|e| e.parent()?.parent().map(Path::to_path_buf));
    [Some(PathBuf::from(target)), exe_target]
        .into_iter()
        .flatten()
        .map(|t| t.join(riptide_extractor_bench::COMPONENT_PATH))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("target").join(riptide_extractor_bench::COMPONENT_PATH))
}

fn parse_args() -> Result<Args> {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let mut args = Args {
        data: ["../shared/bench/aeb", "/work/shared/bench/aeb"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_dir())
            .unwrap_or_else(|| PathBuf::from("../shared/bench/aeb")),
        wasm: default_component(&target),
        passes: 5,
        out: std::env::temp_dir().join("riptide-bench-extract"),
        native_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--data" => args.data = val()?.into(),
            "--wasm" => args.wasm = val()?.into(),
            "--passes" => args.passes = val()?.parse().context("--passes")?,
            "--out" => args.out = val()?.into(),
            "--native-only" => args.native_only = true,
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok(args)
}

fn load_pages(data: &Path) -> Result<Vec<Page>> {
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("ground-truth.json")).context("ground-truth.json")?)?;
    let ids = std::fs::read_to_string(data.join("ids.txt")).context("ids.txt")?;
    let mut pages = Vec::new();
    for id in ids.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let gz =
            std::fs::read(data.join("html").join(format!("{id}.html.gz"))).with_context(|| format!("page {id}"))?;
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut bytes)?;
        let url = truth[id]["url"].as_str().unwrap_or("").to_owned();
        pages.push(Page { id: id.to_owned(), url, html: decode_html(&bytes, None) });
    }
    Ok(pages)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn write_preds(dir: &Path, pages: &[Page], docs: &[Option<Document>]) -> Result<()> {
    // score.py reads every *.json in the folder: start from an empty one.
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    for (p, d) in pages.iter().zip(docs) {
        let body = d.as_ref().map_or("", |d| d.text.as_str());
        let json = serde_json::json!({ "articleBody": body, "url": p.url });
        std::fs::write(dir.join(format!("{}.json", p.id)), json.to_string())?;
    }
    Ok(())
}

fn score(data: &Path, dir: &Path) -> Result<String> {
    let script = data.parent().unwrap_or(data).join("score.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(dir)
        .arg("--data")
        .arg(data)
        .arg("--csv")
        .arg(dir.join("per_doc.csv"))
        .arg("--json")
        .arg(dir.with_extension("summary.json"))
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!("{} failed: {}", script.display(), String::from_utf8_lossy(&out.stderr));
    }
    let mut report = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    // score.py prints strict precision only when a prediction is empty; we always report it.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.with_extension("summary.json"))?)?;
    if let Some(strict) = summary["all"]["precision_strict"].as_f64() {
        report.push_str(&format!("strict precision (empty = 0): {strict:.3}\n"));
    }
    Ok(report)
}

/// Hostile inputs of issue 3, each through both engines: outcome, CPU time, guest peak memory.
fn hostile(runner: &WasmExtractor) -> Result<()> {
    let para = "<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.</p>\n";
    let big = format!("<html><body><article>{}</article></body></html>", para.repeat(19 * 1024 * 1024 / para.len()));
    let mut state = 0x2545_f491_u32;
    let garbage: Vec<u8> = (0..1_000_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect();
    let cases: Vec<(&str, String)> = vec![
        ("19 MB article", big),
        ("100k nested <div>", "<div>".repeat(100_000) + "deep" + &"</div>".repeat(100_000)),
        ("binary garbage 1 MB", decode_html(&garbage, None)),
        ("only scripts 1 MB", "<script>var x = 1;</script>".repeat(40_000)),
        ("empty", String::new()),
    ];
    println!("\n== hostile inputs (native | wasm) ==");
    let opts = Options::default();
    for (name, html) in cases {
        let t0 = thread_cpu_secs()?;
        let native = extract(&html, "https://example.org/", &opts);
        let t1 = thread_cpu_secs()?;
        let (guest, peak) = runner.extract(&html, "https://example.org/", &opts)?;
        let t2 = thread_cpu_secs()?;
        let outcome = |r: &std::result::Result<Document, riptide_extractor::ExtractError>| match r {
            Ok(d) => format!("document, {} words", d.word_count),
            Err(e) => format!("error: {e}"),
        };
        println!(
            "{name:<22} {:>8.1} ms | {:>8.1} ms, guest peak {:>6.1} MiB, same: {}  -> {}",
            (t1 - t0) * 1e3,
            (t2 - t1) * 1e3,
            peak as f64 / 1048576.0,
            native == guest,
            outcome(&guest).chars().take(70).collect::<String>()
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let pages = load_pages(&args.data)?;
    let bytes: usize = pages.iter().map(|p| p.html.len()).sum();
    println!("{} pages, {:.1} MB decoded, {} passes each (median)", pages.len(), bytes as f64 / 1e6, args.passes);
    let opts = Options::default();

    // Native.
    let mut rates = Vec::new();
    let mut native_docs = Vec::new();
    let mut slowest = (0.0f64, String::new());
    for _ in 0..args.passes.max(1) {
        let t0 = thread_cpu_secs()?;
        native_docs = pages
            .iter()
            .map(|p| {
                let t = thread_cpu_secs().unwrap_or(0.0);
                let d = extract(&p.html, &p.url, &opts).ok();
                let dt = thread_cpu_secs().unwrap_or(0.0) - t;
                if dt > slowest.0 {
                    slowest = (dt, p.id.clone());
                }
                d
            })
            .collect();
        rates.push(pages.len() as f64 / (thread_cpu_secs()? - t0));
    }
    let native_rate = median(rates);
    write_preds(&args.out.join("native"), &pages, &native_docs)?;
    println!("\n== native ==");
    println!("pages per CPU-second: {native_rate:.0} (slowest page {:.1} ms)", slowest.0 * 1e3);
    print!("{}", score(&args.data, &args.out.join("native"))?);

    if args.native_only {
        return Ok(());
    }

    // WASM component.
    let runner = WasmExtractor::new(&args.wasm)?;
    let mut rates = Vec::new();
    let mut wasm_docs = Vec::new();
    let mut peaks = Vec::new();
    for pass in 0..args.passes.max(1) {
        let t0 = thread_cpu_secs()?;
        let mut docs = Vec::with_capacity(pages.len());
        for p in &pages {
            let (doc, peak) = runner.extract(&p.html, &p.url, &opts)?;
            if pass == 0 {
                peaks.push(peak as f64);
            }
            docs.push(doc.ok());
        }
        rates.push(pages.len() as f64 / (thread_cpu_secs()? - t0));
        wasm_docs = docs;
    }
    let wasm_rate = median(rates);
    write_preds(&args.out.join("wasm"), &pages, &wasm_docs)?;
    let identical = native_docs.iter().zip(&wasm_docs).filter(|(a, b)| a == b).count();
    let max_peak = peaks.iter().copied().fold(0.0, f64::max);
    println!("\n== wasm component ({}) ==", args.wasm.display());
    println!(
        "pages per CPU-second: {wasm_rate:.0}; guest linear memory per call: median {:.1} MiB, max {:.1} MiB",
        median(peaks) / 1048576.0,
        max_peak / 1048576.0
    );
    println!("documents identical to native: {identical}/{}", pages.len());
    print!("{}", score(&args.data, &args.out.join("wasm"))?);
    hostile(&runner)?;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(hwm) = status.lines().find(|l| l.starts_with("VmHWM")) {
        println!(
            "\nprocess peak RSS (corpus, both engines, compiled component): {}",
            hwm.trim_start_matches("VmHWM:").trim()
        );
    }
    Ok(())
}
