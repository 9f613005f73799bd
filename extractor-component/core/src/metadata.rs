//! Page metadata: title, byline, published date, site name, description and declared language,
//! from JSON-LD, OpenGraph/`<meta>` tags and the content itself (first `<h1>`, `<time>`, byline
//! elements), in that order of trust. Dates are normalised to ISO 8601 by `dates.rs`.

// Parses untrusted strings: no indexing that could panic (see the crate root).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use serde_json::Value;

use crate::dates::normalize_date;
use crate::html::{Dom, NodeData, NodeId, Tag};
use crate::render::{collapse, text_of};

/// What the page says about itself.
#[derive(Debug, Default, Clone)]
pub(crate) struct Metadata {
    pub(crate) title: Option<String>,
    pub(crate) byline: Option<String>,
    pub(crate) published: Option<String>,
    pub(crate) site_name: Option<String>,
    pub(crate) description: Option<String>,
    /// Declared language (`<html lang>`, `content-language`, `og:locale`, JSON-LD `inLanguage`).
    pub(crate) language: Option<String>,
    /// JSON-LD `articleBody`, a fallback when the page's markup yields too little text.
    pub(crate) article_body: Option<String>,
    /// OpenGraph / JSON-LD image, as given (resolved by the caller).
    pub(crate) image: Option<String>,
}

/// Values of `<meta>` tags, keyed by lower-cased `name`/`property`/`itemprop`/`http-equiv`.
struct Metas<'a> {
    pairs: Vec<(String, &'a str)>,
}

impl<'a> Metas<'a> {
    fn collect(dom: &'a Dom) -> Metas<'a> {
        let mut pairs = Vec::new();
        for id in 0..dom.len() {
            if dom.tag(id) != Some(Tag::Meta) {
                continue;
            }
            let Some(content) = dom.attr(id, "content") else {
                continue;
            };
            for key in ["property", "name", "itemprop", "http-equiv"] {
                if let Some(k) = dom.attr(id, key) {
                    pairs.push((k.trim().to_ascii_lowercase(), content));
                }
            }
        }
        Metas { pairs }
    }

    /// The first non-empty value among `keys`, in the order of `keys`.
    fn get(&self, keys: &[&str]) -> Option<String> {
        keys.iter().find_map(|k| {
            self.pairs.iter().find(|(name, v)| name == k && !v.trim().is_empty()).map(|(_, v)| collapse(v))
        })
    }
}

/// JSON-LD objects of article-like types, flattened out of arrays and `@graph`.
fn json_ld_objects(dom: &Dom) -> Vec<Value> {
    let mut out = Vec::new();
    for span in &dom.json_ld {
        let raw = dom.s(*span).trim();
        // Some CMSs wrap the JSON in an HTML comment or CDATA.
        let raw = raw.trim_start_matches("<!--").trim_end_matches("-->").trim();
        let Ok(value) = serde_json::from_str::<Value>(raw) else {
            continue;
        };
        let mut stack = vec![value];
        // Bounded: JSON-LD nests a few levels; serde_json already caps recursion at 128.
        while let Some(v) = stack.pop() {
            match v {
                Value::Array(items) => stack.extend(items),
                Value::Object(mut map) => {
                    if let Some(graph) = map.remove("@graph") {
                        stack.push(graph);
                    }
                    out.push(Value::Object(map));
                }
                _ => {}
            }
            if out.len() > 64 {
                break;
            }
        }
    }
    out
}

fn type_matches(v: &Value, wanted: &[&str]) -> bool {
    let is = |s: &str| wanted.iter().any(|w| s.eq_ignore_ascii_case(w));
    match v.get("@type") {
        Some(Value::String(s)) => is(s),
        Some(Value::Array(a)) => a.iter().any(|t| t.as_str().is_some_and(is)),
        _ => false,
    }
}

const ARTICLE_TYPES: &[&str] = &[
    "Article",
    "NewsArticle",
    "BlogPosting",
    "Report",
    "ScholarlyArticle",
    "TechArticle",
    "AnalysisNewsArticle",
    "OpinionNewsArticle",
    "ReportageNewsArticle",
    "ReviewNewsArticle",
    "LiveBlogPosting",
    "SocialMediaPosting",
    "Review",
    "Recipe",
    "HowTo",
    "WebPage",
    "ItemPage",
    "MedicalWebPage",
    "Blog",
    "CreativeWork",
];

fn str_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(collapse(s)),
        Value::Array(a) => a.iter().find_map(|x| str_of(Some(x))),
        Value::Object(o) => str_of(o.get("name")).or_else(|| str_of(o.get("@value"))),
        _ => None,
    }
}

