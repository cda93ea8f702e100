//! The core's modules import each other without a cycle (engineering rule 1): ids and errors
//! live in leaf modules, and modules are layered (e.g. `kms` uses `keystore`, never the
//! reverse).
//!
//! Every `.rs` file under `src/` is a node. An edge goes from a file to each module it names
//! by path outside comments and unit-test blocks: `crate::a::b`, `super::x`, `self::x`, or a
//! child declared with `mod x;` (`x::f()`), inside `use` trees too; a path counts as the
//! longest module prefix it starts with. Paths to the file's own ancestors (`super::Item`)
//! add no edge: a parent and its children are one unit. Every cycle fails the test and is
//! printed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (e.g. `["kms", "v1"]`) of every source file, with its text.
fn modules() -> BTreeMap<Vec<String>, String> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<Vec<String>, String>) {
        for entry in std::fs::read_dir(dir).expect("read src dir") {
            let path = entry.expect("dir entry").path();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let mut module = prefix.to_vec();
            if path.is_dir() {
                module.push(name);
                walk(&path, &module, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                if name != "lib" {
                    module.push(name);
                }
                out.insert(module, std::fs::read_to_string(&path).expect("read source"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &[],
        &mut out,
    );
    out
}

/// `text` without comments and string literals (so doc links and messages add no edges).
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                out.push_str("\"\"");
            }
            '\'' => {
                // A char literal ('x', '\n') or a lifetime ('a): skip only the former.
                let rest: String = chars.clone().take(3).collect();
                if rest.starts_with('\\') {
                    for c in chars.by_ref() {
                        if c == '\'' {
                            break;
                        }
                    }
                } else if rest.chars().nth(1) == Some('\'') {
                    chars.next();
                    chars.next();
                } else {
                    out.push(c);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// `code` without its inline `mod name { ... }` blocks (unit tests): their `super` is the
/// file's module itself, and test code may import what it tests.
fn without_inline_modules(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut text = code;
    while let Some(at) = text.find("mod ") {
        let after = &text[at + 4..];
        let name_end = after
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let open = after[name_end..].trim_start();
        out.push_str(&text[..at]);
        if !open.starts_with('{') {
            out.push_str("mod ");
            text = after;
            continue;
        }
        let body = &after[after.len() - open.len()..];
        let mut depth = 0;
        let mut end = body.len();
        for (i, c) in body.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        text = &body[end..];
    }
    out.push_str(text);
    out
}

/// Expands the `use` trees in `code` into flat paths (`a::{b, c::d}` -> `a::b`, `a::c::d`)
/// and returns them with the rest of the code.
fn paths(code: &str) -> Vec<Vec<String>> {
    fn expand(prefix: &str, tree: &str, out: &mut Vec<String>) {
        let tree = tree.trim();
        if let Some(open) = tree.find('{') {
            let head = tree[..open].trim_end_matches("::").trim();
            let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
            let prefix = join(prefix, head);
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(&prefix, &inner[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            expand(&prefix, &inner[start..], out);
        } else if !tree.is_empty() {
            let tree = tree.split(" as ").next().unwrap_or(tree);
            out.push(join(prefix, tree.trim()));
        }
    }
    fn join(a: &str, b: &str) -> String {
        match (a.is_empty(), b.is_empty()) {
            (true, _) => b.to_owned(),
            (_, true) => a.to_owned(),
            _ => format!("{a}::{b}"),
        }
    }
    let mut flat = Vec::new();
    let mut rest = String::new();
    let mut text = code;
    while let Some(at) = find_use(text) {
        rest.push_str(&text[..at]);
        let end = text[at..].find(';').map_or(text.len(), |e| at + e);
        expand("", &text[at + 4..end], &mut flat);
        text = &text[end..];
    }
    rest.push_str(text);
    // Paths in ordinary code: identifier sequences joined by `::`.
    let mut current = String::new();
    let bytes: Vec<char> = rest.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_alphanumeric() || c == '_' {
            current.push(c);
            i += 1;
        } else if c == ':' && bytes.get(i + 1) == Some(&':') && !current.is_empty() {
            current.push_str("::");
            i += 2;
        } else {
            if current.contains("::") {
                flat.push(current.clone());
            }
            current.clear();
            i += 1;
        }
    }
    flat.into_iter()
        .map(|p| p.split("::").map(str::to_owned).collect())
        .collect()
}

/// The offset of the next `use ` keyword that starts a statement.
fn find_use(text: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].find("use ") {
        let at = from + i;
        let before = text[..at].chars().next_back();
        if before.is_none_or(|c| c.is_whitespace() || c == ')' || c == ';' || c == '{') {
            return Some(at);
        }
        from = at + 4;
    }
    None
}

/// The module a path names from inside `module`, if it is one of ours.
fn resolve(
    module: &[String],
    path: &[String],
    known: &BTreeSet<Vec<String>>,
) -> Option<Vec<String>> {
    let mut base: Vec<String> = module.to_vec();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        Some("super") => {
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
        }
        Some(first) => {
            let mut child = module.to_vec();
            child.push(first.to_owned());
            if !known.contains(&child) {
                return None;
            }
        }
        None => return None,
    }
    let mut best = (!base.is_empty()).then(|| base.clone());
    for seg in rest {
        base.push(seg.clone());
        if known.contains(&base) {
            best = Some(base.clone());
        } else {
            break;
        }
    }
    best
}

#[test]
fn the_core_module_graph_has_no_cycle() {
    let modules = modules();
    let known: BTreeSet<Vec<String>> = modules.keys().cloned().collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, text) in &modules {
        let targets = edges.entry(module.clone()).or_default();
        for path in paths(&without_inline_modules(&code_only(text))) {
            // A module's own ancestors do not count: a parent and the children it declares
            // are one unit (children see and use their parent's private items).
            if let Some(to) = resolve(module, &path, &known)
                && !module.starts_with(&to)
            {
                targets.insert(to);
            }
        }
    }
    // Strongly connected components: modules that reach each other. Any with more than one
    // module is a cycle.
    let reach = |from: &Vec<String>| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(node) = todo.pop() {
            for next in edges.get(&node).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&Vec<String>, BTreeSet<Vec<String>>> =
        edges.keys().map(|m| (m, reach(m))).collect();
    let name = |m: &Vec<String>| m.join("::");
    let mut cycles = BTreeSet::new();
    for (module, reached) in &reachable {
        let component: Vec<String> = reached
            .iter()
            .filter(|other| reachable.get(other).is_some_and(|r| r.contains(*module)))
            .map(name)
            .collect();
        if component.len() > 1 {
            cycles.insert(component);
        }
    }
    assert!(cycles.is_empty(), "modules in import cycles: {cycles:#?}");
}

#[test]
fn the_checker_sees_use_trees_super_and_child_paths() {
    let known: BTreeSet<Vec<String>> = [vec!["a"], vec!["a", "b"], vec!["c"]]
        .into_iter()
        .map(|m| m.into_iter().map(String::from).collect())
        .collect();
    let code = code_only("use crate::{a::b::X, c};\n// crate::zzz\nfn f() { b::g(); super::Y; }");
    let found: BTreeSet<Vec<String>> = paths(&code)
        .iter()
        .filter_map(|p| resolve(&["a".to_owned()], p, &known))
        .collect();
    let want: BTreeSet<Vec<String>> = [vec!["a", "b"], vec!["c"]]
        .into_iter()
        .map(|m| m.into_iter().map(String::from).collect())
        .collect();
    assert_eq!(found, want);
}
