//! The guide shows the sample app: every `<!-- file: app tauri-app/PATH -->` block of
//! docs/guides/tauri.md is examples/tauri-app/PATH byte for byte, and every file of the sample
//! is in the guide (but its `.cargo/config.toml`, which builds it against this checkout, its
//! icon, its README, and what its build makes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The guide's file blocks of the scenario `app`: path → content.
fn guide_files() -> BTreeMap<String, String> {
    let guide = std::fs::read_to_string(root().join("docs/guides/tauri.md")).expect("the guide");
    let mut files = BTreeMap::new();
    let mut lines = guide.lines();
    while let Some(line) = lines.next() {
        let Some(path) = line
            .strip_prefix("<!-- file: app tauri-app/")
            .and_then(|rest| rest.strip_suffix(" -->"))
        else {
            continue;
        };
        let fence = lines.next().expect("a block after the marker");
        assert!(fence.starts_with("```"), "{path}: {fence}");
        let mut content = String::new();
        for line in lines.by_ref() {
            if line == "```" {
                break;
            }
            content.push_str(line);
            content.push('\n');
        }
        assert!(
            files.insert(path.to_string(), content).is_none(),
            "{path} twice"
        );
    }
    files
}

/// The sample's files (relative paths), without what its build makes or installs.
fn sample_files(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    const BUILT: &[&str] = &[
        "node_modules",
        "dist",
        "target",
        "gen",
        "Cargo.lock",
        "package-lock.json",
        ".gitignore",
        ".cargo",
        "icons",
        "README.md",
    ];
    for entry in std::fs::read_dir(dir).expect("the sample") {
        let entry = entry.expect("an entry");
        let name = entry.file_name().to_string_lossy().to_string();
        if BUILT.contains(&name.as_str()) {
            continue;
        }
        let path = format!("{prefix}{name}");
        if entry.path().is_dir() {
            sample_files(&entry.path(), &format!("{path}/"), out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn the_guide_shows_the_sample_app_file_for_file() {
    let shown = guide_files();
    let dir = root().join("examples/tauri-app");
    let mut files = Vec::new();
    sample_files(&dir, "", &mut files);
    files.sort();
    assert_eq!(shown.keys().cloned().collect::<Vec<_>>(), files);
    for (path, content) in &shown {
        let file = std::fs::read_to_string(dir.join(path)).expect("a sample file");
        assert_eq!(
            &file, content,
            "examples/tauri-app/{path} differs from the guide's block"
        );
    }
}
