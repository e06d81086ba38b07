//! A seeded generator of answers, Polar's and not Polar's, to hold every face to one verdict
//! (`tests/one_answer.rs` natively, `bindings/wasm/src/tests/one_answer.rs` through the npm
//! engine, `crates/fuzz-bodies/src/targets/one_answer.rs`): [`cases`] gives, for a seed, always the same
//! endless run of [`Case`]s.
//!
//! Each case starts from a realistic answer (a validate's 200 with and without an activation,
//! in the 2026-10 and 2027-01 shapes and docs/polar-api.md §6.2's; an activate's 200; a
//! deactivate's 204; Polar's error envelopes with the exact details of docs/polar-api.md §6.4;
//! the bare `{"detail":"Not Found"}`, an OAuth 401, a 422's list, HTML pages, empty bodies)
//! and mutates it one to three times at the level of the JSON *text*, so that what comes out
//! may be no JSON at all: a member (at any depth, its name included) set to a raw token from
//! a pool of edge cases (numbers at the limits of `i64`, `u64` and `f64`, lone surrogates, raw
//! invalid UTF-8 and control characters, enum names and their other forms, dates around now,
//! the right and wrong ids, nesting around the strict reader's and serde_json's depth
//! limits), removed, written twice with another value, wrapped in deep nesting; unknown
//! members added; the envelope's `error` and `detail` changed in value and type; then the
//! bytes themselves truncated, flipped, followed by garbage or preceded by a BOM. A third of
//! the member mutations aim at the members the rules read (status, key, ids, expiry, the
//! activation, the envelope), and a fifth of the JSON answers get one "near miss" instead: one
//! such member set to a value of its own pool, so that the run keeps reaching grants and
//! denials, where a rule changed on one side shows. Statuses and the `date` and
//! `retry-after` headers are drawn from their own pools.
//!
//! No dependency but the core (it builds for wasm32): a xorshift generator, a small JSON
//! tokenizer that keeps every scalar as the bytes it was written with.

use polar_license::proto::{ActivateRequest, HttpResponse, Operation, ValidateRequest};
use std::fmt;

/// The organization every case is asked for (faces.rs's).
pub const ORG: &str = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";
/// The license key every case is asked about.
pub const KEY: &str = "FACES-50B22C51-07BD-4160-A61E-19B6CC6ED415";
/// The license's id.
pub const LICENSE_ID: &str = "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e";
/// The activation a validate asks about (when [`Case::activation_asked`]) and a deactivate
/// frees.
pub const ACTIVATION: &str = "3f6d2a1b-8c4e-4f5a-9b7c-1d2e3f4a5b6c";
/// The license's benefit (asked with the activation).
pub const BENEFIT: &str = "5d3c2b1a-9e8f-4a7b-8c6d-1e2f3a4b5c6d";
/// The license's customer (asked with the activation).
pub const CUSTOMER: &str = "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d";
/// The label an activate sends.
pub const LABEL: &str = "laptop ✓";
/// The local clock every case is classified at (unix seconds, 2026-09-21T14:13:20Z).
pub const NOW: i64 = crate::START;

/// The statuses answers come with.
pub const STATUSES: [u16; 16] = [
    200, 204, 400, 401, 403, 404, 407, 409, 422, 429, 500, 502, 503, 101, 199, 600,
];

/// One answer to classify: the operation it answers, what came back, and whether the request
/// asked about an activation.
#[derive(Clone, PartialEq, Eq)]
pub struct Case {
    /// The operation asked.
    pub op: Operation,
    /// The HTTP status.
    pub status: u16,
    /// The headers (names lowercased), in the order received; a name may come twice.
    pub headers: Vec<(String, String)>,
    /// The body's bytes.
    pub body: Vec<u8>,
    /// A validate that asked about [`ACTIVATION`] (with [`BENEFIT`] and [`CUSTOMER`]).
    pub activation_asked: bool,
    /// What it was made from: the base answer and each mutation, for a failure's report.
    pub what: String,
}

impl Case {
    /// The response as a transport hands it to the core.
    pub fn response(&self) -> HttpResponse {
        HttpResponse {
            status: self.status,
            headers: self.headers.clone(),
            body: self.body.clone(),
        }
    }

    /// A header as `fetch` gives it: every value of `name`, joined with `", "`.
    pub fn combined(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }

    /// The validate request this case answers.
    pub fn validate_request(&self) -> ValidateRequest {
        let req = ValidateRequest::new(KEY);
        if self.activation_asked {
            req.activation_id(ACTIVATION)
                .benefit_id(BENEFIT)
                .customer_id(CUSTOMER)
        } else {
            req
        }
    }

    /// The activate request this case answers.
    pub fn activate_request(&self) -> ActivateRequest {
        ActivateRequest::new(KEY, LABEL)
    }

    /// The body as escaped text: valid UTF-8 as Rust's `escape_debug` writes it, every other
    /// byte `\xNN`.
    pub fn escaped_body(&self) -> String {
        escaped(&self.body)
    }
}

/// `bytes` as escaped text (see [`Case::escaped_body`]).
pub fn escaped(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(text) => {
                out.extend(text.chars().flat_map(char::escape_debug));
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                let text = std::str::from_utf8(good).unwrap_or_default();
                out.extend(text.chars().flat_map(char::escape_debug));
                let n = e.error_len().unwrap_or(bad.len());
                for b in &bad[..n] {
                    out.push_str(&format!("\\x{b:02x}"));
                }
                rest = &bad[n..];
            }
        }
    }
    out
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `validate (activation asked) 200, headers [date: …], body (N bytes): "…"`, then what it
/// was made from.
impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let asked = if self.activation_asked {
            " (activation asked)"
        } else {
            ""
        };
        write!(f, "{}{asked} {}, headers [", self.op.as_str(), self.status)?;
        for (i, (name, value)) in self.headers.iter().enumerate() {
            let sep = if i > 0 { ", " } else { "" };
            write!(f, "{sep}{name}: {:?}", value)?;
        }
        write!(
            f,
            "], body ({} bytes): \"{}\"\n  made from: {}",
            self.body.len(),
            self.escaped_body(),
            self.what
        )
    }
}

/// The endless, deterministic run of cases for `seed`.
pub fn cases(seed: u64) -> impl Iterator<Item = Case> {
    let mut g = Generator::new(seed);
    std::iter::from_fn(move || Some(g.case()))
}

