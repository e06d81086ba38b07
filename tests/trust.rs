//! Issue #12 on the native face (`Licensing`, which the C ABI and the command line share):
//! each test plays an attacker or an unlucky user and tries to break one promise of the
//! grace cache, with the emulator over loopback, real files in a temp dir and a fake clock.
//! (The same attacks through the real binary are in `crates/cli/tests/cli_trust.rs`.)
#![cfg(not(target_arch = "wasm32"))]

use polar_license::cache;
use polar_license::grace::{CheckOutcome, CheckReport, GracePolicy, Source};
use polar_license::proto::PRODUCTION_URL;
use polar_license::{
    ActivateRequest, CacheState, Error, HttpRequest, HttpResponse, Licensing, MachineBinding,
    Reason, TransportError, TransportErrorKind, Untrusted, ValidateRequest, Verdict,
};
use polar_license_emulator::{Emulator, Fault, Options, Seed, DEMO_KEY};
use polar_license_testkit::{licensing_builder, World, START};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const MIN: i64 = 60;
const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;
const WEEK: u64 = 7 * DAY as u64;

/// This suite's world: the testkit's.
fn world() -> World {
    World::new("trust")
}

/// This suite's helpers on the testkit's world.
trait Here {
    fn app_builder(&self) -> polar_license::LicensingBuilder;
    fn licensing(&self) -> Licensing;
    fn activated(&self, l: &Licensing) -> String;
}

impl Here for World {
    /// Bound to `machine-A`, a 5 s timeout.
    fn app_builder(&self) -> polar_license::LicensingBuilder {
        self.builder(&self.dir, "machine-A")
            .timeout(Duration::from_secs(5))
    }

    fn licensing(&self) -> Licensing {
        self.app_builder().build().expect("licensing builds")
    }

    /// Activated on this machine, and verified (the activation is the verdict).
    fn activated(&self, l: &Licensing) -> String {
        let v = l
            .activate(&ActivateRequest::new(DEMO_KEY, "laptop"))
            .expect("activate answers");
        let id = v.accepted().expect("activated").activation.id.clone();
        self.requests();
        id
    }
}

#[track_caller]
fn from_cache(report: &CheckReport) -> u64 {
    match &report.outcome {
        CheckOutcome::Licensed {
            source: Source::Cache,
            grace_remaining: Some(left),
            ..
        } => left.as_secs(),
        other => panic!("expected licensed from the cache, got {other:?}"),
    }
}

#[track_caller]
fn online(outcome: &CheckOutcome) {
    assert_eq!(
        outcome.source(),
        Some(Source::Online),
        "expected licensed online, got {outcome:?}"
    );
}

/// A transport for a client configured for production: Polar is out of reach from here, so
/// every request fails as it would offline; the requests are counted.
fn unreachable_production(
    sent: Arc<AtomicUsize>,
) -> impl Fn(&HttpRequest) -> Result<HttpResponse, TransportError> + Send + Sync {
    move |req: &HttpRequest| {
        assert!(req.url.starts_with("https://api.polar.sh/"), "{}", req.url);
        sent.fetch_add(1, Ordering::SeqCst);
        Err(TransportError::new(
            TransportErrorKind::Dns,
            "api.polar.sh cannot be resolved here",
        ))
    }
}

// ---- 1. A forged record made with our own tools --------------------------------------------

#[test]
fn a_record_made_against_another_server_never_answers_production() {
    // The attacker's emulator knows the app's organization and a made-up key; they activate
    // and check into the app's cache directory.
    let w = world();
    let forger = w.app_builder().require_activation(true).build().unwrap();
    w.activated(&forger);
    assert!(forger.check(DEMO_KEY).is_licensed());

    // The app: production (the default), same directory, same machine.
    let app = |require: bool, sent: &Arc<AtomicUsize>| {
        Licensing::builder(w.polar.organization_id())
            .cache_dir(&w.dir)
            .machine_binding(MachineBinding::Id("machine-A".into()))
            .require_activation(require)
            .clock(w.clock.reader())
            .build_with_transport(unreachable_production(Arc::clone(sent)))
            .unwrap()
    };
    for require in [true, false] {
        let sent = Arc::new(AtomicUsize::new(0));
        let app = app(require, &sent);
        assert_eq!(app.status(DEMO_KEY).unwrap().state, CacheState::Empty);
        let verdict = app.check(DEMO_KEY);
        let expected = if require {
            Reason::InvalidInput
        } else {
            Reason::Offline
        };
        assert_eq!(verdict.reason(), Some(expected), "{verdict:?}");
        assert_eq!(sent.load(Ordering::SeqCst), usize::from(!require));
    }

    // Renamed to the names production's records have: the seal and the origin inside are
    // the emulator's, so it is still no cache.
    let org = w.polar.organization_id();
    let forged = cache::slot_name(&w.polar.url(), &org, DEMO_KEY);
    let prod = cache::slot_name(PRODUCTION_URL, &org, DEMO_KEY);
    for (from, to) in [
        (forged.clone(), prod.clone()),
        (cache::ledger_name(&forged), cache::ledger_name(&prod)),
    ] {
        std::fs::copy(
            w.dir.join(format!("{from}.cache")),
            w.dir.join(format!("{to}.cache")),
        )
        .unwrap();
    }
    let sent = Arc::new(AtomicUsize::new(0));
    let app = app(false, &sent);
    assert_eq!(
        app.status(DEMO_KEY).unwrap().state,
        CacheState::Untrusted(Untrusted::BadMac)
    );
    assert_eq!(app.check(DEMO_KEY).reason(), Some(Reason::Offline));
    assert_eq!(sent.load(Ordering::SeqCst), 1);
}

