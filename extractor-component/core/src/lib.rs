//! riptide's extractor core: HTML in, [`Document`] out, as a pure function (no I/O, no clock, no
//! randomness), so that the native build and the WASM guest (`extractor-component/guest`) give
//! identical documents. Module map:
//! - `document`, `error`: the public types and [`ExtractError`]; `charset`: bytes to text;
//! - `html`: the parser into an arena tree; `walk`: the one (iterative) tree walk;
//! - `classify`: class/id/role signals; `content`: main-content selection; `quality`: its score;
//! - `render`: plain text; `markdown`: Markdown; `media`: links and media lists; `url`: resolution;
//! - `metadata`, `dates`: title, byline, date, site, description; `lang`: language detection;
//! - `selectors`: the keep/drop selector subset.

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
// The core must never panic on any input (the WASM guest traps, the native worker fails the job):
// byte-offset slicing of a string panics off a char boundary. Denied outside tests: use `get(..)`,
// char iteration or byte-slice parsing. Modules that parse strings also deny `indexing_slicing`.
#![cfg_attr(not(test), deny(clippy::string_slice))]

mod charset;
mod classify;
mod content;
mod dates;
mod document;
mod error;
mod html;
mod lang;
mod markdown;
mod media;
mod metadata;
mod quality;
mod render;
mod selectors;
mod url;
mod walk;

pub use charset::decode_html;
pub use document::{DEFAULT_MAX_INPUT_BYTES, Document, Info, Link, Media, MediaKind, Mode, Options};
pub use error::ExtractError;

use html::{Dom, NodeId};

/// The extractor's name, reported by [`info`] and recorded by the worker.
pub const EXTRACTOR_NAME: &str = "riptide-article";

/// The extractor's version (the crate version); every [`Document`] carries it.
pub const EXTRACTOR_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Version of the WIT contract (`wit/extractor.wit`, package `riptide:extractor@0.1.0`) this core
/// implements. Bumped on any change to the records or functions.
pub const CONTRACT_VERSION: u32 = 1;

/// Below this many words, the scoring pass found nothing convincing and the loose fallback pass
/// runs (`content::Pass::Loose`), as it does below [`FALLBACK_BELOW_QUALITY`].
const MIN_FALLBACK_WORDS: u32 = 10;

/// Below this quality the pick is no better than a guess, and the fallback pass is tried too (it
/// replaces the pick only when it finds more text).
const FALLBACK_BELOW_QUALITY: f32 = 0.05;

/// Picks of this many words or more never get the fallback pass.
const FALLBACK_MAX_WORDS: u32 = 100;

/// The highest quality a fallback pick may report.
const FALLBACK_QUALITY: f32 = 0.2;

/// Words per minute behind [`Document::reading_time_secs`] (adult silent reading of prose).
const WORDS_PER_MINUTE: u32 = 230;

/// Below this many characters of extracted text, a longer JSON-LD `articleBody` is used instead:
/// the page's markup did not carry the article (client-rendered pages, paywalled markup).
const MIN_TEXT_CHARS: usize = 250;

/// What this extractor is and can do.
pub fn info() -> Info {
    Info {
        name: EXTRACTOR_NAME.to_owned(),
        version: EXTRACTOR_VERSION.to_owned(),
        modes: Mode::ALL.to_vec(),
        contract_version: CONTRACT_VERSION,
    }
}

