//! The core's JSON, without serde's generated code: a small writer ([`JsonOut`]) and a reader
//! trait ([`JsonIn`]) over whatever parsed the text.
//!
//! The formats the core owns (the request bodies, the cache record's body, the license as the
//! cache keeps it) are written and read through these, once, for every face. What parses the
//! text is the face's: natively `serde_json::Value`; in the npm package the JS host's own
//! `JSON.parse` (`crate::wasm::host`), so the package's WebAssembly carries no JSON parser and
//! no serde code at all (issue #17: half its size was serde's monomorphized visitors).

// Where `digits` was: `polar_license::json::digits` keeps working.
pub use crate::decimal::digits;
use crate::error::{Denial, Error};
use crate::metadata::{MetaValue, Metadata};

/// A JSON text being written. Objects are written with [`JsonOut::key`], which puts the comma
/// in.
#[derive(Debug, Default)]
pub struct JsonOut(String);

impl JsonOut {
    /// An empty text.
    pub fn new() -> JsonOut {
        JsonOut(String::with_capacity(256))
    }

    /// `{"method", "url", "headers": [[name, value]], "body"}`: a request for a JS host to send
    /// with `fetch`, as the npm package's modules hand it over.
    pub fn request<K: AsRef<str>>(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(K, String)],
        body: &[u8],
    ) -> &mut JsonOut {
        self.raw("{").key("method").str(method).key("url").str(url);
        self.key("headers").raw("[");
        for (i, (k, v)) in headers.iter().enumerate() {
            self.raw(if i == 0 { "[" } else { ",[" })
                .str(k.as_ref())
                .raw(",")
                .str(v)
                .raw("]");
        }
        self.raw("]")
            .key("body")
            .str(&String::from_utf8_lossy(body))
            .raw("}")
    }

    /// The members every face's error object opens with: `code` (the reason code), `detail`,
    /// `userMessage` and its `nextStep` (the core's, [`Error::message`]), and `field` for bad
    /// input. The object's braces and its other members are the caller's.
    pub fn error_members(&mut self, err: &Error) -> &mut JsonOut {
        self.key("code").str(err.reason().code());
        self.key("detail").str(&err.detail());
        let said = err.message();
        self.key("userMessage").str(&said.text());
        self.key("nextStep").str(said.next_step());
        if let Error::InvalidInput { field, .. } = err {
            self.key("field").str(field);
        }
        self
    }

    /// The members of a denial's error object: `code` (its reason code), `detail`,
    /// `userMessage` and `nextStep` (the reason's sentence and step, [`Denial::reason_said`]:
    /// why a key stopped is said by the host from the core's words where it has them, the npm
    /// package's `polar_license_stopped.js`, so no wasm module carries them) and the HTTP
    /// `status`. The braces and other members are the caller's.
    pub fn denial_members(&mut self, d: &Denial) -> &mut JsonOut {
        self.key("code").str(d.reason.code());
        self.key("detail").str(&d.detail);
        let said = d.reason_said();
        self.key("userMessage").str(&said.text());
        self.key("nextStep").str(said.next_step());
        self.key("status").uint(u64::from(d.status))
    }

    /// Appends text as it is (already JSON).
    pub fn raw(&mut self, text: &str) -> &mut JsonOut {
        self.0.push_str(text);
        self
    }

    /// A string, escaped as serde_json escapes it (`"`, `\`, the control characters; nothing
    /// else, so non-ASCII text is written as UTF-8).
    pub fn str(&mut self, text: &str) -> &mut JsonOut {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.0.push('"');
        // The text between escapes is copied whole (a char at a time cost the npm engine's
        // cached check a fifth of its time); every escaped character is ASCII, so each
        // run ends on a char boundary.
        let mut from = 0;
        for (at, &b) in text.as_bytes().iter().enumerate() {
            if b >= 0x20 && b != b'"' && b != b'\\' {
                continue;
            }
            self.0.push_str(text.get(from..at).unwrap_or_default());
            from = at + 1;
            self.0.push('\\');
            let short = match b {
                b'"' | b'\\' => b,
                b'\n' => b'n',
                b'\r' => b'r',
                b'\t' => b't',
                0x08 => b'b',
                0x0c => b'f',
                _ => {
                    self.0.push_str("u00");
                    self.0.push(char::from(HEX[usize::from(b >> 4)]));
                    HEX[usize::from(b & 15)]
                }
            };
            self.0.push(char::from(short));
        }
        self.0.push_str(text.get(from..).unwrap_or_default());
        self.0.push('"');
        self
    }

    /// An integer (no `core::fmt`: the wasm build keeps its formatting machinery small).
    pub fn int(&mut self, n: i64) -> &mut JsonOut {
        if n < 0 {
            self.0.push('-');
        }
        self.uint(n.unsigned_abs())
    }

    /// An unsigned integer.
    pub fn uint(&mut self, n: u64) -> &mut JsonOut {
        crate::decimal::push_digits(&mut self.0, n);
        self
    }

    /// A float: natively as serde_json writes it (ryu's shortest form, `1.0` for one), in the
    /// wasm build as the host's `JSON.stringify` does (`1` for one: the same number). A
    /// non-finite float, which the input checks refuse, is `null`, as serde_json writes it.
    pub fn float(&mut self, x: f64) -> &mut JsonOut {
        if !x.is_finite() {
            return self.raw("null");
        }
        #[cfg(target_arch = "wasm32")]
        {
            let text = js_sys::JSON::stringify(&wasm_bindgen::JsValue::from_f64(x))
                .ok()
                .and_then(|s| s.as_string())
                .unwrap_or_else(|| "null".to_string());
            self.raw(&text)
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let text = serde_json::to_string(&x).unwrap_or_else(|_| "null".to_string());
            self.raw(&text)
        }
    }

    /// `true` or `false`.
    pub fn bool(&mut self, b: bool) -> &mut JsonOut {
        self.raw(if b { "true" } else { "false" })
    }

    /// `null`.
    pub fn null(&mut self) -> &mut JsonOut {
        self.raw("null")
    }

    /// `,"name":` (or `"name":` right after an opening brace).
    pub fn key(&mut self, name: &str) -> &mut JsonOut {
        if self.0.as_bytes().last() != Some(&b'{') {
            self.0.push(',');
        }
        self.str(name).raw(":")
    }

    /// A string or `null`.
    pub fn opt_str(&mut self, value: Option<&str>) -> &mut JsonOut {
        match value {
            Some(s) => self.str(s),
            None => self.null(),
        }
    }

    /// An integer or `null`.
    pub fn opt_int(&mut self, value: Option<i64>) -> &mut JsonOut {
        match value {
            Some(n) => self.int(n),
            None => self.null(),
        }
    }

    /// A metadata value: the bare scalar.
    pub fn meta_value(&mut self, value: &MetaValue) -> &mut JsonOut {
        match value {
            MetaValue::Bool(b) => self.bool(*b),
            MetaValue::Int(i) => self.int(*i),
            MetaValue::Float(x) => self.float(*x),
            MetaValue::Str(s) => self.str(s),
        }
    }

    /// A metadata object, its keys in order (a `BTreeMap`'s: sorted, as serde_json writes it).
    pub fn meta(&mut self, metadata: &Metadata) -> &mut JsonOut {
        self.raw("{");
        for (name, value) in metadata {
            self.key(name).meta_value(value);
        }
        self.raw("}")
    }

    /// The text written so far, taken (the writer is empty after).
    pub fn done(&mut self) -> String {
        std::mem::take(&mut self.0)
    }

    /// The text written so far.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A JSON number as the core reads it: an integer that fits `i64`, or another number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    /// An integer in `i64`'s range.
    Int(i64),
    /// Any other number.
    Float(f64),
}

