//! `polar_license_rules::check_body` (what the relay and the emulator run on every license
//! route's body, before anything else) and its JSON parser on arbitrary bytes: never a panic
//! or a stack overflow, nesting never deeper than `MAX_DEPTH` (issue #62: 10,000 `[` aborted
//! the relay), duplicate-key work O(n log n) in the body's length, a refusal is Polar's 400
//! or 422, and a parsed value survives the writer and the parser unchanged.
//!
//! Input: `[op % 3][content-type % 4][body...]`.

use polar_license_rules::check_body;
use polar_license_rules::json::{loads, loads_bytes, loads_counted, J, MAX_DEPTH};

const OPS: [&str; 3] = ["validate", "activate", "deactivate"];
const TYPES: [Option<&str>; 4] = [
    None,
    Some("application/json"),
    Some("application/vnd.api+json; charset=utf-8"),
    Some("text/plain"),
];

fn depth_of(v: &J) -> usize {
    match v {
        J::Arr(items) => 1 + items.iter().map(depth_of).max().unwrap_or(0),
        J::Obj(items) => 1 + items.iter().map(|(_, v)| depth_of(v)).max().unwrap_or(0),
        _ => 0,
    }
}

/// The target on one input, as libFuzzer gives it (a panic is a finding).
pub fn run(data: &[u8]) {
    let (op, content_type, body) = match data {
        [op, ct, body @ ..] => (OPS[*op as usize % 3], TYPES[*ct as usize % 4], body),
        _ => return,
    };
    match check_body(op, content_type, body) {
        None => panic!("{op} is a route"),
        Some(Ok(checked)) => assert!(checked.conditions.len() <= 50 && checked.meta.len() <= 50),
        Some(Err(refusal)) => {
            assert!(matches!(refusal.status, 400 | 422), "{}", refusal.status);
            assert_eq!(refusal.content_type, "application/json");
        }
    }
    let Ok(value) = loads_bytes(body) else { return };
    assert!(depth_of(&value) <= MAX_DEPTH, "nested past the limit");
    if let Ok(text) = std::str::from_utf8(body) {
        let chars = text.chars().count() as u64;
        let log = 64 - chars.max(2).leading_zeros() as u64;
        let (_, compares) = loads_counted(text);
        assert!(
            compares <= 2 * chars * log + 32 * chars,
            "{compares} key comparisons for {chars} characters"
        );
    }
    // Non-finite floats are not written (Python's `allow_nan=False`).
    if let Ok(written) = value.to_json() {
        assert_eq!(loads(&written), Ok(value), "written as {written}");
    }
}
