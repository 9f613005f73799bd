//! Resolving link and media references against the page URL (RFC 3986 section 5.2, without IDNA or
//! percent-encoding normalisation). Our own because the `url` crate brings IDNA/ICU tables into the
//! WASM guest for no gain here: we only need absolute strings for the worker to canonicalise.

// Parses untrusted strings: no indexing that could panic (see the crate root).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

/// A parsed absolute base URL: `scheme://authority` plus path and query.
#[derive(Debug, Clone)]
pub(crate) struct Base<'a> {
    scheme: &'a str,
    /// `//host[:port]` including the slashes, or "" for URLs without authority.
    authority: &'a str,
    path: &'a str,
    query: &'a str,
}

/// Splits an absolute URL. `None` when `url` has no scheme.
pub(crate) fn parse_base(url: &str) -> Option<Base<'_>> {
    let url = url.trim();
    let (scheme, rest) = url.split_once(':')?;
    let valid_scheme = scheme.bytes().next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'));
    if !valid_scheme {
        return None;
    }
    let rest = rest.split('#').next().unwrap_or("");
    let (authority, after) = if let Some(stripped) = rest.strip_prefix("//") {
        let end = stripped.find(['/', '?']).unwrap_or(stripped.len());
        let (host, tail) = stripped.split_at_checked(end).unwrap_or((stripped, ""));
        (rest.get(..host.len() + 2).unwrap_or(rest), tail)
    } else {
        ("", rest)
    };
    let (path, query) = match after.find('?') {
        Some(q) => after.split_at_checked(q).unwrap_or((after, "")),
        None => (after, ""),
    };
    Some(Base { scheme, authority, path, query })
}

/// Removes `.` and `..` segments (RFC 3986 5.2.4).
fn remove_dots(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let absolute = path.starts_with('/');
    let segments: Vec<&str> = path.split('/').collect();
    let n = segments.len();
    for (i, seg) in segments.iter().enumerate() {
        if i == 0 && absolute {
            continue;
        }
        match *seg {
            "." => {
                if i == n - 1 {
                    out.push("");
                }
            }
            ".." => {
                out.pop();
                if i == n - 1 {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let joined = out.join("/");
    if absolute { format!("/{joined}") } else { joined }
}

/// Resolves `href` against `base`. Returns `None` for references that are not web resources
/// (`javascript:`, `mailto:` is kept, empty and fragment-only references are dropped).
pub(crate) fn resolve(base: Option<&Base<'_>>, href: &str) -> Option<String> {
    // Browsers strip leading/trailing C0 and space, and drop tabs/newlines anywhere.
    let href: String =
        href.trim_matches(|c: char| c <= ' ').chars().filter(|&c| !matches!(c, '\t' | '\n' | '\r')).collect();
    if href.is_empty() || href.starts_with('#') {
        return None;
    }
    if let Some((scheme, _)) = href.split_once(':') {
        let is_scheme = !scheme.is_empty()
            && !scheme.contains(['/', '?', '#'])
            && scheme.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'));
        if is_scheme {
            let lower = scheme.to_ascii_lowercase();
            return match lower.as_str() {
                "javascript" | "data" | "vbscript" | "about" | "blob" => None,
                _ => Some(href),
            };
        }
    }
    let base = base?;
    if href.starts_with("//") {
        return Some(format!("{}:{}", base.scheme, href));
    }
    let (path_part, tail) = match href.find(['?', '#']) {
        Some(p) => href.split_at_checked(p).unwrap_or((href.as_str(), "")),
        None => (href.as_str(), ""),
    };
    if path_part.is_empty() {
        // "?q" or "#f" (the latter handled above): keep the base path.
        let query_and_frag = if tail.starts_with('?') { tail.to_owned() } else { format!("{}{}", base.query, tail) };
        return Some(format!("{}:{}{}{}", base.scheme, base.authority, base.path, query_and_frag));
    }
    let merged = if path_part.starts_with('/') {
        path_part.to_owned()
    } else if !base.authority.is_empty() && base.path.is_empty() {
        format!("/{path_part}")
    } else {
        let dir = base.path.rfind('/').and_then(|p| base.path.get(..=p)).unwrap_or("");
        format!("{dir}{path_part}")
    };
    Some(format!("{}:{}{}{}", base.scheme, base.authority, remove_dots(&merged), tail))
}

#[cfg(test)]
mod tests {
    use super::{parse_base, resolve};

    fn r(base: &str, href: &str) -> Option<String> {
        resolve(parse_base(base).as_ref(), href)
    }

    #[test]
    fn rfc3986_examples() {
        let b = "http://a/b/c/d;p?q";
        assert_eq!(r(b, "g").as_deref(), Some("http://a/b/c/g"));
        assert_eq!(r(b, "./g").as_deref(), Some("http://a/b/c/g"));
        assert_eq!(r(b, "g/").as_deref(), Some("http://a/b/c/g/"));
        assert_eq!(r(b, "/g").as_deref(), Some("http://a/g"));
        assert_eq!(r(b, "//g").as_deref(), Some("http://g"));
        assert_eq!(r(b, "?y").as_deref(), Some("http://a/b/c/d;p?y"));
        assert_eq!(r(b, "g?y#s").as_deref(), Some("http://a/b/c/g?y#s"));
        assert_eq!(r(b, "..").as_deref(), Some("http://a/b/"));
        assert_eq!(r(b, "../g").as_deref(), Some("http://a/b/g"));
        assert_eq!(r(b, "../../../g").as_deref(), Some("http://a/g"));
        assert_eq!(r(b, "https://x.org/y").as_deref(), Some("https://x.org/y"));
    }

    #[test]
    fn drops_non_resources() {
        assert_eq!(r("https://e.com/a", "javascript:void(0)"), None);
        assert_eq!(r("https://e.com/a", "#top"), None);
        assert_eq!(r("https://e.com/a", "  "), None);
        assert_eq!(r("", "/x"), None);
        assert_eq!(r("https://e.com", "x").as_deref(), Some("https://e.com/x"));
    }
}
