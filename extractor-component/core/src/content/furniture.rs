//! Furniture around and inside the chosen content, judged by what a line says rather than by
//! score: bylines and datelines, ad labels and UI words before the first or after the last
//! paragraph, the page title repeated as a heading, headings whose section was pruned. Runs after
//! the scorer (`content/mod.rs`) has picked a root; it only adds to the `drop` mask, never
//! chooses content.

use super::{Stats, is_block, small_subtree};
use crate::html::{Dom, NONE, NodeId, Tag};

/// Does a short line read like a byline or a dateline ("By Jane Doe", "Updated at 1:23 p.m.",
/// "November 19, 2019 9:02 AM")?
fn byline_or_date(text: &str) -> bool {
    let t = text.trim();
    let lower = t.to_lowercase();
    const STARTS: &[&str] = &[
        "by ",
        "von ",
        "por ",
        "par ",
        "di ",
        "door ",
        "written by",
        "posted",
        "published",
        "updated",
        "last updated",
        "modified",
        "posted on",
        "veröffentlicht",
        "aktualisiert",
        "publié",
        "publicado",
    ];
    if STARTS.iter().any(|p| lower.starts_with(p)) {
        return true;
    }
    // Mostly a date: digits and month names make up most of the words.
    let words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    if words.is_empty() || words.len() > 10 {
        return false;
    }
    const DATE_WORDS: &[&str] = &[
        "jan",
        "january",
        "feb",
        "february",
        "mar",
        "march",
        "apr",
        "april",
        "may",
        "jun",
        "june",
        "jul",
        "july",
        "aug",
        "august",
        "sep",
        "sept",
        "september",
        "oct",
        "october",
        "nov",
        "november",
        "dec",
        "december",
        "am",
        "pm",
        "a",
        "m",
        "p",
        "et",
        "est",
        "edt",
        "pst",
        "pdt",
        "gmt",
        "utc",
        "bst",
        "cet",
        "at",
        "on",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "mon",
        "tue",
        "wed",
        "thu",
        "fri",
        "sat",
        "sun",
        "min",
        "read",
        "ago",
        "hours",
        "hour",
        "minutes",
        "updated",
        "published",
        // German, French, Spanish, Portuguese, Italian, Dutch month and day names.
        "januar",
        "februar",
        "märz",
        "mai",
        "juni",
        "juli",
        "oktober",
        "dezember",
        "janvier",
        "février",
        "mars",
        "avril",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
        "janeiro",
        "fevereiro",
        "março",
        "maio",
        "junho",
        "julho",
        "setembro",
        "outubro",
        "novembro",
        "dezembro",
        "gennaio",
        "febbraio",
        "aprile",
        "maggio",
        "giugno",
        "luglio",
        "settembre",
        "ottobre",
        "dicembre",
        "januari",
        "februari",
        "maart",
        "mei",
        "augustus",
        "montag",
        "dienstag",
        "mittwoch",
        "donnerstag",
        "freitag",
        "samstag",
        "sonntag",
        "lundi",
        "mardi",
        "mercredi",
        "jeudi",
        "vendredi",
        "samedi",
        "dimanche",
        "lunes",
        "martes",
        "miércoles",
        "jueves",
        "viernes",
        "sábado",
        "domingo",
        "segunda",
        "terça",
        "quarta",
        "quinta",
        "sexta",
        "feira",
        "de",
        "às",
        "um",
        "le",
        "à",
        "uhr",
        "h",
        "ist",
        "cst",
        "aest",
        "jst",
        "hrs",
    ];
    // Date words that say nothing on their own ("de" in "22 de outubro").
    const FILLER: &[&str] = &["a", "m", "p", "at", "on", "et", "de", "às", "um", "le", "à", "h"];
    let clock = |w: &str| {
        let digits = w.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && matches!(w.get(digits.len()..), Some("am" | "pm" | "h"))
    };
    let datey =
        words.iter().filter(|w| w.bytes().all(|b| b.is_ascii_digit()) || DATE_WORDS.contains(w) || clock(w)).count();
    let has_digit = lower.bytes().any(|b| b.is_ascii_digit());
    // Numbers alone are a table row or a score, not a date: a month, weekday or clock word too.
    let named = words.iter().any(|w| DATE_WORDS.contains(w) && !FILLER.contains(w));
    has_digit && named && datey * 4 >= words.len() * 3
}

/// A block without block children: a paragraph, list item, heading or caption line.
fn own_paragraph(dom: &Dom, id: NodeId) -> bool {
    is_block(dom, id) && dom.children(id).all(|c| !is_block(dom, c) || dom.tag(c) == Some(Tag::Br))
}

/// A short line that is page furniture when it stands before the first or after the last
/// paragraph: a byline or dateline, an ad label, a UI word ("Close", "LEARN MORE"), a section
/// kicker ("TECH").
fn furniture_line(text: &str, lead: bool, list_item: bool) -> bool {
    if byline_or_date(text) || crate::classify::is_label(text) {
        return true;
    }
    let t = text.trim();
    // Short list items end many articles ("Bugs fixed"); scripts written without spaces have no
    // word count to go by.
    if list_item || t.chars().any(|c| c >= '\u{2e80}') {
        return false;
    }
    let words = t.split_whitespace().count();
    let sentence_end = t.ends_with(['.', '!', '?', '"', '\u{201d}', ')', ':', '\u{2026}', '\u{3002}']);
    // A kicker above the headline is one or two words; trailing calls to action a few more.
    let max_words = if lead { 2 } else { 4 };
    words <= max_words && !sentence_end
}