/// A parsed JSON value, as the core reads it, whoever parsed it (natively `serde_json::Value`,
/// in the npm package the host's `JSON.parse`).
pub trait JsonIn: Sized {
    /// The member `name` of an object: `None` when this is no object or has no such member.
    fn member(&self, name: &str) -> Option<Self>;
    /// `true` for `null`.
    fn is_null(&self) -> bool;
    /// `true` for an object (not an array, not `null`).
    fn is_object(&self) -> bool;
    /// The string, if this is one.
    fn string(&self) -> Option<String>;
    /// The number, if this is one.
    fn number(&self) -> Option<Num>;
    /// The boolean, if this is one.
    fn boolean(&self) -> Option<bool>;
    /// An object's members, in order: `None` when this is no object.
    fn members(&self) -> Option<Vec<(String, Self)>>;
    /// An array's items: `None` when this is no array.
    fn items(&self) -> Option<Vec<Self>>;

    /// The integer, if this is a number that is one and fits `i64`.
    fn int(&self) -> Option<i64> {
        match self.number()? {
            Num::Int(n) => Some(n),
            Num::Float(_) => None,
        }
    }

    /// The unsigned integer, if this is a number that is one and fits `u64` (natively past
    /// `i64` too; through the JS host exact up to 2⁵³, as every number there).
    fn unsigned(&self) -> Option<u64> {
        self.int().and_then(|n| u64::try_from(n).ok())
    }