#[test]
fn a_record_made_against_one_emulator_is_not_read_by_a_client_of_another() {
    let w = world();
    let l = w.licensing();
    w.activated(&l);
    // A second local server with the same organization and key: another origin.
    let other = Emulator::start(Seed::demo(), Options::default()).expect("emulator");
    let there = licensing_builder(&other, &w.dir, MachineBinding::Id("machine-A".into()))
        .clock(w.clock.reader())
        .build()
        .unwrap();
    assert_eq!(there.status(DEMO_KEY).unwrap().state, CacheState::Empty);
    other.set_fault(Some(Fault::CloseImmediately));
    assert_eq!(there.check(DEMO_KEY).reason(), Some(Reason::Offline));
}

#[test]
fn the_default_cache_directory_is_per_application() {
    let data = if cfg!(windows) {
        // The known folder (%LOCALAPPDATA%), which no environment variable moves; only paths
        // are computed here, nothing is written.
        dirs::data_local_dir().unwrap()
    } else {
        // nextest runs each test in its own process: this variable is this test's.
        let data =
            std::env::temp_dir().join(format!("polar-license-trust-xdg-{}", std::process::id()));
        std::env::set_var("XDG_DATA_HOME", &data);
        data
    };
    let a = polar_license::FileStore::dir_for_app("com.vendor-a.editor").unwrap();
    let b = polar_license::FileStore::dir_for_app("com.vendor-b.viewer").unwrap();
    assert_ne!(a, b);
    assert!(a.starts_with(&data), "{a:?}");
    let default = polar_license::FileStore::default_dir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let stem = exe.file_stem().unwrap().to_string_lossy();
    assert!(
        default.ends_with(Path::new("polar-license").join(stem.as_ref())),
        "{default:?}"
    );
    for bad in ["", ".hidden", "a/b", "..", "ü"] {
        assert!(
            polar_license::FileStore::dir_for_app(bad).is_err(),
            "{bad:?}"
        );
    }
    if !cfg!(windows) {
        let _ = std::fs::remove_dir_all(&data);
    }
}

// ---- 2. Replay and a frozen clock ----------------------------------------------------------

#[test]
fn a_record_put_back_after_a_revocation_is_not_trusted() {
    let w = world();
    let l = w.licensing();
    w.activated(&l);
    let verified = START;
    let saved = std::fs::read(w.record_file()).unwrap();

    w.revoke();
    w.advance(2 * HOUR);
    assert_eq!(l.check(DEMO_KEY).reason(), Some(Reason::Inactive));
    assert_eq!(w.requests(), 1);

    // The attacker puts the good record back and sets the clock inside its fresh window.
    std::fs::write(w.record_file(), &saved).unwrap();
    w.set_clock(verified + 30 * MIN);
    assert_eq!(
        l.status(DEMO_KEY).unwrap().state,
        CacheState::Untrusted(Untrusted::Replayed)
    );
    let again = l.check(DEMO_KEY);
    assert_eq!(again.reason(), Some(Reason::Inactive), "{again:?}");
    assert_eq!(w.requests(), 1, "the put-back record answered nothing");

    // Offline, it grants nothing either.
    std::fs::write(w.record_file(), &saved).unwrap();
    w.polar.set_fault(Some(Fault::CloseImmediately));
    assert_eq!(l.check(DEMO_KEY).reason(), Some(Reason::Offline));

    // Removing the ledger does not help: a record without its ledger is a replay too.
    std::fs::write(w.record_file(), &saved).unwrap();
    std::fs::remove_file(w.ledger_file()).unwrap();
    assert_eq!(
        l.status(DEMO_KEY).unwrap().state,
        CacheState::Untrusted(Untrusted::Replayed)
    );
    assert!(!l.check(DEMO_KEY).is_licensed());
}

#[test]
fn a_held_clock_sends_the_check_online_and_sees_the_revocation() {
    let w = world();
    let l = w.licensing();
    w.activated(&l);
    w.revoke();
    // The clock held 30 minutes after the last good verdict, in every process.
    w.set_clock(START + 30 * MIN);
    let mut answers = 0;
    let denied = loop {
        // A new instance each time: another launch of the app.
        let launch = w.licensing();
        let verdict = launch.check(DEMO_KEY);
        if !verdict.is_licensed() {
            break verdict;
        }
        answers += 1;
        assert!(
            answers <= 40,
            "a held clock licensed a revoked key {answers} times"
        );
    };
    assert_eq!(denied.reason(), Some(Reason::Inactive), "{denied:?}");
    assert_eq!(w.requests(), 1);
    assert!(answers >= 1);
    // Inside one process, a check repeated within the same second is the same answer (not
    // counted, not written): the hot path stays a read.
    let w = world();
    let l = w.licensing();
    w.activated(&l);
    w.set_clock(START + 30 * MIN);
    for _ in 0..100 {
        assert!(l.check(DEMO_KEY).is_licensed());
    }
    assert_eq!(w.requests(), 0);
}

