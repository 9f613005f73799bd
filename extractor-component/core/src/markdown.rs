//! Markdown (CommonMark with GFM tables) of the selected content: headings, paragraphs, nested
//! lists, links, emphasis, block quotes, inline and fenced code, images and tables. Honours the
//! scorer's `drop` mask. Like every pass it walks iteratively; a table is rendered by a separate
//! flat walk over its rows, and tables that hold tables (layout tables) are rendered as blocks.

use crate::html::{Dom, NodeData, NodeId, Tag};
use crate::url::{Base, resolve};
use crate::walk::{Step, walk};

/// One open inline marker (`**`, `*`, `` ` ``, or a link) whose opening is written lazily, at the
/// first visible character, so that empty or whitespace-only elements leave no stray markers.
struct Mark {
    open: String,
    close: String,
    written: bool,
}

/// Builds the Markdown text.
struct Md<'a> {
    out: String,
    /// Line prefixes of the open containers (`> ` for quotes, indentation for list items).
    prefix: Vec<String>,
    /// Pending first-line marker of a list item (`- `, `1. `).
    bullet: Option<String>,
    /// Blank lines (2) or a line break (1) owed before the next text.
    breaks: u8,
    space: bool,
    marks: Vec<Mark>,
    /// Open lists: ordered?, next number.
    lists: Vec<(bool, u32)>,
    pre: u32,
    base: Option<&'a Base<'a>>,
}

impl<'a> Md<'a> {
    fn new(base: Option<&'a Base<'a>>) -> Md<'a> {
        Md {
            out: String::new(),
            prefix: Vec::new(),
            bullet: None,
            breaks: 0,
            space: false,
            marks: Vec::new(),
            lists: Vec::new(),
            pre: 0,
            base,
        }
    }

    fn block(&mut self, n: u8) {
        if !self.out.is_empty() {
            self.breaks = self.breaks.max(n);
        }
        self.space = false;
    }

    fn start_line(&mut self) {
        for p in &self.prefix {
            self.out.push_str(p);
        }
    }

    /// Writes owed breaks, prefixes, bullet and lazily opened markers before visible content.
    fn flush(&mut self) {
        if self.breaks > 0 {
            while self.out.ends_with(' ') {
                self.out.pop();
            }
            for i in 0..self.breaks {
                self.out.push('\n');
                if i + 1 < self.breaks {
                    // Blank line inside a quote keeps its `>`.
                    let quote: String = self.prefix.iter().filter(|p| p.starts_with('>')).cloned().collect();
                    self.out.push_str(quote.trim_end());
                }
            }
            self.start_line();
            self.breaks = 0;
            self.space = false;
        } else if self.out.is_empty() {
            self.start_line();
        }
        if let Some(b) = self.bullet.take() {
            // The bullet replaces the item's own indentation on its first line.
            if let Some(last) = self.prefix.last() {
                let indent = last.len();
                for _ in 0..indent {
                    if self.out.ends_with(' ') {
                        self.out.pop();
                    }
                }
            }
            self.out.push_str(&b);
            self.space = false;
        }
        if self.space {
            if !self.out.ends_with([' ', '\n']) && !self.out.is_empty() {
                self.out.push(' ');
            }
            self.space = false;
        }
        for m in &mut self.marks {
            if !m.written {
                self.out.push_str(&m.open);
                m.written = true;
            }
        }
    }

    fn text(&mut self, s: &str) {
        if self.pre > 0 {
            if !s.is_empty() {
                self.flush_pre_text(s);
            }
            return;
        }
        let in_code = self.marks.iter().any(|m| m.open == "`");
        for ch in s.chars() {
            if ch.is_whitespace() {
                self.space = true;
                continue;
            }
            self.flush();
            let special = matches!(ch, '*' | '_' | '`' | '[' | ']' | '\\' | '<')
                || (matches!(ch, '#' | '>' | '|') && self.at_line_start());
            if !in_code && special {
                self.out.push('\\');
            }
            self.out.push(ch);
        }
    }

    fn at_line_start(&self) -> bool {
        let line = self.out.rsplit('\n').next().unwrap_or("");
        line.trim_start_matches(['>', ' ', '-']).is_empty()
    }

    fn flush_pre_text(&mut self, s: &str) {
        for (i, line) in s.split('\n').enumerate() {
            if i > 0 {
                self.out.push('\n');
                self.start_line();
            }
            self.out.push_str(line.trim_end_matches('\r'));
        }
    }

    fn open_mark(&mut self, open: &str, close: String) {
        self.marks.push(Mark { open: open.to_owned(), close, written: false });
    }

    fn close_mark(&mut self) {
        if let Some(m) = self.marks.pop()
            && m.written
        {
            self.out.push_str(&m.close);
        }
    }

    fn finish(self) -> String {
        let mut s = self.out;
        while s.ends_with([' ', '\n']) {
            s.pop();
        }
        s
    }
}

