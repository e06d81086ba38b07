//! A key's devices through the seller's relay (issue #64, `POST /v1/devices/list`): the key
//! proves it is the caller's (a validate of the key and the organization; a wrong key is
//! Polar's 404), then the relay reads the key's record with its token
//! (`GET /v1/license-keys/{id}`) and answers its live activations, this machine's marked.
//! Over loopback: `relay serve`'s server in front of the emulator, and the rig's blocking host
//! of the request machine where the test counts the relay's calls.

mod rig;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use polar_license::portal::PortalRequest;
use polar_license::{HttpRequest, HttpResponse, Transport, TransportError, UreqTransport};

use polar_license_emulator::{Emulator, DEMO_ORGANIZATION_ID};
use polar_license_relay::store::StoreOptions;
use polar_license_relay::{Rate, RelayConfig, ServeOptions, DEVICES_ROUTE};
use serde_json::{json, Value};

/// The relay's calls to Polar, counted: the posts and the gets apart.
struct Counting {
    inner: UreqTransport,
    posts: Arc<AtomicU32>,
    gets: Arc<AtomicU32>,
}

impl Transport for Counting {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        self.posts.fetch_add(1, Ordering::SeqCst);
        self.inner.send(request)
    }

    fn send_portal(&self, request: &PortalRequest) -> Result<HttpResponse, TransportError> {
        assert_eq!(request.method, polar_license::portal::Method::Get);
        assert!(request.body.is_empty());
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.send_portal(request)
    }
}

/// A relay of `config` whose calls are counted: it, and its posts and gets so far.
fn counted(config: RelayConfig) -> (rig::Relayed, impl Fn() -> (u32, u32)) {
    let (posts, gets) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let upstream = Counting {
        inner: rig::upstream(Duration::from_secs(10)),
        posts: Arc::clone(&posts),
        gets: Arc::clone(&gets),
    };
    let calls = move || (posts.load(Ordering::SeqCst), gets.load(Ordering::SeqCst));
    (rig::relay(config, upstream), calls)
}

/// `key` activated at Polar (the emulator's public route) as `label`: the activation's id.
fn activate(polar: &Emulator, key: &str, label: &str) -> String {
    let body = json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID, "label": label});
    let answer = at_polar(polar, "activate", &body);
    assert_eq!(answer.status, 200);
    let v: Value = serde_json::from_str(&answer.body).expect("JSON");
    v["id"].as_str().expect("an id").to_string()
}

/// `body` posted to Polar's public route `op` (no token).
fn at_polar(polar: &Emulator, op: &str, body: &Value) -> rig::Answer {
    let url = format!("{}{}{op}", polar.url(), rig::PUBLIC);
    rig::post_with(
        &rig::agent(Duration::from_secs(10)),
        &url,
        &body.to_string(),
        &[],
    )
}

/// `activation_id` of `key` freed at Polar (the public deactivate: no token).
fn deactivate(polar: &Emulator, key: &str, activation_id: &str) {
    let body = json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID, "activation_id": activation_id});
    assert_eq!(at_polar(polar, "deactivate", &body).status, 204);
}

fn list_body(key: &str, here: Option<&str>) -> String {
    let mut body = json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID});
    if let Some(id) = here {
        body["activation_id"] = json!(id);
    }
    body.to_string()
}

/// The device list asked of the relay at `base`: its answer.
fn list_at(base: &str, key: &str, here: Option<&str>) -> rig::Answer {
    rig::post_with(
        &rig::agent(Duration::from_secs(10)),
        &format!("{base}{DEVICES_ROUTE}"),
        &list_body(key, here),
        &[],
    )
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or(Value::Null)
}

/// Each listed activation of `v` made into `row`'s tuple.
fn rows<T>(v: &Value, row: impl Fn(&Value) -> T) -> Vec<T> {
    v["activations"]
        .as_array()
        .expect("activations")
        .iter()
        .map(row)
        .collect()
}

