//! Synthetic pages, written here, for the site-builder patterns of issue 12 that made the
//! extractor drop the main text: each asserts that the page's text is kept and its furniture
//! (navigation, footer, cookie banner, related links) dropped. The pages are small and generic;
//! none is copied from a real site.

// In tests a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use riptide_extractor::{Document, Options, extract};

/// Three paragraphs of prose, each tagged with `tag` so a test can find them.
fn prose(tag: &str) -> String {
    (1..=3)
        .map(|i| {
            format!(
                "<p>{tag} paragraph {i}: the committee met on a wet Tuesday to weigh the plan, and after a long debate \
                 about costs, routes and the needs of the people who live along the river, it agreed to go ahead.</p>"
            )
        })
        .collect()
}

/// Navigation, footer and a cookie banner around `main`.
fn page(main: &str) -> String {
    format!(
        "<!doctype html><html><head><title>Plan approved</title></head><body>\
         <nav class=\"site-nav\"><ul><li><a href=\"/\">Home</a></li><li><a href=\"/news\">News</a></li>\
         <li><a href=\"/about\">About us</a></li></ul></nav>\
         {main}\
         <div class=\"cookie-banner\">We use cookies to improve your experience. Accept all cookies?</div>\
         <footer><p>Copyright 2025 Example Town Council. All rights reserved.</p></footer></body></html>"
    )
}

fn extract_page(html: &str) -> Document {
    extract(html, "https://example.org/news/plan", &Options::default()).unwrap()
}

fn assert_kept_and_dropped(doc: &Document, kept: &str) {
    for i in 1..=3 {
        let want = format!("{kept} paragraph {i}");
        assert!(doc.text.contains(&want), "{want:?} missing from {:?}", doc.text);
    }
    for furniture in ["About us", "cookies", "All rights reserved"] {
        assert!(!doc.text.contains(furniture), "{furniture:?} leaked into {:?}", doc.text);
    }
}

#[test]
fn webflow_post_inside_a_header_element() {
    let main = format!(
        "<header class=\"section_blog-post-header\"><h1>Plan approved</h1></header>\
         <header class=\"section_blog-post-content\"><div class=\"rich-text w-richtext\">{}</div></header>",
        prose("Webflow")
    );
    assert_kept_and_dropped(&extract_page(&page(&main)), "Webflow");
}

#[test]
fn squarespace_article_marked_has_comments() {
    let main = format!(
        "<main><article class=\"entry hentry has-comments author-jo\"><h1>Plan approved</h1>\
         <div class=\"sqs-block-content\">{}</div></article></main>",
        prose("Squarespace")
    );
    assert_kept_and_dropped(&extract_page(&page(&main)), "Squarespace");
}

#[test]
fn elementor_blocks_each_in_a_widget_container() {
    let blocks: String = prose("Elementor")
        .split("</p>")
        .filter(|p| !p.is_empty())
        .map(|p| {
            format!(
                "<div class=\"elementor-element elementor-widget elementor-widget-text-editor\">\
                 <div class=\"elementor-widget-container\">{p}</p></div></div>"
            )
        })
        .collect();
    let main = format!(
        "<div class=\"elementor elementor-42\"><section class=\"elementor-section\">\
         <div class=\"elementor-widget-container\"><h1>Plan approved</h1></div>{blocks}</section></div>"
    );
    assert_kept_and_dropped(&extract_page(&page(&main)), "Elementor");
}

#[test]
fn page_wrapper_whose_class_says_menu() {
    let main = format!(
        "<div id=\"wrap\" class=\"menu-side-transition\"><div class=\"content\"><h1>Plan approved</h1>{}</div></div>",
        prose("Wrapper")
    );
    assert_kept_and_dropped(&extract_page(&page(&main)), "Wrapper");
}

#[test]
fn forum_thread_whose_posts_carry_reply_classes() {
    let posts: String = (1..=3)
        .map(|i| {
            format!(
                "<div class=\"post reply comment-body\" id=\"post-{i}\"><div class=\"author\">user{i}</div>\
                 <div class=\"message\"><p>Forum paragraph {i}: I tried the new firmware on my router last night and the \
                 connection drops stopped, although the web interface is slower than before, which is odd.</p></div></div>"
            )
        })
        .collect();
    let main = format!("<div class=\"thread\"><h1>Router keeps dropping the connection</h1>{posts}</div>");
    assert_kept_and_dropped(&extract_page(&page(&main)), "Forum");
}

