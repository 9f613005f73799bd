//! The `auto` render heuristic: does a statically fetched page look client-rendered?
//!
//! It owns [`looks_client_rendered`], a cheap scan of the raw HTML (no DOM, no allocation per
//! tag). It must not fetch or render; the pipeline calls it between the static fetch and the
//! decision to lease a browser.

/// Below this much visible text (in characters, scripts and styles excluded) a page with an
/// app root or a `<noscript>` plea is taken as a shell waiting for JavaScript.
const SHELL_TEXT_CHARS: usize = 600;
/// Below this much visible text any page that loads scripts is taken as a shell.
const EMPTY_TEXT_CHARS: usize = 40;

/// Mount points of the common client-side frameworks (React, Vue, Next, Nuxt, Gatsby,
/// Angular, Svelte, Ember), matched in the lowercased HTML.
const APP_ROOTS: &[&str] = &[
    "id=\"root\"",
    "id=\"app\"",
    "id='root'",
    "id='app'",
    "id=\"__next\"",
    "id=\"__nuxt\"",
    "id=\"___gatsby\"",
    "id=\"svelte\"",
    "data-reactroot",
    "ng-version",
    "ng-app",
    "<app-root",
    "class=\"ember-application",
];

/// Phrases of a `<noscript>` that asks the reader to turn JavaScript on.
const JS_PLEAS: &[&str] = &[
    "enable javascript",
    "javascript is required",
    "requires javascript",
    "javascript to run this app",
    "turn on javascript",
    "javascript is disabled",
    "without javascript",
    "activate javascript",
];

/// Whether a statically fetched page looks like a client-rendered shell that needs a browser:
/// almost no visible text with an app root or a `<noscript>` asking for JavaScript, or no
/// visible text at all while it loads scripts. A page with real text is taken as rendered
/// even when it also mounts an app (server-side rendering with hydration).
pub fn looks_client_rendered(html: &str) -> bool {
    let lower = html.to_ascii_lowercase();
    let text_chars = visible_text_chars(&lower);
    let has_scripts = lower.contains("<script");
    let has_app_root = APP_ROOTS.iter().any(|root| lower.contains(root));
    let pleads_for_js = noscript_texts(&lower).any(|text| JS_PLEAS.iter().any(|plea| text.contains(plea)));
    if text_chars < EMPTY_TEXT_CHARS && has_scripts {
        return true;
    }
    text_chars < SHELL_TEXT_CHARS && (has_app_root || pleads_for_js)
}

/// The contents of each `<noscript>` element.
fn noscript_texts(lower: &str) -> impl Iterator<Item = &str> {
    lower.split("<noscript").skip(1).map(|rest| rest.split("</noscript").next().unwrap_or(rest))
}

/// Elements whose content is never visible text.
const HIDDEN: &[&str] = &["script", "style", "noscript", "template", "svg", "head"];

/// Counts non-whitespace characters outside tags, comments and hidden elements.
fn visible_text_chars(lower: &str) -> usize {
    let mut count = 0;
    let mut rest = lower;
    while let Some(open) = rest.find('<') {
        count += rest.get(..open).unwrap_or_default().chars().filter(|c| !c.is_whitespace()).count();
        rest = rest.get(open..).unwrap_or_default();
        rest = skip_markup(rest);
    }
    count + rest.chars().filter(|c| !c.is_whitespace()).count()
}

/// Skips one tag, comment or hidden element starting at `<`; returns what follows.
fn skip_markup(at_tag: &str) -> &str {
    if let Some(comment) = at_tag.strip_prefix("<!--") {
        return comment.find("-->").and_then(|end| comment.get(end + 3..)).unwrap_or_default();
    }
    let name: String = at_tag.get(1..).unwrap_or_default().chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
    let after_tag = at_tag.find('>').and_then(|end| at_tag.get(end + 1..)).unwrap_or_default();
    if HIDDEN.contains(&name.as_str()) {
        let close = format!("</{name}");
        return after_tag
            .find(&close)
            .and_then(|end| after_tag.get(end..))
            .map(|closing| closing.find('>').and_then(|e| closing.get(e + 1..)).unwrap_or_default())
            .unwrap_or_default();
    }
    after_tag
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARTICLE: &str = "<p>Rivers carry sediment from the mountains to the sea, building deltas over \
        thousands of years; the Nile, the Mississippi and the Ganges each tell a different story of \
        floods, farming and shifting channels that engineers have tried to tame for centuries.</p>";

    #[test]
    fn react_shell_is_client_rendered() {
        let html = "<html><head><script src=/static/main.js></script></head><body>\
            <noscript>You need to enable JavaScript to run this app.</noscript><div id=\"root\"></div></body></html>";
        assert!(looks_client_rendered(html));
    }

    #[test]
    fn angular_root_with_a_loading_line_is_client_rendered() {
        let html = "<html><body><app-root>Loading...</app-root><script src=main.js></script></body></html>";
        assert!(looks_client_rendered(html));
    }

    #[test]
    fn empty_body_with_scripts_is_client_rendered() {
        assert!(looks_client_rendered("<html><body><script>boot()</script></body></html>"));
    }

    #[test]
    fn static_article_is_not() {
        let html = format!("<html><head><title>Rivers</title></head><body><h1>Rivers</h1>{ARTICLE}</body></html>");
        assert!(!looks_client_rendered(&html));
    }

    #[test]
    fn server_rendered_app_with_text_is_not() {
        let body = ARTICLE.repeat(4);
        let html = format!(
            "<html><body><div id=\"__next\">{body}</div><noscript>Please enable JavaScript</noscript>\
             <script src=/_next/app.js></script></body></html>"
        );
        assert!(!looks_client_rendered(&html));
    }

    #[test]
    fn tiny_static_page_without_scripts_is_not() {
        assert!(!looks_client_rendered("<html><body><p>Hello.</p></body></html>"));
    }

    #[test]
    fn script_and_style_text_is_not_counted() {
        let html = format!(
            "<html><head><style>{}</style></head><body><div id=app></div><script>{}</script></body></html>",
            "p{color:red}".repeat(200),
            "var x = 1;".repeat(200)
        );
        assert!(looks_client_rendered(&html.replace("id=app", "id=\"app\"")));
        assert_eq!(visible_text_chars("<!-- hidden --><p>ab c</p><script>xyz</script>"), 3);
    }
}
