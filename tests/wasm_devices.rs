//! Out of activations on the Rust-on-wasm face (issue #64 item 2), in node and in headless
//! Chromium (`scripts/test-wasm.sh`), as tests/portal_client.rs holds the native face: sign in
//! with the emailed code (read from the emulator's `/__emulator/customer-session/codes`, as a
//! person reads the email), list a key's devices through `AsyncLicensing::list_devices` (the
//! core's `ListDevices` over `fetch`: `GET`s with the session's bearer), free another device by
//! its id and activate here at the limit; key recovery's list; each failure typed (a wrong code,
//! device management off, an unknown session, a key not the customer's, a transport with no
//! portal). Polar is the shared emulator at `POLAR_WASM_EMULATOR_URL` (its rate limits off, its
//! clock never moved here), a fresh key of the demo customer each test.
#![cfg(target_arch = "wasm32")]

use gloo_net::http::Request;
use polar_license::portal::{recoverable_keys, PortalError, SessionToken};
use polar_license::proto::{HttpRequest, HttpResponse};
use polar_license::transport::TransportError;
use polar_license::wasm::{date_now, AsyncLicensing};
use polar_license::{ActivateRequest, Error, Reason, Verdict};
use polar_license_testkit::fetch::{emulator, new_key};
use serde_json::{json, Value};
use std::cell::Cell;
use std::rc::Rc;
use wasm_bindgen_test::wasm_bindgen_test;

const ORG: &str = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";
/// The demo seed's customer (`polar_license_emulator::DEMO_CUSTOMER_ID`) and their email.
const CUSTOMER: &str = "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d";
const EMAIL: &str = "jane.doe@gmail.com";
/// The demo seed's benefit (`DEMO_BENEFIT_ID`): device management (`enable_customer_admin`) on.
const MANAGED: &str = "5d3c2b1a-9e8f-4a7b-8c6d-1e2f3a4b5c6d";
/// A benefit the seed does not describe: device management off.
const UNMANAGED: &str = "0e1d2c3b-4a59-4687-9a5b-4c3d2e1f0a9b";

fn app(machine: &str) -> AsyncLicensing {
    AsyncLicensing::builder(ORG)
        .base_url(emulator())
        .memory_store()
        .machine_id(machine)
        .build()
        .expect("licensing builds")
}

/// The newest code the emulator emailed to `email`.
async fn emailed_code(email: &str) -> String {
    let resp = Request::get(&format!("{}/__emulator/customer-session/codes", emulator()))
        .send()
        .await
        .expect("the codes route");
    let body: Value = serde_json::from_str(&resp.text().await.expect("text")).expect("json");
    body["codes"]
        .as_array()
        .expect("codes")
        .iter()
        .rev()
        .find(|c| c["email"] == email)
        .and_then(|c| c["code"].as_str())
        .expect("a code emailed")
        .to_string()
}

/// Signs in as the demo customer: the code asked for, read from the "email" and typed in
/// lower case (the core upper-cases it, as Polar's page does).
async fn sign_in(app: &AsyncLicensing) -> SessionToken {
    app.client()
        .request_sign_in_code(EMAIL)
        .await
        .expect("code asked");
    let typed = emailed_code(EMAIL).await.to_ascii_lowercase();
    app.client().sign_in(&typed).await.expect("signed in")
}

/// A fresh key of the demo customer on `benefit` with `limit` activations.
async fn customers_key(benefit: &str, limit: i64) -> String {
    new_key(
        emulator(),
        "DEVICES",
        json!({ "customer_id": CUSTOMER, "customer_email": EMAIL,
                "benefit_id": benefit, "limit_activations": limit }),
    )
    .await
}

async fn activation_id(app: &AsyncLicensing, key: &str, label: &str) -> String {
    match app.activate(&ActivateRequest::new(key, label)).await {
        Ok(Verdict::Accepted(read)) => read.activation.id,
        other => panic!("activate {label}: {other:?}"),
    }
}