/// Renders the subtree of `root` as Markdown.
pub(crate) fn markdown_of(dom: &Dom, root: NodeId, drop: &[bool], base: Option<&Base<'_>>) -> String {
    let mut md = Md::new(base);
    let raw = crate::render::text_bytes(dom, root);
    md.out.reserve(raw + raw / 4);
    let dropped = |id: NodeId| drop.get(id as usize).copied().unwrap_or(false);
    walk(dom, root, |step| match step {
        Step::Enter(id) => {
            if dropped(id) {
                return false;
            }
            match dom.node(id).data {
                NodeData::Text(_) => md.text(dom.text(id)),
                NodeData::Element { tag, .. } => return enter(dom, id, tag, &mut md, drop),
                NodeData::Document => {}
            }
            true
        }
        Step::Leave(id) => {
            if !dropped(id)
                && let Some(tag) = dom.tag(id)
            {
                leave(tag, &mut md);
            }
            true
        }
    });
    md.finish()
}

/// Elements rendered as paragraphs: a blank line before and after.
fn paragraph_like(tag: Tag) -> bool {
    matches!(
        tag,
        Tag::P
            | Tag::Div
            | Tag::Section
            | Tag::Article
            | Tag::Main
            | Tag::Figure
            | Tag::Figcaption
            | Tag::Header
            | Tag::Footer
            | Tag::Address
            | Tag::Details
            | Tag::Summary
            | Tag::Dl
            | Tag::Center
            | Tag::Form
            | Tag::Hgroup
            | Tag::Caption
    )
}

