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
//!
//! This file owns the scoring and the choice of root (with the structural exceptions to class
//! tokens: main text holding a boilerplate token, site-builder wrappers, forum posts); what a line
//! of text says (bylines, datelines, labels, repeated titles) is `furniture.rs`. Neither renders.

use crate::classify::{Classifier, invisible, never_content};
use crate::html::{Dom, NONE, NodeData, NodeId, ROOT, Tag};

mod furniture;

use furniture::{drop_lead_furniture, drop_title_and_orphan_headings};

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

/// Non-whitespace characters and sentence punctuation marks in `s`, in one pass over the bytes.
fn count_chars(s: &str) -> (u32, u32) {
    let b = s.as_bytes();
    let mut chars = 0u32;
    let mut punct = 0u32;
    for (i, &c) in b.iter().enumerate() {
        if c.is_ascii_whitespace() || (c & 0xC0) == 0x80 {
            continue;
        }
        chars += 1;
        let is_punct = match c {
            b'.' | b',' | b'!' | b'?' | b';' | b':' => true,
            // 。 、 (E3 80 82/81), ， ！ ？ (EF BC 8C/81/9F), Arabic ، ؟ (D8 8C/9F).
            0xE3 => b.get(i + 1) == Some(&0x80) && matches!(b.get(i + 2), Some(0x81 | 0x82)),
            0xEF => b.get(i + 1) == Some(&0xBC) && matches!(b.get(i + 2), Some(0x8C | 0x81 | 0x9F)),
            0xD8 => matches!(b.get(i + 1), Some(0x8C | 0x9F)),
            _ => false,
        };
        punct += u32::from(is_punct);
    }
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
/// In the loose pass, the share of the page's prose above which a negative class token is
/// overruled (a cookie banner holds none; a block that holds a third of the prose is content).
const LOOSE_GUARD: f32 = 0.1;

/// How much the scorer trusts class/id signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    /// Class and id tokens mark boilerplate (guarded by how much prose they hold).
    Normal,
    /// The fallback when the normal pass found nothing convincing: a class or id token marks
    /// boilerplate only on elements holding little of the page's prose ([`LOOSE_GUARD`]);
    /// never-content elements (nav, aside, footer, forms' controls...), hidden ones and link lists
    /// are still left out.
    Loose,
}

pub(crate) fn select(
    dom: &Dom,
    full: bool,
    pre_drop: &[bool],
    keep: &[bool],
    explain: Option<&mut String>,
) -> Selection {
    select_pass(dom, full, pre_drop, keep, explain, Pass::Normal)
}

