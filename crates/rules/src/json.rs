//! An order-preserving JSON value with a parser that mirrors CPython's `json`
//! module (error messages and character positions included) and a serializer
//! that mirrors `json.dumps(..., separators=(",", ":"), ensure_ascii=False)`.
//! Public for the emulator only: not a stable interface.
//!
//! `serde_json::Value` sorts object keys (no `preserve_order` feature here),
//! and Polar's bodies have a fixed field order, so the emulator renders its
//! responses through this type.

use std::cell::Cell;

/// A JSON value as Python's `json.loads` produces it, with object key order kept.
#[derive(Debug, Clone, PartialEq)]
pub enum J {
    Null,
    Bool(bool),
    /// An integer literal that fits in an `i128`.
    Int(i128),
    /// An integer literal too large for `i128`, kept as its decimal text.
    BigInt(String),
    Float(f64),
    Str(String),
    Arr(Vec<J>),
    /// Keys are unique; a duplicate key in the input replaces the earlier value in place.
    Obj(Vec<(String, J)>),
}

/// Builds a `J::Obj` from `(&str, J)` pairs.
pub fn obj(pairs: Vec<(&str, J)>) -> J {
    J::Obj(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// A string value.
pub fn s(v: &str) -> J {
    J::Str(v.to_string())
}

/// An optional string value (`null` when absent).
pub fn opt_s(v: Option<&str>) -> J {
    match v {
        Some(v) => J::Str(v.to_string()),
        None => J::Null,
    }
}

/// An optional integer value (`null` when absent).
pub fn opt_i(v: Option<i64>) -> J {
    match v {
        Some(v) => J::Int(i128::from(v)),
        None => J::Null,
    }
}

impl J {
    /// Converts to a `serde_json::Value` (object key order is lost there).
    pub fn to_value(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Int(i) => {
                if let Ok(v) = i64::try_from(*i) {
                    Value::from(v)
                } else if let Ok(v) = u64::try_from(*i) {
                    Value::from(v)
                } else {
                    serde_json::Number::from_f64(*i as f64)
                        .map(Value::Number)
                        .unwrap_or(Value::Null)
                }
            }
            J::BigInt(text) => text
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            J::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            J::Str(v) => Value::String(v.clone()),
            J::Arr(items) => Value::Array(items.iter().map(J::to_value).collect()),
            J::Obj(items) => {
                let mut map = serde_json::Map::new();
                for (k, v) in items {
                    map.insert(k.clone(), v.to_value());
                }
                Value::Object(map)
            }
        }
    }

    /// Serializes compactly, as Starlette's `JSONResponse` does. Fails on a
    /// non-finite float (`allow_nan=False` makes Python raise, which is a 500).
    pub fn to_json(&self) -> Result<String, NonFinite> {
        let mut out = String::new();
        write_value(&mut out, self)?;
        Ok(out)
    }
}

/// A NaN or infinite float that Python's `json.dumps(allow_nan=False)` refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonFinite;

fn write_value(out: &mut String, v: &J) -> Result<(), NonFinite> {
    match v {
        J::Null => out.push_str("null"),
        J::Bool(true) => out.push_str("true"),
        J::Bool(false) => out.push_str("false"),
        J::Int(i) => out.push_str(&i.to_string()),
        J::BigInt(text) => out.push_str(text),
        J::Float(f) => {
            if !f.is_finite() {
                return Err(NonFinite);
            }
            out.push_str(&py_float_repr(*f));
        }
        J::Str(text) => write_str(out, text),
        J::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item)?;
            }
            out.push(']');
        }
        J::Obj(items) => {
            out.push('{');
            for (i, (k, item)) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(out, k);
                out.push(':');
                write_value(out, item)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// Writes a JSON string literal with Python's `ensure_ascii=False` escaping.
pub fn write_str(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Python's `repr(float)`: shortest round-trip digits, fixed notation for
/// decimal exponents in `-4..=15`, else `d.ddde+XX`.
pub fn py_float_repr(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = match sci.split_once('e') {
        Some(parts) => parts,
        None => return sci,
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        let decpt = exp + 1;
        if decpt <= 0 {
            out.push_str("0.");
            for _ in 0..(-decpt) {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            let decpt = decpt as usize;
            if decpt >= digits.len() {
                out.push_str(&digits);
                for _ in digits.len()..decpt {
                    out.push('0');
                }
                out.push_str(".0");
            } else {
                out.push_str(&digits[..decpt]);
                out.push('.');
                out.push_str(&digits[decpt..]);
            }
        }
    } else {
        out.push_str(&digits[..1.min(digits.len())]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.abs()));
    }
    out
}

/// Python equality of two values as the server compares `conditions`:
/// `1 == 1.0 == True`, `"1" != 1`, dict key order irrelevant.
pub fn py_eq(a: &J, b: &J) -> bool {
    match (a, b) {
        (J::Null, J::Null) => true,
        (J::Str(x), J::Str(y)) => x == y,
        (J::Arr(x), J::Arr(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q)),
        (J::Obj(x), J::Obj(y)) => py_dict_eq(x, y),
        (J::BigInt(x), J::BigInt(y)) => x == y,
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => num_eq(x, y),
            _ => false,
        },
    }
}

/// Python `dict == dict`.
pub fn py_dict_eq(a: &[(String, J)], b: &[(String, J)]) -> bool {
    a.len() == b.len()
        && a.iter().all(|(k, v)| {
            b.iter()
                .find(|(k2, _)| k2 == k)
                .is_some_and(|(_, v2)| py_eq(v, v2))
        })
}

#[derive(Clone, Copy)]
enum Num {
    I(i128),
    F(f64),
}

fn num(v: &J) -> Option<Num> {
    match v {
        J::Bool(b) => Some(Num::I(i128::from(*b))),
        J::Int(i) => Some(Num::I(*i)),
        J::Float(f) => Some(Num::F(*f)),
        _ => None,
    }
}

fn num_eq(a: Num, b: Num) -> bool {
    match (a, b) {
        (Num::I(x), Num::I(y)) => x == y,
        (Num::F(x), Num::F(y)) => x == y,
        (Num::I(i), Num::F(f)) | (Num::F(f), Num::I(i)) => {
            // Python compares int and float exactly.
            f.is_finite()
                && f.fract() == 0.0
                && f.abs() < 1.7e38
                && (f as i128) == i
                && (i as f64) == f
        }
    }
}

/// The deepest nesting of arrays and objects [`loads`] reads; one level more is
/// [`LoadError::Other`], as CPython's `RecursionError` is (FastAPI's 400).
///
/// Polar's request bodies nest two deep (the body object, then `conditions` or `meta`,
/// whose values are scalars), and a deeper body is refused by Polar's validation anyway.
/// CPython stops at its recursion limit, which depends on its version and build (the
/// interpreter's limit, 1,000 by default, in older versions; C-level and stack checks in
/// newer ones), so no bound here can be Polar's to the level; 128 is serde_json's default,
/// the bound every other JSON reader of this workspace already stops at, and it keeps the
/// recursion of the parser, of the writer and of the drop of a value shallow on every host
/// (natively and in the relay's and the emulator's WebAssembly: before this bound, 2 MiB
/// of native stack overflowed at about 6,900 levels). The only difference from
/// Polar: a body nested between 129 levels and CPython's limit gets Polar's 400 instead of
/// its 422 (both refusals).
pub const MAX_DEPTH: usize = 128;

/// Why `json.loads` (as called by Starlette's `Request.json()`) failed.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadError {
    /// `json.JSONDecodeError`: FastAPI turns it into a 422 `json_invalid`.
    Decode { msg: &'static str, pos: usize },
    /// Any other exception (bad encoding, too many integer digits, nesting deeper than
    /// [`MAX_DEPTH`]): FastAPI's 400 "There was an error parsing the body".
    Other,
}

/// `json.loads(body_bytes)`: detects the encoding like CPython, then parses.
pub fn loads_bytes(body: &[u8]) -> Result<J, LoadError> {
    let text = decode_json_bytes(body).ok_or(LoadError::Other)?;
    loads(&text)
}

fn decode_json_bytes(b: &[u8]) -> Option<String> {
    const BOM8: &[u8] = &[0xEF, 0xBB, 0xBF];
    if b.starts_with(&[0, 0, 0xFE, 0xFF]) {
        return decode_utf32(&b[4..], true);
    }
    if b.starts_with(&[0xFF, 0xFE, 0, 0]) {
        return decode_utf32(&b[4..], false);
    }
    if b.starts_with(&[0xFE, 0xFF]) {
        return decode_utf16(&b[2..], true);
    }
    if b.starts_with(&[0xFF, 0xFE]) {
        return decode_utf16(&b[2..], false);
    }
    if let Some(rest) = b.strip_prefix(BOM8) {
        return String::from_utf8(rest.to_vec()).ok();
    }
    if b.len() >= 4 {
        if b[0] == 0 {
            return if b[1] != 0 {
                decode_utf16(b, true)
            } else {
                decode_utf32(b, true)
            };
        }
        if b[1] == 0 {
            return if b[2] != 0 || b[3] != 0 {
                decode_utf16(b, false)
            } else {
                decode_utf32(b, false)
            };
        }
    } else if b.len() == 2 {
        if b[0] == 0 {
            return decode_utf16(b, true);
        }
        if b[1] == 0 {
            return decode_utf16(b, false);
        }
    }
    String::from_utf8(b.to_vec()).ok()
}

fn decode_utf16(b: &[u8], big_endian: bool) -> Option<String> {
    if !b.len().is_multiple_of(2) {
        return None;
    }
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| {
            if big_endian {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_le_bytes([c[0], c[1]])
            }
        })
        .collect();
    String::from_utf16(&units).ok()
}

