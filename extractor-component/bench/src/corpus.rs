//! The benchmark corpora, decoded into memory: the AEB article pages (`shared/bench/aeb`:
//! `ids.txt`, `ground-truth.json`, `html/<id>.html.gz`) and the WCXB development pages
//! (`shared/bench/wcxb`: `html/<id>.html.gz`, `gt/<id>.json` with the page kind and the
//! ground-truth title, author and date). Loading only: scoring is `shared/bench/score*.py`'s job.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use riptide_extractor::decode_html;

/// One benchmark page, decoded, with what its ground truth says about it.
#[derive(Debug, Clone)]
pub struct Page {
    /// File stem of the page (`<id>.html.gz`).
    pub id: String,
    /// The page's address, passed to the extractor.
    pub url: String,
    /// The page, charset-decoded.
    pub html: String,
    /// WCXB page kind (`article`, `forum`, ...; `collection` for WCXB's `category`); "" for AEB.
    pub kind: String,
    /// Ground-truth title, author and publication date (WCXB only; "" when not stated).
    pub title: String,
    /// See `title`.
    pub author: String,
    /// See `title`.
    pub date: String,
}

/// `shared/bench/<name>`, looked up beside the repository: from the current directory
/// (`../shared/bench`), from this crate's manifest directory read at run time (a test binary may
/// outlive its checkout), then `/work/shared/bench`. `None` when absent (users do not have it).
pub fn bench_dir(name: &str) -> Option<PathBuf> {
    let mut candidates = vec![PathBuf::from("../shared/bench").join(name)];
    if let Ok(manifest) = std::env::var("CARGO_MANIFEST_DIR") {
        candidates.push(PathBuf::from(manifest).join("../../../shared/bench").join(name));
    }
    candidates.push(PathBuf::from("/work/shared/bench").join(name));
    candidates.into_iter().find(|p| p.is_dir())
}

fn gunzip(path: &Path) -> Result<String> {
    let gz = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut bytes)
        .with_context(|| format!("gunzip {}", path.display()))?;
    Ok(decode_html(&bytes, None))
}

/// The AEB pages listed in `ids.txt`, in that order.
///
/// # Errors
/// A missing or unreadable file.
pub fn load_aeb(dir: &Path) -> Result<Vec<Page>> {
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("ground-truth.json")).context("ground-truth.json")?)?;
    let ids = std::fs::read_to_string(dir.join("ids.txt")).context("ids.txt")?;
    let mut pages = Vec::new();
    for id in ids.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let html = gunzip(&dir.join("html").join(format!("{id}.html.gz")))?;
        let url = truth[id]["url"].as_str().unwrap_or("").to_owned();
        pages.push(Page {
            id: id.to_owned(),
            url,
            html,
            kind: String::new(),
            title: String::new(),
            author: String::new(),
            date: String::new(),
        });
    }
    Ok(pages)
}

/// The WCXB pages that have a ground-truth file, sorted by id.
///
/// # Errors
/// A missing or unreadable file.
pub fn load_wcxb(dir: &Path) -> Result<Vec<Page>> {
    let mut gts: Vec<PathBuf> = std::fs::read_dir(dir.join("gt"))
        .context("gt/")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    gts.sort();
    let mut pages = Vec::new();
    for gt in gts {
        let id = gt.file_stem().and_then(|s| s.to_str()).unwrap_or("").to_owned();
        let html_path = dir.join("html").join(format!("{id}.html.gz"));
        if !html_path.exists() {
            continue;
        }
        let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&gt)?)?;
        let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
        let mut kind = s(&doc["_internal"]["page_type"]["primary"]);
        if kind == "category" {
            kind = "collection".into();
        }
        pages.push(Page {
            html: gunzip(&html_path)?,
            url: s(&doc["url"]),
            kind,
            title: s(&doc["ground_truth"]["title"]),
            author: s(&doc["ground_truth"]["author"]),
            date: s(&doc["ground_truth"]["publish_date"]),
            id,
        });
    }
    Ok(pages)
}