#[test]
fn a_held_clock_with_polar_unreachable_stops_licensing() {
    let w = world();
    let l = w.licensing();
    w.activated(&l);
    w.polar.set_fault(Some(Fault::CloseImmediately));
    w.set_clock(START + 2 * DAY);
    let mut last = None;
    for _ in 0..40 {
        let verdict = w.licensing().check(DEMO_KEY);
        if !verdict.is_licensed() {
            last = Some(verdict);
            break;
        }
    }
    let stopped = last.expect("a held clock kept licensing from the cache");
    assert_eq!(stopped.reason(), Some(Reason::ClockRollback), "{stopped:?}");
    // The clock moving on ends it.
    w.advance(1);
    assert!(w.licensing().check(DEMO_KEY).is_licensed());
}

// ---- 3. check_in_background decides as check does -------------------------------------------

#[test]
fn a_background_check_refuses_what_check_refuses() {
    let w = world();
    let strict = w.app_builder().require_activation(true).build().unwrap();
    let called = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&called);
    let (now, handle) = strict.check_in_background(DEMO_KEY, move |_| {
        c.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(now.reason(), Some(Reason::InvalidInput), "{now:?}");
    assert_eq!(now, strict.check(DEMO_KEY));
    assert!(handle.is_none());
    assert_eq!(called.load(Ordering::SeqCst), 0);
    assert_eq!(w.requests(), 0);
    // A bare-key verdict cached by a non-strict client never licenses the strict one either.
    let loose = w.licensing();
    online(&loose.check(DEMO_KEY));
    let (now, handle) = strict.check_in_background(DEMO_KEY, |_| {});
    assert_eq!(now.reason(), Some(Reason::InvalidInput), "{now:?}");
    assert!(handle.is_none());
}

// ---- 4. A 200 that says "not valid" ---------------------------------------------------------

/// A real validate answer of the emulator, as JSON, to edit.
fn real_answer(w: &World) -> serde_json::Value {
    let body = format!(
        r#"{{"key":"{DEMO_KEY}","organization_id":"{}"}}"#,
        w.polar.organization_id()
    );
    let resp = ureq_post(
        &format!("{}/v1/customer-portal/license-keys/validate", w.polar.url()),
        &body,
    );
    serde_json::from_str(&resp).expect("a JSON answer")
}

fn ureq_post(url: &str, body: &str) -> String {
    let mut resp = ureq::post(url)
        .header("content-type", "application/json")
        .send(body)
        .expect("the emulator answers");
    resp.body_mut().read_to_string().expect("a body")
}

#[test]
fn a_200_that_says_not_valid_is_a_protocol_error_and_falls_back() {
    let w = world();
    let l = w.licensing();
    w.activated(&l);
    let good = real_answer(&w);
    let mut edits: Vec<(&str, serde_json::Value)> = Vec::new();
    let mut revoked = good.clone();
    revoked["status"] = "revoked".into();
    edits.push(("revoked", revoked));
    let mut disabled = good.clone();
    disabled["status"] = "disabled".into();
    edits.push(("disabled", disabled));
    let mut expired = good.clone();
    expired["expires_at"] = "2020-01-01T00:00:00Z".into();
    edits.push(("expired", expired));
    let mut other_key = good.clone();
    other_key["key"] = "DEMO-OTHER-KEY-0000".into();
    edits.push(("another key", other_key));
    let mut other_org = good.clone();
    other_org["organization_id"] = "8f14e45f-ceea-467a-9c1e-5f2b3b2f9b11".into();
    edits.push(("another organization", other_org));
    // "activation": null, while the request asks about one.
    edits.push(("no activation", good.clone()));

    for (what, body) in edits {
        w.polar.set_fault(Some(Fault::Status {
            status: 200,
            body: body.to_string(),
        }));
        // Online, no cache: never licensed.
        let mut req = ValidateRequest::new(DEMO_KEY);
        if what == "no activation" {
            req = req.activation_id("21bf892b-2e46-4f50-8060-8fdaf02aa482");
        }
        let validated = l.client().validate(&req);
        assert_eq!(
            validated.as_ref().map_err(Error::reason).err(),
            Some(Reason::ProtocolError),
            "{what}: {validated:?}"
        );
        // A stale good cache: licensed from it, saying why.
        w.advance(2 * HOUR);
        let report = l.check_report(DEMO_KEY);
        from_cache(&report);
        assert_eq!(
            report.fallback.as_ref().map(Error::reason),
            Some(Reason::ProtocolError),
            "{what}"
        );
    }
    w.polar.set_fault(None);
    online(&l.check(DEMO_KEY));
}

// ---- 5. Captive portals, proxies and CDN pages ----------------------------------------------

fn respond(status: u16, headers: &[(&str, &str)], body: &str) -> Fault {
    Fault::Respond {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.to_string(),
    }
}

#[test]
fn pages_that_are_not_polars_answers_fall_back_and_never_tombstone() {
    let w = world();
    let l = w.licensing();
    w.activated(&l);
    let html = [("content-type", "text/html; charset=utf-8")];
    let login = "<html><body><form>Hotel WiFi login</form></body></html>";
    let faults = [
        ("portal 200", respond(200, &html, login)),
        (
            "redirect",
            respond(302, &[("location", "http://login.hotel.example/")], ""),
        ),
        (
            "proxy auth",
            respond(
                407,
                &[("proxy-authenticate", "Basic realm=\"corp\"")],
                "denied",
            ),
        ),
        ("401 page", respond(401, &html, login)),
        (
            "403 page",
            respond(403, &html, "<html>Forbidden by policy</html>"),
        ),
        ("404 page", respond(404, &html, "<html>Not Found</html>")),
        ("400 page", respond(400, &html, "<html>Bad Request</html>")),
        ("empty 200", respond(200, &[], "")),
        (
            "garbage 200",
            respond(
                200,
                &[("content-type", "application/json")],
                "\u{1}\u{2}garbage",
            ),
        ),
        (
            "bare 404 (a wrong base path, a removed Polar-Version)",
            respond(
                404,
                &[("content-type", "application/json")],
                r#"{"detail":"Not Found"}"#,
            ),
        ),
        (
            "403 JSON without the envelope",
            respond(
                403,
                &[("content-type", "application/json")],
                r#"{"detail":"blocked by WAF"}"#,
            ),
        ),
    ];
    for (what, fault) in faults {
        w.polar.set_fault(Some(fault));
        w.advance(2 * HOUR);
        let report = l.check_report(DEMO_KEY);
        let left = from_cache(&report);
        assert!(left < WEEK, "{what}");
        // A proxy's 407 is no answer at all (fetch cannot see one: offline on every face);
        // the others are answers that are not Polar's.
        let expected = if what == "proxy auth" {
            Reason::Offline
        } else {
            Reason::ProtocolError
        };
        assert_eq!(
            report.fallback.as_ref().map(Error::reason),
            Some(expected),
            "{what}: {report:?}"
        );
        match l.status(DEMO_KEY).unwrap().state {
            CacheState::Present(r) => assert!(r.denied.is_none(), "{what} wrote a tombstone"),
            other => panic!("{what}: {other:?}"),
        }
    }
    w.polar.set_fault(None);
    online(&l.check(DEMO_KEY));
}

#[test]
fn a_base_url_with_a_wrong_path_never_denies_and_answers_from_the_cache() {
    let w = world();
    let l = w.licensing();
    w.activated(&l);
    // An app update ships a base URL ending in /v1: every route is a bare 404. The record of
    // the same server (its origin) still answers, and nothing is denied.
    let wrong = Licensing::builder(w.polar.organization_id())
        .base_url(format!("{}/v1", w.polar.url()))
        .cache_dir(&w.dir)
        .machine_binding(MachineBinding::Id("machine-A".into()))
        .clock(w.clock.reader())
        .build()
        .unwrap();
    let e = wrong.validate(&ValidateRequest::new(DEMO_KEY)).unwrap_err();
    assert_eq!(e.reason(), Reason::ProtocolError, "{e:?}");
    w.advance(2 * HOUR);
    let report = wrong.check_report(DEMO_KEY);
    from_cache(&report);
    assert_eq!(
        report.fallback.as_ref().map(Error::reason),
        Some(Reason::ProtocolError)
    );
    match l.status(DEMO_KEY).unwrap().state {
        CacheState::Present(r) => assert!(r.denied.is_none()),
        other => panic!("{other:?}"),
    }
    // The right client is licensed online.
    online(&l.check(DEMO_KEY));
}

// ---- 6. Activate, then offline --------------------------------------------------------------

#[test]
fn an_activation_starts_the_grace() {
    let w = world();
    let l = w.licensing();
    w.activated(&l);
    w.polar.set_fault(Some(Fault::CloseImmediately));
    w.advance(3 * DAY);
    let report = l.check_report(DEMO_KEY);
    assert_eq!(from_cache(&report), WEEK - 3 * DAY as u64);
    assert_eq!(
        report.fallback.as_ref().map(Error::reason),
        Some(Reason::Offline)
    );
    // A denied activation of a revoked key is a verdict too: it removes the grant.
    w.polar.set_fault(None);
    w.revoke();
    let denied = l
        .activate(&ActivateRequest::new(DEMO_KEY, "second"))
        .unwrap();
    assert_eq!(denied.denial().map(|d| d.reason), Some(Reason::Inactive));
    w.polar.set_fault(Some(Fault::CloseImmediately));
    assert_eq!(l.check(DEMO_KEY).reason(), Some(Reason::Offline));
}

// ---- 8. Retry-After is capped -----------------------------------------------------------------

#[test]
fn a_ten_year_retry_after_blocks_one_hour() {
    let w = world();
    let l = w.licensing();
    w.activated(&l);
    w.polar.set_fault(Some(Fault::RateLimited {
        retry_after: Some(315_360_000),
    }));
    w.advance(2 * HOUR);
    let report = l.check_report(DEMO_KEY);
    from_cache(&report);
    assert_eq!(
        report.fallback,
        Some(Error::RateLimited {
            retry_after: Some(3600)
        })
    );
    match l.status(DEMO_KEY).unwrap().state {
        CacheState::Present(r) => assert_eq!(r.blocked_until, Some(START + 2 * HOUR + 3600)),
        other => panic!("{other:?}"),
    }
    w.polar.set_fault(None);
    w.requests();
    w.advance(3600);
    online(&l.check(DEMO_KEY));
    assert_eq!(w.requests(), 1);
}

// ---- 9. Checks never queue behind a hung server -----------------------------------------------

#[test]
fn while_one_check_waits_on_a_hung_polar_the_others_answer_from_the_cache() {
    let mut w = world();
    let l = w
        .app_builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    w.activated(&l);
    w.advance(2 * HOUR);
    w.polar.set_fault(Some(Fault::Hang));
    let asker = {
        let l = l.clone();
        std::thread::spawn(move || l.check_report(DEMO_KEY))
    };
    // Wait until the asker's request reached the hung server (it holds no lock now).
    for _ in 0..1000 {
        if w.polar.request_count() >= 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(w.polar.request_count(), 1);
    // Eight threads, and another process's instance: they all answer from the cache while
    // the asker is still waiting (its timeout is 30 s).
    let others: Vec<_> = (0..8)
        .map(|i| {
            let l = if i == 0 { w.licensing() } else { l.clone() };
            std::thread::spawn(move || l.check_report(DEMO_KEY))
        })
        .collect();
    for other in others {
        let report = other.join().unwrap();
        from_cache(&report);
    }
    assert!(
        !asker.is_finished(),
        "the asker should still be waiting on Polar"
    );
    assert_eq!(w.polar.request_count(), 1, "the others sent nothing");
    // Polar goes away: the asker's connection closes and it answers from the cache too.
    w.down();
    let report = asker.join().unwrap();
    from_cache(&report);
}

// ---- 10. Activation slots never leak -----------------------------------------------------------

#[test]
fn a_lost_install_secret_recovers_the_remembered_activation_online() {
    let w = world();
    let strict = w.app_builder().require_activation(true).build().unwrap();
    let id = w.activated(&strict);
    // The install secret is lost (a profile restore, a cleanup tool): every record is
    // untrusted, but the activation it names is no secret.
    std::fs::remove_file(w.dir.join("install-secret")).unwrap();
    let l = w.app_builder().require_activation(true).build().unwrap();
    let status = l.status(DEMO_KEY).unwrap();
    assert!(
        matches!(status.state, CacheState::Untrusted(_)),
        "{status:?}"
    );
    assert_eq!(
        status.activation.as_ref().map(|a| a.id.as_str()),
        Some(id.as_str())
    );
    // The check validates that activation online instead of refusing (which would make the
    // app activate again and take a slot).
    let verdict = l.check(DEMO_KEY);
    online(&verdict);
    assert_eq!(w.requests(), 1);
    assert_eq!(w.polar.activations(DEMO_KEY).len(), 1, "no new slot taken");
    // And the new record remembers it.
    match l.status(DEMO_KEY).unwrap().state {
        CacheState::Present(r) => assert_eq!(r.activation.map(|a| a.id), Some(id)),
        other => panic!("{other:?}"),
    }
}

/// The cache directory's files (records, ledgers, clock notes, the install secret) and their
/// bytes.
fn snapshot(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            p.is_file() && (name.ends_with(".cache") || name == "install-secret")
        })
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}