/// The listed activations as `(id, label, this_machine)`.
fn listed(v: &Value) -> Vec<(String, String, bool)> {
    rows(v, |a| {
        (
            a["id"].as_str().expect("id").to_string(),
            a["label"].as_str().expect("label").to_string(),
            a["this_machine"].as_bool().expect("this_machine"),
        )
    })
}

fn config(polar: &Emulator, stored: bool) -> RelayConfig {
    let mut config = rig::config(polar.url(), "devices");
    config.limits = rig::unlimited();
    if stored {
        config.store = rig::store(rig::memory(100), StoreOptions::default(), None);
    }
    config
}

#[test]
fn a_key_lists_its_devices_through_the_relay_oldest_first_this_one_marked() {
    let polar = rig::emulator();
    let key = rig::add_key(&polar, "DEV-LIST-1".into(), Some(3));
    let old = activate(&polar, &key, "Old laptop (Linux)");
    let here = activate(&polar, &key, "Studio Mac (macOS)");
    for stored in [false, true] {
        let relay = rig::listen_with(config(&polar, stored), ServeOptions::default());
        let answer = list_at(&relay.url(), &key, Some(&here));
        assert_eq!(answer.status, 200, "stored {stored}: {}", answer.body);
        assert_eq!(answer.lease, None, "a device list carries no lease");
        let v = json_of(&answer.body);
        assert_eq!(v["limit_activations"], json!(3));
        assert!(v["license_key_id"]
            .as_str()
            .is_some_and(|id| id.len() == 36));
        assert_eq!(
            listed(&v),
            [
                (old.clone(), "Old laptop (Linux)".to_string(), false),
                (here.clone(), "Studio Mac (macOS)".to_string(), true),
            ]
        );
        // The key never in the answer; the times as RFC 3339.
        assert!(!answer.body.contains(&key));
        assert!(v["activations"][0]["created_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') || t.contains('+')));
        // Without an activation id nothing is marked.
        let v = json_of(&list_at(&relay.url(), &key, None).body);
        assert!(listed(&v).iter().all(|(_, _, this)| !this));
    }
    // A device freed by the public deactivate (no token) is gone from the next list.
    deactivate(&polar, &key, &old);
    let relay = rig::listen_with(config(&polar, false), ServeOptions::default());
    let v = json_of(&list_at(&relay.url(), &key, Some(&here)).body);
    assert_eq!(listed(&v), [(here, "Studio Mac (macOS)".to_string(), true)]);
}

#[test]
fn a_wrong_key_is_polars_404_and_no_read_of_any_key() {
    let polar = rig::emulator();
    let config = config(&polar, false);
    let (relay, calls) = counted(config);
    let req = rig::request(
        DEVICES_ROUTE,
        &[],
        &list_body("NOT-A-KEY-OF-THIS-ORG", None),
    );
    let r = relay.handle(&req, rig::at(rig::now()));
    assert_eq!(r.status, 404);
    assert_eq!(
        json_of(&String::from_utf8_lossy(&r.body)),
        json!({"error": "ResourceNotFound", "detail": "Not found"})
    );
    // One call: the validate; no read followed it.
    assert_eq!(calls(), (1, 0));
    // A known key: the validate and the read (a GET).
    let key = rig::add_key(&polar, "DEV-LIST-2".into(), Some(2));
    activate(&polar, &key, "one");
    let req = rig::request(DEVICES_ROUTE, &[], &list_body(&key, None));
    assert_eq!(relay.handle(&req, rig::at(rig::now())).status, 200);
    assert_eq!(calls(), (2, 1));
}

#[test]
fn another_organization_a_bad_body_or_a_get_are_refused_without_polar() {
    let polar = rig::emulator();
    let mut config = config(&polar, false);
    config.organization_id = Some(DEMO_ORGANIZATION_ID.into());
    let (relay, calls) = counted(config);
    let now = rig::at(rig::now());
    let other = json!({"key": "K-1", "organization_id": "d2fcbff8-108b-411e-bf2b-6383e0a8802d"});
    let r = relay.handle(&rig::request(DEVICES_ROUTE, &[], &other.to_string()), now);
    assert_eq!(r.status, 404);
    for bad in [
        "not json".to_string(),
        json!({"key": "K-1"}).to_string(),
        json!({"key": "K-1", "organization_id": DEMO_ORGANIZATION_ID, "activation_id": "x"})
            .to_string(),
        json!({"key": "K-1", "organization_id": DEMO_ORGANIZATION_ID, "url": "x"}).to_string(),
    ] {
        let r = relay.handle(&rig::request(DEVICES_ROUTE, &[], &bad), now);
        assert_eq!(r.status, 422, "{bad}");
    }
    // Polar's own checks of the key: an empty key is its 422.
    let empty = json!({"key": "", "organization_id": DEMO_ORGANIZATION_ID});
    let r = relay.handle(&rig::request(DEVICES_ROUTE, &[], &empty.to_string()), now);
    assert_eq!(r.status, 422);
    // The key never in a URL: a GET is 405.
    let mut get = rig::get(DEVICES_ROUTE);
    get.path = format!("{DEVICES_ROUTE}?key=K-1");
    let r = relay.handle(&get, now);
    assert_eq!(r.status, 405);
    assert_eq!(calls(), (0, 0));
}

#[test]
fn listings_are_bounded_per_key_per_address_and_by_the_budget() {
    let polar = rig::emulator();
    let key = rig::add_key(&polar, "DEV-LIST-3".into(), Some(2));
    activate(&polar, &key, "one");
    // Per key: a burst of 2 calls; a listing is 2 (the verdict, the read).
    let mut c = config(&polar, false);
    c.limits = rig::limits(Rate::new(0, 0), Rate::new(1, 2));
    let relay = rig::listen_with(c, ServeOptions::default());
    assert_eq!(list_at(&relay.url(), &key, None).status, 200);
    let second = list_at(&relay.url(), &key, None);
    assert_eq!(second.status, 429, "{}", second.body);
    assert_eq!(second.source.as_deref(), Some("relay"));
    // Per address: a burst of 1.
    let mut c = config(&polar, false);
    c.limits = rig::limits(Rate::new(1, 1), Rate::new(0, 0));
    let relay = rig::listen_with(c, ServeOptions::default());
    assert_eq!(list_at(&relay.url(), &key, None).status, 200);
    assert_eq!(list_at(&relay.url(), &key, None).status, 429);
    // The token's budget: 3 calls a minute, no reserve; a stored grant answers the verdict
    // (fresh), so the reads spend one call each until the budget has none.
    let mut c = config(&polar, true);
    if let Some(store) = c.store.as_mut() {
        store.options.budget = 3;
        store.options.reserve = 0;
        store.options.roster = false;
    }
    let relay = rig::listen_with(c, ServeOptions::default());
    let statuses: Vec<u16> = (0..4)
        .map(|_| list_at(&relay.url(), &key, None).status)
        .collect();
    // The verdict and a read, a read, then no room: 429.
    assert_eq!(statuses, [200, 200, 429, 429], "{statuses:?}");
}

// ---- When the relay last saw each activation (issue #80, crate::last_seen) --------------------

/// A validate of `key` naming `activation_id`, as the core receives it.
fn validate_of(key: &str, activation_id: &str) -> polar_license_relay::RelayRequest {
    rig::request(
        &format!("{}validate", rig::PUBLIC),
        &[],
        &json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID, "activation_id": activation_id})
            .to_string(),
    )
}

