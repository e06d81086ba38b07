//! Issue #16 on the native face (`Licensing`, which the C ABI and the command line share):
//! Polar rotates API versions every quarter and 2027-01 adds `member`, `subscription` and
//! `order` (docs/polar-api.md §13); keys can be rotated, and a rotated key answers 404
//! "Not found" like an unknown one. The client must read every served version's answers,
//! never pin a version, and say when a key that was valid here is refused.
#![cfg(not(target_arch = "wasm32"))]

use polar_license::grace::{CheckOutcome, Source};
use polar_license::{
    ActivateRequest, BlockingClient, Licensing, MachineBinding, Reason, ValidateRequest, Verdict,
};
use polar_license_emulator::{
    Emulator, Fault, Seed, SeedMember, SeedOrder, SeedSubscription, API_VERSIONS, DEMO_KEY,
    DEMO_KEY_NO_ACTIVATIONS, DEMO_KEY_USAGE,
};
use polar_license_testkit::{emulator_answering, licensing_builder, ScratchDir};
use std::time::Duration;

const MEMBER_ID: &str = "6b1c9a4e-2f3d-4b5a-8c7d-9e0f1a2b3c4d";

/// The demo seed; its main key has a member, a subscription (cancelled at the period end) and
/// an order.
fn seed() -> Seed {
    let mut seed = Seed::demo();
    let key = &mut seed.license_keys[0];
    key.member = Some(SeedMember {
        id: Some(MEMBER_ID.into()),
        email: Some("seat@acme.io".into()),
        external_id: None,
    });
    key.subscription = Some(SeedSubscription {
        status: Some("active".into()),
        current_period_end: Some("2027-02-01T00:00:00Z".into()),
        cancel_at_period_end: true,
        ends_at: Some("2027-02-01T00:00:00Z".into()),
        ..SeedSubscription::default()
    });
    key.order = Some(SeedOrder::default());
    seed
}

/// An emulator whose current version (the one a request without `Polar-Version` gets) is
/// `version`.
/// An emulator answering as Polar's API `version`, a scratch cache directory, and a client of
/// that emulator keeping its records there (machine "machine-A", 5 s timeouts).
fn up(version: &str) -> (Emulator, ScratchDir, Licensing) {
    let polar = emulator_answering(seed(), version);
    let dir = ScratchDir::new("versions");
    let lic = licensing_builder(&polar, &dir, MachineBinding::Id("machine-A".into()))
        .timeout(Duration::from_secs(5))
        .build()
        .expect("licensing builds");
    (polar, dir, lic)
}

#[test]
fn every_served_version_is_read_and_only_2027_01_carries_member_subscription_order() {
    for version in API_VERSIONS {
        let (_polar, _dir, lic) = up(version);
        let read = match lic.activate(&ActivateRequest::new(DEMO_KEY, "laptop")) {
            Ok(Verdict::Accepted(read)) => read,
            other => panic!("{version}: activate: {other:?}"),
        };
        let validated = match lic
            .validate(&ValidateRequest::new(DEMO_KEY).activation_id(read.activation.id.clone()))
        {
            Ok(Verdict::Accepted(v)) => v,
            other => panic!("{version}: validate: {other:?}"),
        };
        let outcome = lic.check(DEMO_KEY);
        let CheckOutcome::Licensed { license, .. } = &outcome else {
            panic!("{version}: check: {outcome:?}")
        };
        let extended = *version >= "2027-01";
        for (what, l) in [
            ("activate's key", &read.license_key),
            ("validate", &validated.license_key),
            ("check", &license.license_key),
        ] {
            assert_eq!(l.member.is_some(), extended, "{version} {what}");
            assert_eq!(l.subscription.is_some(), extended, "{version} {what}");
            assert_eq!(l.order.is_some(), extended, "{version} {what}");
            if extended {
                assert_eq!(l.member_id.as_deref(), Some(MEMBER_ID));
                let member = l.member.as_ref().expect("member");
                assert_eq!(member.email.as_deref(), Some("seat@acme.io"));
                assert_eq!(member.external_id, None);
                let sub = l.subscription.as_ref().expect("subscription");
                assert_eq!(sub.status, "active");
                assert!(sub.cancel_at_period_end);
                assert_eq!(
                    sub.current_period_end.map(|t| t.unix_timestamp()),
                    Some(1_801_440_000),
                    "2027-02-01T00:00:00Z"
                );
                assert_eq!(sub.ends_at, sub.current_period_end);
                assert_eq!(l.subscription_id.as_deref(), Some(sub.id.as_str()));
                let order = l.order.as_ref().expect("order");
                assert_eq!((order.status.as_str(), order.paid), ("paid", true));
                assert_eq!(l.order_id.as_deref(), Some(order.id.as_str()));
            }
        }
    }
}