/// Puts `files` back as they were (those changed), and removes any file written since.
fn restore(dir: &Path, files: &[(std::path::PathBuf, Vec<u8>)]) {
    for (p, _) in snapshot(dir) {
        if !files.iter().any(|(q, _)| *q == p) {
            std::fs::remove_file(p).unwrap();
        }
    }
    for (p, bytes) in files {
        if std::fs::read(p).ok().as_ref() != Some(bytes) {
            std::fs::write(p, bytes).unwrap();
        }
    }
}

/// Where the record's activation object lies in the record file's bytes (its seal included;
/// not its member's name, which the activation is found without).
fn activation_span(record: &[u8]) -> std::ops::Range<usize> {
    let text = std::str::from_utf8(record).unwrap();
    let begin = text.rfind(",\"activation\":{").unwrap() + ",\"activation\":".len();
    // The activation is the body's last member: its object ends where the body does.
    let end = text.rfind("}\n").unwrap();
    begin..end
}

/// Issue #76, finding 5: a byte flipped anywhere in any cache file (every position of every
/// file: the record, its ledger, its clock note, the install secret) is a cache that cannot
/// be trusted, never `invalid_input` ("not activated on this computer yet"), and never another
/// activation. Offline: `status` untrusted and the check unverified: `offline` when the
/// activation, sealed on its own, still reads (the flip is elsewhere: it was asked for), and
/// `cache_error` with nothing sent when the flip is in the activation's own bytes. Online
/// (every 16th position, every 3rd of the activation's): the activation that still reads is
/// validated and kept (licensed online, no new slot, remembered after); one that does not is
/// `cache_error`, nothing sent and no slot taken. A flipped clock note is no note: the record
/// answers. Before, the record's activation was read before its seal was checked: a flipped
/// byte in it was `invalid_input` or another activation id sent to Polar.
#[test]
fn a_byte_flipped_anywhere_in_the_cache_is_an_untrusted_cache_never_invalid_input() {
    let w = world();
    let strict = || w.app_builder().require_activation(true).build().unwrap();
    let id = w.activated(&strict());
    // A cached answer: the clock note is written too.
    w.advance(MIN);
    from_cache(&strict().check_report(DEMO_KEY));
    w.requests();
    let files = snapshot(&w.dir);
    let names: Vec<String> = files
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        files.len(),
        4,
        "record, ledger, clock note, install secret: {names:?}"
    );
    let record = w.record_file();
    let span = activation_span(&files.iter().find(|(p, _)| *p == record).unwrap().1);
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for online in [false, true] {
        if online {
            w.online();
        } else {
            w.offline();
        }
        for (path, original) in &files {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let clock = name.ends_with("-clock.cache");
            for at in 0..original.len() {
                let in_activation = *path == record && span.contains(&at);
                // Online, a sample: every 16th byte, every 3rd of the activation's.
                if online && at % if in_activation { 3 } else { 16 } != 0 {
                    continue;
                }
                restore(&w.dir, &files);
                let mut flipped = original.clone();
                flipped[at] ^= 0x01;
                std::fs::write(path, &flipped).unwrap();
                let app = strict();
                let status = app.status(DEMO_KEY).unwrap();
                let report = app.check_report(DEMO_KEY);
                let sent = w.requests();
                let case = format!("{name} byte {at} online {online}: {:?}", report.outcome);
                assert_ne!(
                    report.outcome.reason(),
                    Some(Reason::InvalidInput),
                    "{case}"
                );
                if clock {
                    assert!(report.outcome.is_licensed(), "{case}");
                    *seen.entry("clock: licensed".into()).or_default() += 1;
                    continue;
                }
                assert!(
                    matches!(status.state, CacheState::Untrusted(_)),
                    "{case}: {status:?}"
                );
                if in_activation {
                    assert!(status.activation.is_none(), "{case}: {status:?}");
                    assert_eq!(report.outcome.reason(), Some(Reason::CacheError), "{case}");
                    let CheckOutcome::Unverified(e) = &report.outcome else {
                        panic!("{case}")
                    };
                    assert!(e.activation_unreadable(), "{case}");
                    assert!(e.user_message().contains("activate"), "{case}");
                    assert_eq!(sent, 0, "{case}: nothing sent");
                    *seen.entry("activation: cache_error".into()).or_default() += 1;
                    continue;
                }
                assert_eq!(
                    status.activation.as_ref().map(|a| a.id.as_str()),
                    Some(id.as_str()),
                    "{case}: the activation, sealed on its own, still reads"
                );
                assert_eq!(sent, 1, "{case}: its activation asked for");
                if online {
                    online_licensed(&report.outcome, &case);
                    assert_eq!(report.activation_id.as_deref(), Some(id.as_str()), "{case}");
                    match app.status(DEMO_KEY).unwrap().state {
                        CacheState::Present(r) => {
                            assert_eq!(r.activation.map(|a| a.id), Some(id.clone()), "{case}")
                        }
                        other => panic!("{case}: {other:?}"),
                    }
                    *seen.entry("elsewhere: licensed online".into()).or_default() += 1;
                } else {
                    assert_eq!(report.outcome.reason(), Some(Reason::Offline), "{case}");
                    *seen.entry("elsewhere: offline".into()).or_default() += 1;
                }
            }
        }
    }
    assert_eq!(w.polar.activations(DEMO_KEY).len(), 1, "never a new slot");
    // Every kind of case was met.
    assert_eq!(seen.len(), 4, "{seen:?}");
}

