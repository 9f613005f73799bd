//! `bench-extract`: quality and speed (pages per CPU-second) of the extractor on two corpora, the
//! AEB article pages (F1 via `shared/bench/score.py`) and the WCXB development pages of seven kinds
//! (F1 per kind, empties and title agreement via `shared/bench/score_wcxb.py`, plus author and date
//! agreement computed here), natively and through the WASM component, in one run, plus the guest's
//! peak linear memory per call and a native-vs-WASM identity count. A tool, not a test: timings
//! depend on the machine's load (the identity assertion is `tests/identity.rs`).
//!
//! Usage (from the repo root):
//! `cargo run --release -p riptide-extractor-bench -- [--data DIR] [--wcxb DIR] [--wasm FILE] [--passes N] [--out DIR] [--native-only] [--no-wcxb]`
//!
//! Timing: the pages are gunzipped and charset-decoded into memory first; only the extraction loop
//! is timed, as CPU time of the measuring thread (`/proc/thread-self/schedstat`, the same clock as
//! `getrusage(RUSAGE_THREAD)` but in ns and reachable without `unsafe`); each figure is the median of
//! `--passes` passes. WASM: wasmtime 48.0.8, pooling allocator, epoch interruption armed on every
//! call, one fresh `Store` + instance per page (as the worker runs it); compiling the component is not
//! timed.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use riptide_extractor::{Document, Options, decode_html, extract};
use riptide_extractor_bench::corpus::{Page, bench_dir, load_aeb, load_wcxb};
use riptide_extractor_bench::{WasmExtractor, thread_cpu_secs};

struct Args {
    data: PathBuf,
    wcxb: Option<PathBuf>,
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
        data: bench_dir("aeb").unwrap_or_else(|| PathBuf::from("../shared/bench/aeb")),
        wcxb: bench_dir("wcxb"),
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
            "--wcxb" => args.wcxb = Some(val()?.into()),
            "--no-wcxb" => args.wcxb = None,
            "--wasm" => args.wasm = val()?.into(),
            "--passes" => args.passes = val()?.parse().context("--passes")?,
            "--out" => args.out = val()?.into(),
            "--native-only" => args.native_only = true,
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok(args)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn write_preds(dir: &Path, pages: &[Page], docs: &[Option<Document>]) -> Result<()> {
    // The scorers read every *.json in the folder: start from an empty one.
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    for (p, d) in pages.iter().zip(docs) {
        let body = d.as_ref().map_or("", |d| d.text.as_str());
        let title = d.as_ref().and_then(|d| d.title.as_deref()).unwrap_or("");
        let json = serde_json::json!({ "articleBody": body, "title": title, "url": p.url });
        std::fs::write(dir.join(format!("{}.json", p.id)), json.to_string())?;
    }
    Ok(())
}

fn run_script(script: &Path, args: &[&std::ffi::OsStr]) -> Result<String> {
    let out = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!("{} failed: {}", script.display(), String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

/// AEB: `score.py`, plus strict precision (empty = 0), which it prints only when a page is empty.
fn score_aeb(data: &Path, dir: &Path) -> Result<String> {
    let script = data.parent().unwrap_or(data).join("score.py");
    let csv = dir.join("per_doc.csv");
    let summary_path = dir.with_extension("summary.json");
    let mut report = run_script(
        &script,
        &[
            dir.as_os_str(),
            "--data".as_ref(),
            data.as_os_str(),
            "--csv".as_ref(),
            csv.as_os_str(),
            "--json".as_ref(),
            summary_path.as_os_str(),
        ],
    )?;
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&summary_path)?)?;
    if let Some(strict) = summary["all"]["precision_strict"].as_f64() {
        report.push_str(&format!("strict precision (empty = 0): {strict:.3}\n"));
    }
    Ok(report)
}

/// WCXB: `score_wcxb.py` (F1 per kind, empties, title agreement), then author and date agreement.
fn score_wcxb(data: &Path, dir: &Path, pages: &[Page], docs: &[Option<Document>]) -> Result<String> {
    let script = data.parent().unwrap_or(data).join("score_wcxb.py");
    let mut report = run_script(&script, &[dir.as_os_str(), "--data".as_ref(), data.as_os_str()])?;
    report.push_str(&meta_agreement(pages, docs));
    Ok(report)
}

/// Lower-cased words of `s`, as the WCXB scorer splits them (letters and digits).
fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// Author and date agreement on the pages whose ground truth states them. Author: the byline has
/// the same words as the ground truth's author (any order). Date: the same `YYYY-MM-DD`.
fn meta_agreement(pages: &[Page], docs: &[Option<Document>]) -> String {
    let (mut authors, mut author_ok, mut dates, mut date_ok) = (0usize, 0usize, 0usize, 0usize);
    for (p, d) in pages.iter().zip(docs) {
        if !p.author.trim().is_empty() {
            authors += 1;
            let mut want = words(&p.author);
            want.sort();
            let mut got = words(d.as_ref().and_then(|d| d.byline.as_deref()).unwrap_or(""));
            got.sort();
            author_ok += usize::from(!got.is_empty() && got == want);
        }
        let want_date: String = p.date.chars().take(10).collect();
        if want_date.len() == 10 {
            dates += 1;
            let got: String = d.as_ref().and_then(|d| d.published.as_deref()).unwrap_or("").chars().take(10).collect();
            date_ok += usize::from(got == want_date);
        }
    }
    let rate = |ok: usize, n: usize| ok as f64 / n.max(1) as f64;
    format!(
        "author agreement: {:.3} ({author_ok}/{authors} pages that state one); date agreement: {:.3} ({date_ok}/{dates})\n",
        rate(author_ok, authors),
        rate(date_ok, dates)
    )
}

/// Extracts every page `passes` times natively; returns the documents, the median pages per
/// CPU-second and the slowest page.
/// The slowest page of a run: CPU seconds and its id.
type Slowest = (f64, String);

fn run_native(pages: &[Page], passes: usize, opts: &Options) -> Result<(Vec<Option<Document>>, f64, Slowest)> {
    let mut rates = Vec::new();
    let mut docs = Vec::new();
    let mut slowest = (0.0f64, String::new());
    for _ in 0..passes.max(1) {
        let t0 = thread_cpu_secs()?;
        docs = pages
            .iter()
            .map(|p| {
                let t = thread_cpu_secs().unwrap_or(0.0);
                let d = extract(&p.html, &p.url, opts).ok();
                let dt = thread_cpu_secs().unwrap_or(0.0) - t;
                if dt > slowest.0 {
                    slowest = (dt, p.id.clone());
                }
                d
            })
            .collect();
        rates.push(pages.len() as f64 / (thread_cpu_secs()? - t0));
    }
    Ok((docs, median(rates), slowest))
}

/// The same through the component; also the guest's peak memory per call (first pass).
fn run_wasm(
    runner: &WasmExtractor,
    pages: &[Page],
    passes: usize,
    opts: &Options,
) -> Result<(Vec<Option<Document>>, f64, Vec<f64>)> {
    let mut rates = Vec::new();
    let mut docs = Vec::new();
    let mut peaks = Vec::new();
    for pass in 0..passes.max(1) {
        let t0 = thread_cpu_secs()?;
        let mut pass_docs = Vec::with_capacity(pages.len());
        for p in pages {
            let (doc, peak) = runner.extract(&p.html, &p.url, opts)?;
            if pass == 0 {
                peaks.push(peak as f64);
            }
            pass_docs.push(doc.ok());
        }
        rates.push(pages.len() as f64 / (thread_cpu_secs()? - t0));
        docs = pass_docs;
    }
    Ok((docs, median(rates), peaks))
}

/// Which corpus a run is on, for its scorer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Set {
    Aeb,
    Wcxb,
}