/// The device list of `key` asked of `relay` at `now`: each row's id and `last_seen`.
fn last_seen_at(relay: &rig::Relayed, key: &str, now: i64) -> Vec<(String, Option<String>)> {
    let r = relay.handle(
        &rig::request(DEVICES_ROUTE, &[], &list_body(key, None)),
        rig::at(now),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    rows(&json_of(&String::from_utf8_lossy(&r.body)), |a| {
        (
            a["id"].as_str().expect("id").to_string(),
            a["last_seen"].as_str().map(str::to_string),
        )
    })
}

/// `/healthz`'s `last_seen` of `relay` at `now`.
fn record_of(relay: &rig::Relayed, now: i64) -> Value {
    let r = relay.handle(&rig::get("/healthz"), rig::at(now));
    json_of(&String::from_utf8_lossy(&r.body))["last_seen"].clone()
}

#[test]
fn devices_say_when_the_relay_last_saw_each_activation_validated() {
    let polar = rig::emulator();
    let key = rig::add_key(&polar, "DEV-SEEN-1".into(), Some(3));
    let direct = activate(&polar, &key, "validated at Polar only");
    let never = activate(&polar, &key, "never validated");
    // Validated at Polar itself (not through the relay): the relay never saw it.
    let body =
        json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID, "activation_id": direct});
    assert_eq!(at_polar(&polar, "validate", &body).status, 200);
    for stored in [false, true] {
        let seen = activate(&polar, &key, "seen through the relay");
        let relay = rig::relay(
            config(&polar, stored),
            rig::upstream(Duration::from_secs(10)),
        );
        let t = rig::now() - rig::now() % 3_600;
        let of = |now: i64| -> std::collections::HashMap<String, Option<String>> {
            last_seen_at(&relay, &key, now).into_iter().collect()
        };
        assert_eq!(
            relay.handle(&validate_of(&key, &seen), rig::at(t)).status,
            200
        );
        let rows = of(t + 10);
        assert_eq!(rows.len(), 3, "stored {stored}");
        assert_eq!(rows[&seen], Some(rig::rfc3339(t)), "stored {stored}");
        assert_eq!(rows[&direct], None);
        assert_eq!(rows[&never], None);
        // Seen again within the hour (Polar's answer or the store's): the record does not
        // move; after it, it does.
        assert_eq!(
            relay
                .handle(&validate_of(&key, &seen), rig::at(t + 1_800))
                .status,
            200
        );
        assert_eq!(of(t + 1_801)[&seen], Some(rig::rfc3339(t)));
        assert_eq!(
            relay
                .handle(&validate_of(&key, &seen), rig::at(t + 3_600))
                .status,
            200
        );
        assert_eq!(of(t + 3_601)[&seen], Some(rig::rfc3339(t + 3_600)));
        // Deactivated through the relay: its record ends with it.
        let free =
            json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID, "activation_id": seen});
        let r = relay.handle(
            &rig::request(
                &format!("{}deactivate", rig::PUBLIC),
                &[],
                &free.to_string(),
            ),
            rig::at(t + 3_602),
        );
        assert_eq!(r.status, 204);
        assert_eq!(record_of(&relay, t + 3_603)["records"], json!(0));
    }
}

