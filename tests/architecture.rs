//! The module graph stays free of import loops, and only `broker/` speaks lapin.
//!
//! A file-level graph is built from the `crate::` and `super::` paths each file of `src/`
//! names outside its tests. A name re-exported by a folder's `mod.rs` (`pub use x::Name`)
//! counts as a dependency on the file that defines it, not on the folder, so a facade never
//! hides a loop and never invents one. Cheap (reads text, no compiler), so it runs with the
//! rest of the suite and fails with the loop spelled out.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

fn src_dir() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("src")
}

/// Every `.rs` file under `src/`, as a path relative to it (`wasm/pool.rs`).
fn source_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    out
}

/// The code of a file without its `#[cfg(test)]` module (tests may import anything) and
/// without comments (a doc link to a neighbour is not a dependency on it).
fn non_test_code(text: &str) -> String {
    let code = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    code.lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// The module path of a file: `wasm/pool.rs` -> ["wasm", "pool"]; `wasm/mod.rs` -> ["wasm"].
fn module_of(file: &str) -> Vec<String> {
    let trimmed = file.trim_end_matches(".rs");
    let mut parts: Vec<String> = trimmed.split('/').map(str::to_string).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib" || p == "main") {
        parts.pop();
    }
    parts
}

/// The file that holds a module path, if any.
fn file_of(files: &BTreeSet<String>, module: &[String]) -> Option<String> {
    if module.is_empty() {
        return Some("lib.rs".into());
    }
    let base = module.join("/");
    [format!("{base}.rs"), format!("{base}/mod.rs")].into_iter().find(|f| files.contains(f))
}

/// Paths named after `prefix` (`crate::`, `super::`), with `{a, b::c}` groups expanded.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().last();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        expand(rest, &[], &mut out);
    }
    out
}

fn expand(text: &str, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let head: String = text.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
    let mut segments: Vec<String> = head.split("::").filter(|s| !s.is_empty()).map(str::to_string).collect();
    let mut path = prefix.to_vec();
    path.append(&mut segments);
    let after = &text[head.len()..];
    if head.ends_with("::") && after.starts_with('{') {
        let mut depth = 0;
        let mut start = 1;
        for (i, c) in after.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        expand(after[start..i].trim(), &path, out);
                        break;
                    }
                }
                ',' if depth == 1 => {
                    expand(after[start..i].trim(), &path, out);
                    start = i + 1;
                }
                _ => {}
            }
        }
    } else if !path.is_empty() {
        out.push(path);
    }
}

/// `pub use child::{A, B}` in a folder's `mod.rs`: name -> the child's file.
fn re_exports(files: &BTreeSet<String>, root: &Path) -> HashMap<(String, String), String> {
    let mut map = HashMap::new();
    for file in files.iter().filter(|f| f.ends_with("mod.rs") || *f == "lib.rs") {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let module = module_of(file);
        for line in text.lines().map(str::trim).filter(|l| l.starts_with("pub use ")) {
            let body = line.trim_start_matches("pub use ").trim_end_matches(';');
            let mut paths = Vec::new();
            expand(body, &[], &mut paths);
            for path in paths {
                let (Some(name), Some(child)) = (path.last(), path.first()) else { continue };
                let mut child_module = module.clone();
                child_module.push(child.clone());
                if let Some(target) = file_of(files, &child_module) {
                    let name = name.split(" as ").last().unwrap_or(name).to_string();
                    map.insert((file.clone(), name), target);
                }
            }
        }
    }
    map
}

