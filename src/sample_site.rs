//! A small generated website served on loopback: the quick start crawls it, the tests and
//! the benchmark use its pages. Pages are deterministic for a given number, shaped like real
//! news articles (navigation, sidebar, JSON-LD, scripts, comments around the article) and
//! about 100 KB each, the size of a typical article page.
//!
//! It only serves pages; it knows nothing of jobs.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Approximate size of a generated article page, in bytes.
pub const ARTICLE_BYTES: usize = 100 * 1024;

const WORDS: &[&str] = &[
    "river",
    "harbour",
    "council",
    "engineers",
    "measured",
    "water",
    "levels",
    "during",
    "the",
    "storm",
    "season",
    "residents",
    "reported",
    "flooding",
    "near",
    "bridge",
    "after",
    "heavy",
    "rain",
    "city",
    "officials",
    "said",
    "new",
    "barriers",
    "would",
    "protect",
    "homes",
    "along",
    "coast",
    "scientists",
    "expect",
    "tides",
    "to",
    "rise",
    "by",
    "several",
    "centimetres",
    "each",
    "decade",
    "while",
    "funding",
    "remains",
    "uncertain",
    "local",
    "schools",
    "closed",
    "early",
    "and",
    "buses",
    "were",
    "rerouted",
    "through",
    "northern",
    "districts",
    "a",
    "spokesperson",
    "for",
    "regional",
    "authority",
    "confirmed",
    "that",
    "pumps",
    "had",
    "been",
    "running",
    "since",
    "morning",
    "volunteers",
    "filled",
    "sandbags",
    "outside",
    "library",
    "market",
    "traders",
    "moved",
    "stock",
    "upstairs",
    "insurance",
    "claims",
    "are",
    "likely",
    "increase",
    "this",
    "year",
    "forecasters",
    "warned",
    "more",
    "wind",
    "later",
    "in",
    "week",
    "with",
    "gusts",
    "of",
    "up",
    "kilometres",
    "per",
    "hour",
    "ferry",
    "services",
    "cancelled",
    "travellers",
    "should",
    "check",
    "timetables",
    "before",
    "leaving",
    "hospital",
    "remained",
    "open",
    "but",
    "asked",
    "visitors",
    "stay",
    "away",
    "unless",
    "necessary",
    "historic",
    "pier",
    "damaged",
    "repairs",
    "could",
    "take",
    "months",
    "mayor",
    "promised",
    "review",
    "drainage",
    "plans",
    "critics",
    "argue",
    "warnings",
    "came",
    "too",
    "late",
    "families",
    "who",
    "lost",
    "power",
    "may",
    "apply",
    "emergency",
    "support",
    "from",
    "department",
];

/// Generated prose: `sentences` sentences from a generator seeded with `seed`.
fn prose(rng: &mut fastrand::Rng, sentences: usize) -> String {
    let mut text = String::new();
    for _ in 0..sentences {
        let len = rng.usize(8..20);
        for i in 0..len {
            let word = WORDS[rng.usize(..WORDS.len())];
            if i == 0 {
                let mut chars = word.chars();
                if let Some(first) = chars.next() {
                    text.extend(first.to_uppercase());
                    text.push_str(chars.as_str());
                }
            } else {
                text.push(' ');
                text.push_str(word);
            }
        }
        text.push_str(". ");
    }
    text.trim_end().to_string()
}

