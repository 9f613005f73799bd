//! The plain-data types of the extractor's API: options in, document out. They mirror the WIT
//! records in `wit/extractor.wit` field for field; the guest converts between the two, nothing here
//! knows about WASM. Serde derives are part of the contract (the worker stores documents as
//! MessagePack).

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ExtractError;

/// Default for [`Options::max_input_bytes`]: 20 MiB. Real articles are well under 2 MiB; the cap
/// exists so that a hostile page costs bounded time and memory.
pub const DEFAULT_MAX_INPUT_BYTES: usize = 20 * 1024 * 1024;

/// What to extract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The main content only (boilerplate, navigation and comments removed), plus metadata, links
    /// and media of that content.
    #[default]
    Article,
    /// All visible text of the page's body, plus metadata and every link and media item.
    Full,
    /// Metadata only: `text` and `markdown` are empty, links and media are empty.
    Metadata,
    /// Metadata and every link of the page; `text` and `markdown` are empty.
    Links,
}

impl Mode {
    /// Every mode, in the order `info()` reports them.
    pub const ALL: [Mode; 4] = [Mode::Article, Mode::Full, Mode::Metadata, Mode::Links];

    /// The mode's name on the wire (WIT, CLI, serde).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Article => "article",
            Mode::Full => "full",
            Mode::Metadata => "metadata",
            Mode::Links => "links",
        }
    }
}

impl FromStr for Mode {
    type Err = ExtractError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ExtractError::UnsupportedMode { mode: s.to_owned() })
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How to extract one page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Options {
    /// What to extract.
    pub mode: Mode,
    /// Simple CSS selectors (`tag`, `.class`, `#id`, `tag.class`, `[attr]`, `[attr=value]`) whose
    /// elements are always kept in the article, even when scoring would drop them.
    pub keep_selectors: Vec<String>,
    /// Simple CSS selectors whose elements are removed before anything else happens.
    pub drop_selectors: Vec<String>,
    /// Inputs longer than this many bytes are refused with [`ExtractError::TooLarge`].
    pub max_input_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mode: Mode::Article,
            keep_selectors: Vec::new(),
            drop_selectors: Vec::new(),
            max_input_bytes: DEFAULT_MAX_INPUT_BYTES,
        }
    }
}

/// One extracted page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// The page URL as given (the base for resolving relative links).
    pub url: String,
    /// The article's title (headline), without the site-name suffix where one was detected.
    pub title: Option<String>,
    /// The author(s), as written on the page.
    pub byline: Option<String>,
    /// Publication date in ISO 8601 (`YYYY-MM-DD`, or a full timestamp when the page gives one).
    pub published: Option<String>,
    /// The publication or site name.
    pub site_name: Option<String>,
    /// The page's own summary (meta description / OpenGraph / JSON-LD).
    pub description: Option<String>,
    /// Language as a BCP 47 primary tag (`en`, `de`, `ar`...).
    pub language: Option<String>,
    /// The main content as plain text: one paragraph per line, blank lines between blocks.
    pub text: String,
    /// The main content as CommonMark/GFM Markdown.
    pub markdown: String,
    /// Links (absolute URLs): of the main content in `article` mode, of the whole page otherwise.
    pub links: Vec<Link>,
    /// Images, video and audio (absolute URLs), scoped like `links`.
    pub media: Vec<Media>,
    /// Words in `text` (Unicode word runs; each CJK character counts as one word).
    pub word_count: u32,
    /// Estimated reading time at 230 words per minute, in seconds.
    pub reading_time_secs: u32,
    /// Confidence in 0..=1 that `text` is the page's main content and nothing else (coverage of
    /// the page's prose x share of non-link text x substance; see `quality.rs`). Below ~0.3: a
    /// listing, stub, error page or doubtful pick. 0 when nothing was extracted, and in the
    /// `full`, `metadata` and `links` modes, which make no selection.
    pub quality: f32,
    /// Version of the extractor that produced this document.
    pub extractor_version: String,
}

/// One hyperlink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// Absolute URL.
    pub url: String,
    /// Visible text of the link (whitespace collapsed; may be empty).
    pub text: String,
    /// The `rel` attribute, when present.
    pub rel: Option<String>,
}

/// Kind of a media item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    /// `<img>`, `<picture>` source or an OpenGraph image.
    Image,
    /// `<video>` (or its `<source>`).
    Video,
    /// `<audio>` (or its `<source>`).
    Audio,
}

/// One media item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Media {
    /// Absolute URL.
    pub url: String,
    /// What it is.
    pub kind: MediaKind,
    /// Alternative text, when present and not empty.
    pub alt: Option<String>,
}

/// What the extractor is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Info {
    /// [`crate::EXTRACTOR_NAME`].
    pub name: String,
    /// [`crate::EXTRACTOR_VERSION`].
    pub version: String,
    /// Modes it supports.
    pub modes: Vec<Mode>,
    /// Version of the WIT contract it implements ([`crate::CONTRACT_VERSION`]).
    pub contract_version: u32,
}
