//! Iterative subtree traversal over the arena tree: the only tree walk in the crate, so no pass
//! can overflow the stack however deep the page nests.

use crate::html::{Dom, NONE, NodeId};

/// A step of a depth-first walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Entering a node (before its children).
    Enter(NodeId),
    /// Leaving an element (after its children). Not emitted for skipped nodes.
    Leave(NodeId),
}

/// Walks the subtree of `root` (inclusive) depth-first. `f` returns `false` on `Enter` to skip the
/// node's children (its `Leave` is then still emitted).
pub(crate) fn walk(dom: &Dom, root: NodeId, mut f: impl FnMut(Step) -> bool) {
    let mut cur = root;
    loop {
        let descend = f(Step::Enter(cur));
        let first = dom.node(cur).first_child;
        if descend && first != NONE {
            cur = first;
            continue;
        }
        // Leave `cur`, then climb until a node with a next sibling (or the root).
        loop {
            f(Step::Leave(cur));
            if cur == root {
                return;
            }
            let next = dom.node(cur).next_sibling;
            if next != NONE {
                cur = next;
                break;
            }
            cur = dom.node(cur).parent;
            if cur == NONE {
                return;
            }
        }
    }
}