#[track_caller]
fn online_licensed(outcome: &CheckOutcome, case: &str) {
    assert_eq!(outcome.source(), Some(Source::Online), "{case}");
}

#[test]
fn deactivating_the_activation_an_untrusted_record_names_frees_it_and_forgets_it() {
    let w = world();
    let strict = w.app_builder().require_activation(true).build().unwrap();
    let id = w.activated(&strict);
    std::fs::remove_file(w.dir.join("install-secret")).unwrap();
    let l = w.app_builder().require_activation(true).build().unwrap();
    assert!(l.deactivate(DEMO_KEY, None).unwrap().is_accepted());
    assert!(
        w.polar.activations(DEMO_KEY).is_empty(),
        "the slot {id} is freed"
    );
    let status = l.status(DEMO_KEY).unwrap();
    assert!(status.activation.is_none(), "{status:?}");
    // Nothing is remembered: the app is told to activate, not that its key is unknown.
    w.requests();
    assert_eq!(l.check(DEMO_KEY).reason(), Some(Reason::InvalidInput));
    assert_eq!(w.requests(), 0);
}

#[test]
fn a_machine_id_that_cannot_be_read_is_its_own_error() {
    let w = world();
    let l = w.licensing();
    w.activated(&l);
    let broken = w
        .app_builder()
        .machine_binding(MachineBinding::Unreadable("permission denied".into()))
        .build()
        .unwrap();
    let verdict = broken.check(DEMO_KEY);
    let CheckOutcome::Unverified(e) = &verdict else {
        panic!("{verdict:?}")
    };
    assert_eq!(e.reason(), Reason::CacheError);
    assert!(
        e.detail().contains("machine's id could not be read"),
        "{e:?}"
    );
    let activated = broken.activate(&ActivateRequest::new(DEMO_KEY, "laptop"));
    assert_eq!(
        activated.map_err(|e| e.reason()).err(),
        Some(Reason::CacheError)
    );
    assert_eq!(w.requests(), 0, "nothing sent with an unknown fingerprint");
    // The record is intact for the next launch that can read the id.
    w.advance(MIN);
    assert!(w.licensing().check(DEMO_KEY).is_licensed());
}

