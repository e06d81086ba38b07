//! What of Polar's answer the verdict store keeps: the answer without the license key and
//! without the customer's personal data, and the answer put back together for the client
//! that asks.
//!
//! The store promises the key's SHA-256, never the key; Polar's license object carries the
//! whole key (`key`) and the customer's email (`customer.email`, `customer.avatar_url` made
//! from it, the same in the deprecated `user` object, 2027-01's `member.email`). Stored, the
//! key's value is `""` and its place a byte offset ([`crate::store::Entry::key_at`]); the
//! emails are `null` (`LicenseKeyCustomer.email` and `LicenseKeyMember.email` are nullable in
//! Polar's schema, every face's parser reads them as absent, and none reads `user`), and so
//! are the customer's name, billing name, billing address, tax id and external id and the
//! member's external id; the customer's `metadata` is `{}` (its default: `null` would not
//! parse). Replayed, the requesting client's key (the entry is found by its hash, so it is the
//! key Polar answered for) goes back at that offset; every other byte is Polar's.
//!
//! The body is Polar's JSON, which the core's strict reading accepted for a grant; the scanner
//! here only finds members and their values' spans, and anything it does not understand means
//! the answer is not stored.

use std::ops::Range;

/// Polar's answer as the store keeps it.
pub(crate) struct Scrubbed {
    /// The body, the key's value `""`, the personal data `null` (`metadata` `{}`).
    pub(crate) body: String,
    /// Where the key's `""` is in `body`, when the answer has a `key` member.
    pub(crate) key_at: Option<usize>,
}

/// The customer's personal data, each member with what it is replaced by: `null` where Polar's
/// schema makes it nullable (`src/schema.rs`: every face's parser reads it as absent), `{}` for
/// `metadata` (a default-`{}` member that may not be `null`). Nothing a client decides by
/// (ids, status, dates, usage, limits, conditions) is among them.
const CUSTOMER_SCRUBBED: &[(&str, &str)] = &[
    ("email", "null"),
    ("avatar_url", "null"),
    ("name", "null"),
    ("billing_name", "null"),
    ("billing_address", "null"),
    ("tax_id", "null"),
    ("external_id", "null"),
    ("metadata", "{}"),
];
/// The deprecated `user` object (no face reads it): the customer's, and its `public_name`
/// (made from the name or the email) an empty string.
const USER_SCRUBBED: &[(&str, &str)] = &[
    ("email", "null"),
    ("avatar_url", "null"),
    ("public_name", "\"\""),
];
/// 2027-01's seat holder.
const MEMBER_SCRUBBED: &[(&str, &str)] = &[("email", "null"), ("external_id", "null")];

/// Polar's answer without the key `key` and without personal data; `None` when it cannot be kept so
/// (a `key` member that is not `key`, the key anywhere else in it, a body that does not scan).
pub(crate) fn scrub(body: &[u8], key: &str) -> Option<Scrubbed> {
    let text = std::str::from_utf8(body).ok()?;
    let b = text.as_bytes();
    let start = skip_ws(b, 0);
    let mut edits: Vec<(Range<usize>, &'static str, bool)> = Vec::new();
    if b.get(start) == Some(&b'{') {
        for (name, span) in members(b, start)? {
            match name {
                b"key" => {
                    let value: serde_json::Value =
                        serde_json::from_str(text.get(span.clone())?).ok()?;
                    if value.as_str() != Some(key) {
                        return None;
                    }
                    edits.push((span, "\"\"", true));
                }
                b"customer" => nulled(b, span.start, CUSTOMER_SCRUBBED, &mut edits)?,
                b"user" => nulled(b, span.start, USER_SCRUBBED, &mut edits)?,
                b"member" => nulled(b, span.start, MEMBER_SCRUBBED, &mut edits)?,
                _ => {}
            }
        }
    }
    edits.sort_by_key(|(r, _, _)| r.start);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    let mut key_at = None;
    for (r, with, is_key) in edits {
        out.push_str(text.get(at..r.start)?);
        if is_key {
            key_at = Some(out.len());
        }
        out.push_str(with);
        at = r.end;
    }
    out.push_str(text.get(at..)?);
    if holds(&out, key) {
        return None;
    }
    Some(Scrubbed { body: out, key_at })
}

/// The stored body with `key` back in its place (the body as it was when `key_at` is `None`).
pub(crate) fn unscrub(body: &str, key_at: Option<usize>, key: &str) -> Option<Vec<u8>> {
    let Some(at) = key_at else {
        return Some(body.as_bytes().to_vec());
    };
    let before = body.get(..at)?;
    let after = body.get(at..)?.strip_prefix("\"\"")?;
    Some(
        [before, &crate::types::string(key), after]
            .concat()
            .into_bytes(),
    )
}

/// Whether `text` holds `key`, as it is or in any JSON spelling of it. An empty key is in
/// nothing; a body that is not JSON is taken to hold it.
fn holds(text: &str, key: &str) -> bool {
    if key.is_empty() {
        return false;
    }
    if text.contains(key) {
        return true;
    }
    fn any(v: &serde_json::Value, key: &str) -> bool {
        match v {
            serde_json::Value::String(s) => s.contains(key),
            serde_json::Value::Array(items) => items.iter().any(|v| any(v, key)),
            serde_json::Value::Object(m) => m.iter().any(|(k, v)| k.contains(key) || any(v, key)),
            _ => false,
        }
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) => any(&v, key),
        Err(_) => true,
    }
}

