//! What a relay signs a lease for, read from a granted validate or activate (its request and
//! Polar's answer): the relay rig of the testkit's `World` (native) and the Rust-on-wasm
//! signed-mode suite (tests/wasm_signed.rs) sign the same claims. Builds for wasm32 too.

use polar_license::lease::{
    self, key_hash, DenialClaims, Lease, LeaseClaims, LeaseExpect, NoLease, RelayKeys,
};
use polar_license::{HttpRequest, HttpResponse, Key};
use serde_json::Value;

/// A day in seconds.
pub const DAY: i64 = 86_400;

/// The facts of a granted validate or activate.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The organization asked for.
    pub org: String,
    /// The key.
    pub key: Key,
    /// The `machine_fingerprint` condition sent, if any (what the lease is bound to).
    pub machine: Option<String>,
    /// The license key object of Polar's answer.
    pub license: Value,
    /// The activation validated, or the one just made.
    pub activation_id: Option<String>,
    /// The request's `polar-license-nonce` (issue #53), signed into the lease as the relay
    /// signs it.
    pub nonce: Option<String>,
}

impl Facts {
    /// A grant of `key` to `org`'s `activation` under `benefit_id`, with no usage and no limits
    /// (what a test or bench that signs a lease of its own starts from).
    pub fn granted(org: &str, key: &Key, activation: &str, benefit_id: &str) -> Facts {
        Facts {
            org: org.to_string(),
            key: key.clone(),
            machine: None,
            license: serde_json::json!({"status": "granted", "benefit_id": benefit_id, "usage": 0}),
            activation_id: Some(activation.to_string()),
            nonce: None,
        }
    }
}

/// The facts of a grant (`None` for anything else: a denial, a deactivate, garbage).
pub fn facts(request: &HttpRequest, response: &HttpResponse) -> Option<Facts> {
    if response.status != 200 || request.url.ends_with("/deactivate") {
        return None;
    }
    let req: Value = serde_json::from_slice(&request.body).ok()?;
    let resp: Value = serde_json::from_slice(&response.body).ok()?;
    let activate = request.url.ends_with("/activate");
    let license = if activate {
        resp["license_key"].clone()
    } else {
        resp.clone()
    };
    let activation_id = if activate {
        resp["id"].as_str().map(str::to_string)
    } else {
        resp["activation"]["id"].as_str().map(str::to_string)
    };
    Some(Facts {
        org: req["organization_id"].as_str()?.to_string(),
        key: Key::new(req["key"].as_str()?),
        machine: req["conditions"]["machine_fingerprint"]
            .as_str()
            .map(str::to_string),
        license,
        activation_id,
        nonce: request
            .headers
            .iter()
            .find(|(name, _)| *name == lease::NONCE_HEADER)
            .map(|(_, value)| value.clone()),
    })
}

/// The denial a relay signs (issue #62) for a validate or activate Polar denied, at `now`,
/// standing `days` offline: only for a request that carried a nonce and asked for signed facts
/// (as the relay); the reason as the core reads Polar's answer. With the machine it is bound
/// to (the request's `machine_fingerprint` condition). `None` for anything else.
pub fn denial(
    request: &HttpRequest,
    response: &HttpResponse,
    now: i64,
    days: i64,
) -> Option<(DenialClaims, Option<String>)> {
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    };
    let nonce = header(lease::NONCE_HEADER).filter(|n| lease::asks_facts(n))?;
    let activate = request.url.ends_with("/activate");
    let reason = if activate {
        match polar_license::proto::parse_activate(response) {
            Ok(polar_license::Verdict::Denied(d)) => d.reason,
            _ => return None,
        }
    } else if request.url.ends_with("/validate") {
        match polar_license::proto::parse_validate(response) {
            Ok(polar_license::Verdict::Denied(d)) => d.reason,
            _ => return None,
        }
    } else {
        return None;
    };
    let req: Value = serde_json::from_slice(&request.body).ok()?;
    let machine = req["conditions"]["machine_fingerprint"]
        .as_str()
        .map(str::to_string);
    Some((
        DenialClaims {
            organization_id: req["organization_id"].as_str()?.to_string(),
            key_sha256: key_hash(&Key::new(req["key"].as_str()?)),
            activation_id: req["activation_id"].as_str().map(str::to_string),
            reason: reason.code().to_string(),
            issued_at: now,
            expires_at: now + days * DAY,
            id: "5c1e7a3b-2d4f-4e6a-9b8c-7d6e5f4a3b2c".to_string(),
            nonce,
            stop: None,
        },
        machine,
    ))
}

