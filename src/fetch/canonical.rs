//! Canonical URLs: the one spelling of a page that document keys, dedup and politeness keys
//! are made from, so `HTTP://Example.COM:80/a/./b/../c?utm_source=x#top` and
//! `http://example.com/a/c` are one page, one document and one origin.
//!
//! The `url` crate (WHATWG URL) already lowercases the scheme and host, maps IDN hosts to
//! ASCII (punycode), drops the scheme's default port, resolves dot segments and
//! percent-encodes what must be encoded; this module adds what it leaves alone: the fragment is
//! dropped, percent-encodings are normalised (unreserved characters decoded, hex digits upper
//! case, RFC 3986 section 6.2.2.2), configured tracking parameters are removed from the query
//! (query order is kept: some sites give it meaning) and an empty query is dropped. `www.` and
//! trailing slashes are kept: they can be different pages.
//!
//! Pure functions over `Url`; it fetches nothing and knows no storage.

use url::Url;

/// Query parameter names removed from canonical URLs: a name ending in `*` is a prefix.
#[derive(Debug, Clone, Default)]
pub struct TrackingParams {
    exact: Vec<String>,
    prefixes: Vec<String>,
}

impl TrackingParams {
    /// From configured patterns (`utm_*`, `fbclid`, ...), compared case-insensitively.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Self {
        let mut params = TrackingParams::default();
        for pattern in patterns {
            let pattern = pattern.as_ref().trim().to_ascii_lowercase();
            match pattern.strip_suffix('*') {
                Some(prefix) if !prefix.is_empty() => params.prefixes.push(prefix.to_string()),
                Some(_) => {}
                None if !pattern.is_empty() => params.exact.push(pattern),
                None => {}
            }
        }
        params
    }

    /// Whether the (decoded) parameter name is a tracking parameter.
    pub fn matches(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        self.exact.contains(&name) || self.prefixes.iter().any(|p| name.starts_with(p.as_str()))
    }
}

/// The canonical spelling of `url` (see the module doc).
pub fn canonicalize(url: &Url, tracking: &TrackingParams) -> Url {
    let mut canonical = url.clone();
    canonical.set_fragment(None);
    if canonical.cannot_be_a_base() {
        return canonical;
    }
    let path = normalize_percent(canonical.path());
    canonical.set_path(&path);
    let query = canonical.query().map(|query| {
        query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .filter(|pair| {
                let name = pair.split('=').next().unwrap_or_default();
                let decoded = percent_decode_lossy(&name.replace('+', " "));
                !tracking.matches(&decoded)
            })
            .map(normalize_percent)
            .collect::<Vec<_>>()
            .join("&")
    });
    match query {
        Some(query) if !query.is_empty() => canonical.set_query(Some(&query)),
        _ => canonical.set_query(None),
    }
    canonical
}

