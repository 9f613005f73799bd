//! Tokenizer and tree builder: one pass over the source, no recursion, bounded depth and node count.
//! It follows the HTML5 "in body" rules only as far as they change which text ends up in which
//! element (implied `</p>`, `</li>`, `</td>`, void and raw-text elements, end tags that do not
//! match); everything else (adoption agency, foster parenting, quirks) is left out on purpose.

use super::{Attr, Dom, NONE, Node, NodeData, NodeId, ROOT, Span, Tag, decode_entities_into};

/// Open elements deeper than this are not pushed: their content becomes their parent's. Real pages
/// stay under ~60; the cap makes 100,000 nested elements a flat list instead of a deep tree.
const MAX_DEPTH: usize = 256;

/// Nodes beyond this are dropped (parsing stops). 1.5 M nodes is ~40 MB of arena, far more than
/// any article page (AEB's largest has ~30 k).
const MAX_NODES: usize = 1_500_000;

/// Attributes kept per element; the rest are parsed and ignored (bounds the duplicate check and
/// every per-attribute pass on hostile tags).
const MAX_ATTRS: usize = 64;

/// How far down the open-element stack an end tag looks for its start tag.
const MAX_END_TAG_SEARCH: usize = 128;

/// One open element.
#[derive(Clone, Copy)]
struct Open {
    id: NodeId,
    tag: Tag,
    name: Span,
}

struct Builder<'a> {
    src: &'a str,
    dom: Dom,
    stack: Vec<Open>,
    /// Open `<svg>`/`<math>` elements: inside them `<x/>` closes itself and `<title>` is not the
    /// page title.
    foreign: usize,
    /// Where the next token goes, for the part of the HTML5 insertion modes that places content:
    /// before `<html>`, in and after `<head>`, and in `<body>`.
    mode: Mode,
    /// The `<head>` element, once created (explicitly or implied).
    head: NodeId,
    /// A head element (`<meta>`, `<script>`...) seen after `</head>` went into the reopened head,
    /// which must be closed again once that element is done.
    head_reopened: bool,
}

/// The HTML5 insertion modes before `<body>`; inside `<body>` the simplified in-body rules apply
/// to everything (tables, selects and the like included).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Mode {
    BeforeHtml,
    BeforeHead,
    InHead,
    /// `<noscript>` in `<head>` with scripting off: only head elements belong in it.
    InHeadNoscript,
    AfterHead,
    InBody,
}

/// Elements that belong in `<head>` ("in head" start tags).
fn is_head_content(tag: Tag) -> bool {
    matches!(
        tag,
        Tag::Base | Tag::Link | Tag::Meta | Tag::Title | Tag::Style | Tag::Script | Tag::Noframes | Tag::Template
    )
}

/// Parses `src` into a [`Dom`]. Never fails: any byte sequence yields some tree.
pub(crate) fn parse(src: &str) -> Dom {
    let mut b = Builder {
        src,
        dom: Dom::default(),
        stack: Vec::with_capacity(64),
        foreign: 0,
        mode: Mode::BeforeHtml,
        head: NONE,
        head_reopened: false,
    };
    // The arena is sized once, so that it does not grow by doubling (which leaves the guest's
    // memory at twice the need on huge pages): every '<' opens at most one element and ends at
    // most one text run. Decoded text is about a third of the source on AEB pages (reserving the
    // full source length measured worse: the guest's peak is the sum of all live reservations).
    let tags = memchr::memchr_iter(b'<', src.as_bytes()).count();
    b.dom.nodes.reserve((tags + 16).min(MAX_NODES));
    b.dom.buf.reserve(src.len() / 3 + 64);
    b.dom.nodes.push(Node {
        parent: NONE,
        first_child: NONE,
        last_child: NONE,
        next_sibling: NONE,
        data: NodeData::Document,
    });
    b.run();
    // Every document has <html>, <head> and <body>, implied when the source has none.
    b.ensure_body();
    b.dom
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay.get(from..)?, needle).map(|p| p + from)
}