#[test]
fn hostile_validates_make_no_last_seen_record() {
    let polar = rig::emulator();
    let key = rig::add_key(&polar, "DEV-SEEN-2".into(), Some(3));
    let other = rig::add_key(&polar, "DEV-SEEN-3".into(), Some(3));
    let theirs = activate(&polar, &other, "another key's");
    // Every key known (no roster): each made-up id is Polar's to answer, no first-seen 429.
    let mut c = config(&polar, true);
    if let Some(s) = c.store.as_mut() {
        s.options.roster = false;
    }
    let relay = rig::relay(c, rig::upstream(Duration::from_secs(10)));
    let t = rig::now();
    // A flood of made-up activation ids under a real key, another key's activation, a made-up
    // key: each Polar's 404, none recorded.
    for n in 0..200u32 {
        let made_up = format!("6b0c1f4e-2a3d-4e5f-8a9b-{n:012x}");
        assert_eq!(
            relay
                .handle(&validate_of(&key, &made_up), rig::at(t))
                .status,
            404
        );
    }
    assert_eq!(
        relay.handle(&validate_of(&key, &theirs), rig::at(t)).status,
        404
    );
    assert_eq!(
        relay
            .handle(&validate_of("NOT-A-KEY-OF-THIS-ORG", &theirs), rig::at(t))
            .status,
        404
    );
    // A validate naming no activation records nothing either.
    assert_eq!(
        relay
            .handle(&rig::validate_request(&key), rig::at(t))
            .status,
        200
    );
    assert_eq!(record_of(&relay, t)["records"], json!(0));
    // The real one is one record.
    assert_eq!(
        relay
            .handle(&validate_of(&other, &theirs), rig::at(t))
            .status,
        200
    );
    assert_eq!(record_of(&relay, t)["records"], json!(1));
}

