//! The C ABI called from Rust against the in-process emulator: the same calls a C program
//! makes (the C programs in bindings/c/tests cover every reason; this keeps the ABI under
//! `cargo test` too).
#![allow(unsafe_code)] // calling the extern "C" functions

use super::{c, client_of, demo_config, labelled_request, text, Client};
use crate::*;
use polar_license_emulator::{Emulator, Fault, Options, Seed, SeedKey};
use polar_license_testkit::ScratchDir;
use std::ffi::{c_char, CString};
use std::ptr;

fn client(url: &str, dir: &std::path::Path, offset: i64, revalidate: u64) -> Client {
    let config = demo_config(url, dir);
    for status in [
        polar_license_config_set_grace_policy(config, revalidate, 7 * 86_400, 600),
        polar_license_config_set_clock_offset_for_testing(config, offset),
    ] {
        assert_eq!(status, polar_license_status::Ok);
    }
    client_of(config)
}

struct Answer {
    outcome: polar_license_outcome,
    reason: polar_license_reason,
    source: polar_license_source,
    activation_id: String,
}

fn answer(status: polar_license_status, result: *mut polar_license_result) -> Answer {
    assert_eq!(status, polar_license_status::Ok);
    let a = Answer {
        outcome: polar_license_result_outcome(result),
        reason: polar_license_result_reason(result),
        source: polar_license_result_source(result),
        activation_id: text(polar_license_result_activation_id(result)),
    };
    polar_license_result_free(result);
    a
}

fn check(client: &Client, key: &str) -> Answer {
    let mut result = ptr::null_mut();
    let status = polar_license_client_check(client.0, c(key).as_ptr(), &mut result);
    answer(status, result)
}

fn activate(client: &Client, key: &str) -> Answer {
    let request = labelled_request(key, "rust");
    let mut result = ptr::null_mut();
    let status = polar_license_client_activate(client.0, request, &mut result);
    polar_license_request_free(request);
    answer(status, result)
}

fn emulator() -> (Emulator, String) {
    let mut seed = Seed::demo();
    seed.license_keys.push(SeedKey {
        limit_activations: Some(3),
        ..SeedKey::new("FFI-RUST-KEY")
    });
    let emu = Emulator::start(seed, Options::default()).unwrap_or_else(|e| panic!("{e}"));
    let url = emu.url();
    (emu, url)
}

/// The emulator, a cache directory named `name`, and a client on it (this revalidate_after) that
/// activated FFI-RUST-KEY.
fn activated(name: &str, revalidate: u64) -> (Emulator, ScratchDir, Client) {
    let (emu, url) = emulator();
    let dir = ScratchDir::new(name);
    let client = client(&url, &dir, 0, revalidate);
    assert_eq!(
        activate(&client, "FFI-RUST-KEY").outcome,
        polar_license_outcome::Done
    );
    (emu, dir, client)
}

#[test]
fn activate_check_then_offline_grace_expiry_and_rollback() {
    let (emu, url) = emulator();
    let dir = ScratchDir::new("ffi-grace");
    let now = client(&url, &dir, 0, 0);
    let activated = activate(&now, "FFI-RUST-KEY");
    assert_eq!(activated.outcome, polar_license_outcome::Done);
    assert_eq!(activated.activation_id.len(), 36);

    let online = check(&now, "FFI-RUST-KEY");
    assert_eq!(online.outcome, polar_license_outcome::Licensed);
    assert_eq!(online.source, polar_license_source::Online);
    assert_eq!(online.activation_id, activated.activation_id);

    emu.set_fault(Some(Fault::CloseImmediately));
    let cached = check(&now, "FFI-RUST-KEY");
    assert_eq!(cached.outcome, polar_license_outcome::Licensed);
    assert_eq!(cached.source, polar_license_source::Cache);

    let later = check(&client(&url, &dir, 8 * 86_400, 0), "FFI-RUST-KEY");
    assert_eq!(
        (later.outcome, later.reason),
        (
            polar_license_outcome::Unverified,
            polar_license_reason::GraceExpired
        )
    );
    let earlier = check(&client(&url, &dir, -86_400, 0), "FFI-RUST-KEY");
    assert_eq!(
        (earlier.outcome, earlier.reason),
        (
            polar_license_outcome::Unverified,
            polar_license_reason::ClockRollback
        )
    );
}

/// A revocation that `validate` saw is the status at once: the denial's reason, no license
/// (the last good one is not the key's status any more), its verification time kept.
#[test]
fn status_reports_a_revocation_validate_saw() {
    let (emu, _dir, client) = activated("ffi-status", 3600);
    let status = |client: &Client| {
        let mut result = ptr::null_mut();
        let status = polar_license_client_status(client.0, c("FFI-RUST-KEY").as_ptr(), &mut result);
        assert_eq!(status, polar_license_status::Ok);
        let seen = (
            polar_license_result_reason(result),
            text(polar_license_result_license_json(result)),
            polar_license_result_verified_at(result),
            polar_license_result_grace_remaining_seconds(result),
        );
        polar_license_result_free(result);
        seen
    };
    let (reason, license, verified_at, grace) = status(&client);
    assert_eq!(reason, polar_license_reason::None);
    assert!(license.contains("\"status\":\"granted\""), "{license}");
    assert!(verified_at > 0 && grace > 0);

    assert!(emu.update_key(
        "FFI-RUST-KEY",
        polar_license_emulator::KeyUpdate {
            status: Some("revoked".into()),
            ..Default::default()
        }
    ));
    let mut request = ptr::null_mut();
    assert_eq!(
        polar_license_request_new(c("FFI-RUST-KEY").as_ptr(), &mut request),
        polar_license_status::Ok
    );
    let mut result = ptr::null_mut();
    let validated = polar_license_client_validate(client.0, request, &mut result);
    polar_license_request_free(request);
    assert_eq!(
        answer(validated, result).reason,
        polar_license_reason::Inactive
    );

    let (reason, license, after, grace) = status(&client);
    assert_eq!(reason, polar_license_reason::Inactive);
    assert_eq!(
        license, "",
        "no license shown as the key's status since the denial"
    );
    assert_eq!(after, verified_at, "the last good verdict's time is kept");
    assert_eq!(grace, -1, "no grace: the cache cannot license");
}

