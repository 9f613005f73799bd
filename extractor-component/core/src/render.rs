//! Plain-text rendering of a subtree: whitespace collapsed, one line per block, `<pre>` kept as is,
//! table cells separated by spaces. Nodes flagged in the `drop` mask are left out. Markdown lives in
//! `markdown.rs`; this file knows only text.

use crate::html::{Dom, NodeData, NodeId, Tag};
use crate::walk::{Step, walk};

/// Accumulates text with collapsed whitespace and pending line breaks.
#[derive(Debug, Default)]
pub(crate) struct TextSink {
    pub(crate) out: String,
    space: bool,
    breaks: u8,
}

impl TextSink {
    /// Appends text, collapsing runs of whitespace to one space.
    pub(crate) fn text(&mut self, s: &str) {
        for ch in s.chars() {
            if ch.is_whitespace() {
                self.space = true;
            } else {
                self.flush();
                self.out.push(ch);
            }
        }
    }

    /// Appends text verbatim (inside `<pre>`), only normalising line ends.
    pub(crate) fn raw(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        self.flush();
        self.out.extend(s.chars().filter(|&c| c != '\r'));
    }

    /// Requests `n` line breaks (1 = new line, 2 = blank line) before the next text.
    pub(crate) fn newline(&mut self, n: u8) {
        if !self.out.is_empty() {
            self.breaks = self.breaks.max(n);
        }
    }

    /// Requests a separating space before the next text.
    pub(crate) fn space(&mut self) {
        self.space = true;
    }

    fn flush(&mut self) {
        if self.breaks > 0 {
            while self.out.ends_with(' ') {
                self.out.pop();
            }
            for _ in 0..self.breaks {
                self.out.push('\n');
            }
        } else if self.space && !self.out.is_empty() && !self.out.ends_with('\n') {
            self.out.push(' ');
        }
        self.breaks = 0;
        self.space = false;
    }

    /// The text, trimmed.
    pub(crate) fn finish(self) -> String {
        let t = self.out.trim_end();
        t.to_owned()
    }
}

/// Renders the subtree of `root` as text, leaving out nodes with `drop[id]` set.
pub(crate) fn text_of(dom: &Dom, root: NodeId, drop: &[bool]) -> String {
    let mut sink = TextSink { out: String::with_capacity(text_bytes(dom, root)), ..TextSink::default() };
    let mut pre_depth = 0u32;
    walk(dom, root, |step| match step {
        Step::Enter(id) => {
            if drop.get(id as usize).copied().unwrap_or(false) {
                return false;
            }
            match dom.node(id).data {
                NodeData::Text(_) => {
                    if pre_depth > 0 {
                        sink.raw(dom.text(id));
                    } else {
                        sink.text(dom.text(id));
                    }
                }
                NodeData::Element { tag, .. } => {
                    if tag == Tag::Pre {
                        pre_depth += 1;
                    }
                    block_break(&mut sink, tag);
                }
                NodeData::Document => {}
            }
            true
        }
        Step::Leave(id) => {
            if drop.get(id as usize).copied().unwrap_or(false) {
                return true;
            }
            if let Some(tag) = dom.tag(id) {
                if tag == Tag::Pre {
                    pre_depth = pre_depth.saturating_sub(1);
                }
                block_break(&mut sink, tag);
            }
            true
        }
    });
    sink.finish()
}

/// Bytes of text in the subtree: an upper bound of the output's size (whitespace collapses),
/// reserved up front so that the string does not grow by doubling to twice its length.
pub(crate) fn text_bytes(dom: &Dom, root: NodeId) -> usize {
    let end = dom.subtree_end(root);
    (root..=end).map(|id| dom.text(id).len()).sum::<usize>()
}

fn block_break(sink: &mut TextSink, tag: Tag) {
    match tag {
        Tag::Td | Tag::Th => sink.space(),
        Tag::Br | Tag::Tr | Tag::Li | Tag::Dt | Tag::Dd | Tag::Option => sink.newline(1),
        t if t.is_block() => sink.newline(1),
        Tag::Img | Tag::Input => sink.space(),
        _ => {}
    }
}

/// Collapses whitespace in `s` (for titles, link texts, metadata values).
pub(crate) fn collapse(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}