/// A cancelled subscription's end in a license's JSON (2027-01), as the relay signs it into
/// the lease's `sub_end` claim: `ends_at`, else `current_period_end`, when the customer
/// cancelled (`cancel_at_period_end`, or status `canceled`).
pub fn cancelled_until(license: &serde_json::Value) -> Option<i64> {
    let sub = license.get("subscription").filter(|s| s.is_object())?;
    let cancelled = sub["cancel_at_period_end"].as_bool() == Some(true)
        || sub["status"].as_str() == Some("canceled");
    if !cancelled {
        return None;
    }
    sub["ends_at"]
        .as_str()
        .or(sub["current_period_end"].as_str())
        .and_then(polar_license::rfc3339::DateTime::parse)
        .map(|t| t.unix_timestamp())
}

/// The claims the relay signs for `f` at `now`: `days` long, never past the license's own
/// expiry.
pub fn claims(f: &Facts, now: i64, days: i64) -> LeaseClaims {
    let license_expires_at = f.license["expires_at"]
        .as_str()
        .and_then(polar_license::rfc3339::DateTime::parse)
        .map(|t| t.unix_timestamp());
    let exp = now + days * DAY;
    LeaseClaims {
        organization_id: f.org.clone(),
        key_sha256: key_hash(&f.key),
        activation_id: f.activation_id.clone(),
        status: f.license["status"].as_str().unwrap_or_default().to_string(),
        license_expires_at,
        // As the relay: only for a client that asks for signed facts.
        subscription_ends_at: f
            .nonce
            .as_deref()
            .filter(|n| lease::asks_facts(n))
            .and_then(|_| cancelled_until(&f.license)),
        benefit_id: f.license["benefit_id"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        usage: f.license["usage"].as_i64().unwrap_or_default(),
        limit_usage: f.license["limit_usage"].as_i64(),
        limit_activations: f.license["limit_activations"].as_i64(),
        issued_at: now,
        not_before: now,
        expires_at: license_expires_at.map_or(exp, |at| exp.min(at)),
        id: "0b6f4f3e-2f0c-4c47-9d7e-5a1f7d2c9e10".to_string(),
        nonce: f.nonce.clone(),
        entitlements: None,
    }
}

/// Verifies the lease `token` of a check of `key` for `organization_id` that names no
/// activation, benefit or machine, with `keys`, seen at `now` (10 minutes' tolerance).
pub fn verify_plain(
    token: &str,
    keys: &RelayKeys,
    organization_id: &str,
    key: &str,
    now: i64,
) -> Result<Lease, NoLease> {
    let key = Key::new(key);
    let expect = LeaseExpect {
        organization_id,
        key: &key,
        activation_id: None,
        benefit_id: None,
        machine: None,
    };
    lease::verify(token, keys, &expect, now, 600)
}

/// `token` (`v4.public.<payload>[.<footer>]`) with `from` replaced by `to` (as long) in its
/// signed payload, the signature kept (a lease altered on its way: it must not verify); `None`
/// when `from` is not there. The lease-altering proxy's, and the suites' that alter a lease.
pub fn edit_payload(token: &str, from: &[u8], to: &[u8]) -> Option<String> {
    use ct_codecs::{Base64UrlSafeNoPadding as B64, Decoder, Encoder};
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let mut payload = B64::decode_to_vec(parts.get(2)?, None).ok()?;
    let at = payload.windows(from.len()).position(|w| w == from)?;
    payload.get_mut(at..at + to.len())?.copy_from_slice(to);
    parts[2] = B64::encode_to_string(&payload).ok()?;
    Some(parts.join("."))
}