/// The relay's background machine run at `now` until it waits.
fn background(
    relay: &rig::Relayed,
    machine: &mut polar_license_relay::flow::background::Background,
    now: i64,
) {
    rig::background_run(relay, machine, rig::at(now));
}

#[test]
fn devices_unseen_for_the_seller_s_days_are_retired_and_no_other() {
    use polar_license_relay::flow::background::Background;
    const DAY: i64 = 86_400;
    for (days, stored) in [(2u32, false), (2, true), (0, true)] {
        let polar = rig::emulator();
        let key = rig::add_key(&polar, format!("DEV-SEEN-RETIRE-{days}-{stored}"), Some(4));
        let gone = activate(&polar, &key, "a laptop gone");
        let kept = activate(&polar, &key, "seen within the window");
        let heard = activate(&polar, &key, "never validated through the relay");
        let mut c = config(&polar, stored);
        c.retire_unseen_days = days;
        if let Some(s) = c.store.as_mut() {
            s.options.roster = false;
        }
        let relay = rig::relay(c, rig::upstream(Duration::from_secs(10)));
        let mut machine = Background::new(None);
        let t = rig::now();
        for a in [&gone, &kept] {
            assert_eq!(relay.handle(&validate_of(&key, a), rig::at(t)).status, 200);
        }
        // A listing naming an activation (this machine's) is no sighting of it.
        let r = relay.handle(
            &rig::request(DEVICES_ROUTE, &[], &list_body(&key, Some(&heard))),
            rig::at(t),
        );
        assert_eq!(r.status, 200);
        // Seen again a day later, and just inside the window at the end.
        assert_eq!(
            relay
                .handle(&validate_of(&key, &kept), rig::at(t + 2 * DAY))
                .status,
            200
        );
        // Just before the window and its hour of slack: nothing retired.
        background(&relay, &mut machine, t + 2 * DAY + 3_599);
        assert_eq!(polar_ids(&polar, &key).len(), 3);
        let end = t + 2 * DAY + 3_600;
        background(&relay, &mut machine, end);
        let left = polar_ids(&polar, &key);
        if days == 0 {
            assert_eq!(left.len(), 3, "off: nothing retired");
            assert_eq!(record_of(&relay, end)["retire_unseen_days"], Value::Null);
            continue;
        }
        assert!(!left.contains(&gone), "stored {stored}: {left:?}");
        assert!(left.contains(&kept) && left.contains(&heard), "{left:?}");
        assert_eq!(record_of(&relay, end)["retired"], json!(1));
        // Long after: the one seen retires in its turn; the one never seen through the relay
        // never does.
        background(&relay, &mut machine, end + 10 * DAY);
        assert_eq!(polar_ids(&polar, &key), std::slice::from_ref(&heard));
    }
}

