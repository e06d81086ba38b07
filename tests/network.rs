//! Issue #13 item 3: corporate networks. An explicit proxy carries every request (a CONNECT
//! proxy on loopback counts its tunnels); a bad proxy URL is `invalid_input` that never shows
//! the proxy's password; a dead proxy is `offline` and the grace cache answers. A company's
//! TLS-inspecting proxy (a TLS server on loopback whose certificate a company CA signed) is
//! trusted through the system's trust store (`TlsRoots::System`, the default) once the CA is
//! installed there, and refused with `TlsRoots::Bundled`.
#![cfg(not(target_arch = "wasm32"))]

use polar_license::grace::Source;
#[cfg(target_os = "linux")]
use polar_license::TlsRoots;
use polar_license::{
    BlockingClient, Error, Licensing, MachineBinding, ProxySetting, Reason, ValidateRequest,
    Verdict,
};
use polar_license_emulator::{Emulator, Options, Seed, DEMO_KEY};
use polar_license_testkit::{licensing_builder, ConnectProxy, ScratchDir};
use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::time::Duration;
// The TLS-inspecting proxy (Linux only: it needs the system trust store's CA bundle).
#[cfg(target_os = "linux")]
use std::{
    io::{Read, Write},
    net::TcpStream,
    sync::Arc,
    thread,
};

#[test]
fn an_explicit_proxy_carries_every_request() {
    let polar = Emulator::start(Seed::demo(), Options::default()).expect("emulator");
    let proxy = ConnectProxy::start(None);
    let client = BlockingClient::builder(polar.organization_id())
        .base_url(polar.url())
        .proxy(ProxySetting::Url(proxy.url.clone()))
        .build()
        .expect("builds");
    match client.validate(&ValidateRequest::new(DEMO_KEY)) {
        Ok(Verdict::Accepted(v)) => assert_eq!(v.license_key.key.expose(), DEMO_KEY),
        other => panic!("{other:?}"),
    }
    assert_eq!(proxy.tunnels.load(Ordering::SeqCst), 1, "through the proxy");
    assert_eq!(polar.request_count(), 1);

    // Direct: the proxy sees nothing.
    let direct = BlockingClient::builder(polar.organization_id())
        .base_url(polar.url())
        .proxy(ProxySetting::Direct)
        .build()
        .expect("builds");
    assert!(direct
        .validate(&ValidateRequest::new(DEMO_KEY))
        .is_ok_and(|v| v.is_accepted()));
    assert_eq!(proxy.tunnels.load(Ordering::SeqCst), 1);
}

#[test]
fn a_bad_proxy_url_is_invalid_input_and_never_shows_its_password() {
    for url in [
        "socks5://user:s3cret@proxy.corp:1080",
        "proxy.corp:3128",
        "ftp://user:s3cret@proxy.corp",
    ] {
        let err = BlockingClient::builder("2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10")
            .proxy(ProxySetting::Url(url.into()))
            .build()
            .expect_err(url);
        assert_eq!(err.reason(), Reason::InvalidInput, "{url}");
        assert!(
            matches!(&err, Error::InvalidInput { field, .. } if field == "proxy"),
            "{err:?}"
        );
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }
    let setting = ProxySetting::Url("http://user:s3cret@proxy.corp:3128".into());
    assert!(!format!("{setting:?}").contains("s3cret"));
    let builder = Licensing::builder("2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10").proxy(setting);
    drop(builder);
}

#[test]
fn a_dead_proxy_is_offline_and_the_grace_cache_answers() {
    let polar = Emulator::start(Seed::demo(), Options::default()).expect("emulator");
    let dir = ScratchDir::new("network");
    let build = |proxy: ProxySetting| {
        licensing_builder(&polar, &dir, MachineBinding::Id("machine-A".into()))
            .policy(polar_license::GracePolicy {
                revalidate_after: Duration::ZERO,
                ..polar_license::GracePolicy::default()
            })
            .timeout(Duration::from_secs(3))
            .proxy(proxy)
            .build()
            .expect("builds")
    };
    assert!(build(ProxySetting::Direct).check(DEMO_KEY).is_licensed());
    let dead = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", dead.local_addr().expect("addr"));
    drop(dead);
    let report = build(ProxySetting::Url(url)).check_report(DEMO_KEY);
    assert_eq!(report.outcome.source(), Some(Source::Cache), "{report:?}");
    assert_eq!(
        report.fallback.as_ref().map(|e| e.reason()),
        Some(Reason::Offline)
    );
}

