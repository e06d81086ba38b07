//! A key's devices through the seller's relay (issue #64): `POST`
//! [`DEVICES_ROUTE`](crate::types::DEVICES_ROUTE) with the key in the body (a key never sits in a
//! URL), as Polar's public routes take it:
//!
//! ```json
//! {"key": "…", "organization_id": "…", "activation_id": "…"}
//! ```
//!
//! (`activation_id` optional: the activation this machine holds, marked in the answer). The
//! key proves it is the caller's as it does at Polar: the relay first asks the key's verdict
//! (a validate of the key and the organization, routed as every validate is: the per-key
//! limit, the breaker, the store, the token's budget), and passes any answer but a 200 on
//! (a wrong key is Polar's `404 {"error":"ResourceNotFound","detail":"Not found"}`). On a 200
//! it reads the key's record by its id with the organization token
//! (`GET /v1/license-keys/{id}`: every live activation, whatever the benefit's
//! `enable_customer_admin`; docs/polar-api.md §16.3) within the same bounds (the per-key
//! limit, the breaker, one more call of the budget) and answers
//!
//! ```json
//! {"license_key_id": "…", "limit_activations": 3,
//!  "activations": [{"id": "…", "label": "…", "created_at": "…", "this_machine": false,
//!                   "machine": "…", "platform": "linux/x86_64",
//!                   "last_seen": "2026-11-29T19:00:00Z"}]}
//! ```
//!
//! (`machine` and `platform` when the activation's `meta` records them: issue #80, a
//! reinstall at the limit finds its own row by the fingerprint; `last_seen` when this relay
//! saw the activation validated, to the hour: [`crate::last_seen`]) oldest first, with no lease.
//! Freeing a device stays Polar's public deactivate (no token needed). The steps are the request
//! machine's ([`crate::flow::Exchange`]): the read is a [`crate::flow::Need::Send`] whose method is
//! `GET`.

use polar_license::{HttpRequest, HttpResponse, TransportError};

use crate::types::RelayResponse;

use crate::last_seen::LastSeen;
use crate::route::devices::DevicesAsk;

/// Where the store keeps the key's last-seen times (crate::last_seen): the store, the
/// organization (canonical) and the key string's SHA-256.
#[derive(Clone, Copy)]
pub(crate) struct Kept<'a> {
    pub(crate) store: &'a dyn crate::store::Backend,
    pub(crate) organization_id: &'a str,
    pub(crate) key_sha256: &'a str,
}

/// The body read (`422` in Polar's shape, `InvalidDevicesRequest`, with what is wrong): its
/// members and the activation id ([`crate::types::ask_object`]).
pub(crate) fn read_ask(body: &[u8]) -> Result<DevicesAsk, RelayResponse> {
    let refuse = |detail: &str| RelayResponse::error(422, "InvalidDevicesRequest", detail);
    let (obj, key, organization_id) = crate::types::ask_object(body, &["activation_id"], refuse)?;
    Ok(DevicesAsk {
        key,
        organization_id,
        activation_id: crate::types::activation_id_of(&obj, refuse)?,
    })
}

/// The read of the key's record (`GET {base}/v1/license-keys/{id}`) made of the validate's
/// call (its token, its version, its user agent): no body.
pub(crate) fn read_request(base_url: &str, validate: &HttpRequest, key_id: &str) -> HttpRequest {
    crate::pending::get_like(validate, format!("{base_url}/v1/license-keys/{key_id}"))
}

/// The list made of Polar's `LicenseKeyWithActivations` (`body`): the key's id, its limit,
/// its activations (id, label, `created_at` as Polar wrote it), oldest first, this machine's
/// marked, each with when this relay last saw it (`seen`) when it did; and how many. `None`:
/// not Polar's answer.
fn listing(
    ask: &DevicesAsk,
    body: &[u8],
    seen: &LastSeen,
    kept: Option<Kept<'_>>,
) -> Option<(serde_json::Value, usize)> {
    use serde_json::Value;
    let v: Value = serde_json::from_slice(body).ok()?;
    let key_id = v.get("id")?.as_str()?;
    // The times the store kept of the key's activations (a restarted relay's), known again.
    if let Some(k) = kept {
        seen.load(k.store, k.organization_id, k.key_sha256, key_id);
    }
    let limit = match v.get("limit_activations") {
        None | Some(Value::Null) => Value::Null,
        Some(n) => Value::from(n.as_i64()?),
    };
    let mut rows = Vec::new();
    for a in v.get("activations")?.as_array()? {
        let id = a.get("id")?.as_str()?;
        let created_at = a.get("created_at")?.as_str()?;
        // RFC 3339 in UTC as Polar writes it: ordered as text.
        let at =
            time::OffsetDateTime::parse(created_at, &time::format_description::well_known::Rfc3339)
                .ok()?;
        let this = ask
            .activation_id
            .as_deref()
            .is_some_and(|here| here.eq_ignore_ascii_case(id));
        let mut row = serde_json::json!({
            "id": id,
            "label": a.get("label")?.as_str()?,
            "created_at": created_at,
            "this_machine": this,
        });
        // What the activation recorded of its machine in `meta` (issue #80): the salted
        // per-organization fingerprint a reinstall finds its own row by, and the platform
        // family. Only these two, as strings: the rest of `meta` is the app's.
        for name in [
            polar_license::fingerprint::MACHINE_META,
            polar_license::fingerprint::PLATFORM_META,
        ] {
            let value = a
                .get("meta")
                .and_then(|m| m.get(name))
                .and_then(Value::as_str);
            if let (Some(value), Some(row)) = (value, row.as_object_mut()) {
                row.insert(name.to_string(), Value::from(value));
            }
        }
        // When this relay last saw it validated (RFC 3339, to the hour), when it did.
        let last_seen = seen.of(key_id, id).map(crate::clock::rfc3339);
        if let (Some(last_seen), Some(row)) = (last_seen, row.as_object_mut()) {
            row.insert("last_seen".to_string(), Value::from(last_seen));
        }
        rows.push((at, row));
    }
    rows.sort_by_key(|(at, _)| *at);
    let count = rows.len();
    let activations: Vec<Value> = rows.into_iter().map(|(_, row)| row).collect();
    Some((
        serde_json::json!({
            "license_key_id": key_id,
            "limit_activations": limit,
            "activations": activations,
        }),
        count,
    ))
}

