//! The wasm client over `fetch` against the emulator, in node and in headless Chromium
//! (`scripts/test-wasm.sh`): every denial reason, the transport failures, the activation
//! lifecycle (an activation is a verdict), the grace fallback when the server is unreachable,
//! answers 500 or something that is not Polar's, a revocation seen by `validate`, and a check
//! that answers from the cache at once while another waits for a hung server.
//!
//! The URLs are baked in at compile time: `POLAR_WASM_EMULATOR_URL` (a running emulator),
//! `POLAR_WASM_FAULT_URL` (a second one whose faults the tests set) and `POLAR_WASM_DEAD_URL`
//! (an emulator that was started and stopped: nothing listens there any more).
#![cfg(target_arch = "wasm32")]

use polar_license::grace::{CheckOutcome, GracePolicy, Source};
use polar_license::wasm::{
    AsyncClient, AsyncLicensing, AsyncLicensingBuilder, CacheState, MemoryStore,
};
use polar_license::{ActivateRequest, DeactivateRequest, Error, Reason, ValidateRequest, Verdict};
use polar_license_testkit::fetch::{
    self, dead, emulator, faulty, patch_key, random_uuid4, requests, set_fault,
};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen_test::wasm_bindgen_test;

const ORG: &str = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";

/// Adds a fresh key to an emulator (so node and browser runs never share state).
async fn new_key(base: &str, fields: serde_json::Value) -> String {
    fetch::new_key(base, "WASM", fields).await
}

fn client(base: &str) -> AsyncClient {
    AsyncClient::builder(ORG).base_url(base).build().unwrap()
}

fn denied<T: std::fmt::Debug>(v: Result<Verdict<T>, Error>, reason: Reason) -> String {
    match v {
        Ok(Verdict::Denied(d)) => {
            assert_eq!(d.reason, reason, "{d}");
            d.detail
        }
        other => panic!("expected {reason} denial, got {other:?}"),
    }
}

async fn activate(c: &AsyncClient, key: &str, machine: &str) -> String {
    let req = ActivateRequest::new(key, "wasm-test").condition("machine", machine);
    match c.activate(&req).await.unwrap() {
        Verdict::Accepted(a) => a.activation.id,
        Verdict::Denied(d) => panic!("activation refused: {d}"),
    }
}

// ---- The async client: one test per row of the reason table --------------------------------

#[wasm_bindgen_test]
async fn validate_accepts_a_granted_key() {
    let key = new_key(emulator(), serde_json::json!({})).await;
    let v = client(emulator())
        .validate(&ValidateRequest::new(key.as_str()))
        .await
        .unwrap();
    let license = v.accepted().unwrap();
    assert_eq!(license.license_key.key.expose(), key);
    assert_eq!(license.license_key.validations, 1);
    assert!(license.activation.is_none());
}

#[wasm_bindgen_test]
async fn unknown_key_is_not_found() {
    let v = client(emulator())
        .validate(&ValidateRequest::new("WASM-NO-SUCH-KEY"))
        .await;
    assert_eq!(denied(v, Reason::NotFound), "Not found");
}

#[wasm_bindgen_test]
async fn revoked_and_disabled_keys_are_inactive() {
    for status in ["revoked", "disabled"] {
        let key = new_key(emulator(), serde_json::json!({ "status": status })).await;
        let v = client(emulator())
            .validate(&ValidateRequest::new(key.as_str()))
            .await;
        assert_eq!(
            denied(v, Reason::Inactive),
            "License key is no longer active."
        );
    }
}

#[wasm_bindgen_test]
async fn an_expired_key_is_expired() {
    let fields = serde_json::json!({ "expires_at": "2024-01-01T00:00:00Z" });
    let key = new_key(emulator(), fields).await;
    let v = client(emulator())
        .validate(&ValidateRequest::new(key.as_str()))
        .await;
    assert_eq!(denied(v, Reason::Expired), "License key has expired.");
}

#[wasm_bindgen_test]
async fn other_conditions_are_a_mismatch() {
    let key = new_key(emulator(), serde_json::json!({ "limit_activations": 3 })).await;
    let c = client(emulator());
    let id = activate(&c, &key, "one").await;
    let same = ValidateRequest::new(key.as_str())
        .activation_id(id.as_str())
        .condition("machine", "one");
    assert!(c.validate(&same).await.unwrap().is_accepted());
    let other = ValidateRequest::new(key.as_str())
        .activation_id(id.as_str())
        .condition("machine", "two");
    denied(c.validate(&other).await, Reason::ConditionsMismatch);
}

