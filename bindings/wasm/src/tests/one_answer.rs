//! One answer, one verdict, through the real engine (issue #28): the generated answers of
//! `polar_license_testkit::answers` (the seeds and the generator `tests/one_answer.rs` holds the
//! two paths of the core to natively) classified by the native typed parser
//! (`proto::parse_*_for`) and by the engine's validate, activate and deactivate machines driven
//! exactly as `license.js` drives them (the `date`, `retry-after` and `age` headers as `fetch`
//! joins them, a storage so that every operation also writes its record), in one wasm process,
//! in node and in headless Chromium (scripts/test-wasm.sh).
//!
//! Compared through faces.rs's helpers: the outcome, its reason code, HTTP status,
//! `retry-after`, remaining usages, Polar's detail, and for a grant the license and activation
//! the engine hands to JS, numbers by value (the engine writes a float as the JS host does,
//! `1` for `1.0`, and JS reads every number as an `f64`), plus what it writes to storage: the
//! ledger and the record the native face makes of its own verdict (`testing::validated`,
//! `activated`, `deactivated`, then `testing::seal` into the same slot), the record's body
//! numbers by value, and one the native face opens with its typed model and seals again to
//! the same bytes (but for how a number is written).

use super::engine::{operate, Reply, Storage};
use super::faces::{self, engine, engine_json, native_json, SECRET};
use crate::engine::Engine;
use polar_license::cache;
use polar_license::grace::LicenseData;
use polar_license::proto::{self, Expect, Operation, PRODUCTION_URL};
use polar_license::testing::{self, Opened, Slot};
use polar_license::wasm::STORAGE_PREFIX;
use polar_license::{Error, GracePolicy, Key, ValidatedLicenseKey, Verdict};
use polar_license_testkit::answers::{
    cases, Case, ACTIVATION, BENEFIT, CUSTOMER, KEY, LABEL, NOW, ORG,
};
use serde_json::{json, Value};
use wasm_bindgen_test::{console_log, wasm_bindgen_test};

/// The seeds `tests/one_answer.rs` reads natively.
const SEEDS: [u64; 4] = [1, 2, 0x5eed, 28];
/// Cases per seed: 6,000 in all.
const PER_SEED: usize = 1_500;

/// `grant`, `denial` or `error`, of a native result.
fn kind<T>(r: &Result<Verdict<T>, Error>) -> &'static str {
    match r {
        Ok(Verdict::Accepted(_)) => "grant",
        Ok(Verdict::Denied(_)) => "denial",
        Err(_) => "error",
    }
}

