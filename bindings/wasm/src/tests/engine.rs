//! The npm package's sans-IO engine (`polar_license::wasm::engine::Engine`), step by step with
//! no server and no JS storage, in node and in headless Chromium: its records and ledgers are
//! the native cache format under the native seal (both ways), bound to the server's origin; its
//! answers carry the reason codes and extras `LicenseError` needs; and its steps hold the
//! trust rules (writes in order, every cached answer recorded, answers that are not Polar's
//! falling back, a 200 held to the request, an activation and a plain validate updating the
//! record). (The package's IO layer around it is tested by tests/js.)

use crate::engine::{secret_ok, Engine};
use polar_license::cache::{self, MacKey};
use polar_license::proto::PRODUCTION_URL;
use polar_license_testkit::answers::{ACTIVATION, ORG};
use serde_json::{json, Value};
use std::collections::HashMap;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::wasm_bindgen_test;

const KEY: &str = "ENGINE-50B22C51-07BD-4160-A61E-19B6CC6ED415";
const SECRET: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const NOW: f64 = 1_790_000_000.0;
const EMULATOR: &str = "http://127.0.0.1:8787";

fn license(activation: bool) -> Value {
    json!({
        "id": "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e",
        "created_at": "2025-01-01T00:00:00Z",
        "modified_at": null,
        "organization_id": ORG,
        "customer_id": "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d",
        "customer": {
            "id": "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d",
            "created_at": "2025-01-01T00:00:00Z",
            "organization_id": ORG,
            "metadata": { "plan_tier": "pro" }
        },
        "benefit_id": "5d3c2b1a-9e8f-4a7b-8c6d-1e2f3a4b5c6d",
        "key": KEY,
        "display_key": "****-6ED415",
        "status": "granted",
        "limit_activations": 3,
        "usage": 0,
        "limit_usage": null,
        "validations": 1,
        "last_validated_at": null,
        "expires_at": null,
        "activation": if activation {
            json!({
                "id": ACTIVATION,
                "license_key_id": "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e",
                "label": "laptop",
                "meta": {},
                "created_at": "2025-01-01T00:00:00Z",
                "modified_at": null
            })
        } else {
            Value::Null
        }
    })
}

/// `new Engine(...)` as `license.js` calls it: `LicenseClient`'s options as JSON text.
fn engine_from(o: &Value) -> Result<Engine, JsValue> {
    Engine::new(&o.to_string(), "null")
}

