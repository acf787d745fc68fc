//! The crate's layering, checked on its source: which top-level module uses which (through
//! `crate::<module>` paths, comments and test files aside). `docs/architecture.md` draws the
//! same graph.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use petgraph::algo::tarjan_scc;
use petgraph::graph::DiGraph;

/// Top-level module → the top-level modules its production code names.
fn module_uses() -> BTreeMap<String, Vec<String>> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut uses: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut files = Vec::new();
    collect(&src, &mut files);
    for file in files {
        let relative = file.strip_prefix(&src).expect("under src");
        let first = relative
            .components()
            .next()
            .expect("a component")
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if matches!(first.as_str(), "lib" | "main" | "layering") || name == "tests.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("readable source");
        let used = uses.entry(first.clone()).or_default();
        for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (at, _) in line.match_indices("crate::") {
                let target: String = line[at + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !target.is_empty() && target != first && !used.contains(&target) {
                    used.push(target);
                }
            }
        }
    }
    uses
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable directory") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn top_level_modules_form_no_import_cycle() {
    let uses = module_uses();
    let mut graph = DiGraph::<&str, ()>::new();
    let mut nodes = BTreeMap::new();
    for name in uses.keys().chain(uses.values().flatten()) {
        nodes
            .entry(name.as_str())
            .or_insert_with(|| graph.add_node(name.as_str()));
    }
    for (from, targets) in &uses {
        for to in targets {
            graph.add_edge(nodes[from.as_str()], nodes[to.as_str()], ());
        }
    }
    let cycles: Vec<Vec<&str>> = tarjan_scc(&graph)
        .into_iter()
        .filter(|scc| scc.len() > 1)
        .map(|scc| scc.into_iter().map(|n| graph[n]).collect())
        .collect();
    assert!(cycles.is_empty(), "modules that use each other: {cycles:?}");
}

#[test]
fn only_the_cli_uses_the_cli() {
    let users: Vec<String> = module_uses()
        .into_iter()
        .filter(|(module, used)| module != "cli" && used.iter().any(|u| u == "cli"))
        .map(|(module, _)| module)
        .collect();
    assert!(users.is_empty(), "modules importing from cli/: {users:?}");
}