#[test]
fn one_client_from_many_threads() {
    let (_emu, _dir, shared) = activated("ffi-threads", 0);
    std::thread::scope(|s| {
        for i in 0..6 {
            let shared = &shared;
            s.spawn(move || {
                for _ in 0..5 {
                    let a = check(shared, "FFI-RUST-KEY");
                    assert_eq!(a.outcome, polar_license_outcome::Licensed);
                    if i % 2 == 1 {
                        let mut result = ptr::null_mut();
                        let bad = [0xffu8 as c_char, 0];
                        let status =
                            polar_license_client_status(shared.0, bad.as_ptr(), &mut result);
                        assert_eq!(status, polar_license_status::InvalidUtf8);
                        assert!(text(polar_license_client_last_error(shared.0)).contains("UTF-8"));
                    } else {
                        assert_eq!(text(polar_license_client_last_error(shared.0)), "");
                    }
                }
            });
        }
    });
}

/// Every call that answers with a result starts by clearing the thread's last error (the rule
/// `result_call!` keeps): after a refused call, a call that succeeds leaves `""`.
#[test]
fn a_call_that_answers_clears_the_last_error() {
    let (_emu, url) = emulator();
    let dir = ScratchDir::new("c-last-error");
    let client = client(&url, dir.path(), 0, 3600);
    let key = c("FFI-RUST-KEY");
    type Call = fn(&Client, &CString, *mut *mut polar_license_result) -> polar_license_status;
    let calls: [(&str, Call); 4] = [
        ("check", |cl, key, out| {
            polar_license_client_check(cl.0, key.as_ptr(), out)
        }),
        ("status", |cl, key, out| {
            polar_license_client_status(cl.0, key.as_ptr(), out)
        }),
        ("remember_key", |cl, key, out| {
            polar_license_client_remember_key(cl.0, key.as_ptr(), out)
        }),
        ("forget_key", |cl, _, out| {
            polar_license_client_forget_key(cl.0, out)
        }),
    ];
    for (name, call) in calls {
        assert_eq!(
            call(&client, &key, ptr::null_mut()),
            polar_license_status::NullArgument
        );
        assert_eq!(
            text(polar_license_client_last_error(client.0)),
            "out_result is NULL"
        );
        let mut result = ptr::null_mut();
        assert_eq!(
            call(&client, &key, &mut result),
            polar_license_status::Ok,
            "{name}"
        );
        polar_license_result_free(result);
        assert_eq!(
            text(polar_license_client_last_error(client.0)),
            "",
            "{name}"
        );
    }
}

/// Issue #63 item 5: a validate's result carries the core's outcome, verified at the client's
/// own clock (its offset included) as a check's is, not at a clock the C face reads itself.
#[test]
fn a_validate_is_verified_at_the_clients_clock() {
    let (_emu, url) = emulator();
    let dir = ScratchDir::new("ffi-validate-clock");
    let offset = 10 * 86_400;
    let client = client(&url, &dir, offset, 3600);
    let mut request = ptr::null_mut();
    assert_eq!(
        polar_license_request_new(c("FFI-RUST-KEY").as_ptr(), &mut request),
        polar_license_status::Ok
    );
    let mut result = ptr::null_mut();
    let before = polar_license::licensing::system_clock() + offset;
    let status = polar_license_client_validate(client.0, request, &mut result);
    let after = polar_license::licensing::system_clock() + offset;
    polar_license_request_free(request);
    assert_eq!(status, polar_license_status::Ok);
    let outcome = polar_license_result_outcome(result);
    let at = polar_license_result_verified_at(result);
    polar_license_result_free(result);
    assert_eq!(outcome, polar_license_outcome::Licensed);
    assert!(
        (before..=after).contains(&at),
        "verified at {at}, the client's clock read {before}..={after}"
    );
}

/// A session Polar no longer knows is forgotten, but only when it is still the client's: a
/// sign-in on another thread while the call was out keeps its new session.
#[test]
fn an_expired_session_is_forgotten_unless_another_thread_signed_in_meanwhile() {
    use polar_license::portal::{PortalError, SessionToken};
    let dir = ScratchDir::new("c-signed-in");
    let client = client_of(demo_config("http://127.0.0.1:9", dir.path()));
    // SAFETY: `client.0` is the live client `client_of` made (freed when `client` drops).
    let held = unsafe { &*client.0 };
    let (old, new) = (
        SessionToken::new("polar_cst_old"),
        SessionToken::new("polar_cst_new"),
    );
    assert_eq!(
        held.signed_in(|_| Ok::<(), PortalError>(())),
        Err(PortalError::NotSignedIn)
    );
    held.set_session(Some(old.clone()));
    let answer = held.signed_in(|used| {
        assert_eq!(used, &old);
        held.set_session(Some(new.clone()));
        Err::<(), _>(PortalError::SessionExpired)
    });
    assert_eq!(answer, Err(PortalError::SessionExpired));
    assert_eq!(held.session(), Some(new.clone()), "the new sign-in is kept");
    // The session used and expired, still the client's: forgotten.
    let _ = held.signed_in(|_| Err::<(), _>(PortalError::SessionExpired));
    assert_eq!(held.session(), None);
}
