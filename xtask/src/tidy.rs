//! Layout rules checked by `cargo xtask lint` (and by this crate's tests, so `cargo test`
//! catches them too), the way rust-analyzer's tidy test does: every source file says what
//! it owns in a `//!` line and stays small, and the host's modules depend on each other
//! only in the directions ARCHITECTURE.md gives.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// Lines a source file may have; test files are exempt.
const MAX_LINES: usize = 600;

/// Top-level host modules that import nothing else from the crate.
const LEAVES: &[&str] = &["state", "target", "contract", "template", "failpoint"];

/// Leaves any module may import: `failpoint` (crash sites sit in the state store, the
/// executor and the capabilities alike) imports nothing itself.
const EVERYWHERE: &[&str] = &["failpoint"];

/// What every TOML file kind shares in `spec/`; the file kinds themselves (runbook,
/// config, manifest) are off limits to capabilities.
const SPEC_SHARED: &[&str] = &["diagnostic", "read", "values", "keys"];

/// (module, host modules it must not import). `cli` is the top: nothing imports it.
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "capability",
        &["cli", "exec", "runtime", "runbook", "plugin"],
    ),
    (
        "runtime",
        &[
            "cli", "exec", "runbook", "plugin", "spec", "config", "state", "target", "template",
        ],
    ),
    ("exec", &["cli"]),
    // The review reads files and plugins; it runs nothing and opens no database.
    ("review", &["cli", "exec", "state", "target"]),
];

/// Every problem in the tree at `root`, one line each.
pub fn problems(root: &Path) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let mut files = Vec::new();
    for dir in ["host/src", "host/benches", "xtask/src"] {
        collect(&root.join(dir), &mut files)?;
    }
    for workspace in ["plugins", "tests/plugins"] {
        for entry in std::fs::read_dir(root.join(workspace))? {
            collect(&entry?.path().join("src"), &mut files)?;
        }
    }
    for file in &files {
        let text = std::fs::read_to_string(file)?;
        let shown = file
            .strip_prefix(root)
            .unwrap_or(file)
            .display()
            .to_string();
        if !is_test_file(file) && text.lines().count() > MAX_LINES {
            found.push(format!(
                "{shown}: {} lines (at most {MAX_LINES} outside tests): split it by concept",
                text.lines().count()
            ));
        }
        // `include!`d files (the bulk benchmark's shared SQL) cannot carry inner docs.
        let included = text
            .lines()
            .take(3)
            .any(|l| l.starts_with("//") && l.contains("include!"));
        if !included && !text.starts_with("//!") {
            found.push(format!(
                "{shown}: starts without a `//!` line saying what the module owns"
            ));
        }
        if let Some(module) = host_module(root, file) {
            for imported in crate_imports(&text) {
                if let Some(rule) = forbidden(&module, &imported) {
                    found.push(format!("{shown}: imports `crate::{imported}`: {rule}"));
                }
            }
            if module == "runtime" {
                for path in submodules(&text, "crate::capability::", &["registry"]) {
                    found.push(format!(
                        "{shown}: names `crate::capability::{path}`: runtime knows capabilities only through the registry"
                    ));
                }
            }
            if module == "cli" && !file.ends_with("cli/output.rs") {
                for problem in output_problems(&text) {
                    found.push(format!("{shown}: {problem}"));
                }
            }
            if module == "capability" {
                for path in submodules(&text, "crate::spec::", SPEC_SHARED) {
                    found.push(format!(
                        "{shown}: names `crate::spec::{path}`: a capability reads its own TOML with spec's shared pieces only"
                    ));
                }
            }
        }
    }
    Ok(found)
}

pub fn check(root: &Path) -> Result<()> {
    let found = problems(root)?;
    if found.is_empty() {
        eprintln!("tidy: layout rules hold");
        return Ok(());
    }
    for problem in &found {
        eprintln!("tidy: {problem}");
    }
    bail!(
        "{} layout rule(s) broken (see ARCHITECTURE.md)",
        found.len()
    )
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

fn is_test_file(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n == "tests.rs" || n == "fixtures.rs" || n == "testutil.rs")
        || path.components().any(|c| c.as_os_str() == "tests")
}

/// `host/src/<module>/...` or `host/src/<module>.rs` → `<module>`.
fn host_module(root: &Path, file: &Path) -> Option<String> {
    let rest = file.strip_prefix(root.join("host/src")).ok()?;
    let first = rest.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_string())
}

/// The top-level modules a file names as `crate::<module>` (also inside `use crate::{...}`).
fn crate_imports(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        // `runbook::crate::` cannot occur; `$crate::` (macros) is not ours to check.
        if text[..at].ends_with('$') {
            continue;
        }
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = matching_brace(group);
            for item in split_top_level(&group[..end]) {
                if let Some(name) = leading_ident(item.trim()) {
                    found.insert(name);
                }
            }
        } else if let Some(name) = leading_ident(rest) {
            found.insert(name);
        }
    }
    found
}

