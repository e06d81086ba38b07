//! Issue #15 item 4: the library's events through the `log` facade: one line per request and
//! one per grace decision, the key only ever redacted, nothing when no logger is installed.
#![cfg(not(target_arch = "wasm32"))]

use polar_license::{ActivateRequest, GracePolicy, MachineBinding, ValidateRequest};
use polar_license_emulator::{Emulator, Fault, Options, Seed, DEMO_KEY};
use polar_license_testkit::{licensing_builder, logs, ScratchDir};
use std::time::Duration;

/// One test (one logger per process): requests and decisions, redacted.
#[test]
fn one_line_per_request_and_per_decision_and_keys_redacted() {
    let polar = Emulator::start(Seed::demo(), Options::default()).expect("emulator");
    let dir = ScratchDir::new("log");
    let l = licensing_builder(&polar, &dir, MachineBinding::Id("machine-A".into()))
        .policy(GracePolicy {
            revalidate_after: Duration::ZERO,
            ..GracePolicy::default()
        })
        .build()
        .expect("builds");

    // No logger yet: the library is silent (and the calls work the same).
    assert!(l.check(DEMO_KEY).is_licensed());
    assert!(logs::lines().is_empty());

    logs::capture();
    polar.reset_request_count();

    assert!(l.check(DEMO_KEY).is_licensed()); // online
    polar.set_fault(Some(Fault::CloseImmediately));
    assert!(l.check(DEMO_KEY).is_licensed()); // from the cache after offline
    polar.set_fault(None);
    let typo = "TYPO-50B22C51-07BD-4160-A61E-19B6CC6ED415";
    assert!(l.validate(&ValidateRequest::new(typo)).is_ok());
    assert!(l
        .activate(&ActivateRequest::new(DEMO_KEY, "laptop"))
        .is_ok_and(|v| v.is_accepted()));
    assert!(l.deactivate(DEMO_KEY, None).is_ok_and(|v| v.is_accepted()));

    let lines = logs::lines();
    for line in &lines {
        eprintln!("{line}");
    }
    let ours: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains(" polar_license: "))
        .collect();
    let requests: Vec<&&String> = ours.iter().filter(|l| l.starts_with("DEBUG")).collect();
    let decisions: Vec<&&String> = ours.iter().filter(|l| l.starts_with("INFO")).collect();
    assert_eq!(requests.len() as u64, polar.request_count(), "{ours:?}");
    assert_eq!(requests.len(), 5, "{ours:?}");
    assert_eq!(decisions.len(), 2, "{ours:?}");
    assert!(
        decisions[0].ends_with("check ****-4C5B6A: licensed online"),
        "{decisions:?}"
    );
    // The grace counted from the online check (7 days), shown to the hour rounded down: a
    // second between the two checks (a loaded machine) shows 6d 23h.
    assert!(
        ["7d 0h", "6d 23h"]
            .iter()
            .any(|left| decisions[1].contains(&format!(
                "check ****-4C5B6A: licensed from the cache after offline, grace {left} left"
            ))),
        "{decisions:?}"
    );
    assert!(
        requests
            .iter()
            .any(|l| l.contains("validate ****-6ED415: denied not_found (404 \"Not found\")")),
        "{requests:?}"
    );
    assert!(requests
        .iter()
        .any(|l| l.contains("activate ****-4C5B6A: accepted in")));
    assert!(requests
        .iter()
        .any(|l| l.contains("deactivate ****-4C5B6A: accepted in")));
    assert!(requests
        .iter()
        .any(|l| l.contains("validate ****-4C5B6A: offline in")));
    // The keys never appear whole, nor any part of them before the last six characters.
    for line in &lines {
        for key in [DEMO_KEY, typo] {
            assert!(!line.contains(key), "{line}");
            assert!(!line.contains(&key[..key.len() - 6]), "{line}");
        }
    }
}
