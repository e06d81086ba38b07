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