/// Both engines on one corpus: speed, scores, identity.
fn bench_set(set: Set, data: &Path, pages: &[Page], args: &Args, runner: Option<&WasmExtractor>) -> Result<()> {
    let name = if set == Set::Aeb { "aeb" } else { "wcxb" };
    let bytes: usize = pages.iter().map(|p| p.html.len()).sum();
    println!(
        "\n######## {} ({}): {} pages, {:.1} MB decoded, {} passes each (median)",
        name.to_uppercase(),
        data.display(),
        pages.len(),
        bytes as f64 / 1e6,
        args.passes
    );
    let opts = Options::default();
    let score = |dir: &Path, docs: &[Option<Document>]| match set {
        Set::Aeb => score_aeb(data, dir),
        Set::Wcxb => score_wcxb(data, dir, pages, docs),
    };
    let (native_docs, native_rate, slowest) = run_native(pages, args.passes, &opts)?;
    let native_dir = args.out.join(name).join("native");
    write_preds(&native_dir, pages, &native_docs)?;
    println!("\n== {name}: native ==");
    println!("pages per CPU-second: {native_rate:.0} (slowest page {:.1} ms, {})", slowest.0 * 1e3, slowest.1);
    print!("{}", score(&native_dir, &native_docs)?);
    let Some(runner) = runner else { return Ok(()) };
    let (wasm_docs, wasm_rate, peaks) = run_wasm(runner, pages, args.passes, &opts)?;
    let wasm_dir = args.out.join(name).join("wasm");
    write_preds(&wasm_dir, pages, &wasm_docs)?;
    let identical = native_docs.iter().zip(&wasm_docs).filter(|(a, b)| a == b).count();
    let max_peak = peaks.iter().copied().fold(0.0, f64::max);
    println!("\n== {name}: wasm component ({}) ==", args.wasm.display());
    println!(
        "pages per CPU-second: {wasm_rate:.0}; guest linear memory per call: median {:.1} MiB, max {:.1} MiB",
        median(peaks) / 1048576.0,
        max_peak / 1048576.0
    );
    println!("documents identical to native: {identical}/{}", pages.len());
    print!("{}", score(&wasm_dir, &wasm_docs)?);
    Ok(())
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
    let runner = if args.native_only { None } else { Some(WasmExtractor::new(&args.wasm)?) };
    let aeb = load_aeb(&args.data)?;
    bench_set(Set::Aeb, &args.data, &aeb, &args, runner.as_ref())?;
    drop(aeb);
    match &args.wcxb {
        Some(dir) => {
            let pages = load_wcxb(dir)?;
            bench_set(Set::Wcxb, dir, &pages, &args, runner.as_ref())?;
        }
        None => println!("\n(WCXB pages not found beside the repository: skipped; --wcxb DIR)"),
    }
    if let Some(runner) = &runner {
        hostile(runner)?;
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(hwm) = status.lines().find(|l| l.starts_with("VmHWM")) {
        println!(
            "\nprocess peak RSS (corpus, both engines, compiled component): {}",
            hwm.trim_start_matches("VmHWM:").trim()
        );
    }
    Ok(())
}
