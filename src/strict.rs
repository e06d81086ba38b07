//! The one reading of a body as Polar's JSON, on every face: what is not read here is not
//! Polar's answer (`protocol_error`), whichever parser a face would otherwise use.
//!
//! Natively the typed model is then read by serde from the same bytes; in the npm package the
//! engine reads this module's [`Value`] through the core's schema table. Both see only bodies
//! that pass here, so a lenient corner of one parser (serde skipping an ignored string without
//! checking it, the JS host's `JSON.parse` taking a lone surrogate, `1e400` as `Infinity`, the
//! last of two members of one name) can never make the faces disagree.
//!
//! The rules, each the strict reading (RFC 8259 and what serde_json's typed reading refuses):
//!
//! * the whole body is UTF-8, one JSON value with only JSON whitespace around it (no BOM);
//! * strings hold no raw control character; escapes are the eight of RFC 8259 and `\uXXXX`,
//!   whose surrogates come in pairs (a lone one is refused, as serde_json refuses it);
//! * numbers follow the grammar (no `+`, no leading zero, no `NaN`); one that no `f64` can
//!   hold (`1e400`) is refused; integers keep their exact value as serde_json keeps it (a
//!   `u64`, a negative `i64`, else the nearest `f64`), so `1.0` is a float and `1` an integer;
//! * no object has two members of one name, nor more than [`MAX_MEMBERS`];
//! * objects and arrays nest at most [`MAX_DEPTH`] deep (serde_json stops at 128: this one
//!   refuses first, so its limit never decides).
//!
//! [`Value`] reads through [`JsonIn`] exactly as a `serde_json::Value` of the same text does.

use crate::json::{JsonIn, Num};

/// How deep objects and arrays may nest (Polar's answers nest four deep).
pub const MAX_DEPTH: usize = 64;

/// How many members one object may have (Polar's have a few dozen; metadata at most 50).
pub const MAX_MEMBERS: usize = 1024;

/// A JSON value that passed the strict reading.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A non-negative integer that fits `u64`.
    UInt(u64),
    /// A negative integer that fits `i64`.
    Int(i64),
    /// Any other number (a fraction, an exponent, `-0`, an integer past `u64`).
    Float(f64),
    /// A string.
    Str(String),
    /// An array.
    Array(Vec<Value>),
    /// An object's members, in name order (no name twice), as a `serde_json::Value`'s map
    /// keeps them.
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The member `name` of an object (`None` when this is no object or has none).
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members
                .binary_search_by(|(n, _)| n.as_str().cmp(name))
                .ok()
                .and_then(|i| members.get(i))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The member `name` when it is a string.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        match self.get(name)? {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Why a body is not Polar's JSON: a short reason and the byte offset where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotJson {
    /// What is wrong, e.g. `lone surrogate`.
    pub why: &'static str,
    /// The byte offset in the body.
    pub at: usize,
}

impl NotJson {
    /// `why at byte N`, for an error's detail.
    pub fn text(&self) -> String {
        [
            self.why,
            " at byte ",
            &crate::decimal::digits(self.at as u64),
        ]
        .concat()
    }
}

/// Reads `body` as Polar's JSON (see the module's rules).
pub fn parse(body: &[u8]) -> Result<Value, NotJson> {
    if let Err(e) = std::str::from_utf8(body) {
        return Err(NotJson {
            why: "not UTF-8",
            at: e.valid_up_to(),
        });
    }
    let mut r = Reader { s: body, at: 0 };
    r.space();
    let value = r.value(0)?;
    r.space();
    if r.at != body.len() {
        return Err(r.fail("trailing characters"));
    }
    Ok(value)
}