#[wasm_bindgen_test]
async fn another_benefit_or_customer_is_a_mismatch() {
    let key = new_key(emulator(), serde_json::json!({})).await;
    let c = client(emulator());
    let req = ValidateRequest::new(key.as_str()).benefit_id(random_uuid4());
    denied(c.validate(&req).await, Reason::BenefitMismatch);
    let req = ValidateRequest::new(key.as_str()).customer_id(random_uuid4());
    denied(c.validate(&req).await, Reason::CustomerMismatch);
}

#[wasm_bindgen_test]
async fn usage_past_the_limit_is_exhausted_with_the_count_left() {
    let key = new_key(emulator(), serde_json::json!({ "limit_usage": 3 })).await;
    let c = client(emulator());
    let req = ValidateRequest::new(key.as_str()).increment_usage(1);
    assert!(c.validate(&req).await.unwrap().is_accepted());
    let v = c
        .validate(&ValidateRequest::new(key.as_str()).increment_usage(5))
        .await;
    match v {
        Ok(Verdict::Denied(d)) => {
            assert_eq!(d.reason, Reason::UsageExhausted);
            assert_eq!(d.remaining_usages, Some(2));
        }
        other => panic!("{other:?}"),
    }
}

#[wasm_bindgen_test]
async fn activation_limit_and_no_activations() {
    let key = new_key(emulator(), serde_json::json!({ "limit_activations": 1 })).await;
    let c = client(emulator());
    activate(&c, &key, "first").await;
    let second = c
        .activate(&ActivateRequest::new(key.as_str(), "second"))
        .await;
    denied(second, Reason::ActivationLimit);

    let key = new_key(emulator(), serde_json::json!({})).await;
    let v = c.activate(&ActivateRequest::new(key.as_str(), "x")).await;
    denied(v, Reason::ActivationsNotSupported);
}

#[wasm_bindgen_test]
async fn bad_input_is_caught_locally() {
    let before = requests(emulator()).await;
    let c = client(emulator());
    let e = c.validate(&ValidateRequest::new("")).await.unwrap_err();
    assert_eq!(e.reason(), Reason::InvalidInput);
    let e = c
        .validate(&ValidateRequest::new("K").activation_id("nope"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput { ref field, .. } if field == "activation_id"));
    let e = AsyncClient::builder("not-a-uuid")
        .base_url(emulator())
        .build()
        .unwrap_err();
    assert_eq!(e.reason(), Reason::InvalidInput);
    let e = AsyncClient::builder(ORG)
        .base_url("http://example.com")
        .build()
        .unwrap_err();
    assert_eq!(e.reason(), Reason::InvalidInput);
    assert_eq!(requests(emulator()).await, before, "nothing was sent");
}

#[wasm_bindgen_test]
async fn a_stopped_server_is_offline() {
    let e = client(dead())
        .validate(&ValidateRequest::new("K-1"))
        .await
        .unwrap_err();
    assert_eq!(e.reason(), Reason::Offline, "{e}");
    assert!(!e.is_timeout());
}

#[wasm_bindgen_test]
async fn faults_map_to_reasons() {
    let c = AsyncClient::builder(ORG)
        .base_url(faulty())
        .timeout(Duration::from_millis(400))
        .build()
        .unwrap();
    let req = ValidateRequest::new("K-1");
    let cases = [
        (
            serde_json::json!({"kind": "status", "status": 500, "body": "Internal Server Error"}),
            Reason::ServerError,
        ),
        (
            serde_json::json!({"kind": "status", "status": 503, "body": "{}"}),
            Reason::ServerError,
        ),
        (
            serde_json::json!({"kind": "rate_limited", "retry_after": 7}),
            Reason::RateLimited,
        ),
        (
            serde_json::json!({"kind": "malformed"}),
            Reason::ProtocolError,
        ),
        (
            serde_json::json!({"kind": "status", "status": 401, "body": "{\"error\":\"invalid_token\"}"}),
            Reason::ProtocolError,
        ),
        (serde_json::json!({"kind": "hang"}), Reason::Offline),
        (
            serde_json::json!({"kind": "close_immediately"}),
            Reason::Offline,
        ),
        (
            serde_json::json!({"kind": "huge", "bytes": 2_000_000}),
            Reason::ProtocolError,
        ),
    ];
    for (fault, reason) in cases {
        set_fault(fault.clone()).await;
        let e = c.validate(&req).await.unwrap_err();
        set_fault(serde_json::Value::Null).await;
        assert_eq!(e.reason(), reason, "{fault}: {e}");
        if fault["kind"] == "hang" {
            assert!(e.is_timeout(), "{e}");
        }
    }
}