/// The members `names` of the object at `i` replaced by their values there (nothing when it
/// is not an object; a member already `null` stays `null`).
fn nulled(
    b: &[u8],
    i: usize,
    names: &[(&str, &'static str)],
    edits: &mut Vec<(Range<usize>, &'static str, bool)>,
) -> Option<()> {
    if b.get(i) != Some(&b'{') {
        return Some(());
    }
    for (name, span) in members(b, i)? {
        let Some((_, with)) = names.iter().find(|(n, _)| n.as_bytes() == name) else {
            continue;
        };
        let now = b.get(span.clone())?;
        if now != b"null" && now != with.as_bytes() {
            edits.push((span, with, false));
        }
    }
    Some(())
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b
        .get(i)
        .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
    {
        i += 1;
    }
    i
}

/// The end (one past the closing quote) of the string at `i`.
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        match b.get(j)? {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
}

/// The end of the value at `i`.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match b.get(j)? {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while b
                .get(j)
                .is_some_and(|c| !matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
            {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

/// The members of the object at `i` (its `{`): each name as written (between its quotes) and
/// its value's span.
fn members(b: &[u8], i: usize) -> Option<Vec<(&[u8], Range<usize>)>> {
    if b.get(i) != Some(&b'{') {
        return None;
    }
    let mut out = Vec::new();
    let mut j = skip_ws(b, i + 1);
    if b.get(j) == Some(&b'}') {
        return Some(out);
    }
    loop {
        if b.get(j) != Some(&b'"') {
            return None;
        }
        let end = string_end(b, j)?;
        let name = b.get(j + 1..end - 1)?;
        j = skip_ws(b, end);
        if b.get(j) != Some(&b':') {
            return None;
        }
        let start = skip_ws(b, j + 1);
        let stop = value_end(b, start)?;
        out.push((name, start..stop));
        j = skip_ws(b, stop);
        match b.get(j)? {
            b',' => j = skip_ws(b, j + 1),
            b'}' => return Some(out),
            _ => return None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_key_and_the_emails_go_and_the_key_comes_back_in_its_place() {
        let body = concat!(
            r#"{"id":"L","customer":{"id":"C","email":"a@b.example","name":"A","#,
            r#""avatar_url":"https://x/avatar","metadata":{"k":"v}"}},"#,
            r#""key":"K-1\u0041","display_key":"****-1A","member":{"email":"m@b.example"},"#,
            r#""conditions":[1,{"x":"]"}], "n" : null }"#
        );
        let kept = scrub(body.as_bytes(), "K-1A").expect("kept");
        assert_eq!(
            kept.body,
            concat!(
                r#"{"id":"L","customer":{"id":"C","email":null,"name":null,"#,
                r#""avatar_url":null,"metadata":{}},"#,
                r#""key":"","display_key":"****-1A","member":{"email":null},"#,
                r#""conditions":[1,{"x":"]"}], "n" : null }"#
            )
        );
        let back = unscrub(&kept.body, kept.key_at, "K-1A").expect("back");
        let back: serde_json::Value = serde_json::from_slice(&back).expect("JSON");
        assert_eq!(back["key"], "K-1A");
        assert_eq!(back["customer"]["name"], serde_json::Value::Null);
        assert_eq!(back["customer"]["id"], "C");
        assert_eq!(back["customer"]["email"], serde_json::Value::Null);
        // Another key's answer, or the key elsewhere in it (even escaped), is not kept.
        assert!(scrub(body.as_bytes(), "K-2").is_none());
        let twice = r#"{"key":"K-1","label":"K\u002d1"}"#;
        assert!(scrub(twice.as_bytes(), "K-1").is_none());
        // Bodies without a key (a denial) are kept as they are.
        let denial = r#"{"error":"ResourceNotFound","detail":"Not found"}"#;
        let kept = scrub(denial.as_bytes(), "K-1").expect("kept");
        assert_eq!((kept.body.as_str(), kept.key_at), (denial, None));
        // What does not scan is not kept.
        for bad in [r#"{"key":"K-1""#, r#"{"key" "K-1"}"#, r#"{"a":]}"#, "\u{0}"] {
            assert!(scrub(bad.as_bytes(), "K-1").is_none(), "{bad}");
        }
        // A stored body whose place is not the key's `""` is not replayed.
        assert!(unscrub(r#"{"key":"x"}"#, Some(7), "K").is_none());
        assert!(unscrub(r#"{"key":""}"#, Some(70), "K").is_none());
    }
}
