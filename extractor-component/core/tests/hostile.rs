//! Hostile inputs: each returns a document or a typed error quickly and never panics or
//! overflows the stack. Time limits are generous (debug builds on a loaded 2-core machine); they
//! exist to catch quadratic or exponential behaviour, which would take minutes here.

// In tests a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use riptide_extractor::{ExtractError, Options, extract};

/// Minutes would mean a blow-up; a minute leaves room for a loaded CI machine.
const QUICK: Duration = Duration::from_secs(60);

fn timed<T>(f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    assert!(start.elapsed() < QUICK, "took {:?}", start.elapsed());
    out
}

#[test]
fn fifty_megabyte_page_is_refused_by_default_and_handled_when_allowed() {
    let para = "<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.</p>\n";
    let html = format!("<html><body><article>{}</article></body></html>", para.repeat(50 * 1024 * 1024 / para.len()));
    assert!(html.len() >= 50 * 1000 * 1000);
    let err = timed(|| extract(&html, "https://e.example/", &Options::default()));
    assert!(matches!(err, Err(ExtractError::TooLarge { limit, .. }) if limit == 20 * 1024 * 1024));
    let opts = Options { max_input_bytes: 64 * 1024 * 1024, ..Options::default() };
    let doc = timed(|| extract(&html, "https://e.example/", &opts)).unwrap();
    assert!(doc.word_count > 5_000_000);
}

#[test]
fn hundred_thousand_nested_elements() {
    for tag in ["div", "span", "b", "li", "table"] {
        let html = format!("{}deep text{}", format!("<{tag}>").repeat(100_000), format!("</{tag}>").repeat(100_000));
        let doc = timed(|| extract(&html, "", &Options::default())).unwrap();
        assert!(doc.text.contains("deep text") || doc.text.is_empty(), "{tag}");
    }
    // Nested elements that the metadata and pruning passes look at closely.
    for open in ["<div class=\"byline\">", "<a rel=author>", "<h2><div>", "<p><span class=\"comment-body\">", "<li><b>"]
    {
        let html = format!("<body>{}By Jane Doe, 5 min read</body>", open.repeat(50_000));
        timed(|| extract(&html, "", &Options::default())).unwrap();
    }
    // Unclosed, mixed and with attributes.
    let html = "<div class=\"a\"><p><i><span id=x>".repeat(30_000) + "text";
    timed(|| extract(&html, "", &Options::default())).unwrap();
}

