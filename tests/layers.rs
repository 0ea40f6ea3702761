//! The layer rule of `docs/ARCHITECTURE.md`, checked: every top-level
//! module of `src/` imports (through `crate::` paths, in non-test code) only
//! from modules of lower layers, every module has a layer, and no file holds
//! more than 600 lines of non-test code. The layer table is read from the
//! document itself, so the two cannot drift apart.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const MAX_CODE_LINES: usize = 600;

/// `module -> layer`, from the rows `| N | `a`, `b` | ... |` of the
/// document's "Layers" table.
fn layer_table(doc: &str) -> BTreeMap<String, u32> {
    let mut layers = BTreeMap::new();
    let Some(start) = doc.find("## Layers") else {
        panic!("docs/ARCHITECTURE.md has no \"## Layers\" section");
    };
    for line in doc[start..].lines().skip(1) {
        if line.starts_with("## ") {
            break;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let [_, n, mods, ..] = cells[..] else {
            continue;
        };
        let Ok(n) = n.parse::<u32>() else { continue };
        for m in mods.split(',') {
            let m = m.trim().trim_matches('`');
            if !m.is_empty() {
                layers.insert(m.to_string(), n);
            }
        }
    }
    layers
}

/// The non-test code lines of a source file: comments and blank lines
/// dropped, and the `#[cfg(test)] mod` block that ends a file cut off.
fn code_lines(text: &str) -> Vec<&str> {
    let mut end = text.len();
    let mut at = 0;
    while let Some(i) = text[at..].find("#[cfg(test)]") {
        let i = at + i;
        let rest = text[i + "#[cfg(test)]".len()..].trim_start();
        if (i == 0 || text.as_bytes()[i - 1] == b'\n') && rest.starts_with("mod ") {
            end = i;
            break;
        }
        at = i + 1;
    }
    text[..end]
        .lines()
        .filter(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with("//")
        })
        .collect()
}

/// The top-level modules named by `crate::` paths in `code`.
fn imports(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let close = group.find('}').unwrap_or(group.len());
            for item in group[..close].split(',') {
                out.insert(ident(item.trim()));
            }
        } else {
            out.insert(ident(after));
        }
        rest = after;
    }
    out.remove("");
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Checks `files` (path relative to `src/`, text) against `layers`;
/// returns every violation.
fn violations(layers: &BTreeMap<String, u32>, files: &[(String, String)]) -> Vec<String> {
    let mut found = Vec::new();
    let modules: BTreeSet<String> = files
        .iter()
        .map(|(rel, _)| top_module(rel))
        .filter(|m| !matches!(m.as_str(), "lib" | "main" | "bin"))
        .collect();
    for m in &modules {
        if !layers.contains_key(m) {
            found.push(format!("module `{m}` has no layer in the table"));
        }
    }
    for (rel, text) in files {
        let m = top_module(rel);
        if matches!(m.as_str(), "lib" | "main" | "bin") || rel.ends_with("tests.rs") {
            continue;
        }
        let code = code_lines(text);
        if code.len() > MAX_CODE_LINES {
            found.push(format!(
                "{rel}: {} lines of non-test code (at most {MAX_CODE_LINES})",
                code.len()
            ));
        }
        let Some(&own) = layers.get(&m) else { continue };
        for t in imports(&code.join("\n")) {
            if t == m || !modules.contains(&t) {
                continue; // the module itself, or a re-export of the crate root
            }
            let theirs = layers.get(&t).copied().unwrap_or(u32::MAX);
            if theirs >= own {
                found.push(format!(
                    "{rel}: `{m}` (layer {own}) imports `{t}` (layer {theirs})"
                ));
            }
        }
    }
    found
}

fn top_module(rel: &str) -> String {
    let first = rel.split(['/', '\\']).next().unwrap_or(rel);
    first.strip_suffix(".rs").unwrap_or(first).to_string()
}

#[test]
fn every_module_imports_only_from_lower_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
    let layers = layer_table(&doc);
    assert!(layers.len() >= 10, "layer table not found: {layers:?}");
    let src = root.join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    let files: Vec<(String, String)> = paths
        .iter()
        .map(|p| {
            let rel = p.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
            (rel, fs::read_to_string(p).unwrap())
        })
        .collect();
    let found = violations(&layers, &files);
    assert!(found.is_empty(), "layer rule broken:\n{}", found.join("\n"));
}

#[test]
fn the_check_catches_an_upward_import_and_a_missing_layer() {
    let layers: BTreeMap<String, u32> = [("low", 0), ("high", 1)]
        .into_iter()
        .map(|(m, n)| (m.to_string(), n))
        .collect();
    let file = |rel: &str, text: &str| (rel.to_string(), text.to_string());
    let fine = [
        file("low.rs", "use crate::error::Error;\n"),
        file("high/mod.rs", "use crate::low::X;\n"),
        file("high/tests.rs", "use crate::high::Y;\n"),
    ];
    assert_eq!(violations(&layers, &fine), Vec::<String>::new());
    let upward = [
        file("low.rs", "use crate::{high::Z, other};\n"),
        file("high.rs", "use crate::low::X;\n"),
        file(
            "high2.rs",
            "fn f() {}\n#[cfg(test)]\nmod tests { use crate::low::X; }\n",
        ),
    ];
    let found = violations(&layers, &upward);
    assert!(
        found
            .iter()
            .any(|v| v.contains("`low` (layer 0) imports `high`"))
    );
    assert!(found.iter().any(|v| v.contains("`high2` has no layer")));
    // Test code and comments do not count.
    assert_eq!(
        imports(
            &code_lines("// crate::high\nuse crate::low;\n#[cfg(test)]\nmod t { crate::high }")
                .join("\n")
        ),
        BTreeSet::from(["low".to_string()])
    );
}
