//! Storage round-trips and the JS face, with no server (a scripted transport), in node and in
//! headless Chromium: the record and its ledger in a JS storage are the native cache format
//! under the native seal; sync and async `{ get, set, remove }` adapters; `localStorage` by
//! default in browsers; tampering and replay; failing storage; the `reasonTable` export.
#![cfg(target_arch = "wasm32")]

use js_sys::{Function, Object, Reflect};
use polar_license::cache::{self, MacKey};
use polar_license::grace::{CheckOutcome, GracePolicy, Source};
use polar_license::proto::PRODUCTION_URL;
use polar_license::transport::{TransportError, TransportErrorKind};
use polar_license::wasm::{AsyncLicensing, CacheState, JsStore, WebStorage, SECRET_NAME};
use polar_license::{ActivateRequest, HttpRequest, HttpResponse, Reason, Untrusted};
use polar_license_testkit::fetch::sleep_ms;
use std::time::Duration;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::wasm_bindgen_test;

const ORG: &str = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";
const KEY: &str = "STORE-50B22C51-07BD-4160-A61E-19B6CC6ED415";
const ACTIVATION: &str = "3f6d2a1b-8c4e-4f5a-9b7c-1d2e3f4a5b6c";

fn license_json(activation: bool) -> String {
    let activation = if activation {
        format!(
            r#"{{"id":"{ACTIVATION}","license_key_id":"0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e","label":"l","meta":{{}},"created_at":"2025-01-01T00:00:00Z","modified_at":null}}"#
        )
    } else {
        "null".to_string()
    };
    format!(
        r#"{{"id":"0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e","created_at":"2025-01-01T00:00:00Z","modified_at":null,"organization_id":"{ORG}","customer_id":"8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d","customer":{{"id":"8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d","created_at":"2025-01-01T00:00:00Z","organization_id":"{ORG}","email":"ada@example.com","metadata":{{"plan_tier":"pro"}}}},"benefit_id":"5d3c2b1a-9e8f-4a7b-8c6d-1e2f3a4b5c6d","key":"{KEY}","display_key":"****-6ED415","status":"granted","limit_activations":3,"usage":0,"limit_usage":null,"validations":1,"last_validated_at":null,"expires_at":null,"activation":{activation}}}"#
    )
}