/// A xorshift64* generator, seeded through splitmix64 (any seed, 0 included, gives a good
/// state).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 1 } else { z })
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `[0, 1)`, from the top 53 bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True `percent` times in 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// One of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// A JSON document as text: objects and arrays as structure, every scalar (and every member
/// name) as the bytes it is written with, so a mutation can put any token anywhere.
#[derive(Debug, Clone)]
enum Node {
    Tok(Vec<u8>),
    Obj(Vec<(Vec<u8>, Node)>),
    Arr(Vec<Node>),
}

impl Node {
    /// Reads JSON text this module wrote (panics on anything else: the bases are ours).
    fn parse(text: &str) -> Node {
        let b = text.as_bytes();
        let mut at = 0;
        let node = Node::read(b, &mut at);
        Node::space(b, &mut at);
        assert_eq!(at, b.len(), "a base answer is no JSON: {text}");
        node
    }

    fn space(b: &[u8], at: &mut usize) {
        while *at < b.len() && matches!(b[*at], b' ' | b'\n' | b'\r' | b'\t') {
            *at += 1;
        }
    }

    fn string(b: &[u8], at: &mut usize) -> Vec<u8> {
        let start = *at;
        *at += 1;
        while b[*at] != b'"' {
            *at += if b[*at] == b'\\' { 2 } else { 1 };
        }
        *at += 1;
        b[start..*at].to_vec()
    }

    /// The items of the object or array opening at `at`, up to its `close`, each read by
    /// `one`.
    fn list<T>(
        b: &[u8],
        at: &mut usize,
        close: u8,
        mut one: impl FnMut(&[u8], &mut usize) -> T,
    ) -> Vec<T> {
        *at += 1;
        let mut items = Vec::new();
        loop {
            Node::space(b, at);
            match b[*at] {
                c if c == close => {
                    *at += 1;
                    return items;
                }
                b',' => *at += 1,
                _ => items.push(one(b, at)),
            }
        }
    }

    fn read(b: &[u8], at: &mut usize) -> Node {
        Node::space(b, at);
        match b[*at] {
            b'{' => Node::Obj(Node::list(b, at, b'}', |b, at| {
                let name = Node::string(b, at);
                Node::space(b, at);
                assert_eq!(b[*at], b':');
                *at += 1;
                (name, Node::read(b, at))
            })),
            b'[' => Node::Arr(Node::list(b, at, b']', Node::read)),
            b'"' => Node::Tok(Node::string(b, at)),
            _ => {
                let start = *at;
                while *at < b.len()
                    && !matches!(b[*at], b',' | b']' | b'}' | b' ' | b'\n' | b'\r' | b'\t')
                {
                    *at += 1;
                }
                Node::Tok(b[start..*at].to_vec())
            }
        }
    }

    /// The text, compact or spaced as Python's `json.dumps` spaces it (Polar's server).
    fn write(&self, out: &mut Vec<u8>, spaced: bool) {
        let (comma, colon): (&[u8], &[u8]) = if spaced { (b", ", b": ") } else { (b",", b":") };
        match self {
            Node::Tok(t) => out.extend_from_slice(t),
            Node::Obj(members) => {
                out.push(b'{');
                for (i, (name, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(comma);
                    }
                    out.extend_from_slice(name);
                    out.extend_from_slice(colon);
                    value.write(out, spaced);
                }
                out.push(b'}');
            }
            Node::Arr(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(comma);
                    }
                    item.write(out, spaced);
                }
                out.push(b']');
            }
        }
    }

    /// Its member values or items, in order (none for a token).
    fn children(&self) -> Vec<&Node> {
        match self {
            Node::Tok(_) => Vec::new(),
            Node::Obj(members) => members.iter().map(|(_, v)| v).collect(),
            Node::Arr(items) => items.iter().collect(),
        }
    }

    /// The path (child indexes) of every member value and array item, at any depth.
    fn slots(&self, path: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        for (i, child) in self.children().into_iter().enumerate() {
            path.push(i);
            out.push(path.clone());
            child.slots(path, out);
            path.pop();
        }
    }

    /// The path of every object, the root's (`[]`) included.
    fn objects(&self, path: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if matches!(self, Node::Obj(_)) {
            out.push(path.clone());
        }
        for (i, child) in self.children().into_iter().enumerate() {
            path.push(i);
            child.objects(path, out);
            path.pop();
        }
    }

    fn at(&mut self, path: &[usize]) -> &mut Node {
        match path.split_first() {
            None => self,
            Some((&i, rest)) => match self {
                Node::Obj(members) => members[i].1.at(rest),
                Node::Arr(items) => items[i].at(rest),
                Node::Tok(_) => unreachable!("a path through a scalar"),
            },
        }
    }

    /// The member name of the slot at `path`, if it is an object's member.
    fn name_at(&mut self, path: &[usize]) -> Option<String> {
        let (&last, parent) = path.split_last()?;
        match self.at(parent) {
            Node::Obj(members) => {
                let name = &members[last].0;
                let inner = name.get(1..name.len().saturating_sub(1))?;
                Some(String::from_utf8_lossy(inner).into_owned())
            }
            _ => None,
        }
    }

    fn members(&mut self) -> Option<&mut Vec<(Vec<u8>, Node)>> {
        match self {
            Node::Obj(members) => Some(members),
            _ => None,
        }
    }
}

