//! Usage reported through the seller's relay (issue #68 item 3), the client's side: the
//! request to the relay's [`USAGE_PATH`] and the reading of its answer, with no IO. A report
//! carries an idempotency id made here ([`UsageReport::new`], a UUID v4 of the caller's
//! random bytes); a retry sends the same report, so the relay (and Polar behind it) counts it
//! once. [`RecordUsage`] is the one machine every face drives (the sends of one report, the
//! same id each time, which answers end it): the native client's `record_usage` and the
//! CLI's `usage` command, the C ABI, the npm module `polar-license/usage`, Tauri and Python
//! only send what it asks and hand back what came.

use crate::error::{Denial, Error};
use crate::json::JsonOut;
use crate::key::Key;
use crate::proto::{ErrorBody, HttpRequest, HttpResponse, Operation};
use crate::strict::Value;

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
    // Its members in name order, as serde_json wrote them; written with the core's JsonOut
    // (no serde code in a face that links only the usage report).
    let mut o = JsonOut::new();
    o.raw("{")
        .key("id")
        .str(&report.id)
        .key("key")
        .str(report.key.expose())
        .key("meter")
        .str(meter)
        .key("organization_id")
        .str(organization_id)
        .key("units")
        .float(report.units);
    let body = o.raw("}").done().into_bytes();
    Ok(HttpRequest {
        operation: Operation::Validate,
        url: format!("{}{USAGE_PATH}", base_url.trim_end_matches('/')),
        headers: vec![("content-type", "application/json".to_string())],
        body,
    })
}

/// The number member `name`, whatever its form.
fn number(v: &Value, name: &str) -> Option<f64> {
    match v.get(name)? {
        // Balances are far inside f64's exact integers.
        #[allow(clippy::cast_precision_loss)]
        Value::UInt(n) => Some(*n as f64),
        #[allow(clippy::cast_precision_loss)]
        Value::Int(n) => Some(*n as f64),
        Value::Float(x) => Some(*x),
        _ => None,
    }
}

