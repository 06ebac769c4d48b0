//! This crate's Cargo.toml says what README's "Add it" block and the testing guide say: the
//! doctests prove that the docs compile with these dependencies, and this proves that these
//! dependencies are the documented ones.

use std::collections::BTreeMap;
use std::path::Path;

/// Dependency lines by table (`[dependencies]`, `[dev-dependencies]`), trimmed, without
/// blank lines and comments, in order.
type Tables = BTreeMap<String, Vec<String>>;

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The first ```toml block after `heading` (or in the whole text when `heading` is empty).
fn toml_block<'a>(markdown: &'a str, heading: &str) -> &'a str {
    let from = markdown
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?}"));
    let rest = &markdown[from..];
    let start = rest.find("```toml\n").expect("a ```toml block") + "```toml\n".len();
    let end = start + rest[start..].find("```").expect("the block's end");
    &rest[start..end]
}

fn tables(toml: &str) -> Tables {
    let mut tables = Tables::new();
    let mut current = None;
    for line in toml.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            current = Some(line.to_owned());
            continue;
        }
        if let Some(table) = &current {
            tables
                .entry(table.clone())
                .or_default()
                .push(line.to_owned());
        }
    }
    tables
}

/// A line of this crate's Cargo.toml as the docs would write it: without the path, and a
/// table holding only a version written as the version.
fn as_documented(line: &str) -> String {
    let line = match line.split_once(", path = \"../..") {
        Some((before, after)) => before.to_owned() + &after[after.find('"').unwrap() + 1..],
        None => line.to_owned(),
    };
    match line.split_once(" = { version = ") {
        Some((name, rest)) if rest.ends_with(" }") && !rest.contains(',') => {
            format!("{name} = {}", &rest[..rest.len() - 2])
        }
        _ => line,
    }
}

#[test]
fn the_dependencies_are_the_documented_ones() {
    let readme = read("../../README.md");
    let documented = tables(toml_block(&readme, "\n## Add it\n"));
    let manifest = read("Cargo.toml");
    let ours: Tables = tables(&manifest)
        .into_iter()
        .filter(|(table, _)| table.ends_with("dependencies]"))
        .map(|(table, lines)| (table, lines.iter().map(|l| as_documented(l)).collect()))
        .collect();
    assert_eq!(
        ours, documented,
        "tests/newcomer/Cargo.toml and README's Add it"
    );

    let guide = read("../../docs/testing.md");
    let testing = tables(toml_block(&guide, ""));
    assert_eq!(
        testing.get("[dev-dependencies]"),
        documented.get("[dev-dependencies]"),
        "the testing guide's [dev-dependencies] and README's"
    );
    assert_eq!(
        testing.len(),
        1,
        "the testing guide adds dev-dependencies only"
    );
}

#[test]
fn a_documented_line_reads_as_written() {
    assert_eq!(
        as_documented(r#"mka1-auth = { version = "0.1", path = "../.." }"#),
        r#"mka1-auth = "0.1""#
    );
    assert_eq!(
        as_documented(
            r#"mka1-auth = { version = "0.1", path = "../..", features = ["dev-issuer"] }"#
        ),
        r#"mka1-auth = { version = "0.1", features = ["dev-issuer"] }"#
    );
    assert_eq!(as_documented(r#"http = "1""#), r#"http = "1""#);
}
