//! Polar's own checks of a license route's request body, alone: what a relay in front of Polar
//! runs before it spends a call (`polar-license-relay`), so that the answers it gives to bad
//! input are byte for byte the ones Polar (and the emulator) gives.

use crate::json::{loads_bytes, obj, s, LoadError, J};
use crate::validate::{self, error_body, json_invalid};

/// A body Polar's validation accepts, its fields as pydantic read them (lax mode: an
/// `increment_usage` of `"5"` is 5; ids in canonical lowercase form).
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct CheckedBody {
    /// `key`.
    pub key: String,
    /// `organization_id`.
    pub organization_id: String,
    /// `activation_id` (validate: optional; deactivate: always set).
    pub activation_id: Option<String>,
    /// `benefit_id` (validate).
    pub benefit_id: Option<String>,
    /// `customer_id` (validate).
    pub customer_id: Option<String>,
    /// `increment_usage` (validate), as read.
    pub increment_usage: Option<i128>,
    /// `label` (activate).
    pub label: Option<String>,
    /// `conditions` (validate, activate), in the order sent.
    pub conditions: Vec<(String, serde_json::Value)>,
    /// `meta` (activate), in the order sent.
    pub meta: Vec<(String, serde_json::Value)>,
}

/// Polar's answer to a body it refuses before looking anything up: the status, the
/// `content-type` and the body (422 `RequestValidationError`, 422 `json_invalid`, or 400
/// "There was an error parsing the body").
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refusal {
    /// 422 or 400.
    pub status: u16,
    /// `application/json`.
    pub content_type: &'static str,
    /// The JSON body, as Polar writes it.
    pub body: Vec<u8>,
}

fn refusal(status: u16, value: &J) -> Refusal {
    Refusal {
        status,
        content_type: "application/json",
        // A body of checked JSON input always writes (no float in it is non-finite).
        body: value.to_json().unwrap_or_default().into_bytes(),
    }
}

fn pairs(items: Vec<(String, J)>) -> Vec<(String, serde_json::Value)> {
    items.into_iter().map(|(k, v)| (k, v.to_value())).collect()
}

/// Runs Polar's checks on the body of `POST …/license-keys/{operation}` (`validate`,
/// `activate` or `deactivate`) sent with `content_type`: the same JSON decoding (encodings,
/// a non-JSON content type read as a string), the same pydantic errors in the same order.
/// `None` for an unknown operation.
pub fn check_body(
    operation: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Option<Result<CheckedBody, Refusal>> {
    let value = if body.is_empty() {
        J::Null
    } else if is_json_content_type(content_type) {
        match loads_bytes(body) {
            Ok(v) => v,
            Err(LoadError::Decode { msg, pos }) => {
                return Some(Err(refusal(422, &error_body(&[json_invalid(msg, pos)]))));
            }
            Err(LoadError::Other) => {
                let detail = obj(vec![("detail", s("There was an error parsing the body"))]);
                return Some(Err(refusal(400, &detail)));
            }
        }
    } else {
        J::Str(String::from_utf8_lossy(body).into_owned())
    };
    let id = |u: uuid::Uuid| u.hyphenated().to_string();
    let checked = match operation {
        "validate" => validate::validate_req(&value).map(|r| CheckedBody {
            key: r.key,
            organization_id: id(r.organization_id),
            activation_id: r.activation_id.map(id),
            benefit_id: r.benefit_id.map(id),
            customer_id: r.customer_id.map(id),
            increment_usage: r.increment_usage,
            label: None,
            conditions: pairs(r.conditions),
            meta: Vec::new(),
        }),
        "activate" => validate::activate_req(&value).map(|r| CheckedBody {
            key: r.key,
            organization_id: id(r.organization_id),
            activation_id: None,
            benefit_id: None,
            customer_id: None,
            increment_usage: None,
            label: Some(r.label),
            conditions: pairs(r.conditions),
            meta: pairs(r.meta),
        }),
        "deactivate" => validate::deactivate_req(&value).map(|r| CheckedBody {
            key: r.key,
            organization_id: id(r.organization_id),
            activation_id: Some(id(r.activation_id)),
            benefit_id: None,
            customer_id: None,
            increment_usage: None,
            label: None,
            conditions: Vec::new(),
            meta: Vec::new(),
        }),
        _ => return None,
    };
    Some(checked.map_err(|errors| refusal(422, &error_body(&errors))))
}

/// FastAPI parses the body as JSON when the content type is absent, `application/json`
/// or `application/*+json` (parsed like `email.message.Message`).
pub fn is_json_content_type(value: Option<&str>) -> bool {
    let Some(value) = value else {
        return true;
    };
    let main = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if main.matches('/').count() != 1 {
        return false;
    }
    match main.split_once('/') {
        Some(("application", sub)) => sub == "json" || sub.ends_with("+json"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_field_is_polars_422_and_a_good_body_reads() {
        let refused = check_body("validate", Some("application/json"), br#"{"key":"K"}"#);
        let body = r#"{"error":"RequestValidationError","detail":[{"type":"missing","loc":["body","organization_id"],"msg":"Field required","input":{"key":"K"}}]}"#;
        assert_eq!(
            refused,
            Some(Err(Refusal {
                status: 422,
                content_type: "application/json",
                body: body.as_bytes().to_vec()
            }))
        );
        let ok = check_body(
            "validate",
            None,
            br#"{"key":"K","organization_id":"2D4F1B7E-6C1A-4C39-9A55-0A4C1E2B7F10","increment_usage":"5"}"#,
        );
        let ok = ok
            .and_then(Result::ok)
            .map(|b| (b.organization_id, b.increment_usage));
        assert_eq!(
            ok,
            Some(("2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10".to_string(), Some(5)))
        );
        assert_eq!(check_body("rotate", None, b"{}"), None);
    }
}