// ---- Grace-aware licensing ------------------------------------------------------------------

fn licensing(base: &str, store: &MemoryStore, policy: GracePolicy) -> AsyncLicensing {
    AsyncLicensing::builder(ORG)
        .base_url(base)
        .timeout(Duration::from_secs(2))
        .store(store.clone())
        .policy(policy)
        .build()
        .unwrap()
}

fn always_ask() -> GracePolicy {
    GracePolicy {
        revalidate_after: Duration::ZERO,
        ..GracePolicy::default()
    }
}

fn licensed(outcome: &CheckOutcome) -> (Source, Option<Duration>) {
    match outcome {
        CheckOutcome::Licensed {
            source,
            grace_remaining,
            ..
        } => (*source, *grace_remaining),
        other => panic!("expected licensed, got {other:?}"),
    }
}

/// A client of the emulator over `store`, on the machine `id`.
fn on_machine(store: &MemoryStore, id: &str) -> AsyncLicensingBuilder {
    AsyncLicensing::builder(ORG)
        .base_url(emulator())
        .store(store.clone())
        .machine_id(id)
}

#[wasm_bindgen_test]
async fn activation_lifecycle() {
    let key = new_key(emulator(), serde_json::json!({ "limit_activations": 2 })).await;
    let store = MemoryStore::new();
    let l = on_machine(&store, "machine-a").build().unwrap();

    // Activate: remembered with the machine fingerprint as a condition.
    let read = l
        .activate(&ActivateRequest::new(key.as_str(), "laptop"))
        .await
        .unwrap();
    let id = read.accepted().unwrap().activation.id.clone();
    let status = l.status(key.as_str()).await.unwrap();
    let CacheState::Present(record) = status.state else {
        panic!("{status:?}")
    };
    let remembered = record.activation.unwrap();
    assert_eq!(remembered.id, id);
    assert_eq!(
        remembered.conditions.get("machine_fingerprint"),
        Some(&polar_license::MetaValue::Str(
            l.machine_fingerprint().unwrap().to_string()
        ))
    );

    // Check: the activation is a verdict, so the check right after it answers from the
    // cache with no request; one that asks validates the activation online.
    let before = requests(emulator()).await;
    let first = l.check(key.as_str()).await;
    assert_eq!(licensed(&first), (Source::Cache, second_grace(&first)));
    assert_eq!(
        requests(emulator()).await,
        before,
        "a fresh verdict sends nothing"
    );
    let asking = on_machine(&store, "machine-a")
        .policy(always_ask())
        .build()
        .unwrap();
    let online = asking.check(key.as_str()).await;
    assert_eq!(licensed(&online).0, Source::Online);
    for outcome in [&first, &online] {
        if let CheckOutcome::Licensed { license, .. } = outcome {
            assert_eq!(
                license.activation.as_ref().map(|a| a.id.as_str()),
                Some(id.as_str())
            );
        }
    }

    // The same activation from another machine: conditions_mismatch.
    let other = on_machine(&store, "machine-b").build().unwrap();
    let elsewhere = ValidateRequest::new(key.as_str())
        .activation_id(id.as_str())
        .condition("machine_fingerprint", other.machine_fingerprint().unwrap());
    denied(
        other.client().validate(&elsewhere).await,
        Reason::ConditionsMismatch,
    );

    // Deactivate the remembered activation: forgotten; a second one has nothing to free.
    let gone = l.deactivate(key.as_str(), None).await.unwrap();
    assert!(gone.is_accepted());
    let status = l.status(key.as_str()).await.unwrap();
    let CacheState::Present(record) = status.state else {
        panic!("{status:?}")
    };
    assert!(record.activation.is_none() && record.good.is_none());
    let again = l.deactivate(key.as_str(), None).await.unwrap_err();
    assert_eq!(again.reason(), Reason::InvalidInput);
    let freed = l
        .client()
        .deactivate(&DeactivateRequest::new(key.as_str(), id.as_str()))
        .await;
    denied(freed, Reason::NotFound);

    // The key itself is still good (the record is fresh: no activation any more, so the
    // bare key is asked).
    assert_eq!(licensed(&l.check(key.as_str()).await).0, Source::Online);
}