#[test]
fn the_2027_fields_survive_the_cache_and_answer_offline() {
    let (polar, dir, lic) = up("2027-01");
    assert!(lic.check(DEMO_KEY).is_licensed());
    polar.set_fault(Some(Fault::CloseImmediately));
    let lic = licensing_builder(&polar, &dir, MachineBinding::Id("machine-A".into()))
        .policy(polar_license::GracePolicy {
            revalidate_after: Duration::ZERO,
            ..polar_license::GracePolicy::default()
        })
        .build()
        .expect("builds");
    let report = lic.check_report(DEMO_KEY);
    let CheckOutcome::Licensed {
        source, license, ..
    } = &report.outcome
    else {
        panic!("{report:?}")
    };
    assert_eq!(*source, Source::Cache);
    assert_eq!(
        report.fallback.as_ref().map(|e| e.reason()),
        Some(Reason::Offline)
    );
    let l = &license.license_key;
    assert_eq!(l.member_id.as_deref(), Some(MEMBER_ID));
    assert!(l
        .subscription
        .as_ref()
        .is_some_and(|s| s.cancel_at_period_end));
    assert!(l.order.as_ref().is_some_and(|o| o.paid));
}

#[test]
fn the_client_sends_no_polar_version_and_follows_the_current_one() {
    // The request carries no Polar-Version header (a pinned version would be removed within
    // about nine months and answer a bare 404 on every route): what the server calls current
    // is what the client reads.
    let client = BlockingClient::builder("2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10")
        .build()
        .expect("client");
    let http = client
        .api()
        .validate_request(&ValidateRequest::new(DEMO_KEY))
        .expect("request");
    assert!(
        http.headers
            .iter()
            .all(|(name, _)| !name.eq_ignore_ascii_case("polar-version")),
        "{:?}",
        http.headers
    );
    // The same client code against a Polar whose current version moved to 2027-01.
    let (_polar, _dir, lic) = up("2027-01");
    match lic.validate(&ValidateRequest::new(DEMO_KEY)) {
        Ok(Verdict::Accepted(v)) => assert!(v.license_key.member.is_some()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_rotated_key_that_was_valid_here_says_so_on_check_validate_and_activate() {
    let (polar, _dir, lic) = up("2026-10");
    assert!(lic.check(DEMO_KEY).is_licensed());
    let successor = polar.rotate_key(DEMO_KEY).expect("rotated");

    // Inside the fresh window check answers from the cache without asking; a plain validate
    // asks Polar now (and its denial updates the record: one truth per key).
    let denial = match lic.validate(&ValidateRequest::new(DEMO_KEY)) {
        Ok(Verdict::Denied(d)) => d,
        other => panic!("{other:?}"),
    };
    assert_eq!(denial.reason, Reason::NotFound);
    assert_eq!(denial.detail, "Not found", "Polar's text stays as sent");
    assert!(denial.previously_valid);
    let hint = denial.hint().expect("a hint");
    assert!(hint.contains("replaced"), "{hint}");
    // One sentence, and the core's one next step beside it (issue #80).
    let said = denial.message().text();
    assert!(said.contains("customer portal"), "{said}");

    // The tombstone keeps the key's last good verdict: every later answer says it too.
    match lic.check(DEMO_KEY) {
        CheckOutcome::Denied(d) => {
            assert_eq!(d.reason, Reason::NotFound);
            assert!(d.previously_valid, "{d:?}");
        }
        other => panic!("{other:?}"),
    }
    match lic.activate(&ActivateRequest::new(DEMO_KEY, "laptop")) {
        Ok(Verdict::Denied(d)) => assert!(d.previously_valid && d.hint().is_some(), "{d:?}"),
        other => panic!("{other:?}"),
    }
    // The successor licenses, and is a key of its own here (never valid before).
    assert!(lic.check(successor.as_str()).is_licensed());
}

#[test]
fn a_key_never_valid_here_is_a_plain_not_found() {
    let (polar, _dir, lic) = up("2026-10");
    for key in ["TYPO-50B22C51-07BD-4160-A61E-19B6CC6ED415", DEMO_KEY_USAGE] {
        // DEMO_KEY_USAGE: known to Polar, never checked here, then rotated.
        if key == DEMO_KEY_USAGE {
            polar.rotate_key(key).expect("rotated");
        }
        match lic.check(key) {
            CheckOutcome::Denied(d) => {
                assert_eq!(d.reason, Reason::NotFound);
                assert!(!d.previously_valid, "{key}: {d:?}");
                assert_eq!(d.hint(), None);
            }
            other => panic!("{key}: {other:?}"),
        }
    }
}

#[test]
fn a_refunded_key_that_was_valid_here_reads_as_such() {
    let (polar, _dir, lic) = up("2026-10");
    assert!(lic.check(DEMO_KEY_NO_ACTIVATIONS).is_licensed());
    polar.update_key(
        DEMO_KEY_NO_ACTIVATIONS,
        polar_license_emulator::KeyUpdate {
            status: Some("revoked".into()),
            ..Default::default()
        },
    );
    match lic.validate(&ValidateRequest::new(DEMO_KEY_NO_ACTIVATIONS)) {
        Ok(Verdict::Denied(d)) => {
            assert_eq!(d.reason, Reason::Inactive);
            assert!(d.previously_valid);
            // What probably happened, with no guess at why (a refund is one cause of many:
            // the relay's webhooks say which, issue #80).
            assert!(d.hint().is_some_and(|h| h.contains("revoked")), "{d:?}");
        }
        other => panic!("{other:?}"),
    }
}
