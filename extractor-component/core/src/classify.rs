//! Cheap per-element signals used by the scorer: does an element's class/id/role say "boilerplate"
//! or "content", is it hidden. Matching is on whole tokens of `class`/`id` split at non-alphanumeric
//! characters (so `post-comments` has the token `comments`, `adapter` has no token `ad`).

use crate::html::{Dom, NodeId, Tag};

/// Tokens that mark navigation, ads, social widgets, comments and other page furniture.
const NEGATIVE: &[&str] = &[
    "ad",
    "ads",
    "adv",
    "advert",
    "advertisement",
    "advertising",
    "adslot",
    "agegate",
    "banner",
    "breadcrumb",
    "breadcrumbs",
    "combx",
    "comment",
    "comments",
    "commentlist",
    "community",
    "consent",
    "cookie",
    "cookies",
    "disqus",
    "dropdown",
    "footer",
    "footnote",
    "gdpr",
    "hidden",
    "jump",
    "login",
    "masthead",
    "menu",
    "modal",
    "nav",
    "navbar",
    "navigation",
    "newsletter",
    "outbrain",
    "overlay",
    "pager",
    "pagination",
    "paywall",
    "popular",
    "popup",
    "promo",
    "promotion",
    "recommend",
    "recommended",
    "recirc",
    "related",
    "remark",
    "replies",
    "reply",
    "rss",
    "share",
    "sharebar",
    "sharing",
    "shoutbox",
    "sidebar",
    "signup",
    "skip",
    "social",
    "sponsor",
    "sponsored",
    "subscribe",
    "subscription",
    "taboola",
    "tags",
    "toolbar",
    "tools",
    "trending",
    "tweet",
    "widget",
    "subnav",
    "topnav",
    "sitenav",
    "teaser",
    "teasers",
    "byline",
    "dateline",
    "timestamp",
    "author",
    "print",
    "email",
    "follow",
    "most",
    "header",
    "read-more",
    "readmore",
    "more",
    "caption",
    "date",
    "time",
    "published",
    "meta",
    "updated",
    "info",
    "author-info",
    "signature",
    "credit",
    "credits",
    "copyright",
    "legal",
    "disclaimer",
    "bio",
    "inline-ad",
    "ad-container",
];

/// Negative tokens that win even when a positive token is present (`comment-body`,
/// `sidebar-content`): these sections are never the article.
const STRONG: &[&str] = &[
    "comment",
    "comments",
    "commentlist",
    "disqus",
    "sidebar",
    "related",
    "share",
    "sharing",
    "social",
    "newsletter",
    "promo",
    "footer",
    "nav",
    "navbar",
    "navigation",
    "menu",
    "breadcrumb",
    "breadcrumbs",
    "cookie",
    "cookies",
    "consent",
    "gdpr",
    "popup",
    "modal",
    "outbrain",
    "taboola",
    "recirc",
    "recommended",
    "replies",
    "reply",
    "subscribe",
    "signup",
    "paywall",
    "advertisement",
    "trending",
    "popular",
];

/// Stems matched anywhere in a lower-cased class/id (`cookieNotice`, `relatedStories`,
/// `socialShare`): distinctive enough that a substring match is safe.
const STEMS: &[&str] = &[
    "cookie",
    "comment",
    "sidebar",
    "social",
    "newsletter",
    "related",
    "advert",
    "promo",
    "breadcrumb",
    "disqus",
    "subscri",
    "sponsor",
    "footer",
    "navbar",
    "popup",
    "outbrain",
    "taboola",
    "sharing",
    "share-",
    "-share",
    "sharebar",
    "byline",
    "dateline",
    "timestamp",
    "recommend",
    // Other languages' words for the same furniture (comments, ads, sharing, related).
    "kommentar",
    "komentar",
    "comentario",
    "commentaire",
    "werbung",
    "anzeige",
    "publicidad",
    "pubblicita",
    "reklam",
    "compartir",
    "partager",
    "relacionad",
    "verwandt",
    "correlat",
];

