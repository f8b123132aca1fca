//! The code's layout holds: the top-level modules under src/ point at each other without a
//! circle, no module reaches itself through a `crate::` path (inside a module, `super::`
//! says it), and no file outside the sandbox grows past the size a reader can hold in mind.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lines of code before a file's unit tests, at most (the sandbox is a server of its own).
const MAX_CODE_LINES: usize = 700;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every .rs file under `dir`.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to: `src/run/reader.rs` is in `run`.
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(src()).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// The code of a file without its comments and its `#[cfg(test)] mod tests`.
fn code(text: &str) -> Vec<&str> {
    let end = text.find("#[cfg(test)]\nmod tests").unwrap_or(text.len());
    text[..end]
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect()
}

/// The top-level modules named by `crate::` paths in `lines`, `use crate::{a, b::c}` included.
fn crate_paths(lines: &[&str]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let text = lines.join("\n");
    let mut rest = text.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let names = match rest.strip_prefix('{') {
            // The braces' top-level names: `{a, b::{c, d}}` names a and b.
            Some(group) => {
                let (mut depth, mut names, mut current) = (0, Vec::new(), String::new());
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => names.push(std::mem::take(&mut current)),
                        _ if depth == 0 => current.push(c),
                        _ => {}
                    }
                }
                names.push(current);
                names
            }
            None => vec![rest.to_owned()],
        };
        for name in names {
            let ident: String = name
                .trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !ident.is_empty() {
                out.insert(ident);
            }
        }
    }
    out
}

#[test]
fn modules_form_no_circle_and_none_reaches_itself_through_crate() {
    let mut paths = Vec::new();
    files(&src(), &mut paths);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut selfish = Vec::new();
    for path in paths.iter().filter(|p| !p.ends_with("main.rs")) {
        let module = module_of(path);
        let text = std::fs::read_to_string(path).unwrap();
        let named = crate_paths(&code(&text));
        if named.contains(&module) && module != "lib" {
            selfish.push(path.strip_prefix(src()).unwrap().display().to_string());
        }
        edges
            .entry(module.clone())
            .or_default()
            .extend(named.into_iter().filter(|n| *n != module));
    }
    assert!(
        selfish.is_empty(),
        "these files reach their own module through crate:: (use super:: inside a module): {selfish:?}"
    );
    // Depth-first search; a module met again while still on the path closes a circle.
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == m) {
            let mut circle = path[at..].to_vec();
            circle.push(m.to_owned());
            return Some(circle);
        }
        if !done.insert(m.to_owned()) {
            return None;
        }
        path.push(m.to_owned());
        for next in edges.get(m).into_iter().flatten() {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for m in edges.keys() {
        let circle = visit(m, &edges, &mut Vec::new(), &mut done);
        assert!(
            circle.is_none(),
            "a circle of modules: {}",
            circle.unwrap().join(" -> ")
        );
    }
}

#[test]
fn no_file_outside_the_sandbox_is_over_700_lines_of_code() {
    let mut paths = Vec::new();
    files(&src(), &mut paths);
    let mut long = Vec::new();
    for path in paths.iter().filter(|p| module_of(p) != "sandbox") {
        let text = std::fs::read_to_string(path).unwrap();
        let n = code(&text).iter().filter(|l| !l.trim().is_empty()).count();
        if n > MAX_CODE_LINES {
            long.push(format!(
                "{} ({n})",
                path.strip_prefix(src()).unwrap().display()
            ));
        }
    }
    assert!(
        long.is_empty(),
        "over {MAX_CODE_LINES} lines of code, split along their seams: {long:?}"
    );
}

#[test]
fn the_path_reader_sees_groups_and_single_paths() {
    let named = crate_paths(&["use crate::{a, b::{c, d}, e::F};", "x = crate::g::h();"]);
    assert_eq!(named.into_iter().collect::<Vec<_>>(), ["a", "b", "e", "g"]);
}