/// The origin of a URL as politeness keys it: `scheme://host:port` with the port always
/// written (two ports are two servers), from the canonical host.
pub fn origin_key(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or(0);
    format!("{}://{host}:{port}", url.scheme())
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

fn hex_value(byte: u8) -> Option<u8> {
    char::from(byte).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// Decodes `%XX` of unreserved characters and upper-cases the hex digits of the rest; a `%`
/// not followed by two hex digits is encoded as `%25`.
fn normalize_percent(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'%' {
            let high = bytes.get(i + 1).copied().and_then(hex_value);
            let low = bytes.get(i + 2).copied().and_then(hex_value);
            if let (Some(high), Some(low)) = (high, low) {
                let decoded = high * 16 + low;
                if is_unreserved(decoded) {
                    out.push(char::from(decoded));
                } else {
                    out.push_str(&format!("%{decoded:02X}"));
                }
                i += 3;
                continue;
            }
            out.push_str("%25");
            i += 1;
            continue;
        }
        // The url crate leaves only ASCII in paths and queries; anything else is kept as is.
        out.push(char::from(byte));
        i += 1;
    }
    out
}

/// Percent-decodes `text` (invalid UTF-8 replaced), for comparing parameter names.
fn percent_decode_lossy(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'%'
            && let (Some(high), Some(low)) =
                (bytes.get(i + 1).copied().and_then(hex_value), bytes.get(i + 2).copied().and_then(hex_value))
        {
            out.push(high * 16 + low);
            i += 3;
            continue;
        }
        out.push(byte);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracking() -> TrackingParams {
        TrackingParams::new(&["utm_*", "fbclid", "gclid", "msclkid", "_ga", "mc_cid"])
    }

    fn canon(raw: &str) -> String {
        canonicalize(&Url::parse(raw).unwrap(), &tracking()).to_string()
    }

    #[test]
    fn canonical_spellings() {
        let cases: &[(&str, &str)] = &[
            // Case of scheme and host; the path keeps its case.
            ("HTTP://Example.COM/Path", "http://example.com/Path"),
            ("https://EXAMPLE.com", "https://example.com/"),
            // Default ports dropped, others kept.
            ("http://example.com:80/a", "http://example.com/a"),
            ("https://example.com:443/a", "https://example.com/a"),
            ("http://example.com:8080/a", "http://example.com:8080/a"),
            ("https://example.com:80/a", "https://example.com:80/a"),
            // IDN to ASCII.
            ("http://bücher.example/x", "http://xn--bcher-kva.example/x"),
            ("http://MÜNCHEN.de/", "http://xn--mnchen-3ya.de/"),
            // Dot segments.
            ("http://example.com/a/./b/../c", "http://example.com/a/c"),
            ("http://example.com/../../a", "http://example.com/a"),
            ("http://example.com/a/%2e%2E/b", "http://example.com/b"),
            // Percent-encoding: unreserved decoded, hex upper case, the rest kept encoded.
            ("http://example.com/%7Euser/%41bc", "http://example.com/~user/Abc"),
            ("http://example.com/a%2fb", "http://example.com/a%2Fb"),
            ("http://example.com/caf%c3%a9", "http://example.com/caf%C3%A9"),
            ("http://example.com/café", "http://example.com/caf%C3%A9"),
            ("http://example.com/?q=%7e%20x", "http://example.com/?q=~%20x"),
            // Tracking parameters removed, the rest kept in order.
            ("http://example.com/a?utm_source=x&id=3&utm_medium=y", "http://example.com/a?id=3"),
            ("http://example.com/a?b=2&fbclid=abc&a=1", "http://example.com/a?b=2&a=1"),
            ("http://example.com/a?gclid=1", "http://example.com/a"),
            ("http://example.com/a?UTM_Campaign=1&x", "http://example.com/a?x"),
            ("http://example.com/a?%75tm_source=1&k=v", "http://example.com/a?k=v"),
            ("http://example.com/a?_ga=1&_gallery=2", "http://example.com/a?_gallery=2"),
            // Empty query and empty pairs dropped.
            ("http://example.com/a?", "http://example.com/a"),
            ("http://example.com/a?&&x=1&", "http://example.com/a?x=1"),
            // Fragments dropped.
            ("http://example.com/a#section", "http://example.com/a"),
            ("http://example.com/a?x=1#utm_source=y", "http://example.com/a?x=1"),
            // www and trailing slashes kept.
            ("http://www.example.com/a/", "http://www.example.com/a/"),
            ("http://example.com/a", "http://example.com/a"),
            // A lone percent sign is encoded.
            ("http://example.com/100%", "http://example.com/100%25"),
            // Trailing dot of the host kept (a different name to DNS).
            ("http://example.com./", "http://example.com./"),
        ];
        assert!(cases.len() >= 25);
        for (raw, want) in cases {
            assert_eq!(&canon(raw), want, "canonical form of {raw}");
            // Canonicalisation is idempotent.
            assert_eq!(&canon(want), want, "canonical form of {want}");
        }
    }

    #[test]
    fn origins_always_carry_the_port() {
        let origin = |u: &str| origin_key(&Url::parse(u).unwrap());
        assert_eq!(origin("http://Example.com/a"), "http://example.com:80");
        assert_eq!(origin("https://example.com:8443/a"), "https://example.com:8443");
        assert_ne!(origin("http://127.0.0.1:8080/"), origin("http://127.0.0.1:8081/"));
    }

    #[test]
    fn tracking_patterns() {
        let t = TrackingParams::new(&["utm_*", "FBCLID", "*", ""]);
        assert!(t.matches("utm_source"));
        assert!(t.matches("fbclid"));
        assert!(!t.matches("utm"));
        assert!(!t.matches("id"));
    }
}
