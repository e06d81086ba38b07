//! The Rust reason table agrees with shared/contract.md §1, read from the file itself.

use polar_license::{Reason, ReasonClass};

#[test]
fn reason_codes_and_classes_match_the_contract() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/contract.md");
    let text = std::fs::read_to_string(path).expect("../shared/contract.md beside the repo");
    let section = text
        .split("## 1.")
        .nth(1)
        .and_then(|s| s.split("## 2.").next())
        .expect("contract section 1");
    let rows: Vec<(String, String)> = section
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let code = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((code.to_string(), cells.get(2)?.to_string()))
        })
        .collect();
    for (code, class) in &rows {
        let reason = Reason::from_code(code).unwrap_or_else(|| panic!("{code} not in Rust"));
        assert_eq!(reason.class().as_str(), class, "{code}");
    }
    // And the other way round: every Rust reason is in the contract, in the contract's order
    // (the order of the numbers: C's and the exit codes' table).
    let codes: Vec<&str> = Reason::ALL.iter().map(|r| r.code()).collect();
    let listed: Vec<&str> = rows.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(codes, listed);
    assert_eq!(Reason::Offline.class(), ReasonClass::Unverified);
}
