//! Finding the main content: a per-node mask of what is boilerplate, text statistics per block,
//! a content weight per block, and the subtree whose summed weight is largest. Its output is a
//! root node plus a `drop` mask that the renderers (`render.rs`, `markdown.rs`) honour.
//!
//! The idea (ours, after readability's link density and class weights and trafilatura's
//! boilerplate lists): every block of text gets a signed weight - long, punctuated, link-poor text
//! is positive, link lists and short labels are negative - and the article is the element whose
//! subtree maximises the sum. This finds articles split over several sibling containers, and it
//! is one linear pass over the arena (ids are in document order, so a reverse loop is a
//! post-order walk).

use crate::classify::{hidden_or_furniture, invisible, never_content, verdict};
use crate::html::{Dom, NONE, NodeData, NodeId, ROOT, Tag};

/// What the scorer decided.
#[derive(Debug)]
pub(crate) struct Selection {
    /// Root of the main content.
    pub(crate) root: NodeId,
    /// Nodes to leave out when rendering (boilerplate, hidden, pruned).
    pub(crate) drop: Vec<bool>,
    /// Confidence in 0..=1 (see `quality`).
    pub(crate) quality: f32,
    /// Like `drop`, but figures, pictures, video and audio are kept: the mask for the media list.
    pub(crate) media_drop: Vec<bool>,
}

/// Per-node statistics.
struct Stats {
    /// Non-whitespace characters of text in the subtree (not dropped).
    chars: Vec<u32>,
    /// Of which inside links.
    link_chars: Vec<u32>,
    /// Summed block weights of the subtree.
    score: Vec<f32>,
    /// Characters of "good" paragraphs (long, link-poor) in the subtree.
    good: Vec<u32>,
}

fn count_chars(s: &str) -> (u32, u32) {
    let mut chars = 0u32;
    let mut punct = 0u32;
    for b in s.bytes() {
        if b.is_ascii_whitespace() || (b & 0xC0) == 0x80 {
            continue;
        }
        chars += 1;
        if matches!(b, b'.' | b',' | b'!' | b'?' | b';' | b':') {
            punct += 1;
        }
    }
    // Full-width CJK punctuation and Arabic comma (3-byte and 2-byte sequences).
    punct += s.matches(['。', '，', '、', '،', '؟', '！', '？']).count() as u32;
    (chars, punct)
}

/// Is this element a block for scoring purposes (text directly inside belongs to it)?
fn is_block(dom: &Dom, id: NodeId) -> bool {
    match dom.tag(id) {
        Some(t) => t.is_block() && t != Tag::Br,
        None => id == ROOT,
    }
}

/// The weight of one block of text: positive for prose, negative for link lists and short labels.
fn block_weight(chars: u32, link_chars: u32, punct: u32, tag: Option<Tag>) -> f32 {
    if chars == 0 {
        return 0.0;
    }
    let c = chars as f32;
    let l = link_chars as f32;
    let density = l / c;
    if density > 0.5 {
        return -0.6 * c - 5.0;
    }
    if tag.and_then(Tag::heading_level).is_some() {
        return 0.0;
    }
    let nonlink = c - l;
    if nonlink < 25.0 && punct == 0 {
        if link_chars == 0 {
            // Table cells and list items of an article are often short: nearly neutral.
            return if matches!(tag, Some(Tag::Td | Tag::Th)) { 0.0 } else { -1.0 };
        }
        return -3.0 - l;
    }
    nonlink - 0.5 * l + 5.0 * punct.min(10) as f32
}

