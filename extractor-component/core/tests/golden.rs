//! Golden pages written for these tests (`tests/pages/`): what the extractor must keep, drop and
//! report on an article with sidebar and comments, a listing page, a page whose article exists
//! only as JSON-LD, right-to-left text, a non-UTF-8 page, and tables and code in Markdown.

// In tests a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use riptide_extractor::{Document, ExtractError, Mode, Options, decode_html, extract, info};

fn page(name: &str) -> String {
    // Read at run time (cargo sets it for tests): a binary reused from a clone at another path,
    // through a shared target dir, would otherwise look in that clone.
    let root = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let path = format!("{root}/tests/pages/{name}");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    decode_html(&bytes, None)
}

fn article(name: &str, url: &str) -> Document {
    extract(&page(name), url, &Options::default()).unwrap()
}

#[test]
fn article_keeps_story_drops_sidebar_comments_and_furniture() {
    let doc = article("article_sidebar_comments.html", "https://courier.example/2024/05/library");
    assert!(doc.text.contains("The barge, moored at the old ferry landing"));
    assert!(doc.text.contains("carrying books and a small cinema."));
    assert!(doc.text.contains("Open every weekend"), "subheading kept");
    for absent in [
        "wonderful idea",           // comments
        "Parking near the landing", // comments
        "daily newsletter",         // sidebar
        "Council votes",            // sidebar list
        "Ferry timetable",          // related links
        "All rights reserved",      // footer
        "Tweet",                    // share tools
        "Weather",                  // navigation
    ] {
        assert!(!doc.text.contains(absent), "{absent:?} leaked into {:?}", doc.text);
    }
    assert!(!doc.text.starts_with("River Town"), "the headline is the title, not body text");
    assert_eq!(doc.title.as_deref(), Some("River Town Opens Its First Floating Library"));
    assert_eq!(doc.byline.as_deref(), Some("Maria Olsen"));
    assert_eq!(doc.published.as_deref(), Some("2024-05-02T09:30:00+02:00"));
    assert_eq!(doc.site_name.as_deref(), Some("The Valley Courier"));
    assert_eq!(doc.description.as_deref(), Some("A converted barge now lends books along the river."));
    assert_eq!(doc.language.as_deref(), Some("en"));
    assert_eq!(doc.links.len(), 1, "{:?}", doc.links);
    assert_eq!(doc.links[0].url, "https://courier.example/library/join");
    assert_eq!(doc.links[0].text, "register online");
    assert!(doc.markdown.contains("## Open every weekend"));
    assert!(doc.markdown.contains("[register online](https://courier.example/library/join)"));
    assert!(doc.word_count > 120 && doc.word_count < 200, "{}", doc.word_count);
    assert_eq!(doc.reading_time_secs, doc.word_count * 60 / 230);
    assert!(doc.quality > 0.5, "quality {}", doc.quality);
    assert_eq!(doc.extractor_version, info().version);
}

#[test]
fn listing_page_has_low_quality() {
    let doc = article("listing.html", "https://courier.example/sport");
    assert!(doc.quality < 0.3, "quality {} for a listing", doc.quality);
    let all = extract(
        &page("listing.html"),
        "https://courier.example/sport",
        &Options { mode: Mode::Links, ..Options::default() },
    )
    .unwrap();
    assert!(all.text.is_empty());
    assert!(
        all.links
            .iter()
            .any(|l| l.url == "https://courier.example/sport/3" && l.text == "Marathon route announced for autumn")
    );
    assert!(all.links.iter().any(|l| l.url == "https://courier.example/sport?page=2"));
}

#[test]
fn json_ld_only_page_uses_article_body_and_metadata() {
    let doc = article("jsonld_only.html", "https://ledger.example/cranes");
    assert!(doc.text.starts_with("The three harbour cranes"));
    assert!(doc.text.contains("final safety inspections are complete."));
    assert_eq!(doc.text.lines().count(), 3);
    assert_eq!(doc.title.as_deref(), Some("Harbour Cranes Return After Two-Year Refit"));
    assert_eq!(doc.byline.as_deref(), Some("Sam Reid, Ola Berg"));
    assert_eq!(doc.published.as_deref(), Some("2023-11-07T06:15:00Z"));
    assert_eq!(doc.site_name.as_deref(), Some("Northern Ledger"));
    assert_eq!(doc.language.as_deref(), Some("en"));
}