/// The deepest file a path reaches, following a facade's re-exports to the defining file.
fn resolve(
    files: &BTreeSet<String>,
    exports: &HashMap<(String, String), String>,
    start: Vec<String>,
    path: &[String],
) -> Option<String> {
    let mut module = start;
    let mut current = file_of(files, &module)?;
    for segment in path {
        let mut next = module.clone();
        next.push(segment.clone());
        if let Some(file) = file_of(files, &next) {
            module = next;
            current = file;
            continue;
        }
        if let Some(target) = exports.get(&(current.clone(), segment.clone())) {
            return Some(target.clone());
        }
        break;
    }
    Some(current)
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = src_dir();
    let files: BTreeSet<String> = source_files(&root).into_iter().collect();
    let exports = re_exports(&files, &root);
    let mut graph = BTreeMap::new();
    for file in &files {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let code = non_test_code(&text);
        let code = code.as_str();
        let module = module_of(file);
        let mut deps = BTreeSet::new();
        for path in paths_after(code, "crate::") {
            if let Some(target) = resolve(&files, &exports, Vec::new(), &path) {
                deps.insert(target);
            }
        }
        // `super::` is relative to the module's parent (a `mod.rs` is its own module).
        let parent: Vec<String> = module.iter().take(module.len().saturating_sub(1)).cloned().collect();
        for path in paths_after(code, "super::") {
            if let Some(target) = resolve(&files, &exports, parent.clone(), &path) {
                deps.insert(target);
            }
        }
        deps.remove(file);
        // A facade declares its children; that is not a dependency on them.
        if file.ends_with("mod.rs") || file == "lib.rs" || file == "main.rs" {
            deps.retain(|d| !d.starts_with(&format!("{}/", module.join("/"))) || module.is_empty());
        }
        deps.remove("lib.rs");
        graph.insert(file.clone(), deps);
    }
    graph
}

/// One loop, as the files in order, if the graph has any.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut HashMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(node.to_string(), Mark::Open);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match marks.get(next) {
                Some(Mark::Open) => {
                    let from = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Some(Mark::Done) => {}
                None => {
                    if let Some(cycle) = visit(next, graph, marks, stack) {
                        return Some(cycle);
                    }
                }
            }
        }
        stack.pop();
        marks.insert(node.to_string(), Mark::Done);
        None
    }
    let mut marks = HashMap::new();
    for node in graph.keys() {
        if !marks.contains_key(node)
            && let Some(cycle) = visit(node, graph, &mut marks, &mut Vec::new())
        {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn module_graph_has_no_import_loops() {
    let graph = graph();
    assert!(graph.len() > 40, "found only {} files under src/", graph.len());
    assert!(graph["page.rs"].contains("fetch/mod.rs"), "the graph misses plain imports: {:?}", graph["page.rs"]);
    // Name every loop, not just the first: cut one edge of each found and look again.
    let mut remaining = graph.clone();
    let mut loops = Vec::new();
    while let Some(cycle) = find_cycle(&remaining) {
        if let [from, to, ..] = &cycle[cycle.len() - 2..] {
            remaining.get_mut(from).map(|deps| deps.remove(to));
        }
        loops.push(cycle.join(" -> "));
    }
    assert!(loops.is_empty(), "import loops:\n{}", loops.join("\n"));
}

#[test]
fn only_the_broker_speaks_lapin() {
    let root = src_dir();
    let offenders: Vec<String> = source_files(&root)
        .into_iter()
        .filter(|f| !f.starts_with("broker/"))
        .filter(|f| {
            let text = std::fs::read_to_string(root.join(f)).unwrap();
            let code = non_test_code(&text);
            paths_after(&code, "lapin::").len() + code.matches("use lapin").count() > 0
        })
        .collect();
    assert!(offenders.is_empty(), "lapin used outside src/broker/: {offenders:?}");
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let mut graph = BTreeMap::new();
    graph.insert("a.rs".to_string(), BTreeSet::from(["b.rs".to_string()]));
    graph.insert("b.rs".to_string(), BTreeSet::from(["c.rs".to_string()]));
    graph.insert("c.rs".to_string(), BTreeSet::from(["a.rs".to_string()]));
    assert_eq!(find_cycle(&graph).map(|c| c.len()), Some(4));
    graph.insert("c.rs".to_string(), BTreeSet::new());
    assert_eq!(find_cycle(&graph), None);
}