fn engine(extra: Value) -> Engine {
    let mut options = json!({ "organizationId": ORG, "appSecret": "app" });
    if let (Some(o), Some(e)) = (options.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    engine_from(&options).unwrap()
}

fn parsed(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn secret_bytes() -> Vec<u8> {
    (0..32)
        .map(|i| u8::from_str_radix(&SECRET[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// The native seals of `KEY`'s record for `origin` (no machine id, the app secret `app`), as
/// the native `Licensing` derives them.
fn native_mac(origin: &str) -> MacKey {
    MacKey::for_slot(KEY, ORG, &secret_bytes(), origin, None, Some(&b"app"[..]))
}

/// A storage, as `license.js` keeps one: named strings, written in the order given.
#[derive(Default, Clone)]
pub(super) struct Storage {
    map: HashMap<String, String>,
    names: Vec<String>,
    /// How each write of `names` was to be kept (`durable` when the step said nothing).
    keeps: Vec<String>,
}

impl Storage {
    /// Stores a step's `write` list in order; the names written, in order.
    fn apply(&mut self, step: &Value) -> Vec<String> {
        let mut names = Vec::new();
        for pair in step["write"].as_array().into_iter().flatten() {
            let (name, text) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
            self.map.insert(name.to_string(), text.to_string());
            names.push(name.to_string());
            self.keeps.push(
                pair.get(2)
                    .and_then(Value::as_str)
                    .unwrap_or("durable")
                    .to_string(),
            );
        }
        self.names.extend(names.clone());
        names
    }

    fn record(&self, e: &Engine) -> Option<String> {
        self.map.get(&e.slot(KEY)).cloned()
    }

    fn ledger(&self, e: &Engine) -> Option<String> {
        self.map.get(&e.ledger(KEY)).cloned()
    }

    fn clock(&self, e: &Engine) -> Option<String> {
        self.map.get(&e.clock(KEY)).cloned()
    }
}

/// A Polar answer to the request of a machine (or `fail` 1..3 with `detail`), with the
/// headers `fetch` gives (`date`, `retry-after`, the relay's lease, source and `age`).
#[derive(Default)]
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) body: Vec<u8>,
    pub(super) date: Option<String>,
    pub(super) retry_after: Option<String>,
    pub(super) fail: u8,
    pub(super) detail: String,
    pub(super) lease: Option<String>,
    pub(super) source: Option<String>,
    pub(super) age: Option<String>,
}

fn ok(status: u16, body: &Value) -> Reply {
    raw(status, &body.to_string())
}

fn raw(status: u16, body: &str) -> Reply {
    Reply {
        status,
        body: body.as_bytes().to_vec(),
        ..Reply::default()
    }
}

fn failed(fail: u8, detail: &str) -> Reply {
    Reply {
        fail,
        detail: detail.to_string(),
        ..Reply::default()
    }
}

/// A host's Ed25519: the answers `license.js` hands to `verified` for a `verify` want.
type Verifier = Box<dyn Fn(&Value) -> Vec<Arg>>;

/// What a test's host does besides the storage: whether another check holds the mark,
/// whether writes fail, what the storage becomes while Polar is asked, and how the host's
/// Ed25519 answers (`None`: the test expects no signature to be asked about).
#[derive(Default)]
struct Host {
    marked_elsewhere: bool,
    writes_fail: bool,
    meanwhile: Option<HashMap<String, String>>,
    verifies: Option<Verifier>,
}

/// A monotonic clock's milliseconds, a second apart for each check (so none is taken for the
/// same answer again, unless a test says so).
fn at() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static AT: AtomicU64 = AtomicU64::new(0);
    AT.fetch_add(10_000, Ordering::Relaxed)
}

/// One operation as `license.js` drives it: `start`, then `want` and `give` until it is done,
/// over `s` with `host`, `reply` answering its request. `options`: the run's (`op`, default a
/// check; `key`, default `KEY`; the call's `options` as JSON text). The answer (`answer`, and
/// the done's `refreshed`, `relaySource`, `cacheError`, `forgetKey`), with what happened:
/// `asked` (a request was sent: its body in `sent`, its URL in `url`), `write` (the names
/// written, in order; absent for none; `writes` the names and texts), `removed`, `pending` (a
/// check in the background), `verified` (how many times the host was asked).
fn drive(e: &Engine, s: &mut Storage, host: &Host, options: Value, reply: &Reply) -> Value {
    let start = e.start(
        options["op"].as_str().unwrap_or("check"),
        options["key"].as_str().unwrap_or(KEY).into(),
        &options.to_string(),
        options["options"].as_str().unwrap_or_default(),
    );
    let want = parsed(&start);
    let id = want["id"].as_str().unwrap_or_default().to_string();
    run(e, &id, want, s, host, reply)
}

/// [`drive`] from the machine `id`'s want `want` on.
fn run(
    e: &Engine,
    id: &str,
    mut want: Value,
    s: &mut Storage,
    host: &Host,
    reply: &Reply,
) -> Value {
    let (mut asked, mut sent, mut wrote, mut removed) = (false, None, Vec::new(), Vec::new());
    let (mut url, mut writes) = (None, Vec::new());
    let (mut pending, mut verified) = (None, 0);
    for _ in 0..100 {
        let mut body = Vec::new();
        let given = if let Some(done) = want.get("done") {
            let mut out = json!({
                "answer": done,
                "refreshed": want["refreshed"],
                "relaySource": want["relaySource"],
                "cacheError": want["cacheError"],
                "forgetKey": want["forgetKey"],
                "asked": asked,
                "sent": sent,
                "url": url,
                "removed": removed,
                "pending": pending,
                "verified": verified,
            });
            if !wrote.is_empty() {
                out["write"] = json!(wrote);
                out["writes"] = json!(writes);
            }
            return out;
        } else if let Some(names) = want.get("read") {
            let get = |i: usize| s.map.get(names[i].as_str().unwrap()).cloned();
            json!({ "read": [get(0), get(1), get(2)] })
        } else if want.get("lock").is_some() {
            json!({ "locked": true })
        } else if want.get("unlock").is_some() {
            json!({ "unlocked": true })
        } else if want.get("mark").is_some() {
            pending = want.get("pending").cloned();
            json!({ "marked": !host.marked_elsewhere })
        } else if let Some(write) = want.get("write") {
            if host.writes_fail {
                json!({ "written": "the disk is full" })
            } else {
                let step = json!({ "write": [write] });
                wrote.extend(s.apply(&step));
                writes.push(json!([write[0], write[1]]));
                json!({ "written": true })
            }
        } else if let Some(name) = want.get("remove") {
            s.map.remove(name.as_str().unwrap());
            removed.push(name.clone());
            json!({ "removed": true })
        } else if let Some(request) = want.get("send") {
            asked = true;
            sent = Some(request["body"].clone());
            url = Some(request["url"].clone());
            if let Some(map) = &host.meanwhile {
                s.map = map.clone();
            }
            body = reply.body.clone();
            if reply.fail == 0 {
                let headers: Vec<Value> = [
                    ("date", &reply.date),
                    ("retry-after", &reply.retry_after),
                    ("polar-license-lease", &reply.lease),
                    ("polar-license-source", &reply.source),
                    ("age", &reply.age),
                ]
                .into_iter()
                .filter_map(|(name, v)| v.as_ref().map(|v| json!([name, v])))
                .collect();
                json!({ "response": { "status": reply.status, "headers": headers } })
            } else {
                json!({ "response": { "fail": reply.fail, "detail": reply.detail } })
            }
        } else if want.get("verify").is_some() {
            verified += 1;
            let host = host.verifies.as_ref().expect("no signature to verify");
            call(e, "verified", &host(&want));
            json!({ "verified": true })
        } else {
            panic!("unknown want {want}");
        };
        let next = e.give(id, &given.to_string(), body);
        // `give` answers what the machine wants next, as `want` does (asked once more here,
        // but for the wants `want` answers only once: done, and the signatures to verify).
        if !next.starts_with("{\"done\"") && !next.starts_with("{\"verify\"") {
            assert_eq!(next, e.want(id));
        }
        want = parsed(&next);
    }
    panic!("the machine never ended");
}

/// A validate, activate or deactivate (`op`, with the call's `options`) of `key` at `now`,
/// driven as `license.js` drives it over `s` (none: the storage cannot be used), `reply`
/// answering its request: JSON text, `{"answer", "write": [[name, text]…]}` (no `write` when
/// nothing was written), as the engine's positional steps answered before issue #44.
pub(super) fn operate(
    e: &Engine,
    s: Option<&mut Storage>,
    (op, key, options): (&str, &str, &str),
    now: f64,
    reply: &Reply,
) -> String {
    let mut run = json!({ "op": op, "key": key, "options": options, "now": now });
    let mut none = Storage::default();
    let s = match s {
        Some(s) => {
            run["secret"] = json!(SECRET);
            s
        }
        None => {
            run["cache"] = json!("no storage here");
            &mut none
        }
    };
    let out = drive(e, s, &Host::default(), run, reply);
    let mut step = json!({ "answer": out["answer"] });
    if let Some(writes) = out.get("writes") {
        step["write"] = writes.clone();
    }
    step.to_string()
}

/// One check of `KEY` at `now`, over `s` (a host whose storage works), `reply` answering its
/// request.
fn check(e: &Engine, s: &mut Storage, now: f64, reply: Reply) -> Value {
    let options = json!({ "secret": SECRET, "now": now, "at": at() });
    drive(e, s, &Host::default(), options, &reply)
}

/// A `give` the engine cannot read as an answer (no `{"kind": …}`) ends the machine: answered as
/// an operation no longer running, and out of the handle table (asked again, the same), never
/// kept there. An answer of a kind the machine did not ask for ends it too, through the core's
/// rule (`tests/machine_shell.rs`).
#[wasm_bindgen_test]
fn a_given_the_engine_cannot_read_ends_the_machine() {
    let e = engine(json!({}));
    let run = json!({ "secret": SECRET, "now": NOW }).to_string();
    for garbage in ["", "null", "[]", "{}", "{\"read\"", "\"read\""] {
        let first = parsed(&e.start("check", KEY.into(), &run, ""));
        let id = first["id"].as_str().unwrap().to_string();
        assert!(first.get("read").is_some(), "{garbage}: {first}");
        let ended = parsed(&e.give(&id, garbage, Vec::new()));
        let detail = &ended["done"]["error"]["detail"];
        assert_eq!(
            detail, "this operation is not running",
            "{garbage}: {ended}"
        );
        let again = parsed(&e.want(&id));
        assert_eq!(
            again["done"]["error"]["detail"], *detail,
            "{garbage}: {again}"
        );
    }
}

/// `check(key, run, record, ledger, clock)`: a check handed the slot as the host read it. A
/// cached answer is that one call (`{"done": …}`, no machine left running); `same` reuses the
/// texts handed last, for that key and install secret only (else the machine wants the read);
/// every change handed over is what the machine decides on (a record removed meanwhile is not
/// answered from the one kept); and the answer's text follows the outcome (the grace a second
/// later), never a memo of an earlier one.
#[wasm_bindgen_test]
fn a_check_handed_its_read_is_one_call_and_sees_every_change() {
    let e = engine(json!({}));
    let mut s = Storage::default();
    assert_eq!(
        check(&e, &mut s, NOW, ok(200, &license(false)))["asked"],
        true
    );
    let opts = |now: f64, at: u64, extra: Value| {
        let mut o = json!({ "secret": SECRET, "now": now, "at": at });
        o.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        o.to_string()
    };
    let handed = |e: &Engine, s: &Storage, run: &str| {
        parsed(&e.check(KEY.into(), run, s.record(e), s.ledger(e), s.clock(e)))
    };
    // The first cached answer records itself (the machine goes on), the next is one call.
    let first = handed(&e, &s, &opts(NOW + 1.0, 50_000, json!({})));
    let id = first["id"].as_str().unwrap().to_string();
    let first = run(
        &e,
        &id,
        first,
        &mut s,
        &Host::default(),
        &failed(1, "unused"),
    );
    assert_eq!(first["answer"]["ok"]["source"], "cache", "{first}");
    let once = handed(&e, &s, &opts(NOW + 1.0, 50_100, json!({})));
    assert_eq!(once.get("id"), None, "{once}");
    assert_eq!(once["done"]["ok"]["source"], "cache", "{once}");
    let text = e.check(
        KEY.into(),
        &opts(NOW + 1.0, 50_200, json!({ "same": true })),
        None,
        None,
        None,
    );
    assert_eq!(parsed(&text), once);
    // The next clock second on the same bytes is the machine's to answer (and record) anew.
    let next = parsed(&e.check(
        KEY.into(),
        &opts(NOW + 2.0, 50_300, json!({ "same": true })),
        None,
        None,
        None,
    ));
    assert!(next.get("done").is_none(), "{next}");
    // A second after the recorded answer (the core's rule) the same bytes are recorded again:
    // the one-call answer is not given from the engine's memo past it.
    let past = parsed(&e.check(
        KEY.into(),
        &opts(NOW + 1.0, 51_000, json!({ "same": true })),
        None,
        None,
        None,
    ));
    assert!(past.get("done").is_none(), "{past}");
    let id = past["id"].as_str().unwrap().to_string();
    let past = run(
        &e,
        &id,
        past,
        &mut s,
        &Host::default(),
        &failed(1, "unused"),
    );
    assert_eq!(past["write"], json!([e.clock(KEY)]), "{past}");
    // A second later the outcome moved (the grace): another text.
    let later = handed(&e, &s, &opts(NOW + 2.0, 53_000, json!({})));
    let id = later["id"].as_str().unwrap_or_default().to_string();
    let later = match later.get("done") {
        Some(_) => json!({ "answer": later["done"] }),
        None => run(
            &e,
            &id,
            later,
            &mut s,
            &Host::default(),
            &failed(1, "unused"),
        ),
    };
    let grace = |v: &Value| v["ok"]["graceRemaining"].as_i64().unwrap();
    assert_eq!(grace(&later["answer"]), grace(&once["done"]) - 1, "{later}");
    // `same` for another secret: nothing kept for it, the machine reads.
    let other = json!({ "secret": "ab".repeat(32), "now": NOW + 2.0, "at": 54_000, "same": true });
    let read = parsed(&e.check(KEY.into(), &other.to_string(), None, None, None));
    assert!(read.get("read").is_some(), "{read}");
    // The record removed meanwhile (another process forgot it): handed over, Polar is asked.
    s.map.remove(&e.slot(KEY));
    let gone = handed(&e, &s, &opts(NOW + 2.0, 54_100, json!({})));
    assert!(gone.get("done").is_none(), "{gone}");
    let id = gone["id"].as_str().unwrap().to_string();
    let asked = run(&e, &id, gone, &mut s, &Host::default(), &failed(1, "down"));
    assert_eq!(asked["asked"], true, "{asked}");
    assert_eq!(asked["answer"]["error"]["code"], "offline", "{asked}");
}

/// A check the machine answered at once without recording anything (Polar's 429 still
/// blocking, with no license to fall back on) is that answer again only at the same clock
/// second: a second later its `retryAfter` is a second shorter.
#[wasm_bindgen_test]
fn a_one_call_answer_is_kept_for_its_clock_second_only() {
    let e = engine(json!({}));
    let mut s = Storage::default();
    let blocked = Reply {
        retry_after: Some("60".into()),
        ..raw(429, "")
    };
    let first = check(&e, &mut s, NOW, blocked);
    assert_eq!(first["answer"]["error"]["code"], "rate_limited", "{first}");
    let at = |now: f64, at: u64, same: bool| {
        let run = json!({ "secret": SECRET, "now": now, "at": at, "same": same }).to_string();
        let texts = if same {
            (None, None, None)
        } else {
            (s.record(&e), s.ledger(&e), s.clock(&e))
        };
        parsed(&e.check(KEY.into(), &run, texts.0, texts.1, texts.2))
    };
    let once = at(NOW + 1.0, 60_000, false);
    assert_eq!(once["done"]["error"]["retryAfter"], 59, "{once}");
    assert_eq!(at(NOW + 1.0, 60_100, true), once);
    let later = at(NOW + 2.0, 60_200, true);
    assert_eq!(later["done"]["error"]["retryAfter"], 58, "{later}");
}

#[wasm_bindgen_test]
fn engine_records_are_the_native_format_both_ways() {
    let e = engine(json!({}));
    let slot = cache::slot_name(PRODUCTION_URL, ORG, KEY);
    assert_eq!(e.slot(KEY), format!("polar-license.{slot}"));
    assert_eq!(e.ledger(KEY), format!("polar-license.{slot}-seq"));
    assert!(slot.starts_with("v2-"));
    // `names` (license.js's one call for the three it reads before a check): the names the
    // machine itself reads, in its order (record, ledger, clock note), one space apart.
    let names = e.names(KEY);
    let p = format!("polar-license.{slot}");
    assert_eq!(names, format!("{p} {p}-seq {p}-clock"));
    let run = json!({ "secret": SECRET, "now": NOW }).to_string();
    let read = parsed(&e.start("check", KEY.into(), &run, ""))["read"].clone();
    assert_eq!(read, json!(names.split(' ').collect::<Vec<_>>()));
    assert_ne!(e.names("OTHER-KEY"), names);

    let mut s = Storage::default();
    let first = check(&e, &mut s, NOW, ok(200, &license(false)));
    assert_eq!(first["asked"], true);
    assert_eq!(first["answer"]["ok"]["source"], "online");
    assert_eq!(first["answer"]["ok"]["reason"], Value::Null);
    assert_eq!(first["answer"]["ok"]["license"]["key"], KEY);
    // No ledger yet: the ledger first, then the record (a crash between the two never
    // leaves a record without its ledger).
    assert_eq!(s.names, vec![e.ledger(KEY), e.slot(KEY)]);
    let text = s.record(&e).unwrap();
    assert!(text.starts_with("polar-license-cache v2\n"), "{text}");
    assert!(!text.contains(KEY));

    // Natively decoded with the native seal; the ledger holds the record's number.
    let mac = native_mac(PRODUCTION_URL);
    let mut record = cache::decode(text.as_bytes(), &mac).unwrap();
    assert_eq!(record.display_key, "****-6ED415");
    assert_eq!(record.origin, PRODUCTION_URL);
    assert_eq!(
        record.good.as_ref().map(|g| g.verified_at),
        Some(NOW as i64)
    );
    let seq = cache::decode_ledger(s.ledger(&e).unwrap().as_bytes(), &mac).unwrap();
    assert_eq!((record.seq, seq), (1, 1));

    // A record and ledger the native face wrote are trusted here: fresh, so no request, and
    // the answer is recorded (record, then ledger: a ledger exists now).
    record.seq = 7;
    let mut native = Storage::default();
    native.map.insert(
        e.slot(KEY),
        String::from_utf8(cache::encode(&record, &mac)).unwrap(),
    );
    native.map.insert(
        e.ledger(KEY),
        String::from_utf8(cache::encode_ledger(7, &mac)).unwrap(),
    );
    let again = check(&e, &mut native, NOW + 60.0, failed(1, "unused"));
    assert_eq!(again["asked"], false);
    assert_eq!(again["answer"]["ok"]["source"], "cache");
    assert_eq!(again["answer"]["ok"]["license"]["key"], KEY);
    assert_eq!(native.names, vec![e.slot(KEY), e.ledger(KEY), e.clock(KEY)]);
    let noted = cache::decode(native.record(&e).unwrap().as_bytes(), &mac).unwrap();
    assert_eq!((noted.seq, noted.latest_seen), (8, NOW as i64 + 60));
    // Its clock note, in the native format too.
    let note = cache::decode_clock(native.clock(&e).unwrap().as_bytes(), &mac).unwrap();
    assert_eq!(
        (note.seq, note.latest_seen, note.stalled),
        (8, NOW as i64 + 60, 0)
    );
    let status = parsed(&e.status(
        KEY.into(),
        SECRET,
        native.record(&e),
        native.ledger(&e),
        NOW + 60.0,
    ));
    assert_eq!(status["ok"]["state"], "present");
    assert_eq!(status["ok"]["verifiedAt"], NOW as i64);

    // The older record put back under the newer ledger: replayed, no cache.
    let status = parsed(&e.status(
        KEY.into(),
        SECRET,
        Some(text.clone()),
        native.ledger(&e),
        NOW,
    ));
    assert_eq!(status["ok"]["untrusted"], "replayed");
    // A record without its ledger is not trusted either.
    let status = parsed(&e.status(KEY.into(), SECRET, Some(text.clone()), None, NOW));
    assert_eq!(status["ok"]["untrusted"], "replayed");

    // Another app secret cannot read it, nor can an edited copy.
    let stranger = engine(json!({ "appSecret": "other" }));
    let status =
        parsed(&stranger.status(KEY.into(), SECRET, Some(text.clone()), s.ledger(&e), NOW));
    assert_eq!(status["ok"]["untrusted"], "bad_mac");
    let edited = text.replace("\"granted\"", "\"grantex\"");
    let status = parsed(&e.status(KEY.into(), SECRET, Some(edited), s.ledger(&e), NOW));
    assert_eq!(status["ok"]["untrusted"], "bad_mac");

    // Bound to its server: a client of another origin has another slot, and the production
    // record under it is sealed with other keys.
    let local = engine(json!({ "baseUrl": EMULATOR }));
    assert_ne!(local.slot(KEY), e.slot(KEY));
    let status = parsed(&local.status(KEY.into(), SECRET, Some(text), s.ledger(&e), NOW));
    assert_eq!(status["ok"]["untrusted"], "bad_mac");

    assert!(secret_ok(SECRET));
    assert!(!secret_ok("not hex"));
}

#[wasm_bindgen_test]
fn engine_answers_carry_codes_and_extras() {
    let e = engine(json!({}));
    let end = |reply: Reply| check(&e, &mut Storage::default(), NOW, reply);
    let offline = end(failed(1, "TypeError: fetch failed (ECONNREFUSED)"));
    assert_eq!(
        offline["answer"]["error"],
        json!({
            "code": "offline",
            "detail": "TypeError: fetch failed (ECONNREFUSED)",
            "userMessage": "Polar, the license server, could not be reached: check your internet connection.",
            "nextStep": "Check your internet connection.",
            "timeout": false
        })
    );
    assert_eq!(
        offline.get("write"),
        None,
        "nothing to write without a record"
    );
    assert_eq!(
        end(failed(2, "no complete answer within 10000 ms"))["answer"]["error"]["timeout"],
        true
    );
    assert_eq!(
        end(failed(3, "truncated"))["answer"]["error"]["code"],
        "protocol_error"
    );

    let mut s = Storage::default();
    let limited = check(
        &e,
        &mut s,
        NOW,
        Reply {
            retry_after: Some("30".into()),
            ..raw(429, "")
        },
    );
    assert_eq!(limited["answer"]["error"]["code"], "rate_limited");
    assert_eq!(limited["answer"]["error"]["retryAfter"], 30);
    // The block is remembered: the next check within it sends nothing.
    let blocked = check(&e, &mut s, NOW + 10.0, failed(1, "unused"));
    assert_eq!(blocked["asked"], false);
    assert_eq!(blocked["answer"]["error"]["code"], "rate_limited");
    // A retry-after of ten years blocks for an hour at most.
    let mut s = Storage::default();
    let years = check(
        &e,
        &mut s,
        NOW,
        Reply {
            retry_after: Some("315360000".into()),
            ..raw(429, "")
        },
    );
    assert_eq!(years["answer"]["error"]["retryAfter"], 3600);
    let status = parsed(&e.status(KEY.into(), SECRET, s.record(&e), s.ledger(&e), NOW));
    assert_eq!(status["ok"]["blockedUntil"], NOW as i64 + 3600);

    let denied = end(ok(
        404,
        &json!({ "error": "ResourceNotFound", "detail": "License key is no longer active." }),
    ));
    assert_eq!(
        denied["answer"]["error"],
        json!({
            "code": "inactive",
            "detail": "License key is no longer active.",
            "userMessage": "This license key is no longer active: see its state in the customer portal.",
            "nextStep": "See its state in the customer portal.",
            "portal": true,
            "status": 404
        })
    );
    // A tombstone that cannot be written must not leave a grant behind: the record goes.
    let mut s = Storage::default();
    check(&e, &mut s, NOW, ok(200, &license(false)));
    let full = Host {
        writes_fail: true,
        ..Host::default()
    };
    let options = json!({ "secret": SECRET, "now": NOW + 60.0, "at": at() });
    let reply = ok(
        404,
        &json!({ "error": "ResourceNotFound", "detail": "License key is no longer active." }),
    );
    let gone = drive(&e, &mut s, &full, options, &reply);
    assert_eq!(gone["answer"]["error"]["code"], "inactive", "{gone}");
    assert_eq!(gone["refreshed"], false);
    assert_eq!(gone["removed"], json!([e.slot(KEY)]));
    assert_eq!(s.record(&e), None);

    // A bare 404 (a wrong base path, a removed Polar-Version) is no denial and no tombstone.
    let bare = end(raw(404, r#"{"detail":"Not Found"}"#));
    assert_eq!(bare["answer"]["error"]["code"], "protocol_error");
    assert_eq!(bare["answer"]["error"]["status"], 404);
    assert_eq!(bare.get("write"), None);

    // A 200 that is not a valid license for the request: protocol_error.
    let mut other = license(false);
    other["key"] = json!("OTHER-50B22C51-07BD-4160-A61E-19B6CC6ED415");
    let mut revoked = license(false);
    revoked["status"] = json!("revoked");
    let mut expired = license(false);
    expired["expires_at"] = json!("2020-01-01T00:00:00Z");
    for lie in [other, revoked, expired] {
        let answer = end(ok(200, &lie));
        assert_eq!(answer["answer"]["error"]["code"], "protocol_error", "{lie}");
        assert_eq!(answer.get("write"), None);
    }

    // With `feature`: a denial answers (not granted), an error-class reason fails.
    let options = json!({ "key": "", "secret": SECRET, "now": NOW, "feature": "pro" });
    let feature = drive(&e, &mut s, &Host::default(), options, &failed(1, "unused"));
    assert_eq!(feature["answer"]["error"]["field"], "key");
    assert_eq!(feature["asked"], false);

    let bad = engine_from(&json!({ "organizationId": "nope" }))
        .err()
        .unwrap();
    let bad = parsed(&bad.as_string().unwrap());
    assert_eq!(bad["error"]["code"], "invalid_input");
    assert_eq!(bad["error"]["field"], "organization_id");
}

#[wasm_bindgen_test]
fn answers_that_are_not_polars_fall_back_with_their_reason() {
    let e = engine(json!({ "gracePolicy": { "revalidateAfter": 0 } }));
    let mut s = Storage::default();
    check(&e, &mut s, NOW, ok(200, &license(false)));
    let cases = [
        (raw(200, "<html>login</html>"), "protocol_error"),
        (raw(404, r#"{"detail":"Not Found"}"#), "protocol_error"),
        (raw(302, ""), "protocol_error"),
        (raw(503, "{}"), "server_error"),
        (failed(1, "refused"), "offline"),
    ];
    for (i, (reply, reason)) in cases.into_iter().enumerate() {
        let now = NOW + 60.0 * (i as f64 + 1.0);
        let answer = check(&e, &mut s, now, reply);
        assert_eq!(answer["answer"]["ok"]["source"], "cache", "{reason}");
        assert_eq!(answer["answer"]["ok"]["reason"], reason);
        assert_eq!(answer["refreshed"], true);
    }
    let status = parsed(&e.status(KEY.into(), SECRET, s.record(&e), s.ledger(&e), NOW + 600.0));
    assert_eq!(status["ok"]["denied"], Value::Null);
    assert_eq!(status["ok"]["verifiedAt"], NOW as i64);
}

/// Which write the file store may leave revertible or volatile, as natively
/// (the core's `cached_writes`): a cached answer's ledger once the slot has a trusted ledger,
/// then its clock note; a cached answer less than a minute past the record's clock writes the
/// note alone; a verdict's writes are all durable.
#[wasm_bindgen_test]
fn only_a_cached_answers_ledger_may_revert_and_its_clock_note_is_volatile() {
    let e = engine(json!({}));
    let mut s = Storage::default();
    let online = check(&e, &mut s, NOW, ok(200, &license(false)));
    assert_eq!(online["asked"], true);
    assert_eq!(online["answer"]["ok"]["source"], "online");
    assert_eq!(
        online["answer"]["ok"]["userMessage"],
        polar_license::message::LICENSED,
        "{online}"
    );
    assert!(s.keeps.iter().all(|k| k == "durable"), "{:?}", s.keeps);
    for (at, names, keeps) in [
        (
            NOW + 60.0,
            vec![e.slot(KEY), e.ledger(KEY), e.clock(KEY)],
            vec!["durable", "revertible", "volatile"],
        ),
        (NOW + 61.0, vec![e.clock(KEY)], vec!["volatile"]),
        (NOW + 119.0, vec![e.clock(KEY)], vec!["volatile"]),
        (
            NOW + 120.0,
            vec![e.slot(KEY), e.ledger(KEY), e.clock(KEY)],
            vec!["durable", "revertible", "volatile"],
        ),
    ] {
        s.names.clear();
        s.keeps.clear();
        let cached = check(&e, &mut s, at, failed(1, "unused"));
        assert_eq!(cached["asked"], false);
        assert_eq!(cached["answer"]["ok"]["source"], "cache");
        assert_eq!(s.names, names, "at +{}", at - NOW);
        assert_eq!(s.keeps, keeps, "at +{}", at - NOW);
    }
}

#[wasm_bindgen_test]
fn a_held_clock_stops_the_cache_after_32_answers() {
    let e = engine(json!({}));
    let mut s = Storage::default();
    check(&e, &mut s, NOW, ok(200, &license(false)));
    let held = NOW + 1800.0;
    for i in 0..=32 {
        let answer = check(&e, &mut s, held, failed(1, "unused"));
        assert_eq!(answer["asked"], false, "answer {i}");
        assert_eq!(answer["answer"]["ok"]["source"], "cache");
    }
    let stalled = check(&e, &mut s, held, failed(1, "refused"));
    assert_eq!(stalled["asked"], true);
    assert_eq!(stalled["answer"]["error"]["code"], "clock_rollback");
    let moved = check(&e, &mut s, held + 1.0, failed(1, "unused"));
    assert_eq!(moved["answer"]["ok"]["source"], "cache");
}

#[wasm_bindgen_test]
fn a_check_asked_elsewhere_answers_from_the_cache_and_finishes_on_the_record_as_it_is() {
    let e = engine(json!({ "gracePolicy": { "revalidateAfter": 0 } }));
    let mut s = Storage::default();
    check(&e, &mut s, NOW, ok(200, &license(false)));
    let before = s.map.clone();
    // Another check of the key is asking: the cache answers at once, recorded.
    let elsewhere = Host {
        marked_elsewhere: true,
        ..Host::default()
    };
    let options = json!({ "secret": SECRET, "now": NOW + 5.0, "at": at() });
    let asked = drive(
        &e,
        &mut s,
        &elsewhere,
        options.clone(),
        &failed(1, "unused"),
    );
    assert_eq!(asked["answer"]["ok"]["source"], "cache", "{asked}");
    assert_eq!(asked["asked"], false);
    assert_eq!(asked["write"], json!([e.slot(KEY), e.ledger(KEY)]));
    // With no cache to answer from, ask as well.
    let mut empty = Storage::default();
    let none = drive(
        &e,
        &mut empty,
        &elsewhere,
        options.clone(),
        &failed(1, "refused"),
    );
    assert_eq!(none["asked"], true);
    assert_eq!(none["answer"]["error"]["code"], "offline");
    // Phase 3 folds the answer into the record as it is now (written while Polar was asked,
    // by the check above): the next number, so the ledger moves on.
    let written = Host {
        meanwhile: Some(s.map.clone()),
        ..Host::default()
    };
    s.map = before;
    let end = drive(&e, &mut s, &written, options, &ok(200, &license(false)));
    assert_eq!(end["asked"], true);
    assert_eq!(end["answer"]["ok"]["source"], "online");
    let mac = native_mac(PRODUCTION_URL);
    let seq = cache::decode_ledger(s.ledger(&e).unwrap().as_bytes(), &mac).unwrap();
    assert_eq!(seq, 3);
    let status = parsed(&e.status(KEY.into(), SECRET, s.record(&e), s.ledger(&e), NOW + 5.0));
    assert_eq!(status["ok"]["state"], "present");
}

/// A validate, activate or deactivate of `KEY` (`op`, the call's `options`) at `now` over `s`.
fn update(e: &Engine, s: &mut Storage, op: &str, options: &str, now: f64, reply: &Reply) -> Value {
    let run = json!({ "op": op, "options": options, "secret": SECRET, "now": now });
    drive(e, s, &Host::default(), run, reply)
}

#[wasm_bindgen_test]
fn an_activation_is_a_verdict_and_later_checks_validate_it() {
    let e = engine(json!({ "machineId": "electron-machine" }));
    let options = r#"{"label":"laptop","conditions":{"seat":1}}"#;
    let mut read = license(true)["activation"].clone();
    let mut key = license(false);
    key.as_object_mut().unwrap().remove("activation");
    read["license_key"] = key;
    let mut s = Storage::default();
    let answer = update(&e, &mut s, "activate", options, NOW, &ok(201, &read));
    let body = answer["sent"].as_str().unwrap();
    assert!(body.contains("\"machine_fingerprint\""), "{body}");
    assert!(answer["url"].as_str().unwrap().ends_with("/activate"));
    assert_eq!(
        answer["answer"]["error"]["code"], "protocol_error",
        "activate answers 200, not 201"
    );
    assert_eq!(answer.get("write"), None);
    let answer = update(&e, &mut s, "activate", options, NOW, &ok(200, &read));
    assert_eq!(answer["answer"]["ok"]["activation"]["id"], ACTIVATION);
    assert_eq!(answer["cacheError"], Value::Null);
    assert_eq!(answer["write"], json!([e.ledger(KEY), e.slot(KEY)]));

    // Right after it, a check answers from the cache (no request), with the activation.
    let options = json!({ "secret": SECRET, "now": NOW + 1.0, "at": at() });
    let begin = drive(
        &e,
        &mut s.clone(),
        &Host::default(),
        options.clone(),
        &failed(1, "unused"),
    );
    assert_eq!(begin["asked"], false);
    assert_eq!(begin["answer"]["ok"]["source"], "cache");
    assert_eq!(begin["answer"]["ok"]["activation"]["id"], ACTIVATION);
    // The request it sends when its answer cannot be recorded validates the activation with
    // the conditions it was made with.
    let full = Host {
        writes_fail: true,
        ..Host::default()
    };
    let begin = drive(&e, &mut s.clone(), &full, options, &failed(1, "refused"));
    assert_eq!(begin["answer"]["ok"]["reason"], "offline", "{begin}");
    // Licensed from the cache while Polar is unreachable: the core's words, with the grace
    // left as the answer gives it (issue #80: the gate worded the grace itself).
    let grace = begin["answer"]["ok"]["graceRemaining"]
        .as_u64()
        .unwrap_or(0);
    assert!(grace > 0, "{begin}");
    assert_eq!(
        begin["answer"]["ok"]["userMessage"],
        polar_license::message::licensed_offline(grace).text(),
        "{begin}"
    );
    let body = begin["sent"].as_str().unwrap();
    assert!(body.contains(ACTIVATION), "{body}");
    assert!(body.contains("\"seat\":1"), "{body}");
    let status = parsed(&e.status(KEY.into(), SECRET, s.record(&e), s.ledger(&e), NOW));
    assert_eq!(status["ok"]["activation"]["id"], ACTIVATION);

    // A deactivation frees the remembered activation, and the remembered key goes with it.
    let gone = update(&e, &mut s, "deactivate", "", NOW, &raw(204, ""));
    assert!(
        gone["sent"].as_str().unwrap().contains(ACTIVATION),
        "{gone}"
    );
    assert_eq!(gone["answer"]["ok"]["activationId"], ACTIVATION, "{gone}");
    // The core's words for the freed seat (issue #80: the gate kept its own).
    assert_eq!(
        gone["answer"]["ok"]["userMessage"],
        polar_license::message::DEACTIVATED.text(),
        "{gone}"
    );
    assert_eq!(gone["forgetKey"], true);
    let none = update(&e, &mut s, "deactivate", "", NOW, &failed(1, "unused"));
    assert_eq!(none["asked"], false);
    assert_eq!(none["answer"]["error"]["field"], "activation_id", "{none}");
}

#[wasm_bindgen_test]
fn a_deactivation_that_cannot_tell_the_record_fails_and_keeps_the_key() {
    let e = engine(json!({}));
    let mut s = Storage::default();
    let mut read = license(true)["activation"].clone();
    read["license_key"] = license(false);
    update(&e, &mut s, "activate", "", NOW, &ok(200, &read));
    let full = Host {
        writes_fail: true,
        ..Host::default()
    };
    let run = json!({ "op": "deactivate", "secret": SECRET, "now": NOW });
    let end = drive(&e, &mut s.clone(), &full, run, &raw(204, ""));
    assert_eq!(end["asked"], true);
    assert_eq!(end["answer"]["error"]["code"], "cache_error", "{end}");
    assert_eq!(end["forgetKey"], Value::Null);
    // Another activation than the remembered one: freed, the remembered key stays.
    let other = r#"{"activationId":"6b1f4b7e-3c2d-4e5f-8a9b-0c1d2e3f4a5b"}"#;
    let end = update(&e, &mut s, "deactivate", other, NOW, &raw(204, ""));
    assert_eq!(
        end["answer"]["ok"]["activationId"],
        "6b1f4b7e-3c2d-4e5f-8a9b-0c1d2e3f4a5b"
    );
    assert_eq!(end["forgetKey"], Value::Null);
}

#[wasm_bindgen_test]
fn a_plain_validate_binds_this_machine_and_updates_the_record() {
    let e = engine(json!({ "machineId": "electron-machine" }));
    let options = format!(r#"{{"activationId":"{ACTIVATION}","conditions":{{"machine":"abc"}}}}"#);
    let mut s = Storage::default();
    let first = update(&e, &mut s, "validate", &options, NOW, &failed(1, "refused"));
    let body = first["sent"].as_str().unwrap();
    assert!(body.contains("\"machine_fingerprint\""), "{body}");
    assert!(body.contains("\"machine\":\"abc\""), "{body}");
    assert_eq!(first["answer"]["error"]["code"], "offline");

    check(&e, &mut s, NOW, ok(200, &license(false)));
    // A revocation seen by validate is a tombstone: the next check asks, never the cache.
    let revoked = raw(
        404,
        r#"{"error":"ResourceNotFound","detail":"License key is no longer active."}"#,
    );
    // A tombstone that cannot be written removes the record (no old grant left behind).
    let full = Host {
        writes_fail: true,
        ..Host::default()
    };
    let run = json!({ "op": "validate", "secret": SECRET, "now": NOW + 10.0 });
    let unwritten = drive(&e, &mut s.clone(), &full, run, &revoked);
    assert_eq!(unwritten["answer"]["error"]["code"], "inactive");
    assert_eq!(unwritten["removed"], json!([e.slot(KEY)]), "{unwritten}");
    let end = update(&e, &mut s, "validate", "", NOW + 10.0, &revoked);
    assert_eq!(end["answer"]["error"]["code"], "inactive");
    assert_eq!(end["write"], json!([e.slot(KEY), e.ledger(KEY)]), "{end}");
    let next = check(&e, &mut s, NOW + 20.0, failed(1, "refused"));
    assert_eq!(next["asked"], true);
    assert_eq!(next["answer"]["error"]["code"], "offline");
    // Without the storage (no secret), the answer alone.
    let run = json!({ "op": "validate", "cache": "no storage", "now": NOW });
    let alone = drive(&e, &mut s, &Host::default(), run, &ok(200, &license(false)));
    assert_eq!(alone["answer"]["ok"]["license"]["key"], KEY);
    assert_eq!(alone.get("write"), None);
    // Options the core refuses (their names and types are license.js's to check, before the
    // engine: tests/js/load.test.mjs): the answer at once, nothing asked.
    let bad = update(
        &e,
        &mut s,
        "validate",
        r#"{"incrementUsage":-1}"#,
        NOW,
        &failed(1, "unused"),
    );
    assert_eq!(bad["answer"]["error"]["code"], "invalid_input", "{bad}");
    assert_eq!(bad["asked"], false);
}

#[wasm_bindgen_test]
fn require_activation_refuses_with_no_request() {
    let e = engine(json!({ "requireActivation": true }));
    let mut s = Storage::default();
    // Even over a bare-key verdict the storage holds.
    let bare = engine(json!({}));
    check(&bare, &mut s, NOW, ok(200, &license(false)));
    let begin = check(&e, &mut s, NOW, failed(1, "unused"));
    assert_eq!(begin["asked"], false);
    assert_eq!(begin["answer"]["error"]["field"], "activation_id");
    // Without the storage: the storage's failure, still no request.
    let options = json!({ "cache": "disk gone", "now": NOW });
    let begin = drive(&e, &mut s, &Host::default(), options, &failed(1, "unused"));
    assert_eq!(begin["asked"], false);
    assert_eq!(begin["answer"]["error"]["code"], "cache_error");
}

#[wasm_bindgen_test]
fn stored_names_hold_no_key() {
    let mut s = Storage::default();
    let e = engine(json!({}));
    check(&e, &mut s, NOW, ok(200, &license(false)));
    let names: HashMap<_, _> = s.map.iter().collect();
    assert_eq!(names.len(), 2);
    for (name, text) in names {
        assert!(!name.contains(KEY) && !text.contains(KEY), "{name}");
    }
}

// ---- The `reasonTable` export --------------------------------------------------------------

#[wasm_bindgen_test]
fn the_js_reason_table_is_the_rust_one() {
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&crate::bindings::reason_table()).unwrap();
    assert_eq!(rows.len(), polar_license::Reason::ALL.len());
    for (row, reason) in rows.iter().zip(polar_license::Reason::ALL) {
        assert_eq!(row["code"], reason.code());
        assert_eq!(row["kind"], reason.class().as_str());
        assert_eq!(row["number"], reason.number());
        // The words a JS face shows are the core's (issue #80), as the C and Python faces'.
        assert_eq!(row["sentence"], reason.user_message());
        assert_eq!(row["nextStep"], reason.next_step());
        assert_eq!(row["userMessage"], reason.message().text());
    }
}

/// A denial's error says whether the customer portal is the next step's place and whether a
/// stopped key may license again, as the core decides (issue #80: the gate kept its own sets).
#[wasm_bindgen_test]
fn a_denials_portal_and_again_are_the_cores() {
    use polar_license::stopped::{StopKind, Stopped};
    use polar_license::{Denial, Reason};
    for reason in Reason::ALL {
        for kind in std::iter::once(None).chain(StopKind::ALL.map(Some)) {
            let d = Denial {
                reason,
                detail: "Polar's detail".into(),
                status: 404,
                remaining_usages: None,
                previously_valid: false,
                activation_gone: false,
                stopped: kind.map(|kind| Stopped {
                    kind,
                    at: None,
                    until: None,
                }),
            };
            let v = parsed(&crate::engine::denial_json(&d));
            let e = &v["error"];
            let portal = if d.offers_portal() {
                json!(true)
            } else {
                Value::Null
            };
            assert_eq!(e["portal"], portal, "{reason:?} {kind:?}");
            match kind {
                Some(kind) => assert_eq!(e["stopped"]["again"], kind.comes_back()),
                None => assert_eq!(e["stopped"], Value::Null),
            }
        }
    }
}

// ---- signed mode: the host verifies the signatures (issue #38) -------------------------------

/// `engine.call(op, args)` as `license.js` makes it; `None` args are `undefined`.
fn call(e: &Engine, op: &str, args: &[Arg]) -> Value {
    let array = js_sys::Array::new();
    for a in args {
        array.push(&match a {
            Arg::S(s) => JsValue::from_str(s),
            Arg::N(n) => JsValue::from_f64(*n),
        });
    }
    let text = e.call(op, array).unwrap_or_default();
    if text.is_empty() {
        Value::Null
    } else {
        parsed(&text)
    }
}

enum Arg {
    S(String),
    N(f64),
}

/// A string argument.
fn t(text: &str) -> Arg {
    Arg::S(text.to_string())
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// What the host answers for each signature `step` asks about: the core's own Ed25519, or
/// `lie` for every one. The ids and answers, as `license.js` hands them to `verified`.
fn answers(step: &Value, lie: bool) -> Vec<Arg> {
    use polar_license::lease::{Builtin, Checked, Ed25519};
    let mut out = Vec::new();
    for ask in step["verify"].as_array().unwrap() {
        let field = |i: usize| unhex(ask[i].as_str().unwrap());
        let key: [u8; 32] = field(1).try_into().unwrap();
        let signature: [u8; 64] = field(3).try_into().unwrap();
        let valid = lie || Builtin.verify(&key, &field(2), &signature) == Checked::Valid;
        out.push(t(ask[0].as_str().unwrap()));
        out.push(Arg::N(if valid { 1.0 } else { 0.0 }));
    }
    out
}

const FIXTURE: &str = include_str!("../../../../tests/vectors/lease-relay.json");
const MACHINE: &str = "electron-machine";

/// The fixture's relay key (`relay-2026`), and a lease of it for `KEY`'s activation at `NOW`
/// bound to this engine's machine (`key` names the key the claims are about).
fn signed_lease(signer: &polar_license::lease::SigningKey, key: &str) -> String {
    use polar_license::lease::{key_hash, LeaseClaims};
    let claims = LeaseClaims {
        organization_id: ORG.into(),
        key_sha256: key_hash(&polar_license::key::Key::new(key.to_string())),
        activation_id: Some(ACTIVATION.into()),
        status: "granted".into(),
        license_expires_at: None,
        subscription_ends_at: None,
        benefit_id: "5d3c2b1a-9e8f-4a7b-8c6d-1e2f3a4b5c6d".into(),
        usage: 0,
        limit_usage: None,
        limit_activations: Some(3),
        issued_at: NOW as i64,
        not_before: NOW as i64,
        expires_at: NOW as i64 + 3 * 86_400,
        id: "6a1f4b7e-3c2d-4e5f-8a9b-0c1d2e3f4a5b".into(),
        nonce: None,
        entitlements: None,
    };
    let machine = polar_license::fingerprint::fingerprint_from(MACHINE, ORG);
    signer.sign(&claims, Some(&machine)).unwrap()
}

fn relay_key() -> polar_license::lease::SigningKey {
    let fixture: Value = serde_json::from_str(FIXTURE).unwrap();
    polar_license::lease::SigningKey::from_file_text(fixture["signing_key"].as_str().unwrap())
        .unwrap()
}

#[wasm_bindgen_test]
fn signed_mode_asks_the_host_to_verify_then_takes_the_answer_again() {
    let signer = relay_key();
    let e = engine(json!({ "machineId": MACHINE, "relayKeys": signer.public_pair() }));
    let options = r#"{"label":"laptop"}"#;
    let mut read = license(true)["activation"].clone();
    let mut key = license(false);
    key.as_object_mut().unwrap().remove("activation");
    read["license_key"] = key;
    let mut s = Storage::default();
    let lease = signed_lease(&signer, KEY);
    let now = json!({ "secret": SECRET, "now": NOW });
    let start = parsed(&e.start("activate", KEY.into(), &now.to_string(), options));
    let id = start["id"].as_str().unwrap().to_string();
    let give = |given: Value, body: Vec<u8>| parsed(&e.give(&id, &given.to_string(), body));
    // The activate machine reads the key's slot before it sends (issue #63 item 5: what it
    // replaces), here empty; then it sends.
    assert!(start.get("read").is_some(), "{start}");
    let sends = give(json!({ "read": [null, null, null] }), Vec::new());
    assert!(sends.get("send").is_some(), "{sends}");
    let response =
        json!({ "response": { "status": 200, "headers": [["polar-license-lease", lease]] } });

    // The machine asks first: one signature, nothing written, no answer.
    let first = give(response, read.to_string().into_bytes());
    assert_eq!(first["verify"].as_array().unwrap().len(), 1, "{first}");
    // An answer for an id it never asked is not taken: it asks again.
    call(&e, "verified", &[t(&"ab".repeat(32)), Arg::N(1.0)]);
    let again = give(json!({ "verified": true }), Vec::new());
    assert!(again.get("verify").is_some(), "{again}");
    // The host's answer, then the answer it kept taken again: the activation, with its lease.
    call(&e, "verified", &answers(&first, false));
    let next = give(json!({ "verified": true }), Vec::new());
    assert_eq!(next["lock"], e.slot(KEY), "{next}");
    let done = run(
        &e,
        &id,
        next,
        &mut s,
        &Host::default(),
        &failed(1, "unused"),
    );
    assert_eq!(
        done["answer"]["ok"]["activation"]["id"], ACTIVATION,
        "{done}"
    );
    assert_eq!(done["answer"]["ok"]["lease"]["kid"], "relay-2026", "{done}");
    assert_eq!(done["write"], json!([e.ledger(KEY), e.slot(KEY)]));

    // A cached check on this engine: the answer is known, nothing is asked.
    let checked = |e: &Engine, s: &Storage, host: &Host| {
        let options = json!({ "secret": SECRET, "now": NOW + 60.0, "at": at() });
        drive(e, &mut s.clone(), host, options, &failed(1, "refused"))
    };
    let cached = checked(&e, &s, &Host::default());
    assert_eq!(cached["answer"]["ok"]["source"], "cache", "{cached}");
    assert_eq!(cached["answer"]["ok"]["lease"]["kid"], "relay-2026");
    assert_eq!(cached["verified"], 0);

    // A new launch (a new engine) asks again for the stored lease. Told it does not verify,
    // the cache does not license: the check asks Polar (offline here: no answer).
    let fresh = engine(json!({ "machineId": MACHINE, "relayKeys": signer.public_pair() }));
    let refuses = Host {
        verifies: Some(Box::new(|want: &Value| {
            let mut no = answers(want, false);
            no[1] = Arg::N(0.0);
            no
        })),
        ..Host::default()
    };
    let refused = checked(&fresh, &s, &refuses);
    assert_eq!(refused["verified"], 1, "{refused}");
    assert_eq!(refused["asked"], true, "{refused}");
    assert_eq!(refused["answer"]["error"]["code"], "offline", "{refused}");
    // Told it verifies (another launch), the cache licenses within the lease.
    let again = engine(json!({ "machineId": MACHINE, "relayKeys": signer.public_pair() }));
    let verifies = Host {
        verifies: Some(Box::new(|want: &Value| answers(want, false))),
        ..Host::default()
    };
    let cached = checked(&again, &s, &verifies);
    assert_eq!(cached["verified"], 1, "{cached}");
    assert_eq!(cached["answer"]["ok"]["source"], "cache", "{cached}");
    assert_eq!(cached["answer"]["ok"]["lease"]["kid"], "relay-2026");

    // An engine without relay keys never asks, whatever is stored.
    let unsigned = engine(json!({ "machineId": MACHINE }));
    assert_eq!(checked(&unsigned, &s, &Host::default())["verified"], 0);
}

#[wasm_bindgen_test]
fn a_host_that_lies_about_signatures_cannot_make_a_lease_for_another_key_count() {
    let signer = relay_key();
    let e = engine(json!({ "machineId": MACHINE, "relayKeys": signer.public_pair() }));
    let mut read = license(true)["activation"].clone();
    let mut key = license(false);
    key.as_object_mut().unwrap().remove("activation");
    read["license_key"] = key;
    // A lease about another key, its signature garbled: the host says it verifies.
    let mut lease = signed_lease(&signer, "ANOTHER-KEY");
    let at = lease.rfind('.').unwrap() - 2;
    lease.replace_range(
        at..at + 1,
        if &lease[at..at + 1] == "A" { "B" } else { "A" },
    );
    let liar = Host {
        verifies: Some(Box::new(|want: &Value| answers(want, true))),
        ..Host::default()
    };
    let run = json!({ "op": "activate", "options": r#"{"label":"laptop"}"#, "secret": SECRET, "now": NOW });
    let reply = Reply {
        lease: Some(lease),
        ..ok(200, &read)
    };
    let done = drive(&e, &mut Storage::default(), &liar, run, &reply);
    assert_eq!(done["verified"], 1, "{done}");
    assert_eq!(done["answer"]["error"]["code"], "protocol_error", "{done}");
    assert!(
        done["answer"]["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("(mismatch)"),
        "{done}"
    );
}

// ---- The check as the core's machine (issue #44) -------------------------------------------

#[wasm_bindgen_test]
fn a_relays_word_on_its_answer_is_the_checks_relay_source() {
    let e = engine(json!({}));
    let from = |source: &str| Reply {
        source: Some(source.into()),
        ..ok(200, &license(false))
    };
    let mut s = Storage::default();
    let stored = check(&e, &mut s, NOW, from("store"));
    assert_eq!(stored["answer"]["ok"]["source"], "online", "{stored}");
    assert_eq!(stored["relaySource"], "store");
    // The cache's own answer is no relay's.
    let cached = check(&e, &mut s, NOW + 60.0, failed(1, "unused"));
    assert_eq!(cached["answer"]["ok"]["source"], "cache");
    assert_eq!(cached["relaySource"], Value::Null);
    let stale = check(&e, &mut Storage::default(), NOW, from("stale"));
    assert_eq!(stale["relaySource"], "stale");
    // Polar's own answer, with no relay: none.
    let direct = check(&e, &mut Storage::default(), NOW, ok(200, &license(false)));
    assert_eq!(direct["relaySource"], Value::Null);
}

#[wasm_bindgen_test]
fn a_check_in_the_background_answers_before_it_asks() {
    let e = engine(json!({ "gracePolicy": { "revalidateAfter": 0 } }));
    let mut s = Storage::default();
    check(&e, &mut s, NOW, ok(200, &license(false)));
    let options = json!({ "secret": SECRET, "now": NOW + 5.0, "at": at(), "background": true });
    let fresh = drive(
        &e,
        &mut s,
        &Host::default(),
        options,
        &ok(200, &license(false)),
    );
    assert_eq!(fresh["pending"]["ok"]["source"], "cache", "{fresh}");
    assert_eq!(fresh["asked"], true);
    assert_eq!(fresh["answer"]["ok"]["source"], "online");
    // Not in the background: nothing pending.
    let options = json!({ "secret": SECRET, "now": NOW + 10.0, "at": at() });
    let plain = drive(
        &e,
        &mut s,
        &Host::default(),
        options,
        &ok(200, &license(false)),
    );
    assert_eq!(plain["asked"], true);
    assert_eq!(plain["pending"], Value::Null);
}

#[wasm_bindgen_test]
fn a_check_that_is_not_running_ends_unverified() {
    let e = engine(json!({}));
    let gone = parsed(&e.want("7"));
    assert_eq!(gone["done"]["error"]["code"], "cache_error", "{gone}");
    assert_eq!(gone["refreshed"], false);
}
