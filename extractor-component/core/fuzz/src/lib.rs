//! What the fuzz targets share: the invariants every extraction must keep ([`check`]) and a
//! structure-aware page generator ([`tree`]). The targets in `fuzz_targets/` only feed inputs;
//! the rules live here so both targets hold the core to the same promises.
//!
//! It must not weaken a promise to make a run pass: a failed assertion here is a finding (a
//! crash to minimise and report), not something to tune away.

pub mod tree;

use riptide_extractor::{Document, ExtractError, Mode, Options, extract};

/// The parser's nesting cap (`html/parse.rs` `MAX_DEPTH`): Markdown may indent a line once per
/// open list or quote, so its size is linear in the input with this factor.
const MAX_DEPTH: usize = 256;

/// Items per links/media list (`media.rs` `MAX_ITEMS`).
const MAX_ITEMS: usize = 2000;

/// Extracts `html` in `options.mode` and checks the core's promises: no panic (libFuzzer sees
/// one as a crash), a typed error only for the reasons the API documents, and a document whose
/// fields stay within their documented shapes and whose size is bounded linearly by the input.
pub fn check(html: &str, url: &str, options: &Options) -> Option<Document> {
    match extract(html, url, options) {
        Ok(doc) => {
            assert!(
                html.len() <= options.max_input_bytes,
                "accepted {} > {} bytes",
                html.len(),
                options.max_input_bytes
            );
            check_document(&doc, html, url, options.mode);
            Some(doc)
        }
        Err(ExtractError::TooLarge { size, limit }) => {
            assert_eq!(size, html.len() as u64);
            assert_eq!(limit, options.max_input_bytes as u64);
            assert!(html.len() > options.max_input_bytes, "TooLarge for {} <= {}", html.len(), limit);
            None
        }
        Err(ExtractError::InvalidInput { reason }) => {
            // Only binary-looking text or a selector outside the subset may be refused.
            let selectors = !options.keep_selectors.is_empty() || !options.drop_selectors.is_empty();
            // The core's own test: control characters other than \t \n \r \x0c, or U+FFFD.
            let binaryish =
                html.chars().any(|c| c == '\u{fffd}' || (c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\u{c}')));
            assert!(selectors || binaryish, "InvalidInput ({reason}) for a text page without selectors");
            assert!(!reason.is_empty());
            None
        }
        // `UnsupportedMode` cannot come from a `Mode` value; `Internal` is a bug by definition.
        Err(other @ (ExtractError::UnsupportedMode { .. } | ExtractError::Internal { .. })) => {
            unreachable!("unexpected error {other:?}")
        }
    }
}

fn check_document(doc: &Document, html: &str, url: &str, mode: Mode) {
    assert_eq!(doc.url, url);
    assert_eq!(doc.extractor_version, riptide_extractor::EXTRACTOR_VERSION);
    assert!(doc.quality.is_finite() && (0.0..=1.0).contains(&doc.quality), "quality {}", doc.quality);
    assert_eq!(doc.reading_time_secs, doc.word_count * 60 / 230);
    assert!(doc.word_count as usize <= doc.text.chars().count(), "{} words in {:?}", doc.word_count, doc.text);
    match mode {
        Mode::Metadata => {
            assert!(doc.text.is_empty() && doc.markdown.is_empty(), "metadata mode has text");
            assert!(doc.links.is_empty() && doc.media.is_empty(), "metadata mode has links or media");
        }
        Mode::Links => {
            assert!(doc.text.is_empty() && doc.markdown.is_empty(), "links mode has text");
            assert!(doc.media.is_empty(), "links mode has media");
        }
        Mode::Full => assert_eq!(doc.quality, 0.0, "full mode makes no selection"),
        Mode::Article => {}
    }
    if let Some(date) = &doc.published {
        assert!(is_iso_date(date), "published {date:?} is not ISO 8601 (YYYY-MM-DD[Thh:mm:ss[Z|±hh:mm]])");
    }
    if let Some(lang) = &doc.language {
        assert!((2..=3).contains(&lang.len()) && lang.bytes().all(|b| b.is_ascii_lowercase()), "language {lang:?}");
    }
    // Output size: linear in the input. Text is the input's characters (entities expand at most
    // ~1.5x: `&nGt;` is 5 bytes for 6) plus line breaks; Markdown adds escapes, list and quote
    // prefixes up to the nesting cap, and one absolute URL per link or image tag (at least 10
    // input bytes each) that can be as long as the page URL plus the reference.
    let n = html.len();
    assert!(doc.text.len() <= 3 * n + 64, "text {} bytes from {n}", doc.text.len());
    let per_ref = url.len() + 16;
    let md_bound = (2 * MAX_DEPTH + 8) * n + (n / 10 + 1) * per_ref + 64;
    assert!(doc.markdown.len() <= md_bound, "markdown {} bytes from {n}", doc.markdown.len());
    assert!(doc.links.len() <= MAX_ITEMS && doc.media.len() <= MAX_ITEMS);
    for link in &doc.links {
        assert!(!link.url.is_empty(), "empty link url");
        assert!(link.url.len() <= url.len() + n + 16, "link {} bytes", link.url.len());
        assert!(link.text.len() <= 3 * n + 64);
    }
    for media in &doc.media {
        assert!(!media.url.is_empty(), "empty media url");
        assert!(media.url.len() <= url.len() + n + 16, "media {} bytes", media.url.len());
    }
    for field in [&doc.title, &doc.byline, &doc.site_name, &doc.description].into_iter().flatten() {
        assert!(field.len() <= 3 * n + 64, "metadata field {} bytes from {n}", field.len());
    }
}

/// `YYYY-MM-DD`, optionally followed by `Thh:mm:ss` and `Z` or `±hh:mm`: what
/// `Document::published` documents.
fn is_iso_date(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let date = b.len() >= 10 && digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10);
    if !date {
        return false;
    }
    if b.len() == 10 {
        return true;
    }
    let time = b.len() >= 19
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    if !time {
        return false;
    }
    match b.get(19..) {
        Some([]) | Some([b'Z']) => true,
        Some([sign, h1, h2, b':', m1, m2]) => {
            matches!(sign, b'+' | b'-') && [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit())
        }
        _ => false,
    }
}