/// An answer of the device listing that is not the list (the validate's refusal, a local
/// refusal): Polar's status and body, without a lease or a signed denial (a device list is
/// no verdict).
pub(crate) fn refusal(mut r: RelayResponse) -> RelayResponse {
    r.headers.retain(|(k, _)| {
        !k.eq_ignore_ascii_case(polar_license::lease::LEASE_HEADER)
            && !k.eq_ignore_ascii_case(polar_license::lease::DENIAL_HEADER)
    });
    r
}

/// The answer made of Polar's answer to the read: the list (200), or Polar's refusal passed
/// on (a key gone meanwhile: 404), or the relay's 502 (Polar out of reach, the seller's token
/// refused, an answer that does not read).
pub(crate) fn answer(
    ask: &DevicesAsk,
    upstream: Result<HttpResponse, TransportError>,
    seen: &LastSeen,
    kept: Option<Kept<'_>>,
) -> RelayResponse {
    let upstream = match upstream {
        Ok(r) => r,
        Err(e) => {
            log::warn!(
                "relay: devices {} 502 (Polar unreachable: {:?})",
                crate::logged::key(&ask.key),
                e.kind
            );
            return RelayResponse::unreached("the relay could not reach Polar");
        }
    };
    if matches!(upstream.status, 401 | 403) {
        log::error!(
            "relay: Polar refused the relay's access token ({}) reading a key's devices: check \
             its license_keys:read (or :write) scope; answering 502",
            upstream.status
        );
        return RelayResponse::unreached("the relay could not ask Polar");
    }
    if upstream.status != 200 {
        let mut r = RelayResponse::new(upstream.status);
        for name in ["content-type", "retry-after", "date", "polar-version"] {
            if let Some(value) = upstream.header(name) {
                r.set(name, value);
            }
        }
        r.body = upstream.body;
        log::info!(
            "relay: devices {} {} (Polar's answer to the read)",
            crate::logged::key(&ask.key),
            r.status
        );
        return r;
    }
    // Read as JSON values, Polar's fields passed as it wrote them (no model of the key: the
    // relay's wasm stays small).
    let Some((body, listed)) = listing(ask, &upstream.body, seen, kept) else {
        log::warn!(
            "relay: devices {} 502 (Polar's answer did not read)",
            crate::logged::key(&ask.key)
        );
        return RelayResponse::unreached("Polar's answer did not read");
    };
    log::info!(
        "relay: devices {} 200 ({listed} listed)",
        crate::logged::key(&ask.key)
    );
    crate::types::private(RelayResponse::json(200, body.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_read_strictly() {
        let ok = br#"{"key":"K-1","organization_id":"2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10","activation_id":"6B0C1F4E-2A3D-4E5F-8A9B-0C1D2E3F4A5B"}"#;
        let ask = read_ask(ok).expect("read");
        assert_eq!(
            ask.activation_id.as_deref(),
            Some("6b0c1f4e-2a3d-4e5f-8a9b-0c1d2e3f4a5b")
        );
        for bad in [
            &b"not json"[..],
            br#"[]"#,
            br#"{"organization_id":"x"}"#,
            br#"{"key":"K","organization_id":"x","extra":1}"#,
            br#"{"key":"K","organization_id":"2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10","activation_id":"nope"}"#,
            br#"{"key":"K","organization_id":"2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10","activation_id":7}"#,
            br#"{"key":"K","organization_id":"x"}"#,
        ] {
            let r = read_ask(bad).expect_err("refused");
            assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn the_read_has_no_body_and_no_content_type() {
        let post = HttpRequest {
            operation: polar_license::Operation::Validate,
            url: "http://127.0.0.1:9/v1/license-keys/validate".into(),
            headers: vec![
                ("content-type", "application/json".into()),
                ("authorization", "Bearer t".into()),
            ],
            body: b"{}".to_vec(),
        };
        let get = read_request(
            "http://127.0.0.1:9",
            &post,
            "6b0c1f4e-2a3d-4e5f-8a9b-0c1d2e3f4a5b",
        );
        assert_eq!(
            get.url,
            "http://127.0.0.1:9/v1/license-keys/6b0c1f4e-2a3d-4e5f-8a9b-0c1d2e3f4a5b"
        );
        assert!(get.body.is_empty());
        assert_eq!(get.headers, vec![("authorization", "Bearer t".to_string())]);
    }
}