/// A JSON string token for `text` (escaping `"` and `\` only: the pools hold no control
/// character they do not mean).
fn quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `value` inside `depth` arrays, or objects of one member `"x"`.
fn nested(depth: usize, objects: bool, value: &str) -> String {
    let (open, close) = if objects {
        ("{\"x\":", "}")
    } else {
        ("[", "]")
    };
    [open.repeat(depth), value.to_string(), close.repeat(depth)].concat()
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const LONG_DAYS: [&str; 7] = [
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The parts of unix time `t`: weekday index (into [`DAYS`]), year, month, day, h, m, s.
fn parts(t: i64) -> (usize, i64, u32, u32, i64, i64, i64) {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    (
        days.rem_euclid(7) as usize,
        y,
        m,
        d,
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
    )
}

/// `t` as an IMF-fixdate (`Mon, 21 Sep 2026 14:13:20 GMT`).
pub fn imf_fixdate(t: i64) -> String {
    let (w, y, mo, d, h, mi, s) = parts(t);
    format!(
        "{}, {d:02} {} {y:04} {h:02}:{mi:02}:{s:02} GMT",
        DAYS[w],
        MONTHS[mo as usize - 1]
    )
}

/// `t` as RFC 3339 in UTC (`2026-09-21T14:13:20Z`).
fn rfc3339(t: i64) -> String {
    let (_, y, mo, d, h, mi, s) = parts(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// A `date` header's value: mostly an IMF-fixdate around now, else a date in a form (or with
/// a flaw) `proto::http_date` does not read.
fn date_header(r: &mut Rng) -> Vec<String> {
    let near = [
        0, -1, 59, -60, -3599, -3601, -7200, 3600, 7200, -86_400, 86_400,
    ];
    let t = NOW + r.pick(&near);
    let (w, y, mo, d, h, mi, s) = parts(t);
    let month = MONTHS[mo as usize - 1];
    match r.below(16) {
        0..=4 => vec![imf_fixdate(t)],
        5 => vec![imf_fixdate(*r.pick(&[
            0,
            1_577_836_800,
            2_147_483_648,
            4_102_444_800,
            -2_208_988_800,
            253_402_300_799,
        ]))],
        6 => vec![format!(
            "{}, {d:02}-{month}-{:02} {h:02}:{mi:02}:{s:02} GMT",
            LONG_DAYS[w],
            y % 100
        )],
        7 => vec![format!(
            "{} {month} {d:>2} {h:02}:{mi:02}:{s:02} {y}",
            DAYS[w]
        )],
        8 => vec![rfc3339(t)],
        9 => {
            let zone = *r.pick(&["UTC", "+0000", "gmt", "Z"]);
            vec![imf_fixdate(t).replace("GMT", zone)]
        }
        10 => vec![format!("{}, {d:02} {month} {y:04} 23:59:60 GMT", DAYS[w])],
        11 => vec![imf_fixdate(t).replacen(DAYS[w], DAYS[(w + 1) % 7], 1)],
        12 => vec![format!("{}, {}", imf_fixdate(t), imf_fixdate(t + 1))],
        13 => vec![imf_fixdate(t), imf_fixdate(t)],
        14 => vec![r
            .pick(&[
                " Mon, 21 Sep 2026 14:13:20 GMT ",
                "mon, 21 sep 2026 14:13:20 GMT",
                "Mon, 21 Sep 2026 14:13:20 GMT\t",
                "Mon,  21 Sep 2026 14:13:20 GMT",
                "Mon, 21 Sep 2026 14:13 GMT",
                "Mon, 31 Sep 2026 14:13:20 GMT",
                "Mon, 21 Sep 2026 24:00:00 GMT",
                "Mon, 21 Sep 02026 14:13:20 GMT",
                "Mon, 21 Sep +026 14:13:20 GMT",
                "",
                "1790000000",
                "\u{e9}, 21 Sep 2026 14:13:20 GMT",
            ])
            .to_string()],
        _ => vec![imf_fixdate(t), "yesterday".to_string()],
    }
}

/// A `retry-after` header's values.
fn retry_header(r: &mut Rng) -> Vec<String> {
    let one = [
        "0",
        "1",
        "30",
        "60",
        "3600",
        "3601",
        "315360000",
        "18446744073709551615",
        "18446744073709551616",
        "-1",
        "+5",
        " 30 ",
        "1.5",
        "1e2",
        "soon",
        "",
        "1, 2",
        "Wed, 21 Oct 2026 07:28:00 GMT",
        "３０",
    ];
    let mut values = vec![r.pick(&one).to_string()];
    if r.chance(10) {
        values.push(r.pick(&one).to_string());
    }
    values
}

/// A base answer: what it is, its status, its body (JSON or not).
struct Base {
    name: String,
    status: u16,
    body: Body,
}

enum Body {
    Json(Node),
    Raw(Vec<u8>),
}

/// faces.rs's activation object ([`ACTIVATION`] of [`LICENSE_ID`], labelled [`LABEL`]).
pub fn activation_text() -> String {
    format!(
        r#"{{"id":"{ACTIVATION}","license_key_id":"{LICENSE_ID}","label":"{LABEL}","meta":{{"os":"linux","cores":8,"ratio":0.25,"beta":true}},"created_at":"2026-08-01T10:14:58.120000Z","modified_at":null}}"#
    )
}

/// A license as Polar answers it, the members in the server's order. `full`: the 2027-01
/// shape (member, subscription, order), a team customer with everything filled, timestamps
/// with offsets; else the 2026-10 one. `activation`: the validate's `activation` member's
/// text, or no member at all (an activate's `license_key`).
pub fn license_text(full: bool, activation: Option<&str>) -> String {
    let customer = if full {
        format!(
            r#"{{"id":"{CUSTOMER}","created_at":"2025-01-01T00:00:00.5+02:00","modified_at":"2026-03-04T05:06:07.123456789Z","metadata":{{"tier":"team","seats":5,"discount":0.15,"vip":false}},"external_id":"crm-7","email":"ada@example.com","email_verified":true,"type":"team","name":"Ada","billing_name":"Ada Ltd","billing_address":{{"line1":"1 Main St","line2":null,"postal_code":"75002","city":"Paris","state":null,"country":"FR"}},"tax_id":["FR123","eu_vat"],"locale":"fr-FR","organization_id":"{ORG}","default_payment_method_id":null,"deleted_at":null,"first_user_event_at":null,"avatar_url":"https://example.com/a.png"}}"#
        )
    } else {
        format!(
            r#"{{"id":"{CUSTOMER}","created_at":"2025-01-01T00:00:00Z","modified_at":null,"metadata":{{"plan_tier":"pro"}},"external_id":null,"email":"ada@example.com","email_verified":false,"type":"individual","name":"Ada","billing_name":null,"billing_address":null,"tax_id":null,"locale":null,"organization_id":"{ORG}","default_payment_method_id":null,"deleted_at":null,"first_user_event_at":null,"avatar_url":null}}"#
        )
    };
    let (expires, validated) = if full {
        (
            r#""2099-12-31T23:59:59-05:00""#,
            r#""2026-09-01T12:00:00.000001Z""#,
        )
    } else {
        ("null", "null")
    };
    let mut text = format!(
        r#"{{"id":"{LICENSE_ID}","created_at":"2025-01-01T00:00:00Z","modified_at":null,"organization_id":"{ORG}","user_id":"{CUSTOMER}","customer_id":"{CUSTOMER}","customer":{customer},"benefit_id":"{BENEFIT}","key":"{KEY}","display_key":"****-6ED415","status":"granted","limit_activations":3,"usage":2,"limit_usage":10,"validations":1,"last_validated_at":{validated},"expires_at":{expires}"#
    );
    if full {
        text.push_str(
            r#","member_id":"m-1","member":{"id":"m-1","email":"seat@acme.io","external_id":"seat-7"},"subscription_id":"s-1","subscription":{"id":"s-1","status":"active","current_period_start":"2026-09-01T00:00:00Z","current_period_end":"2026-10-01T00:00:00Z","cancel_at_period_end":true,"ends_at":null},"order_id":"o-1","order":{"id":"o-1","created_at":null,"status":"paid","paid":true}"#,
        );
    }
    if let Some(a) = activation {
        text.push_str(",\"activation\":");
        text.push_str(a);
    }
    text.push('}');
    text
}

/// docs/polar-api.md §6.2's answer, about this module's key, organization and ids.
fn license_6_2(activation: bool) -> String {
    let mut text = crate::LICENSE_6_2
        .replace("MYAPP-50B22C51-07BD-4160-A61E-19B6CC6ED415", KEY)
        .replace("d2fcbff8-108b-411e-bf2b-6383e0a8802d", ORG)
        .replace("f7d9ba8a-dd63-4db8-bb8b-015006335825", LICENSE_ID)
        .replace("21bf892b-2e46-4f50-8060-8fdaf02aa482", ACTIVATION)
        .replace("45f87221-45ae-4f65-8dbd-073318bc6372", BENEFIT)
        .replace("854fa59b-860f-4262-a6ac-ae0388a7f579", CUSTOMER);
    if !activation {
        let at = text.find("\"activation\"").unwrap_or(text.len());
        text.truncate(at);
        text.push_str("\"activation\": null\n}");
    }
    text
}

/// An activate's 200: the activation's members, then `license_key` ([`license_text`]).
pub fn activated_text(full: bool) -> String {
    let a = activation_text();
    format!(
        "{},\"license_key\":{}}}",
        &a[..a.len() - 1],
        license_text(full, None)
    )
}

fn envelope(error: &str, detail: &str) -> String {
    format!(
        "{{\"error\":{},\"detail\":{}}}",
        quoted(error),
        quoted(detail)
    )
}

/// The details Polar's 404 `ResourceNotFound` envelope comes with (docs/polar-api.md §6.4).
pub const DETAILS_404: [&str; 6] = [
    "Not found",
    "License key is no longer active.",
    "License key has expired.",
    "License key does not match required conditions",
    "License key does not match given benefit.",
    "License key does not match given user.",
];

const DETAILS_403: [&str; 4] = [
    "License key is no longer active. This license key can not be activated.",
    "License key has expired.",
    "This license key does not support activations. Use the /validate endpoint instead to check license validity.",
    "License key activation limit already reached",
];

/// docs/polar-api.md §6.4's 422 bodies.
const BODIES_422: [&str; 5] = [
    r#"{"error":"RequestValidationError","detail":[{"type":"missing","loc":["body","organization_id"],"msg":"Field required","input":{"key":"K"}}]}"#,
    r#"{"error":"RequestValidationError","detail":[{"type":"uuid_parsing","loc":["body","organization_id"],"msg":"Input should be a valid UUID, invalid character: found `n` at 1","input":"not-a-uuid","ctx":{"error":"invalid character: found `n` at 1"}}]}"#,
    r#"{"error":"RequestValidationError","detail":[{"type":"uuid_version","loc":["body","organization_id"],"msg":"UUID version 4 expected","input":"0190f0c2-1b6e-7cc3-9a4b-9d2f1f0a1b2c","ctx":{"expected_version":4}}]}"#,
    r#"{"error":"RequestValidationError","detail":[{"type":"greater_than_equal","loc":["body","increment_usage"],"msg":"Input should be greater than or equal to 0","input":-1,"ctx":{"ge":0}}]}"#,
    r#"{"error":"RequestValidationError","detail":[{"type":"string_too_short","loc":["body","conditions","seat","constrained-str"],"msg":"String should have at least 1 character","input":"","ctx":{"min_length":1}},{"type":"int_parsing","loc":["body","conditions","seat","int"],"msg":"Input should be a valid integer, unable to parse string as an integer","input":""},{"type":"float_parsing","loc":["body","conditions","seat","float"],"msg":"Input should be a valid number, unable to parse string as a number","input":""},{"type":"bool_parsing","loc":["body","conditions","seat","bool"],"msg":"Input should be a valid boolean, unable to interpret input","input":""}]}"#,
];

/// Raw tokens any member may be set to.
fn generic_tokens() -> Vec<Vec<u8>> {
    let mut t: Vec<Vec<u8>> = [
        // numbers
        "0",
        "-0",
        "1",
        "-1",
        "1.0",
        "1.5",
        "1e2",
        "1E+2",
        "9007199254740991",
        "9007199254740992",
        "9007199254740993",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "-9223372036854775809",
        "18446744073709551615",
        "18446744073709551616",
        "1e400",
        "-1e400",
        "1e-400",
        "0.1e1",
        // not numbers
        "01",
        "+1",
        "NaN",
        "Infinity",
        ".5",
        // strings
        r#""""#,
        r#""\ud800""#,
        r#""\udc00""#,
        r#""x\ud800y""#,
        r#""\ud800\u0041""#,
        r#""\ud83d\ude00""#,
        r#""\u0000""#,
        r#""\u00e9""#,
        r#""\/""#,
        r#""\x""#,
        r#""\u12""#,
        r#""granted""#,
        r#""revoked""#,
        r#""disabled""#,
        r#""GRANTED""#,
        r#""tomorrow""#,
        // literals and structures
        "null",
        "true",
        "false",
        "True",
        "nul",
        "[]",
        "{}",
        r#"{"granted":null}"#,
        r#"["granted"]"#,
        "[1,]",
        "{\"a\":1,}",
        "{\"a\":1,\"a\":2}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    // Raw bytes no JSON string may hold: invalid UTF-8, control characters, a BOM inside.
    for raw in [
        &b"\"\xff\""[..],
        b"\"\xc3\"",
        b"\"\xed\xa0\x80\"",
        b"\"\xf4\x90\x80\x80\"",
        b"\"a\x01b\"",
        b"\"a\tb\"",
        b"\"a\nb\"",
        b"\"\x7f\"",
        b"\"\xef\xbb\xbf\"",
    ] {
        t.push(raw.to_vec());
    }
    for s in dates().into_iter().chain(ids()) {
        t.push(s.into_bytes());
    }
    for depth in [60, 62, 63, 64, 65, 127, 128, 130] {
        t.push(nested(depth, false, "1").into_bytes());
        t.push(nested(depth, true, "null").into_bytes());
    }
    t
}

/// Dates around now and far off, RFC 3339 and not, as JSON tokens.
fn dates() -> Vec<String> {
    let mut out: Vec<String> = [
        NOW,
        NOW - 1,
        NOW + 1,
        NOW - 3600,
        NOW + 3600,
        NOW - 7199,
        NOW - 7201,
        1_577_836_800,
        4_102_444_799,
    ]
    .iter()
    .map(|&t| quoted(&rfc3339(t)))
    .collect();
    for s in [
        "2026-09-21T16:13:20+02:00",
        "2026-09-21T16:13:21+02:00",
        "2026-09-21T14:13:20-00:00",
        "2026-09-21T14:13:20.000001Z",
        "2026-09-21T14:13:19.999999999Z",
        "2026-09-21T14:13:20.1234567891Z",
        "2026-09-21t14:13:20z",
        "2026-09-21 14:13:20Z",
        "2026-09-21T14:13:20",
        "2026-09-21T14:13:20+2:00",
        "2026-09-21T14:13:20+24:00",
        "2026-09-21T14:13:20+23:59",
        "2026-09-21T14:13:60Z",
        "2026-09-21T24:00:00Z",
        "2026-02-29T00:00:00Z",
        "2028-02-29T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "+2026-09-21T14:13:20Z",
        "2026-09-21T14:13:20.Z",
        "2026-09-21",
        "tomorrow",
    ] {
        out.push(quoted(s));
    }
    out.push("1790000000".to_string());
    out
}

/// Ids, the right ones in other cases and the wrong ones, and keys, as JSON tokens.
fn ids() -> Vec<String> {
    let mut out = Vec::new();
    for id in [ORG, LICENSE_ID, ACTIVATION, BENEFIT, CUSTOMER] {
        out.push(quoted(id));
        out.push(quoted(&id.to_ascii_uppercase()));
    }
    for s in [
        "00000000-0000-4000-8000-000000000000",
        "",
        KEY,
        "faces-50b22c51-07bd-4160-a61e-19b6cc6ed415",
        "OTHER-123456789",
        "****-6ED415",
    ] {
        out.push(quoted(s));
    }
    out.push(format!("\"{KEY} \""));
    out.push(format!("\"\\u0046{}\"", &KEY[1..]));
    out
}

/// Tokens for a member of this name, when it has a pool of its own.
fn tokens_for(name: &str) -> Option<Vec<String>> {
    let q = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    Some(match name {
        "status" => q(&[
            r#""granted""#,
            r#""revoked""#,
            r#""disabled""#,
            r#""GRANTED""#,
            r#""Granted""#,
            r#""Revoked""#,
            r#""DISABLED""#,
            r#""granted ""#,
            r#""\u0067ranted""#,
            r#""active""#,
            r#"{"granted":null}"#,
            r#"{"revoked":null}"#,
            r#"{"granted":null,"x":null}"#,
            r#"{"granted":1}"#,
            r#"["granted"]"#,
            "null",
            "0",
        ]),
        "key" | "display_key" => ids(),
        "id" | "license_key_id" | "organization_id" | "customer_id" | "benefit_id"
        | "member_id" | "subscription_id" | "order_id" | "user_id" => ids(),
        n if n.ends_with("_at") || n.starts_with("current_period") => dates(),
        "usage" | "limit_usage" | "limit_activations" | "validations" => q(&[
            "0",
            "-0",
            "1",
            "2",
            "-1",
            "10",
            "11",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "18446744073709551615",
            "1.0",
            "2.0",
            "1e1",
            "2.5",
            "null",
            r#""2""#,
            "true",
        ]),
        "metadata" | "meta" => q(&[
            "{}",
            r#"{"a":1}"#,
            r#"{"a":1.0}"#,
            r#"{"a":1e2}"#,
            r#"{"a":-0}"#,
            r#"{"a":0.1}"#,
            r#"{"a":1e-7}"#,
            r#"{"a":1e21}"#,
            r#"{"a":5e-324}"#,
            r#"{"a":1.7976931348623157e308}"#,
            r#"{"a":9007199254740993}"#,
            r#"{"a":9223372036854775808}"#,
            r#"{"a":18446744073709551615}"#,
            r#"{"a":18446744073709551616}"#,
            r#"{"a":-9223372036854775809}"#,
            r#"{"a":"x","b":true,"c":false}"#,
            r#"{"a":""}"#,
            r#"{"":1}"#,
            r#"{"a":null}"#,
            r#"{"a":[1]}"#,
            r#"{"a":{"b":1}}"#,
            r#"{"a":"\u0000"}"#,
            r#"{"\ud800":1}"#,
            r#"{"b":1,"a":2}"#,
            "[]",
            "null",
            r#""{}""#,
        ]),
        "tax_id" => q(&[
            r#"["FR123","eu_vat"]"#,
            r#"["FR123"]"#,
            r#"["FR123","eu_vat","x"]"#,
            r#"[1,"eu_vat"]"#,
            r#"["FR123",null]"#,
            "[]",
            r#""FR123""#,
            r#"{"0":"a","1":"b"}"#,
            "null",
        ]),
        "type" => q(&[
            r#""individual""#,
            r#""team""#,
            r#""company""#,
            r#""""#,
            r#"{"team":null}"#,
            r#"{"company":null}"#,
            r#"["team"]"#,
            "null",
            "1",
        ]),
        "email_verified" | "cancel_at_period_end" | "paid" => {
            q(&["true", "false", "null", "1", "0", r#""true""#])
        }
        "activation" => {
            let a = activation_text();
            vec![
                "null".into(),
                "{}".into(),
                "[]".into(),
                a.replace(ACTIVATION, BENEFIT),
                a.replace(LICENSE_ID, BENEFIT),
                a.replace("laptop ✓", ""),
                a.replace(",\"modified_at\":null", ""),
                a.clone(),
            ]
        }
        "customer" | "member" | "subscription" | "order" | "billing_address" | "license_key" => {
            q(&["null", "{}", "[]", r#"["x"]"#, r#""x""#])
        }
        "error" => error_tokens(),
        "detail" => detail_tokens(),
        _ => return None,
    })
}

fn error_tokens() -> Vec<String> {
    let mut out: Vec<String> = [
        "ResourceNotFound",
        "NotPermitted",
        "BadRequest",
        "Unauthorized",
        "RequestValidationError",
        "LengthRequired",
        "resourcenotfound",
        "ResourceNotFound ",
        "invalid_token",
        "",
    ]
    .iter()
    .map(|s| quoted(s))
    .collect();
    for raw in [
        "7",
        "null",
        "true",
        "[\"ResourceNotFound\"]",
        "{\"ResourceNotFound\":null}",
        "{}",
        r#""\u0052esourceNotFound""#,
        r#""Resource\u0000NotFound""#,
        r#""NotPermitted\ud800""#,
    ] {
        out.push(raw.to_string());
    }
    out
}

fn detail_tokens() -> Vec<String> {
    let mut out: Vec<String> = DETAILS_404
        .iter()
        .chain(DETAILS_403.iter())
        .map(|s| quoted(s))
        .collect();
    for n in [
        "1",
        "0",
        "-2",
        "+3",
        "03",
        "1.0",
        " 3",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "many",
        "",
    ] {
        out.push(quoted(&format!("License key only has {n} more usages.")));
    }
    for raw in [
        r#""License key only has 3 more usages""#,
        r#""License key has expired\u002e""#,
        r#""Not Found""#,
        r#""License key is no longer active""#,
        r#""no longer active""#,
        r#""This license key does not support activations""#,
        r#""Something new""#,
        r#""""#,
        r#""\ud800""#,
        "null",
        "1",
        "[]",
        "{}",
        r#"["Not found"]"#,
        r#"[{"loc":["body","key"],"msg":"Field required"}]"#,
        r#"[{"loc":["body",0,1.0,-0,1e2,18446744073709551616],"msg":1}]"#,
        r#"[{"loc":[],"msg":null}]"#,
        r#"[{"loc":"body","msg":"x"}]"#,
        r#"[1]"#,
    ] {
        out.push(raw.to_string());
    }
    out
}

/// Names a member may be renamed to: the model's fields (so that one is there twice, or
/// where it does not belong) and names that are no JSON string or no string at all.
const NAMES: [&str; 24] = [
    r#""key""#,
    r#""status""#,
    r#""expires_at""#,
    r#""activation""#,
    r#""license_key""#,
    r#""customer""#,
    r#""id""#,
    r#""error""#,
    r#""detail""#,
    r#""metadata""#,
    r#""created_at""#,
    r#""usage""#,
    r#""KEY""#,
    r#""\u006bey""#,
    r#""key ""#,
    r#""""#,
    r#""\ud800""#,
    r#""\u0000""#,
    "key",
    "1",
    "null",
    r#"'key'"#,
    r#""x" "y""#,
    "\"\u{ff}\"",
];

/// The members the core's rules read: a grant is held to them (`proto::Expect`), a denial and
/// an error are told apart by them.
const RULED: [&str; 16] = [
    "status",
    "key",
    "id",
    "organization_id",
    "customer_id",
    "benefit_id",
    "license_key_id",
    "expires_at",
    "activation",
    "license_key",
    "usage",
    "limit_usage",
    "label",
    "error",
    "detail",
    "loc",
];

/// Members nobody knows (Polar adding fields is no change of verdict).
const UNKNOWN: [&str; 8] = [
    r#""user""#,
    r#""some_future_field""#,
    r#""x""#,
    r#""conditions""#,
    r#""polar_version""#,
    r#""é✓""#,
    r#""\ud83d\ude00""#,
    r#""license_key_id""#,
];

struct Generator {
    r: Rng,
    generic: Vec<Vec<u8>>,
}

impl Generator {
    fn new(seed: u64) -> Generator {
        Generator {
            r: Rng::new(seed),
            generic: generic_tokens(),
        }
    }

    /// A base answer for `op`.
    fn base(&mut self, op: Operation, asked: bool) -> Base {
        let r = &mut self.r;
        let json = |name: String, status: u16, text: &str| Base {
            name,
            status,
            body: Body::Json(Node::parse(text)),
        };
        let raw = |name: &str, status: u16, bytes: &[u8]| Base {
            name: name.to_string(),
            status,
            body: Body::Raw(bytes.to_vec()),
        };
        // Half the time the operation's success, else one of the failures.
        if r.chance(50) {
            return match op {
                Operation::Validate => {
                    let with = asked || r.chance(30);
                    let activation = if with {
                        activation_text()
                    } else {
                        "null".to_string()
                    };
                    match r.below(5) {
                        0 | 1 => json(
                            format!("validate 2026-10 (activation: {with})"),
                            200,
                            &license_text(false, Some(&activation)),
                        ),
                        2 | 3 => json(
                            format!("validate 2027-01 (activation: {with})"),
                            200,
                            &license_text(true, Some(&activation)),
                        ),
                        _ => json(
                            format!("validate §6.2 (activation: {with})"),
                            200,
                            &license_6_2(with),
                        ),
                    }
                }
                Operation::Activate => {
                    let full = r.chance(50);
                    json(
                        format!("activate (2027-01: {full})"),
                        200,
                        &activated_text(full),
                    )
                }
                Operation::Deactivate => match r.below(3) {
                    0 => json("deactivate 200 {}".into(), 200, "{}"),
                    _ => raw("deactivate 204", 204, b""),
                },
            };
        }
        match r.below(20) {
            0..=4 => {
                let d = r.pick(&DETAILS_404);
                json(format!("404 {d}"), 404, &envelope("ResourceNotFound", d))
            }
            5..=7 => {
                let d = r.pick(&DETAILS_403);
                json(format!("403 {d}"), 403, &envelope("NotPermitted", d))
            }
            8 | 9 => {
                let n = r.pick(&["1", "0", "3", "-2"]);
                let d = format!("License key only has {n} more usages.");
                json(format!("400 {d}"), 400, &envelope("BadRequest", &d))
            }
            10 | 11 => {
                let body = r.pick(&BODIES_422);
                json("422".into(), 422, body)
            }
            12 => json(
                "401 invalid_token".into(),
                401,
                r#"{"error":"invalid_token","error_description":"The access token provided is expired, revoked, malformed, or invalid for other reasons."}"#,
            ),
            13 => match r.below(2) {
                0 => json(
                    "411".into(),
                    411,
                    r#"{"error":"LengthRequired","detail":"A Content-Length header is required."}"#,
                ),
                _ => json(
                    "413".into(),
                    413,
                    r#"{"error":"RequestBodyTooLarge","detail":"Request body exceeded the maximum allowed size of 10485760 bytes."}"#,
                ),
            },
            14 => json("404 bare".into(), 404, r#"{"detail":"Not Found"}"#),
            15 => raw("429", 429, b""),
            16 => raw("500", 500, b"Internal Server Error"),
            17 => raw(
                "502 html",
                502,
                b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n",
            ),
            18 => {
                let status = *r.pick(&[200, 403, 401]);
                raw(
                    "captive portal",
                    status,
                    b"<!DOCTYPE html><html><body>Sign in to the hotel network</body></html>",
                )
            }
            _ => {
                let status = *r.pick(&[200, 503, 404, 400]);
                raw("empty", status, b"")
            }
        }
    }

    /// A token for the slot `name` (its own pool 60 times in 100, when it has one).
    fn token_for(&mut self, name: Option<&str>) -> Vec<u8> {
        if let Some(pool) = name.and_then(tokens_for) {
            if self.r.chance(60) {
                return self.r.pick(&pool).clone().into_bytes();
            }
        }
        self.r.pick(&self.generic).clone()
    }

    /// A near miss: one member the rules read set to a value of its own pool (an answer that
    /// is still Polar's JSON and close to a verdict); its description.
    fn near_miss(&mut self, root: &mut Node) -> String {
        let mut slots = Vec::new();
        root.slots(&mut Vec::new(), &mut slots);
        let named: Vec<(Vec<usize>, String)> = slots
            .into_iter()
            .filter_map(|p| {
                let name = root.name_at(&p)?;
                (RULED.contains(&name.as_str()) && tokens_for(&name).is_some()).then_some((p, name))
            })
            .collect();
        if named.is_empty() {
            return self.mutate(root);
        }
        let (path, name) = self.r.pick(&named).clone();
        let pool = tokens_for(&name).unwrap_or_default();
        let t = self.r.pick(&pool).clone();
        *root.at(&path) = Node::Tok(t.clone().into_bytes());
        format!("near miss: {name} := {}", escaped(t.as_bytes()))
    }

    /// One mutation of the tree; its description.
    fn mutate(&mut self, root: &mut Node) -> String {
        let mut slots = Vec::new();
        root.slots(&mut Vec::new(), &mut slots);
        let mut objects = Vec::new();
        root.objects(&mut Vec::new(), &mut objects);
        let kind = self.r.below(100);
        if slots.is_empty() || kind < 4 {
            // The whole body one token.
            let t = self.token_for(None);
            *root = Node::Tok(t.clone());
            return format!("body := {}", escaped(&t));
        }
        // A third of the time a member the rules read (what decides a verdict), else any.
        let ruled: Vec<Vec<usize>> = slots
            .iter()
            .filter(|p| root.name_at(p).is_some_and(|n| RULED.contains(&n.as_str())))
            .cloned()
            .collect();
        let path = if !ruled.is_empty() && self.r.chance(33) {
            self.r.pick(&ruled).clone()
        } else {
            self.r.pick(&slots).clone()
        };
        let name = root.name_at(&path);
        let member = name.is_some();
        let label = name.clone().unwrap_or_else(|| format!("{path:?}"));
        match kind {
            4..=49 => {
                let t = self.token_for(name.as_deref());
                *root.at(&path) = Node::Tok(t.clone());
                format!("{label} := {}", escaped(&t))
            }
            50..=57 if member => {
                let new = self.r.pick(&NAMES).as_bytes().to_vec();
                let (&i, parent) = path.split_last().unwrap_or((&0, &[]));
                if let Some(members) = root.at(parent).members() {
                    members[i].0 = new.clone();
                }
                format!("rename {label} to {}", escaped(&new))
            }
            58..=67 => {
                let (&i, parent) = path.split_last().unwrap_or((&0, &[]));
                match root.at(parent) {
                    Node::Obj(members) => {
                        members.remove(i);
                    }
                    Node::Arr(items) => {
                        items.remove(i);
                    }
                    Node::Tok(_) => {}
                }
                format!("remove {label}")
            }
            68..=75 if member => {
                let (&i, parent) = path.split_last().unwrap_or((&0, &[]));
                let value = if self.r.chance(20) {
                    None
                } else {
                    Some(self.token_for(name.as_deref()))
                };
                let first = self.r.chance(30);
                if let Some(members) = root.at(parent).members() {
                    let (n, v) = members[i].clone();
                    let v = value.clone().map_or(v, Node::Tok);
                    let at = if first { i } else { members.len() };
                    members.insert(at, (n, v));
                }
                let what = value.map_or("the same value".to_string(), |v| escaped(&v));
                let place = if first { "before" } else { "at the end" };
                format!("{label} twice, {place}, with {what}")
            }
            76..=82 => {
                let depth = *self
                    .r
                    .pick(&[1, 2, 3, 58, 60, 61, 62, 63, 64, 65, 127, 130]);
                let objects = self.r.chance(50);
                let mut inner = Vec::new();
                root.at(&path).write(&mut inner, false);
                let text = nested(depth, objects, &String::from_utf8_lossy(&inner));
                *root.at(&path) = Node::Tok(text.into_bytes());
                let form = if objects { "objects" } else { "arrays" };
                format!("{label} wrapped in {depth} {form}")
            }
            83..=90 if !objects.is_empty() => {
                let at = self.r.pick(&objects).clone();
                let name = self.r.pick(&UNKNOWN).as_bytes().to_vec();
                let value = self.token_for(None);
                if let Some(members) = root.at(&at).members() {
                    let i = self.r.below(members.len() + 1);
                    members.insert(i, (name.clone(), Node::Tok(value.clone())));
                }
                format!("add {} := {} in {at:?}", escaped(&name), escaped(&value))
            }
            _ => {
                // The envelope: `error` and `detail` set, removed or added, at the root.
                let which = *self.r.pick(&["error", "detail", "error_description"]);
                let value = if which == "error_description" {
                    quoted("The token lacks a scope.").into_bytes()
                } else {
                    self.token_for(Some(which))
                };
                let remove = self.r.chance(15);
                let Some(members) = root.members() else {
                    return "envelope: not an object".into();
                };
                let name = quoted(which).into_bytes();
                let at = members.iter().position(|(n, _)| *n == name);
                match (at, remove) {
                    (Some(i), true) => {
                        members.remove(i);
                        format!("envelope: remove {which}")
                    }
                    (Some(i), false) => {
                        members[i].1 = Node::Tok(value.clone());
                        format!("envelope: {which} := {}", escaped(&value))
                    }
                    (None, _) => {
                        members.push((name, Node::Tok(value.clone())));
                        format!("envelope: add {which} := {}", escaped(&value))
                    }
                }
            }
        }
    }

    /// One mutation of the bytes; its description.
    fn mutate_bytes(&mut self, body: &mut Vec<u8>) -> String {
        let r = &mut self.r;
        match r.below(7) {
            0 => {
                let at = r.below(body.len() + 1);
                body.truncate(at);
                format!("truncated at {at}")
            }
            1 if !body.is_empty() => {
                let at = r.below(body.len());
                let bit = 1u8 << r.below(8);
                body[at] ^= bit;
                format!("byte {at} ^= {bit:#04x}")
            }
            2 => {
                let garbage = *r.pick::<&[u8]>(&[
                    &b" x"[..],
                    b"}",
                    b"]",
                    b",",
                    b"\0",
                    b"\n\n",
                    b" \t\r\n",
                    b"{}",
                    b"\xc2\xa0",
                    b"\x0c",
                    b"\xff",
                    b"<!-- cached -->",
                ]);
                body.extend_from_slice(garbage);
                format!("followed by {}", escaped(garbage))
            }
            3 => {
                body.splice(0..0, b"\xef\xbb\xbf".iter().copied());
                "a BOM first".to_string()
            }
            4 => {
                let lead = *r.pick::<&[u8]>(&[&b" \n"[..], b"\x0c", b"\xc2\xa0", b"\x00"]);
                body.splice(0..0, lead.iter().copied());
                format!("preceded by {}", escaped(lead))
            }
            _ => {
                let at = r.below(body.len() + 1);
                let byte = *r.pick(&[0x00, 0x01, 0x1f, 0x7f, 0x80, 0xc0, 0xff, b'"', b'\\']);
                body.insert(at, byte);
                format!("byte {byte:#04x} inserted at {at}")
            }
        }
    }

    fn case(&mut self) -> Case {
        let op = *self.r.pick(&[
            Operation::Validate,
            Operation::Validate,
            Operation::Activate,
            Operation::Deactivate,
        ]);
        let asked = op == Operation::Validate && self.r.chance(50);
        let base = self.base(op, asked);
        let status = if self.r.chance(75) {
            base.status
        } else {
            *self.r.pick(&STATUSES)
        };
        let mut what = vec![format!("{} as {status}", base.name)];
        let count = 1 + self.r.below(3);
        let spaced = self.r.chance(30);
        let body = match base.body {
            Body::Json(mut tree) if self.r.chance(20) => {
                what.push(self.near_miss(&mut tree));
                let mut body = Vec::new();
                tree.write(&mut body, spaced);
                body
            }
            Body::Json(mut tree) => {
                let mut byte_level = 0;
                for _ in 0..count {
                    if self.r.chance(15) {
                        byte_level += 1;
                    } else {
                        what.push(self.mutate(&mut tree));
                    }
                }
                let mut body = Vec::new();
                tree.write(&mut body, spaced);
                for _ in 0..byte_level {
                    what.push(self.mutate_bytes(&mut body));
                }
                body
            }
            Body::Raw(mut body) => {
                for _ in 0..count {
                    if self.r.chance(50) {
                        what.push(self.mutate_bytes(&mut body));
                    }
                }
                body
            }
        };
        let mut headers = Vec::new();
        if self.r.chance(60) {
            for d in date_header(&mut self.r) {
                headers.push(("date".to_string(), d));
            }
        }
        if self.r.chance(status_weight(status)) {
            for v in retry_header(&mut self.r) {
                headers.push(("retry-after".to_string(), v));
            }
        }
        if self.r.chance(10) {
            headers.push(("content-type".to_string(), "application/json".to_string()));
        }
        if self.r.chance(15) {
            for v in age_header(&mut self.r) {
                headers.push(("age".to_string(), v));
            }
        }
        Case {
            op,
            status,
            headers,
            body,
            activation_asked: asked,
            what: what.join("; "),
        }
    }
}

/// An `Age` header (a relay's replay of a stored answer): seconds within and past the grace,
/// and what does not read (a sign, a fraction, words, a number past `i64`, two headers).
fn age_header(r: &mut Rng) -> Vec<String> {
    let one = |r: &mut Rng| {
        r.pick(&[
            "0",
            "1",
            "299",
            "3600",
            "86400",
            "604800",
            "604801",
            "9999999999",
            "99999999999999999999",
            " 12",
            "-5",
            "1.5",
            "12s",
            "",
            "\t7\t",
        ])
        .to_string()
    };
    if r.chance(10) {
        vec![one(r), one(r)]
    } else {
        vec![one(r)]
    }
}

/// How often (percent) a `retry-after` comes with this status.
fn status_weight(status: u16) -> u64 {
    if status == 429 {
        80
    } else {
        15
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
#[allow(clippy::unwrap_used, clippy::panic)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_one_run() {
        let a: Vec<Case> = cases(7).take(300).collect();
        let b: Vec<Case> = cases(7).take(300).collect();
        assert!(a == b);
        let c: Vec<Case> = cases(8).take(300).collect();
        assert!(a != c);
    }

    #[test]
    fn the_bases_are_json_and_read_back_as_written() {
        for text in [
            license_text(false, Some("null")),
            license_text(true, Some(&activation_text())),
            activated_text(true),
            license_6_2(false),
            license_6_2(true),
        ] {
            let mut out = Vec::new();
            Node::parse(&text).write(&mut out, false);
            let compact: String = text
                .split('\n')
                .map(str::trim)
                .collect::<Vec<_>>()
                .join("")
                .replace("\": ", "\":")
                .replace(", \"", ",\"")
                .replace(", ", ",");
            assert_eq!(String::from_utf8(out).unwrap(), compact);
        }
    }

    #[test]
    fn dates_are_written_as_http_and_rfc_3339_write_them() {
        assert_eq!(imf_fixdate(NOW), "Mon, 21 Sep 2026 14:13:20 GMT");
        assert_eq!(imf_fixdate(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(imf_fixdate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(
            polar_license::proto::http_date(&imf_fixdate(NOW - 7200)),
            Some(NOW - 7200)
        );
    }

    #[test]
    fn the_run_covers_every_status_and_both_kinds_of_body() {
        let mut statuses = std::collections::BTreeSet::new();
        let (mut json, mut not_json) = (0, 0);
        for case in cases(1).take(3000) {
            statuses.insert(case.status);
            match polar_license::strict::parse(&case.body) {
                Ok(_) => json += 1,
                Err(_) => not_json += 1,
            }
        }
        for s in STATUSES {
            assert!(statuses.contains(&s), "{s}");
        }
        assert!(json > 1000 && not_json > 500, "{json} JSON, {not_json} not");
    }

    #[test]
    fn bodies_print_escaped() {
        assert_eq!(escaped(b"a\"\xff\n\xe9"), "a\\\"\\xff\\n\\xe9");
    }
}
