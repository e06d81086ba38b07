//! Polar's January 2027 rotation, rehearsed on the native face (issue #78; `Licensing`, which
//! the C ABI, the command line, Python and Tauri share): the emulator removes `2026-04` and
//! makes `2027-01` current between two checks, through its control route as a separate-process
//! test does it. Before, the switch, after: the same verdicts, every request named
//! (`User-Agent`) and pinned to no version; the bare 404 a pinned build hears that day is never
//! read as a lost license. And no face's source pins a version due for removal.
#![cfg(not(target_arch = "wasm32"))]

use std::path::Path;
use std::time::Duration;

use polar_license::grace::{CheckOutcome, Source};
use polar_license::proto::USER_AGENT;
use polar_license::{
    ActivateRequest, GracePolicy, Licensing, MachineBinding, Reason, ValidateRequest, Verdict,
};
use polar_license_emulator::{
    Emulator, Fault, Options, Seed, DEMO_KEY, DEMO_KEY_REVOKED, DUE_FOR_REMOVAL,
};
use polar_license_testkit::http::raw_exchange;
use polar_license_testkit::{licensing_builder, ScratchDir};

/// A client of `polar` caching in `dir` that asks Polar at every check (no fresh window).
fn client(polar: &Emulator, dir: &ScratchDir) -> Licensing {
    licensing_builder(polar, dir, MachineBinding::Id("machine-A".into()))
        .timeout(Duration::from_secs(5))
        .policy(GracePolicy {
            revalidate_after: Duration::ZERO,
            ..GracePolicy::default()
        })
        .build()
        .expect("licensing builds")
}

