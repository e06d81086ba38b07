//! Feature gating through the C ABI, called from Rust against the in-process emulator (the C
//! program bindings/c/tests/test_features.c covers the same under ASan and valgrind; this
//! keeps it under `cargo test` too): the cases, the map added entry by entry or as
//! JSON, and an invalid map refused with the entry named.
#![allow(unsafe_code)] // calling the extern "C" functions

use super::{c, demo_config, text, Client};
use crate::*;
use polar_license_emulator::{Emulator, Fault, Options};
use polar_license_testkit::features::{
    self, map_json, BASIC_KEY, METERED_KEY, PRO, PRO_KEY, REVOKED_KEY, SPENT_KEY, TEAM, TEAM_KEY,
};
use polar_license_testkit::ScratchDir;
use serde_json::json;
use std::path::Path;
use std::ptr;

fn emulator() -> (Emulator, String) {
    let emu =
        Emulator::start(features::seed(), Options::default()).unwrap_or_else(|e| panic!("{e}"));
    let url = emu.url();
    (emu, url)
}

struct Config(*mut polar_license_config);

impl Drop for Config {
    fn drop(&mut self) {
        polar_license_config_free(self.0);
    }
}

impl Config {
    fn new(url: &str, dir: &Path, offset: i64) -> Config {
        let config = demo_config(url, dir);
        for status in [
            polar_license_config_set_machine_binding(config, false),
            polar_license_config_set_grace_policy(config, 3600, 7 * 86_400, 600),
            polar_license_config_set_clock_offset_for_testing(config, offset),
        ] {
            assert_eq!(status, polar_license_status::Ok);
        }
        Config(config)
    }

    fn add(&self, feature: &str, benefit: &str) -> polar_license_status {
        polar_license_config_add_feature(self.0, c(feature).as_ptr(), c(benefit).as_ptr())
    }

    /// The map of tests/features.rs, entry by entry.
    fn with_map(self) -> Config {
        for (feature, benefit) in [
            ("pro_export", PRO),
            ("pro_export", TEAM),
            ("team_sync", TEAM),
            ("api_calls", PRO),
        ] {
            assert_eq!(self.add(feature, benefit), polar_license_status::Ok);
        }
        assert_eq!(
            polar_license_config_set_feature_metered(self.0, c("api_calls").as_ptr(), true),
            polar_license_status::Ok
        );
        self
    }

    fn last_error(&self) -> String {
        text(polar_license_config_last_error(self.0))
    }

    fn build(&self) -> Result<Client, (polar_license_status, String)> {
        let mut client = ptr::null_mut();
        match polar_license_client_new(self.0, &mut client) {
            polar_license_status::Ok => Ok(Client(client)),
            status => {
                assert!(client.is_null(), "nothing is written on failure");
                Err((status, self.last_error()))
            }
        }
    }
}

struct Verdict(*mut polar_license_result);

impl Drop for Verdict {
    fn drop(&mut self) {
        polar_license_result_free(self.0);
    }
}

/// An answer, read through every accessor (`remaining` is `None` when there is no count).
#[derive(Debug, PartialEq, Eq)]
struct Access {
    granted: bool,
    why: String,
    reason: polar_license_reason,
    source: polar_license_source,
    remaining: Option<i64>,
}

impl Client {
    fn check(&self, key: &str) -> Verdict {
        let mut result = ptr::null_mut();
        assert_eq!(
            polar_license_client_check(self.0, c(key).as_ptr(), &mut result),
            polar_license_status::Ok
        );
        Verdict(result)
    }

    fn validate(&self, key: &str, increment: i64) -> Verdict {
        let mut request = ptr::null_mut();
        assert_eq!(
            polar_license_request_new(c(key).as_ptr(), &mut request),
            polar_license_status::Ok
        );
        if increment > 0 {
            polar_license_request_set_increment_usage(request, increment);
        }
        let mut result = ptr::null_mut();
        let status = polar_license_client_validate(self.0, request, &mut result);
        polar_license_request_free(request);
        assert_eq!(status, polar_license_status::Ok);
        Verdict(result)
    }