/// Numbers by value, as JS reads them: every number the `f64` it is (`1.0` and `1`,
/// `9.223372036854776e18` and `9223372036854775808` are one number to `JSON.parse`, and the
/// engine's answers are read by `JSON.parse`).
fn by_value(v: &mut Value) {
    match v {
        Value::Number(n) => {
            if let Some(x) = n.as_f64().and_then(serde_json::Number::from_f64) {
                *n = x;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(by_value),
        Value::Object(members) => members.values_mut().for_each(by_value),
        _ => {}
    }
}

/// An answer reduced to what must agree: numbers by value, and a malformed 200's detail (when
/// the strict reader read its body, each parser names the fault in its own words) cut to its
/// first part, `malformed validate response`.
fn reduced(case: &Case, mut v: Value) -> Value {
    by_value(&mut v);
    let read = case.status == 200 && polar_license::strict::parse(&case.body).is_ok();
    if let Some(d) = v["error"]["detail"].as_str() {
        if read && d.starts_with("malformed ") {
            let first = d.split(':').next().unwrap_or_default().to_string();
            v["error"]["detail"] = json!(first);
        }
    }
    v
}

/// The body line of a sealed record, as JSON with numbers by value.
fn record_body(text: &str) -> Value {
    let mut v = text
        .lines()
        .nth(1)
        .and_then(|line| serde_json::from_str(line).ok())
        .unwrap_or(Value::Null);
    by_value(&mut v);
    v
}

/// The slot the engine writes `KEY`'s record in (production, faces.rs's install secret, no
/// machine seal, no app secret).
fn slot() -> Slot {
    let secret = cache::install_secret_from_hex(SECRET).unwrap_or_default();
    Slot::new(PRODUCTION_URL, ORG, &Key::new(KEY), &secret, None, None)
}

/// What the native face writes for the record `session` makes of its own verdict, sealed as
/// the engine seals (`testing::seal` into the engine's slot): `[(name, text)]`.
fn native_writes<L: LicenseData>(
    record: Option<polar_license::Record<L>>,
) -> Vec<(String, String)> {
    let Some(record) = record else {
        return Vec::new();
    };
    testing::seal(&Opened::default(), record, &slot())
        .into_iter()
        .map(|(name, bytes)| {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            ([STORAGE_PREFIX, &name].concat(), text)
        })
        .collect()
}

/// The engine step's writes against the native face's: the same slots in the same order, the
/// ledger byte for byte, the record with the same body (numbers by value: the engine writes a
/// float as JS does), and one the native face opens and seals again alike.
fn record_check(step: &str, native: Vec<(String, String)>) -> Option<String> {
    let slot = slot();
    let step: Value = serde_json::from_str(step).unwrap_or_default();
    let engine: Vec<(String, String)> = step["write"]
        .as_array()
        .map(|writes| {
            writes
                .iter()
                .map(|w| {
                    let text = |i: usize| w[i].as_str().unwrap_or_default().to_string();
                    (text(0), text(1))
                })
                .collect()
        })
        .unwrap_or_default();
    let names = |w: &[(String, String)]| w.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    if names(&engine) != names(&native) {
        return Some(format!(
            "the engine writes {engine:?}\nthe native face {native:?}"
        ));
    }
    for ((name, text), (_, want)) in engine.iter().zip(&native) {
        if *name != [STORAGE_PREFIX, &slot.name].concat() {
            if text != want {
                return Some(format!(
                    "{name}: the engine writes {text:?}, natively {want:?}"
                ));
            }
            continue;
        }
        let Ok(record) = cache::decode(text.as_bytes(), &slot.mac) else {
            return Some(format!(
                "the native face does not open the engine's record {text:?}"
            ));
        };
        // Sealed again by the native face: the same bytes, but for how a number is written
        // (the engine writes a float as JS does: `1` for `1.0`, `9223372036854776000` for
        // 2^63, which the native face reads back as the same number and writes its own way).
        let again = String::from_utf8(cache::encode(&record, &slot.mac)).unwrap_or_default();
        if again != *text && record_body(&again) != record_body(text) {
            return Some(format!("sealed again differently:\n{text}\n{again}"));
        }
        let (engine, native) = (record_body(text), record_body(want));
        if engine != native {
            return Some(format!(
                "the engine keeps\n{engine}\nthe native face\n{native}"
            ));
        }
    }
    None
}

/// One case through both faces: `(kind, native answer, engine answer, record problem)`.
fn both(e: &Engine, case: &Case) -> (&'static str, Value, Value, Option<String>) {
    let resp = case.response();
    let date = case.combined("date");
    let retry = case.combined("retry-after");
    let age = case.combined("age");
    let reply = Reply {
        status: case.status,
        body: case.body.clone(),
        date,
        retry_after: retry,
        age,
        ..Reply::default()
    };
    let mut s = Storage::default();
    let now = NOW as f64;
    let policy = GracePolicy::default();
    let (kind, native, step, record) = match case.op {
        Operation::Validate => {
            let req = case.validate_request();
            let options = if case.activation_asked {
                json!({ "activationId": ACTIVATION, "benefitId": BENEFIT, "customerId": CUSTOMER })
            } else {
                json!({})
            };
            let expect = Expect::validate(ORG, &req, NOW).unwrap();
            let r = proto::parse_validate_for(&resp, &expect);
            let mut online = r.clone().map(|v| (v, resp.stamp()));
            let record = native_writes(testing::validated(
                &Opened::default(),
                ORG,
                &req,
                None,
                NOW,
                &policy,
                &mut online,
            ));
            let native = native_json(r.clone(), faces::validated_json);
            let op = ("validate", KEY, &*options.to_string());
            let step = operate(e, Some(&mut s), op, now, &reply);
            (kind(&r), native, step, record)
        }
        Operation::Activate => {
            let req = case.activate_request();
            let expect = Expect::activate(ORG, &req, NOW).unwrap();
            let r = proto::parse_activate_for(&resp, &expect);
            let mut online = r.clone().map(|v| (v, resp.stamp()));
            let record = native_writes(testing::activated(
                &Opened::default(),
                ORG,
                &req,
                &Key::new(KEY),
                NOW,
                &policy,
                &mut online,
            ));
            let native = native_json(r.clone(), faces::activated_json);
            let op = ("activate", KEY, &*json!({ "label": LABEL }).to_string());
            let step = operate(e, Some(&mut s), op, now, &reply);
            (kind(&r), native, step, record)
        }
        Operation::Deactivate => {
            let r = proto::parse_deactivate_for(&resp, Some(&Key::new(KEY)));
            let record = native_writes(r.as_ref().ok().and_then(|v| {
                testing::deactivated::<ValidatedLicenseKey>(
                    &Opened::default(),
                    ORG,
                    &Key::new(KEY),
                    NOW,
                    ACTIVATION,
                    v,
                )
            }));
            let native = native_json(r.clone(), |()| json!({ "activationId": ACTIVATION }));
            let options = json!({ "activationId": ACTIVATION }).to_string();
            let step = operate(e, Some(&mut s), ("deactivate", KEY, &options), now, &reply);
            (kind(&r), native, step, record)
        }
    };
    let record = record_check(&step, record);
    (
        kind,
        reduced(case, native),
        reduced(case, engine_json(&step)),
        record,
    )
}

/// Whether this runs in a browser (headless Chromium) rather than node.
fn in_browser() -> bool {
    js_sys::Reflect::has(&js_sys::global(), &"document".into()).unwrap_or(false)
}

#[wasm_bindgen_test]
fn every_answer_gets_one_verdict_in_the_engine() {
    assert_eq!((faces::ORG, faces::KEY, faces::NOW), (ORG, KEY, NOW));
    let e = engine();
    let started = js_sys::Date::now();
    let (mut n, mut grants, mut denials, mut errors, mut disagreeing) = (0, 0, 0, 0, 0);
    for seed in SEEDS {
        for case in cases(seed).take(PER_SEED) {
            let (kind, native, engine, record) = both(&e, &case);
            n += 1;
            if native != engine || record.is_some() {
                disagreeing += 1;
                if disagreeing <= 20 {
                    console_log!(
                        "DISAGREEMENT on {case}\n native: {native}\n engine: {engine}\n record: {}\n",
                        record.as_deref().unwrap_or("as natively")
                    );
                }
                continue;
            }
            match kind {
                "grant" => grants += 1,
                "denial" => denials += 1,
                _ => errors += 1,
            }
        }
    }
    let host = if in_browser() { "browser" } else { "node" };
    let tally = format!(
        "one answer: {n} cases, {grants} grants, {denials} denials, {errors} errors, \
         {disagreeing} disagreements ({host}, {:.1} s)",
        (js_sys::Date::now() - started) / 1000.0
    );
    console_log!("{tally}");
    assert_eq!(disagreeing, 0, "{tally}: the cases are printed above");
    assert!(n >= 5_000 && grants > 300 && denials > 50, "{tally}");
}