/// Selects the main content of `dom`. `full` keeps the whole body (only never-content elements
/// and hidden ones are dropped).
pub(crate) fn select(
    dom: &Dom,
    full: bool,
    pre_drop: &[bool],
    keep: &[bool],
    explain: Option<&mut String>,
) -> Selection {
    let n = dom.len() as usize;
    let mut drop = pre_drop.to_vec();
    drop.resize(n, false);
    let mut media_drop = drop.clone();
    let kept = |id: usize| keep.get(id).copied().unwrap_or(false);
    let mut neg = vec![false; n];
    let mut guard = vec![0.5f32; n];
    let mut bias = vec![1.0f32; n];
    let mut in_link = vec![false; n];
    let mut owner = vec![ROOT; n];
    // Forward pass: inherited flags.
    for id in 1..n {
        let node = dom.node(id as NodeId);
        let parent = node.parent as usize;
        if media_drop[parent] {
            media_drop[id] = true;
        }
        if drop[parent] || drop[id] {
            drop[id] = true;
            continue;
        }
        in_link[id] = in_link[parent];
        owner[id] = if is_block(dom, id as NodeId) { id as NodeId } else { owner[parent] };
        if let NodeData::Element { tag, .. } = node.data {
            if tag == Tag::A {
                in_link[id] = true;
            }
            let furniture =
                !full && !kept(id) && matches!(tag, Tag::Figcaption | Tag::Figure | Tag::Time | Tag::Header);
            let excluded = if full { invisible(tag) } else { never_content(tag) };
            if excluded || furniture || hidden_or_furniture(dom, id as NodeId, full) {
                drop[id] = true;
                let media_tag = matches!(tag, Tag::Figure | Tag::Figcaption | Tag::Picture | Tag::Video | Tag::Audio);
                media_drop[id] |= !media_tag || hidden_or_furniture(dom, id as NodeId, full);
                continue;
            }
            if !full {
                let v = verdict(dom, id as NodeId);
                // Embedded posts (`blockquote.twitter-tweet`) are quoted content, never furniture.
                if (v.strong || (v.negative && !v.positive))
                    && !kept(id)
                    && !matches!(tag, Tag::Body | Tag::Html | Tag::A | Tag::Blockquote)
                {
                    neg[id] = true;
                    // Guard share: how much of the page's prose the subtree may hold and still
                    // be called boilerplate (comments: any).
                    guard[id] = if v.comment {
                        2.0
                    } else if v.strong {
                        0.7
                    } else {
                        0.5
                    };
                }
                if v.positive && !v.negative {
                    bias[id] = 1.15;
                }
                if matches!(tag, Tag::Article | Tag::Main) {
                    bias[id] *= 1.1;
                }
                if dom.attr(id as NodeId, "itemprop").is_some_and(|p| p.contains("articleBody")) {
                    bias[id] *= 1.3;
                }
            }
        }
    }
    // Per-block text statistics.
    let mut own_chars = vec![0u32; n];
    let mut own_link = vec![0u32; n];
    let mut own_punct = vec![0u32; n];
    for id in 1..n {
        if drop[id] {
            continue;
        }
        if let NodeData::Text(_) = dom.node(id as NodeId).data {
            let (c, p) = count_chars(dom.text(id as NodeId));
            let o = owner[id] as usize;
            own_chars[o] += c;
            own_punct[o] += p;
            if in_link[id] {
                own_link[o] += c;
            }
        }
    }
    let mut stats =
        Stats { chars: own_chars.clone(), link_chars: own_link.clone(), score: vec![0.0; n], good: vec![0; n] };
    for id in 0..n {
        if own_chars[id] > 0 {
            let w = block_weight(own_chars[id], own_link[id], own_punct[id], dom.tag(id as NodeId));
            stats.score[id] = w;
            if own_chars[id] >= 80 && own_link[id] * 3 < own_chars[id] {
                stats.good[id] = own_chars[id];
            }
        }
    }
    // Negative-class subtrees are not content, unless a weak token marks a wrapper holding most
    // of the page's prose (`<div class="main has-sidebar">`): measure prose ignoring classes.
    let mut good_all = stats.good.clone();
    for id in (1..n).rev() {
        if !drop[id] {
            let p = dom.node(id as NodeId).parent as usize;
            good_all[p] += good_all[id];
        }
    }
    let page_good = good_all[ROOT as usize];
    for id in 0..n {
        if neg[id] && good_all[id] as f32 > guard[id] * page_good as f32 {
            neg[id] = false;
        }
    }
    // Nothing inside a boilerplate subtree is a candidate either.
    let mut in_neg = neg.clone();
    for id in 1..n {
        let p = dom.node(id as NodeId).parent as usize;
        in_neg[id] |= in_neg[p];
    }
    // Reverse pass: subtree sums.
    for id in (1..n).rev() {
        if drop[id] {
            continue;
        }
        if neg[id] && !full {
            continue;
        }
        let p = dom.node(id as NodeId).parent as usize;
        stats.chars[p] += stats.chars[id];
        stats.link_chars[p] += stats.link_chars[id];
        stats.score[p] += stats.score[id];
        stats.good[p] += stats.good[id];
    }
    let total_good = stats.good[ROOT as usize];

    if full {
        let root = body_or_root(dom);
        return Selection { root, drop, quality: 0.0, media_drop };
    }

    // Best subtree: maximal bias-weighted score. Ties go to the deeper node (less furniture).
    let mut best = ROOT;
    let mut best_score = f32::MIN;
    for id in 0..n {
        if drop[id] || in_neg[id] || !(id == 0 || dom.tag(id as NodeId).is_some()) {
            continue;
        }
        let s = stats.score[id] * if stats.score[id] > 0.0 { bias[id] } else { 1.0 };
        if s > best_score * 1.0001 || best_score == f32::MIN {
            best = id as NodeId;
            best_score = s;
        }
    }
    // Nodes in the chosen subtree that are boilerplate: negative-class subtrees, link lists and
    // clusters of labels with no prose in them.
    let end = dom.subtree_end(best) as usize;
    for id in (best as usize + 1)..=end {
        if drop[id] {
            continue;
        }
        let parent = dom.node(id as NodeId).parent as usize;
        if drop[parent] && parent != best as usize {
            drop[id] = true;
            continue;
        }
        if dom.tag(id as NodeId).is_none() {
            continue;
        }
        let chars = stats.chars[id];
        let links = stats.link_chars[id];
        let linky = chars > 0 && links * 2 > chars && is_block(dom, id as NodeId);
        let junk = stats.score[id] < 0.0 && stats.good[id] == 0 && links * 4 > chars;
        if (neg[id] || linky || junk) && !kept(id) {
            drop[id] = true;
            media_drop[id] = true;
        }
    }
    drop_title_and_orphan_headings(dom, best, &mut drop, &stats.chars);
    if let Some(out) = explain {
        let mut cands: Vec<(f32, usize)> = (0..n)
            .filter(|&id| !drop[id] && !neg[id] && dom.tag(id as NodeId).is_some())
            .map(|id| (stats.score[id] * bias[id], id))
            .collect();
        cands.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut a = best as NodeId;
        while a != NONE {
            let i = a as usize;
            out.push_str(&format!(
                "  ^ #{a} <{} class={:?} id={:?}> neg={} drop={} score={:.0} good={} good_all={}\n",
                dom.name(a),
                dom.attr(a, "class").unwrap_or(""),
                dom.attr(a, "id").unwrap_or(""),
                neg[i],
                drop[i],
                stats.score[i],
                stats.good[i],
                good_all[i]
            ));
            a = dom.node(a).parent;
        }
        for (s, id) in cands.into_iter().take(12) {
            out.push_str(&format!(
                "{s:8.0} #{id} <{} class={:?} id={:?}> chars={} links={} good={}\n",
                dom.name(id as NodeId),
                dom.attr(id as NodeId, "class").unwrap_or(""),
                dom.attr(id as NodeId, "id").unwrap_or(""),
                stats.chars[id],
                stats.link_chars[id],
                stats.good[id]
            ));
        }
    }
    let quality = crate::quality::score(
        stats.good[best as usize],
        total_good,
        stats.chars[best as usize],
        stats.link_chars[best as usize],
    );
    Selection { root: best, drop, quality, media_drop }
}

