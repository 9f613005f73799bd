//! The small CSS selector subset accepted in `Options::keep_selectors` / `drop_selectors`:
//! compound selectors of a tag name, `#id`, `.class` (any number) and `[attr]` / `[attr=value]`
//! (value optionally quoted), separated by commas. No combinators: they would need a matcher
//! that is quadratic on hostile pages, and the compound forms cover what site rules need.

// Parses untrusted strings: no indexing that could panic (see the crate root).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use crate::ExtractError;
use crate::html::{Dom, NodeId};

/// One compound selector.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Selector {
    tag: Option<String>,
    id: Option<String>,
    classes: Vec<String>,
    attrs: Vec<(String, Option<String>)>,
}

/// Parses a comma-separated selector list.
///
/// # Errors
/// `InvalidInput` when a selector uses syntax outside the subset.
pub(crate) fn parse_list(src: &str) -> Result<Vec<Selector>, ExtractError> {
    src.split(',').map(str::trim).filter(|s| !s.is_empty()).map(parse_one).collect()
}

fn invalid(sel: &str, why: &str) -> ExtractError {
    ExtractError::InvalidInput { reason: format!("selector {sel:?}: {why}") }
}

fn ident_end(s: &str) -> usize {
    s.find(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_')).unwrap_or(s.len())
}

fn parse_one(sel: &str) -> Result<Selector, ExtractError> {
    let mut out = Selector::default();
    let mut rest = sel;
    let end = ident_end(rest);
    if end > 0 {
        let (tag, tail) = rest.split_at_checked(end).unwrap_or((rest, ""));
        out.tag = Some(tag.to_ascii_lowercase());
        rest = tail;
    } else if let Some(r) = rest.strip_prefix('*') {
        rest = r;
    }
    while let Some(c) = rest.chars().next() {
        match c {
            '#' | '.' => {
                let body = rest.get(c.len_utf8()..).unwrap_or("");
                let end = ident_end(body);
                if end == 0 {
                    return Err(invalid(sel, "empty name after # or ."));
                }
                let (name, tail) = body.split_at_checked(end).unwrap_or((body, ""));
                if c == '#' {
                    out.id = Some(name.to_owned());
                } else {
                    out.classes.push(name.to_owned());
                }
                rest = tail;
            }
            '[' => {
                let (inner, tail) =
                    rest.get(1..).and_then(|r| r.split_once(']')).ok_or_else(|| invalid(sel, "unclosed ["))?;
                let (name, value) = match inner.split_once('=') {
                    Some((n, v)) => (n.trim(), Some(v.trim().trim_matches(|q| q == '"' || q == '\'').to_owned())),
                    None => (inner.trim(), None),
                };
                if name.is_empty() || ident_end(name) != name.len() {
                    return Err(invalid(sel, "bad attribute name"));
                }
                out.attrs.push((name.to_ascii_lowercase(), value));
                rest = tail;
            }
            _ => return Err(invalid(sel, "only tag, #id, .class and [attr=value] are supported")),
        }
    }
    Ok(out)
}

impl Selector {
    /// Does element `id` match?
    pub(crate) fn matches(&self, dom: &Dom, id: NodeId) -> bool {
        if dom.tag(id).is_none() {
            return false;
        }
        if self.tag.as_deref().is_some_and(|t| t != dom.name(id)) {
            return false;
        }
        if let Some(want) = &self.id
            && dom.attr(id, "id") != Some(want.as_str())
        {
            return false;
        }
        if !self.classes.is_empty() {
            let class = dom.attr(id, "class").unwrap_or("");
            if !self.classes.iter().all(|c| class.split_ascii_whitespace().any(|x| x == c)) {
                return false;
            }
        }
        self.attrs.iter().all(|(name, value)| match (dom.attr(id, name), value) {
            (Some(_), None) => true,
            (Some(v), Some(want)) => v == want,
            (None, _) => false,
        })
    }
}

/// Marks every element matching any of `selectors`, and its whole subtree.
pub(crate) fn mark(dom: &Dom, selectors: &[Selector], mask: &mut [bool]) {
    if selectors.is_empty() {
        return;
    }
    for id in 0..dom.len() {
        let parent = dom.node(id).parent;
        let inherited = parent != crate::html::NONE && mask.get(parent as usize).copied().unwrap_or(false);
        if (inherited || selectors.iter().any(|s| s.matches(dom, id)))
            && let Some(m) = mask.get_mut(id as usize)
        {
            *m = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_list;

    #[test]
    fn parses_subset_and_rejects_combinators() {
        let s = parse_list("div.a.b, #main, [data-x='1'], aside").unwrap_or_default();
        assert_eq!(s.len(), 4);
        assert!(parse_list("div > p").is_err());
        assert!(parse_list("div p").is_err());
    }
}
