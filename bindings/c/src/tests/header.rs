//! The committed C header agrees with the Rust side: the reason enum with `Reason::ALL`
//! (numbers and codes, docs/interfaces.md §1), the version macros with Cargo.toml, and every exported
//! function of `src/ffi` is declared. (The byte-for-byte drift check against a fresh cbindgen
//! run is in scripts/test-c.sh, which has the pinned cbindgen.)

use polar_license::Reason;
use std::path::Path;

fn header() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/polar_license.h");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The number `NAME = N,` gives in the header, if any.
fn enum_value(header: &str, name: &str) -> Option<u32> {
    header.lines().find_map(|line| {
        let (lhs, rhs) = line.trim().trim_end_matches(',').split_once(" = ")?;
        (lhs == name).then(|| rhs.parse().ok())?
    })
}

#[test]
fn the_c_reason_enum_is_the_reason_table() {
    let h = header();
    assert_eq!(enum_value(&h, "POLAR_LICENSE_REASON_NONE"), Some(0));
    for r in Reason::ALL {
        let name = format!("POLAR_LICENSE_REASON_{}", r.code().to_ascii_uppercase());
        assert_eq!(enum_value(&h, &name), Some(r.number()), "{name}");
    }
    let declared = h
        .lines()
        .filter(|l| l.trim_start().starts_with("POLAR_LICENSE_REASON_"))
        .count();
    assert_eq!(
        declared,
        Reason::ALL.len() + 1,
        "no C reason without a Rust one"
    );
}

/// Each `PREFIX_NAME` of the header has its number.
fn numbers_are(prefix: &str, numbers: &[(&str, u32)]) {
    let h = header();
    for (name, n) in numbers {
        let name = format!("{prefix}{name}");
        assert_eq!(enum_value(&h, &name), Some(*n), "{name}");
    }
}

#[test]
fn the_status_numbers_are_stable() {
    numbers_are(
        "POLAR_LICENSE_STATUS_",
        &[
            ("OK", 0),
            ("NULL_ARGUMENT", 1),
            ("INVALID_UTF8", 2),
            ("INVALID_INPUT", 3),
            ("PANIC", 4),
            ("CACHE_ERROR", 5),
        ],
    );
}

#[test]
fn the_portal_error_numbers_are_stable() {
    numbers_are(
        "POLAR_LICENSE_PORTAL_ERROR_",
        &[
            ("NONE", 0),
            ("INVALID_INPUT", 1),
            ("OFFLINE", 2),
            ("CODE_INVALID_OR_EXPIRED", 3),
            ("SESSION_EXPIRED", 4),
            ("NOT_SIGNED_IN", 5),
            ("DEVICE_MANAGEMENT_OFF", 6),
            ("RATE_LIMITED", 7),
            ("KEY_NOT_FOUND", 8),
            ("CUSTOMER_SELECTION_REQUIRED", 9),
            ("REFUSED", 10),
        ],
    );
}

#[test]
fn the_feature_why_numbers_are_stable() {
    numbers_are(
        "POLAR_LICENSE_FEATURE_WHY_",
        &[
            ("NONE", 0),
            ("GRANTED", 1),
            ("LICENSE_NOT_VALID", 2),
            ("NOT_GRANTED_BY_BENEFIT", 3),
            ("UNKNOWN_FEATURE", 4),
            ("USAGE_EXHAUSTED", 5),
        ],
    );
}

#[test]
fn the_version_macros_follow_cargo_toml() {
    let h = header();
    let define = |name: &str| {
        h.lines()
            .find_map(|l| l.strip_prefix(&format!("#define {name} ")))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no #define {name}"))
            .to_string()
    };
    assert_eq!(
        define("POLAR_LICENSE_VERSION"),
        format!("\"{}\"", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        define("POLAR_LICENSE_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MAJOR")
    );
    assert_eq!(
        define("POLAR_LICENSE_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_MINOR")
    );
    assert_eq!(
        define("POLAR_LICENSE_VERSION_PATCH"),
        env!("CARGO_PKG_VERSION_PATCH")
    );
}

#[test]
fn every_exported_function_is_declared() {
    let h = header();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.map(|e| e.path()).unwrap_or_default();
        let source = std::fs::read_to_string(&path).unwrap_or_default();
        for line in source.lines() {
            let Some(rest) = line.trim().strip_prefix("pub extern \"C\" fn ") else {
                continue;
            };
            let name = rest.split('(').next().unwrap_or_default();
            assert!(
                h.contains(&format!(" {name}(")) || h.contains(&format!("*{name}(")),
                "{name} (in {}) is missing from the header: regenerate it",
                path.display()
            );
            assert!(name.starts_with("polar_license_"), "{name}");
            count += 1;
        }
    }
    assert!(count > 40, "found only {count} exported functions");
}
