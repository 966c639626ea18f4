//! The module graph of `src/`: each module's `crate::…` and `super::…` paths name the modules
//! it uses; no two modules may use each other, directly or through others. A mechanism shared
//! by two rooms lives in a third that both use (README, "Layout").
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Module = Vec<String>;

/// Every module of `src/` with the text of its file, tests left out.
fn modules(dir: &Path, prefix: &Module, out: &mut BTreeMap<Module, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let mut inner = prefix.clone();
            inner.push(path.file_name().unwrap().to_string_lossy().into_owned());
            modules(&path, &inner, out);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let mut module = prefix.clone();
        if stem != "mod" && stem != "main" {
            module.push(stem);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
        let code: String =
            code.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
        out.insert(module, code);
    }
}

/// The `a::b::c` path at the start of `text`.
fn path_at(text: &str) -> Vec<String> {
    let path: String =
        text.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
    path.split("::").filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// The paths following each `start` in `code` that begins a word.
fn paths_after(code: &str, start: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(start) {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + start.len()..];
        if !before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            found.push(path_at(rest));
        }
    }
    found
}

/// The longest known module that `path` starts with.
fn resolve(known: &BTreeMap<Module, String>, path: &[String]) -> Option<Module> {
    (1..=path.len()).rev().map(|k| path[..k].to_vec()).find(|m| known.contains_key(m))
}

/// Which modules each module uses; a module using its own ancestors (the items of the room it
/// is in) is not counted.
fn graph() -> BTreeMap<Module, BTreeSet<Module>> {
    let mut known = BTreeMap::new();
    modules(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &Vec::new(), &mut known);
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, code) in &known {
        let mut targets: Vec<Module> =
            paths_after(code, "crate::").iter().filter_map(|p| resolve(&known, p)).collect();
        // `super::` from `a/b.rs` or `a/b/mod.rs` (module a::b) is `a`; each more climbs one.
        let mut rest = code.as_str();
        while let Some(at) = rest.find("super::") {
            let tail = &rest[at..];
            let after = tail.trim_start_matches("super::");
            let climbs = (tail.len() - after.len()) / "super::".len();
            let path = path_at(after);
            let base = &module[..module.len().saturating_sub(climbs)];
            let full: Vec<String> = base.iter().cloned().chain(path).collect();
            if let Some(target) = resolve(&known, &full) {
                targets.push(target);
            }
            rest = after;
        }
        for target in targets {
            if target != *module && !module.starts_with(&target) {
                edges.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    edges
}

#[test]
fn no_two_modules_of_src_use_each_other() {
    let edges = graph();
    assert!(edges.len() > 30, "the graph of src/ looks empty: {edges:?}");
    // A path from `to` back to `from`, if any (depth-first).
    let back = |from: &Module, to: &Module| -> Option<Vec<Module>> {
        let mut stack = vec![vec![to.clone()]];
        let mut seen = BTreeSet::new();
        while let Some(path) = stack.pop() {
            let last = path.last().unwrap();
            if last == from {
                return Some(path);
            }
            if !seen.insert(last.clone()) {
                continue;
            }
            for next in edges.get(last).into_iter().flatten() {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push(longer);
            }
        }
        None
    };
    let mut cycles = Vec::new();
    for (from, targets) in &edges {
        for to in targets {
            if let Some(path) = back(from, to) {
                let names: Vec<String> = std::iter::once(from)
                    .chain(&path)
                    .map(|m| if m.is_empty() { "main".to_string() } else { m.join("::") })
                    .collect();
                cycles.push(names.join(" -> "));
            }
        }
    }
    assert!(cycles.is_empty(), "modules that use each other:\n{}", cycles.join("\n"));
}

#[test]
fn the_graph_reads_both_kinds_of_path() {
    let edges = graph();
    // Known uses, read from the sources: the check does see paths of both kinds.
    let module = |s: &str| s.split("::").map(str::to_string).collect::<Module>();
    let uses = |a: &str, b: &str| edges.get(&module(a)).is_some_and(|t| t.contains(&module(b)));
    assert!(uses("definition", "error"), "crate:: paths: {edges:?}");
    assert!(uses("portal::routes", "portal::reply"), "super:: paths: {edges:?}");
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Whether `doc` has a heading numbered `section` (`## 4. …`, `### 4.4 …`) or a numbered item
/// (`- **5.9** …`, where a list is numbered so that code can cite it).
fn has_section(doc: &str, section: &str) -> bool {
    let item = format!("- **{section}**");
    doc.lines().any(|line| {
        if line.starts_with(&item) {
            return true;
        }
        let title = line.trim_start_matches('#');
        title.len() < line.len()
            && title.trim_start().strip_prefix(section).is_some_and(|rest| {
                rest.starts_with(". ") || rest.starts_with(' ') || rest == "." || rest.is_empty()
            })
    })
}

#[test]
fn every_docs_reference_in_the_code_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches", "examples"] {
        rust_files(&root.join(dir), &mut files);
    }
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.strip_prefix(root).unwrap().display().to_string();
        if name == "tests/layout.rs" {
            // Its own comments show the forms it reads.
            continue;
        }
        // The comments of the file as one text: a reference may wrap onto the next line.
        let comments: String = text
            .lines()
            .filter_map(|l| l.split_once("//").map(|(_, c)| c.trim_start_matches(['/', '!'])))
            .collect::<Vec<_>>()
            .join(" ");
        // A `§` refers to the document named last before it; an RFC's sections are not ours.
        let mut doc: Option<String> = None;
        let words: Vec<&str> = comments.split_whitespace().collect();
        for (i, word) in words.iter().enumerate() {
            let word = word.trim_matches(|c: char| "()`,;:".contains(c));
            if let Some(at) = word.find("docs/") {
                let path = word[at..].trim_end_matches(|c: char| !c.is_alphanumeric());
                let path = if path.ends_with(".md") { path.to_string() } else { continue };
                checked += 1;
                if !root.join(&path).is_file() {
                    broken.push(format!("{name}: {path} does not exist"));
                }
                doc = Some(path);
            } else if let Some(section) = word.strip_prefix('§') {
                let section = section.trim_end_matches(|c: char| !c.is_ascii_digit());
                if i > 1 && words[i - 2].trim_start_matches('(') == "RFC" {
                    continue;
                }
                checked += 1;
                match &doc {
                    None => broken.push(format!("{name}: §{section} names no document")),
                    Some(path) => {
                        let text = std::fs::read_to_string(root.join(path)).unwrap_or_default();
                        if !has_section(&text, section) {
                            broken.push(format!("{name}: {path} has no §{section}"));
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 50, "only {checked} references found: is the scan broken?");
    assert!(broken.is_empty(), "references that do not resolve:\n{}", broken.join("\n"));
}
