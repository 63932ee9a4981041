//! The layout is the architecture: `core/src`'s folders are layers, and a
//! module imports only from its own layer or the ones beneath it, with no
//! cycle between modules (docs/design.md, "Layers"). This test reads the
//! module graph from the sources — every `crate::…` and `super::…` path
//! outside comments and strings, `use` lines and inline paths alike — and
//! fails on a back-import or a cycle, naming the files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, bottom first. A module's layer is its first path segment.
const LAYERS: &[(&str, u32)] = &[
    ("os", 0),
    ("loom", 1),
    ("error", 1),
    ("layout", 2),
    ("options", 3),
    ("record", 3),
    ("protocol", 4),
    ("store", 5),
    ("open_queue", 6),
    ("api", 7),
    ("fuzzing", 8),
];

/// Imports a layer may not make although they point down: the kernel and
/// the errors stand alone, and the protocols reach the OS only through the
/// `sync` facade, so that loom runs them on any memory.
const DENIED: &[(&str, &str)] = &[("os", "*"), ("error", "*"), ("protocol", "os")];

/// Module path (`protocol::ring`) → source text, for every file but
/// `lib.rs` (the crate root only declares the layers and re-exports).
fn read_tree(src: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            if p.is_dir() {
                let mut pre = prefix.to_vec();
                pre.push(name);
                walk(&p, &pre, out);
            } else if let Some(stem) = name.strip_suffix(".rs") {
                let mut path = prefix.to_vec();
                if stem != "mod" {
                    path.push(stem.to_string());
                }
                if path.is_empty() || path == ["lib"] {
                    continue;
                }
                out.insert(path.join("::"), std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(src, &[], &mut out);
    out
}

/// The source as tokens (identifiers, `::`, braces and other punctuation),
/// without comments, strings or char literals.
fn tokens(src: &str) -> Vec<String> {
    let b: Vec<char> = src.chars().collect();
    let (mut i, mut out) = (0, Vec::new());
    while i < b.len() {
        let c = b[i];
        if c == '/' && b.get(i + 1) == Some(&'/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && b.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == 'r' && matches!(b.get(i + 1), Some('"') | Some('#')) && {
            let mut j = i + 1;
            while b.get(j) == Some(&'#') {
                j += 1;
            }
            b.get(j) == Some(&'"')
        } {
            let mut hashes = 0;
            i += 1;
            while b[i] == '#' {
                hashes += 1;
                i += 1;
            }
            i += 1;
            loop {
                if b[i] == '"' && (1..=hashes).all(|k| b.get(i + k) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
                i += 1;
            }
        } else if c == '"' {
            i += 1;
            while b[i] != '"' {
                i += if b[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}'), or a lifetime ('a).
            if b.get(i + 1) == Some(&'\\') {
                i += 2;
                while b[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if b.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if c.is_alphanumeric() || c == '_' {
            let s = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            out.push(b[s..i].iter().collect());
        } else if c == ':' && b.get(i + 1) == Some(&':') {
            out.push("::".into());
            i += 2;
        } else if c.is_whitespace() {
            i += 1;
        } else {
            out.push(c.to_string());
            i += 1;
        }
    }
    out
}

/// The modules that `module`'s source names: where each `crate::` or
/// `super::` path leads, as the longest prefix that is a known module.
/// `crate::{a, b::c}` names each of its items.
fn imports(module: &str, src: &str, known: &BTreeSet<String>) -> Result<BTreeSet<String>, String> {
    let t = tokens(src);
    let mut out = BTreeSet::new();
    // Inline modules (`mod tests { .. }`) open at these brace depths.
    let (mut depth, mut inline): (usize, Vec<usize>) = (0, Vec::new());
    let base: Vec<&str> = module.split("::").collect();
    let resolve = |segs: &[String], out: &mut BTreeSet<String>| -> Result<(), String> {
        for n in (1..=segs.len()).rev() {
            let cand = segs[..n].join("::");
            if known.contains(&cand) {
                out.insert(cand);
                return Ok(());
            }
        }
        Err(format!(
            "{module}: `crate::{}` is not a module path: import from the module that defines it, \
             not from the crate root's re-exports",
            segs.join("::")
        ))
    };
    let path_at = |mut k: usize| -> (Vec<String>, usize) {
        let mut segs = Vec::new();
        while k + 1 < t.len() && t[k] == "::" && t[k + 1] != "{" && t[k + 1] != "*" {
            segs.push(t[k + 1].clone());
            k += 2;
        }
        (segs, k)
    };
    let mut k = 0;
    while k < t.len() {
        match t[k].as_str() {
            "{" => depth += 1,
            "}" => {
                if inline.last() == Some(&depth) {
                    inline.pop();
                }
                depth -= 1;
            }
            "mod" if t.get(k + 2).map(String::as_str) == Some("{") => inline.push(depth + 1),
            "crate" if t.get(k + 1).map(String::as_str) == Some("::") => {
                let (segs, end) = path_at(k + 1);
                if t.get(end + 1).map(String::as_str) == Some("{") {
                    // `crate::a::{b, c::d}`: each item below `a`.
                    let mut j = end + 2;
                    let mut lvl = 1;
                    let mut item = segs.clone();
                    while lvl > 0 && j < t.len() {
                        match t[j].as_str() {
                            "{" => lvl += 1,
                            "}" => lvl -= 1,
                            "," if lvl == 1 => {
                                resolve(&item, &mut out)?;
                                item = segs.clone();
                            }
                            // `crate::a::{self, ..}` names `a` itself.
                            "self" if lvl == 1 && item.len() == segs.len() => {
                                resolve(&segs, &mut out)?
                            }
                            "::" | "self" | "as" => {}
                            s if lvl == 1 && item.len() == segs.len() => item.push(s.to_string()),
                            _ => {}
                        }
                        j += 1;
                    }
                    if item.len() > segs.len() {
                        resolve(&item, &mut out)?;
                    }
                } else if !segs.is_empty() {
                    resolve(&segs, &mut out)?;
                }
            }
            "super"
                if t.get(k + 1).map(String::as_str) == Some("::") && k > 0 && t[k - 1] != "::" =>
            {
                // Each `super` first leaves an inline module, then the file's.
                let mut ups: usize = 1;
                let mut j = k + 1;
                while t.get(j + 1).map(String::as_str) == Some("super") {
                    ups += 1;
                    j += 2;
                }
                let ups_out = ups.saturating_sub(inline.len());
                if ups_out > 0 {
                    let keep = base.len().saturating_sub(ups_out);
                    let mut segs: Vec<String> =
                        base[..keep].iter().map(|s| s.to_string()).collect();
                    segs.extend(path_at(j).0);
                    if !segs.is_empty() {
                        resolve(&segs, &mut out)?;
                    }
                }
            }
            _ => {}
        }
        k += 1;
    }
    out.remove(module);
    Ok(out)
}

fn layer(module: &str) -> (&str, u32) {
    let top = module.split("::").next().unwrap();
    LAYERS
        .iter()
        .copied()
        .find(|(name, _)| *name == top)
        .unwrap_or_else(|| {
            panic!("{module}: `{top}` is in no layer; add it to LAYERS and docs/design.md")
        })
}

/// Every back-import and every cycle in the tree, as readable lines.
fn check(tree: &BTreeMap<String, String>) -> Vec<String> {
    let known: BTreeSet<String> = tree.keys().cloned().collect();
    let mut problems = Vec::new();
    let mut graph: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (module, src) in tree {
        match imports(module, src, &known) {
            Ok(deps) => {
                graph.insert(module, deps);
            }
            Err(e) => problems.push(e),
        }
    }
    for (module, deps) in &graph {
        let (from, rank) = layer(module);
        for dep in deps {
            let (to, dep_rank) = layer(dep);
            if dep_rank > rank {
                problems.push(format!(
                    "{module} imports {dep}: from layer `{from}` up to `{to}`"
                ));
            } else if DENIED
                .iter()
                .any(|&(a, b)| a == from && (b == "*" || b == to) && from != to)
            {
                problems.push(format!(
                    "{module} imports {dep}: layer `{from}` may not import `{to}`"
                ));
            }
        }
    }
    // Cycles: a depth-first search that reports the path of each back edge.
    fn visit<'a>(
        m: &'a str,
        graph: &'a BTreeMap<&'a str, BTreeSet<String>>,
        state: &mut BTreeMap<&'a str, u8>,
        stack: &mut Vec<&'a str>,
        problems: &mut Vec<String>,
    ) {
        state.insert(m, 1);
        stack.push(m);
        for dep in graph.get(m).into_iter().flatten() {
            match state.get(dep.as_str()) {
                Some(1) => {
                    let at = stack.iter().position(|s| s == dep).unwrap();
                    let mut cycle: Vec<&str> = stack[at..].to_vec();
                    cycle.push(dep);
                    problems.push(format!("cycle: {}", cycle.join(" -> ")));
                }
                Some(_) => {}
                None => {
                    // A module whose imports could not be read is reported
                    // already; it has no edges here.
                    if let Some((k, _)) = graph.get_key_value(dep.as_str()) {
                        visit(k, graph, state, stack, problems);
                    }
                }
            }
        }
        stack.pop();
        state.insert(m, 2);
    }
    let mut state = BTreeMap::new();
    for m in graph.keys() {
        if !state.contains_key(m) {
            visit(m, &graph, &mut state, &mut Vec::new(), &mut problems);
        }
    }
    problems
}

fn core_tree() -> BTreeMap<String, String> {
    read_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

#[test]
fn imports_only_point_down_and_no_module_is_in_a_cycle() {
    let tree = core_tree();
    assert!(
        tree.contains_key("protocol::ring") && tree.contains_key("api::queue"),
        "read the wrong tree"
    );
    // The reader sees the edges that are there (a reader that saw none
    // would pass everything).
    let known: BTreeSet<String> = tree.keys().cloned().collect();
    for (from, to) in [
        ("api::producer", "open_queue"),
        ("api::consumer::delivery", "record::read"),
        ("open_queue::journal", "store::segment"),
        ("open_queue::queue_file", "store::owner"),
        ("protocol::ring", "layout"),
        ("store::segment", "protocol::spill"),
        ("loom", "os::futex"),
    ] {
        let deps = imports(from, &tree[from], &known).unwrap();
        assert!(
            deps.contains(to),
            "{from} should import {to}; read {deps:?}"
        );
    }
    let problems = check(&tree);
    assert!(
        problems.is_empty(),
        "the layering is broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn a_planted_back_import_is_caught() {
    let mut tree = core_tree();
    // A protocol reaching up into the API, written three ways.
    for plant in [
        "use crate::api::queue::Queue;\n",
        "fn f() { let _ = crate::open_queue::write_slot; }\n",
        "use crate::{error::Error, api::consumer::Consumer};\n",
    ] {
        let mut t = tree.clone();
        t.get_mut("protocol::ring").unwrap().push_str(plant);
        let problems = check(&t);
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("protocol::ring imports ")),
            "not caught: {plant:?}: {problems:?}"
        );
    }
    // The protocols may not call the OS directly, though it is beneath them.
    tree.get_mut("protocol::lease")
        .unwrap()
        .push_str("use crate::os::process;\n");
    assert!(
        check(&tree)
            .iter()
            .any(|p| p.contains("layer `protocol` may not import `os`"))
    );
}

#[test]
fn a_planted_cycle_and_a_root_import_are_caught() {
    let mut tree = core_tree();
    // Within one layer nothing stops a cycle but the cycle check.
    tree.get_mut("api::producer")
        .unwrap()
        .push_str("use crate::api::queue::Queue;\n");
    let problems = check(&tree);
    assert!(
        problems.iter().any(|p| p.starts_with("cycle: ")
            && p.contains("api::queue")
            && p.contains("api::producer")),
        "{problems:?}"
    );
    // A `super::` from a file reaches its parent module.
    let mut tree = core_tree();
    tree.get_mut("open_queue::journal")
        .unwrap()
        .push_str("use super::super::api::queue::Queue;\n");
    assert!(
        check(&tree)
            .iter()
            .any(|p| p.starts_with("open_queue::journal imports api::queue"))
    );
    // The crate root re-exports everything, so importing from it hides the layer.
    let mut tree = core_tree();
    tree.get_mut("protocol::group")
        .unwrap()
        .push_str("use crate::Queue;\n");
    assert!(check(&tree).iter().any(|p| p.contains("not a module path")));
    // Comments and strings are not imports.
    let mut tree = core_tree();
    tree.get_mut("protocol::group")
        .unwrap()
        .push_str("// use crate::api::queue::Queue;\nconst S: &str = \"crate::api::queue\";\n");
    assert!(check(&tree).is_empty());
}