/// `POST /__emulator/api-versions` with `body`: its status.
fn rotate(polar: &Emulator, body: &str) -> u16 {
    let r = raw_exchange(
        polar.port(),
        &format!(
            "POST /__emulator/api-versions HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    r.status
}

/// What the client reads of `key` now: licensed (and whether from Polar), or the denial's
/// reason.
fn verdict(lic: &Licensing, key: &str) -> (Result<Source, Reason>, Option<Reason>) {
    let report = lic.check_report(key);
    let fallback = report.fallback.as_ref().map(|e| e.reason());
    match report.outcome {
        CheckOutcome::Licensed { source, .. } => (Ok(source), fallback),
        CheckOutcome::Denied(d) => (Err(d.reason), fallback),
        other => panic!("{key}: {other:?}"),
    }
}

#[test]
fn the_native_client_keeps_every_verdict_through_the_rotation_day() {
    let polar = Emulator::start(Seed::demo(), Options::default()).expect("emulator");
    let dir = ScratchDir::new("rotation-day");
    let lic = client(&polar, &dir);

    // Before: 2026-10 current, 2026-04 still served.
    match lic.activate(&ActivateRequest::new(DEMO_KEY, "laptop")) {
        Ok(Verdict::Accepted(_)) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(verdict(&lic, DEMO_KEY), (Ok(Source::Online), None));
    assert_eq!(
        verdict(&lic, DEMO_KEY_REVOKED),
        (Err(Reason::Inactive), None)
    );

    // The switch.
    let status = rotate(
        &polar,
        r#"{"served":["2026-10","2027-01"],"current":"2027-01","due_for_removal":[]}"#,
    );
    assert_eq!(status, 200);

    // After: the same verdicts, in 2027-01's shape.
    assert_eq!(verdict(&lic, DEMO_KEY), (Ok(Source::Online), None));
    assert_eq!(
        verdict(&lic, DEMO_KEY_REVOKED),
        (Err(Reason::Inactive), None)
    );
    match lic.validate(&ValidateRequest::new(DEMO_KEY)) {
        Ok(Verdict::Accepted(v)) => assert_eq!(v.license_key.key.expose(), DEMO_KEY),
        other => panic!("{other:?}"),
    }

    // The bare 404 a build pinned to the removed version hears on every route: no verdict
    // (the grace cache answers, the failure a protocol error), never "not found".
    polar.set_fault(Some(Fault::Respond {
        status: 404,
        headers: vec![("content-type".into(), "application/json".into())],
        body: r#"{"detail":"Not Found"}"#.into(),
    }));
    let (read, fallback) = verdict(&lic, DEMO_KEY);
    assert_eq!(read, Ok(Source::Cache));
    assert!(
        fallback.is_some_and(|r| r != Reason::NotFound),
        "{fallback:?}"
    );
    polar.set_fault(None);
    assert_eq!(verdict(&lic, DEMO_KEY), (Ok(Source::Online), None));

    // Every request named the client and pinned no version.
    let seen = polar.seen_requests();
    assert!(seen.len() >= 6, "{seen:?}");
    for r in &seen {
        assert_eq!(r.user_agent.as_deref(), Some(USER_AGENT), "{r:?}");
        assert_eq!(r.polar_version, None, "{r:?}");
    }
}

// ---- No face pins a version due for removal -------------------------------------------------

/// The faces' sources (what sends requests to Polar on a customer's machine or a seller's
/// server), relative to the checkout.
const FACES: &[&str] = &[
    "src",
    "crates/cli/src",
    "crates/relay/src",
    "crates/tauri/src",
    "crates/tauri/guest-js",
    "bindings/c/src",
    "bindings/c/include",
    "bindings/wasm/src",
    "bindings/relay-wasm/src",
    "bindings/ed25519-wasm/src",
    "bindings/python/src",
    "bindings/python/python",
    "pkg-template",
];

/// Files that name a version due for removal without sending it: the relay's table of payload
/// versions it reads (crate::payload_versions), the Python and npm emulators' options
/// documented.
const NAMES_WITHOUT_SENDING: &[&str] = &[
    "crates/relay/src/payload_versions.rs",
    "bindings/python/python/polar_license/emulator.py",
    "pkg-template/emulator.d.ts",
];

/// Every file under `dir` (no `node_modules`, no build output).
fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if path.is_dir() {
            if !matches!(name.as_str(), "node_modules" | "target" | "dist" | "pkg") {
                files(&path, out);
            }
        } else if [".rs", ".js", ".mjs", ".cjs", ".ts", ".py", ".c", ".h"]
            .iter()
            .any(|ext| name.ends_with(ext))
        {
            out.push(path);
        }
    }
}

/// A quoted version (`"2026-04"`, `'2026-04'`, `` `2026-04` ``): what a pin is written as (a
/// date, `"2026-04-01"`, is not one).
fn quoted(text: &str, version: &str) -> bool {
    ['"', '\'', '`']
        .iter()
        .any(|q| text.contains(&format!("{q}{version}{q}")))
}

/// Names of the tables that list versions to read or to warn about, never to send: a line
/// declaring one names a version without pinning it (a seller-facing check, the doctor's or the
/// relay's, lists the versions due for removal).
const TABLES: &[&str] = &[
    "DUE_FOR_REMOVAL",
    "due_for_removal",
    "PAYLOAD_VERSIONS",
    "API_VERSIONS",
];

/// Whether `line` writes `version` as a value (a pin) outside a table of [`TABLES`].
fn pinned(line: &str, version: &str) -> bool {
    quoted(line, version) && !TABLES.iter().any(|table| line.contains(table))
}

#[test]
fn no_face_pins_a_version_due_for_removal() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = Vec::new();
    for face in FACES {
        files(&root.join(face), &mut all);
    }
    assert!(
        all.len() > 100,
        "the faces' sources were found: {}",
        all.len()
    );
    let mut pins = Vec::new();
    for path in &all {
        let relative = path
            .strip_prefix(root)
            .unwrap_or(path)
            .to_string_lossy()
            .replace('\\', "/");
        if NAMES_WITHOUT_SENDING.contains(&relative.as_str()) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        for (n, line) in text.lines().enumerate() {
            for version in DUE_FOR_REMOVAL {
                if pinned(line, version) {
                    pins.push(format!("{relative}:{}: {version}", n + 1));
                }
            }
        }
    }
    assert!(
        pins.is_empty(),
        "a face names a version Polar removes at its next release (a pinned build stops that \
         day: send no Polar-Version): {pins:?}"
    );
    // The relay's table of versions due for removal is the emulator's.
    assert_eq!(
        polar_license_relay_due_for_removal(),
        DUE_FOR_REMOVAL,
        "crates/relay/src/payload_versions.rs and the emulator's list agree"
    );
}

/// The relay's list, read from its source (the root crate does not depend on the relay).
fn polar_license_relay_due_for_removal() -> Vec<&'static str> {
    let text = include_str!("../crates/relay/src/payload_versions.rs");
    let line = text
        .lines()
        .find(|l| l.starts_with("pub const DUE_FOR_REMOVAL"))
        .unwrap_or_default();
    DUE_FOR_REMOVAL
        .iter()
        .copied()
        .filter(|v| line.contains(&format!("\"{v}\"")))
        .collect()
}

#[test]
fn the_scan_finds_a_pin() {
    // The rule the scan applies, tried on what a pin looks like in each language.
    for pinned in [
        r#"headers.push(("Polar-Version", "2026-04"));"#,
        r#"headers: { 'Polar-Version': '2026-04' }"#,
        "version = `2026-04`",
    ] {
        assert!(quoted(pinned, "2026-04"), "{pinned}");
    }
    assert!(!quoted(r#""2026-04-01T00:00:00Z""#, "2026-04"));
    assert!(!pinned(
        r#"pub const DUE_FOR_REMOVAL: &[&str] = &["2026-04"];"#,
        "2026-04"
    ));
    assert!(pinned(r#"let v = "2026-04";"#, "2026-04"));
}