#[wasm_bindgen_test]
async fn validate_binds_this_machine_and_its_revocation_reaches_the_next_check() {
    let key = new_key(emulator(), serde_json::json!({ "limit_activations": 2 })).await;
    let l = AsyncLicensing::builder(ORG)
        .base_url(emulator())
        .memory_store()
        .machine_id("machine-a")
        .build()
        .unwrap();
    let read = l
        .activate(&ActivateRequest::new(key.as_str(), "a").condition("machine", "abc"))
        .await
        .unwrap();
    let id = read.accepted().unwrap().activation.id.clone();
    // The conditions activate was made with, on the same machine: licensed, not
    // conditions_mismatch (the fingerprint activate added is added here too).
    let same = ValidateRequest::new(key.as_str())
        .activation_id(id.as_str())
        .condition("machine", "abc");
    assert!(l.validate(&same).await.unwrap().is_accepted());
    assert_eq!(licensed(&l.check(key.as_str()).await).0, Source::Cache);

    patch_key(emulator(), &key, serde_json::json!({ "status": "revoked" })).await;
    denied(
        l.validate(&ValidateRequest::new(key.as_str())).await,
        Reason::Inactive,
    );
    // The cache was fresh; the revocation validate saw is the check's answer too.
    let outcome = l.check(key.as_str()).await;
    assert_eq!(outcome.reason(), Some(Reason::Inactive), "{outcome:?}");
}

fn second_grace(outcome: &CheckOutcome) -> Option<Duration> {
    match outcome {
        CheckOutcome::Licensed {
            grace_remaining, ..
        } => *grace_remaining,
        _ => None,
    }
}

#[wasm_bindgen_test]
async fn grace_covers_an_unreachable_server_until_the_period_ends() {
    let key = new_key(faulty(), serde_json::json!({})).await;
    let store = MemoryStore::new();
    let online = licensing(faulty(), &store, always_ask());
    assert_eq!(
        licensed(&online.check(key.as_str()).await).0,
        Source::Online
    );

    // Same storage and server, which closes every connection: licensed from the cache with
    // the grace left, and why.
    let now = Rc::new(Cell::new(polar_license::wasm::date_now()));
    let clock = Rc::clone(&now);
    let offline = AsyncLicensing::builder(ORG)
        .base_url(faulty())
        .store(store.clone())
        .policy(always_ask())
        .clock(move || clock.get())
        .build()
        .unwrap();
    set_fault(serde_json::json!({"kind": "close_immediately"})).await;
    let report = offline.check_report(key.as_str()).await;
    // Eight days later: grace_expired.
    now.set(now.get() + 8 * 86_400);
    let expired = offline.check(key.as_str()).await;
    // The clock set back a day: clock_rollback, never a grant.
    now.set(now.get() - 9 * 86_400);
    let rolled = offline.check(key.as_str()).await;
    set_fault(serde_json::Value::Null).await;

    let (source, left) = licensed(&report.outcome);
    assert_eq!(source, Source::Cache);
    assert_eq!(
        report.fallback.as_ref().map(Error::reason),
        Some(Reason::Offline)
    );
    let week = GracePolicy::default().grace_period;
    assert!(left.unwrap() <= week && left.unwrap() > week - Duration::from_secs(60));
    assert_eq!(expired.reason(), Some(Reason::GraceExpired), "{expired:?}");
    assert_eq!(rolled.reason(), Some(Reason::ClockRollback), "{rolled:?}");

    // A record answers only a client of the server it came from.
    let elsewhere = licensing(dead(), &store, always_ask());
    assert_eq!(
        elsewhere.check(key.as_str()).await.reason(),
        Some(Reason::Offline)
    );
}

/// A fresh key of the faulty emulator, checked online by a client that always asks.
async fn licensed_online() -> (String, AsyncLicensing) {
    let key = new_key(faulty(), serde_json::json!({})).await;
    let l = licensing(faulty(), &MemoryStore::new(), always_ask());
    assert_eq!(licensed(&l.check(key.as_str()).await).0, Source::Online);
    (key, l)
}