fn decode_utf32(b: &[u8], big_endian: bool) -> Option<String> {
    if !b.len().is_multiple_of(4) {
        return None;
    }
    b.chunks_exact(4)
        .map(|c| {
            let v = if big_endian {
                u32::from_be_bytes([c[0], c[1], c[2], c[3]])
            } else {
                u32::from_le_bytes([c[0], c[1], c[2], c[3]])
            };
            char::from_u32(v)
        })
        .collect()
}

/// `json.loads(text)`, nesting at most [`MAX_DEPTH`] deep. Its work is linear in the
/// text's length, but for the duplicate keys of an object: O(n log n) in its key count.
pub fn loads(text: &str) -> Result<J, LoadError> {
    loads_counted(text).0
}

/// [`loads`], with the key comparisons its duplicate detection made (for the tests that
/// hold its work to the text's length).
#[doc(hidden)]
pub fn loads_counted(text: &str) -> (Result<J, LoadError>, u64) {
    let chars: Vec<char> = text.chars().collect();
    let p = Parser {
        s: &chars,
        compares: Cell::new(0),
    };
    (p.load(), p.compares.get())
}

impl Parser<'_> {
    /// The whole text as one value.
    fn load(&self) -> Result<J, LoadError> {
        let start = self.skip_ws(0);
        let (value, end) = match self.scan_once(start, 0) {
            Ok(v) => v,
            Err(Fail::Stop(pos)) => {
                return Err(LoadError::Decode {
                    msg: "Expecting value",
                    pos,
                })
            }
            Err(Fail::Msg(msg, pos)) => return Err(LoadError::Decode { msg, pos }),
            Err(Fail::Other) => return Err(LoadError::Other),
        };
        let end = self.skip_ws(end);
        if end != self.s.len() {
            return Err(LoadError::Decode {
                msg: "Extra data",
                pos: end,
            });
        }
        Ok(value)
    }
}

