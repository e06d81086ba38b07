//! Air-gapped activation (issue #25): a machine with no network activates through another one,
//! by two lines of text carried across (a file, a USB stick, a QR code, an e-mail).
//!
//! 1. On the offline machine, [`request_line`]: the activate request Polar would get (the
//!    organization, the key, the label, the conditions with this machine's fingerprint, the
//!    meta), as one line `polar-license-activation-request.v1.<base64url JSON>`. It holds the
//!    license key: treat it as the key itself.
//! 2. On any online machine, the request is sent to the seller's relay ([`read_request`], then
//!    an ordinary activate); a grant comes back with its lease, written as one line by
//!    [`response_line`]: `polar-license-activation-response.v1.<base64url JSON>` holding
//!    Polar's answer, the lease, and the label and conditions the activation was made with.
//! 3. On the offline machine, [`read_response`]; the face checks the answer against the request
//!    it would have sent, verifies the lease with its relay keys for this machine, and stores
//!    the activation with its lease: licensed offline until the lease ends.
//!
//! Nothing here trusts the lines: a response is only as good as the lease inside it, which
//! only the relay can sign, for this machine only.

use crate::error::Error;
use crate::metadata::Metadata;
use crate::proto::{ActivateRequest, Api, HttpResponse};
use ct_codecs::{Base64UrlSafeNoPadding, Decoder, Encoder};
use serde_json::Value;

/// The request line's prefix.
pub const REQUEST_PREFIX: &str = "polar-license-activation-request.v1.";
/// The response line's prefix.
pub const RESPONSE_PREFIX: &str = "polar-license-activation-response.v1.";
/// Lines longer than this are refused unread.
pub const MAX_LINE_BYTES: usize = 256 * 1024;

fn encode(prefix: &str, json: &[u8]) -> Result<String, Error> {
    let text = Base64UrlSafeNoPadding::encode_to_string(json)
        .map_err(|_| Error::invalid("request", "could not be encoded"))?;
    Ok([prefix, &text].concat())
}

fn decode(line: &str, prefix: &str, field: &str) -> Result<Value, Error> {
    let bad = |why: &str| Error::invalid(field, why.to_string());
    let line = line.trim();
    if line.len() > MAX_LINE_BYTES {
        return Err(bad("is longer than 256 KiB"));
    }
    let body = line
        .strip_prefix(prefix)
        .ok_or_else(|| bad(&format!("must start with {prefix}")))?;
    let bytes = Base64UrlSafeNoPadding::decode_to_vec(body, None)
        .map_err(|_| bad("is not base64url after its prefix (cut short or re-encoded?)"))?;
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|_| bad("does not hold JSON after its prefix"))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(bad("does not hold a JSON object"))
    }
}

fn metadata(value: Option<&Value>, field: &str) -> Result<Metadata, Error> {
    match value {
        None | Some(Value::Null) => Ok(Metadata::new()),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|_| Error::invalid(field, "is not a map of strings, numbers and booleans")),
    }
}

fn string(value: &Value, name: &str, field: &str) -> Result<String, Error> {
    value[name]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| Error::invalid(field, format!("has no {name}")))
}

/// The request line of `req` (already bound to this machine: its conditions carry the
/// fingerprint), checked as an activate would be; nothing is sent.
pub fn request_line(api: &Api, req: &ActivateRequest) -> Result<String, Error> {
    let http = api.activate_request(req)?;
    encode(REQUEST_PREFIX, &http.body)
}

/// Reads a request line: the organization it is for and the activate request in it.
pub fn read_request(line: &str) -> Result<(String, ActivateRequest), Error> {
    let v = decode(line, REQUEST_PREFIX, "request")?;
    let org = string(&v, "organization_id", "request")?;
    let req = ActivateRequest {
        key: Some(string(&v, "key", "request")?.into()),
        label: string(&v, "label", "request")?,
        conditions: metadata(v.get("conditions"), "conditions")?,
        meta: metadata(v.get("meta"), "meta")?,
    };
    Ok((org, req))
}

/// The response line: Polar's answer to the activate (`activation`, as JSON), the relay's
/// lease, and the request's label and conditions (what later validates must send again).
pub fn response_line(
    activation: &Value,
    lease: &str,
    req: &ActivateRequest,
) -> Result<String, Error> {
    let conditions = serde_json::to_value(&req.conditions)
        .map_err(|_| Error::invalid("conditions", "could not be written"))?;
    let json = serde_json::json!({
        "activation": activation,
        "lease": lease,
        "label": req.label,
        "conditions": conditions,
    });
    let bytes = serde_json::to_vec(&json)
        .map_err(|_| Error::invalid("response", "could not be written"))?;
    encode(RESPONSE_PREFIX, &bytes)
}

/// A response line, read: Polar's answer as the 200 it was (to classify and hold to the
/// request like any activate answer), the lease, the label and the conditions.
#[derive(Debug, Clone)]
pub struct Response {
    /// Polar's answer, as a 200 with its JSON body.
    pub answer: HttpResponse,
    /// The relay's lease.
    pub lease: String,
    /// The label the activation was made with.
    pub label: String,
    /// The conditions it was made with (the machine fingerprint among them).
    pub conditions: Metadata,
}

/// Reads a response line.
pub fn read_response(line: &str) -> Result<Response, Error> {
    let v = decode(line, RESPONSE_PREFIX, "response")?;
    let body = serde_json::to_vec(&v["activation"])
        .map_err(|_| Error::invalid("response", "has no activation"))?;
    Ok(Response {
        answer: HttpResponse::new(200, body),
        lease: string(&v, "lease", "response")?,
        label: string(&v, "label", "response")?,
        conditions: metadata(v.get("conditions"), "response")?,
    })
}

/// A response line's answer as a relay sends it: Polar's 200 with the relay's lease among its
/// headers. The native client gives it to the activate machine as the answer to the request
/// line's activate (no request is sent: the line is the answer), so it is held and folded as
/// an online activate is.
pub fn leased_answer(response: Response) -> HttpResponse {
    let mut answer = response.answer;
    answer
        .headers
        .push((crate::lease::LEASE_HEADER.to_string(), response.lease));
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Server;

    const ORG: &str = "d2fcbff8-108b-411e-bf2b-6383e0a8802d";

    #[test]
    fn lines_round_trip_and_damage_is_invalid_input() -> Result<(), Error> {
        let api = Api::new(ORG, &Server::Production)?;
        let req = ActivateRequest::new("MYAPP-KEY", "air-gapped")
            .condition("machine_fingerprint", "ab12")
            .meta("seat", 3);
        let line = request_line(&api, &req)?;
        assert!(line.starts_with(REQUEST_PREFIX));
        let (org, back) = read_request(&format!("  {line}\n"))?;
        assert_eq!((org.as_str(), &back), (ORG, &req));
        for damaged in [
            line[..line.len() - 3].to_string(),
            line.replace(REQUEST_PREFIX, RESPONSE_PREFIX),
            format!("{line}*"),
            String::new(),
            "x".repeat(MAX_LINE_BYTES + 1),
        ] {
            let err = read_request(&damaged).map(drop);
            assert!(
                matches!(err, Err(Error::InvalidInput { .. })),
                "{damaged:.40}: {err:?}"
            );
        }
        let answer = serde_json::json!({"id": "a"});
        let response = read_response(&response_line(&answer, "v4.public.x", &req)?)?;
        assert_eq!(response.lease, "v4.public.x");
        assert_eq!(response.conditions, req.conditions);
        assert_eq!(response.answer.body, br#"{"id":"a"}"#);
        Ok(())
    }
}
