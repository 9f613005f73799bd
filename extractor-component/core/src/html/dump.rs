//! Serialises a parsed `Dom` in the html5lib tree-construction test format (one node per line,
//! `| ` plus two spaces per depth, attributes sorted as children), so that the conformance test
//! (`tests/html5lib.rs`) can compare the parser with the HTML5 tree-construction rules. Test and
//! debugging aid only: nothing in extraction calls it.

use super::{NodeData, NodeId, ROOT, Tag};

/// The html5lib dump of `src` parsed by [`super::parse`].
pub(crate) fn html5lib_tree(src: &str) -> String {
    let dom = super::parse(src);
    let mut out = String::new();
    // (node, depth, namespace of the node: None = html, Some("svg ") / Some("math "))
    let mut stack: Vec<(NodeId, usize, Option<&'static str>)> = Vec::new();
    let push_children = |stack: &mut Vec<(NodeId, usize, Option<&'static str>)>, id: NodeId, depth, ns| {
        let kids: Vec<NodeId> = dom.children(id).collect();
        for &c in kids.iter().rev() {
            stack.push((c, depth, ns));
        }
    };
    push_children(&mut stack, ROOT, 0, None);
    while let Some((id, depth, parent_ns)) = stack.pop() {
        let indent = "  ".repeat(depth);
        match dom.node(id).data {
            NodeData::Text(_) => {
                out.push_str(&format!("| {indent}\"{}\"\n", dom.text(id)));
            }
            NodeData::Element { tag, .. } => {
                let ns = match (parent_ns, tag) {
                    (None, Tag::Svg) => Some("svg "),
                    (None, Tag::Math) => Some("math "),
                    // Inside foreign content, HTML integration points hold HTML again.
                    (Some("svg "), _) if matches!(dom.name(id), "foreignobject" | "desc") => Some("svg "),
                    (ns, _) => ns,
                };
                let name = dom.name(id);
                out.push_str(&format!("| {indent}<{}{name}>\n", ns.unwrap_or("")));
                let mut attrs: Vec<(&str, &str)> =
                    dom.attrs(id).iter().map(|a| (dom.s(a.name), dom.s(a.value))).collect();
                attrs.sort_unstable();
                for (n, v) in attrs {
                    let n = match n.split_once(':') {
                        Some((p @ ("xlink" | "xml" | "xmlns"), local)) if ns.is_some() => format!("{p} {local}"),
                        _ => n.to_owned(),
                    };
                    out.push_str(&format!("| {indent}  {n}=\"{v}\"\n"));
                }
                let child_ns =
                    if ns == Some("svg ") && matches!(name, "foreignobject" | "desc" | "title") { None } else { ns };
                if tag == Tag::Template {
                    out.push_str(&format!("| {indent}  content\n"));
                    push_children(&mut stack, id, depth + 2, child_ns);
                } else {
                    push_children(&mut stack, id, depth + 1, child_ns);
                }
            }
            NodeData::Document => {}
        }
    }
    out
}