enum Fail {
    /// `StopIteration(idx)`: reported as "Expecting value" at idx.
    Stop(usize),
    Msg(&'static str, usize),
    Other,
}

struct Parser<'a> {
    s: &'a [char],
    /// Key comparisons made finding duplicate keys.
    compares: Cell<u64>,
}

impl Parser<'_> {
    fn at(&self, i: usize) -> Option<char> {
        self.s.get(i).copied()
    }

    fn skip_ws(&self, mut i: usize) -> usize {
        while matches!(self.at(i), Some(' ' | '\t' | '\n' | '\r')) {
            i += 1;
        }
        i
    }

    fn starts_with(&self, i: usize, word: &str) -> bool {
        (i..).zip(word.chars()).all(|(j, c)| self.at(j) == Some(c))
    }

    /// The value at `idx`, inside `depth` arrays and objects.
    fn scan_once(&self, idx: usize, depth: usize) -> Result<(J, usize), Fail> {
        let c = match self.at(idx) {
            Some(c) => c,
            None => return Err(Fail::Stop(idx)),
        };
        match c {
            '"' => {
                let (text, end) = self.scan_string(idx + 1)?;
                Ok((J::Str(text), end))
            }
            // CPython's `RecursionError`, raised on entering the container: not a decode
            // error, so FastAPI's 400 whatever follows.
            '{' | '[' if depth >= MAX_DEPTH => Err(Fail::Other),
            '{' => self.parse_object(idx + 1, depth + 1),
            '[' => self.parse_array(idx + 1, depth + 1),
            'n' if self.starts_with(idx, "null") => Ok((J::Null, idx + 4)),
            't' if self.starts_with(idx, "true") => Ok((J::Bool(true), idx + 4)),
            'f' if self.starts_with(idx, "false") => Ok((J::Bool(false), idx + 5)),
            'N' if self.starts_with(idx, "NaN") => Ok((J::Float(f64::NAN), idx + 3)),
            'I' if self.starts_with(idx, "Infinity") => Ok((J::Float(f64::INFINITY), idx + 8)),
            '-' if self.starts_with(idx, "-Infinity") => Ok((J::Float(f64::NEG_INFINITY), idx + 9)),
            _ => self.match_number(idx),
        }
    }

    fn is_digit(&self, i: usize) -> bool {
        matches!(self.at(i), Some('0'..='9'))
    }

    fn match_number(&self, start: usize) -> Result<(J, usize), Fail> {
        let len = self.s.len();
        let mut idx = start;
        if self.at(idx) == Some('-') {
            idx += 1;
            if idx >= len {
                return Err(Fail::Stop(start));
            }
        }
        match self.at(idx) {
            Some('1'..='9') => {
                idx += 1;
                while self.is_digit(idx) {
                    idx += 1;
                }
            }
            Some('0') => idx += 1,
            _ => return Err(Fail::Stop(start)),
        }
        let mut is_float = false;
        if idx + 1 < len && self.at(idx) == Some('.') && self.is_digit(idx + 1) {
            is_float = true;
            idx += 2;
            while self.is_digit(idx) {
                idx += 1;
            }
        }
        if idx + 1 < len && matches!(self.at(idx), Some('e' | 'E')) {
            let e_start = idx;
            idx += 1;
            if idx + 1 < len && matches!(self.at(idx), Some('-' | '+')) {
                idx += 1;
            }
            while self.is_digit(idx) {
                idx += 1;
            }
            if idx > 0 && self.is_digit(idx - 1) {
                is_float = true;
            } else {
                idx = e_start;
            }
        }
        let text: String = self.s[start..idx].iter().collect();
        if is_float {
            let f: f64 = text.parse().map_err(|_| Fail::Other)?;
            Ok((J::Float(f), idx))
        } else {
            let digits = text.trim_start_matches('-').len();
            if digits > 4300 {
                // CPython's int max_str_digits guard raises ValueError.
                return Err(Fail::Other);
            }
            match text.parse::<i128>() {
                Ok(i) => Ok((J::Int(i), idx)),
                Err(_) => {
                    let normalized = if text == "-0" { "0".to_string() } else { text };
                    Ok((J::BigInt(normalized), idx))
                }
            }
        }
    }

    /// `end` is the index just after the opening quote.
    fn scan_string(&self, mut end: usize) -> Result<(String, usize), Fail> {
        let len = self.s.len();
        let begin = end.saturating_sub(1);
        let mut out = String::new();
        loop {
            let mut next = end;
            let mut c = '\0';
            while next < len {
                c = self.s[next];
                if c == '"' || c == '\\' {
                    break;
                }
                if (c as u32) <= 0x1f {
                    return Err(Fail::Msg("Invalid control character at", next));
                }
                next += 1;
            }
            if next >= len {
                return Err(Fail::Msg("Unterminated string starting at", begin));
            }
            out.extend(&self.s[end..next]);
            next += 1;
            if c == '"' {
                end = next;
                break;
            }
            if next == len {
                return Err(Fail::Msg("Unterminated string starting at", begin));
            }
            let esc = self.s[next];
            if esc != 'u' {
                end = next + 1;
                let decoded = match esc {
                    '"' => '"',
                    '\\' => '\\',
                    '/' => '/',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    _ => return Err(Fail::Msg("Invalid \\escape", end - 2)),
                };
                out.push(decoded);
            } else {
                next += 1;
                end = next + 4;
                if end >= len {
                    return Err(Fail::Msg("Invalid \\uXXXX escape", next - 1));
                }
                let mut code = self
                    .hex4(next)
                    .ok_or(Fail::Msg("Invalid \\uXXXX escape", end - 5))?;
                if (0xD800..=0xDBFF).contains(&code)
                    && end + 6 < len
                    && self.s[end] == '\\'
                    && self.s[end + 1] == 'u'
                {
                    let low = self
                        .hex4(end + 2)
                        .ok_or(Fail::Msg("Invalid \\uXXXX escape", end + 1))?;
                    if (0xDC00..=0xDFFF).contains(&low) {
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                        end += 6;
                    }
                }
                // A lone surrogate cannot live in a Rust string.
                out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
            }
        }
        Ok((out, end))
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let mut v = 0u32;
        for i in at..at + 4 {
            v = (v << 4) | self.at(i)?.to_digit(16)?;
        }
        Some(v)
    }

    fn parse_object(&self, start: usize, depth: usize) -> Result<(J, usize), Fail> {
        let len = self.s.len();
        let mut items: Vec<(String, J)> = Vec::new();
        let mut idx = self.skip_ws(start);
        if idx < len && self.s[idx] == '}' {
            return Ok((J::Obj(items), idx + 1));
        }
        loop {
            if idx >= len || self.s[idx] != '"' {
                return Err(Fail::Msg(
                    "Expecting property name enclosed in double quotes",
                    idx,
                ));
            }
            let (key, after_key) = self.scan_string(idx + 1)?;
            idx = self.skip_ws(after_key);
            if idx >= len || self.s[idx] != ':' {
                return Err(Fail::Msg("Expecting ':' delimiter", idx));
            }
            idx = self.skip_ws(idx + 1);
            let (value, after_value) = self.scan_once(idx, depth)?;
            items.push((key, value));
            match self.after_item(
                after_value,
                '}',
                "Illegal trailing comma before end of object",
            )? {
                Next::End(end) => return Ok((J::Obj(self.dedup(items)), end)),
                Next::Item(next) => idx = next,
            }
        }
    }

    fn parse_array(&self, start: usize, depth: usize) -> Result<(J, usize), Fail> {
        let len = self.s.len();
        let mut items = Vec::new();
        let mut idx = self.skip_ws(start);
        if idx < len && self.s[idx] == ']' {
            return Ok((J::Arr(items), idx + 1));
        }
        loop {
            let (value, after) = self.scan_once(idx, depth)?;
            items.push(value);
            match self.after_item(after, ']', "Illegal trailing comma before end of array")? {
                Next::End(end) => return Ok((J::Arr(items), end)),
                Next::Item(next) => idx = next,
            }
        }
    }

    /// An object's items as Python's `dict` keeps them: each key once, where it first came,
    /// with the value it last had. Sorting the positions by key finds the duplicates in
    /// O(n log n) key comparisons (a search of the items kept for every key was O(n²): a
    /// 64 KiB body of 7,733 keys cost 86 ms).
    fn dedup(&self, items: Vec<(String, J)>) -> Vec<(String, J)> {
        if items.len() < 2 {
            return items;
        }
        let mut order: Vec<usize> = (0..items.len()).collect();
        // Stable: the positions of one key stay in order, first to last.
        order.sort_by(|&a, &b| {
            self.compares.set(self.compares.get() + 1);
            items[a].0.cmp(&items[b].0)
        });
        // For each position, where its value goes: the first position of its key.
        let mut target: Vec<usize> = (0..items.len()).collect();
        let mut dup = false;
        for pair in order.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            self.compares.set(self.compares.get() + 1);
            if items[a].0 == items[b].0 {
                target[b] = target[a];
                dup = true;
            }
        }
        if !dup {
            return items;
        }
        let mut slots: Vec<Option<(String, J)>> = Vec::with_capacity(items.len());
        for (at, (key, value)) in items.into_iter().enumerate() {
            let first = target[at];
            if first == at {
                slots.push(Some((key, value)));
            } else {
                // Later positions come later: the last value of a key wins.
                if let Some(Some(slot)) = slots.get_mut(first) {
                    slot.1 = value;
                }
                slots.push(None);
            }
        }
        slots.into_iter().flatten().collect()
    }

    /// After an object's or an array's item that ends at `after`: past the container's
    /// `close`, or at the next item after a comma; Python's error otherwise (`trailing` for a
    /// comma right before `close`, at the comma).
    fn after_item(&self, after: usize, close: char, trailing: &'static str) -> Result<Next, Fail> {
        let len = self.s.len();
        let idx = self.skip_ws(after);
        if idx < len && self.s[idx] == close {
            return Ok(Next::End(idx + 1));
        }
        if idx >= len || self.s[idx] != ',' {
            return Err(Fail::Msg("Expecting ',' delimiter", idx));
        }
        let next = self.skip_ws(idx + 1);
        if next < len && self.s[next] == close {
            return Err(Fail::Msg(trailing, idx));
        }
        Ok(Next::Item(next))
    }
}