/// Author names from a JSON-LD `author` (string, object or array of either).
fn names_of(v: Option<&Value>) -> Option<String> {
    let v = v?;
    let names: Vec<String> = match v {
        Value::Array(a) => a.iter().filter_map(|x| str_of(Some(x))).collect(),
        other => str_of(Some(other)).into_iter().collect(),
    };
    let names: Vec<String> = names.into_iter().filter(|n| !n.starts_with("http")).collect();
    (!names.is_empty()).then(|| names.join(", "))
}

/// Reads the page's metadata.
pub(crate) fn read(dom: &Dom) -> Metadata {
    let metas = Metas::collect(dom);
    let ld = json_ld_objects(dom);
    let article = ld
        .iter()
        .find(|v| type_matches(v, ARTICLE_TYPES.get(..ARTICLE_TYPES.len().saturating_sub(6)).unwrap_or(ARTICLE_TYPES)))
        .or_else(|| ld.iter().find(|v| type_matches(v, ARTICLE_TYPES)));
    let field = |k: &str| article.and_then(|a| str_of(a.get(k)));

    let site_name = metas
        .get(&["og:site_name", "application-name", "twitter:site"])
        .or_else(|| article.and_then(|a| str_of(a.get("publisher"))))
        .or_else(|| {
            ld.iter()
                .find(|v| type_matches(v, &["Organization", "NewsMediaOrganization", "WebSite"]))
                .and_then(|v| str_of(v.get("name")))
        })
        .map(|s| s.trim_start_matches('@').to_owned());

    let page_title = dom.title.map(|s| collapse(dom.s(s)));
    let title = metas
        .get(&["og:title", "twitter:title"])
        .or_else(|| field("headline"))
        .or_else(|| first_h1(dom))
        .or(page_title.clone())
        .map(|t| strip_site_suffix(&t, site_name.as_deref()));

    let byline = article
        .and_then(|a| names_of(a.get("author")).or_else(|| names_of(a.get("creator"))))
        .or_else(|| {
            metas
                .get(&["author", "article:author", "dc.creator", "byl", "sailthru.author", "parsely-author"])
                .filter(|a| !a.starts_with("http"))
        })
        .or_else(|| byline_in_content(dom))
        .map(|b| clean_byline(&b))
        .filter(|b| !b.is_empty());

    let published = field("datePublished")
        .or_else(|| field("dateCreated"))
        .or_else(|| {
            metas.get(&[
                "article:published_time",
                "og:published_time",
                "datepublished",
                "date",
                "pubdate",
                "publishdate",
                "publish-date",
                "dc.date.issued",
                "dc.date",
                "dcterms.created",
                "sailthru.date",
                "parsely-pub-date",
                "article.published",
                "published_time",
                "article:modified_time",
            ])
        })
        .or_else(|| first_time(dom))
        .and_then(|d| normalize_date(&d));

    let description =
        metas.get(&["og:description", "description", "twitter:description"]).or_else(|| field("description"));

    let language = declared_language(dom, &metas).or_else(|| field("inLanguage"));

    Metadata {
        title: title.filter(|t| !t.is_empty()),
        byline,
        published,
        site_name: site_name.filter(|s| !s.is_empty()),
        description,
        language: language.and_then(|l| primary_tag(&l)),
        article_body: article.and_then(|a| a.get("articleBody")).and_then(Value::as_str).map(str::to_owned),
        image: metas.get(&["og:image", "og:image:url", "twitter:image"]).or_else(|| {
            article.and_then(|a| str_of(a.get("image")).or_else(|| a.get("image").and_then(|i| str_of(i.get("url")))))
        }),
    }
}

fn first_h1(dom: &Dom) -> Option<String> {
    let id = (0..dom.len()).find(|&id| dom.tag(id) == Some(Tag::H1))?;
    let t = collapse(&text_of(dom, id, &[]));
    (!t.is_empty()).then_some(t)
}

/// `<time datetime>` or `itemprop=datePublished` in the page.
fn first_time(dom: &Dom) -> Option<String> {
    for id in 0..dom.len() {
        if dom.attr(id, "itemprop") == Some("datePublished")
            && let Some(v) = dom.attr(id, "datetime").or_else(|| dom.attr(id, "content"))
        {
            return Some(v.to_owned());
        }
    }
    (0..dom.len())
        .filter(|&id| dom.tag(id) == Some(Tag::Time))
        .find_map(|id| dom.attr(id, "datetime").map(str::to_owned))
}

