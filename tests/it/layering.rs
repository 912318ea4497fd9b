//! The crate's module graph has no cycles, and only the CLI imports the CLI: a module uses
//! the ones below it, never one that uses it. Read from the sources (`crate::<module>` paths in
//! code, and `super::<command>` between `cli/` files), so a new back-edge fails here with the
//! cycle named, not in a review.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The module a source file belongs to: `convert` for `src/convert/stream.rs`, `cli/eval` for
/// `src/cli/eval.rs`, `cli` for `src/cli/mod.rs`; `None` for the crate root and the binary.
fn module_of(rel: &Path) -> Option<String> {
    let parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    match parts.as_slice() {
        [one] if one == "lib" || one == "main" => None,
        [cli, cmd, ..] if cli == "cli" && cmd != "mod" => Some(format!("cli/{cmd}")),
        [first, ..] => Some(first.clone()),
        [] => None,
    }
}

/// Code lines only: no comments (doc links name modules too) and no unit-test modules.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Identifiers that follow `prefix` in `text`.
fn paths_after<'t>(text: &'t str, prefix: &str) -> Vec<&'t str> {
    text.match_indices(prefix)
        .filter(|(i, _)| {
            !text[..*i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
        .map(|(i, _)| {
            let rest = &text[i + prefix.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = crate::root().join("src");
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap();
            let Some(from) = module_of(rel) else { continue };
            let text = code(&std::fs::read_to_string(&path).unwrap());
            let targets = edges.entry(from.clone()).or_default();
            for name in paths_after(&text, "crate::") {
                let to = if name == "cli" {
                    "cli".to_owned()
                } else {
                    name.to_owned()
                };
                if !name.is_empty() && to != from.split('/').next().unwrap_or_default() {
                    targets.insert(to);
                }
            }
            if from.starts_with("cli/") {
                for name in paths_after(&text, "super::") {
                    // `super::Status`, `super::outln` … are the CLI's shared items.
                    if name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                        && src.join("cli").join(format!("{name}.rs")).exists()
                        && format!("cli/{name}") != from
                    {
                        targets.insert(format!("cli/{name}"));
                    }
                }
            }
        }
    }
    edges
}

/// A cycle through `start`, if there is one.
fn cycle_through(edges: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn walk(
        edges: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        at: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in edges.get(at).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(edges, start, next, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_owned()];
    let mut seen = BTreeSet::new();
    walk(edges, start, start, &mut path, &mut seen).then_some(path)
}

#[test]
fn the_module_graph_has_no_cycles() {
    let edges = graph();
    // The graph is the real one: the layering the library is built on is in it.
    for (from, to) in [
        ("convert", "checkpoint"),
        ("checkpoint", "mapping"),
        ("convert", "mapping"),
        ("validate", "source"),
        ("source", "registry"),
        ("docs", "hub"),
    ] {
        assert!(
            edges.get(from).is_some_and(|t| t.contains(to)),
            "expected {from} → {to}; edges: {edges:#?}"
        );
    }
    let cycles: Vec<String> = edges
        .keys()
        .filter_map(|m| cycle_through(&edges, m))
        .map(|c| c.join(" → "))
        .collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn only_the_cli_imports_the_cli() {
    let edges = graph();
    let offenders: Vec<String> = edges
        .iter()
        .filter(|(from, _)| !from.starts_with("cli"))
        .flat_map(|(from, to)| {
            to.iter()
                .filter(|t| t.starts_with("cli"))
                .map(move |t| format!("{from} → {t}"))
        })
        .collect();
    assert!(offenders.is_empty(), "{offenders:?}");
}

#[test]
fn a_back_edge_is_found() {
    let mut edges = graph();
    edges
        .entry("registry".to_owned())
        .or_default()
        .insert("validate".to_owned());
    let cycle = cycle_through(&edges, "registry").expect("registry → validate → registry");
    assert_eq!(cycle.first().map(String::as_str), Some("registry"));
    assert_eq!(cycle.last().map(String::as_str), Some("registry"));
}
