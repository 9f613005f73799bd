//! riptide's extractor core: HTML in, [`Document`] out, as a pure function (no I/O, no clock, no
//! randomness), so that the native build and the WASM guest (`extractor-component/guest`) give
//! identical documents. Module map:
//! - `document` / `error`: the public types and [`ExtractError`];
//! - `html`: parser into an arena tree; `walk`: the one iterative tree walk;
//! - `render`: plain text; `url`: reference resolution.

mod charset;
mod classify;
mod content;
mod document;
mod error;
#[allow(dead_code)] // parts of the tree API are used only by later passes and tests
mod html;
mod quality;
mod render;
mod url;
mod walk;

pub use document::{
    DEFAULT_MAX_INPUT_BYTES, Document, Info, Link, Media, MediaKind, Mode, Options,
};
pub use charset::decode_html;
pub use error::ExtractError;

use html::Tag;

/// The extractor's name, reported by [`info`] and recorded by the worker.
pub const EXTRACTOR_NAME: &str = "riptide-article";

/// The extractor's version (the crate version); every [`Document`] carries it.
pub const EXTRACTOR_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Version of the WIT contract (`wit/extractor.wit`, package `riptide:extractor@0.1.0`) this core
/// implements. Bumped on any change to the records or functions.
pub const CONTRACT_VERSION: u32 = 1;

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
/// # Errors
/// [`ExtractError::TooLarge`] when `html` is longer than `options.max_input_bytes`;
/// [`ExtractError::InvalidInput`] when it is binary data rather than text.
pub fn extract(html: &str, url: &str, options: &Options) -> Result<Document, ExtractError> {
    if html.len() > options.max_input_bytes {
        return Err(ExtractError::TooLarge {
            size: html.len() as u64,
            limit: options.max_input_bytes as u64,
        });
    }
    let dom = html::parse(html);
    let base = url::parse_base(url);
    let sel = content::select(&dom, options.mode == Mode::Full, None);
    let root = sel.root;
    let drop = &sel.drop;
    let text = render::text_of(&dom, root, drop);
    let title = dom.title.map(|s| render::collapse(dom.s(s)));
    let mut links = Vec::new();
    for id in root..=dom.subtree_end(root) {
        if dom.tag(id) == Some(Tag::A)
            && !drop[id as usize]
            && let Some(u) = dom
                .attr(id, "href")
                .and_then(|h| url::resolve(base.as_ref(), h))
        {
            links.push(Link {
                url: u,
                text: render::collapse(&render::text_of(&dom, id, drop)),
                rel: dom.attr(id, "rel").map(str::to_owned),
            });
        }
    }
    let word_count = text.split_whitespace().count() as u32;
    Ok(Document {
        url: url.to_owned(),
        title,
        byline: None,
        published: None,
        site_name: None,
        description: None,
        language: None,
        markdown: text.clone(),
        text,
        links,
        media: Vec::new(),
        word_count,
        reading_time_secs: word_count * 60 / 230,
        quality: sel.quality,
        extractor_version: EXTRACTOR_VERSION.to_owned(),
    })
}

/// Describes how the main content was chosen (the best-scoring candidates), for debugging the
/// scorer. Not part of the stable API.
#[doc(hidden)]
pub fn explain(html: &str) -> String {
    let dom = html::parse(html);
    let mut out = String::new();
    let sel = content::select(&dom, false, Some(&mut out));
    out.push_str(&format!("chosen #{} quality {:.2}\n", sel.root, sel.quality));
    out
}