#[wasm_bindgen_test]
async fn grace_covers_a_500_but_never_a_denial() {
    let (key, l) = licensed_online().await;

    set_fault(serde_json::json!({"kind": "status", "status": 500, "body": "boom"})).await;
    let during = l.check(key.as_str()).await;
    // A bare 404 (a wrong base path) or a captive portal's page: not Polar's, so the cache
    // answers, and no tombstone is written.
    set_fault(
        serde_json::json!({"kind": "status", "status": 404, "body": "{\"detail\":\"Not Found\"}"}),
    )
    .await;
    let bare = l.check_report(key.as_str()).await;
    set_fault(serde_json::json!({"kind": "respond", "status": 200, "headers": [["content-type", "text/html"]], "body": "<html>login</html>"})).await;
    let portal = l.check_report(key.as_str()).await;
    set_fault(serde_json::Value::Null).await;
    assert_eq!(licensed(&during).0, Source::Cache);
    // (A browser cannot read a cross-origin page that has no CORS headers, as a portal's has
    // none: there it is a network error, `offline`, which falls back too.)
    let portal_reasons = [Reason::ProtocolError, Reason::Offline];
    for (report, reasons) in [(bare, &portal_reasons[..1]), (portal, &portal_reasons[..])] {
        assert_eq!(licensed(&report.outcome).0, Source::Cache);
        let reason = report.fallback.as_ref().map(Error::reason);
        assert!(reason.is_some_and(|r| reasons.contains(&r)), "{reason:?}");
    }
    let status = l.status(key.as_str()).await.unwrap();
    let CacheState::Present(record) = status.state else {
        panic!("{status:?}")
    };
    assert!(record.denied.is_none(), "{record:?}");

    // Revoked: the denial is remembered and the cache never grants again.
    patch_key(faulty(), &key, serde_json::json!({ "status": "revoked" })).await;
    let outcome = l.check(key.as_str()).await;
    assert_eq!(outcome.reason(), Some(Reason::Inactive));
    set_fault(serde_json::json!({"kind": "status", "status": 500, "body": "boom"})).await;
    let outcome = l.check(key.as_str()).await;
    set_fault(serde_json::Value::Null).await;
    assert_eq!(outcome.reason(), Some(Reason::ServerError), "{outcome:?}");
    let status = l.status(key.as_str()).await.unwrap();
    let CacheState::Present(record) = status.state else {
        panic!("{status:?}")
    };
    assert_eq!(record.denied.map(|d| d.reason), Some(Reason::Inactive));
}

#[wasm_bindgen_test]
async fn while_one_check_waits_for_a_hung_server_another_answers_from_the_cache() {
    let (key, l) = licensed_online().await;

    set_fault(serde_json::json!({"kind": "hang"})).await;
    let started = js_sys::Date::now();
    let done = Rc::new(std::cell::RefCell::new(None));
    let (a, k, out) = (l.clone(), key.clone(), Rc::clone(&done));
    let first = wasm_bindgen_futures::future_to_promise(async move {
        let outcome = a.check(k.as_str()).await;
        *out.borrow_mut() = Some((outcome, js_sys::Date::now() - started));
        Ok(wasm_bindgen::JsValue::UNDEFINED)
    });
    let second = l.check(key.as_str()).await;
    let second_ms = js_sys::Date::now() - started;
    wasm_bindgen_futures::JsFuture::from(first).await.unwrap();
    set_fault(serde_json::Value::Null).await;

    let (first, first_ms) = done.borrow_mut().take().unwrap();
    // One check asked and waited for the timeout (2 s); the other found it asking and
    // answered from the cache at once.
    assert_eq!(licensed(&first).0, Source::Cache);
    assert_eq!(licensed(&second).0, Source::Cache);
    let (quick, slow) = (first_ms.min(second_ms), first_ms.max(second_ms));
    assert!(
        quick < 1000.0,
        "both checks waited: {first_ms} ms and {second_ms} ms"
    );
    assert!(slow >= 1900.0, "no check waited for the server: {slow} ms");
}

#[wasm_bindgen_test]
async fn no_cache_and_no_server_is_offline_as_it_is() {
    let l = licensing(dead(), &MemoryStore::new(), GracePolicy::default());
    let outcome = l.check("WASM-NEVER-SEEN").await;
    assert_eq!(outcome.reason(), Some(Reason::Offline));
    assert_eq!(outcome.kind(), "unverified");
}