/// Handles an element's start; returns whether to walk its children.
fn enter(dom: &Dom, id: NodeId, tag: Tag, md: &mut Md<'_>, drop: &[bool]) -> bool {
    if let Some(level) = tag.heading_level() {
        md.block(2);
        md.flush();
        for _ in 0..level {
            md.out.push('#');
        }
        md.out.push(' ');
        return true;
    }
    match tag {
        t if paragraph_like(t) => md.block(2),
        Tag::Dt | Tag::Dd => md.block(1),
        Tag::Br => {
            if md.pre > 0 {
                md.out.push('\n');
            } else {
                md.block(1);
            }
        }
        Tag::Hr => {
            md.block(2);
            md.flush();
            md.out.push_str("---");
            md.block(2);
        }
        Tag::Ul | Tag::Ol | Tag::Menu => {
            md.block(if md.lists.is_empty() { 2 } else { 1 });
            let start = dom.attr(id, "start").and_then(|s| s.trim().parse().ok()).unwrap_or(1);
            md.lists.push((tag == Tag::Ol, start));
        }
        Tag::Li => {
            md.block(1);
            let bullet = match md.lists.last_mut() {
                Some((true, n)) => {
                    let b = format!("{n}. ");
                    *n += 1;
                    b
                }
                _ => "- ".to_owned(),
            };
            md.prefix.push(" ".repeat(bullet.len()));
            md.bullet = Some(bullet);
        }
        Tag::Blockquote => {
            md.block(2);
            md.prefix.push("> ".to_owned());
        }
        Tag::Pre => {
            md.block(2);
            md.flush();
            let lang = code_language(dom, id);
            md.out.push_str("```");
            md.out.push_str(&lang);
            md.out.push('\n');
            md.start_line();
            md.pre += 1;
        }
        Tag::Code | Tag::Kbd | Tag::Samp | Tag::Tt if md.pre == 0 => {
            md.open_mark("`", "`".to_owned());
        }
        Tag::Strong | Tag::B if md.pre == 0 => md.open_mark("**", "**".to_owned()),
        Tag::Em | Tag::I | Tag::Cite | Tag::Dfn | Tag::Var if md.pre == 0 => md.open_mark("*", "*".to_owned()),
        Tag::Del | Tag::S | Tag::Strike if md.pre == 0 => md.open_mark("~~", "~~".to_owned()),
        Tag::A if md.pre == 0 => {
            let href = dom.attr(id, "href").and_then(|h| resolve(md.base, h));
            match href {
                Some(url) => md.open_mark("[", format!("]({})", url.replace(' ', "%20").replace(')', "%29"))),
                None => md.open_mark("", String::new()),
            }
        }
        Tag::Img => {
            let src = dom.attr(id, "src").or_else(|| dom.attr(id, "data-src"));
            if let Some(url) = src.and_then(|s| resolve(md.base, s)) {
                let alt = crate::render::collapse(dom.attr(id, "alt").unwrap_or("")).replace(['[', ']'], "");
                md.flush();
                md.out.push_str(&format!("![{alt}]({})", url.replace(' ', "%20").replace(')', "%29")));
            }
        }
        Tag::Table => {
            if is_data_table(dom, id, drop) {
                md.block(2);
                md.flush();
                let table = table_markdown(dom, id, drop, md.base);
                let prefix: String = md.prefix.concat();
                md.out.push_str(&table.replace('\n', &format!("\n{prefix}")));
                md.block(2);
                return false;
            }
            md.block(2);
        }
        Tag::Tr | Tag::Td | Tag::Th => md.block(2),
        _ => {}
    }
    true
}

fn leave(tag: Tag, md: &mut Md<'_>) {
    if tag.heading_level().is_some() {
        md.block(2);
        return;
    }
    match tag {
        t if paragraph_like(t) || matches!(t, Tag::Table | Tag::Tr | Tag::Td | Tag::Th) => md.block(2),
        Tag::Dt | Tag::Dd => md.block(1),
        Tag::Ul | Tag::Ol | Tag::Menu => {
            md.lists.pop();
            md.block(if md.lists.is_empty() { 2 } else { 1 });
        }
        Tag::Li => {
            md.prefix.pop();
            md.bullet = None;
            md.block(1);
        }
        Tag::Blockquote => {
            md.prefix.pop();
            md.block(2);
        }
        Tag::Pre => {
            md.pre = md.pre.saturating_sub(1);
            if !md.out.ends_with('\n') {
                md.out.push('\n');
                md.start_line();
            }
            md.out.push_str("```");
            md.block(2);
        }
        Tag::Code | Tag::Kbd | Tag::Samp | Tag::Tt if md.pre == 0 => md.close_mark(),
        Tag::Strong
        | Tag::B
        | Tag::Em
        | Tag::I
        | Tag::Cite
        | Tag::Dfn
        | Tag::Var
        | Tag::Del
        | Tag::S
        | Tag::Strike
        | Tag::A
            if md.pre == 0 =>
        {
            md.close_mark()
        }
        _ => {}
    }
}

