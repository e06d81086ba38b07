//! What the plugin's suites share: the window's capability resolved by Tauri's ACL from the
//! permission files the crate ships, the plugin's options against an emulator, an app with the
//! plugin and its main window, an invocation as the webview sends it, and the fixtures the
//! guest package's tests read and the answers recorded into them (tests/commands.rs,
//! tests/seller_table.rs, tests/versions.rs, tests/usage.rs, tests/values.rs), and the seller's
//! relay in process (tests/usage.rs, tests/values.rs).
//!
//! Compiled once, in tests/plugin.rs (the suites are one binary); each suite uses part of it.
#![allow(dead_code)]

use polar_license::MachineBinding;
use polar_license_emulator::Emulator;
use polar_license_testkit::{FakeClock, ScratchDir};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{get_ipc_response, mock_builder, mock_context, noop_assets, MockRuntime};
use tauri::utils::acl::capability::Capability;
use tauri::utils::acl::manifest::{Manifest, PermissionFile};
use tauri::utils::acl::resolved::Resolved;
use tauri::utils::platform::Target;
use tauri::webview::InvokeRequest;
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

/// The plugin's options for an app of `polar` with its cache in `dir`, on `clock`: machine
/// `machine-A`, a 10-second timeout.
pub fn options(
    polar: &Emulator,
    dir: &ScratchDir,
    clock: &FakeClock,
) -> polar_license_tauri::Options {
    let reader = clock.reader();
    polar_license_tauri::Options::default()
        .base_url(polar.url())
        .cache_dir(dir.path())
        .configure(move |builder| {
            builder
                .machine_binding(MachineBinding::Id("machine-A".into()))
                .timeout(Duration::from_secs(10))
                .clock(reader)
        })
}

/// Invokes `plugin:polar-license|<command>` in `webview` as `invoke()` there does: the answer
/// as JSON, or the rejection.
pub fn invoke(
    webview: &WebviewWindow<MockRuntime>,
    command: &str,
    args: Value,
) -> Result<Value, Value> {
    let request = InvokeRequest {
        cmd: format!("plugin:polar-license|{command}"),
        callback: CallbackFn(0),
        error: CallbackFn(1),
        url: "tauri://localhost".parse().expect("url"),
        body: InvokeBody::Json(args),
        headers: Default::default(),
        invoke_key: tauri::test::INVOKE_KEY.to_string(),
    };
    get_ipc_response(webview, request)
        .map(|body| body.deserialize::<Value>().expect("a JSON answer"))
}

/// Writes `<target>/tmp/polar-license-tauri/<name>` for the guest package's tests.
pub fn write_fixture(name: &str, value: &serde_json::Value) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("polar-license-tauri");
    std::fs::create_dir_all(&dir).expect("the fixture directory");
    let text = serde_json::to_string_pretty(value).expect("json");
    std::fs::write(dir.join(name), text).expect("the fixture");
}

/// A scenario's file of answers for the guest package's tests, `answers-<name>.json`: every
/// invocation (or other entry) added in order, the file written again after each.
pub struct Answers {
    name: String,
    entries: std::sync::Mutex<Vec<Value>>,
}

impl Answers {
    /// An empty file named `answers-<name>.json`.
    pub fn new(name: &str) -> Answers {
        Answers {
            name: name.to_string(),
            entries: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Adds `entry` and writes the file.
    pub fn record(&self, entry: Value) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.push(entry);
        write_fixture(
            &format!("answers-{}.json", self.name),
            &Value::Array(entries.clone()),
        );
    }

    /// Invokes `command` in `webview` as [`invoke`] does, checks that the answer carries none
    /// of `secrets` (whole keys), and records it with its arguments.
    pub fn invoke(
        &self,
        webview: &WebviewWindow<MockRuntime>,
        command: &str,
        args: Value,
        secrets: &[&str],
    ) -> Result<Value, Value> {
        let answer = invoke(webview, command, args.clone());
        let text = format!("{answer:?}");
        for secret in secrets {
            assert!(
                !text.contains(secret),
                "{command} answered the whole key: {text}"
            );
        }
        self.record(match &answer {
            Ok(value) => json!({ "command": command, "args": args, "ok": value }),
            Err(value) => json!({ "command": command, "args": args, "err": value }),
        });
        answer
    }
}

/// The seller's relay in process in front of the emulator at `polar_url`, signing with
/// `signer`, its store in memory with `store`'s options and `webhook_secret`, its rate limits
/// off (the suites' many calls from one address).
pub fn seller_relay(
    polar_url: String,
    signer: polar_license::lease::SigningKey,
    store: polar_license_relay::store::StoreOptions,
    webhook_secret: Option<String>,
) -> polar_license_relay::Running {
    let token = polar_license_emulator::DEMO_TOKEN;
    seller_relay_as(polar_url, token, signer, store, webhook_secret)
}

/// [`seller_relay`] asking Polar with the organization token `token`.
pub fn seller_relay_as(
    polar_url: String,
    token: &str,
    signer: polar_license::lease::SigningKey,
    store: polar_license_relay::store::StoreOptions,
    webhook_secret: Option<String>,
) -> polar_license_relay::Running {
    use polar_license_relay::{Limits, Rate};
    let mut config = polar_license_relay::RelayConfig::new(
        polar_license::Server::Custom(polar_url),
        polar_license::AccessToken::new(token),
        signer,
    );
    config.limits = Limits {
        per_ip: Rate::new(0, 0),
        per_key: Rate::new(0, 0),
        ..Limits::default()
    };
    config.store = Some(polar_license_relay::StoreConfig {
        backend: std::sync::Arc::new(polar_license_relay::store::MemoryBackend::new(1_000)),
        options: store,
        webhook_secret,
    });
    let upstream =
        polar_license::UreqTransport::new(Duration::from_secs(2), Duration::from_secs(5), 1 << 20);
    let relay = polar_license_relay::Relay::new(config, Box::new(upstream)).expect("the relay");
    polar_license_relay::serve(std::sync::Arc::new(relay), "127.0.0.1:0")
        .expect("the relay listens")
}
