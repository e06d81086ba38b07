//! Usage reported through the seller's relay (issue #68 item 3), the client's side: the
//! request to the relay's [`USAGE_PATH`] and the reading of its answer, with no IO. A report
//! carries an idempotency id made here ([`UsageReport::new`], a UUID v4 of the caller's
//! random bytes); a retry sends the same report, so the relay (and Polar behind it) counts it
//! once. The native shell sends it (`BlockingClient::record_usage`); the CLI's `usage`
//! command is that call.

use crate::error::{Denial, Error, Verdict};
use crate::key::Key;
use crate::proto::{HttpRequest, HttpResponse, Operation};

/// The relay's usage route.
pub const USAGE_PATH: &str = "/v1/usage/record";

/// The most units one report carries (the relay's bound).
pub const MAX_UNITS: f64 = 1_000_000_000.0;

/// Sends of one report at most, the first included, when the relay could not be reached,
/// answered 5xx, or asked to wait (each retry sends the same id).
pub const USAGE_SENDS: u32 = 3;

/// One report: the key, the meter's event name, the units, and the idempotency id.
#[derive(Clone, PartialEq)]
pub struct UsageReport {
    /// The license key.
    pub key: Key,
    /// The event name the seller's meter counts (1 to 128 bytes).
    pub meter: String,
    /// The units used (above 0, at most [`MAX_UNITS`]).
    pub units: f64,
    /// The idempotency id: the same for every send of this report.
    pub id: String,
}

impl std::fmt::Debug for UsageReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageReport")
            .field("key", &self.key)
            .field("meter", &self.meter)
            .field("units", &self.units)
            .field("id", &self.id)
            .finish()
    }
}

impl UsageReport {
    /// A report of `units` of `meter` for `key`, its id a UUID v4 of `entropy`.
    pub fn new(key: Key, meter: &str, units: f64, entropy: [u8; 16]) -> UsageReport {
        UsageReport {
            key,
            meter: meter.to_string(),
            units,
            id: uuid::Builder::from_random_bytes(entropy)
                .into_uuid()
                .hyphenated()
                .to_string(),
        }
    }
}

/// What the relay answered a report.
#[derive(Debug, Clone, PartialEq)]
pub enum UsageAnswer {
    /// Kept (or, `duplicate`, kept before under the same id): the meter's balance as the
    /// relay knows it after this report (`None`: not read yet).
    Recorded {
        /// The report's id was seen before: counted once.
        duplicate: bool,
        /// The balance the relay knows.
        balance: Option<f64>,
    },
    /// The seller's rule refused it at zero credits (`credits_exhausted`): not recorded.
    CreditsExhausted {
        /// The balance the relay knows (at or below zero).
        balance: f64,
    },
    /// Too many reports wait at the relay: send it again after `retry_after` seconds (the
    /// same id).
    Backlog {
        /// Seconds to wait, as the relay said.
        retry_after: Option<u64>,
    },
    /// Polar denied the key (its answer, as the relay passed it on).
    Denied(Denial),
}

impl UsageAnswer {
    /// Whether the same report is worth sending again (with its id): a backlog.
    pub fn again(&self) -> bool {
        matches!(self, UsageAnswer::Backlog { .. })
    }
}

/// The request of `report` to the relay at `base_url` for `organization_id`; a bad meter,
/// units, id or key is refused here, unsent.
pub fn usage_request(
    base_url: &str,
    organization_id: &str,
    report: &UsageReport,
) -> Result<HttpRequest, Error> {
    crate::metadata::check_uuid_v4("organization_id", organization_id)?;
    crate::metadata::check_key(report.key.expose())?;
    let meter = &report.meter;
    if meter.is_empty() || meter.len() > 128 || meter.chars().any(char::is_control) {
        return Err(Error::invalid(
            "meter",
            "must be 1 to 128 bytes of printable text",
        ));
    }
    if !(report.units.is_finite() && report.units > 0.0 && report.units <= MAX_UNITS) {
        return Err(Error::invalid(
            "units",
            "must be a number above 0, at most 1000000000",
        ));
    }
    let id_ok = !report.id.is_empty()
        && report.id.len() <= 64
        && report
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !id_ok {
        return Err(Error::invalid(
            "id",
            "must be 1 to 64 characters of A-Z, a-z, 0-9, '-', '_' or '.'",
        ));
    }
    let body = serde_json::json!({
        "key": report.key.expose(),
        "organization_id": organization_id,
        "meter": meter,
        "units": report.units,
        "id": report.id,
    });
    let body = serde_json::to_vec(&body)
        .map_err(|_| Error::invalid("usage", "the request could not be written"))?;
    Ok(HttpRequest {
        operation: Operation::Validate,
        url: format!("{}{USAGE_PATH}", base_url.trim_end_matches('/')),
        headers: vec![("content-type", "application/json".to_string())],
        body,
    })
}