/// The relay's answer to a report, read with the core's strict reader ([`crate::strict`]):
/// a body that is not JSON, or a 200 without a report's members, is a `protocol_error`,
/// never a panic. Polar's answers (a denial, a rate limit, an unreachable Polar) are
/// classified as every answer of Polar's is ([`crate::proto::failure`]).
pub fn read_usage_answer(resp: &HttpResponse) -> Result<UsageAnswer, Error> {
    let protocol = |detail: &str| Error::Protocol {
        status: Some(resp.status),
        detail: detail.to_string(),
    };
    let json = crate::strict::parse(&resp.body).ok();
    let body = json.as_ref().unwrap_or(&Value::Null);
    let retry_after = || {
        resp.header("retry-after")
            .and_then(|s| s.trim().parse().ok())
    };
    match (resp.status, body.text_of("reason"), body.text_of("error")) {
        (200, _, _) => match (body.get("recorded"), body.get("duplicate")) {
            (Some(Value::Bool(true)), Some(Value::Bool(duplicate))) => Ok(UsageAnswer::Recorded {
                duplicate: *duplicate,
                balance: number(body, "balance"),
            }),
            _ if json.is_none() => Err(protocol("a usage answer is not JSON")),
            _ => Err(protocol(
                "a 200 that is no usage answer: is the base URL the seller's relay?",
            )),
        },
        (402, Some("credits_exhausted"), _) => Ok(UsageAnswer::CreditsExhausted {
            balance: number(body, "balance").unwrap_or(0.0),
        }),
        (429, _, Some("UsageBacklog")) => Ok(UsageAnswer::Backlog {
            retry_after: retry_after(),
        }),
        (422, _, Some("InvalidUsageRequest")) => Err(Error::invalid(
            "usage",
            body.text_of("detail").unwrap_or("refused by the relay"),
        )),
        (503, _, Some("UsageNotKept")) => Err(Error::ServerError {
            status: 503,
            detail: "the relay could not keep the report".to_string(),
        }),
        // Every 200 is read above: what is left is a failure, Polar's (passed on by the
        // relay) or one on the way.
        _ => crate::proto::failure(
            Operation::Validate,
            resp.status,
            &resp.body,
            json.as_ref().and_then(ErrorBody::read).as_ref(),
            resp.single("retry-after"),
        )
        .map(UsageAnswer::Denied),
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

/// How long a shell waits before the `n`th send of a report (`n` from 1): none before the
/// first, then 200 ms more before each send again.
pub fn wait_before(n: u32) -> core::time::Duration {
    core::time::Duration::from_millis(200 * u64::from(n.saturating_sub(1)))
}

/// What a shell does next for a report ([`RecordUsage`]).
#[derive(Debug)]
pub enum UsageStep {
    /// Send `request` after waiting `after` (zero for the first send), then hand what came
    /// back to [`RecordUsage::answer`].
    Send {
        /// The request: the same bytes, the same id, every time.
        request: HttpRequest,
        /// How long to wait first.
        after: core::time::Duration,
    },
    /// The report's end: the relay's typed answer, or the error of the last send.
    Done(Result<UsageAnswer, Error>),
}

/// One usage report, sent through the seller's relay (issue #68 item 3): the one machine
/// every face drives (the native client, the C ABI, the npm module, the Rust-on-wasm client,
/// Tauri, Python). It owns the rules: the request is built and checked once (bad input is
/// refused here, before any send), every send carries the report's one id, a send is
/// repeated only while [`send_again`] says so and [`USAGE_SENDS`] times at most, with the
/// waits of [`wait_before`]; which answers are final is [`read_usage_answer`]'s. A shell only
/// sends, waits and hands back what came.
#[derive(Debug)]
pub struct RecordUsage {
    request: HttpRequest,
    id: String,
    sends: u32,
}

impl RecordUsage {
    /// The machine for `report` to the relay at `base_url` for `organization_id`; its input
    /// checked ([`usage_request`]: `invalid_input`, nothing to send).
    pub fn new(
        base_url: &str,
        organization_id: &str,
        report: &UsageReport,
    ) -> Result<RecordUsage, Error> {
        Ok(RecordUsage {
            request: usage_request(base_url, organization_id, report)?,
            id: report.id.clone(),
            sends: 0,
        })
    }

    /// The report's idempotency id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The first step: the first send.
    pub fn start(&mut self) -> UsageStep {
        self.send()
    }

    fn send(&mut self) -> UsageStep {
        self.sends += 1;
        UsageStep::Send {
            request: self.request.clone(),
            after: wait_before(self.sends),
        }
    }

    /// What the last send brought (`Err`: no answer came, as the transport said): the same
    /// request again, or the end.
    pub fn answer(&mut self, sent: Result<HttpResponse, Error>) -> UsageStep {
        let result = sent.and_then(|response| read_usage_answer(&response));
        if self.sends >= USAGE_SENDS || !send_again(&result) {
            return UsageStep::Done(result);
        }
        self.send()
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

    /// The body's id of a step's request.
    fn sent_id(step: &UsageStep) -> String {
        match step {
            UsageStep::Send { request, .. } => {
                let v: serde_json::Value = serde_json::from_slice(&request.body).expect("JSON");
                v["id"].as_str().expect("an id").to_string()
            }
            UsageStep::Done(r) => panic!("no send: {r:?}"),
        }
    }

    #[test]
    fn the_machine_sends_one_id_again_while_worth_it_and_stops_at_the_final_answer() {
        let r = report();
        let mut m = RecordUsage::new("http://127.0.0.1:9", ORG, &r).expect("a machine");
        let first = m.start();
        assert!(matches!(first, UsageStep::Send { after, .. } if after.is_zero()));
        assert_eq!(sent_id(&first), r.id);
        // Out of reach, then the relay's 503: each time the same id again, waiting longer.
        let again = m.answer(Err(Error::Offline {
            timeout: true,
            detail: "timed out".into(),
        }));
        assert_eq!(sent_id(&again), r.id);
        assert!(matches!(again, UsageStep::Send { after, .. } if after.as_millis() == 200));
        let third = m.answer(Ok(HttpResponse::new(
            503,
            br#"{"error":"UsageNotKept","detail":"x"}"#.to_vec(),
        )));
        assert_eq!(sent_id(&third), r.id);
        // The third send's answer ends it, whatever it is.
        match m.answer(Ok(HttpResponse::new(
            429,
            br#"{"error":"UsageBacklog","detail":"x"}"#.to_vec(),
        ))) {
            UsageStep::Done(Ok(UsageAnswer::Backlog { .. })) => {}
            other => panic!("{other:?}"),
        }
        // A final answer ends it at once: recorded, credits exhausted, a denial, a refusal.
        for (status, body) in [
            (200, r#"{"recorded":true,"duplicate":false,"balance":null}"#),
            (
                402,
                r#"{"error":"CreditsExhausted","reason":"credits_exhausted","balance":0}"#,
            ),
            (404, r#"{"error":"ResourceNotFound","detail":"Not found"}"#),
            (422, r#"{"error":"InvalidUsageRequest","detail":"units"}"#),
        ] {
            let mut m = RecordUsage::new("http://h", ORG, &r).expect("a machine");
            let _ = m.start();
            match m.answer(Ok(HttpResponse::new(status, body.as_bytes().to_vec()))) {
                UsageStep::Done(_) => {}
                other => panic!("{status}: {other:?}"),
            }
        }
        // Bad input: no machine, nothing to send.
        assert!(RecordUsage::new(
            "http://h",
            ORG,
            &UsageReport {
                units: -1.0,
                ..report()
            }
        )
        .is_err());
    }

    #[test]
    fn a_body_that_is_not_json_is_a_protocol_error() {
        assert!(matches!(
            read_usage_answer(&HttpResponse::new(200, b"<html>".to_vec())),
            Err(Error::Protocol { .. })
        ));
    }
}