    fn ask(&self, verdict: &Verdict, feature: &str) -> Access {
        let mut access = ptr::null_mut();
        assert_eq!(
            polar_license_client_has_feature(self.0, verdict.0, c(feature).as_ptr(), &mut access),
            polar_license_status::Ok,
            "{}",
            text(polar_license_client_last_error(self.0))
        );
        assert_eq!(text(polar_license_feature_access_feature(access)), feature);
        let mut left = 0;
        let a = Access {
            granted: polar_license_feature_access_granted(access),
            why: text(polar_license_feature_why_code(
                polar_license_feature_access_why(access) as u32,
            )),
            reason: polar_license_feature_access_license_reason(access),
            source: polar_license_feature_access_source(access),
            remaining: polar_license_feature_access_remaining_usage(access, &mut left)
                .then_some(left),
        };
        polar_license_feature_access_free(access);
        a
    }
}

/// A client with the map added entry by entry, its clock `offset` seconds on.
fn gated(url: &str, dir: &Path, offset: i64) -> Client {
    Config::new(url, dir, offset).with_map().build().unwrap()
}

fn yes(source: polar_license_source, remaining: Option<i64>) -> Access {
    Access {
        granted: true,
        why: "granted".into(),
        reason: polar_license_reason::None,
        source,
        remaining,
    }
}

fn no(why: &str, reason: polar_license_reason, source: polar_license_source) -> Access {
    Access {
        granted: false,
        why: why.into(),
        reason,
        source,
        remaining: None,
    }
}

use polar_license_reason as R;
use polar_license_source as S;

#[test]
fn tiers_unknown_features_and_denied_licenses() {
    let (_emu, url) = emulator();
    let dir = ScratchDir::new("ffi-features-tiers");
    let client = gated(&url, &dir, 0);
    let pro = client.check(PRO_KEY);
    let team = client.check(TEAM_KEY);
    let basic = client.check(BASIC_KEY);
    assert_eq!(client.ask(&pro, "pro_export"), yes(S::Online, None));
    assert_eq!(client.ask(&team, "pro_export"), yes(S::Online, None));
    assert_eq!(client.ask(&team, "team_sync"), yes(S::Online, None));
    let by_benefit = no("not_granted_by_benefit", R::None, S::Online);
    assert_eq!(client.ask(&pro, "team_sync"), by_benefit);
    assert_eq!(client.ask(&basic, "pro_export"), by_benefit);
    assert_eq!(
        client.ask(&pro, "time_travel"),
        no("unknown_feature", R::None, S::Online)
    );
    let revoked = client.check(REVOKED_KEY);
    assert_eq!(
        client.ask(&revoked, "pro_export"),
        no("license_not_valid", R::Inactive, S::None)
    );
    // A plain validate answers the same way.
    let validated = client.validate(TEAM_KEY, 0);
    assert_eq!(client.ask(&validated, "team_sync"), yes(S::Online, None));
    let validated = client.validate(REVOKED_KEY, 0);
    assert_eq!(
        client.ask(&validated, "pro_export"),
        no("license_not_valid", R::Inactive, S::None)
    );
}

#[test]
fn a_cached_verdict_within_grace_answers_like_an_online_one() {
    let (emu, url) = emulator();
    let dir = ScratchDir::new("ffi-features-grace");
    let now = gated(&url, &dir, 0);
    let online = now.check(METERED_KEY);
    assert_eq!(now.ask(&online, "pro_export"), yes(S::Online, None));
    assert_eq!(now.ask(&online, "api_calls"), yes(S::Online, Some(3)));

    emu.set_fault(Some(Fault::CloseImmediately));
    let later = gated(&url, &dir, 3 * 86_400);
    let cached = later.check(METERED_KEY);
    assert_eq!(polar_license_result_source(cached.0), S::Cache);
    assert_eq!(later.ask(&cached, "pro_export"), yes(S::Cache, None));
    assert_eq!(later.ask(&cached, "api_calls"), yes(S::Cache, Some(3)));
    assert_eq!(
        later.ask(&cached, "team_sync"),
        no("not_granted_by_benefit", R::None, S::Cache)
    );

    let past = gated(&url, &dir, 8 * 86_400);
    let expired = past.check(METERED_KEY);
    assert_eq!(
        past.ask(&expired, "pro_export"),
        no("license_not_valid", R::GraceExpired, S::None)
    );
}