/// The record outlives the relay (crate::last_seen: kept in the store): a relay over a file
/// store sees two of a key's activations validated and stops; started again over the same file,
/// its device list shows their times (its memory empty), and the one unseen since is retired
/// once the seller's days have passed; a deactivation through the relay drops the other from
/// the file too, so the next relay over it shows no time for it.
#[test]
fn a_restarted_relay_still_says_when_it_saw_each_activation_and_retires_from_it() {
    use polar_license_relay::flow::background::Background;
    use polar_license_relay::store::RedbBackend;
    const DAY: i64 = 86_400;
    let dir = polar_license_testkit::ScratchDir::new("relay-last-seen-restart");
    let path = dir.path().join("store.redb");
    let polar = rig::emulator();
    let key = rig::add_key(&polar, "DEV-SEEN-RESTART".into(), Some(4));
    let gone = activate(&polar, &key, "a laptop gone");
    let kept = activate(&polar, &key, "seen later");
    let over_the_file = || {
        let mut c = config(&polar, false);
        c.retire_unseen_days = 2;
        let file = RedbBackend::open(&path, 1_000).expect("the file store");
        c.store = rig::store(Arc::new(file), StoreOptions::default(), None);
        if let Some(s) = c.store.as_mut() {
            s.options.roster = false;
        }
        rig::relay(c, rig::upstream(Duration::from_secs(10)))
    };
    let t = rig::now() - rig::now() % 3_600;
    {
        let relay = over_the_file();
        for (a, at) in [(&gone, t), (&kept, t + DAY)] {
            assert_eq!(relay.handle(&validate_of(&key, a), rig::at(at)).status, 200);
        }
    }
    // Started again over the same file: nothing in its memory, the times from the store.
    let relay = over_the_file();
    assert_eq!(record_of(&relay, t + DAY)["records"], json!(0));
    let rows: std::collections::HashMap<_, _> = last_seen_at(&relay, &key, t + DAY + 10)
        .into_iter()
        .collect();
    assert_eq!(rows[&gone], Some(rig::rfc3339(t)));
    assert_eq!(rows[&kept], Some(rig::rfc3339(t + DAY)));
    // The one unseen for the seller's two days (and the hour of slack) retired; the other not.
    let mut machine = Background::new(None);
    background(&relay, &mut machine, t + 2 * DAY + 3_600);
    assert_eq!(polar_ids(&polar, &key), std::slice::from_ref(&kept));
    // Deactivated through the relay: gone from the file too.
    let free = json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID, "activation_id": kept});
    let r = relay.handle(
        &rig::request(
            &format!("{}deactivate", rig::PUBLIC),
            &[],
            &free.to_string(),
        ),
        rig::at(t + 2 * DAY + 3_700),
    );
    assert_eq!(r.status, 204);
    drop(relay);
    let relay = over_the_file();
    let again = activate(&polar, &key, "a new laptop");
    let rows = last_seen_at(&relay, &key, t + 2 * DAY + 3_800);
    assert_eq!(rows, vec![(again, None)]);
}

/// The live activations of `key` at Polar (its public validate's view: the emulator's key
/// read with the token).
fn polar_ids(polar: &Emulator, key: &str) -> Vec<String> {
    let relay = rig::relay(config(polar, false), rig::upstream(Duration::from_secs(10)));
    last_seen_at(&relay, key, rig::now())
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

/// Polar's 429 to a listing's read blocks the token's calls as a license call's 429 does: the
/// next listing's read is refused by the relay itself (`429`, no call), not sent into Polar's
/// block.
#[test]
fn polar_s_429_to_a_read_blocks_the_next_read_in_the_relay() {
    // Polar takes two calls a window from the relay (the verdict, the read).
    let polar = rig::budgeted_emulator(2);
    let key = rig::add_key(&polar, "DEV-LIST-429".into(), Some(2));
    activate(&polar, &key, "one");
    let mut c = config(&polar, true);
    if let Some(store) = c.store.as_mut() {
        store.options.roster = false;
    }
    let (relay, calls) = counted(c);
    let t = rig::now();
    let list = |at: i64| {
        let r = relay.handle(
            &rig::request(DEVICES_ROUTE, &[], &list_body(&key, None)),
            rig::at(at),
        );
        r.status
    };
    assert_eq!(list(t), 200);
    assert_eq!(calls().1, 1, "the read");
    assert_eq!(list(t + 1), 429, "Polar's 429");
    assert_eq!(calls().1, 2);
    assert_eq!(list(t + 2), 429, "the relay's own");
    assert_eq!(calls().1, 2, "no read into Polar's block");
}