#[wasm_bindgen_test]
async fn at_the_limit_list_free_another_and_activate_here() {
    let key = customers_key(MANAGED, 2).await;
    let old = activation_id(&app("machine-old"), &key, "Old laptop").await;
    let other = activation_id(&app("machine-other"), &key, "Desktop").await;
    let here = app("machine-here");
    match here
        .activate(&ActivateRequest::new(key.as_str(), "This laptop"))
        .await
    {
        Ok(Verdict::Denied(d)) => assert_eq!(d.reason, Reason::ActivationLimit, "{d:?}"),
        other => panic!("at the limit: {other:?}"),
    }

    let session = sign_in(&here).await;
    let listed = here
        .list_devices(&session, key.as_str())
        .await
        .expect("devices");
    assert_eq!(listed.limit_activations, Some(2));
    let shown: Vec<(&str, &str, bool)> = listed
        .devices
        .iter()
        .map(|d| (d.id.as_str(), d.label.as_str(), d.this_machine))
        .collect();
    assert_eq!(
        shown,
        [
            (old.as_str(), "Old laptop", false),
            (other.as_str(), "Desktop", false)
        ]
    );

    // Free the old laptop by its id (the public deactivate: no session), then activate here.
    match here.deactivate(key.as_str(), Some(&old)).await {
        Ok(Verdict::Accepted(())) => {}
        other => panic!("free: {other:?}"),
    }
    let mine = activation_id(&here, &key, "This laptop").await;
    let listed = here
        .list_devices(&session, key.as_str())
        .await
        .expect("devices");
    let shown: Vec<(&str, bool)> = listed
        .devices
        .iter()
        .map(|d| (d.id.as_str(), d.this_machine))
        .collect();
    assert_eq!(shown, [(other.as_str(), false), (mine.as_str(), true)]);
    assert!(here.check(key.as_str()).await.is_licensed());
}

#[wasm_bindgen_test]
async fn recovery_offers_the_customers_granted_keys() {
    let key = customers_key(MANAGED, 2).await;
    let here = app("machine-recover");
    let session = sign_in(&here).await;
    let keys = here
        .client()
        .customer_keys(&session)
        .await
        .expect("the customer's keys");
    assert!(keys.iter().all(|k| k.customer_id == CUSTOMER));
    let offered = recoverable_keys(keys, date_now());
    // The licensing's own list is the same.
    let listed = here.recoverable_keys(&session).await.expect("recoverable");
    assert_eq!(
        listed.iter().map(|k| &k.id).collect::<Vec<_>>(),
        offered.iter().map(|k| &k.id).collect::<Vec<_>>()
    );
    let found = offered
        .iter()
        .find(|k| k.key.expose() == key)
        .expect("the fresh key is offered");
    // Shown by its display form; the whole key goes only into the activation.
    assert!(found.display_key.starts_with("****-"));
    assert!(!found.display_key.contains(&key[..12]));
    let _ = activation_id(&here, found.key.expose(), "Recovered").await;
    assert!(here.check(key.as_str()).await.is_licensed());
    // A revoked key of the customer is never offered.
    assert!(offered
        .iter()
        .all(|k| k.status == polar_license::model::LicenseKeyStatus::Granted));
}