#[test]
fn metered_features_with_uses_left_and_with_none() {
    let (_emu, url) = emulator();
    let dir = ScratchDir::new("ffi-features-metered");
    let client = gated(&url, &dir, 0);
    let exhausted = |remaining| Access {
        remaining: Some(remaining),
        ..no("usage_exhausted", R::None, S::Online)
    };
    let metered = client.check(METERED_KEY);
    assert_eq!(client.ask(&metered, "api_calls"), yes(S::Online, Some(3)));
    let spent = client.check(SPENT_KEY);
    assert_eq!(client.ask(&spent, "api_calls"), exhausted(0));
    assert_eq!(client.ask(&spent, "pro_export"), yes(S::Online, None));
    // Spending the last uses through validate.
    let used = client.validate(METERED_KEY, 3);
    assert_eq!(client.ask(&used, "api_calls"), exhausted(0));
    // No limit: granted, no count.
    let unlimited = client.check(PRO_KEY);
    assert_eq!(client.ask(&unlimited, "api_calls"), yes(S::Online, None));
}

#[test]
fn the_json_map_answers_as_the_added_one() {
    let (_emu, url) = emulator();
    let dir = ScratchDir::new("ffi-features-json");
    let config = Config::new(&url, &dir, 0);
    let map = map_json();
    assert_eq!(
        polar_license_config_set_entitlements_json(config.0, c(&map).as_ptr()),
        polar_license_status::Ok
    );
    let client = config.build().unwrap();
    let team = client.check(TEAM_KEY);
    assert_eq!(client.ask(&team, "team_sync"), yes(S::Online, None));
    let metered = client.check(METERED_KEY);
    assert_eq!(client.ask(&metered, "api_calls"), yes(S::Online, Some(3)));
    assert_eq!(
        client.ask(&metered, "team_sync"),
        no("not_granted_by_benefit", R::None, S::Online)
    );
}

#[test]
fn an_invalid_map_is_refused_when_the_client_is_built_naming_the_entry() {
    let dir = ScratchDir::new("ffi-features-invalid");
    let url = "http://127.0.0.1:9";
    let bad = polar_license_status::InvalidInput;

    let config = Config::new(url, &dir, 0).with_map();
    assert_eq!(config.add("broken", "x"), bad);
    let message = "invalid input: entitlements.broken: benefit id `x` is not a UUID v4";
    assert_eq!(config.last_error(), message);
    assert_eq!(config.build().err(), Some((bad, message.to_string())));

    let config = Config::new(url, &dir, 0).with_map();
    assert_eq!(
        polar_license_config_set_feature_metered(config.0, c("ghost").as_ptr(), true),
        polar_license_status::Ok
    );
    let (status, message) = config.build().err().expect("refused");
    assert_eq!(status, bad);
    assert!(message.contains("entitlements.ghost: needs at least one benefit id"));

    let config = Config::new(url, &dir, 0);
    let json = json!({"pro_export": [PRO], "broken": ["x"]}).to_string();
    assert_eq!(
        polar_license_config_set_entitlements_json(config.0, c(&json).as_ptr()),
        bad
    );
    let (status, message) = config.build().err().expect("refused");
    assert_eq!(status, bad);
    assert!(message.contains("entitlements.broken: benefit id `x` is not a UUID v4"));

    // A good map builds.
    assert!(Config::new(url, &dir, 0).with_map().build().is_ok());
}

#[test]
fn results_that_are_not_verdicts_are_refused() {
    let (_emu, url) = emulator();
    let dir = ScratchDir::new("ffi-features-not-verdicts");
    let client = gated(&url, &dir, 0);
    let mut status = ptr::null_mut();
    assert_eq!(
        polar_license_client_status(client.0, c(PRO_KEY).as_ptr(), &mut status),
        polar_license_status::Ok
    );
    let status = Verdict(status);
    let mut access = ptr::null_mut();
    assert_eq!(
        polar_license_client_has_feature(client.0, status.0, c("pro_export").as_ptr(), &mut access),
        polar_license_status::InvalidInput
    );
    assert!(access.is_null());
    assert!(text(polar_license_client_last_error(client.0)).contains("not a verdict"));
    assert_eq!(
        polar_license_client_has_feature(
            client.0,
            ptr::null(),
            c("pro_export").as_ptr(),
            &mut access
        ),
        polar_license_status::NullArgument
    );
    assert!(!polar_license_feature_access_granted(ptr::null()));
    assert_eq!(
        polar_license_feature_access_why(ptr::null()),
        polar_license_feature_why::None
    );
}