/// Where a comment whose body starts at `from` ends (after its `>`): `-->`, `--!>`, or the
/// abrupt `<!-->` and `<!--->` of the HTML5 tokenizer.
fn comment_end(b: &[u8], from: usize) -> usize {
    match b.get(from..) {
        Some([b'>', ..]) => return from + 1,
        Some([b'-', b'>', ..]) => return from + 2,
        _ => {}
    }
    let mut j = from;
    while let Some(p) = find(b, j, b"--") {
        match b.get(p + 2..) {
            Some([b'>', ..]) => return p + 3,
            Some([b'!', b'>', ..]) => return p + 4,
            _ => j = p + 1,
        }
    }
    b.len()
}

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')
}

impl<'a> Builder<'a> {
    /// The source between two byte positions. Every position the tokenizer stops at is next to
    /// an ASCII delimiter (`<`, `>`, quotes, whitespace, `=`, `/`), hence a char boundary; `get`
    /// makes a bug there an empty string instead of a panic.
    fn slice(&self, from: usize, to: usize) -> &'a str {
        self.src.get(from..to).unwrap_or("")
    }

    fn run(&mut self) {
        let b = self.src.as_bytes();
        let len = b.len();
        let mut i = 0;
        while i < len {
            if self.dom.nodes.len() >= MAX_NODES {
                self.dom.truncated = true;
                return;
            }
            let lt = memchr::memchr(b'<', &b[i..]).map_or(len, |p| p + i);
            if lt > i {
                self.text(i, lt);
            }
            i = lt;
            if i >= len {
                break;
            }
            match b.get(i + 1).copied() {
                Some(b'!') => {
                    if b[i..].starts_with(b"<!--") {
                        i = comment_end(b, i + 4);
                    } else if b[i..].starts_with(b"<![CDATA[") {
                        let end = find(b, i + 9, b"]]>").unwrap_or(len);
                        self.text(i + 9, end);
                        i = (end + 3).min(len);
                    } else {
                        i = memchr::memchr(b'>', &b[i..]).map_or(len, |p| p + i + 1);
                    }
                }
                Some(b'?') => i = memchr::memchr(b'>', &b[i..]).map_or(len, |p| p + i + 1),
                Some(b'/') => match b.get(i + 2).copied() {
                    Some(c) if c.is_ascii_alphabetic() => i = self.end_tag(i + 2),
                    Some(b'>') => i += 3,
                    _ => i = memchr::memchr(b'>', &b[i..]).map_or(len, |p| p + i + 1),
                },
                Some(c) if c.is_ascii_alphabetic() => i = self.start_tag(i + 1),
                _ => {
                    self.text(i, i + 1);
                    i += 1;
                }
            }
        }
    }

    /// Copies `s` lower-cased into the buffer.
    fn push_lower(&mut self, s: &str) -> Span {
        let start = self.dom.buf.len() as u32;
        for ch in s.chars() {
            self.dom.buf.push(ch.to_ascii_lowercase());
        }
        Span { start, end: self.dom.buf.len() as u32 }
    }

    fn top(&self) -> NodeId {
        self.stack.last().map_or(ROOT, |o| o.id)
    }

    fn append(&mut self, data: NodeData) -> NodeId {
        let id = self.dom.nodes.len() as NodeId;
        let parent = self.top();
        self.dom.nodes.push(Node { parent, first_child: NONE, last_child: NONE, next_sibling: NONE, data });
        let last = self.dom.nodes[parent as usize].last_child;
        if last == NONE {
            self.dom.nodes[parent as usize].first_child = id;
        } else {
            self.dom.nodes[last as usize].next_sibling = id;
        }
        self.dom.nodes[parent as usize].last_child = id;
        id
    }

    /// Appends the source range as text, merged into the previous text node when adjacent.
    fn text(&mut self, mut from: usize, to: usize) {
        if self.mode < Mode::InBody {
            // Leading whitespace stays where the mode puts it; anything else opens <body>.
            let b = self.src.as_bytes();
            let ws_end = (from..to).find(|&k| b.get(k).is_none_or(|&c| !is_ws(c))).unwrap_or(to);
            if ws_end > from && matches!(self.mode, Mode::InHead | Mode::InHeadNoscript | Mode::AfterHead) {
                self.insert_text(from, ws_end);
            }
            from = ws_end;
            if from >= to {
                return;
            }
            self.ensure_body();
        }
        self.insert_text(from, to);
    }

    /// Appends the source range as text to the current node (no mode rules).
    fn insert_text(&mut self, from: usize, to: usize) {
        let raw = self.slice(from, to);
        let start = self.dom.buf.len() as u32;
        if raw.as_bytes().contains(&b'&') {
            decode_entities_into(raw, &mut self.dom.buf, false);
        } else {
            self.dom.buf.push_str(raw);
        }
        let end = self.dom.buf.len() as u32;
        let parent = self.top();
        let last = self.dom.nodes[parent as usize].last_child;
        if last != NONE
            && last as usize == self.dom.nodes.len() - 1
            && let NodeData::Text(span) = &mut self.dom.nodes[last as usize].data
            && span.end == start
        {
            span.end = end;
            return;
        }
        self.append(NodeData::Text(Span { start, end }));
    }

    /// Parses a start tag whose name begins at `i`; returns the position after it (and after the
    /// content of a raw-text element).
    fn start_tag(&mut self, mut i: usize) -> usize {
        let b = self.src.as_bytes();
        let len = b.len();
        let name_start = i;
        while i < len && !is_ws(b[i]) && b[i] != b'/' && b[i] != b'>' {
            i += 1;
        }
        let name = self.push_lower(self.slice(name_start, i));
        let tag = Tag::from_name(self.dom.s(name));
        let attrs_start = self.dom.attrs.len() as u32;
        let mut self_closing = false;
        loop {
            while i < len && (is_ws(b[i]) || b[i] == b'/') {
                self_closing = b[i] == b'/';
                i += 1;
            }
            if i >= len {
                break;
            }
            if b[i] == b'>' {
                i += 1;
                break;
            }
            self_closing = false;
            let an_start = i;
            i += 1; // the first character may be '='
            while i < len && !is_ws(b[i]) && !matches!(b[i], b'/' | b'>' | b'=') {
                i += 1;
            }
            let an_end = i;
            while i < len && is_ws(b[i]) {
                i += 1;
            }
            let (vs, ve) = if i < len && b[i] == b'=' {
                i += 1;
                while i < len && is_ws(b[i]) {
                    i += 1;
                }
                match b.get(i).copied() {
                    Some(q @ (b'"' | b'\'')) => {
                        let vs = i + 1;
                        let ve = memchr::memchr(q, &b[vs..]).map_or(len, |p| p + vs);
                        i = (ve + 1).min(len);
                        (vs, ve)
                    }
                    _ => {
                        let vs = i;
                        while i < len && !is_ws(b[i]) && b[i] != b'>' {
                            i += 1;
                        }
                        (vs, i)
                    }
                }
            } else {
                (i, i)
            };
            let aname = self.push_lower(self.slice(an_start, an_end));
            let vstart = self.dom.buf.len() as u32;
            let raw = self.slice(vs, ve);
            if raw.as_bytes().contains(&b'&') {
                decode_entities_into(raw, &mut self.dom.buf, true);
            } else {
                self.dom.buf.push_str(raw);
            }
            let value = Span { start: vstart, end: self.dom.buf.len() as u32 };
            // Duplicate attributes: the first wins, as in browsers.
            let kept = &self.dom.attrs[attrs_start as usize..];
            let dup = kept.iter().any(|a| self.dom.s(a.name) == self.dom.s(aname));
            if !dup && kept.len() < MAX_ATTRS {
                self.dom.attrs.push(Attr { name: aname, value });
            }
        }
        let attrs = Span { start: attrs_start, end: self.dom.attrs.len() as u32 };
        self.open_element(tag, name, attrs, self_closing);
        let after =
            if tag.is_raw_text() && !(self_closing && self.foreign > 0) { self.raw_text(tag, name, i) } else { i };
        if self.head_reopened && tag != Tag::Template {
            self.head_reopened = false;
            self.close_head();
        }
        after
    }

    /// Reads the content of a raw-text element starting at `i` up to its end tag.
    fn raw_text(&mut self, tag: Tag, name: Span, i: usize) -> usize {
        let b = self.src.as_bytes();
        let len = b.len();
        let name_len = (name.end - name.start) as usize;
        let mut j = i;
        let (end, after) = loop {
            if tag == Tag::Plaintext {
                break (len, len);
            }
            let Some(p) = memchr::memchr(b'<', &b[j..]).map(|p| p + j) else {
                break (len, len);
            };
            let nm = p + 2;
            if b.get(p + 1) == Some(&b'/')
                && b.get(nm..nm + name_len).is_some_and(|n| n.eq_ignore_ascii_case(self.dom.s(name).as_bytes()))
                && b.get(nm + name_len).is_none_or(|&c| is_ws(c) || c == b'>' || c == b'/')
            {
                let close = memchr::memchr(b'>', &b[nm..]).map_or(len, |q| q + nm + 1);
                break (p, close);
            }
            j = p + 1;
        };
        let content = self.slice(i, end);
        match tag {
            Tag::Title if self.foreign == 0 && self.dom.title.is_none() => {
                let start = self.dom.buf.len() as u32;
                decode_entities_into(content, &mut self.dom.buf, false);
                let span = Span { start, end: self.dom.buf.len() as u32 };
                self.dom.title = Some(span);
                if span.end > span.start {
                    // Also the element's child, as in the DOM (`<title>` is invisible to rendering).
                    self.append(NodeData::Text(span));
                }
            }
            Tag::Script => {
                let is_ld = self
                    .dom
                    .attr(self.top(), "type")
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/ld+json"));
                if is_ld {
                    let start = self.dom.buf.len() as u32;
                    self.dom.buf.push_str(content);
                    self.dom.json_ld.push(Span { start, end: self.dom.buf.len() as u32 });
                }
            }
            Tag::Textarea | Tag::Xmp | Tag::Plaintext => {
                // Visible text, kept as a child so that "full" mode sees it.
                self.text(i, end);
            }
            _ => {}
        }
        // The raw-text element was pushed by open_element; close it.
        if self.stack.last().is_some_and(|o| o.tag == tag) {
            self.stack.pop();
        }
        after
    }

    /// Applies the insertion modes before `<body>` to a start tag: creates the implied `<html>`,
    /// `<head>` and `<body>`, closes the head when body content starts. Returns false when the
    /// tag is to be ignored.
    fn before_body_start(&mut self, tag: Tag) -> bool {
        if self.mode == Mode::InHeadNoscript {
            if matches!(tag, Tag::Link | Tag::Meta | Tag::Style | Tag::Noframes) {
                return true;
            }
            if matches!(tag, Tag::Head | Tag::Noscript) {
                return false;
            }
            // Anything else closes the <noscript> and is handled by "in head".
            self.close_current(Tag::Noscript);
            self.mode = Mode::InHead;
        }
        if self.mode == Mode::InBody {
            return true;
        }
        match tag {
            Tag::Html => {}
            Tag::Head => self.ensure_html(),
            Tag::Body => {
                self.ensure_head();
                self.close_head();
            }
            t if is_head_content(t) || t == Tag::Noscript => {
                self.ensure_head();
                if self.mode == Mode::AfterHead && self.head != NONE {
                    // "after head": the element goes into the head, which is closed again after it.
                    if let NodeData::Element { tag, name, .. } = self.dom.node(self.head).data {
                        self.stack.push(Open { id: self.head, tag, name });
                        self.mode = Mode::InHead;
                        self.head_reopened = true;
                    }
                }
            }
            _ => self.ensure_body(),
        }
        true
    }

    /// Appends and opens an element the source implies but does not write.
    fn synth(&mut self, tag: Tag, name: &str) -> NodeId {
        let name = self.push_lower(name);
        let id = self.append(NodeData::Element { tag, name, attrs: Span::default() });
        self.stack.push(Open { id, tag, name });
        id
    }

    fn ensure_html(&mut self) {
        if self.mode == Mode::BeforeHtml {
            self.synth(Tag::Html, "html");
            self.mode = Mode::BeforeHead;
        }
    }

    fn ensure_head(&mut self) {
        self.ensure_html();
        if self.mode == Mode::BeforeHead {
            self.head = self.synth(Tag::Head, "head");
            self.mode = Mode::InHead;
        }
    }

    /// Closes `<head>` (and a `<noscript>` in it): what follows goes after it.
    fn close_head(&mut self) {
        if matches!(self.mode, Mode::InHead | Mode::InHeadNoscript) {
            if let Some(pos) = self.stack.iter().rposition(|o| o.id == self.head) {
                self.pop_to(pos);
            }
            self.mode = Mode::AfterHead;
        }
    }

    /// Creates whatever of `<html>`, `<head>` and `<body>` is still missing, closing the head.
    fn ensure_body(&mut self) {
        if self.mode == Mode::InBody {
            return;
        }
        self.ensure_head();
        self.close_head();
        self.synth(Tag::Body, "body");
        self.mode = Mode::InBody;
    }

    /// Pops the current node if it is a `tag`.
    fn close_current(&mut self, tag: Tag) {
        if self.stack.last().is_some_and(|o| o.tag == tag) {
            let len = self.stack.len() - 1;
            self.pop_to(len);
        }
    }

    fn open_element(&mut self, tag: Tag, name: Span, attrs: Span, self_closing: bool) {
        if !self.before_body_start(tag) {
            return;
        }
        match tag {
            Tag::Html if self.mode == Mode::BeforeHtml => self.mode = Mode::BeforeHead,
            Tag::Head if self.mode <= Mode::BeforeHead => self.mode = Mode::InHead,
            Tag::Body if self.mode < Mode::InBody => self.mode = Mode::InBody,
            // A second <html>, <head> or <body>: browsers merge its attributes; we ignore it.
            Tag::Html | Tag::Head | Tag::Body => return,
            Tag::Noscript if self.mode == Mode::InHead => self.mode = Mode::InHeadNoscript,
            _ => {}
        }
        if self.foreign == 0 {
            self.implied_ends(tag);
        }
        let id = self.append(NodeData::Element { tag, name, attrs });
        if tag == Tag::Head {
            self.head = id;
        }
        let closes_itself = tag.is_void() || (self_closing && (self.foreign > 0 || tag == Tag::Other));
        if closes_itself {
            return;
        }
        if self.stack.len() >= MAX_DEPTH {
            self.dom.truncated = true;
            // Raw-text elements still need their content skipped; the caller pops only if on top.
            return;
        }
        if matches!(tag, Tag::Svg | Tag::Math) {
            self.foreign += 1;
        }
        self.stack.push(Open { id, tag, name });
    }

    /// Pops the stack down to and including position `pos`.
    fn pop_to(&mut self, pos: usize) {
        while self.stack.len() > pos {
            if let Some(o) = self.stack.pop()
                && matches!(o.tag, Tag::Svg | Tag::Math)
            {
                self.foreign = self.foreign.saturating_sub(1);
            }
        }
    }

    /// Position of the nearest open element matching `want`, searching down from the top and
    /// giving up at an element for which `stop` holds.
    fn find_open(&self, want: impl Fn(Tag) -> bool, stop: impl Fn(Tag) -> bool) -> Option<usize> {
        for (depth, (pos, o)) in self.stack.iter().enumerate().rev().enumerate() {
            if depth >= MAX_END_TAG_SEARCH {
                return None;
            }
            if want(o.tag) {
                return Some(pos);
            }
            if stop(o.tag) {
                return None;
            }
        }
        None
    }

    /// The start tags that close other open elements first.
    fn implied_ends(&mut self, tag: Tag) {
        let table_scope = |t: Tag| matches!(t, Tag::Table | Tag::Html | Tag::Body | Tag::Template);
        let button_scope = |t: Tag| {
            matches!(
                t,
                Tag::Table
                    | Tag::Td
                    | Tag::Th
                    | Tag::Caption
                    | Tag::Button
                    | Tag::Html
                    | Tag::Body
                    | Tag::Template
                    | Tag::Object
                    | Tag::Applet
            )
        };
        if tag.closes_p()
            && let Some(pos) = self.find_open(|t| t == Tag::P, button_scope)
        {
            self.pop_to(pos);
        }
        match tag {
            Tag::Li => {
                if let Some(pos) = self.find_open(|t| t == Tag::Li, Tag::is_list_scope_boundary) {
                    self.pop_to(pos);
                }
            }
            Tag::Dd | Tag::Dt => {
                if let Some(pos) = self.find_open(|t| matches!(t, Tag::Dd | Tag::Dt), Tag::is_list_scope_boundary) {
                    self.pop_to(pos);
                }
            }
            Tag::H1 | Tag::H2 | Tag::H3 | Tag::H4 | Tag::H5 | Tag::H6
                if self.stack.last().is_some_and(|o| o.tag.heading_level().is_some()) =>
            {
                self.stack.pop();
            }
            Tag::Tr => {
                if let Some(pos) = self.find_open(|t| t == Tag::Tr, table_scope) {
                    self.pop_to(pos);
                }
            }
            Tag::Td | Tag::Th => {
                if let Some(pos) =
                    self.find_open(|t| matches!(t, Tag::Td | Tag::Th), |t| table_scope(t) || t == Tag::Tr)
                {
                    self.pop_to(pos);
                }
            }
            Tag::Thead | Tag::Tbody | Tag::Tfoot => {
                if let Some(pos) = self.find_open(|t| matches!(t, Tag::Thead | Tag::Tbody | Tag::Tfoot), table_scope) {
                    self.pop_to(pos);
                }
            }
            Tag::Option | Tag::Optgroup => {
                if let Some(pos) = self.find_open(
                    |t| t == Tag::Option || (tag == Tag::Optgroup && t == Tag::Optgroup),
                    |t| t != Tag::Option && t != Tag::Optgroup,
                ) {
                    self.pop_to(pos);
                }
            }
            Tag::A => {
                if let Some(pos) = self.find_open(|t| t == Tag::A, button_scope) {
                    self.pop_to(pos);
                }
            }
            _ => {}
        }
    }

    /// Parses an end tag whose name begins at `i`; returns the position after its `>`.
    fn end_tag(&mut self, i: usize) -> usize {
        let b = self.src.as_bytes();
        let len = b.len();
        let mut j = i;
        while j < len && !is_ws(b[j]) && b[j] != b'/' && b[j] != b'>' {
            j += 1;
        }
        let after = memchr::memchr(b'>', &b[j..]).map_or(len, |p| p + j + 1);
        let raw_name = self.slice(i, j);
        let tag = Tag::from_name(raw_name);
        if self.mode < Mode::InBody {
            match (self.mode, tag) {
                (Mode::InHeadNoscript, Tag::Noscript) => {
                    self.close_current(Tag::Noscript);
                    self.mode = Mode::InHead;
                    return after;
                }
                (Mode::InHeadNoscript, Tag::Br) => {
                    self.close_current(Tag::Noscript);
                    self.mode = Mode::InHead;
                }
                (Mode::BeforeHead | Mode::InHead, Tag::Head) => {
                    self.ensure_head();
                    self.close_head();
                    return after;
                }
                (Mode::InHead, Tag::Template) => {}
                (_, Tag::Body | Tag::Html | Tag::Br) => {}
                // Any other end tag before <body> is ignored.
                _ => return after,
            }
            if matches!(tag, Tag::Body | Tag::Html | Tag::Br) {
                self.ensure_body();
            }
        }
        match tag {
            Tag::Html | Tag::Body => return after,
            Tag::Br => {
                let name = self.push_lower("br");
                self.open_element(Tag::Br, name, Span::default(), false);
                return after;
            }
            _ => {}
        }
        let special = tag.is_block() || tag == Tag::Table || tag == Tag::Head;
        let pos = if tag == Tag::Li {
            // "list item scope": a `</li>` does not close through a nested list.
            self.find_open(
                |t| t == Tag::Li,
                |t| {
                    matches!(
                        t,
                        Tag::Ul | Tag::Ol | Tag::Table | Tag::Td | Tag::Th | Tag::Html | Tag::Template | Tag::Caption
                    )
                },
            )
        } else if tag == Tag::Other {
            self.find_open_named(raw_name)
        } else if special {
            self.find_open(
                |t| t == tag,
                |t| matches!(t, Tag::Table | Tag::Td | Tag::Th | Tag::Html | Tag::Template | Tag::Caption) && t != tag,
            )
        } else {
            // Inline end tags do not close through block elements (HTML5 "any other end tag").
            self.find_open(|t| t == tag, |t| t.is_block() && t != tag)
        };
        match pos {
            Some(pos) => self.pop_to(pos),
            // `</p>` without an open `<p>` makes an empty one (HTML5 "in body").
            None if tag == Tag::P => {
                let name = self.push_lower("p");
                self.open_element(Tag::P, name, Span::default(), false);
                self.close_current(Tag::P);
            }
            None => {}
        }
        after
    }

    fn find_open_named(&self, raw_name: &str) -> Option<usize> {
        for (depth, (pos, o)) in self.stack.iter().enumerate().rev().enumerate() {
            if depth >= MAX_END_TAG_SEARCH {
                return None;
            }
            if o.tag == Tag::Other && self.dom.s(o.name).eq_ignore_ascii_case(raw_name) {
                return Some(pos);
            }
            if o.tag.is_block() {
                return None;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Dom, NodeData, NodeId, ROOT};
    use super::parse;

    /// A compact dump: `tag(children)` and `"text"`.
    fn dump(dom: &Dom, id: NodeId, out: &mut String) {
        for c in dom.children(id) {
            match dom.node(c).data {
                NodeData::Element { .. } => {
                    out.push_str(dom.name(c));
                    if dom.node(c).first_child != super::NONE {
                        out.push('(');
                        dump(dom, c, out);
                        out.push(')');
                    }
                    out.push(' ');
                }
                NodeData::Text(_) => {
                    out.push_str(&format!("{:?} ", dom.text(c)));
                }
                NodeData::Document => {}
            }
        }
    }

    /// The dump of `<body>`'s content (the parser always makes html, head and body).
    fn tree(src: &str) -> String {
        let dom = parse(src);
        let mut out = String::new();
        let body = (0..dom.len()).find(|&id| dom.name(id) == "body").unwrap_or(ROOT);
        dump(&dom, body, &mut out);
        out.trim_end().replace(" )", ")")
    }

    #[test]
    fn implied_end_tags() {
        assert_eq!(tree("<p>a<p>b<div>c</div>"), r#"p("a") p("b") div("c")"#);
        assert_eq!(tree("<ul><li>a<li>b</ul>"), r#"ul(li("a") li("b"))"#);
        assert_eq!(tree("<table><tr><td>a<td>b<tr><td>c</table>"), r#"table(tr(td("a") td("b")) tr(td("c")))"#);
    }

    #[test]
    fn stray_end_tags_and_inline_do_not_close_blocks() {
        assert_eq!(tree("<div><span>a</div>b"), r#"div(span("a")) "b""#);
        assert_eq!(tree("<div>a</span>b</div>"), r#"div("ab")"#);
        assert_eq!(tree("<div><p>a</section>b</div>"), r#"div(p("ab"))"#);
    }

    #[test]
    fn raw_text_attributes_entities() {
        let dom = parse(
            "<title>T &amp; U</title><script type=application/ld+json>{\"a\":\"<b>\"}</script>\
             <a href='/x?a=1&amp;b=2' data-x=\"q\">l&eacute;</a><script>if (a<b) {}</script>",
        );
        assert_eq!(dom.title.map(|s| dom.s(s)), Some("T & U"));
        assert_eq!(dom.json_ld.len(), 1);
        assert_eq!(dom.s(dom.json_ld[0]), "{\"a\":\"<b>\"}");
        assert_eq!(tree("<a href='/x?a=1&amp;b=2'>l&eacute;</a>"), r#"a("lé")"#);
        let a = (0..dom.len()).find(|&c| dom.name(c) == "a");
        assert_eq!(a.and_then(|a| dom.attr(a, "href")), Some("/x?a=1&b=2"));
    }

    /// Issue 12: a page that never closes `<head>` put its whole body in the invisible head.
    #[test]
    fn content_after_an_unclosed_head_lands_in_body() {
        let src = "<html><head><title>T</title><meta charset=utf-8><div><p>Text</p></div>";
        let dom = parse(src);
        let mut out = String::new();
        dump(&dom, ROOT, &mut out);
        assert_eq!(out.trim_end().replace(" )", ")"), r#"html(head(title("T") meta) body(div(p("Text"))))"#);
        // Implied html/head/body, and head elements after </head> go back into the head.
        let mut out = String::new();
        dump(&parse("x</head><meta a=b><p>y"), ROOT, &mut out);
        assert_eq!(out.trim_end().replace(" )", ")"), r#"html(head body("x" meta p("y")))"#);
        let mut out = String::new();
        dump(&parse("<head></head><link><p>y"), ROOT, &mut out);
        assert_eq!(out.trim_end().replace(" )", ")"), r#"html(head(link) body(p("y")))"#);
        // <noscript> in head holding body content (tracking pixels) ends the head.
        let mut out = String::new();
        dump(&parse("<head><noscript><img src=x></noscript><title>T</title></head><p>y"), ROOT, &mut out);
        assert_eq!(out.trim_end().replace(" )", ")"), r#"html(head(noscript) body(img title("T") p("y")))"#);
    }

    #[test]
    fn deep_nesting_is_capped_not_recursive() {
        let src = "<div>".repeat(100_000) + "x" + &"</div>".repeat(100_000);
        let dom = parse(&src);
        assert!(dom.truncated);
        assert!(dom.len() > 100_000);
    }
}