struct Reader<'a> {
    s: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn fail(&self, why: &'static str) -> NotJson {
        NotJson { why, at: self.at }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        let hit = self.peek() == Some(byte);
        if hit {
            self.at += 1;
        }
        hit
    }

    fn word(&mut self, word: &[u8], value: Value) -> Result<Value, NotJson> {
        if self.s.get(self.at..self.at + word.len()) == Some(word) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(self.fail("expected a value"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, NotJson> {
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(Value::Str),
            Some(b't') => self.word(b"true", Value::Bool(true)),
            Some(b'f') => self.word(b"false", Value::Bool(false)),
            Some(b'n') => self.word(b"null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.fail("expected a value")),
            None => Err(self.fail("unexpected end")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, NotJson> {
        let mut members: Vec<(String, Value)> = Vec::new();
        if self.open(depth, b'}')? {
            return Ok(Value::Object(members));
        }
        loop {
            self.space();
            if self.peek() != Some(b'"') {
                return Err(self.fail("expected a member name"));
            }
            let at = self.at;
            let name = self.string()?;
            self.space();
            if !self.eat(b':') {
                return Err(self.fail("expected ':'"));
            }
            self.space();
            let value = self.value(depth)?;
            // Kept in name order. Two members of one name: JSON.parse keeps the last, serde's
            // typed reading refuses a known field twice; neither is Polar's answer.
            match members.binary_search_by(|(n, _)| n.as_str().cmp(&name)) {
                Ok(_) => {
                    return Err(NotJson {
                        why: "a member name twice",
                        at,
                    })
                }
                Err(_) if members.len() == MAX_MEMBERS => {
                    return Err(NotJson {
                        why: "too many members",
                        at,
                    })
                }
                Err(place) => members.insert(place, (name, value)),
            }
            if self.closed(b'}')? {
                return Ok(Value::Object(members));
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, NotJson> {
        let mut items = Vec::new();
        if self.open(depth, b']')? {
            return Ok(Value::Array(items));
        }
        loop {
            self.space();
            items.push(self.value(depth)?);
            if self.closed(b']')? {
                return Ok(Value::Array(items));
            }
        }
    }

    /// Steps over the `{` or `[` at hand (nested `depth` deep) and the space after it: `true`
    /// when `close` follows at once (an empty object or array, `close` eaten). Inlined, as is
    /// [`Reader::closed`]: as calls they cost the npm default entry 77 bytes gzipped, inlined
    /// it is within a few bytes of the two copies (bash scripts/build-npm.sh && bash
    /// scripts/size.sh --no-build, 2026-11-26).
    #[inline(always)]
    fn open(&mut self, depth: usize, close: u8) -> Result<bool, NotJson> {
        if depth > MAX_DEPTH {
            return Err(self.fail("nested too deep"));
        }
        self.at += 1;
        self.space();
        Ok(self.eat(close))
    }

    /// After a member or an item: `,` (another follows: `false`) or `close` (the end: `true`).
    #[inline(always)]
    fn closed(&mut self, close: u8) -> Result<bool, NotJson> {
        self.space();
        if self.eat(b',') {
            return Ok(false);
        }
        if self.eat(close) {
            return Ok(true);
        }
        Err(self.fail("expected ','"))
    }

    fn hex4(&mut self) -> Result<u32, NotJson> {
        let mut n = 0u32;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(c @ b'0'..=b'9') => c - b'0',
                Some(c @ b'a'..=b'f') => c - b'a' + 10,
                Some(c @ b'A'..=b'F') => c - b'A' + 10,
                _ => return Err(self.fail("bad escape")),
            };
            n = n * 16 + u32::from(d);
            self.at += 1;
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<String, NotJson> {
        self.at += 1; // "
        let mut out = String::new();
        loop {
            let start = self.at;
            // The run of plain characters up to the next quote, backslash or control byte.
            while matches!(self.peek(), Some(c) if c != b'"' && c != b'\\' && c >= 0x20) {
                self.at += 1;
            }
            // The body is UTF-8 and the run stops at ASCII bytes only: a whole-character slice.
            out.push_str(std::str::from_utf8(&self.s[start..self.at]).unwrap_or_default());
            match self.peek() {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.at += 1;
                    let c = match self.peek() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.at += 1;
                            let at = self.at;
                            let hi = self.hex4()?;
                            let code = match hi {
                                0xD800..=0xDBFF => {
                                    if !(self.eat(b'\\') && self.eat(b'u')) {
                                        return Err(NotJson {
                                            why: "lone surrogate",
                                            at,
                                        });
                                    }
                                    let lo = self.hex4()?;
                                    if !(0xDC00..=0xDFFF).contains(&lo) {
                                        return Err(NotJson {
                                            why: "lone surrogate",
                                            at,
                                        });
                                    }
                                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                                }
                                0xDC00..=0xDFFF => {
                                    return Err(NotJson {
                                        why: "lone surrogate",
                                        at,
                                    })
                                }
                                n => n,
                            };
                            out.push(char::from_u32(code).ok_or(NotJson {
                                why: "bad escape",
                                at,
                            })?);
                            continue;
                        }
                        _ => return Err(self.fail("bad escape")),
                    };
                    self.at += 1;
                    out.push(c);
                }
                Some(_) => return Err(self.fail("control character")),
                None => return Err(self.fail("unexpected end")),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        self.at - start
    }

    fn number(&mut self) -> Result<Value, NotJson> {
        let start = self.at;
        let negative = self.eat(b'-');
        let int_start = self.at;
        match self.peek() {
            Some(b'0') => {
                self.at += 1;
                if matches!(self.peek(), Some(b'0'..=b'9')) {
                    return Err(self.fail("bad number"));
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.fail("bad number")),
        }
        let int_end = self.at;
        let mut integral = true;
        if self.eat(b'.') {
            integral = false;
            if self.digits() == 0 {
                return Err(self.fail("bad number"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            integral = false;
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return Err(self.fail("bad number"));
            }
        }
        let text = std::str::from_utf8(&self.s[start..self.at]).unwrap_or_default();
        if integral {
            let magnitude = crate::decimal::read_u64(&self.s[int_start..int_end]);
            match (negative, magnitude) {
                (false, Some(n)) => return Ok(Value::UInt(n)),
                // -0 is a float, as serde_json reads it; a magnitude past i64 too.
                (true, Some(n)) if n != 0 && n <= 1 << 63 => {
                    return Ok(Value::Int((n as i64).wrapping_neg()))
                }
                _ => {}
            }
        }
        match float(text) {
            Some(x) if x.is_finite() => Ok(Value::Float(x)),
            _ => Err(NotJson {
                why: "number out of range",
                at: start,
            }),
        }
    }
}

/// The nearest `f64` to a JSON number's text, by a parser every face already carries: natively
/// serde_json's (with `float_roundtrip`, correctly rounded), in a JS host the host's own (also
/// correctly rounded), so no third float parser is linked into either (std's costs a C
/// program 15 KB). Infinite when it overflows.
fn float(text: &str) -> Option<f64> {
    #[cfg(target_arch = "wasm32")]
    {
        Some(js_sys::Number::parse_float(text))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        serde_json::from_str::<f64>(text)
            .ok()
            .or(Some(f64::INFINITY))
    }
}

impl JsonIn for Value {
    fn member(&self, name: &str) -> Option<Value> {
        self.get(name).cloned()
    }

    fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    fn is_object(&self) -> bool {
        matches!(self, Value::Object(_))
    }

    fn string(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.clone()),
            _ => None,
        }
    }

    fn number(&self) -> Option<Num> {
        match *self {
            Value::UInt(n) => Some(match i64::try_from(n) {
                Ok(i) => Num::Int(i),
                Err(_) => Num::Float(n as f64),
            }),
            Value::Int(i) => Some(Num::Int(i)),
            Value::Float(x) => Some(Num::Float(x)),
            _ => None,
        }
    }

    fn boolean(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn unsigned(&self) -> Option<u64> {
        match *self {
            Value::UInt(n) => Some(n),
            _ => None,
        }
    }

    /// In name order, as a `serde_json::Value`'s map gives them.
    fn members(&self) -> Option<Vec<(String, Value)>> {
        match self {
            Value::Object(members) => Some(members.clone()),
            _ => None,
        }
    }

    fn items(&self) -> Option<Vec<Value>> {
        match self {
            Value::Array(items) => Some(items.clone()),
            _ => None,
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
#[allow(clippy::unwrap_used, clippy::panic)] // tests: a panic is the failure report
mod tests {
    use super::*;

    /// What `JsonIn` reads of a value, as a comparable tree.
    fn reading<J: JsonIn>(v: &J) -> String {
        if v.is_null() {
            return "null".into();
        }
        if let Some(b) = v.boolean() {
            return b.to_string();
        }
        if let Some(s) = v.string() {
            return format!("{s:?}");
        }
        if let Some(n) = v.number() {
            return format!("{n:?}/{:?}/{:?}", v.int(), v.unsigned());
        }
        if let Some(items) = v.items() {
            return format!(
                "[{}]",
                items.iter().map(reading).collect::<Vec<_>>().join(",")
            );
        }
        if let Some(members) = v.members() {
            let inner: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("{k:?}:{}", reading(v)))
                .collect();
            return format!("{{{}}}", inner.join(","));
        }
        "?".into()
    }

    /// Every text serde_json's `Value` reads, this reads the same way; every text it refuses,
    /// this refuses (and more: see `stricter_than_serde`).
    #[test]
    fn reads_what_serde_json_reads_as_it_reads_it() {
        let texts = [
            "null",
            "true",
            "false",
            "0",
            "-0",
            "1",
            "-1",
            "1.0",
            "1e2",
            "1E+2",
            "-1.5e-3",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "9223372036854775807",
            "9223372036854775808",
            "1e308",
            "1e-400",
            "0.1",
            "123456789012345678901234567890",
            r#""a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00""#,
            r#""\u0000""#,
            "\"é✓\"",
            "[]",
            "{}",
            " [1, 2 ,3] ",
            r#"{"a":{"b":[{"c":null}]}}"#,
            r#"{"b":1,"a":2}"#,
            "01",
            "1.",
            ".1",
            "+1",
            "-",
            "1e",
            "1e+",
            "NaN",
            "Infinity",
            "[1,]",
            "{\"a\":1,}",
            "{a:1}",
            "[1 2]",
            "\"\t\"",
            "\"\\x\"",
            "\"\\u12\"",
            "tru",
            "nul",
            "[",
            "{",
            "\"",
            "{\"a\"}",
            "{\"a\" 1}",
            "1 2",
            "",
            "  ",
        ];
        for text in texts {
            let serde: Result<serde_json::Value, _> = serde_json::from_str(text);
            let ours = parse(text.as_bytes());
            match (&serde, &ours) {
                (Ok(s), Ok(o)) => assert_eq!(reading(s), reading(o), "{text}"),
                (Err(_), Err(_)) => {}
                _ => panic!("{text}: serde {serde:?}, strict {ours:?}"),
            }
        }
    }

    #[test]
    fn refusals_say_why() {
        for (text, why) in [
            (r#""\ud800""#, "lone surrogate"),
            (r#""\udc00x""#, "lone surrogate"),
            (r#""\ud800\u0041""#, "lone surrogate"),
            (r#"{"\ud800":1}"#, "lone surrogate"),
            ("1e400", "number out of range"),
            ("-1e400", "number out of range"),
            (r#"{"a":1,"a":1}"#, "a member name twice"),
            (r#"{"a":{"x":1,"y":2,"x":3}}"#, "a member name twice"),
            ("\u{feff}{}", "expected a value"),
        ] {
            assert_eq!(
                parse(text.as_bytes()).map_err(|e| e.why),
                Err(why),
                "{text}"
            );
        }
        assert_eq!(parse(b"\"\xff\"").map_err(|e| e.why), Err("not UTF-8"));
        let object = |n: usize| {
            let members: Vec<String> = (0..n).map(|i| format!("\"m{i}\":{i}")).collect();
            format!("{{{}}}", members.join(","))
        };
        assert!(parse(object(MAX_MEMBERS).as_bytes()).is_ok());
        assert_eq!(
            parse(object(MAX_MEMBERS + 1).as_bytes()).map_err(|e| e.why),
            Err("too many members")
        );
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse(deep(MAX_DEPTH).as_bytes()).is_ok());
        assert_eq!(
            parse(deep(MAX_DEPTH + 1).as_bytes()).map_err(|e| e.why),
            Err("nested too deep")
        );
        // Deep enough to overflow a recursive reader's stack: refused, not a crash.
        assert!(parse(deep(1_000_000).as_bytes()).is_err());
    }

    #[test]
    fn errors_say_where() {
        let e = parse(br#"{"a": tru}"#).unwrap_err();
        assert_eq!(e.text(), "expected a value at byte 6");
    }
}
