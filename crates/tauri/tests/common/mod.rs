//! What the plugin's suites share: the window's capability resolved by Tauri's ACL from the
//! permission files the crate ships, an app with the plugin and its main window, and the
//! fixtures the guest package's tests read (tests/commands.rs, tests/seller_table.rs,
//! tests/versions.rs).
//!
//! Each suite compiles this module on its own and uses part of it.
#![allow(dead_code)]

use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tauri::test::{mock_builder, mock_context, noop_assets, MockRuntime};
use tauri::utils::acl::capability::Capability;
use tauri::utils::acl::manifest::{Manifest, PermissionFile};
use tauri::utils::acl::resolved::Resolved;
use tauri::utils::platform::Target;
use tauri::{App, WebviewWindow, WebviewWindowBuilder};

/// The plugin's permission files (permissions/**/*.toml), as Tauri's build reads them.
pub fn plugin_manifest() -> Manifest {
    fn toml_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("permissions/") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                toml_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "toml") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    toml_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("permissions"),
        &mut files,
    );
    let files = files
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).expect("a permission file");
            toml::from_str::<PermissionFile>(&text).expect("a permission file Tauri reads")
        })
        .collect();
    Manifest::new(files, None)
}

/// A mock context whose main window has a capability granting `permissions`, resolved by
/// Tauri's ACL against the plugin's permission files (as an app's build resolves them).
pub fn context_allowing(permissions: &[&str]) -> tauri::Context<MockRuntime> {
    let acl = BTreeMap::from([("polar-license".to_string(), plugin_manifest())]);
    let capability: Capability = serde_json::from_value(json!({
        "identifier": "main",
        "windows": ["main"],
        "permissions": permissions,
    }))
    .expect("a capability");
    let capabilities = BTreeMap::from([("main".to_string(), capability)]);
    let resolved =
        Resolved::resolve(&acl, capabilities, Target::current()).expect("the capability resolves");
    let mut context = mock_context(noop_assets());
    *context.runtime_authority_mut() = tauri::runtime_authority!(acl, resolved);
    context
}

/// An app on the mock runtime with the plugin built from `options` for `organization_id`,
/// its main window granted `permissions` (Tauri's ACL, as above), and that window.
pub fn app_with_window(
    organization_id: impl Into<String>,
    options: polar_license_tauri::Options,
    permissions: &[&str],
) -> (App<MockRuntime>, WebviewWindow<MockRuntime>) {
    let app = mock_builder()
        .plugin(polar_license_tauri::init(organization_id, options))
        .build(context_allowing(permissions))
        .expect("the app builds");
    let webview = WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .expect("a webview");
    (app, webview)
}

/// Writes `<target>/tmp/polar-license-tauri/<name>` for the guest package's tests.
pub fn write_fixture(name: &str, value: &serde_json::Value) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("polar-license-tauri");
    std::fs::create_dir_all(&dir).expect("the fixture directory");
    let text = serde_json::to_string_pretty(value).expect("json");
    std::fs::write(dir.join(name), text).expect("the fixture");
}