    /// A member that may be absent or `null` (`Some(None)`), else read by `read` (`None`
    /// when it cannot be).
    fn optional<T>(&self, name: &str, read: impl FnOnce(&Self) -> Option<T>) -> Option<Option<T>> {
        match self.member(name) {
            None => Some(None),
            Some(v) if v.is_null() => Some(None),
            Some(v) => read(&v).map(Some),
        }
    }
}

/// A metadata object (`conditions`, `meta`, a customer's `metadata`): `None` when `v` is not
/// an object of strings, numbers and booleans. An integer that does not fit `i64` is a float,
/// as serde reads it.
pub fn read_metadata<J: JsonIn>(v: &J) -> Option<Metadata> {
    let mut out = Metadata::new();
    for (name, value) in v.members()? {
        out.insert(name, read_meta_value(&value)?);
    }
    Some(out)
}

/// One metadata value.
pub fn read_meta_value<J: JsonIn>(v: &J) -> Option<MetaValue> {
    if let Some(s) = v.string() {
        return Some(MetaValue::Str(s));
    }
    if let Some(b) = v.boolean() {
        return Some(MetaValue::Bool(b));
    }
    match v.number()? {
        Num::Int(i) => Some(MetaValue::Int(i)),
        Num::Float(x) => Some(MetaValue::Float(x)),
    }
}

impl JsonIn for serde_json::Value {
    fn member(&self, name: &str) -> Option<Self> {
        self.as_object()?.get(name).cloned()
    }

    fn is_null(&self) -> bool {
        serde_json::Value::is_null(self)
    }

    fn is_object(&self) -> bool {
        serde_json::Value::is_object(self)
    }

    fn string(&self) -> Option<String> {
        self.as_str().map(str::to_string)
    }

    fn number(&self) -> Option<Num> {
        let n = self.as_number()?;
        Some(match n.as_i64() {
            Some(i) => Num::Int(i),
            None => Num::Float(n.as_f64()?),
        })
    }

    fn boolean(&self) -> Option<bool> {
        self.as_bool()
    }

    fn unsigned(&self) -> Option<u64> {
        self.as_u64()
    }

    fn members(&self) -> Option<Vec<(String, Self)>> {
        Some(
            self.as_object()?
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }

    fn items(&self) -> Option<Vec<Self>> {
        self.as_array().cloned()
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for s in [
            "plain",
            "q\"b\\s",
            "\n\r\t\u{8}\u{c}\u{1}\u{1f}",
            "é✓ \u{7f}",
            "",
            // Escapes between, before and after multi-byte characters (the runs copied whole).
            "\"é\\n✓\u{1}x\u{0}",
            "é\n",
            "\t✓",
        ] {
            let mut j = JsonOut::new();
            j.str(s);
            assert_eq!(j.done(), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn numbers_and_metadata_are_written_as_serde_json_writes_them() {
        for n in [0, 7, -7, i64::MAX, i64::MIN] {
            assert_eq!(JsonOut::new().int(n).done(), n.to_string());
        }
        assert_eq!(JsonOut::new().uint(u64::MAX).done(), u64::MAX.to_string());
        for x in [1.0, 0.1, -2.5e-7, 1e21, f64::MAX] {
            assert_eq!(
                JsonOut::new().float(x).done(),
                serde_json::to_string(&x).unwrap()
            );
        }
        assert_eq!(JsonOut::new().float(f64::NAN).done(), "null");
        let mut meta = Metadata::new();
        meta.insert("b".into(), MetaValue::Bool(true));
        meta.insert("a".into(), MetaValue::Float(1.5));
        meta.insert("c".into(), MetaValue::Str("x\"y".into()));
        meta.insert("d".into(), MetaValue::Int(-3));
        assert_eq!(
            JsonOut::new().meta(&meta).done(),
            serde_json::to_string(&meta).unwrap()
        );
        assert_eq!(JsonOut::new().meta(&Metadata::new()).done(), "{}");
    }

    #[test]
    fn metadata_reads_as_serde_reads_it() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"a":1,"b":1.5,"c":"x","d":false,"e":18446744073709551615}"#)
                .unwrap();
        let read = read_metadata(&v).unwrap();
        let typed: Metadata = serde_json::from_value(v).unwrap();
        assert_eq!(read, typed);
        for bad in [r#"{"a":null}"#, r#"{"a":[1]}"#, r#"{"a":{}}"#, "[]", "1"] {
            let v: serde_json::Value = serde_json::from_str(bad).unwrap();
            assert_eq!(read_metadata(&v), None, "{bad}");
            assert!(serde_json::from_value::<Metadata>(v).is_err(), "{bad}");
        }
    }
}