/// Extracts one page. `url` is the page's address (used to resolve relative links; may be empty,
/// relative links are then dropped).
///
/// Runs in time linear in the input (the parser caps nesting depth and node count), never
/// panics, and returns the same document for the same input on every platform.
///
/// # Errors
/// [`ExtractError::TooLarge`] when `html` is longer than `options.max_input_bytes`;
/// [`ExtractError::InvalidInput`] when it is binary data rather than text, or a selector in the
/// options is outside the supported subset.
pub fn extract(html: &str, url: &str, options: &Options) -> Result<Document, ExtractError> {
    if html.len() > options.max_input_bytes {
        return Err(ExtractError::TooLarge { size: html.len() as u64, limit: options.max_input_bytes as u64 });
    }
    if let Some(reason) = binary_reason(html) {
        return Err(ExtractError::InvalidInput { reason });
    }
    let keep_sel = selectors::parse_list(&options.keep_selectors.join(","))?;
    let drop_sel = selectors::parse_list(&options.drop_selectors.join(","))?;

    let dom = html::parse(html);
    let base = url::parse_base(url);
    let meta = metadata::read(&dom);
    let n = dom.len() as usize;
    let mut pre_drop = vec![false; n];
    selectors::mark(&dom, &drop_sel, &mut pre_drop);
    let mut keep = vec![false; n];
    selectors::mark(&dom, &keep_sel, &mut keep);

    let mut doc = Document {
        url: url.to_owned(),
        title: meta.title.clone(),
        byline: meta.byline.clone(),
        published: meta.published.clone(),
        site_name: meta.site_name.clone(),
        description: meta.description.clone(),
        language: meta.language.clone(),
        text: String::new(),
        markdown: String::new(),
        links: Vec::new(),
        media: Vec::new(),
        word_count: 0,
        reading_time_secs: 0,
        quality: 0.0,
        extractor_version: EXTRACTOR_VERSION.to_owned(),
    };
    match options.mode {
        Mode::Metadata => {}
        Mode::Links => {
            let sel = content::select(&dom, true, &pre_drop, &keep, None);
            doc.links = media::links(&dom, &[sel.root], &sel.drop, base.as_ref());
        }
        Mode::Full | Mode::Article => {
            let full = options.mode == Mode::Full;
            let sel = content::select(&dom, full, &pre_drop, &keep, None);
            let roots = roots_with_kept(&dom, sel.root, &keep, &sel.drop);
            fill_content(&mut doc, &dom, &roots, &sel, base.as_ref(), &meta);
            doc.quality = if full { 0.0 } else { sel.quality };
            let words = word_count(&doc.text);
            // Only short picks: a long text of low quality is a listing the fallback cannot
            // improve, and a second pass over a huge page would double its time and memory.
            let unsure =
                words < MIN_FALLBACK_WORDS || (doc.quality < FALLBACK_BELOW_QUALITY && words < FALLBACK_MAX_WORDS);
            if !full && unsure {
                // Nothing convincing: a looser pass that ignores class tokens, so that a page with
                // text never comes back empty; its quality stays low to say how unsure it is.
                let loose = content::select_pass(&dom, false, &pre_drop, &keep, None, content::Pass::Loose);
                let roots = roots_with_kept(&dom, loose.root, &keep, &loose.drop);
                let mut alt = doc.clone();
                fill_content(&mut alt, &dom, &roots, &loose, base.as_ref(), &meta);
                if word_count(&alt.text) > word_count(&doc.text) {
                    alt.quality = loose.quality.min(FALLBACK_QUALITY);
                    doc = alt;
                }
            }
            if !full && doc.text.chars().count() < MIN_TEXT_CHARS {
                use_json_ld_body(&mut doc, &meta);
            }
        }
    }
    // Language: the text's own evidence first, the page's declaration when the text is unsure.
    if let Some(detected) = lang::detect(&doc.text) {
        doc.language = Some(detected.to_owned());
    }
    doc.word_count = word_count(&doc.text);
    // Saturating: `max_input_bytes` is caller-set, and 72 M words would overflow `u32 * 60`.
    doc.reading_time_secs = doc.word_count.saturating_mul(60) / WORDS_PER_MINUTE;
    Ok(doc)
}

/// The selection's root plus kept elements (keep selectors) that its rendering would miss: those
/// outside it, and those under a dropped element inside it. In page order.
fn roots_with_kept(dom: &Dom, root: NodeId, keep: &[bool], drop: &[bool]) -> Vec<NodeId> {
    let mut roots = vec![root];
    let end = dom.subtree_end(root);
    for id in 0..dom.len() {
        let parent = dom.node(id).parent;
        let top_kept = keep[id as usize] && (parent == html::NONE || !keep[parent as usize]) && !drop[id as usize];
        if !top_kept {
            continue;
        }
        if id <= root && dom.subtree_end(id) >= end {
            // A kept element holding the whole selection is the selection.
            roots[0] = roots[0].min(id);
            continue;
        }
        let outside = id < root || id > end;
        if outside || under_dropped(dom, id, root, drop) {
            roots.push(id);
        }
    }
    let first = roots[0];
    let first_end = dom.subtree_end(first);
    roots.retain(|&r| r <= first || r > first_end);
    roots.sort_unstable();
    roots
}

/// Is `id` below a dropped element that lies inside `root`?
fn under_dropped(dom: &Dom, id: NodeId, root: NodeId, drop: &[bool]) -> bool {
    let mut a = dom.node(id).parent;
    while a != html::NONE && a != root {
        if drop[a as usize] {
            return true;
        }
        a = dom.node(a).parent;
    }
    false
}

