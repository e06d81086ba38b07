//! The core's customer-portal steps (src/portal.rs) against the emulator over loopback: sign in
//! by emailed code, list the customer's keys, read a key's devices, free one with the public
//! deactivate, and each typed failure (docs/polar-api.md §16.1, §16.2).
#![cfg(not(target_arch = "wasm32"))]

use polar_license::portal::{
    parse_authenticate, parse_key_page, parse_key_with_activations, parse_request_code, Method,
    Portal, PortalError, PortalRequest, SessionToken,
};
use polar_license::proto::{Api, DeactivateRequest, HttpResponse, Server};
use polar_license_emulator::{
    Emulator, Options, Seed, DEMO_CUSTOMER_ID, DEMO_KEY, DEMO_KEY_REVOKED, DEMO_ORGANIZATION_ID,
};

const EMAIL: &str = "jane.doe@gmail.com";

/// Sends a request as an HTTP/1.1 transport would (a `POST` always with `content-length`).
fn send(
    em: &Emulator,
    method: &str,
    url: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> HttpResponse {
    let path = url.strip_prefix(&em.url()).expect("the emulator's URL");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    let answer = polar_license_testkit::http::raw_exchange_bytes(em.port(), &request);
    let mut response = HttpResponse::new(answer.status, answer.body);
    for (k, v) in &answer.headers {
        response = response.with_header(k, v);
    }
    response
}

fn go(em: &Emulator, req: &PortalRequest) -> HttpResponse {
    send(em, req.method.as_str(), &req.url, &req.headers, &req.body)
}

fn portal(em: &Emulator) -> Portal {
    Portal::new(DEMO_ORGANIZATION_ID, &Server::parse(&em.url())).expect("portal")
}

fn last_code(em: &Emulator) -> String {
    em.customer_session_codes()
        .last()
        .and_then(|c| c["code"].as_str().map(str::to_string))
        .expect("a code")
}

fn sign_in(em: &Emulator, p: &Portal) -> SessionToken {
    let asked = go(em, &p.request_code(EMAIL).expect("request"));
    parse_request_code(&asked).expect("202");
    // The user types it in lower case: Polar's own page upper-cases it, and so does the core.
    let typed = last_code(em).to_ascii_lowercase();
    parse_authenticate(&go(em, &p.authenticate(&typed).expect("request"))).expect("a session")
}

#[test]
fn sign_in_list_keys_read_devices_and_free_one() {
    let em = Emulator::start(Seed::demo(), Options::default()).expect("emulator");
    let p = portal(&em);
    let token = sign_in(&em, &p);
    assert!(token.expose().starts_with("polar_cst_"));

    // Key recovery: every key of the customer, whole.
    let page = parse_key_page(&go(&em, &p.list_keys(&token, 1).expect("request"))).expect("page");
    assert_eq!((page.total_count, page.max_page), (6, 1));
    assert_eq!(page.items.len(), 6);
    assert_eq!(page.items[0].key.expose(), DEMO_KEY);
    assert!(page.items.iter().all(|k| k.customer_id == DEMO_CUSTOMER_ID));
    assert!(page
        .items
        .iter()
        .any(|k| k.key.expose() == DEMO_KEY_REVOKED));

    // Two devices on the key; the demo benefit has device management on.
    let api = Api::new(DEMO_ORGANIZATION_ID, &Server::parse(&em.url())).expect("api");
    let mut ids = Vec::new();
    for label in ["Old laptop", "This laptop"] {
        let req = api
            .activate_request(&polar_license::proto::ActivateRequest::new(DEMO_KEY, label))
            .expect("activate");
        let r = send(&em, "POST", &req.url, &req.headers, &req.body);
        assert_eq!(r.status, 200);
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        ids.push(v["id"].as_str().expect("id").to_string());
    }
    let key_id = page.items[0].id.clone();
    let key = parse_key_with_activations(&go(&em, &p.get_key(&token, &key_id).expect("request")))
        .expect("key");
    let labels: Vec<&str> = key.activations.iter().map(|a| a.label.as_str()).collect();
    assert_eq!(labels, ["Old laptop", "This laptop"]);

    // Free the old one with the public deactivate (key, organization, activation id).
    let req = api
        .deactivate_request(&DeactivateRequest::new(
            key.license_key.key.clone(),
            key.activations[0].id.clone(),
        ))
        .expect("deactivate");
    let r = send(&em, "POST", &req.url, &req.headers, &req.body);
    assert_eq!(r.status, 204);
    let key = parse_key_with_activations(&go(&em, &p.get_key(&token, &key_id).expect("request")))
        .expect("key");
    assert_eq!(key.activations.len(), 1);
    assert_eq!(key.activations[0].id, ids[1]);
}

#[test]
fn each_failure_is_typed() {
    let em = Emulator::start(Seed::demo(), Options::default()).expect("emulator");
    let p = portal(&em);
    // A used code, a never-sent one.
    let token = sign_in(&em, &p);
    let wrong = go(&em, &p.authenticate("ZZZZZZ").expect("request"));
    assert_eq!(
        parse_authenticate(&wrong),
        Err(PortalError::CodeInvalidOrExpired)
    );
    // Unknown key id: not found. No session: not signed in.
    let unknown = p
        .get_key(&token, "21bf892b-2e46-4f50-8060-8fdaf02aa482")
        .expect("request");
    assert_eq!(
        parse_key_with_activations(&go(&em, &unknown)),
        Err(PortalError::NotFound)
    );
    let mut anonymous = p.list_keys(&token, 1).expect("request");
    anonymous.headers.retain(|(k, _)| *k != "authorization");
    assert_eq!(
        parse_key_page(&go(&em, &anonymous)),
        Err(PortalError::NotSignedIn)
    );
    // The session's hour on the emulator's clock.
    em.set_clock_offset(3601);
    let late = go(&em, &p.list_keys(&token, 1).expect("request"));
    assert_eq!(parse_key_page(&late), Err(PortalError::SessionExpired));
    em.set_clock_offset(0);
    // Bad input never leaves.
    assert!(p.authenticate("12345").is_err());
    assert_eq!(p.list_keys(&token, 1).map(|r| r.method), Ok(Method::Get));

    // The sign-in routes' limit, with --rate-limit: the wait is typed.
    let limited = Emulator::start(
        Seed::demo(),
        Options {
            rate_limit: true,
            ..Options::default()
        },
    )
    .expect("emulator");
    let p = portal(&limited);
    for _ in 0..6 {
        parse_request_code(&go(&limited, &p.request_code(EMAIL).expect("request"))).expect("202");
    }
    let r = go(&limited, &p.request_code(EMAIL).expect("request"));
    assert_eq!(
        parse_request_code(&r),
        Err(PortalError::RateLimited(Some(900)))
    );
}

#[test]
fn device_management_off_lists_no_devices() {
    let seed = Seed {
        benefits: Vec::new(),
        ..Seed::demo()
    };
    let em = Emulator::start(seed, Options::default()).expect("emulator");
    let p = portal(&em);
    let token = sign_in(&em, &p);
    let api = Api::new(DEMO_ORGANIZATION_ID, &Server::parse(&em.url())).expect("api");
    let req = api
        .activate_request(&polar_license::proto::ActivateRequest::new(
            DEMO_KEY, "Laptop",
        ))
        .expect("activate");
    let r = send(&em, "POST", &req.url, &req.headers, &req.body);
    assert_eq!(r.status, 200);
    let page = parse_key_page(&go(&em, &p.list_keys(&token, 1).expect("request"))).expect("page");
    let key = parse_key_with_activations(&go(
        &em,
        &p.get_key(&token, &page.items[0].id).expect("request"),
    ))
    .expect("key");
    assert!(key.activations.is_empty());
    assert_eq!(key.license_key.limit_activations, Some(3));
}

// ---- the blocking client ------------------------------------------------------------------

#[test]
fn the_blocking_client_signs_in_lists_and_frees_a_device() {
    use polar_license::{BlockingClient, Verdict};
    let em = Emulator::start(Seed::demo(), Options::default()).expect("emulator");
    let client = BlockingClient::builder(DEMO_ORGANIZATION_ID)
        .base_url(em.url())
        .build()
        .expect("client");
    let old = client
        .activate(&polar_license::proto::ActivateRequest::new(
            DEMO_KEY,
            "Old laptop",
        ))
        .expect("activate");
    let Verdict::Accepted(old) = old else {
        panic!("activation refused")
    };

    client.request_sign_in_code(EMAIL).expect("asked");
    let session = client
        .sign_in(&last_code(&em).to_ascii_lowercase())
        .expect("signed in");
    assert!(!format!("{session:?}").contains(&session.expose()[10..]));
    let keys = client.customer_keys(&session).expect("keys");
    assert_eq!(keys.len(), 6);
    let mine = keys
        .iter()
        .find(|k| k.key.expose() == DEMO_KEY)
        .expect("the demo key");
    let devices = client.devices(&session, &mine.id).expect("devices");
    assert_eq!(devices.activations.len(), 1);
    assert_eq!(devices.activations[0].id, old.activation.id);
    let freed = client
        .deactivate(&DeactivateRequest::new(
            devices.license_key.key.clone(),
            devices.activations[0].id.clone(),
        ))
        .expect("deactivate");
    assert!(matches!(freed, Verdict::Accepted(())));
    assert!(client
        .devices(&session, &mine.id)
        .expect("devices")
        .activations
        .is_empty());
    // A used code, and the wait of the sign-in limit, typed.
    let used = client.sign_in("ZZZZZZ");
    assert_eq!(used, Err(PortalError::CodeInvalidOrExpired));
    // No server: offline, typed.
    em.stop();
    assert!(matches!(
        client.request_sign_in_code(EMAIL),
        Err(PortalError::Offline(_))
    ));
}

#[test]
fn a_transport_without_a_portal_sends_nothing() {
    use polar_license::proto::HttpRequest;
    use polar_license::{BlockingClient, TransportError};
    let client = BlockingClient::builder(DEMO_ORGANIZATION_ID)
        .build_with_transport(|_: &HttpRequest| -> Result<HttpResponse, TransportError> {
            panic!("a license request was sent")
        })
        .expect("client");
    match client.request_sign_in_code(EMAIL) {
        Err(PortalError::Offline(e)) => {
            assert!(e.to_string().contains("no customer-portal requests"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    // Bad input never reaches the transport.
    assert!(matches!(client.sign_in("12"), Err(PortalError::Invalid(_))));
}

/// The session remembered beside the cache (issue #64): sealed, for its hour by the
/// licensing's clock, then forgotten; another app secret opens none of it.
#[test]
fn a_remembered_session_lasts_its_hour_and_is_sealed() {
    use polar_license::Licensing;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;

    let em = Emulator::start(Seed::demo(), Options::default()).expect("emulator");
    let dir = polar_license_testkit::ScratchDir::new("portal-session-seal");
    let now = Arc::new(AtomicI64::new(1_800_000_000));
    let build = |secret: &[u8]| {
        let now = Arc::clone(&now);
        Licensing::builder(DEMO_ORGANIZATION_ID)
            .base_url(em.url())
            .cache_dir(&*dir)
            .app_secret(secret.to_vec())
            .clock(move || now.load(Ordering::SeqCst))
            .build()
            .expect("licensing")
    };
    let lib = build(b"one");
    assert_eq!(lib.remembered_session().expect("read"), None);
    let token = SessionToken::new("polar_cst_abcdefghijklmnopqrstuvwxyz0123456789A012345");
    lib.remember_session(&token, 1_800_003_600).expect("sealed");
    assert_eq!(lib.remembered_session().expect("read"), Some(token.clone()));
    for entry in std::fs::read_dir(&*dir).expect("dir") {
        let bytes = std::fs::read(entry.expect("entry").path()).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&bytes).contains("abcdefghij"));
    }
    // Another app secret: nothing opens (and its own slot is another).
    assert_eq!(build(b"two").remembered_session().expect("read"), None);
    assert_eq!(lib.remembered_session().expect("read"), Some(token.clone()));
    // Polar said an older session expired, while this one was remembered meanwhile (a
    // sign-in of another thread or process): this one is kept; said of this one, it goes.
    let older = SessionToken::new("polar_cst_older00000000000000000000000000000000000000");
    lib.forget_session_if(&older).expect("compared");
    assert_eq!(lib.remembered_session().expect("read"), Some(token.clone()));
    lib.forget_session_if(&token).expect("forgotten");
    assert_eq!(lib.remembered_session().expect("read"), None);
    lib.remember_session(&token, 1_800_003_600).expect("sealed");
    // The hour is over: none, and forgotten for good.
    now.store(1_800_003_600, Ordering::SeqCst);
    assert_eq!(lib.remembered_session().expect("read"), None);
    now.store(1_800_000_000, Ordering::SeqCst);
    assert_eq!(lib.remembered_session().expect("read"), None);
}