/// The article page number `n`, about `target_bytes` long.
pub fn article_html(n: usize, target_bytes: usize) -> String {
    let mut rng = fastrand::Rng::with_seed(n as u64 ^ 0x5eed);
    let title = format!("Storm report {n}: {}", prose(&mut rng, 1).trim_end_matches('.'));
    let mut page = String::with_capacity(target_bytes + 4096);
    let _ = write!(
        page,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title} | Harbour Times</title>
<meta name="description" content="{desc}"><meta property="og:title" content="{title}"><meta property="og:site_name" content="Harbour Times">
<script type="application/ld+json">{{"@context":"https://schema.org","@type":"NewsArticle","headline":"{title}","author":{{"@type":"Person","name":"Alex Reporter"}},"datePublished":"2026-11-{day:02}T08:00:00Z"}}</script>
<style>body{{font-family:serif;margin:0}}.nav a{{padding:4px}}.sidebar{{float:right;width:30%}}</style></head><body>
<header class="site-header"><nav class="nav">"#,
        desc = prose(&mut rng, 1),
        day = n % 28 + 1,
    );
    for i in 0..30 {
        let _ = write!(page, r#"<a href="/section/{i}">Section {i}</a> "#);
    }
    page.push_str("</nav></header><aside class=\"sidebar\"><h3>Most read</h3><ul>");
    for i in 1..=20 {
        let _ = write!(page, r#"<li><a href="/articles/{}">{}</a></li>"#, (n + i) % 1000, prose(&mut rng, 1));
    }
    let _ = write!(
        page,
        r#"</ul></aside><main><article><h1>{title}</h1><p class="byline">By Alex Reporter</p><time datetime="2026-11-{:02}">November {}</time>"#,
        n % 28 + 1,
        n % 28 + 1
    );
    let article_budget = target_bytes * 6 / 10;
    let mut paragraph = 0;
    while page.len() < article_budget {
        if paragraph % 6 == 5 {
            let _ = write!(page, "<h2>{}</h2>", prose(&mut rng, 1).trim_end_matches('.'));
        }
        if paragraph % 9 == 8 {
            let _ = write!(page, "<blockquote>{}</blockquote>", prose(&mut rng, 2));
        }
        let sentences = rng.usize(3..7);
        let _ = write!(page, "<p>{}", prose(&mut rng, sentences));
        if paragraph % 4 == 1 {
            // Articles link to related coverage from inside the text.
            let _ =
                write!(page, r#" Read more in <a href="/articles/{}">our earlier report</a>."#, (n + paragraph) % 1000);
        }
        page.push_str("</p>");
        paragraph += 1;
    }
    page.push_str("</article><section class=\"comments\"><h3>Comments</h3>");
    for i in 0..10 {
        let _ = write!(page, r#"<div class="comment"><b>reader{i}</b> {}</div>"#, prose(&mut rng, 1));
    }
    page.push_str("</section></main><footer><ul>");
    for i in 0..40 {
        let _ = write!(page, r#"<li><a href="/about/{i}">Footer link {i}</a></li>"#);
    }
    page.push_str("</ul></footer><script>");
    // Analytics-style script padding: real article pages carry tens of KB of inline script.
    while page.len() < target_bytes {
        let _ = write!(page, "window.__track&&window.__track({{id:{},v:\"{}\"}});", rng.u32(..), rng.u64(..));
    }
    page.push_str("</script></body></html>");
    page
}

/// The home page: links to the first `pages` articles.
pub fn index_html(pages: usize) -> String {
    let mut page = String::from(
        "<!doctype html><html lang=\"en\"><head><title>Harbour Times</title></head><body><h1>Harbour Times</h1><ul>",
    );
    for n in 0..pages {
        let _ = write!(page, r#"<li><a href="/articles/{n}">Storm report {n}</a></li>"#);
    }
    page.push_str("</ul></body></html>");
    page
}

#[derive(Clone)]
struct SiteState {
    /// Each page is generated on first request and kept, so serving costs a copy of bytes,
    /// as a real web server's would, not the generation (benchmarks measure the worker).
    pages: Arc<Vec<OnceLock<Bytes>>>,
}

/// The site's routes: `/` and `/articles/{n}` for `n < pages`.
pub fn router(pages: usize) -> Router {
    let state = SiteState { pages: Arc::new((0..pages).map(|_| OnceLock::new()).collect()) };
    Router::new()
        .route("/", get(|State(s): State<SiteState>| async move { Html(index_html(s.pages.len())) }))
        .route("/articles/{n}", get(article))
        .with_state(state)
}

async fn article(State(site): State<SiteState>, Path(n): Path<usize>) -> Response {
    let Some(slot) = site.pages.get(n) else {
        return (StatusCode::NOT_FOUND, "no such article").into_response();
    };
    let body = slot.get_or_init(|| Bytes::from(article_html(n, ARTICLE_BYTES))).clone();
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

/// Serves the site on `addr` until `stop` fires; returns the bound address once listening.
pub async fn serve(
    addr: SocketAddr,
    pages: usize,
    stop: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let handle = tokio::spawn(async move {
        let served =
            axum::serve(listener, router(pages)).with_graceful_shutdown(async move { stop.cancelled().await }).await;
        if let Err(error) = served {
            tracing::warn!(%error, "The sample site stopped with an error.");
        }
    });
    Ok((bound, handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn articles_are_deterministic_and_about_the_target_size() {
        let a = article_html(3, ARTICLE_BYTES);
        assert_eq!(a, article_html(3, ARTICLE_BYTES));
        assert_ne!(a, article_html(4, ARTICLE_BYTES));
        assert!((ARTICLE_BYTES..ARTICLE_BYTES + 2048).contains(&a.len()), "{}", a.len());
    }
}