fn fill_content(
    doc: &mut Document,
    dom: &Dom,
    roots: &[NodeId],
    sel: &content::Selection,
    base: Option<&url::Base<'_>>,
    meta: &metadata::Metadata,
) {
    let drop = &sel.drop;
    let mut text = String::new();
    let mut md = String::new();
    for &root in roots {
        let t = render::text_of(dom, root, drop);
        if t.is_empty() {
            continue;
        }
        let m = markdown::markdown_of(dom, root, drop, base);
        if text.is_empty() {
            // The usual single root: move, not copy (a copy doubles peak memory on huge pages).
            text = t;
            md = m;
        } else {
            text.push('\n');
            text.push_str(&t);
            md.push_str("\n\n");
            md.push_str(&m);
        }
    }
    doc.text = text;
    doc.markdown = md;
    doc.links = media::links(dom, roots, drop, base);
    doc.media = media::media(dom, roots, &sel.media_drop, base, meta.image.as_deref());
}

/// Replaces a too-short extraction with the page's JSON-LD `articleBody` when that is longer.
fn use_json_ld_body(doc: &mut Document, meta: &metadata::Metadata) {
    let Some(body) = meta.article_body.as_deref() else {
        return;
    };
    let paragraphs: Vec<String> = body.split('\n').map(render::collapse).filter(|p| !p.is_empty()).collect();
    let text = paragraphs.join("\n");
    if text.chars().count() > doc.text.chars().count() * 2 && text.chars().count() >= MIN_TEXT_CHARS {
        doc.markdown = paragraphs.join("\n\n");
        doc.text = text;
        // The markup did not hold the article: the body is the page's word, not our finding.
        doc.quality = doc.quality.max(0.5);
    }
}

/// Words in `text`: runs of alphanumerics, each CJK/kana/hangul character counting as one.
fn word_count(text: &str) -> u32 {
    let mut count = 0u32;
    let mut in_word = false;
    for c in text.chars() {
        let cjk = matches!(c as u32, 0x3040..=0x30ff | 0x3400..=0x4dbf | 0x4e00..=0x9fff | 0xac00..=0xd7af);
        if cjk {
            count = count.saturating_add(1);
            in_word = false;
        } else if c.is_alphanumeric() {
            if !in_word {
                count = count.saturating_add(1);
            }
            in_word = true;
        } else if c != '\'' && c != '’' {
            in_word = false;
        }
    }
    count
}

/// Why `html` looks like binary data rather than a page, if it does: NUL or other control
/// characters, or replacement characters from a failed decode, above 10 % of a sample.
fn binary_reason(html: &str) -> Option<String> {
    let mut total = 0usize;
    let mut control = 0usize;
    let mut replacement = 0usize;
    // Sample the start and the middle: a page with a binary tail is still a page.
    let mid = html.len() / 2;
    let mid = (mid..html.len()).find(|&i| html.is_char_boundary(i)).unwrap_or(html.len());
    for part in [html, html.get(mid..).unwrap_or("")] {
        for c in part.chars().take(4096) {
            total += 1;
            if c == '\u{fffd}' {
                replacement += 1;
            } else if c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\u{c}') {
                control += 1;
            }
        }
    }
    if total >= 64 && (control + replacement) * 10 > total {
        return Some(format!(
            "binary data, not HTML ({control} control and {replacement} undecodable characters in {total} sampled)"
        ));
    }
    None
}

/// The page parsed by the core's HTML parser, serialised in the html5lib tree-construction test
/// format (for the conformance test, `tests/html5lib.rs`). Not part of the stable API.
#[doc(hidden)]
pub fn html5lib_tree(html: &str) -> String {
    html::html5lib_tree(html)
}

/// Describes how the main content was chosen (the best-scoring candidates), for debugging the
/// scorer. Not part of the stable API.
#[doc(hidden)]
pub fn explain(html: &str) -> String {
    let dom = html::parse(html);
    let mut out = String::new();
    let sel = content::select(&dom, false, &[], &[], Some(&mut out));
    out.push_str(&format!("chosen #{} quality {:.2}\n", sel.root, sel.quality));
    out
}

#[cfg(test)]
mod tests {
    use super::{binary_reason, word_count};

    #[test]
    fn counts_words_and_cjk() {
        assert_eq!(word_count("Hello, world! It's 2019."), 4);
        assert_eq!(word_count("今日は"), 3);
    }

    #[test]
    fn binary_is_detected() {
        let garbage: String = (0..2000u32).map(|i| char::from_u32(i % 32).unwrap_or(' ')).collect();
        assert!(binary_reason(&garbage).is_some());
        assert!(binary_reason("<p>plain text</p>").is_none());
    }
}
