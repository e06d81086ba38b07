//! Self-healing activations (issue #80) on the native client: a reinstall on the same machine
//! at the activation limit (its cache gone) ends licensed with the activation this machine
//! already holds, found by the fingerprint its `meta` records, and takes none; a new machine
//! at the limit is refused as before and sees the rows told apart (its own, none; the others'
//! labels and platforms). Through the seller's relay and through a customer session.
#![cfg(not(target_arch = "wasm32"))]

use polar_license::{ActivateRequest, Licensing, MachineBinding, Reason, Verdict};
use polar_license_emulator::{Emulator, DEMO_ORGANIZATION_ID};
use polar_license_testkit::{cli_bin, relay_in_front_of, signed_in, ScratchDir};

const EMAIL: &str = "jane.doe@gmail.com";
const KEY: &str = "HEAL-6B1D2C3E-4F5A-4B6C-8D7E-9F0A1B2C3D4E";

/// The demo seed with one more key of the demo customer: one activation only.
fn emulator() -> Emulator {
    polar_license_testkit::demo_with_one_seat_key(KEY, EMAIL)
}

/// An install on the machine `machine` with its own cache `dir`, listing through `relay`.
fn install(em: &Emulator, dir: &ScratchDir, machine: &str, relay: Option<&str>) -> Licensing {
    let builder = Licensing::builder(DEMO_ORGANIZATION_ID)
        .base_url(em.url())
        .cache_dir(&**dir)
        .machine_binding(MachineBinding::Id(machine.to_string()));
    match relay {
        Some(relay) => builder.relay_url(relay),
        None => builder,
    }
    .build()
    .expect("licensing")
}

fn activated_id(lib: &Licensing, label: &str) -> String {
    match lib.activate(&ActivateRequest::new(KEY, label)) {
        Ok(Verdict::Accepted(read)) => read.activation.id,
        other => panic!("activate: {other:?}"),
    }
}

#[test]
fn a_reinstall_at_the_limit_adopts_its_own_activation_through_the_relay() {
    let em = emulator();
    let relay_dir = ScratchDir::new("heal-relay");
    let relay = relay_in_front_of(&cli_bin(), &em.url(), &relay_dir);
    let (first, again, other) = (
        ScratchDir::new("heal-first"),
        ScratchDir::new("heal-again"),
        ScratchDir::new("heal-other"),
    );
    let lib = install(&em, &first, "machine-A", Some(&relay.url));
    let id = activated_id(&lib, "Jane's laptop");
    // The activation records the salted fingerprint (never the machine id) and the platform.
    let live = em.activations(KEY);
    assert_eq!(live.len(), 1);
    let fingerprint = lib.machine_fingerprint().expect("bound").to_string();
    assert_eq!(live[0]["meta"]["machine"], fingerprint.as_str());
    assert_ne!(fingerprint, "machine-A");
    let platform = format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH);
    assert_eq!(live[0]["meta"]["platform"], platform.as_str());

    // The reinstall: the same machine, a new cache. Licensed, the same activation, none taken.
    let reinstalled = install(&em, &again, "machine-A", Some(&relay.url));
    let (activated, adopted, _) =
        reinstalled.activate_via(&ActivateRequest::new(KEY, "Jane's laptop"), None, None);
    match activated.online {
        Ok(Verdict::Accepted(read)) => assert_eq!(read.activation.id, id),
        other => panic!("the reinstall's activate: {other:?}"),
    }
    assert_eq!(adopted.as_deref(), Some(id.as_str()));
    assert!(activated.cache_error.is_none());
    assert_eq!(em.activations(KEY).len(), 1, "no new activation");
    // The record remembers it: a check licenses from the cache, validating that activation.
    let status = reinstalled.status(KEY).expect("status");
    assert_eq!(
        status.activation.map(|a| a.id).as_deref(),
        Some(id.as_str())
    );
    assert!(reinstalled.check(KEY).is_licensed());
    // Its own row is marked by the fingerprint.
    let listed = reinstalled
        .list_devices_via_relay(&relay.url, KEY)
        .expect("listed");
    assert!(listed.devices.iter().all(|d| d.this_machine));
    // With no session and no relay named, the one it was built with lists them (the core's
    // known_relay, as npm's devices module picks); without one, sign in first.
    let any = reinstalled
        .list_devices_any(None, None, KEY)
        .expect("listed through the builder's relay");
    assert_eq!(any.devices.len(), 1);
    assert!(any.devices[0].this_machine);
    let unrelayed = install(&em, &ScratchDir::new("heal-no-relay"), "machine-A", None);
    assert!(matches!(
        unrelayed.list_devices_any(None, None, KEY),
        Err(polar_license::portal::PortalError::NotSignedIn)
    ));
    // A relay URL that is no base URL is refused when the licensing is built, naming it.
    let bad = Licensing::builder(DEMO_ORGANIZATION_ID)
        .base_url(em.url())
        .cache_dir(&*ScratchDir::new("heal-bad-relay"))
        .relay_url("http://relay.example.com")
        .build();
    match bad {
        Err(polar_license::Error::InvalidInput { field, .. }) => assert_eq!(field, "relay_url"),
        other => panic!("a bad relay URL: {:?}", other.map(|_| ())),
    }

    // A new machine at the limit: refused as before, and told the rows apart.
    let elsewhere = install(&em, &other, "machine-B", Some(&relay.url));
    let (activated, adopted, devices) =
        elsewhere.activate_via(&ActivateRequest::new(KEY, "Office desktop"), None, None);
    match activated.online {
        Ok(Verdict::Denied(d)) => assert_eq!(d.reason, Reason::ActivationLimit),
        other => panic!("the new machine's activate: {other:?}"),
    }
    assert!(adopted.is_none());
    let devices = devices.expect("listed at the limit").devices;
    assert_eq!(devices.len(), 1);
    assert!(!devices[0].this_machine);
    assert_eq!(devices[0].label, "Jane's laptop");
    assert_eq!(devices[0].platform.as_deref(), Some(platform.as_str()));
    assert_eq!(em.activations(KEY).len(), 1);
}

#[test]
fn a_reinstall_at_the_limit_adopts_through_the_remembered_session_and_not_without_one() {
    let em = emulator();
    let (first, bare, again) = (
        ScratchDir::new("heal-s-first"),
        ScratchDir::new("heal-s-bare"),
        ScratchDir::new("heal-s-again"),
    );
    let id = activated_id(&install(&em, &first, "machine-A", None), "Laptop");

    // No relay, no session: the limit stands, as before.
    let unhealed = install(&em, &bare, "machine-A", None);
    match unhealed.activate(&ActivateRequest::new(KEY, "Laptop")) {
        Ok(Verdict::Denied(d)) => assert_eq!(d.reason, Reason::ActivationLimit),
        other => panic!("with no way to list: {other:?}"),
    }

    // Signed in (the session remembered): the reinstall adopts its activation.
    let reinstalled = install(&em, &again, "machine-A", None);
    let session = signed_in(&em, &reinstalled, EMAIL);
    reinstalled
        .remember_session(&session, reinstalled.now() + 3600)
        .expect("remembered");
    match reinstalled.activate(&ActivateRequest::new(KEY, "Laptop")) {
        Ok(Verdict::Accepted(read)) => assert_eq!(read.activation.id, id),
        other => panic!("the reinstall's activate: {other:?}"),
    }
    assert_eq!(em.activations(KEY).len(), 1, "no new activation");
    assert!(reinstalled.check(KEY).is_licensed());
}