#[test]
fn unclosed_head_still_yields_the_body() {
    let html = format!(
        "<html><head><title>Plan approved</title><meta charset=\"utf-8\">\
         <div class=\"content\"><h1>Plan approved</h1>{}</div>",
        prose("Unclosed")
    );
    let doc = extract_page(&html);
    for i in 1..=3 {
        assert!(doc.text.contains(&format!("Unclosed paragraph {i}")), "{:?}", doc.text);
    }
    let full = extract(&html, "", &Options { mode: riptide_extractor::Mode::Full, ..Options::default() }).unwrap();
    assert!(full.text.contains("Unclosed paragraph 1"));
}

#[test]
fn wordpress_block_theme() {
    let main = format!(
        "<div class=\"wp-site-blocks\"><header class=\"wp-block-template-part\"><div class=\"wp-block-navigation\">\
         <a href=\"/shop\">Shop</a> <a href=\"/contact\">Contact</a></div></header>\
         <main class=\"wp-block-group\"><h1 class=\"wp-block-post-title\">Plan approved</h1>\
         <div class=\"entry-content wp-block-post-content\">{}</div></main>\
         <div class=\"wp-block-group related-posts\"><h2>Related</h2><ul><li><a href=\"/a\">Older plan rejected</a></li>\
         <li><a href=\"/b\">Bridge repairs begin</a></li></ul></div></div>",
        prose("WordPress")
    );
    let doc = extract_page(&page(&main));
    assert_kept_and_dropped(&doc, "WordPress");
    assert!(!doc.text.contains("Bridge repairs begin"), "{:?}", doc.text);
}

#[test]
fn wix_like_nested_div_soup() {
    let mut inner = prose("Wix");
    for i in 0..12 {
        inner = format!("<div id=\"comp-{i}\" class=\"_1Q9if _3bcaz\" data-testid=\"richTextElement\">{inner}</div>");
    }
    let main =
        format!("<div id=\"SITE_CONTAINER\"><div id=\"PAGES_CONTAINER\"><h1>Plan approved</h1>{inner}</div></div>");
    assert_kept_and_dropped(&extract_page(&page(&main)), "Wix");
}

#[test]
fn collection_of_link_cards() {
    let cards: String = (1..=6)
        .map(|i| {
            format!(
                "<a class=\"card\" href=\"/products/{i}\"><div class=\"card-body\"><h3>Card title {i}</h3>\
                 <p>Card text {i}: a sturdy canvas bag with leather handles, made to carry books, groceries and \
                 everything else a long day in town needs.</p></div></a>"
            )
        })
        .collect();
    let main = format!("<main><h1>Bags</h1><div class=\"collection-grid\">{cards}</div></main>");
    let doc = extract_page(&page(&main));
    for i in 1..=6 {
        assert!(doc.text.contains(&format!("Card text {i}")), "card {i} missing from {:?}", doc.text);
    }
    assert!(!doc.text.contains("About us"), "{:?}", doc.text);
}

/// Never empty when the page has text: a page whose prose sits only in elements that class
/// tokens call boilerplate (here a comment section and a sidebar, each half of the prose) still
/// yields it, through the loose fallback pass, with a low quality; the cookie banner stays out.
#[test]
fn fallback_pass_when_every_block_looks_like_boilerplate() {
    let main =
        format!("<div class=\"comments\">{}</div><div class=\"sidebar\">{}</div>", prose("Fallback"), prose("Side"));
    let doc = extract_page(&page(&main));
    for i in 1..=3 {
        assert!(doc.text.contains(&format!("Fallback paragraph {i}")), "{:?}", doc.text);
    }
    assert!(!doc.text.contains("cookies"), "{:?}", doc.text);
    assert!(doc.quality <= 0.2, "quality {}", doc.quality);
}
