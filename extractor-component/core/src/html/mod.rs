//! A small, fast, forgiving HTML parser into a flat arena tree ([`Dom`]). It owns tokenizing,
//! entity decoding and a simplified HTML5 tree construction (implied end tags, void and raw-text
//! elements); it does not score or render anything (see `crate::content` and `crate::render`).
//!
//! Why our own: the extractor must do ~300 pages per CPU-second inside WASM, which leaves about
//! 3 ms for a 186 KB page including scoring; html5ever-based trees cost about that for the parse
//! alone. The tree is also built without recursion and with a depth cap, so hostile nesting cannot
//! overflow the stack or go quadratic.

mod dump;
mod entities;
mod parse;
mod tags;

pub(crate) use dump::html5lib_tree;
pub(crate) use entities::decode_entities_into;
pub(crate) use parse::parse;
pub(crate) use tags::Tag;

/// Index of a node in [`Dom::nodes`].
pub(crate) type NodeId = u32;

/// Marks "no node" in the sibling/child links.
pub(crate) const NONE: NodeId = u32::MAX;

/// The document root's id (always present).
pub(crate) const ROOT: NodeId = 0;

/// A byte range into [`Dom::buf`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) end: u32,
}

/// One attribute: lower-cased name and decoded value, both in [`Dom::buf`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attr {
    pub(crate) name: Span,
    pub(crate) value: Span,
}

/// What a node is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum NodeData {
    /// The document root.
    Document,
    /// An element: its tag, its lower-cased name and its attributes (`attrs` indexes
    /// [`Dom::attrs`]).
    Element { tag: Tag, name: Span, attrs: Span },
    /// Text with entities decoded, whitespace as in the source.
    Text(Span),
}

/// One node with its tree links.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node {
    pub(crate) parent: NodeId,
    pub(crate) first_child: NodeId,
    pub(crate) last_child: NodeId,
    pub(crate) next_sibling: NodeId,
    pub(crate) data: NodeData,
}

/// A parsed page. Nodes are stored in document order (a node's id is larger than its parent's and
/// than every node before it in source order), which lets most passes be plain loops over ids.
#[derive(Debug, Default)]
pub(crate) struct Dom {
    pub(crate) nodes: Vec<Node>,
    pub(crate) attrs: Vec<Attr>,
    /// All decoded text and attribute strings.
    pub(crate) buf: String,
    /// `<title>` text.
    pub(crate) title: Option<Span>,
    /// Bodies of `<script type="application/ld+json">` blocks.
    pub(crate) json_ld: Vec<Span>,
    /// True when the element-count or depth cap was hit (the tree is then a truncated or flattened
    /// view of the page).
    pub(crate) truncated: bool,
}

impl Dom {
    /// The string behind a span.
    pub(crate) fn s(&self, span: Span) -> &str {
        self.buf.get(span.start as usize..span.end as usize).unwrap_or("")
    }

    pub(crate) fn node(&self, id: NodeId) -> &Node {
        // Ids always come from this Dom; index 0 (the root) always exists.
        &self.nodes[id as usize]
    }

    /// The element's tag, or `None` for text and the root.
    pub(crate) fn tag(&self, id: NodeId) -> Option<Tag> {
        match self.node(id).data {
            NodeData::Element { tag, .. } => Some(tag),
            _ => None,
        }
    }

    /// The element's lower-cased name ("" for non-elements).
    pub(crate) fn name(&self, id: NodeId) -> &str {
        match self.node(id).data {
            NodeData::Element { name, .. } => self.s(name),
            _ => "",
        }
    }

    /// Text of a text node ("" otherwise).
    pub(crate) fn text(&self, id: NodeId) -> &str {
        match self.node(id).data {
            NodeData::Text(span) => self.s(span),
            _ => "",
        }
    }

    /// The element's attributes.
    pub(crate) fn attrs(&self, id: NodeId) -> &[Attr] {
        match self.node(id).data {
            NodeData::Element { attrs, .. } => self.attrs.get(attrs.start as usize..attrs.end as usize).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// Value of the attribute `name` (lower-case), if present.
    pub(crate) fn attr(&self, id: NodeId, name: &str) -> Option<&str> {
        self.attrs(id).iter().find(|a| self.s(a.name) == name).map(|a| self.s(a.value))
    }

    /// Children of `id`, in order.
    pub(crate) fn children(&self, id: NodeId) -> Children<'_> {
        Children { dom: self, next: self.node(id).first_child }
    }

    /// The last node of `id`'s subtree in document order (`id` itself when it has no children).
    /// Because ids are in document order, the subtree of `id` is exactly `id..=subtree_end(id)`.
    pub(crate) fn subtree_end(&self, id: NodeId) -> NodeId {
        let mut cur = id;
        loop {
            let last = self.node(cur).last_child;
            if last == NONE {
                return cur;
            }
            cur = last;
        }
    }

    /// Number of nodes.
    pub(crate) fn len(&self) -> u32 {
        self.nodes.len() as u32
    }
}

/// Iterator over a node's children.
pub(crate) struct Children<'a> {
    dom: &'a Dom,
    next: NodeId,
}

impl Iterator for Children<'_> {
    type Item = NodeId;

    fn next(&mut self) -> Option<NodeId> {
        if self.next == NONE {
            return None;
        }
        let cur = self.next;
        self.next = self.dom.node(cur).next_sibling;
        Some(cur)
    }
}