/// The relay's answer to a report, read. Polar's answers (a denial, a rate limit, an
/// unreachable Polar) are read as every answer of Polar's is.
pub fn read_usage_answer(resp: &HttpResponse) -> Result<UsageAnswer, Error> {
    let json = || serde_json::from_slice::<serde_json::Value>(&resp.body).ok();
    let protocol = |detail: &str| Error::Protocol {
        status: Some(resp.status),
        detail: detail.to_string(),
    };
    let error = json().and_then(|v| v.get("error")?.as_str().map(str::to_string));
    let reason = json().and_then(|v| v.get("reason")?.as_str().map(str::to_string));
    let retry_after = || {
        resp.header("retry-after")
            .and_then(|s| s.trim().parse().ok())
    };
    match (resp.status, reason.as_deref(), error.as_deref()) {
        (200, _, _) => {
            let v = json().ok_or_else(|| protocol("a usage answer is not JSON"))?;
            let recorded = v.get("recorded").and_then(serde_json::Value::as_bool);
            let duplicate = v.get("duplicate").and_then(serde_json::Value::as_bool);
            match (recorded, duplicate) {
                (Some(true), Some(duplicate)) => Ok(UsageAnswer::Recorded {
                    duplicate,
                    balance: v.get("balance").and_then(serde_json::Value::as_f64),
                }),
                _ => Err(protocol(
                    "a 200 that is no usage answer: is the base URL the seller's relay?",
                )),
            }
        }
        (402, Some("credits_exhausted"), _) => Ok(UsageAnswer::CreditsExhausted {
            balance: json()
                .and_then(|v| v.get("balance")?.as_f64())
                .unwrap_or(0.0),
        }),
        (429, _, Some("UsageBacklog")) => Ok(UsageAnswer::Backlog {
            retry_after: retry_after(),
        }),
        (422, _, Some("InvalidUsageRequest")) => Err(Error::invalid(
            "usage",
            json()
                .and_then(|v| v.get("detail")?.as_str().map(str::to_string))
                .unwrap_or_else(|| "refused by the relay".into()),
        )),
        (503, _, Some("UsageNotKept")) => Err(Error::ServerError {
            status: 503,
            detail: "the relay could not keep the report".to_string(),
        }),
        _ => match crate::proto::parse_validate(resp)? {
            Verdict::Denied(d) => Ok(UsageAnswer::Denied(d)),
            Verdict::Accepted(_) => Err(protocol("the usage route answered as a validate")),
        },
    }
}

/// Whether a send that ended in `result` is worth sending again with the same id: the relay
/// out of reach, its 5xx (the report may or may not be kept: the id counts it once), or its
/// backlog.
pub fn send_again(result: &Result<UsageAnswer, Error>) -> bool {
    match result {
        Ok(answer) => answer.again(),
        Err(Error::Offline { .. } | Error::ServerError { .. }) => true,
        Err(_) => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const ORG: &str = "d2fcbff8-108b-411e-bf2b-6383e0a8802d";

    fn report() -> UsageReport {
        UsageReport::new(Key::new("POLAR-ABC-123"), "tokens_used", 3.0, [7; 16])
    }

    #[test]
    fn the_request_carries_one_id_and_bad_input_is_refused_unsent() {
        let r = report();
        assert_eq!(r.id.len(), 36);
        let req = usage_request("http://127.0.0.1:9/", ORG, &r).expect("a request");
        assert_eq!(req.url, "http://127.0.0.1:9/v1/usage/record");
        let body: serde_json::Value = serde_json::from_slice(&req.body).expect("JSON");
        assert_eq!(body["id"], r.id);
        assert_eq!(body["units"], 3.0);
        for (bad, field) in [
            (
                UsageReport {
                    units: 0.0,
                    ..report()
                },
                "units",
            ),
            (
                UsageReport {
                    units: f64::NAN,
                    ..report()
                },
                "units",
            ),
            (
                UsageReport {
                    meter: String::new(),
                    ..report()
                },
                "meter",
            ),
            (
                UsageReport {
                    id: "a b".into(),
                    ..report()
                },
                "id",
            ),
        ] {
            match usage_request("http://127.0.0.1:9", ORG, &bad) {
                Err(Error::InvalidInput { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_answers_are_typed() {
        let answer = |status: u16, body: &str| {
            read_usage_answer(&HttpResponse::new(status, body.as_bytes().to_vec()))
        };
        assert_eq!(
            answer(200, r#"{"recorded":true,"duplicate":true,"balance":4.5}"#).expect("read"),
            UsageAnswer::Recorded {
                duplicate: true,
                balance: Some(4.5)
            }
        );
        assert_eq!(
            answer(
                402,
                r#"{"error":"CreditsExhausted","reason":"credits_exhausted","balance":-1}"#
            )
            .expect("read"),
            UsageAnswer::CreditsExhausted { balance: -1.0 }
        );
        let backlog = answer(429, r#"{"error":"UsageBacklog","detail":"x"}"#);
        assert!(send_again(&backlog));
        assert!(matches!(
            answer(404, r#"{"error":"ResourceNotFound","detail":"Not found"}"#),
            Ok(UsageAnswer::Denied(_))
        ));
        // A 200 that is not the relay's: no usage answer.
        assert!(matches!(
            answer(200, r#"{"id":"x"}"#),
            Err(Error::Protocol { .. })
        ));
        assert!(!send_again(&answer(
            422,
            r#"{"error":"InvalidUsageRequest","detail":"units"}"#
        )));
    }
}