/// What follows an item of an object or an array ([`Parser::after_item`]).
enum Next {
    /// The container ended; the index past its closing character.
    End(usize),
    /// A comma; the index of the next item.
    Item(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> (&'static str, usize) {
        match loads(text) {
            Err(LoadError::Decode { msg, pos }) => (msg, pos),
            other => (if other.is_ok() { "ok" } else { "other" }, usize::MAX),
        }
    }

    #[test]
    fn python_error_positions() {
        for (text, msg, pos) in [
            ("", "Expecting value", 0),
            ("  ", "Expecting value", 2),
            ("{", "Expecting property name enclosed in double quotes", 1),
            ("{\"a\"", "Expecting ':' delimiter", 4),
            ("{\"a\":", "Expecting value", 5),
            ("{\"a\":1", "Expecting ',' delimiter", 6),
            (
                "{\"a\":1,}",
                "Illegal trailing comma before end of object",
                6,
            ),
            ("[1,]", "Illegal trailing comma before end of array", 2),
            ("[1 2]", "Expecting ',' delimiter", 3),
            ("\"abc", "Unterminated string starting at", 0),
            ("\"a\\x\"", "Invalid \\escape", 2),
            ("\"\\u12\"", "Invalid \\uXXXX escape", 2),
            ("\"\\ud800\\uzzzz\"", "Invalid \\uXXXX escape", 8),
            ("01", "Extra data", 1),
            ("1.", "Extra data", 1),
            ("-", "Expecting value", 0),
            ("1e", "Extra data", 1),
            ("nul", "Expecting value", 0),
            ("\"\u{1}\"", "Invalid control character at", 1),
            ("[", "Expecting value", 1),
            ("-Inf", "Expecting value", 0),
        ] {
            assert_eq!(err(text), (msg, pos), "{text:?}");
        }
    }

    #[test]
    fn values_and_order() {
        let v = loads("{\"b\":1,\"a\":[true,null,1.5,\"x\"],\"b\":2}");
        assert_eq!(
            v,
            Ok(J::Obj(vec![
                ("b".into(), J::Int(2)),
                (
                    "a".into(),
                    J::Arr(vec![J::Bool(true), J::Null, J::Float(1.5), s("x")])
                ),
            ]))
        );
        assert_eq!(loads("\"\\ud83d\\ude00\""), Ok(s("\u{1F600}")));
    }

    #[test]
    fn float_repr_matches_python() {
        assert_eq!(py_float_repr(1.0), "1.0");
        assert_eq!(py_float_repr(0.1), "0.1");
        assert_eq!(py_float_repr(1e16), "1e+16");
        assert_eq!(py_float_repr(1234567890123456.0), "1234567890123456.0");
        assert_eq!(py_float_repr(0.0001), "0.0001");
        assert_eq!(py_float_repr(0.00001), "1e-05");
        assert_eq!(py_float_repr(-2.5e-7), "-2.5e-07");
        assert_eq!(py_float_repr(1.5e300), "1.5e+300");
    }

    #[test]
    fn python_equality() {
        assert!(py_eq(&J::Int(1), &J::Float(1.0)));
        assert!(py_eq(&J::Int(1), &J::Bool(true)));
        assert!(!py_eq(&s("1"), &J::Int(1)));
        assert!(py_dict_eq(
            &[("a".into(), J::Int(1)), ("b".into(), s("x"))],
            &[("b".into(), s("x")), ("a".into(), J::Float(1.0))]
        ));
    }
}