/// `language-rust` / `lang-js` / `highlight-python` classes on `<pre>` or its `<code>`.
fn code_language(dom: &Dom, pre: NodeId) -> String {
    let code = dom.children(pre).find(|&c| dom.tag(c) == Some(Tag::Code));
    for id in [Some(pre), code].into_iter().flatten() {
        if let Some(class) = dom.attr(id, "class") {
            for c in class.split_ascii_whitespace() {
                for p in ["language-", "lang-", "highlight-"] {
                    if let Some(l) = c.strip_prefix(p)
                        && l.chars().all(|ch| ch.is_ascii_alphanumeric() || "+-#_".contains(ch))
                    {
                        return l.to_owned();
                    }
                }
            }
        }
    }
    String::new()
}

/// Rows of a table (skipping nested tables' rows), each a list of cells.
fn table_rows(dom: &Dom, table: NodeId, drop: &[bool]) -> Vec<Vec<NodeId>> {
    let mut rows = Vec::new();
    walk(dom, table, |step| {
        if let Step::Enter(id) = step {
            if drop.get(id as usize).copied().unwrap_or(false) {
                return false;
            }
            match dom.tag(id) {
                Some(Tag::Table) if id != table => return false,
                Some(Tag::Tr) => {
                    rows.push(
                        dom.children(id)
                            .filter(|&c| matches!(dom.tag(c), Some(Tag::Td | Tag::Th)))
                            .filter(|&c| !drop.get(c as usize).copied().unwrap_or(false))
                            .collect(),
                    );
                    return false;
                }
                _ => {}
            }
        }
        true
    });
    rows
}

/// A data table: no nested tables, no block-heavy cells, at least one row with 2+ cells.
fn is_data_table(dom: &Dom, table: NodeId, drop: &[bool]) -> bool {
    let end = dom.subtree_end(table);
    for id in table + 1..=end {
        if matches!(
            dom.tag(id),
            Some(Tag::Table | Tag::Ul | Tag::Ol | Tag::Pre | Tag::Blockquote | Tag::H1 | Tag::H2 | Tag::H3)
        ) {
            return false;
        }
    }
    table_rows(dom, table, drop).iter().any(|r| r.len() >= 2)
}

/// A GFM table. The first row is the header (GFM requires one).
fn table_markdown(dom: &Dom, table: NodeId, drop: &[bool], base: Option<&Base<'_>>) -> String {
    let rows = table_rows(dom, table, drop);
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        out.push('|');
        for c in 0..width {
            let cell = row.get(c).map(|&id| markdown_of(dom, id, drop, base)).unwrap_or_default();
            let cell = cell
                .split('\n')
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("<br>")
                .replace('|', "\\|");
            out.push(' ');
            out.push_str(&cell);
            out.push_str(" |");
        }
        out.push('\n');
        if i == 0 {
            out.push('|');
            for _ in 0..width {
                out.push_str(" --- |");
            }
            out.push('\n');
        }
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use crate::html::{ROOT, parse};
    use crate::url::parse_base;

    fn md(html: &str) -> String {
        let dom = parse(html);
        let drop = vec![false; dom.len() as usize];
        let base = parse_base("https://e.org/a/b");
        super::markdown_of(&dom, ROOT, &drop, base.as_ref())
    }

    #[test]
    fn nested_lists_quotes_and_inline() {
        assert_eq!(
            md("<ul><li>one<ul><li>inner <b>bold </b>x</li></ul></li><li>two</li></ul>"),
            "- one\n  - inner **bold** x\n- two"
        );
        assert_eq!(md("<blockquote><p>a</p><p>b</p></blockquote>"), "> a\n>\n> b");
        assert_eq!(
            md("<p>x<i> </i>y <a href='c'>link</a> <a href='#'>top</a></p>"),
            "x y [link](https://e.org/a/c) top"
        );
        assert_eq!(md("<h2>T *1*</h2><p># not a heading</p>"), "## T \\*1\\*\n\n\\# not a heading");
        assert_eq!(md("<p>a<br>b</p><hr><pre>  x\n  y</pre>"), "a\nb\n\n---\n\n```\n  x\n  y\n```");
    }
}