fn activation_json() -> String {
    let license = license_json(false);
    let license = license.replace(r#","activation":null"#, "");
    format!(
        r#"{{"id":"{ACTIVATION}","license_key_id":"0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e","label":"l","meta":{{}},"created_at":"2025-01-01T00:00:00Z","modified_at":null,"license_key":{license}}}"#
    )
}

/// A scripted Polar: 200 for activate and validate.
async fn polar(req: HttpRequest) -> Result<HttpResponse, TransportError> {
    let body = if req.url.ends_with("/activate") {
        activation_json()
    } else {
        license_json(req.body.windows(13).any(|w| w == b"activation_id"))
    };
    Ok(HttpResponse::new(200, body))
}

async fn unreachable(_: HttpRequest) -> Result<HttpResponse, TransportError> {
    Err(TransportError::new(
        TransportErrorKind::Connect,
        "connection refused",
    ))
}

fn always_ask() -> GracePolicy {
    GracePolicy {
        revalidate_after: Duration::ZERO,
        ..GracePolicy::default()
    }
}

/// A JS object `{ m: Map, get, set, remove }`; `asynchronous` makes each return a promise.
fn js_storage(asynchronous: bool) -> JsValue {
    let obj = Object::new();
    Reflect::set(&obj, &"m".into(), &js_sys::Map::new()).unwrap();
    let wrap = |body: &str| {
        if asynchronous {
            format!("return Promise.resolve((() => {{ {body} }})())")
        } else {
            body.to_string()
        }
    };
    let get = Function::new_with_args("k", &wrap("return this.m.has(k) ? this.m.get(k) : null"));
    let set = Function::new_with_args("k, v", &wrap("this.m.set(k, v)"));
    let remove = Function::new_with_args("k", &wrap("this.m.delete(k)"));
    Reflect::set(&obj, &"get".into(), &get).unwrap();
    Reflect::set(&obj, &"set".into(), &set).unwrap();
    Reflect::set(&obj, &"remove".into(), &remove).unwrap();
    obj.into()
}

fn stored(storage: &JsValue, name: &str) -> Option<String> {
    let map: js_sys::Map = Reflect::get(storage, &"m".into()).unwrap().unchecked_into();
    map.get(&name.into()).as_string()
}

fn stored_names(storage: &JsValue) -> Vec<String> {
    let map: js_sys::Map = Reflect::get(storage, &"m".into()).unwrap().unchecked_into();
    js_sys::Array::from(&map.keys())
        .iter()
        .filter_map(|k| k.as_string())
        .collect()
}

/// The storage name of `KEY`'s record (the scripted transport stands for production).
fn slot() -> String {
    format!(
        "polar-license.{}",
        cache::slot_name(PRODUCTION_URL, ORG, KEY)
    )
}

/// The native seals of `KEY`'s record: the key, the org, the install secret (hex in the
/// storage), the origin, no machine and the app secret, as the native `Licensing` derives them.
fn native_mac(secret_hex: &str, app_secret: &[u8]) -> MacKey {
    let secret: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&secret_hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    MacKey::for_slot(KEY, ORG, &secret, PRODUCTION_URL, None, Some(app_secret))
}

fn licensing(storage: &JsValue, app_secret: &[u8]) -> polar_license::wasm::AsyncLicensingBuilder {
    AsyncLicensing::builder(ORG)
        .store(JsStore::new(storage.clone()).unwrap())
        .app_secret(app_secret.to_vec())
        .policy(always_ask())
}

/// An app over `storage` (no app secret) whose first check, against [`polar`], licenses.
async fn licensed_online(storage: &JsValue) -> AsyncLicensing {
    let app = licensing(storage, b"").build_with_transport(polar).unwrap();
    assert!(app.check(KEY).await.is_licensed());
    app
}

#[wasm_bindgen_test]
async fn js_storage_round_trips_in_the_native_format() {
    for asynchronous in [false, true] {
        let storage = js_storage(asynchronous);
        let online = licensing(&storage, b"app")
            .build_with_transport(polar)
            .unwrap();
        let first = online.check(KEY).await;
        assert_eq!(first.source(), Some(Source::Online));

        // Three names: the install secret, the record and its ledger, none holding the key.
        let mut names = stored_names(&storage);
        names.sort();
        assert_eq!(names.len(), 3, "{names:?}");
        assert_eq!(names[0], SECRET_NAME);
        assert_eq!(names[1], slot());
        assert_eq!(names[2], format!("{}-seq", slot()));
        let text = stored(&storage, &slot()).unwrap();
        assert!(text.starts_with("polar-license-cache v2\n"), "{text}");
        assert!(!text.contains(KEY));

        // The native seal, exactly as the native Licensing derives it.
        let secret_hex = stored(&storage, SECRET_NAME).unwrap();
        assert_eq!(secret_hex.len(), 64);
        let mac = native_mac(&secret_hex, b"app");
        let record = cache::decode(text.as_bytes(), &mac).unwrap();
        assert_eq!(record.display_key, "****-6ED415");
        assert_eq!(record.origin, PRODUCTION_URL);
        assert!(record.good.is_some());
        let ledger = stored(&storage, &names[2]).unwrap();
        assert_eq!(
            cache::decode_ledger(ledger.as_bytes(), &mac),
            Ok(record.seq)
        );

        // Another client over the same storage, Polar unreachable: the cache answers, and
        // says why.
        let offline = licensing(&storage, b"app")
            .build_with_transport(unreachable)
            .unwrap();
        let report = offline.check_report(KEY).await;
        assert_eq!(
            report.fallback.as_ref().map(|e| e.reason()),
            Some(Reason::Offline)
        );
        assert!(report.cache_refreshed());
        match report.outcome {
            CheckOutcome::Licensed {
                source: Source::Cache,
                license,
                grace_remaining: Some(left),
                ..
            } => {
                assert_eq!(license.license_key.key.expose(), KEY);
                assert!(left > Duration::from_secs(6 * 86_400));
            }
            other => panic!("{other:?}"),
        }

        // Another app secret cannot read it: no cache, offline as it is.
        let stranger = licensing(&storage, b"other")
            .build_with_transport(unreachable)
            .unwrap();
        assert_eq!(stranger.check(KEY).await.reason(), Some(Reason::Offline));
    }
}

#[wasm_bindgen_test]
async fn a_tampered_record_is_untrusted_and_never_grants() {
    let storage = js_storage(false);
    let online = licensed_online(&storage).await;
    let text = stored(&storage, &slot()).unwrap();
    let forged = text.replace("\"granted\"", "\"grantex\"");
    let map: js_sys::Map = Reflect::get(&storage, &"m".into())
        .unwrap()
        .unchecked_into();
    map.set(&slot().as_str().into(), &forged.into());

    let offline = licensing(&storage, b"")
        .build_with_transport(unreachable)
        .unwrap();
    let status = offline.status(KEY).await.unwrap();
    assert_eq!(status.state, CacheState::Untrusted(Untrusted::BadMac));
    assert_eq!(offline.check(KEY).await.reason(), Some(Reason::Offline));

    // The good record put back after a newer one was written: replayed, no cache.
    map.set(&slot().as_str().into(), &text.clone().into());
    assert!(online.check(KEY).await.is_licensed());
    map.set(&slot().as_str().into(), &text.into());
    let status = offline.status(KEY).await.unwrap();
    assert_eq!(status.state, CacheState::Untrusted(Untrusted::Replayed));
    assert_eq!(offline.check(KEY).await.reason(), Some(Reason::Offline));
}

#[wasm_bindgen_test]
async fn activate_remembers_and_deactivate_forgets() {
    let storage = js_storage(true);
    let l = licensing(&storage, b"")
        .machine_id("electron-machine")
        .build_with_transport(polar)
        .unwrap();
    let v = l.activate(&ActivateRequest::new(KEY, "l")).await.unwrap();
    assert!(v.is_accepted());
    let CacheState::Present(r) = l.status(KEY).await.unwrap().state else {
        panic!()
    };
    assert_eq!(r.activation.map(|a| a.id), Some(ACTIVATION.to_string()));

    // An activation is a verdict: with Polar unreachable right after it, licensed from the
    // cache, for the activation.
    let offline = licensing(&storage, b"")
        .machine_id("electron-machine")
        .build_with_transport(unreachable)
        .unwrap();
    match offline.check(KEY).await {
        CheckOutcome::Licensed {
            source: Source::Cache,
            license,
            ..
        } => assert_eq!(
            license.activation.map(|a| a.id).as_deref(),
            Some(ACTIVATION)
        ),
        other => panic!("{other:?}"),
    }

    async fn gone(req: HttpRequest) -> Result<HttpResponse, TransportError> {
        assert!(req.url.ends_with("/deactivate"));
        Ok(HttpResponse::new(204, ""))
    }
    let d = licensing(&storage, b"")
        .machine_id("electron-machine")
        .build_with_transport(gone)
        .unwrap();
    assert!(d.deactivate(KEY, None).await.unwrap().is_accepted());
    let CacheState::Present(r) = d.status(KEY).await.unwrap().state else {
        panic!()
    };
    assert!(r.activation.is_none());
}

#[wasm_bindgen_test]
async fn a_failing_storage_is_cache_error_and_names_the_activation() {
    // A storage that keeps the install secret but cannot store records.
    let storage = js_storage(false);
    let records =
        format!("if (k !== '{SECRET_NAME}') throw new Error('disk full'); this.m.set(k, v)");
    let throws = Function::new_with_args("k, v", &records);
    Reflect::set(&storage, &"set".into(), &throws).unwrap();
    let l = licensing(&storage, b"")
        .build_with_transport(polar)
        .unwrap();
    let e = l
        .activate(&ActivateRequest::new(KEY, "l"))
        .await
        .unwrap_err();
    assert_eq!(e.reason(), Reason::CacheError);
    assert!(e.detail().contains(ACTIVATION), "{e}");
    assert!(e.detail().contains("disk full"), "{e}");
    // Check asks Polar all the same: licensed, the cache not refreshed.
    let report = l.check_report(KEY).await;
    assert!(report.outcome.is_licensed());
    assert_eq!(
        report.cache_error.map(|e| e.reason()),
        Some(Reason::CacheError)
    );

    // A storage that cannot even keep the install secret: activate fails before any request
    // (no slot taken), and check is online only: licensed, or cache_error (never a plain
    // offline) when Polar cannot be asked either.
    let broken = js_storage(false);
    let throws = Function::new_with_args("k, v", "throw new Error('disk full')");
    Reflect::set(&broken, &"set".into(), &throws).unwrap();
    async fn never(_: HttpRequest) -> Result<HttpResponse, TransportError> {
        panic!("a request was sent")
    }
    let none = licensing(&broken, b"").build_with_transport(never).unwrap();
    let e = none
        .activate(&ActivateRequest::new(KEY, "l"))
        .await
        .unwrap_err();
    assert_eq!(e.reason(), Reason::CacheError);
    licensed_online(&broken).await;
    let off = licensing(&broken, b"")
        .build_with_transport(unreachable)
        .unwrap();
    assert_eq!(off.check(KEY).await.reason(), Some(Reason::CacheError));

    let e = JsStore::new(Object::new().into()).unwrap_err();
    assert_eq!(e.reason(), Reason::InvalidInput);
}

#[wasm_bindgen_test]
async fn local_storage_is_the_default_in_browsers_and_memory_in_node() {
    let l = AsyncLicensing::builder(ORG)
        .policy(always_ask())
        .build_with_transport(polar)
        .unwrap();
    assert!(l.check(KEY).await.is_licensed());
    match WebStorage::local() {
        Some(_) => {
            let ls: web_sys_storage::Storage =
                Reflect::get(&js_sys::global(), &"localStorage".into())
                    .unwrap()
                    .unchecked_into();
            let text = ls.get_item(&slot());
            assert!(text.starts_with("polar-license-cache v2\n"), "{text}");
            assert_eq!(ls.get_item(SECRET_NAME).len(), 64);
            ls.remove_item(&slot());
            ls.remove_item(&format!("{}-seq", slot()));
        }
        None => {
            // node: memory, so a second client starts empty.
            let l2 = AsyncLicensing::builder(ORG)
                .build_with_transport(unreachable)
                .unwrap();
            assert_eq!(l2.status(KEY).await.unwrap().state, CacheState::Empty);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Across tabs: the slot's Web Lock (license.js's) and writes ordered by the ledger.

/// Polar's answer that the key was revoked (`denied`, `inactive`).
async fn revoked(_: HttpRequest) -> Result<HttpResponse, TransportError> {
    let body = r#"{"error":"ResourceNotFound","detail":"License key is no longer active."}"#;
    Ok(HttpResponse::new(404, body))
}

/// Whether the host has Web Locks (browsers; not node 20).
fn has_web_locks() -> bool {
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into()).unwrap();
    navigator.is_object()
        && Reflect::get(&navigator, &"locks".into())
            .unwrap()
            .is_object()
}

/// Takes the Web Lock `name` from JS, as license.js (or another tab) does, and resolves its
/// release once it is held; `None` where the host has no `navigator.locks` (node 20).
async fn hold_web_lock(name: &str) -> Option<Function> {
    let take = Function::new_with_args(
        "name",
        "const locks = globalThis.navigator && globalThis.navigator.locks; \
         if (!locks) return null; \
         return new Promise((held) => locks.request(name, () => new Promise((release) => held(release))));",
    );
    let held = take.call1(&JsValue::NULL, &name.into()).unwrap();
    if held.is_null() {
        return None;
    }
    let release = wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(held))
        .await
        .unwrap();
    Some(release.unchecked_into())
}

/// A copy of a `js_storage`'s entries in a new one.
fn copy_of(storage: &JsValue) -> JsValue {
    let copy = js_storage(false);
    let map: js_sys::Map = Reflect::get(&copy, &"m".into()).unwrap().unchecked_into();
    for name in stored_names(storage) {
        map.set(
            &name.clone().into(),
            &stored(storage, &name).unwrap().into(),
        );
    }
    copy
}

/// Copies the slot's record and ledger from `from` into `to` (another tab's write).
fn write_slot(from: &JsValue, to: &JsValue) {
    let map: js_sys::Map = Reflect::get(to, &"m".into()).unwrap().unchecked_into();
    for name in [slot(), format!("{}-seq", slot())] {
        map.set(&name.clone().into(), &stored(from, &name).unwrap().into());
    }
}

/// Whether the record a storage holds for `KEY` is a denial (it never grants while marked),
/// and that a later check with Polar unreachable does not license.
async fn stored_denial(storage: &JsValue) -> bool {
    let l = licensing(storage, b"")
        .build_with_transport(unreachable)
        .unwrap();
    let status = l.status(KEY).await.unwrap();
    let CacheState::Present(record) = status.state else {
        panic!("no record: {:?}", status.state);
    };
    let later = l.check(KEY).await;
    assert!(!later.is_licensed(), "{later:?}");
    record.denied.is_some()
}

/// A licensed record in `storage` (checked at `now`), and, in a copy of it, the denial a
/// check at `now + 5` recorded (what another tab writes meanwhile).
async fn licensed_and_denied_copy(storage: &JsValue, now: i64) -> JsValue {
    let first = licensing(storage, b"").clock(move || now - 100);
    let first = first.build_with_transport(polar).unwrap();
    assert!(first.check(KEY).await.is_licensed());
    let other_tab = copy_of(storage);
    let denier = licensing(&other_tab, b"").clock(move || now + 5);
    let denied = denier
        .build_with_transport(revoked)
        .unwrap()
        .check_report(KEY)
        .await;
    assert!(
        matches!(denied.outcome, CheckOutcome::Denied(_)),
        "{:?} {:?} {:?}",
        denied.outcome,
        denied.fallback,
        denied.cache_error
    );
    other_tab
}

#[wasm_bindgen_test]
async fn a_web_lock_held_in_js_holds_the_check_until_released() {
    let storage = js_storage(false);
    // The install secret first, so that the check below waits for the slot's lock alone.
    let l = licensed_online(&storage).await;
    if !has_web_locks() {
        // node 20 has no Web Locks: the lock is this instance's (the tests above hold it).
        return;
    }
    let release = hold_web_lock(&slot()).await.unwrap();
    let done = std::rc::Rc::new(std::cell::RefCell::new(None));
    let out = done.clone();
    wasm_bindgen_futures::spawn_local(async move {
        *out.borrow_mut() = Some(l.check(KEY).await);
    });
    sleep_ms(300).await;
    assert!(
        done.borrow().is_none(),
        "the check did not wait for the tab holding the slot"
    );
    release.call0(&JsValue::NULL).unwrap();
    for _ in 0..100 {
        if done.borrow().is_some() {
            break;
        }
        sleep_ms(20).await;
    }
    let outcome = done
        .borrow_mut()
        .take()
        .expect("the check ended once the lock was released");
    assert!(outcome.is_licensed(), "{outcome:?}");
}

#[wasm_bindgen_test]
async fn a_late_grant_after_another_tabs_denial_under_its_web_lock_ends_denied() {
    if !has_web_locks() {
        // node 20 has no Web Locks (the next test orders the writes there).
        return;
    }
    let storage = js_storage(false);
    let now = 1_800_000_000;
    let other_tab = licensed_and_denied_copy(&storage, now).await;
    // This tab's check: its answer (a grant) held until the test lets it go.
    let (gate, open) = {
        let mut open = None;
        let gate = js_sys::Promise::new(&mut |resolve, _| open = Some(resolve));
        (gate, open.unwrap())
    };
    let asked = std::rc::Rc::new(std::cell::Cell::new(false));
    let (seen, gate) = (asked.clone(), std::rc::Rc::new(gate));
    let held = move |req: HttpRequest| {
        seen.set(true);
        let gate = gate.clone();
        async move {
            wasm_bindgen_futures::JsFuture::from((*gate).clone())
                .await
                .unwrap();
            polar(req).await
        }
    };
    let l = licensing(&storage, b"").clock(move || now);
    let l = l.build_with_transport(held).unwrap();
    let done = std::rc::Rc::new(std::cell::RefCell::new(None));
    let out = done.clone();
    wasm_bindgen_futures::spawn_local(async move {
        *out.borrow_mut() = Some(l.check(KEY).await);
    });
    while !asked.get() {
        sleep_ms(10).await;
    }
    // The other tab takes the slot's Web Lock, the grant arrives meanwhile, and the other tab
    // writes its denial (Polar's later answer) before it lets go.
    let release = hold_web_lock(&slot()).await.unwrap();
    open.call0(&JsValue::NULL).unwrap();
    sleep_ms(300).await;
    write_slot(&other_tab, &storage);
    release.call0(&JsValue::NULL).unwrap();
    for _ in 0..100 {
        if done.borrow().is_some() {
            break;
        }
        sleep_ms(20).await;
    }
    let outcome = done.borrow_mut().take().expect("the check ended");
    assert!(matches!(outcome, CheckOutcome::Denied(_)), "{outcome:?}");
    assert!(
        stored_denial(&storage).await,
        "the stored record is no longer the denial"
    );
}

#[wasm_bindgen_test]
async fn a_grant_is_not_written_over_a_denial_stored_after_the_slot_was_read() {
    // A writer that does not share the lock (another process over the app's storage, a host
    // without Web Locks) stores its denial between this check's last read and its write.
    let storage = js_storage(false);
    let now = 1_800_000_000;
    let other_tab = licensed_and_denied_copy(&storage, now).await;
    let reads = std::rc::Rc::new(std::cell::Cell::new(0));
    let get: Function = Reflect::get(&storage, &"get".into())
        .unwrap()
        .unchecked_into();
    let (count, from, to) = (reads.clone(), other_tab.clone(), storage.clone());
    let hook =
        wasm_bindgen::closure::Closure::<dyn Fn(JsValue) -> JsValue>::new(move |name: JsValue| {
            let value = get.call1(&to, &name).unwrap();
            // The slot's clock note is read last of a slot read: the second is the read
            // before the answer is folded in and written.
            if name
                .as_string()
                .is_some_and(|n| n == format!("{}-clock", slot()))
            {
                count.set(count.get() + 1);
                if count.get() == 2 {
                    write_slot(&from, &to);
                }
            }
            value
        });
    Reflect::set(&storage, &"get".into(), hook.as_ref()).unwrap();
    let l = licensing(&storage, b"").clock(move || now);
    let report = l
        .build_with_transport(polar)
        .unwrap()
        .check_report(KEY)
        .await;
    assert_eq!(reads.get(), 2, "the check read the slot twice");
    Reflect::set(
        &storage,
        &"get".into(),
        &Reflect::get(&other_tab, &"get".into()).unwrap(),
    )
    .unwrap();
    assert!(
        stored_denial(&storage).await,
        "the stored record is no longer the denial"
    );
    // The check answers what Polar said, and says the cache did not learn it.
    assert!(report.outcome.is_licensed(), "{:?}", report.outcome);
    let e = report.cache_error.expect("the write was refused");
    assert!(e.to_string().contains("stored meanwhile"), "{e}");
    assert_eq!(stored(&storage, &slot()), stored(&other_tab, &slot()));
}

/// `localStorage`'s two calls, bound by hand (web-sys's `Storage` feature is not enabled).
mod web_sys_storage {
    use wasm_bindgen::prelude::*;

    #[wasm_bindgen]
    extern "C" {
        pub type Storage;
        #[wasm_bindgen(method, js_name = getItem)]
        pub fn get_item(this: &Storage, key: &str) -> String;
        #[wasm_bindgen(method, js_name = removeItem)]
        pub fn remove_item(this: &Storage, key: &str);
    }
}
