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
}

/// Tokens of a class/id value: split at non-alphanumerics and at camelCase humps
/// (`newsCaption` gives `news`, `Caption`).
fn tokens(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !c.is_ascii_alphanumeric()).filter(|t| !t.is_empty()).flat_map(|t| {
        let b = t.as_bytes();
        let mut cuts = vec![0];
        for i in 1..b.len() {
            if b[i].is_ascii_uppercase() && b[i - 1].is_ascii_lowercase() {
                cuts.push(i);
            }
        }
        cuts.push(b.len());
        (0..cuts.len() - 1).map(move |k| &t[cuts[k]..cuts[k + 1]])
    })
}

fn contains(list: &[&str], token: &str) -> bool {
    list.iter().any(|w| w.eq_ignore_ascii_case(token))
}

/// Classifies an element by its `class`, `id` and `itemprop`.
pub(crate) fn verdict(dom: &Dom, id: NodeId) -> Verdict {
    let mut v = Verdict::default();
    for attr in ["class", "id"] {
        if let Some(value) = dom.attr(id, attr) {
            // Whole-value matches first ("article-body"), then single tokens.
            for word in value.split_ascii_whitespace() {
                let lower = word.to_ascii_lowercase();
                if contains(POSITIVE, &lower) {
                    v.positive = true;
                }
                if contains(NEGATIVE, &lower) {
                    v.negative = true;
                }
            }
            let lower = value.to_ascii_lowercase();
            if STEMS.iter().any(|st| lower.contains(st)) {
                v.negative = true;
                v.strong |= !lower.contains("byline") && !lower.contains("dateline") && !lower.contains("timestamp");
                v.comment |= lower.contains("comment") || lower.contains("disqus");
            }
            for t in tokens(value) {
                if contains(NEGATIVE, t) {
                    v.negative = true;
                }
                if contains(STRONG, t) {
                    v.strong = true;
                }
                if contains(COMMENT, t) {
                    v.comment = true;
                }
            }
            // Positive tokens only from whole words: `ArticlePage` is a page template, not a body.
            for t in value.split(|c: char| !c.is_ascii_alphanumeric()) {
                if contains(POSITIVE, t) {
                    v.positive = true;
                }
            }
        }
    }
    // An embedded post (`social-media-embed`, `twitter-embed`) is quoted content, not a share bar.
    if v.negative
        && ["class", "id"].iter().any(|a| {
            dom.attr(id, a).is_some_and(|c| {
                let c = c.to_ascii_lowercase();
                c.contains("embed") && SOCIAL.iter().any(|s| c.contains(s))
            })
        })
    {
        v = Verdict::default();
    }
    for attr in ["class", "id"] {
        if let Some(value) = dom.attr(id, attr) {
            let squashed: String =
                value.chars().filter(|c| *c != '-' && *c != '_').collect::<String>().to_ascii_lowercase();
            if BODY_MARKERS.iter().any(|m| squashed.contains(m)) {
                v.body = true;
            }
        }
    }
    if dom.attr(id, "itemprop").is_some_and(|p| p.contains("articleBody")) {
        v.body = true;
    }
    if v.body && v.comment {
        v.body = false;
    }
    if let Some(prop) = dom.attr(id, "itemprop")
        && (prop.contains("articleBody") || prop.contains("text"))
    {
        v.positive = true;
    }
    v
}

/// True when the element is hidden, or (unless `visible_only`) has a role that is never content.
pub(crate) fn hidden_or_furniture(dom: &Dom, id: NodeId, visible_only: bool) -> bool {
    for attr in dom.attrs(id) {
        let value = dom.s(attr.value);
        match dom.s(attr.name) {
            "hidden" => return true,
            "aria-hidden" if value.trim() == "true" => return true,
            "style" => {
                let compact: String =
                    value.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
                if compact.contains("display:none") || compact.contains("visibility:hidden") {
                    return true;
                }
            }
            "role" if !visible_only && NEGATIVE_ROLES.iter().any(|r| r.eq_ignore_ascii_case(value.trim())) => {
                return true;
            }
            _ => {}
        }
    }
    false
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

/// Elements never part of an article, whatever they contain.
pub(crate) fn never_content(tag: Tag) -> bool {
    matches!(
        tag,
        Tag::Head
            | Tag::Script
            | Tag::Style
            | Tag::Noscript
            | Tag::Template
            | Tag::Svg
            | Tag::Math
            | Tag::Canvas
            | Tag::Iframe
            | Tag::Object
            | Tag::Embed
            | Tag::Applet
            | Tag::Button
            | Tag::Input
            | Tag::Select
            | Tag::Textarea
            | Tag::Option
            | Tag::Nav
            | Tag::Dialog
            | Tag::Menu
            | Tag::Aside
            | Tag::Footer
            | Tag::Noembed
            | Tag::Noframes
            | Tag::Frameset
            | Tag::Map
            | Tag::Area
            | Tag::Audio
            | Tag::Video
            | Tag::Picture
            | Tag::Title
            | Tag::Meta
            | Tag::Link
            | Tag::Base
            | Tag::Label
            | Tag::Fieldset
            | Tag::Legend
            | Tag::Rp
            | Tag::Rt
            | Tag::Slot
            | Tag::Search
    )
}