/// Byline candidates rendered at most (each costs a walk of its subtree).
const MAX_CANDIDATES: usize = 16;

/// A byline element in the page: `rel=author` / `itemprop=author` first, then the innermost
/// element with a `byline`/`author` class; never inside forms (comment forms label an "author"
/// field).
fn byline_in_content(dom: &Dom) -> Option<String> {
    let in_form = |id: NodeId| {
        let mut a = id;
        while a != crate::html::NONE {
            if matches!(dom.tag(a), Some(Tag::Form | Tag::Label | Tag::Head)) {
                return true;
            }
            a = dom.node(a).parent;
        }
        false
    };
    let usable = |id: NodeId| {
        let t = collapse(&text_of(dom, id, &[]));
        ((3..=100).contains(&t.chars().count()) && !in_form(id)).then_some(t)
    };
    // At most a few candidates are rendered: a hostile page may nest thousands of them.
    let strong = (0..dom.len())
        .filter(|&id| {
            matches!(dom.node(id).data, NodeData::Element { .. })
                && (dom.attr(id, "rel") == Some("author") || dom.attr(id, "itemprop") == Some("author"))
        })
        .take(MAX_CANDIDATES)
        .find_map(usable);
    if strong.is_some() {
        return strong;
    }
    let mut found: Option<(NodeId, String)> = None;
    let mut tried = 0;
    for id in 0..dom.len() {
        let is_byline = dom.attr(id, "class").is_some_and(|c| {
            let c = c.to_ascii_lowercase();
            c.contains("byline") || c.split(|ch: char| !ch.is_ascii_alphanumeric()).any(|t| t == "author")
        });
        if !is_byline {
            continue;
        }
        // Innermost: a match inside the previous match replaces it.
        let inside_prev = found.as_ref().is_some_and(|(p, _)| id > *p && id <= dom.subtree_end(*p));
        if found.is_some() && !inside_prev {
            break;
        }
        tried += 1;
        if tried > MAX_CANDIDATES {
            break;
        }
        if let Some(t) = usable(id) {
            found = Some((id, t));
        }
    }
    found.map(|(_, t)| t)
}

/// "By Jane Doe @jdoe Nov 18, 2019 • 2 min read" to "Jane Doe".
fn clean_byline(b: &str) -> String {
    let cut = b.find(|c: char| c.is_ascii_digit() || matches!(c, '@' | '•' | '|' | '\n')).unwrap_or(b.len());
    let b = b.get(..cut).unwrap_or(b).trim();
    let b = match b.get(..3) {
        Some(by) if by.eq_ignore_ascii_case("by ") => b.get(3..).unwrap_or(""),
        _ => b,
    };
    collapse(b.trim_matches(|c: char| c == ',' || c == '|' || c.is_whitespace()))
}

/// "Headline | Site" and "Headline - Site" lose the site part.
fn strip_site_suffix(title: &str, site: Option<&str>) -> String {
    for sep in [" | ", " - ", " – ", " — ", " :: ", " · "] {
        if let Some((head, tail)) = title.rsplit_once(sep) {
            let tail_is_site = site.is_some_and(|s| {
                let s = s.to_lowercase();
                let t = tail.to_lowercase();
                t.contains(&s) || s.contains(&t)
            });
            if tail_is_site && head.chars().count() >= 10 {
                return head.trim().to_owned();
            }
        }
    }
    title.to_owned()
}

fn declared_language(dom: &Dom, metas: &Metas<'_>) -> Option<String> {
    let html = (0..dom.len().min(64)).find(|&id| dom.tag(id) == Some(Tag::Html));
    html.and_then(|h| dom.attr(h, "lang").or_else(|| dom.attr(h, "xml:lang")))
        .map(str::to_owned)
        .filter(|l| !l.trim().is_empty())
        .or_else(|| metas.get(&["content-language", "og:locale", "language", "dc.language"]))
}

/// `en-US` / `en_GB` / `EN` to `en`; `None` for values that are not a language tag.
pub(crate) fn primary_tag(lang: &str) -> Option<String> {
    let primary = lang.trim().split([',', ';']).next()?.split(['-', '_']).next()?.trim().to_ascii_lowercase();
    ((2..=3).contains(&primary.len()) && primary.bytes().all(|b| b.is_ascii_lowercase())).then_some(primary)
}