#[test]
fn right_to_left_text_is_kept_in_order() {
    let doc = article("rtl.html", "https://example.org/ar/library");
    assert!(doc.text.starts_with("افتتحت البلدية يوم الأحد"));
    assert_eq!(doc.text.lines().count(), 3);
    assert_eq!(doc.language.as_deref(), Some("ar"));
    assert_eq!(doc.title.as_deref(), Some("افتتاح مكتبة جديدة في المدينة"));
}

#[test]
fn non_utf8_page_is_decoded_by_its_declared_charset() {
    let doc = article("cp1251.html", "https://example.ru/news");
    assert!(doc.text.starts_with("В городе открыли новую библиотеку"), "{}", doc.text);
    assert_eq!(doc.title.as_deref(), Some("Новости города"));
    assert_eq!(doc.language.as_deref(), Some("ru"));
}

#[test]
fn tables_code_lists_and_quotes_become_markdown() {
    let doc = article("tables_code.html", "https://blog.example/csv");
    let md = &doc.markdown;
    assert!(md.contains("```rust\nfn main() {\n    for line in std::io::stdin().lines() {"), "{md}");
    assert!(md.contains("let fields: Vec<&str> = line.unwrap().split(',').collect();"), "{md}");
    assert!(md.contains("| File | Rows | Time (ms) |\n| --- | --- | --- |\n| small.csv | 1,000 | 2 |"), "{md}");
    assert!(md.contains("| large.csv | 10,000,000 | 3,870 |"), "{md}");
    assert!(md.contains("> Measure before you optimise"), "{md}");
    assert!(md.contains("1. Read the file.\n2. Split each line.\n3. Count the fields."), "{md}");
    assert!(md.contains("with *no* external crates and **no** unsafe code"), "{md}");
    assert!(md.contains("measured with `hyperfine` over ten runs"), "{md}");
    assert!(md.contains("[Stdin documentation](https://doc.rust-lang.org/std/io/struct.Stdin.html)"), "{md}");
    assert!(doc.text.contains("large.csv 10,000,000 3,870"), "{}", doc.text);
}

#[test]
fn modes_and_selectors() {
    let html = page("article_sidebar_comments.html");
    let url = "https://courier.example/2024/05/library";
    let meta = extract(&html, url, &Options { mode: Mode::Metadata, ..Options::default() }).unwrap();
    assert!(meta.text.is_empty() && meta.markdown.is_empty() && meta.links.is_empty());
    assert_eq!(meta.byline.as_deref(), Some("Maria Olsen"));

    let full = extract(&html, url, &Options { mode: Mode::Full, ..Options::default() }).unwrap();
    assert!(full.text.contains("wonderful idea") && full.text.contains("daily newsletter"));
    assert!(!full.text.contains("dataLayer"), "scripts never count as text");

    let opts =
        Options { keep_selectors: vec!["#comments".into()], drop_selectors: vec!["h2".into()], ..Options::default() };
    let doc = extract(&html, url, &opts).unwrap();
    assert!(doc.text.contains("wonderful idea"), "kept by selector: {}", doc.text);
    assert!(!doc.text.contains("Open every weekend"), "dropped by selector");

    // A kept element inside furniture (`<aside>`) is kept too.
    let opts = Options { keep_selectors: vec![".newsletter".into()], ..Options::default() };
    let doc = extract(&html, url, &opts).unwrap();
    assert!(doc.text.contains("daily newsletter"), "{}", doc.text);
    assert!(doc.text.contains("The barge, moored"));

    // Keeping an element that holds the article does not repeat it.
    let opts = Options { keep_selectors: vec!["body".into()], ..Options::default() };
    let doc = extract(&html, url, &opts).unwrap();
    assert_eq!(doc.text.matches("The barge, moored").count(), 1);
    assert!(doc.text.contains("daily newsletter"));

    let bad = Options { drop_selectors: vec!["div > p".into()], ..Options::default() };
    assert!(matches!(extract(&html, url, &bad), Err(ExtractError::InvalidInput { .. })));
    assert!(matches!(
        "summary".parse::<Mode>(),
        Err(ExtractError::UnsupportedMode { mode }) if mode == "summary"
    ));
    assert_eq!("Article".parse::<Mode>().ok(), Some(Mode::Article));
}

#[test]
fn documents_round_trip_through_serde() {
    let doc = article("article_sidebar_comments.html", "https://courier.example/x");
    let json = serde_json::to_string(&doc).unwrap();
    assert!(json.contains("\"kind\":\"image\"") || doc.media.is_empty());
    let back: Document = serde_json::from_str(&json).unwrap();
    assert_eq!(back, doc);
}