// ---- 11. One truth per key ---------------------------------------------------------------------

#[test]
fn validate_sends_the_activations_conditions_and_its_answer_updates_the_record() {
    let w = world();
    let l = w.licensing();
    let id = l
        .activate(&ActivateRequest::new(DEMO_KEY, "laptop").condition("machine", "abc"))
        .unwrap()
        .accepted()
        .unwrap()
        .activation
        .id
        .clone();
    let req = ValidateRequest::new(DEMO_KEY)
        .activation_id(&id)
        .condition("machine", "abc");
    assert!(
        l.validate(&req).unwrap().is_accepted(),
        "same machine, same conditions"
    );
    // A revocation seen by validate is seen by the next check at once (no cached grant).
    w.revoke();
    let denied = l.validate(&req).unwrap();
    assert_eq!(denied.denial().map(|d| d.reason), Some(Reason::Inactive));
    w.polar.set_fault(Some(Fault::CloseImmediately));
    let after = l.check(DEMO_KEY);
    assert!(!after.is_licensed(), "{after:?}");
    match l.status(DEMO_KEY).unwrap().state {
        CacheState::Present(r) => {
            assert_eq!(r.denied.map(|d| d.reason), Some(Reason::Inactive));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_denial_of_another_question_does_not_tombstone_the_record() {
    let w = world();
    let l = w.licensing();
    w.activated(&l);
    // Another benefit than the key's: a denial about that question only.
    let other = l
        .validate(
            &ValidateRequest::new(DEMO_KEY).benefit_id("1c2d3e4f-5061-4b7c-9d8e-0f1a2b3c4d5e"),
        )
        .unwrap();
    assert_eq!(
        other.denial().map(|d| d.reason),
        Some(Reason::BenefitMismatch)
    );
    w.polar.set_fault(Some(Fault::CloseImmediately));
    w.advance(2 * HOUR);
    from_cache(&l.check_report(DEMO_KEY));
}

// ---- Also: a failed write is said, a FIFO does not hang ---------------------------------------

#[test]
fn a_write_that_fails_is_reported_and_the_answer_asks_polar() {
    let w = world();
    let l = w.licensing();
    w.activated(&l);
    // The record's path becomes a directory: every save fails.
    let record = w.record_file();
    std::fs::remove_file(&record).unwrap();
    std::fs::create_dir(&record).unwrap();
    let report = l.check_report(DEMO_KEY);
    online(&report.outcome);
    assert!(!report.cache_refreshed());
    assert_eq!(
        report.cache_error.as_ref().map(Error::reason),
        Some(Reason::CacheError)
    );
}

#[test]
fn a_cached_answer_that_cannot_be_recorded_is_not_given_as_fresh() {
    let w = world();
    let l = w.licensing();
    w.activated(&l);
    // Saves of this key fail (its write lock's path is a directory), reads still work.
    let slot = cache::slot_name(&w.polar.url(), &w.polar.organization_id(), DEMO_KEY);
    let wlock = w.dir.join(format!(".{slot}.wlock"));
    std::fs::remove_file(&wlock).unwrap();
    std::fs::create_dir(&wlock).unwrap();
    w.advance(MIN);
    // A fresh record, but its answer cannot be counted: Polar is asked instead.
    let report = l.check_report(DEMO_KEY);
    online(&report.outcome);
    assert_eq!(w.requests(), 1);
    assert!(!report.cache_refreshed(), "{report:?}");
    // Polar unreachable: the grace still answers, and says the cache was not refreshed.
    w.polar.set_fault(Some(Fault::CloseImmediately));
    w.advance(MIN);
    let report = l.check_report(DEMO_KEY);
    from_cache(&report);
    assert_eq!(
        report.fallback.as_ref().map(Error::reason),
        Some(Reason::Offline)
    );
    assert!(!report.cache_refreshed());
    // A held clock cannot ride an unwritable cache while Polar answers: a revocation is seen.
    w.polar.set_fault(None);
    w.revoke();
    assert_eq!(l.check(DEMO_KEY).reason(), Some(Reason::Inactive));
}

#[cfg(unix)]
#[test]
fn a_fifo_at_the_record_path_does_not_hang_a_check() {
    let w = world();
    let l = w.licensing();
    w.activated(&l);
    let record = w.record_file();
    std::fs::remove_file(&record).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&record)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let (tx, rx) = std::sync::mpsc::channel();
    let l2 = l.clone();
    std::thread::spawn(move || {
        let _ = tx.send((l2.status(DEMO_KEY), l2.check_report(DEMO_KEY)));
    });
    // A bound on a hang, not a timing assertion: a blocked open would never return.
    let (status, report) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the check returned");
    assert!(
        matches!(status.unwrap().state, CacheState::Untrusted(_)),
        "a FIFO is no record"
    );
    online(&report.outcome);
}

#[test]
fn verdicts_of_other_faces_still_hold_with_the_new_record() {
    // A record written by one instance is read by another (the C ABI and the CLI read the
    // same files through Licensing).
    let w = world();
    let l = w.licensing();
    w.activated(&l);
    w.advance(MIN);
    let other = w.licensing();
    from_cache(&other.check_report(DEMO_KEY));
    assert_eq!(w.requests(), 0);
    let _ = Verdict::<()>::Accepted(());
    let _ = GracePolicy::default();
}

/// A transport that passes a validate on to Polar and then holds Polar's answer until it is
/// let go: a check's 200 on its way for as long as the test says (issue #53).
struct Held {
    inner: polar_license::UreqTransport,
    answered: std::sync::mpsc::SyncSender<()>,
    release: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl polar_license::Transport for Held {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let response = self.inner.send(request)?;
        let _ = self.answered.send(());
        let _ = self.release.lock().unwrap().recv();
        Ok(response)
    }
}

/// Issue #53 item 2, the late-grant race: two processes on one cache; a check's 200 is held
/// while the other records Polar's `inactive` denial; the held answer then arrives. It must
/// end denied, and the cache keep denying (later checks, and an hour later offline). Played
/// with the clock still (the denial dated the second the held check began: the check did not
/// see it at its start) and with the clock moved on (dated after the check began).
#[test]
fn a_denial_recorded_while_a_grant_was_held_survives_the_grant() {
    for moved in [0, 4] {
        let w = world();
        let other = w.licensing();
        w.activated(&other);
        w.clock.advance(2 * HOUR); // past the fresh window: the held check asks
        let (answered, on_answer) = std::sync::mpsc::sync_channel(1);
        let (let_go, release) = std::sync::mpsc::sync_channel(1);
        let held = w
            .app_builder()
            .build_with_transport(Held {
                inner: polar_license::UreqTransport::new(
                    Duration::from_secs(2),
                    Duration::from_secs(5),
                    1 << 20,
                ),
                answered,
                release: std::sync::Mutex::new(release),
            })
            .expect("licensing builds");
        let late = std::thread::spawn(move || held.check(DEMO_KEY));
        on_answer
            .recv_timeout(Duration::from_secs(30))
            .expect("Polar answered the held check");
        // Meanwhile: the key is revoked, and the other process records Polar's denial.
        w.clock.advance(moved);
        w.polar.update_key(
            DEMO_KEY,
            polar_license_emulator::KeyUpdate {
                status: Some("revoked".into()),
                ..Default::default()
            },
        );
        // (A check would answer from the cache while the held one asks: a validate asks.)
        let denied = other.validate(&ValidateRequest::new(DEMO_KEY));
        let reason = match &denied {
            Ok(Verdict::Denied(d)) => Some(d.reason),
            _ => None,
        };
        assert_eq!(reason, Some(Reason::Inactive), "{moved}: {denied:?}");
        let_go.send(()).unwrap();
        let outcome = late.join().unwrap();
        assert_eq!(
            outcome.reason(),
            Some(Reason::Inactive),
            "moved {moved}: the late grant must end denied: {outcome:?}"
        );
        // The cache keeps denying: at once (no request), and an hour later offline.
        w.requests();
        let next = other.check(DEMO_KEY);
        assert!(!next.is_licensed(), "{moved}: {next:?}");
        w.polar.set_fault(Some(Fault::CloseImmediately));
        w.clock.advance(HOUR);
        let offline = other.check(DEMO_KEY);
        assert!(!offline.is_licensed(), "{moved}: {offline:?}");
        let status = other.status(DEMO_KEY).unwrap();
        let CacheState::Present(record) = &status.state else {
            panic!("{status:?}")
        };
        assert!(record.denied.is_some(), "{moved}: {record:?}");
    }
}