#[test]
fn binary_garbage_is_invalid_input() {
    let mut state = 0x2545_f491_u32;
    let bytes: Vec<u8> = (0..1_000_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect();
    let text = riptide_extractor::decode_html(&bytes, None);
    let res = timed(|| extract(&text, "", &Options::default()));
    assert!(matches!(res, Err(ExtractError::InvalidInput { .. })), "{res:?}");
    // Garbage that happens to be valid text is still "a page": no panic either way.
    let lossy = String::from_utf8_lossy(&bytes).replace('\u{fffd}', "<");
    let _ = timed(|| extract(&lossy, "", &Options::default()));
}

#[test]
fn page_of_only_scripts_is_empty_not_an_error() {
    let html = "<html><head><script>var a = '<p>not text</p>';</script></head><body>".to_owned()
        + &"<script>document.write('<div>x</div>')</script><style>p{}</style>".repeat(20_000)
        + "</body></html>";
    let doc = timed(|| extract(&html, "https://e.example/", &Options::default())).unwrap();
    assert_eq!(doc.text, "");
    assert_eq!(doc.quality, 0.0);
}

#[test]
fn empty_and_degenerate_inputs() {
    for html in [
        "",
        " ",
        "<",
        "</",
        "<!--",
        "<![CDATA[",
        "<a href=",
        "&",
        "&#",
        "&#x110000;",
        "<p>\u{0}</p>",
        "<html><html><body><body>",
    ] {
        let doc = extract(html, "not a url", &Options::default()).unwrap();
        assert!(doc.quality <= 1.0);
    }
    let doc = extract("", "", &Options::default()).unwrap();
    assert_eq!(doc.word_count, 0);
    assert!(doc.title.is_none());
}

#[test]
fn many_attributes_entities_and_links() {
    let html = format!(
        "<body><p {}>x</p>{}{}</body>",
        (0..50_000).map(|i| format!("a{i}=\"&amp;{i}\"")).collect::<Vec<_>>().join(" "),
        "&amp;&lt;&#x41;&nbsp".repeat(200_000),
        "<a href=\"/l\">l</a>".repeat(200_000),
    );
    let doc = timed(|| extract(&html, "https://e.example/", &Options::default())).unwrap();
    assert!(doc.links.len() <= 2000);
}

/// Issue 11 item 2: a multi-byte character where a date parser expected a digit panicked natively
/// ("end byte index 10 is not a char boundary") and trapped the WASM guest, in every mode, since
/// metadata is read in all of them. Each variant must give a document; a bad date is dropped, a bad time keeps the date.
#[test]
fn multibyte_characters_in_dates_and_metadata() {
    let cases = [
        r#"<time datetime="2019-11-€5">x</time>"#,
        r#"<time datetime="2019-11-19T0€:00">x</time>"#,
        r#"<time datetime="2019-11-19T08:22+0€:00">x</time>"#,
        r#"<meta property="article:published_time" content="2019-€1-19">"#,
        r#"<meta name="date" content="2019110€">"#,
        r#"<script type="application/ld+json">{"@type":"NewsArticle","datePublished":"2019-11-€5","author":{"name":"İİİ by x"}}</script>"#,
        r#"<span class="byline">İby Jane</span><title>Ünïcödé ·  €€€ — Sïte</title>"#,
        r#"<a href="€:x">a</a><a href="//€/€?€#€">b</a><img src="€€€">"#,
    ];
    for mode in riptide_extractor::Mode::ALL {
        for case in cases {
            let html = format!(
                "<html><head></head><body><article><h1>Title</h1>{case}<p>{}</p></article></body></html>",
                "Words here. ".repeat(40)
            );
            let doc = extract(&html, "https://e.example/€/p?q=€", &Options { mode, ..Options::default() });
            assert!(doc.is_ok(), "{case} in {mode:?}: {doc:?}");
            let published = doc.unwrap().published;
            assert!(published.as_deref().is_none_or(|d| d.starts_with("2019-11-19")), "{case}: {published:?}");
        }
    }
}

/// Found by the `html_bytes` fuzz target (`extractor-component/core/fuzz`): a time zone that is
/// a sign followed by anything was copied into `published` (`2019-11-19T08:22:00-0\u{11}:50`),
/// breaking the documented `YYYY-MM-DD[Thh:mm:ss[Z|±hh:mm]]` shape.
#[test]
fn garbage_time_zones_never_reach_published() {
    for zone in ["-0\u{11}500", "+ab:cd", "+12:€5", "-99:99", "+1:2:3:4"] {
        for html in [
            format!(r#"<meta property="article:published_time" content="2019-11-19T08:22{zone}">"#),
            format!(r#"<p><time datetime="2019/11/19 08:22:01{zone}">x</time></p>"#),
        ] {
            let doc = timed(|| extract(&html, "", &Options::default())).unwrap();
            let published = doc.published.unwrap_or_default();
            let zone_part = published.get(19..).unwrap_or("");
            let ok = zone_part.is_empty()
                || zone_part == "Z"
                || (zone_part.len() == 6
                    && zone_part.starts_with(['+', '-'])
                    && zone_part
                        .bytes()
                        .skip(1)
                        .enumerate()
                        .all(|(i, b)| if i == 2 { b == b':' } else { b.is_ascii_digit() }));
            assert!(ok, "{html} gave published {published:?}");
        }
    }
}