/// Class/id names of article-body containers across CMSs and sites, compared with `-`/`_`
/// removed and lower-cased (`article-body`, `entry-content`, `StoryBodyCompanionColumn`).
const BODY_MARKERS: &[&str] = &[
    "articlebody",
    "articlecontent",
    "articletext",
    "articlecopy",
    "storybody",
    "storycontent",
    "storytext",
    "entrycontent",
    "entrybody",
    "postcontent",
    "postbody",
    "posttext",
    "postentry",
    "blogpostcontent",
    "contentbody",
    "bodycopy",
];

/// Networks whose embedded posts are part of an article.
const SOCIAL: &[&str] = &["social", "tweet", "twitter", "instagram", "facebook", "tiktok", "youtube"];

/// Whole-block texts that are labels, not content ("Advertisement" above an ad slot).
const LABELS: &[&str] = &[
    "caption",
    "close",
    "hide caption",
    "toggle caption",
    "expand",
    "enlarge this image",
    "advertisement",
    "advert",
    "ad",
    "ads",
    "sponsored",
    "sponsored content",
    "anzeige",
    "werbung",
    "publicité",
    "publicidad",
    "pubblicità",
    "reklama",
    "story continues below advertisement",
    "continue reading below",
    "article continues below",
    "scroll to continue with content",
];

/// Is this block's whole text an ad label?
pub(crate) fn is_label(text: &str) -> bool {
    let t = text.trim().trim_end_matches(':').to_lowercase();
    t.len() <= 48 && LABELS.contains(&t.as_str())
}

/// Reader comments: never the article, however much text they hold.
const COMMENT: &[&str] = &["comment", "comments", "commentlist", "disqus", "replies", "reply"];

/// Tokens that mark the main content.
const POSITIVE: &[&str] = &[
    "article",
    "articlebody",
    "article-body",
    "body",
    "content",
    "entry",
    "entry-content",
    "main",
    "post",
    "post-body",
    "post-content",
    "story",
    "story-body",
    "storybody",
    "text",
    "blog",
    "hentry",
    "page",
    "prose",
    "rich-text",
    "richtext",
    "paragraph",
    "articletext",
];

/// Roles whose elements are never content.
const NEGATIVE_ROLES: &[&str] = &[
    "navigation",
    "banner",
    "contentinfo",
    "complementary",
    "search",
    "menu",
    "menubar",
    "dialog",
    "alert",
    "alertdialog",
    "tablist",
    "toolbar",
    "tooltip",
];

/// The class/id verdict for one element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Verdict {
    pub(crate) negative: bool,
    pub(crate) positive: bool,
    /// A negative token from [`STRONG`] is present.
    pub(crate) strong: bool,
    /// A token from [`COMMENT`] is present.
    pub(crate) comment: bool,
    /// A class/id/itemprop that names the article body itself ([`BODY_MARKERS`]).
    pub(crate) body: bool,
    /// The value names an embedded social post (`twitter-embed`).
    social_embed: bool,
}

impl Verdict {
    fn merge(&mut self, o: Verdict) {
        self.negative |= o.negative;
        self.positive |= o.positive;
        self.strong |= o.strong;
        self.comment |= o.comment;
        self.body |= o.body;
        self.social_embed |= o.social_embed;
    }
}

/// Tokens of a class/id value: split at non-alphanumerics and at camelCase humps
/// (`newsCaption` gives `news`, `Caption`).
fn tokens(s: &str) -> impl Iterator<Item = &str> {
    let b = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < b.len() {
            let c = b[i];
            if !c.is_ascii_alphanumeric() {
                let tok = (start, i);
                i += 1;
                start = i;
                if tok.1 > tok.0 {
                    return s.get(tok.0..tok.1);
                }
                continue;
            }
            if i > start && c.is_ascii_uppercase() && b[i - 1].is_ascii_lowercase() {
                let tok = (start, i);
                start = i;
                i += 1;
                return s.get(tok.0..tok.1);
            }
            i += 1;
        }
        if start < b.len() {
            let tok = start;
            start = b.len();
            return s.get(tok..);
        }
        None
    })
}