/// Short furniture lines before the first real paragraph of the selection and after its last.
pub(super) fn drop_lead_furniture(dom: &Dom, root: NodeId, drop: &mut [bool], stats: &Stats) {
    let end = dom.subtree_end(root) as usize;
    let is_prose = |id: usize| stats.good[id] > 0 && own_paragraph(dom, id as NodeId);
    let candidate = |id: usize, drop: &[bool]| {
        let tag = dom.tag(id as NodeId);
        let table_part = matches!(tag, Some(Tag::Table | Tag::Tr | Tag::Td | Tag::Th | Tag::Tbody));
        !drop[id]
            && !table_part
            && tag.and_then(Tag::heading_level).is_none()
            && own_paragraph(dom, id as NodeId)
            && (1..=80).contains(&stats.chars[id])
            && small_subtree(dom, id as NodeId)
    };
    let mut id = root as usize + 1;
    while id <= end {
        if drop[id] || matches!(dom.tag(id as NodeId), Some(Tag::Table)) {
            id = dom.subtree_end(id as NodeId) as usize + 1;
            continue;
        }
        if is_prose(id) {
            break;
        }
        let item = matches!(dom.tag(id as NodeId), Some(Tag::Li | Tag::Dd | Tag::Dt));
        if candidate(id, drop) && furniture_line(&crate::render::text_of(dom, id as NodeId, drop), true, item) {
            drop[id] = true;
            id = dom.subtree_end(id as NodeId) as usize + 1;
            continue;
        }
        id += 1;
    }
    // Trailing lines, walking back from the end; stop at the last paragraph of prose.
    let mut id = end;
    while id > root as usize {
        if is_prose(id) && !drop[id] && !under_dropped(dom, id as NodeId, root, drop) {
            break;
        }
        if candidate(id, drop) && !under_dropped(dom, id as NodeId, root, drop) {
            let text = crate::render::text_of(dom, id as NodeId, drop);
            let item = matches!(dom.tag(id as NodeId), Some(Tag::Li | Tag::Dd | Tag::Dt));
            if furniture_line(&text, false, item) {
                drop[id] = true;
            }
        }
        id -= 1;
    }
}

/// Is `id` inside a dropped subtree (below `root`)?
fn under_dropped(dom: &Dom, id: NodeId, root: NodeId, drop: &[bool]) -> bool {
    let mut a = dom.node(id).parent;
    for _ in 0..MAX_CLIMB {
        if a == NONE || a == root {
            return false;
        }
        if drop[a as usize] {
            return true;
        }
        a = dom.node(a).parent;
    }
    false
}

/// How far `under_dropped` climbs (the parser caps depth at 256 anyway).
const MAX_CLIMB: usize = 300;

/// Letters and digits of `s`, lower-cased: for comparing a heading with the page title.
fn squash(s: &str) -> String {
    s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect()
}

/// Headings in the selection that are the page title (the title is `Document::title`, not body
/// text), and headings left without content after them: the heading of a pruned "Top videos"
/// list, or a short bold "DON'T MISS" line whose link list was pruned.
pub(super) fn drop_title_and_orphan_headings(
    dom: &Dom,
    root: NodeId,
    drop: &mut [bool],
    chars: &[u32],
    linky: &[bool],
) {
    let title = dom.title.map(|s| squash(dom.s(s))).unwrap_or_default();
    let end = dom.subtree_end(root) as usize;
    let mut seen_h1 = false;
    for id in root as usize..=end {
        if drop[id] || id == root as usize {
            continue;
        }
        let level = dom.tag(id as NodeId).and_then(Tag::heading_level);
        let short_block = level.is_none() && is_block(dom, id as NodeId) && (1..=40).contains(&chars[id]);
        if (level.is_none() && !short_block) || !small_subtree(dom, id as NodeId) {
            continue;
        }
        let raw = crate::render::text_of(dom, id as NodeId, drop);
        let text = squash(&raw);
        if text.is_empty() {
            continue;
        }
        let next = next_content(dom, id as NodeId, root, drop, chars);
        let orphan = match level {
            Some(l) => {
                let is_title = (l == 1 && !seen_h1) || (text.len() >= 12 && title.contains(&text));
                seen_h1 |= l == 1;
                is_title
                    || match next {
                        Next::Kept(n) => dom.tag(n).and_then(Tag::heading_level).is_some(),
                        Next::Dropped(n) => linky[n as usize],
                        Next::End => true,
                    }
            }
            None => {
                // A lead-in line ("Related:", "DON'T MISS") of a pruned link list.
                !raw.trim_end().ends_with(['.', '!', '?', '"', '”'])
                    && matches!(next, Next::Dropped(n) if linky[n as usize])
            }
        };
        if orphan {
            drop[id] = true;
        }
    }
}

/// What follows a node in its block context.
enum Next {
    /// The next text-bearing sibling, kept.
    Kept(NodeId),
    /// The next text-bearing sibling, dropped.
    Dropped(NodeId),
    /// No text follows inside the selection.
    End,
}

/// The first text-bearing node after `h` among its following siblings, or its ancestors'
/// following siblings (up to 4 levels, not leaving `root`).
fn next_content(dom: &Dom, h: NodeId, root: NodeId, drop: &[bool], chars: &[u32]) -> Next {
    let mut cur = h;
    for _ in 0..4 {
        let mut sib = dom.node(cur).next_sibling;
        while sib != NONE {
            if chars[sib as usize] > 0 {
                return if drop[sib as usize] { Next::Dropped(sib) } else { Next::Kept(sib) };
            }
            sib = dom.node(sib).next_sibling;
        }
        cur = dom.node(cur).parent;
        if cur == NONE || cur == root {
            return Next::End;
        }
    }
    Next::End
}