/// Submodules named after `prefix` (`crate::capability::<x>::...`) other than `allowed`.
fn submodules(text: &str, prefix: &str, allowed: &[&str]) -> Vec<String> {
    text.match_indices(prefix)
        .filter_map(|(at, m)| {
            let rest = &text[at + m.len()..];
            let name = leading_ident(rest)?;
            let after = &rest[name.len()..];
            (after.starts_with("::") && !allowed.contains(&name.as_str())).then_some(name)
        })
        .collect()
}

fn forbidden(module: &str, imported: &str) -> Option<String> {
    if imported == module || imported == "self" || EVERYWHERE.contains(&imported) {
        return None;
    }
    if LEAVES.contains(&module) {
        return Some(format!("`{module}/` imports nothing else from the crate"));
    }
    if imported == "cli" {
        return Some("nothing but `main.rs` depends on the command line".into());
    }
    FORBIDDEN
        .iter()
        .find(|(m, _)| *m == module)
        .filter(|(_, banned)| banned.contains(&imported))
        .map(|_| format!("`{module}/` must not depend on `{imported}/`"))
}

/// What a person reads goes through `output::say!` and its kin, which escape every
/// argument (a plugin's text cannot forge a line): no direct printing in `cli/`, and a
/// format string names inline only styles (`{BOLD}`, `{style}`), never data.
fn output_problems(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for direct in ["println!(", "print!("] {
        if text.contains(direct) {
            found.push(format!(
                "prints with `{direct}..)`: use `output::say!` and its kin, which escape what they show"
            ));
        }
    }
    for invocation in ["say!(", "say_inline!(", "say_err!("] {
        for (at, m) in text.match_indices(invocation) {
            let Some(literal) = text[at + m.len()..].trim_start().strip_prefix('"') else {
                continue;
            };
            for name in inline_captures(literal) {
                if name != "style" && !name.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                    found.push(format!(
                        "`{invocation}..)` shows `{{{name}}}` inline, unescaped: pass it as an argument"
                    ));
                }
            }
        }
    }
    found
}

/// The names captured inline (`{name}`, `{name:<8}`) by the format string that starts
/// `text` (just after its opening quote).
fn inline_captures(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '"' => break,
            '{' if chars.peek().is_some_and(|(_, n)| *n == '{') => {
                chars.next();
            }
            '{' => names.extend(leading_ident(&text[i + 1..])),
            _ => {}
        }
    }
    names
}

fn leading_ident(text: &str) -> Option<String> {
    let name: String = text
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// The index of the `}` closing a group whose `{` was just before `text`.
fn matching_brace(text: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    text.len()
}

/// Items of a `use` group separated by top-level commas.
fn split_top_level(text: &str) -> Vec<&str> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0usize, 0);
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&text[start..]);
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_follows_the_layout_rules() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let found = problems(root).unwrap();
        assert!(found.is_empty(), "{}", found.join("\n"));
    }

    #[test]
    fn imports_are_read_from_paths_and_use_groups() {
        let text = "use crate::state::X;\nuse crate::{exec::{A, B}, cli};\nfn f() { crate::target::go(); $crate::x }";
        let found: Vec<String> = crate_imports(text).into_iter().collect();
        assert_eq!(found, ["cli", "exec", "state", "target"]);
    }

    #[test]
    fn broken_rules_are_named() {
        assert!(forbidden("state", "exec").is_some());
        assert!(forbidden("state", "failpoint").is_none());
        assert!(forbidden("failpoint", "state").is_some());
        assert!(forbidden("capability", "runtime").is_some());
        assert!(forbidden("runtime", "capability").is_none());
        assert!(forbidden("exec", "cli").is_some());
        assert!(forbidden("exec", "state").is_none());
        let named = submodules(
            "use crate::capability::registry::link; use crate::capability::db::DbHost; use crate::capability::Grants;",
            "crate::capability::",
            &["registry"],
        );
        assert_eq!(named, ["db"]);
    }

    #[test]
    fn human_output_is_escaped_output() {
        let text = r#"say!("{BOLD}{}{BOLD:#} {style}{n}{style:#} {{literal}} {x:<4}", a); println!("{}", b);"#;
        assert_eq!(
            output_problems(text),
            [
                "prints with `println!(..)`: use `output::say!` and its kin, which escape what they show",
                "`say!(..)` shows `{n}` inline, unescaped: pass it as an argument",
                "`say!(..)` shows `{x}` inline, unescaped: pass it as an argument",
            ]
        );
        assert!(output_problems(r#"say_err!("{FAIL}error{FAIL:#}: {}", m);"#).is_empty());
    }

    #[test]
    fn test_files_may_be_long() {
        assert!(is_test_file(Path::new("host/src/state/runs/tests.rs")));
        assert!(is_test_file(Path::new(
            "host/src/capability/db/sql/tests/tables.rs"
        )));
        assert!(!is_test_file(Path::new("host/src/state/runs.rs")));
    }
}
