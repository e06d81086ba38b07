//! The Rust reason table is the one documented in docs/interfaces.md §1 (codes, classes and
//! numbers, in order), read from the page itself; and that page agrees with the contract the
//! project was given, when it is beside the repository (CI puts it there).

use polar_license::{Reason, ReasonClass};
use std::path::Path;

/// The rows of a Markdown page's section `## 1.` table: the first two cells, and the third
/// when `numbered`.
fn section_1_rows(text: &str, numbered: bool) -> Vec<(String, String, Option<u32>)> {
    let section = text
        .split("## 1.")
        .nth(1)
        .and_then(|s| s.split("## 2.").next())
        .expect("a section 1 before a section 2");
    section
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let code = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let number = if numbered {
                Some(cells.get(3)?.parse().ok()?)
            } else {
                None
            };
            Some((code.to_string(), cells.get(2)?.to_string(), number))
        })
        .collect()
}

#[test]
fn reason_codes_classes_and_numbers_are_the_documented_ones() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/interfaces.md");
    let text = std::fs::read_to_string(&path).expect("docs/interfaces.md");
    let rows = section_1_rows(&text, true);
    let documented: Vec<(&str, &str, u32)> = rows
        .iter()
        .map(|(c, k, n)| (c.as_str(), k.as_str(), n.unwrap_or(0)))
        .collect();
    let rust: Vec<(&str, &str, u32)> = Reason::ALL
        .iter()
        .map(|r| (r.code(), r.class().as_str(), r.number()))
        .collect();
    // Every reason, in the order of its number, with its class: both ways round.
    assert_eq!(rust, documented);
    for r in Reason::ALL {
        assert_eq!(Reason::from_code(r.code()), Some(r));
    }
    assert_eq!(Reason::Offline.class(), ReasonClass::Unverified);
}

/// The page restates the contract the project was given (`../shared/contract.md`, an input of
/// CI, not of the library): the same codes and classes, in the same order, first; then only
/// the page's additions (the contract's rule: add, never break), each saying so.
#[test]
fn the_documented_table_is_the_given_contract() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let given = root.join("../shared/contract.md");
    let Ok(contract) = std::fs::read_to_string(&given) else {
        eprintln!(
            "{} is not beside the repository: nothing to compare",
            given.display()
        );
        return;
    };
    let docs =
        std::fs::read_to_string(root.join("docs/interfaces.md")).expect("docs/interfaces.md");
    let strip = |rows: Vec<(String, String, Option<u32>)>| -> Vec<(String, String)> {
        rows.into_iter().map(|(c, k, _)| (c, k)).collect()
    };
    let documented = strip(section_1_rows(&docs, true));
    let given = strip(section_1_rows(&contract, false));
    assert!(
        documented.len() >= given.len(),
        "the page lacks contract rows: {documented:?} against {given:?}"
    );
    let (same, added) = documented.split_at(given.len());
    assert_eq!(same, given.as_slice());
    for (code, _) in added {
        let row = docs
            .lines()
            .find(|l| l.starts_with(&format!("| `{code}` |")))
            .unwrap_or_default();
        assert!(
            row.contains("(an addition"),
            "{code} is not in the contract and its row does not say it is an addition: {row}"
        );
    }
}
