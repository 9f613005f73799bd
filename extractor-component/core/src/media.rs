//! The structured link and media lists of a document: absolute URLs, de-duplicated, in page order.
//! Links come from the kept part of the selection; media also from figures inside it (the scorer
//! drops figures from the text, not from the media list) plus the page's OpenGraph image.

use crate::html::{Dom, NodeId, Tag};
use crate::render::{collapse, text_of};
use crate::url::{Base, resolve};
use crate::walk::{Step, walk};
use crate::{Link, Media, MediaKind};

/// At most this many links / media items per document: a hostile page cannot make the
/// document itself huge.
const MAX_ITEMS: usize = 2000;

/// Links (`<a href>`) inside `roots`, skipping dropped nodes.
pub(crate) fn links(dom: &Dom, roots: &[NodeId], drop: &[bool], base: Option<&Base<'_>>) -> Vec<Link> {
    let mut out: Vec<Link> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for &root in roots {
        walk(dom, root, |step| {
            let Step::Enter(id) = step else { return true };
            if drop.get(id as usize).copied().unwrap_or(false) || out.len() >= MAX_ITEMS {
                return false;
            }
            if dom.tag(id) == Some(Tag::A)
                && let Some(url) = dom.attr(id, "href").and_then(|h| resolve(base, h))
                && seen.insert(url.clone())
            {
                out.push(Link {
                    url,
                    text: collapse(&text_of(dom, id, drop)),
                    rel: dom.attr(id, "rel").map(collapse).filter(|r| !r.is_empty()),
                });
            }
            true
        });
    }
    out
}

/// First URL of a `srcset` ("a.jpg 1x, b.jpg 2x").
fn srcset_first(s: &str) -> Option<&str> {
    s.split(',').next()?.split_whitespace().next()
}

/// Images, video and audio inside `roots`, plus `og_image` first when given.
pub(crate) fn media(
    dom: &Dom,
    roots: &[NodeId],
    drop: &[bool],
    base: Option<&Base<'_>>,
    og_image: Option<&str>,
) -> Vec<Media> {
    let mut out: Vec<Media> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut push = |out: &mut Vec<Media>, url: Option<String>, kind, alt: Option<&str>| {
        if let Some(url) = url
            && out.len() < MAX_ITEMS
            && seen.insert(url.clone())
        {
            out.push(Media { url, kind, alt: alt.map(collapse).filter(|a| !a.is_empty()) });
        }
    };
    if let Some(img) = og_image {
        push(&mut out, resolve(base, img), MediaKind::Image, None);
    }
    for &root in roots {
        walk(dom, root, |step| {
            let Step::Enter(id) = step else { return true };
            let tag = dom.tag(id);
            if drop.get(id as usize).copied().unwrap_or(false) {
                return false;
            }
            match tag {
                Some(Tag::Img) => {
                    let src = dom
                        .attr(id, "src")
                        .filter(|s| !s.starts_with("data:") && !s.trim().is_empty())
                        .or_else(|| dom.attr(id, "data-src"))
                        .or_else(|| dom.attr(id, "data-lazy-src"))
                        .or_else(|| dom.attr(id, "srcset").and_then(srcset_first));
                    let url = src.and_then(|s| resolve(base, s));
                    push(&mut out, url, MediaKind::Image, dom.attr(id, "alt"));
                }
                Some(t @ (Tag::Video | Tag::Audio)) => {
                    let kind = if t == Tag::Video { MediaKind::Video } else { MediaKind::Audio };
                    let src = dom.attr(id, "src").or_else(|| {
                        dom.children(id).find(|&c| dom.tag(c) == Some(Tag::Source)).and_then(|c| dom.attr(c, "src"))
                    });
                    push(&mut out, src.and_then(|s| resolve(base, s)), kind, dom.attr(id, "title"));
                }
                Some(Tag::Source) => {
                    let parent = dom.tag(dom.node(id).parent);
                    if parent == Some(Tag::Picture) {
                        let src = dom.attr(id, "srcset").and_then(srcset_first);
                        push(&mut out, src.and_then(|s| resolve(base, s)), MediaKind::Image, None);
                    }
                }
                _ => {}
            }
            true
        });
    }
    out
}