/// [`select`] with an explicit [`Pass`].
pub(crate) fn select_pass(
    dom: &Dom,
    full: bool,
    pre_drop: &[bool],
    keep: &[bool],
    explain: Option<&mut String>,
    pass: Pass,
) -> Selection {
    let n = dom.len() as usize;
    let mut drop = pre_drop.to_vec();
    drop.resize(n, false);
    let mut media_drop = drop.clone();
    let kept = |id: usize| keep.get(id).copied().unwrap_or(false);
    let mut neg = vec![false; n];
    let mut guard = vec![0.5f32; n];
    let mut bias = vec![1.0f32; n];
    let mut body = vec![false; n];
    let mut in_link = vec![false; n];
    let mut owner = vec![ROOT; n];
    // Reader-comment sections (neg by a comment token), and the page's first <h1>: a forum's
    // posts and a blog post wrapped in `has-comments` are told apart by where the prose is.
    let mut comment = vec![false; n];
    let mut first_h1 = NONE;
    let mut classifier = Classifier::default();
    // Forward pass: inherited flags.
    for id in 1..n {
        let node = dom.node(id as NodeId);
        let parent = node.parent as usize;
        if media_drop[parent] {
            media_drop[id] = true;
        }
        // Keep selectors win over drop selectors and over everything but invisibility.
        if !kept(id) && (drop[parent] || drop[id]) {
            drop[id] = true;
            continue;
        }
        drop[id] = false;
        in_link[id] = in_link[parent];
        owner[id] = if is_block(dom, id as NodeId) { id as NodeId } else { owner[parent] };
        if let NodeData::Element { tag, .. } = node.data {
            // In the loose pass, a link wrapped around a card (a paragraph inside) is content that
            // happens to be clickable, not a link list (a collection of cards). Not in the normal
            // pass: on an article page such cards are teasers for other pages.
            if tag == Tag::A && (pass == Pass::Normal || !holds_paragraph(dom, id as NodeId)) {
                in_link[id] = true;
            }
            if tag == Tag::H1 && first_h1 == NONE {
                first_h1 = id as NodeId;
            }
            // <header> is furniture unless it holds the page's prose (site builders put whole
            // posts in one): it is judged below like a negative class, not dropped here.
            let furniture = !full && !kept(id) && matches!(tag, Tag::Figcaption | Tag::Figure | Tag::Time);
            let excluded = if full || kept(id) { invisible(tag) } else { never_content(tag) };
            let (v, hidden) = if excluded { Default::default() } else { classifier.classify(dom, id as NodeId, full) };
            if excluded || furniture || hidden {
                drop[id] = true;
                let media_tag = matches!(tag, Tag::Figure | Tag::Figcaption | Tag::Picture | Tag::Video | Tag::Audio);
                media_drop[id] |= !media_tag || hidden;
                continue;
            }
            if !full && tag == Tag::Header && !kept(id) {
                neg[id] = true;
                guard[id] = 0.3;
            }
            if !full {
                // Embedded posts (`blockquote.twitter-tweet`) are quoted content, never furniture.
                if (v.strong || (v.negative && !v.positive))
                    && !kept(id)
                    && !matches!(tag, Tag::Body | Tag::Html | Tag::A | Tag::Blockquote)
                {
                    neg[id] = true;
                    // Guard share: how much of the page's prose the subtree may hold and still
                    // be called boilerplate (comments: any).
                    comment[id] = v.comment;
                    guard[id] = if pass == Pass::Loose {
                        LOOSE_GUARD
                    } else if v.comment {
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
                body[id] = v.body;
                if matches!(tag, Tag::Article | Tag::Main) {
                    bias[id] *= 1.1;
                }
                if v.body {
                    bias[id] *= 1.3;
                }
            }
        }
    }
    drop_inline_link_clusters(dom, &mut drop, &in_link, keep, full);
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
    let mut score = vec![0.0f32; n];
    let mut good = vec![0u32; n];
    for id in 0..n {
        if own_chars[id] > 0 {
            score[id] = block_weight(own_chars[id], own_link[id], own_punct[id], dom.tag(id as NodeId));
            if own_chars[id] >= 80 && own_link[id] * 3 < own_chars[id] {
                good[id] = own_chars[id];
            }
        }
    }
    // Moved, not copied: on a 20 MB page every per-node array is megabytes of guest memory.
    drop_vec(own_punct);
    let mut stats = Stats { chars: own_chars, link_chars: own_link, score, good };
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
    if !full {
        unmark_main_text(dom, &mut neg, &comment, &good_all, first_h1, &drop);
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
    let best = anchor_on_body_marker(dom, best, &body, &in_neg, &drop, &stats);
    // No prose anywhere (a stub, a form, a page of links): the body's text is the best answer,
    // boilerplate still pruned below; the quality score says how little it is worth.
    let best = if best_score <= 0.0 { body_or_root(dom) } else { best };
    // Nodes in the chosen subtree that are boilerplate: negative-class subtrees, link lists and
    // clusters of labels with no prose in them.
    let end = dom.subtree_end(best) as usize;
    let mut linky_drop = vec![false; n];
    for id in (best as usize + 1)..=end {
        if drop[id] {
            continue;
        }
        let parent = dom.node(id as NodeId).parent as usize;
        if drop[parent] && parent != best as usize && !kept(id) {
            drop[id] = true;
            continue;
        }
        if dom.tag(id as NodeId).is_none() {
            continue;
        }
        let chars = stats.chars[id];
        let links = stats.link_chars[id];
        // A link list: mostly link text, and little prose besides (a list item with a linked
        // headline and a full sentence after it is content).
        let nonlink = chars.saturating_sub(links);
        let linky =
            chars > 0 && links * 2 > chars && (nonlink < 80 || links * 20 > chars * 13) && is_block(dom, id as NodeId);
        let junk = stats.score[id] < 0.0 && stats.good[id] == 0 && links * 4 > chars && nonlink < 80;
        let label = chars > 0
            && chars <= 48
            && is_block(dom, id as NodeId)
            && small_subtree(dom, id as NodeId)
            && crate::classify::is_label(&crate::render::text_of(dom, id as NodeId, &drop));
        if (neg[id] || linky || junk || label) && !kept(id) {
            drop[id] = true;
            media_drop[id] = true;
            linky_drop[id] = linky;
        }
    }
    drop_title_and_orphan_headings(dom, best, &mut drop, &stats.chars, &linky_drop);
    drop_lead_furniture(dom, best, &mut drop, &stats);
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

/// Short-text checks (labels, bylines, headings) render their element's text; only worth it,
/// and only linear overall, for small subtrees (a hostile chain of 100,000 nested elements each
/// holding the same four characters must not be rendered 100,000 times).
fn small_subtree(dom: &Dom, id: NodeId) -> bool {
    dom.subtree_end(id) - id <= 64
}

/// Frees a scratch array early (the guest's linear memory keeps its high-water mark).
fn drop_vec<T>(v: Vec<T>) {
    std::mem::drop(v);
}

/// Inline elements that are clusters of links inside running text (a hover card listing a
/// person's other articles, an inline "related" box): hidden by CSS on the real page, they would
/// make their paragraph look like a link list.
fn drop_inline_link_clusters(dom: &Dom, drop: &mut [bool], in_link: &[bool], keep: &[bool], full: bool) {
    if full {
        return;
    }
    let n = drop.len();
    let mut chars = vec![0u32; n];
    let mut link_chars = vec![0u32; n];
    let mut links = vec![0u32; n];
    for id in (1..n).rev() {
        if drop[id] {
            continue;
        }
        match dom.node(id as NodeId).data {
            NodeData::Text(_) => {
                let c = count_chars(dom.text(id as NodeId)).0;
                chars[id] += c;
                if in_link[id] {
                    link_chars[id] += c;
                }
            }
            NodeData::Element { tag: Tag::A, .. } => links[id] += 1,
            _ => {}
        }
        let p = dom.node(id as NodeId).parent as usize;
        chars[p] += chars[id];
        link_chars[p] += link_chars[id];
        links[p] += links[id];
    }
    for id in 1..n {
        let p = dom.node(id as NodeId).parent as usize;
        let kept = keep.get(id).copied().unwrap_or(false);
        if drop[p] && !kept {
            drop[id] = true;
            continue;
        }
        let inline = dom.tag(id as NodeId).is_some_and(|t| !t.is_block() && t != Tag::A);
        if inline && links[id] >= 2 && link_chars[id] > 100 && link_chars[id] * 5 > chars[id] * 4 {
            // Only inside a block that has prose of its own besides the cluster.
            let owner_block = {
                let mut a = p;
                while a != ROOT as usize && !is_block(dom, a as NodeId) {
                    a = dom.node(a as NodeId).parent as usize;
                }
                a
            };
            if chars[owner_block] - link_chars[owner_block] >= 40 {
                drop[id] = true;
            }
        }
    }
}

/// Does the element hold a `<p>` (bounded look: anchors are small, cards are a few dozen nodes)?
fn holds_paragraph(dom: &Dom, id: NodeId) -> bool {
    let end = dom.subtree_end(id).min(id.saturating_add(64));
    (id + 1..=end).any(|d| dom.tag(d) == Some(Tag::P))
}

/// Where a boilerplate token stands decides whether it counts. Two structural exceptions:
/// - an element holding the page's first `<h1>` and a good share of its prose holds the main text
///   (`article.has-comments`, `div#wrap.menu-side-transition`): its tokens describe the page, not
///   a section of it;
/// - when reader-comment sections hold most of the page's prose, they are the page (a forum
///   thread, a Q&A page, where every post carries `reply`/`comment` classes).
fn unmark_main_text(dom: &Dom, neg: &mut [bool], comment: &[bool], good_all: &[u32], first_h1: NodeId, drop: &[bool]) {
    let page_good = good_all[ROOT as usize];
    if page_good == 0 {
        return;
    }
    if first_h1 != NONE && !drop[first_h1 as usize] {
        let mut a = dom.node(first_h1).parent;
        while a != NONE {
            let i = a as usize;
            if neg[i] && good_all[i] * 2 > page_good {
                neg[i] = false;
            }
            a = dom.node(a).parent;
        }
    }
    // A class value repeated on several negative elements that together hold most of the prose is
    // a site builder's block wrapper (`elementor-widget-container`), not furniture.
    let mut groups: std::collections::BTreeMap<&str, (u32, u32)> = std::collections::BTreeMap::new();
    let mut covered_until = 0usize;
    for id in 0..neg.len() {
        if id < covered_until || !neg[id] || comment[id] {
            continue;
        }
        covered_until = dom.subtree_end(id as NodeId) as usize + 1;
        if let Some(class) = dom.attr(id as NodeId, "class") {
            let g = groups.entry(class).or_default();
            g.0 += 1;
            g.1 = g.1.saturating_add(good_all[id]);
        }
    }
    let builder: Vec<&str> = groups
        .into_iter()
        .filter(|(_, (count, good))| *count >= 2 && u64::from(*good) * 2 > u64::from(page_good))
        .map(|(class, _)| class)
        .collect();
    if !builder.is_empty() {
        for id in 0..neg.len() {
            if neg[id] && !comment[id] && dom.attr(id as NodeId, "class").is_some_and(|c| builder.contains(&c)) {
                neg[id] = false;
            }
        }
    }
    // Outermost comment sections and the prose they hold.
    let n = neg.len();
    let mut in_comments = 0u32;
    let mut covered_until = 0usize;
    for id in 0..n {
        if id < covered_until || !neg[id] || !comment[id] {
            continue;
        }
        in_comments = in_comments.saturating_add(good_all[id]);
        covered_until = dom.subtree_end(id as NodeId) as usize + 1;
    }
    if u64::from(in_comments) * 10 > u64::from(page_good) * 6 {
        for id in 0..n {
            if comment[id] {
                neg[id] = false;
            }
        }
    }
}

/// Site markup that names the article body (`itemprop=articleBody`, `class="entry-content"`)
/// beats the score when it holds a fair share of the prose: the best-sum subtree happily swallows
/// teaser lists whose blurbs read like prose. Several marked chunks (an article split around ads)
/// are joined at their common ancestor.
fn anchor_on_body_marker(
    dom: &Dom,
    best: NodeId,
    body: &[bool],
    in_neg: &[bool],
    drop: &[bool],
    stats: &Stats,
) -> NodeId {
    let n = body.len();
    // Outermost marked nodes (a marked node inside a marked node adds nothing).
    let mut marked: Vec<usize> = Vec::new();
    let mut covered_until = 0usize;
    for id in 0..n {
        if id < covered_until || !body[id] || in_neg[id] || drop[id] {
            continue;
        }
        if stats.good[id] > 0 {
            marked.push(id);
            covered_until = dom.subtree_end(id as NodeId) as usize + 1;
        }
    }
    let Some(&anchor) = marked.iter().max_by_key(|&&id| stats.good[id]) else {
        return best;
    };
    let anchor_good = stats.good[anchor];
    let best_good = stats.good[best as usize];
    if anchor_good < 400 || anchor_good * 4 < best_good {
        return best;
    }
    // Other chunks with real prose join the anchor at their common ancestor.
    let mut root = anchor as NodeId;
    // Bounded: a hostile page could mark thousands of chunks.
    for &m in marked.iter().take(64) {
        if m != anchor && stats.good[m] * 5 >= anchor_good {
            root = common_ancestor(dom, root, m as NodeId);
        }
    }
    let inside = |a: NodeId, b: NodeId| a >= b && a <= dom.subtree_end(b);
    if inside(best, root) && best != root {
        // The scorer found a tighter node inside the marked body: trust the markup only if the
        // body holds clearly more prose.
        return if stats.good[root as usize] * 10 > best_good * 11 { root } else { best };
    }
    if inside(root, best) || anchor_good * 2 >= best_good {
        return root;
    }
    best
}

fn common_ancestor(dom: &Dom, a: NodeId, b: NodeId) -> NodeId {
    let mut path = Vec::new();
    let mut x = a;
    while x != NONE {
        path.push(x);
        x = dom.node(x).parent;
    }
    let mut y = b;
    while y != NONE {
        if path.contains(&y) {
            return y;
        }
        y = dom.node(y).parent;
    }
    ROOT
}
