//! The input validators: `Api::validate_request`, `activate_request` and `deactivate_request`
//! (and `proto::check_base_url`) with arbitrary keys, ids, usage increments, labels, tokens
//! and metadata. They must never panic; what they accept must be what Polar accepts
//! (docs/polar-api.md §3, checked here independently) and must serialize to JSON that
//! round-trips: the body parses, carries exactly the fields given, in canonical form.

use arbitrary::Arbitrary;
use polar_license::proto::check_base_url;
use polar_license::{
    AccessToken, ActivateRequest, Api, DeactivateRequest, HttpRequest, Key, MetaValue, Metadata,
    Reason, Server, ValidateRequest,
};
use serde_json::Value;

const ORG: &str = "d2fcbff8-108b-411e-bf2b-6383e0a8802d";
const ACTIVATION: &str = "21bf892b-2e46-4f50-8060-8fdaf02aa482";

/// An id: a valid v4 in some spelling, or anything.
#[derive(Debug, Arbitrary)]
enum Id {
    Canonical,
    Upper,
    Simple,
    Braced,
    Urn,
    /// The canonical id with one hex digit replaced (version and variant nibbles included).
    Nibble(u8, u8),
    Raw(String),
}

impl Id {
    fn text(&self, base: &str) -> String {
        match self {
            Id::Canonical => base.to_string(),
            Id::Upper => base.to_ascii_uppercase(),
            Id::Simple => base.replace('-', ""),
            Id::Braced => format!("{{{base}}}"),
            Id::Urn => format!("urn:uuid:{base}"),
            Id::Nibble(at, digit) => {
                let mut chars: Vec<char> = base.chars().collect();
                let hex: Vec<usize> = (0..chars.len()).filter(|&i| chars[i] != '-').collect();
                let i = hex[usize::from(*at) % hex.len()];
                chars[i] = char::from(b"0123456789abcdef"[usize::from(*digit % 16)]);
                chars.into_iter().collect()
            }
            Id::Raw(s) => s.clone(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Value4 {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// A string of exactly n (400..=600) characters, around the 500 limit.
    Long(u8, char),
}

impl Value4 {
    fn meta(&self) -> MetaValue {
        match self {
            Value4::Bool(b) => MetaValue::Bool(*b),
            Value4::Int(i) => MetaValue::Int(*i),
            Value4::Float(x) => MetaValue::Float(*x),
            Value4::Str(s) => MetaValue::Str(s.clone()),
            Value4::Long(n, c) => MetaValue::Str(c.to_string().repeat(400 + usize::from(*n) % 201)),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Input {
    org: Id,
    base_url: Option<String>,
    token: Option<String>,
    key: Option<String>,
    activation_id: Option<Id>,
    benefit_id: Option<Id>,
    customer_id: Option<Id>,
    increment_usage: Option<i64>,
    conditions: Vec<(String, Value4)>,
    /// Extra keys `k0`, `k1`, … to cross the 50-key limit.
    padding: u8,
    meta: Vec<(String, Value4)>,
    label: String,
}

fn metadata(entries: &[(String, Value4)], padding: u8) -> Metadata {
    let mut m: Metadata = entries.iter().map(|(k, v)| (k.clone(), v.meta())).collect();
    for i in 0..usize::from(padding % 64) {
        m.insert(format!("k{i}"), MetaValue::Int(i as i64));
    }
    m
}

// ---- the spec (docs/polar-api.md §2.5, §3), written independently of src/metadata.rs ----

/// What pydantic-core's UUID4 accepts: `uuid::Uuid::parse_str`, version 4 and the RFC 4122
/// variant (its RFC 9562 check). Returns the canonical form the client must send.
fn spec_uuid4(text: &str) -> Option<String> {
    let id = uuid::Uuid::parse_str(text).ok()?;
    (id.get_version_num() == 4 && id.get_variant() == uuid::Variant::RFC4122)
        .then(|| id.hyphenated().to_string())
}

fn spec_string(s: &str, min: usize, max: usize) -> bool {
    let n = s.chars().count();
    (min..=max).contains(&n) && !s.contains('\0')
}

fn spec_metadata(m: &Metadata) -> bool {
    m.len() <= 50
        && m.iter().all(|(k, v)| {
            spec_string(k, 1, 40)
                && match v {
                    MetaValue::Str(s) => spec_string(s, 1, 500),
                    MetaValue::Float(x) => x.is_finite(),
                    MetaValue::Bool(_) | MetaValue::Int(_) => true,
                }
        })
}

/// A key the client sends: non-empty, no NUL, and no whitespace at either end (Polar would only
/// answer such a key with 404; the client refuses it as a pasted line break).
fn spec_key(key: &Option<String>) -> bool {
    key.as_deref().is_some_and(|k| {
        !k.is_empty()
            && !k.contains('\0')
            && !k.starts_with(char::is_whitespace)
            && !k.ends_with(char::is_whitespace)
    })
}

/// Checks an accepted request's JSON body: it parses, re-serializes identically, carries
/// the key and canonical ids, and its metadata round-trips to what was given.
fn body(http: &HttpRequest, key: &str, org: &str) -> serde_json::Map<String, Value> {
    let value: Value = serde_json::from_slice(&http.body).expect("the body is JSON");
    let again = serde_json::to_vec(&value).expect("re-serializes");
    let reparsed: Value = serde_json::from_slice(&again).expect("reparses");
    assert_eq!(reparsed, value, "the body does not round-trip");
    let Value::Object(map) = value else {
        panic!("the body is not an object")
    };
    assert_eq!(map.get("key").and_then(Value::as_str), Some(key));
    assert_eq!(
        map.get("organization_id").and_then(Value::as_str),
        Some(org)
    );
    assert!(http.url.ends_with(http.operation.as_str()));
    assert!(http
        .headers
        .iter()
        .any(|(k, v)| *k == "content-type" && v == "application/json"));
    map
}

fn same_metadata(map: &serde_json::Map<String, Value>, field: &str, given: &Metadata) {
    match map.get(field) {
        None => assert!(given.is_empty(), "{field} dropped"),
        Some(v) => {
            let back: Metadata = serde_json::from_value(v.clone()).expect("metadata parses");
            // Exact, floats included (the float_roundtrip regression, fixed in a47706d).
            assert_eq!(&back, given, "{field} changed on the way (sent as {v})");
        }
    }
}

/// An id field: accepted iff the spec accepts; sent canonical.
fn id_field(map: &serde_json::Map<String, Value>, field: &str, given: Option<&str>) {
    let sent = map.get(field).and_then(Value::as_str);
    match given {
        None => assert!(sent.is_none(), "{field} sent without being given"),
        Some(text) => {
            let canonical = spec_uuid4(text).expect("accepted: a v4 UUID");
            assert_eq!(sent, Some(canonical.as_str()), "{field} not canonical");
        }
    }
}

fn invalid(e: &polar_license::Error) {
    assert_eq!(e.reason(), Reason::InvalidInput, "{e:?}");
    let _ = e.to_string();
}

/// The request `op` built from `req` (`built`) is as the spec says (`spec_ok`): built only when
/// the spec accepts it, and then its body checked ([`body`]) and given for the operation's own
/// fields; refused only when the spec refuses it, and then `invalid_input`.
fn as_spec_says(
    op: &str,
    req: &dyn std::fmt::Debug,
    built: Result<HttpRequest, polar_license::Error>,
    spec_ok: bool,
    key: &Option<String>,
    org: &str,
) -> Option<serde_json::Map<String, Value>> {
    match built {
        Ok(http) => {
            assert!(spec_ok, "{op} accepted what Polar rejects: {req:?}");
            Some(body(&http, key.as_deref().unwrap_or_default(), org))
        }
        Err(e) => {
            invalid(&e);
            assert!(!spec_ok, "{op} rejected a valid request: {e:?} for {req:?}");
            None
        }
    }
}

/// The target on one input, as libFuzzer gives it: the bytes read as [`Input`] the way
/// `fuzz_target!` reads a typed input (a panic is a finding).
pub fn run(data: &[u8]) {
    if let Some(input) = crate::decode::<Input>(data) {
        fuzz_one(input);
    }
}

/// The target on one decoded input.
fn fuzz_one(input: Input) {
    // The base URL check: never a panic; what it accepts is https, or http on loopback, and a
    // fixed point.
    if let Some(url) = &input.base_url {
        if let Ok(checked) = check_base_url(url) {
            assert!(checked.starts_with("https://") || checked.starts_with("http://"));
            assert_eq!(check_base_url(&checked).as_deref(), Ok(checked.as_str()));
        }
    }
    let org_text = input.org.text(ORG);
    let server = Server::Production;
    let api = match Api::new(&org_text, &server) {
        Ok(api) => {
            let canonical = spec_uuid4(&org_text)
                .unwrap_or_else(|| panic!("Api accepted the org {org_text:?} Polar refuses"));
            assert_eq!(api.organization_id(), canonical);
            api
        }
        Err(e) => {
            invalid(&e);
            assert!(
                spec_uuid4(&org_text).is_none(),
                "rejected org {org_text:?}: {e:?}"
            );
            return;
        }
    };
    let api = match &input.token {
        Some(token) => match api
            .clone()
            .with_access_token(AccessToken::new(token.clone()))
        {
            Ok(api) => {
                assert!(!token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()));
                api
            }
            Err(e) => {
                invalid(&e);
                api
            }
        },
        None => api,
    };
    let org = api.organization_id().to_string();
    let key = input.key.clone();
    let ids = [
        input.activation_id.as_ref().map(|i| i.text(ACTIVATION)),
        input.benefit_id.as_ref().map(|i| i.text(ACTIVATION)),
        input.customer_id.as_ref().map(|i| i.text(ACTIVATION)),
    ];
    let ids_ok = ids
        .iter()
        .all(|id| id.as_deref().is_none_or(|t| spec_uuid4(t).is_some()));
    let conditions = metadata(&input.conditions, input.padding);
    let meta = metadata(&input.meta, 0);

    // validate
    let mut req = ValidateRequest {
        key: key.clone().map(Key::new),
        activation_id: ids[0].clone(),
        benefit_id: ids[1].clone(),
        customer_id: ids[2].clone(),
        increment_usage: input.increment_usage,
        conditions: conditions.clone(),
    };
    let spec_ok = spec_key(&key)
        && ids_ok
        && input
            .increment_usage
            .is_none_or(|n| (0..=i64::from(i32::MAX)).contains(&n))
        && spec_metadata(&conditions);
    let built = api.validate_request(&req);
    if let Some(map) = as_spec_says("validate", &req, built, spec_ok, &key, &org) {
        id_field(&map, "activation_id", ids[0].as_deref());
        id_field(&map, "benefit_id", ids[1].as_deref());
        id_field(&map, "customer_id", ids[2].as_deref());
        let inc = map.get("increment_usage").and_then(Value::as_i64);
        assert_eq!(inc, input.increment_usage.filter(|n| *n > 0));
        same_metadata(&map, "conditions", &conditions);
    }
    req.key = None;
    assert!(api.validate_request(&req).is_err());

    // activate
    let areq = ActivateRequest {
        key: key.clone().map(Key::new),
        label: input.label.clone(),
        conditions: conditions.clone(),
        meta: meta.clone(),
    };
    let spec_ok = spec_key(&key)
        && !input.label.contains('\0')
        && spec_metadata(&conditions)
        && spec_metadata(&meta);
    let built = api.activate_request(&areq);
    if let Some(map) = as_spec_says("activate", &areq, built, spec_ok, &key, &org) {
        assert_eq!(
            map.get("label").and_then(Value::as_str),
            Some(input.label.as_str())
        );
        same_metadata(&map, "conditions", &conditions);
        same_metadata(&map, "meta", &meta);
    }

    // deactivate
    let activation = ids[0].clone().unwrap_or_default();
    let dreq = DeactivateRequest {
        key: key.clone().map(Key::new),
        activation_id: activation.clone(),
    };
    let spec_ok = spec_key(&key) && spec_uuid4(&activation).is_some();
    let built = api.deactivate_request(&dreq);
    if let Some(map) = as_spec_says("deactivate", &dreq, built, spec_ok, &key, &org) {
        id_field(&map, "activation_id", Some(&activation));
    }
}