/// Bit flags of a class/id word, from the lists above.
const F_NEG: u8 = 1;
const F_STRONG: u8 = 2;
const F_COMMENT: u8 = 4;
const F_POS: u8 = 8;

/// All listed words with their flags, sorted for binary search (built once per process; the
/// lists stay readable above).
fn word_table() -> &'static [(u128, u8)] {
    static TABLE: std::sync::OnceLock<Vec<(u128, u8)>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t: Vec<(u128, u8)> = Vec::new();
        for (list, flag) in [(NEGATIVE, F_NEG), (STRONG, F_STRONG), (COMMENT, F_COMMENT), (POSITIVE, F_POS)] {
            for w in list {
                let k = pack(w.as_bytes()).unwrap_or(0);
                match t.iter_mut().find(|(x, _)| *x == k) {
                    Some((_, f)) => *f |= flag,
                    None => t.push((k, flag)),
                }
            }
        }
        t.sort_unstable();
        t
    })
}

/// A word of at most 16 bytes, lower-cased, packed into an integer (listed words are shorter).
fn pack(word: &[u8]) -> Option<u128> {
    if word.is_empty() || word.len() > 16 {
        return None;
    }
    Some(word.iter().fold(0u128, |k, &c| (k << 8) | u128::from(c.to_ascii_lowercase())))
}

/// Flags of one word, compared case-insensitively. Integer keys: this runs for every class
/// token of every element, and string comparison dominated the profile.
fn flags(word: &str) -> u8 {
    let Some(key) = pack(word.as_bytes()) else {
        return 0;
    };
    let table = word_table();
    table.binary_search_by_key(&key, |(k, _)| *k).map_or(0, |i| table[i].1)
}

/// Does any of `stems` occur in `hay` (lower-case bytes)? One pass, no allocation.
fn any_stem(hay: &[u8], stems: &[&str]) -> bool {
    (0..hay.len()).any(|i| {
        let rest = &hay[i..];
        stems.iter().any(|st| st.as_bytes().first() == rest.first() && rest.starts_with(st.as_bytes()))
    })
}

/// The verdict of one `class` or `id` value.
fn value_verdict(value: &str) -> Verdict {
    let mut v = Verdict::default();
    // Whole-value matches first ("article-body"), then single tokens.
    for word in value.split_ascii_whitespace() {
        let f = flags(word);
        v.positive |= f & F_POS != 0;
        v.negative |= f & F_NEG != 0;
    }
    let lower = value.to_ascii_lowercase();
    if any_stem(lower.as_bytes(), STEMS) {
        v.negative = true;
        v.strong |= !lower.contains("byline") && !lower.contains("dateline") && !lower.contains("timestamp");
        v.comment |= ["comment", "disqus", "kommentar", "komentar", "comentario", "commentaire"]
            .iter()
            .any(|c| lower.contains(c));
    }
    for t in tokens(value) {
        let f = flags(t);
        v.negative |= f & F_NEG != 0;
        v.strong |= f & F_STRONG != 0;
        v.comment |= f & F_COMMENT != 0;
    }
    // Positive tokens only from whole words: `ArticlePage` is a page template, not a body.
    for t in value.split(|c: char| !c.is_ascii_alphanumeric()) {
        v.positive |= flags(t) & F_POS != 0;
    }
    v.social_embed = lower.contains("embed") && any_stem(lower.as_bytes(), SOCIAL);
    let squashed: Vec<u8> = lower.bytes().filter(|&c| c != b'-' && c != b'_').collect();
    v.body = any_stem(&squashed, BODY_MARKERS);
    v
}

/// Per-page classifier: class values repeat a lot within a page (every comment, every teaser),
/// so their verdicts are cached. A `BTreeMap`, not a `HashMap`: no random seed is needed (the
/// WASM guest then imports no randomness) and results stay deterministic.
#[derive(Debug, Default)]
pub(crate) struct Classifier<'a> {
    cache: std::collections::BTreeMap<&'a str, Verdict>,
}

/// Longest class/id value that is cached; longer ones are computed each time (rare, and a
/// hostile page must not fill memory with cache keys - they borrow from the page, though).
const MAX_CACHED: usize = 256;