#[wasm_bindgen_test]
async fn each_failure_is_typed() {
    let here = app("machine-failures");
    // A code nobody was sent.
    assert_eq!(
        here.client().sign_in("ZZZZZZ").await,
        Err(PortalError::CodeInvalidOrExpired)
    );
    // Bad input: refused unsent.
    assert!(matches!(
        here.client().sign_in("ab").await,
        Err(PortalError::Invalid(_))
    ));
    assert!(matches!(
        here.client().request_sign_in_code("no at sign").await,
        Err(PortalError::Invalid(_))
    ));
    // A session Polar does not know (expired, or never made).
    let unknown = SessionToken::new(format!(
        "polar_cst_{}",
        polar_license_testkit::fetch::random_hex(40)
    ));
    let key = customers_key(MANAGED, 2).await;
    assert_eq!(
        here.list_devices(&unknown, key.as_str()).await,
        Err(PortalError::SessionExpired)
    );

    let session = sign_in(&here).await;
    // A key that is not this customer's (another customer's, generated by the emulator).
    let strangers = new_key(emulator(), "DEVICES", json!({ "benefit_id": MANAGED })).await;
    assert_eq!(
        here.list_devices(&session, strangers.as_str()).await,
        Err(PortalError::NotFound)
    );
    // Device management off: the portal lists nothing though this machine holds a seat.
    let unmanaged = customers_key(UNMANAGED, 2).await;
    let _ = activation_id(&here, &unmanaged, "This laptop").await;
    let off = here.list_devices(&session, unmanaged.as_str()).await;
    assert_eq!(off, Err(PortalError::DeviceManagementOff));
    assert_eq!(off.unwrap_err().code(), "device_management_off");
}

/// Rotates `key` at the emulator (`POST /__emulator/keys/{key}/rotate`, Polar's rotate): its
/// new string.
async fn rotate(key: &str) -> String {
    let resp = Request::post(&format!("{}/__emulator/keys/{key}/rotate", emulator()))
        .send()
        .await
        .expect("the rotate route");
    assert_eq!(resp.status(), 200);
    let body: Value = serde_json::from_str(&resp.text().await.expect("text")).expect("json");
    body["key"].as_str().expect("the new key").to_string()
}

#[wasm_bindgen_test]
async fn a_rotated_key_is_followed_with_its_activation() {
    let key = customers_key(MANAGED, 1).await;
    let here = app("machine-rotation");
    let activation = activation_id(&here, &key, "This laptop").await;
    let rotated = rotate(&key).await;
    assert_ne!(rotated, key);
    // The old string is Polar's 404 at once.
    let asked = polar_license::ValidateRequest::new(key.as_str()).activation_id(activation.clone());
    match here.validate(&asked).await {
        Ok(Verdict::Denied(d)) => assert_eq!(d.reason, Reason::NotFound),
        other => panic!("the old string: {other:?}"),
    }
    let session = sign_in(&here).await;
    let (new, verdict) = here
        .follow_rotation(&session, key.as_str())
        .await
        .expect("followed");
    assert_eq!(new.expose(), rotated);
    assert!(verdict.is_accepted(), "{verdict:?}");
    let status = here.status(new.clone()).await.expect("status");
    assert_eq!(status.activation.map(|a| a.id), Some(activation.clone()));
    let report = here.check_report(new.clone()).await;
    assert!(report.outcome.is_licensed(), "{:?}", report.outcome);
    assert_eq!(report.activation_id.as_deref(), Some(activation.as_str()));
    assert!(matches!(
        here.status(key.as_str()).await.expect("status").state,
        polar_license::wasm::CacheState::Empty
    ));
    // Not rotated again: nothing to follow.
    assert_eq!(
        here.follow_rotation(&session, new.clone()).await,
        Err(PortalError::NotFound)
    );
}

#[wasm_bindgen_test]
async fn a_transport_without_a_portal_sends_nothing() {
    let sent = Rc::new(Cell::new(0u32));
    let counter = sent.clone();
    let transport = move |_: HttpRequest| {
        counter.set(counter.get() + 1);
        async { Ok::<HttpResponse, TransportError>(HttpResponse::new(500, "")) }
    };
    let here = AsyncLicensing::builder(ORG)
        .base_url(emulator())
        .memory_store()
        .machine_id("machine-closure")
        .build_with_transport(transport)
        .expect("licensing builds");
    match here.client().request_sign_in_code(EMAIL).await {
        Err(PortalError::Offline(Error::Offline { detail, .. })) => {
            assert!(detail.contains("no customer-portal"), "{detail}")
        }
        other => panic!("a closure has no portal: {other:?}"),
    }
    assert_eq!(sent.get(), 0);
}