/// `<body>` if there is one, else the root.
pub(crate) fn body_or_root(dom: &Dom) -> NodeId {
    let mut id = dom.node(ROOT).first_child;
    // <html> then <body>, each at most one level down.
    for _ in 0..2 {
        let mut next = NONE;
        let mut c = id;
        while c != NONE {
            match dom.tag(c) {
                Some(Tag::Body) => return c,
                Some(Tag::Html) => next = dom.node(c).first_child,
                _ => {}
            }
            c = dom.node(c).next_sibling;
        }
        id = next;
    }
    ROOT
}

/// Letters and digits of `s`, lower-cased: for comparing a heading with the page title.
fn squash(s: &str) -> String {
    s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// Headings in the selection that are the page title (the title is `Document::title`, not body
/// text), and headings left without any content after them (the heading of a pruned "Top
/// videos" list).
fn drop_title_and_orphan_headings(dom: &Dom, root: NodeId, drop: &mut [bool], chars: &[u32]) {
    let title = dom.title.map(|s| squash(dom.s(s))).unwrap_or_default();
    let end = dom.subtree_end(root) as usize;
    let mut seen_h1 = false;
    for id in root as usize..=end {
        if drop[id] {
            continue;
        }
        let Some(level) = dom.tag(id as NodeId).and_then(Tag::heading_level) else {
            continue;
        };
        let text = squash(&crate::render::text_of(dom, id as NodeId, drop));
        if text.is_empty() {
            continue;
        }
        let is_title = (level == 1 && !seen_h1) || (text.len() >= 12 && title.contains(&text));
        if level == 1 {
            seen_h1 = true;
        }
        if is_title || !has_content_after(dom, id as NodeId, root, drop, chars) {
            drop[id] = true;
        }
    }
}

/// Is there kept text after `h` (in its following siblings, or its ancestors' following siblings,
/// up to `root`) before the next heading?
fn has_content_after(dom: &Dom, h: NodeId, root: NodeId, drop: &[bool], chars: &[u32]) -> bool {
    let mut cur = h;
    for _ in 0..4 {
        let mut sib = dom.node(cur).next_sibling;
        while sib != NONE {
            let i = sib as usize;
            if !drop[i] && chars[i] > 0 {
                return dom.tag(sib).and_then(Tag::heading_level).is_none();
            }
            sib = dom.node(sib).next_sibling;
        }
        if cur == root {
            return false;
        }
        cur = dom.node(cur).parent;
        if cur == NONE || cur == root {
            return false;
        }
    }
    false
}