impl<'a> Classifier<'a> {
    fn value(&mut self, value: &'a str) -> Verdict {
        if value.len() > MAX_CACHED {
            return value_verdict(value);
        }
        *self.cache.entry(value).or_insert_with(|| value_verdict(value))
    }

    /// Classifies an element by its `class`, `id`, `itemprop`, and reports whether it is hidden
    /// (`hidden`, `aria-hidden`, inline `display:none`) or, unless `visible_only`, has a role that is
    /// never content. One pass over the attributes.
    pub(crate) fn classify(&mut self, dom: &'a Dom, id: NodeId, visible_only: bool) -> (Verdict, bool) {
        let mut v = Verdict::default();
        let mut hidden = false;
        let mut itemprop = None;
        for attr in dom.attrs(id) {
            let value = dom.s(attr.value);
            match dom.s(attr.name) {
                "class" | "id" => v.merge(self.value(value)),
                "itemprop" => {
                    itemprop = Some(value);
                    // Microdata for the metadata we report separately (dates, author, publisher)
                    // is not body text.
                    hidden |= !visible_only
                        && value.split_ascii_whitespace().any(|p| {
                            matches!(p, "datePublished" | "dateModified" | "dateCreated" | "author" | "publisher")
                        });
                }
                "hidden" => hidden = true,
                "aria-hidden" if value.trim() == "true" => hidden = true,
                "style" if value.contains("none") || value.contains("hidden") => {
                    let compact: String =
                        value.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
                    if compact.contains("display:none") || compact.contains("visibility:hidden") {
                        hidden = true;
                    }
                }
                "role" if !visible_only && NEGATIVE_ROLES.iter().any(|r| r.eq_ignore_ascii_case(value.trim())) => {
                    hidden = true;
                }
                _ => {}
            }
        }
        // An embedded post (`social-media-embed`, `twitter-embed`) is quoted content, not a share bar.
        if v.negative && v.social_embed {
            v = Verdict { body: v.body, ..Verdict::default() };
        }
        if let Some(prop) = itemprop {
            if prop.contains("articleBody") {
                v.body = true;
            }
            if prop.contains("articleBody") || prop.contains("text") {
                v.positive = true;
            }
        }
        if v.body && v.comment {
            v.body = false;
        }
        (v, hidden)
    }
}

/// Elements that are never visible text (dropped in every mode).
pub(crate) fn invisible(tag: Tag) -> bool {
    matches!(
        tag,
        Tag::Head
            | Tag::Script
            | Tag::Style
            | Tag::Noscript
            | Tag::Template
            | Tag::Title
            | Tag::Meta
            | Tag::Link
            | Tag::Base
            | Tag::Iframe
            | Tag::Object
            | Tag::Embed
            | Tag::Applet
            | Tag::Noembed
            | Tag::Noframes
            | Tag::Select
            | Tag::Option
            | Tag::Textarea
            | Tag::Input
            | Tag::Rp
            | Tag::Svg
            | Tag::Math
            | Tag::Canvas
    )
}

/// Elements never part of an article, whatever they contain: the invisible ones, and page
/// furniture (navigation, asides, footers, forms' controls, media players).
pub(crate) fn never_content(tag: Tag) -> bool {
    invisible(tag)
        || matches!(
            tag,
            Tag::Button
                | Tag::Nav
                | Tag::Dialog
                | Tag::Menu
                | Tag::Aside
                | Tag::Footer
                | Tag::Frameset
                | Tag::Map
                | Tag::Area
                | Tag::Audio
                | Tag::Video
                | Tag::Picture
                | Tag::Label
                | Tag::Fieldset
                | Tag::Legend
                | Tag::Rt
                | Tag::Slot
                | Tag::Search
        )
}

#[cfg(test)]
mod tests {
    use super::tokens;

    #[test]
    fn tokens_split_on_punctuation_and_camel_case() {
        let t: Vec<&str> = tokens("post-comments newsCaption  a_b ArticlePage").collect();
        assert_eq!(t, ["post", "comments", "news", "Caption", "a", "b", "Article", "Page"]);
    }
}
