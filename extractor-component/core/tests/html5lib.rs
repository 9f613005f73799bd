//! HTML5 conformance of the core's own parser: runs the html5lib tree-construction suite
//! (`../shared/conformance/html5lib-tree-construction`, found at run time from
//! `CARGO_MANIFEST_DIR`) on every non-fragment case that does not need scripting, compares the
//! tree in html5lib's dump format, prints the pass rate per file and overall, and asserts a floor
//! so the parser cannot regress. Skips with a message when the suite is absent (it lives beside the
//! repository, not in it).
//!
//! Exceptions by design, removed from the expected trees before comparing: comments and the
//! DOCTYPE. The extractor never stores them (they hold no content), and keeping them would cost
//! arena space on every page for nothing the extractor reads. Likewise the text inside
//! `<script>`, `<style>`, `<iframe>`, `<noembed>` and `<noframes>`: never rendered, often half of
//! a page's bytes, so the parser skips it instead of copying it (JSON-LD scripts are kept aside).

// In tests a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

/// Pass rate below which the test fails (the measured rate, rounded down; raise it with the parser).
const FLOOR: f64 = 0.62;

struct Case {
    data: String,
    expected: String,
}

fn suite_dir() -> Option<PathBuf> {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    let dir = PathBuf::from(manifest).join("../../../shared/conformance/html5lib-tree-construction");
    dir.is_dir().then_some(dir)
}

/// The cases of one `.dat` file that apply: no `#document-fragment`, no `#script-on`.
fn cases(text: &str) -> Vec<Case> {
    let mut out = Vec::new();
    for block in text.split("\n#data\n").map(|b| b.strip_prefix("#data\n").unwrap_or(b)) {
        let Some((data, rest)) = block.split_once("\n#errors\n") else { continue };
        if rest.contains("\n#document-fragment\n") || rest.starts_with("#document-fragment\n") {
            continue;
        }
        if rest.contains("#script-on\n") {
            continue;
        }
        let Some((_, doc)) = rest.split_once("#document\n") else { continue };
        // Group lines into nodes: a node starts with "| ", other lines continue it (newlines in text).
        let mut nodes: Vec<String> = Vec::new();
        for line in doc.trim_end_matches('\n').split('\n') {
            match line.strip_prefix("| ") {
                Some(l) => nodes.push(l.to_owned()),
                None => {
                    if let Some(last) = nodes.last_mut() {
                        last.push('\n');
                        last.push_str(line);
                    }
                }
            }
        }
        let mut kept: Vec<String> = Vec::new();
        // Depth of an open raw-text element whose text children are dropped.
        let mut raw_depth: Option<usize> = None;
        for n in nodes {
            let t = n.trim_start();
            let depth = n.len() - t.len();
            if raw_depth.is_some_and(|d| depth <= d) {
                raw_depth = None;
            }
            if t.starts_with("<!-- ") || t.starts_with("<!DOCTYPE") {
                continue;
            }
            if raw_depth.is_some_and(|d| depth == d + 2) && t.starts_with('"') {
                continue;
            }
            if matches!(t, "<script>" | "<style>" | "<iframe>" | "<noembed>" | "<noframes>") {
                raw_depth = Some(depth);
            }
            kept.push(n);
        }
        let mut expected = String::new();
        for n in kept {
            expected.push_str("| ");
            expected.push_str(&n);
            expected.push('\n');
        }
        // Removing a comment can leave two text nodes side by side, which a parser never makes.
        out.push(Case { data: data.to_owned(), expected: merge_adjacent_text(&expected) });
    }
    out
}

/// Joins `"a"` and `"b"` on consecutive lines at the same depth into `"ab"`.
fn merge_adjacent_text(dump: &str) -> String {
    let mut nodes: Vec<String> = Vec::new();
    for node in dump.split("\n| ").map(|n| n.strip_prefix("| ").unwrap_or(n).trim_end_matches('\n')) {
        if node.is_empty() {
            continue;
        }
        if let Some(prev) = nodes.last_mut() {
            let indent = |s: &str| s.len() - s.trim_start_matches(' ').len();
            if prev.trim_start().starts_with('"')
                && node.trim_start().starts_with('"')
                && indent(prev) == indent(node)
                && prev.ends_with('"')
            {
                prev.pop();
                prev.push_str(node.trim_start().strip_prefix('"').unwrap_or(node));
                continue;
            }
        }
        nodes.push(node.to_owned());
    }
    nodes.iter().map(|n| format!("| {n}\n")).collect()
}

#[test]
fn html5lib_tree_construction() {
    let Some(dir) = suite_dir() else {
        eprintln!(
            "SKIPPED: html5lib tree-construction suite not found at ../shared/conformance (outside the repository)"
        );
        return;
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dat"))
        .collect();
    files.sort();
    let (mut total, mut passed) = (0usize, 0usize);
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let (mut t, mut p) = (0, 0);
        for case in cases(&text) {
            t += 1;
            let got = riptide_extractor::html5lib_tree(&case.data);
            if merge_adjacent_text(&got) == case.expected {
                p += 1;
            } else if failures.len() < 400 {
                failures.push(format!("#data\n{}\n#expected\n{}#got\n{}", case.data, case.expected, got));
            }
        }
        println!("{:<45} {p:>4}/{t:<4}", file.file_name().unwrap().to_string_lossy());
        total += t;
        passed += p;
    }
    if let Ok(path) = std::env::var("HTML5LIB_FAILURES") {
        std::fs::write(path, failures.join("\n\n")).unwrap();
    }
    let rate = passed as f64 / total.max(1) as f64;
    println!("html5lib tree construction: {passed}/{total} = {:.1} % (floor {:.1} %)", rate * 100.0, FLOOR * 100.0);
    assert!(total > 1000, "only {total} cases found in {}", dir.display());
    assert!(rate >= FLOOR, "pass rate {rate:.3} below the floor {FLOOR}");
}
