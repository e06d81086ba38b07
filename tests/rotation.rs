//! A rotated key keeps working (issue #64 item 4) on the native client, against the
//! emulator's rotate (Polar's `POST /v1/license-keys/{id}/rotate`: the record id, limits and
//! activation ids kept, the old string `404` at once): the app, signed in through a customer
//! session, learns the same key id's new string and follows it with the activation it holds
//! (no slot taken, even at the limit), the new string remembered in the old one's place; each
//! failure typed.
#![cfg(not(target_arch = "wasm32"))]

use polar_license::portal::{PortalError, SessionToken};
use polar_license::{ActivateRequest, Licensing, Reason, Verdict};
use polar_license_emulator::{Emulator, DEMO_ORGANIZATION_ID};
use polar_license_testkit::{signed_in, ScratchDir};

const EMAIL: &str = "jane.doe@gmail.com";
const KEY: &str = "ROTATE-6B1D2C3E-4F5A-4B6C-8D7E-9F0A1B2C3D4E";

/// The demo seed with one more key of the demo customer: one activation only.
fn emulator() -> Emulator {
    polar_license_testkit::demo_with_one_seat_key(KEY, EMAIL)
}

fn licensing(em: &Emulator, dir: &ScratchDir) -> Licensing {
    Licensing::builder(DEMO_ORGANIZATION_ID)
        .base_url(em.url())
        .cache_dir(&**dir)
        .remember_keys(true)
        .build()
        .expect("licensing")
}

#[test]
fn the_app_follows_a_rotated_key_and_keeps_its_activation() {
    let em = emulator();
    let dir = ScratchDir::new("rotation-follow");
    let lib = licensing(&em, &dir);
    let Ok(Verdict::Accepted(activated)) = lib.activate(&ActivateRequest::new(KEY, "This laptop"))
    else {
        panic!("activate")
    };
    let activation = activated.activation.id.clone();
    assert!(lib.check(KEY).is_licensed());
    assert_eq!(
        lib.remembered_key()
            .expect("read")
            .map(|k| k.expose().to_string()),
        Some(KEY.to_string())
    );

    // The seller (or the customer, in Polar's portal) rotates it: the old string is 404.
    let rotated = em.rotate_key(KEY).expect("rotated");
    assert_ne!(rotated, KEY);
    // The app's next online check of the old string is told so, and the cache records it.
    let asked = polar_license::ValidateRequest::new(KEY).activation_id(activation.clone());
    match lib.validate(&asked) {
        Ok(Verdict::Denied(d)) => assert_eq!(d.reason, Reason::NotFound),
        other => panic!("the old string after rotation: {other:?}"),
    }
    assert!(!lib.check(KEY).is_licensed());

    let session = signed_in(&em, &lib, EMAIL);
    let (new, verdict) = lib.follow_rotation(&session, KEY).expect("followed");
    assert_eq!(new.expose(), rotated);
    assert!(verdict.is_accepted(), "{verdict:?}");
    // The same activation: the key's one slot, still the only one, now remembered by the new
    // string's record (a plain check validates it).
    let status = lib.status(new.clone()).expect("status");
    assert_eq!(
        status.activation.map(|a| a.id),
        Some(activation.clone()),
        "the new string's record remembers the activation"
    );
    let ids: Vec<String> = em
        .activations(&rotated)
        .iter()
        .filter_map(|a| a["id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(ids, std::slice::from_ref(&activation));
    let report = lib.check_report(new.clone());
    assert!(report.outcome.is_licensed(), "{:?}", report.outcome);
    assert_eq!(report.activation_id.as_deref(), Some(activation.as_str()));
    // The new string remembered in the old one's place; the old record forgotten.
    assert_eq!(
        lib.remembered_key()
            .expect("read")
            .map(|k| k.expose().to_string()),
        Some(rotated.clone())
    );
    assert!(lib.check_remembered().is_licensed());
    assert!(matches!(
        lib.status(KEY).expect("status").state,
        polar_license::CacheState::Empty
    ));
    // Another app install (a new cache) cannot take a second slot of the limit-1 key.
    // Held to the end: dropped at once it would be removed before the other install writes there.
    let other_dir = ScratchDir::new("rotation-other");
    let other = licensing(&em, &other_dir);
    match other.activate(&ActivateRequest::new(rotated.as_str(), "Desktop")) {
        Ok(Verdict::Denied(d)) => assert_eq!(d.reason, Reason::ActivationLimit),
        other => panic!("a second slot: {other:?}"),
    }
}

#[test]
fn following_fails_typed() {
    let em = emulator();
    let dir = ScratchDir::new("rotation-failures");
    let lib = licensing(&em, &dir);
    let session = signed_in(&em, &lib, EMAIL);
    // Nothing cached of the key: no id to follow, nothing sent past the session.
    let before = em.request_count();
    assert!(matches!(
        lib.follow_rotation(&session, KEY),
        Err(PortalError::Invalid(_))
    ));
    assert_eq!(em.request_count(), before);
    // Cached but not rotated: no new string.
    let Ok(Verdict::Accepted(_)) = lib.activate(&ActivateRequest::new(KEY, "This laptop")) else {
        panic!("activate")
    };
    assert_eq!(
        lib.follow_rotation(&session, KEY),
        Err(PortalError::NotFound)
    );
    assert!(lib.check(KEY).is_licensed(), "the key is left alone");
    // A session Polar does not know.
    em.rotate_key(KEY).expect("rotated");
    let unknown = SessionToken::new("polar_cst_abcdefghijklmnopqrstuvwxyz0123456789A012345");
    assert_eq!(
        lib.follow_rotation(&unknown, KEY),
        Err(PortalError::SessionExpired)
    );
    // Polar down: offline, typed; the old record kept.
    em.stop();
    assert!(matches!(
        lib.follow_rotation(&session, KEY),
        Err(PortalError::Offline(_))
    ));
    assert!(!matches!(
        lib.status(KEY).expect("status").state,
        polar_license::CacheState::Empty
    ));
}