/// A company's TLS-inspecting proxy as the client sees it: a TLS server for `localhost` whose
/// certificate the company's CA signed, relaying each request to the emulator. Returns its
/// port and the CA in PEM.
#[cfg(target_os = "linux")]
fn inspecting_server(polar: &Emulator) -> (u16, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(
        rcgen::DnType::CommonName,
        "Example Corp inspecting proxy CA",
    );
    let ca_cert = ca.self_signed(&ca_key).expect("ca");
    let leaf_key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .expect("params")
        .signed_by(&leaf_key, &ca_cert, &ca_key)
        .expect("leaf");
    let chain = vec![leaf.der().clone()];
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).expect("key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server config"),
    );
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let upstream = polar.url().trim_start_matches("http://").to_string();
    thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let config = Arc::clone(&config);
            let upstream = upstream.clone();
            thread::spawn(move || {
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                // One request per connection: the head, then Content-Length bytes.
                let Ok(head) = polar_license_testkit::http::read_head(&mut tls) else {
                    return;
                };
                let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                let length = text
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                let mut body = vec![0u8; length];
                if tls.read_exact(&mut body).is_err() {
                    return;
                }
                let head = String::from_utf8_lossy(&head).replacen(
                    "\r\n\r\n",
                    "\r\nconnection: close\r\n\r\n",
                    1,
                );
                let Ok(mut up) = TcpStream::connect(&upstream) else {
                    return;
                };
                let _ = up.write_all(head.as_bytes());
                let _ = up.write_all(&body);
                let mut answer = Vec::new();
                let _ = up.read_to_end(&mut answer);
                let _ = tls.write_all(&answer);
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    (port, ca_cert.pem())
}

/// The system's trust store is the one rustls-platform-verifier reads: on Linux the CA bundle,
/// which `SSL_CERT_FILE` names (nextest runs each test in its own process, so the variable is
/// this test's).
#[cfg(target_os = "linux")]
#[test]
fn a_company_ca_in_the_system_store_is_trusted_and_the_bundled_roots_refuse_it() {
    let polar = Emulator::start(Seed::demo(), Options::default()).expect("emulator");
    let (port, ca_pem) = inspecting_server(&polar);
    let dir = ScratchDir::new("network");
    let bundle = dir.join("company-ca.pem");
    std::fs::write(&bundle, &ca_pem).expect("bundle");
    std::env::set_var("SSL_CERT_FILE", &bundle);
    std::env::remove_var("SSL_CERT_DIR");
    let url = format!("https://localhost:{port}");
    let client = |roots: TlsRoots| {
        BlockingClient::builder(polar.organization_id())
            .base_url(url.clone())
            .proxy(ProxySetting::Direct)
            .timeout(Duration::from_secs(5))
            .tls_roots(roots)
            .build()
            .expect("builds")
    };
    match client(TlsRoots::System).validate(&ValidateRequest::new(DEMO_KEY)) {
        Ok(Verdict::Accepted(v)) => assert_eq!(v.license_key.key.expose(), DEMO_KEY),
        other => panic!("the system store trusts the company CA: {other:?}"),
    }
    match client(TlsRoots::Bundled).validate(&ValidateRequest::new(DEMO_KEY)) {
        Err(e) => assert_eq!(e.reason(), Reason::Offline, "{e}"),
        other => panic!("the bundled roots do not know the company CA: {other:?}"),
    }
    // Without the CA in the store, the system roots refuse it too.
    std::fs::write(&bundle, "").expect("empty bundle");
    std::env::set_var("SSL_CERT_FILE", dir.join("missing.pem"));
    match client(TlsRoots::System).validate(&ValidateRequest::new(DEMO_KEY)) {
        Err(e) => assert_eq!(e.reason(), Reason::Offline, "{e}"),
        other => panic!("an unknown CA is refused: {other:?}"),
    }
}
