//! The plugin's suites as one test binary: each file in this directory is a module of it, as
//! it was a binary of its own before (`autotests = false` in Cargo.toml). Each binary linked
//! Tauri, GTK and WebKitGTK and compiled the mock runtime's generic code again for itself: one
//! binary builds them once (the Tauri stage's test build, scripts/test-tauri.sh; its saving
//! in CONTRIBUTING.md, "What each stage runs"). A suite's tests keep their names under the
//! module of their file (`commands::first_run_…`); `cargo test -p tauri-plugin-polar-license
//! commands::` runs one suite.

/// What the suites share (each used to compile it for itself).
mod common;

#[path = "commands.rs"]
mod commands;
#[path = "guide.rs"]
mod guide;
#[path = "permissions.rs"]
mod permissions;
#[path = "seats.rs"]
mod seats;
#[path = "seller_table.rs"]
mod seller_table;
#[path = "usage.rs"]
mod usage;
#[path = "values.rs"]
mod values;
#[path = "versions.rs"]
mod versions;

/// A suite added to this directory without a module here would never be built (Cargo finds
/// no test on its own with `autotests = false`): every `.rs` file beside this one is a module
/// of it.
#[test]
fn every_suite_in_this_directory_is_a_module_of_this_binary() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let this = include_str!("plugin.rs");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("tests/ listed") {
        let name = entry
            .expect("an entry of tests/")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".rs")
            && name != "plugin.rs"
            && !this.contains(&format!("#[path = \"{name}\"]"))
        {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "suites in tests/ that plugin.rs does not include: {missing:?}"
    );
}

/// The library builds no unit-test harness (`test = false` in Cargo.toml: one of no tests cost a
/// compile and a link with Tauri): a unit test written in src/ would never run, so there is
/// none, and a suite goes in this directory.
#[test]
fn the_library_has_no_unit_test_that_would_not_run() {
    let mut dirs = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    let mut found = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("a directory of src/ listed") {
            let path = entry.expect("an entry of src/").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("a file of src/ read");
            if text.contains("#[test]") || text.contains("cfg(test)") {
                found.push(path.display().to_string());
            }
        }
    }
    assert!(
        found.is_empty(),
        "unit tests in the library, which builds none: {found:?}"
    );
}
