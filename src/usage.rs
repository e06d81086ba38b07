//! Usage reported through the seller's relay (issue #68 item 3), the client's side: the
//! request to the relay's [`USAGE_PATH`] and the reading of its answer, with no IO. A report
//! carries an idempotency id made here ([`UsageReport::new`], a UUID v4 of the caller's
//! random bytes); a retry sends the same report, so the relay (and Polar behind it) counts it
//! once. [`RecordUsage`] is the one machine every face drives (the sends of one report, the
//! same id each time, which answers end it): the native client's `record_usage` and the
//! CLI's `usage` command, the C ABI, the npm module `polar-license/usage`, Tauri and Python
//! only send what it asks and hand back what came.
//!
//! **What an answer proves** (issue #76). A client that holds the relay's public keys
//! ([`RecordUsage::signed`], signed mode) sends a fresh nonce with each report and believes
//! `recorded`, `credits_exhausted` and the balance only from the relay's signed
//! acknowledgement ([`crate::lease::USAGE_HEADER`]) naming that nonce, the key, the report's
//! id, its meter and its units: an answer without one that verifies is a `protocol_error`,
//! never recorded, so a proxy (or a fake relay) cannot say `recorded` for a report it
//! dropped, nor hand out credits the seller's `--refuse-at-zero-credits` would refuse. Without
//! relay keys nothing in the answer is authenticated: `recorded` and the balance are the word
//! of whatever answered at the base URL (TLS to the seller's relay is all that vouches for
//! them), and [`UsageAnswer::Recorded`]'s `signed` says so (`false`).

use crate::error::{Denial, Error};
use crate::json::JsonOut;
use crate::key::Key;
use crate::proto::{ErrorBody, HttpRequest, HttpResponse, Operation};
use crate::strict::Value;

mod buffered;
pub use buffered::{BufferedRun, BufferedUsage, UsageBacklog, BACKLOG_MAX};

/// The relay's usage route.
pub const USAGE_PATH: &str = "/v1/usage/record";

/// The most units one report carries (the relay's bound).
pub const MAX_UNITS: f64 = 1_000_000_000.0;

/// The fewest units one report carries (the relay's floor: a millionth of a unit).
pub const MIN_UNITS: f64 = 1e-6;

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
    /// The units used ([`MIN_UNITS`] to [`MAX_UNITS`]).
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
        /// Whether the relay signed this answer and it verified (signed mode: always `true`,
        /// an unsigned answer is a `protocol_error` there). `false`: the answer is unsigned
        /// (a client without relay keys), `recorded` and the balance only what answered said.
        signed: bool,
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

/// The one code of the state "the report is not kept yet: it waits (in the relay's backlog
/// answer, or in a client's own [`UsageBacklog`]) and is sent again later with its id" (issue
/// #68 item 3). Every face gives this code, from [`UsageAnswer::code`]; names a face shipped
/// before stay as aliases (Python's `rate_limited` class, C's `POLAR_LICENSE_USAGE_ERROR_BACKLOG`).
pub const BACKLOG_CODE: &str = "usage_backlog";

/// The code of a recorded report ([`UsageAnswer::code`]).
pub const RECORDED_CODE: &str = "recorded";

impl UsageAnswer {
    /// Whether the same report is worth sending again (with its id): a backlog.
    pub fn again(&self) -> bool {
        matches!(self, UsageAnswer::Backlog { .. })
    }

    /// The answer's code, the one every face gives: [`RECORDED_CODE`], `credits_exhausted`,
    /// [`BACKLOG_CODE`], or the reason code of Polar's denial (`not_found`, …).
    pub fn code(&self) -> &'static str {
        match self {
            UsageAnswer::Recorded { .. } => RECORDED_CODE,
            UsageAnswer::CreditsExhausted { .. } => crate::reason::Reason::CreditsExhausted.code(),
            UsageAnswer::Backlog { .. } => BACKLOG_CODE,
            UsageAnswer::Denied(d) => d.reason.code(),
        }
    }

    /// What to tell the person using the app when a report is not recorded: one sentence and
    /// one next step. `None` for a recorded report.
    pub fn message(&self) -> Option<crate::message::Message> {
        match self {
            UsageAnswer::Recorded { .. } => None,
            UsageAnswer::CreditsExhausted { .. } => {
                Some(crate::reason::Reason::CreditsExhausted.message())
            }
            UsageAnswer::Backlog { .. } => Some(crate::message::Message::fixed(
                "The usage is not recorded yet (the license server is busy).",
                "Keep the app open while it is sent again.",
            )),
            UsageAnswer::Denied(d) => Some(d.reason_said()),
        }
    }

    /// [`UsageAnswer::message`] as one line.
    pub fn user_message(&self) -> Option<String> {
        self.message().map(|m| m.text())
    }

    /// The seconds the relay (or Polar behind it) asked to wait, for a backlog.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            UsageAnswer::Backlog { retry_after } => *retry_after,
            _ => None,
        }
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
    if !(report.units.is_finite() && report.units >= MIN_UNITS && report.units <= MAX_UNITS) {
        return Err(Error::invalid(
            "units",
            "must be a number from 0.000001 to 1000000000",
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
                signed: false,
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
        _ => crate::proto::failure_named(
            "a usage report",
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

/// The seconds an answer asked to wait (the relay's backlog, or a rate limit's
/// `Retry-After`).
pub fn waited(result: &Result<UsageAnswer, Error>) -> Option<u64> {
    match result {
        Ok(answer) => answer.retry_after(),
        Err(Error::RateLimited { retry_after }) => *retry_after,
        Err(_) => None,
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
    key: Key,
    /// Sends answered so far.
    sends: u32,
    /// What comes next: a wait, the send, or the end.
    next: Next,
    /// The waits for `429`s so far.
    patience: crate::flow::Patience,
    /// Signed mode: what an acknowledgement must name (`None`: unsigned).
    signed: Option<Signed>,
}

/// Signed mode's side of a report ([`RecordUsage::signed`]): the relay's keys and what its
/// acknowledgement must name.
#[derive(Debug, Clone)]
struct Signed {
    keys: crate::lease::RelayKeys,
    /// The acknowledgement's verification ([`crate::lease::verify_usage`], the core's
    /// Ed25519): named only where signed mode is asked for, so a face that never is links no
    /// Ed25519 code. `None`: the signatures are the host's to check, at each answer
    /// ([`RecordUsage::signed_by_host`], npm's `polar-license/usage`).
    verify: Option<VerifyUsage>,
    organization_id: String,
    report: UsageReport,
    nonce: String,
}

impl Signed {
    /// `answer` (read from `resp`) as its signed acknowledgement says, or `protocol_error`
    /// when it has none that verifies; answers that record nothing and state no balance (a
    /// backlog, Polar's denial) pass as they came.
    /// `ed25519`: the host's verifier of this answer's signature (`None`: the core's, in
    /// `verify`).
    fn verified(
        &self,
        answer: UsageAnswer,
        resp: &HttpResponse,
        ed25519: Option<&dyn crate::lease::Ed25519>,
    ) -> Result<UsageAnswer, Error> {
        let recorded = match answer {
            UsageAnswer::Recorded { .. } => true,
            UsageAnswer::CreditsExhausted { .. } => false,
            other => return Ok(other),
        };
        let expect = crate::lease::UsageExpect {
            organization_id: &self.organization_id,
            key: &self.report.key,
            report_id: &self.report.id,
            meter: &self.report.meter,
            units: self.report.units,
            nonce: &self.nonce,
        };
        // Every relay signs its acknowledgement when the request carries a nonce (the native
        // relay with its key file, the npm relay on Workers with its host's key): an answer
        // with none (the token stripped by a proxy, a fake relay) is not the relay's, and so
        // is one whose token does not verify or names another send (a rewritten body, a
        // replay): `protocol_error`, never recorded, its balance never read.
        let Some(token) = resp.single(crate::lease::USAGE_HEADER) else {
            return Err(unsigned_answer(
                resp.status,
                "carries no acknowledgement of the relay's",
            ));
        };
        let claims = match (ed25519, self.verify) {
            (Some(host), _) => crate::lease::verify_usage_with(token, &self.keys, &expect, host),
            (None, Some(verify)) => verify(token, &self.keys, &expect),
            // Signatures the host checks, and no host's verifier given: nothing verified.
            (None, None) => Err(crate::lease::NoLease::Signature),
        };
        match claims {
            Ok(c) if c.recorded == recorded && recorded => Ok(UsageAnswer::Recorded {
                duplicate: c.duplicate,
                balance: c.balance,
                signed: true,
            }),
            Ok(c) if c.recorded == recorded => Ok(UsageAnswer::CreditsExhausted {
                balance: c.balance.unwrap_or(0.0),
            }),
            Ok(_) => Err(unsigned_answer(
                resp.status,
                "says other than the relay signed",
            )),
            Err(why) => Err(unsigned_answer(
                resp.status,
                &format!("has no acknowledgement of the relay's that verifies ({why:?})"),
            )),
        }
    }
}

/// How a signed acknowledgement is verified ([`crate::lease::verify_usage`]).
type VerifyUsage = fn(
    &str,
    &crate::lease::RelayKeys,
    &crate::lease::UsageExpect<'_>,
) -> Result<crate::lease::UsageClaims, crate::lease::NoLease>;

/// Signed mode's refusal of a usage answer the relay did not sign: `protocol_error`, the
/// report not recorded as far as this client knows (sent again with its id, it counts once).
fn unsigned_answer(status: u16, why: &str) -> Error {
    Error::Protocol {
        status: Some(status),
        detail: format!(
            "the usage answer {why}: not taken as recorded (signed mode: is something between \
             this client and the seller's relay?)"
        ),
    }
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
            key: report.key.clone(),
            sends: 0,
            next: Next::Send,
            patience: crate::flow::Patience::default(),
            signed: None,
        })
    }

    /// The machine for `report` in signed mode (issue #76): each send carries the nonce of
    /// `entropy` (16 random bytes: [`crate::lease::nonce_text`]), and an answer is believed
    /// (`recorded`, `credits_exhausted`, the balance) only from the relay's acknowledgement
    /// that verifies under `keys` and names that nonce and this report, as it says; an answer
    /// without one (stripped, a fake relay's) or with one that does not verify is a
    /// `protocol_error`. No relay keys (`keys` empty): `invalid_input`.
    pub fn signed(
        base_url: &str,
        organization_id: &str,
        report: &UsageReport,
        keys: crate::lease::RelayKeys,
        entropy: [u8; 16],
    ) -> Result<RecordUsage, Error> {
        RecordUsage::signed_with(
            base_url,
            organization_id,
            report,
            (keys, entropy, Some(crate::lease::verify_usage)),
        )
    }

    /// [`RecordUsage::signed`] for a host that checks Ed25519 signatures itself (npm's
    /// `polar-license/usage`: the package's `hostEd25519`, WebCrypto or node:crypto, so that
    /// its wasm carries no Ed25519 of its own): hand each answer to
    /// [`RecordUsage::answer_with`] with the host's verifier. The same rules: an answer is
    /// believed only from the relay's acknowledgement that verifies and names this send.
    pub fn signed_by_host(
        base_url: &str,
        organization_id: &str,
        report: &UsageReport,
        keys: crate::lease::RelayKeys,
        entropy: [u8; 16],
    ) -> Result<RecordUsage, Error> {
        RecordUsage::signed_with(base_url, organization_id, report, (keys, entropy, None))
    }

    /// [`RecordUsage::signed`] with the acknowledgement's verification given (`None`: the
    /// host's, at each answer).
    fn signed_with(
        base_url: &str,
        organization_id: &str,
        report: &UsageReport,
        (keys, entropy, verify): (crate::lease::RelayKeys, [u8; 16], Option<VerifyUsage>),
    ) -> Result<RecordUsage, Error> {
        if keys.is_empty() {
            return Err(Error::invalid(
                "relay_keys",
                "signed mode needs at least one relay key",
            ));
        }
        let mut m = RecordUsage::new(base_url, organization_id, report)?;
        let nonce = crate::lease::nonce_text(&entropy);
        m.request
            .headers
            .push((crate::lease::NONCE_HEADER, nonce.clone()));
        m.signed = Some(Signed {
            keys,
            verify,
            organization_id: organization_id.to_string(),
            report: report.clone(),
            nonce,
        });
        Ok(m)
    }

    /// The report's idempotency id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The first step: the first send. ([`UsageStep`] is the step protocol of the npm
    /// add-on and the C ABI, a wait and a send in one; a shell of the core drives the
    /// machine as a [`crate::flow::Standalone`] instead.)
    pub fn start(&mut self) -> UsageStep {
        self.step()
    }

    /// The next [`UsageStep`]: the waits before the send summed into its `after`.
    fn step(&mut self) -> UsageStep {
        let mut after = core::time::Duration::ZERO;
        loop {
            match &mut self.next {
                Next::Wait(wait) => {
                    after += *wait;
                    self.next = Next::Send;
                }
                Next::Send => {
                    return UsageStep::Send {
                        request: self.request.clone(),
                        after,
                    }
                }
                Next::Done(result) => {
                    let result = result.take().unwrap_or_else(|| Err(spent()));
                    return UsageStep::Done(result);
                }
            }
        }
    }

    /// What the last send brought (`Err`: no answer came, as the transport said): the same
    /// request again, or the end.
    pub fn answer(&mut self, sent: Result<HttpResponse, Error>) -> UsageStep {
        let result = self.read(sent, None);
        self.after(result);
        self.step()
    }

    /// The report's end, once the machine wants nothing more ([`crate::flow::Want::Done`]);
    /// taken once.
    pub fn outcome(&mut self) -> Result<UsageAnswer, Error> {
        match &mut self.next {
            Next::Done(result) => result.take().unwrap_or_else(|| Err(spent())),
            _ => Err(Error::invalid("usage", "the report is not done yet")),
        }
    }

    /// [`RecordUsage::answer`] with the host's Ed25519 checking the acknowledgement's
    /// signature ([`RecordUsage::signed_by_host`]); `None` when `ed25519` asked its host
    /// ([`crate::lease::Ed25519::pending`]): nothing moved, hand the same answer again once
    /// the host has answered.
    pub fn answer_with(
        &mut self,
        sent: Result<HttpResponse, Error>,
        ed25519: &dyn crate::lease::Ed25519,
    ) -> Option<UsageStep> {
        let result = self.read(sent, Some(ed25519));
        if ed25519.pending() {
            return None;
        }
        self.after(result);
        Some(self.step())
    }

    /// What the last send brought, read (and in signed mode verified).
    fn read(
        &self,
        sent: Result<HttpResponse, Error>,
        ed25519: Option<&dyn crate::lease::Ed25519>,
    ) -> Result<UsageAnswer, Error> {
        sent.and_then(|response| {
            let answer = read_usage_answer(&response)?;
            match &self.signed {
                Some(signed) => signed.verified(answer, &response, ed25519),
                None => Ok(answer),
            }
        })
    }

    /// What comes after a send that ended in `result`: the same report again after a wait,
    /// or the end. A `429` (the relay's backlog, or a rate limit) is sent again after its
    /// `Retry-After` while the waits fit the [`crate::flow::timed::RETRY_BUDGET`] (past it
    /// the report ends with that answer: a client with a backlog holds it until then); an
    /// unreachable relay or its 5xx after [`wait_before`]'s; [`USAGE_SENDS`] sends at most.
    fn after(&mut self, result: Result<UsageAnswer, Error>) {
        self.sends += 1;
        let limited = matches!(
            &result,
            Ok(UsageAnswer::Backlog { .. }) | Err(Error::RateLimited { .. })
        );
        let again = self.sends < USAGE_SENDS && (send_again(&result) || limited);
        let wait = match again {
            false => None,
            true if limited => self.patience.wait_for(waited(&result)),
            true => Some(wait_before(self.sends + 1)),
        };
        self.next = match wait {
            Some(wait) if wait.is_zero() => Next::Send,
            Some(wait) => Next::Wait(wait),
            None => Next::Done(Some(result)),
        };
    }
}

/// What a [`RecordUsage`] does next.
#[derive(Debug)]
enum Next {
    /// Wait this long, then send.
    Wait(core::time::Duration),
    /// Send the report.
    Send,
    /// The end (`None` once taken).
    Done(Option<Result<UsageAnswer, Error>>),
}

/// The answer of a machine whose answer was taken already.
fn spent() -> Error {
    Error::invalid("usage", "the report's answer was taken already")
}

impl crate::flow::Standalone for RecordUsage {
    fn want(&self) -> crate::flow::Want<'_> {
        use crate::flow::Want;
        match &self.next {
            Next::Wait(wait) => Want::Wait(*wait),
            Next::Send => Want::Send(&self.request),
            Next::Done(_) => Want::Done,
        }
    }

    fn give(&mut self, given: crate::flow::Given) {
        use crate::flow::Given;
        match given {
            Given::Waited => {
                if matches!(self.next, Next::Wait(_)) {
                    self.next = Next::Send;
                }
            }
            Given::Response(sent) if matches!(self.next, Next::Send) => {
                let result = self.read(sent, None);
                self.after(result);
            }
            // Nothing else is asked of a shell (a clock reading moves nothing).
            _ => {}
        }
    }

    fn key(&self) -> &Key {
        &self.key
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const ORG: &str = "d2fcbff8-108b-411e-bf2b-6383e0a8802d";

    /// A 404 or an unexpected status that is no answer of the relay's (a wrong URL, a proxy's
    /// page) is a protocol error naming what was asked, not the validate it is classified as.
    #[test]
    fn a_page_that_is_not_the_relays_names_the_usage_report() {
        for status in [404, 418] {
            let resp = HttpResponse::new(status, &b"<html>Not Found</html>"[..]);
            match read_usage_answer(&resp) {
                Err(e @ Error::Protocol { .. }) => {
                    let said = e.to_string();
                    assert!(said.contains("for a usage report"), "{said}");
                    assert!(!said.contains("validate"), "{said}");
                }
                other => panic!("{status}: {other:?}"),
            }
        }
    }

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
                balance: Some(4.5),
                signed: false,
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

    /// Issue #77: the schedule is the machine's, as steps every shell answers alike. A
    /// `429` (a rate limit, or the relay's backlog) is waited out for its `Retry-After` (a
    /// [`crate::flow::Want::Wait`]), then the same report is sent again (the same bytes, the
    /// same id); one whose wait is past the budget ends the report with that answer, unsent.
    #[test]
    fn a_429s_retry_after_is_a_wait_step_then_the_same_report_again() {
        use crate::flow::{Given, Standalone, Want};
        let limited = |error: &str, secs: u64| {
            let mut resp = HttpResponse::new(429, format!(r#"{{"error":"{error}","detail":"x"}}"#));
            resp.headers.push(("retry-after".into(), secs.to_string()));
            resp
        };
        for error in ["TooManyRequests", "UsageBacklog"] {
            let mut m = RecordUsage::new("http://127.0.0.1:9", ORG, &report()).expect("a machine");
            let Want::Send(first) = m.want() else {
                panic!("the first send")
            };
            let first = first.body.clone();
            m.give(Given::Response(Ok(limited(error, 5))));
            assert!(
                matches!(m.want(), Want::Wait(w) if w == core::time::Duration::from_secs(5)),
                "{error}: the Retry-After waited"
            );
            m.give(Given::Waited);
            let Want::Send(again) = m.want() else {
                panic!("{error}: the same report again")
            };
            assert_eq!(again.body, first);
            m.give(Given::Response(Ok(HttpResponse::new(
                200,
                r#"{"recorded":true,"duplicate":false,"balance":4}"#,
            ))));
            assert!(matches!(m.want(), Want::Done));
            assert_eq!(m.outcome().expect("recorded").code(), RECORDED_CODE);

            // A wait past the budget: the answer as it came, nothing waited.
            let mut m = RecordUsage::new("http://127.0.0.1:9", ORG, &report()).expect("a machine");
            m.give(Given::Response(Ok(limited(error, 60))));
            assert!(matches!(m.want(), Want::Done), "{error}");
            let out = m.outcome();
            assert_eq!(waited(&out), Some(60), "{error}: {out:?}");
        }
    }

    #[test]
    fn a_body_that_is_not_json_is_a_protocol_error() {
        assert!(matches!(
            read_usage_answer(&HttpResponse::new(200, b"<html>".to_vec())),
            Err(Error::Protocol { .. })
        ));
    }

    fn seal() -> crate::keyseal::KeySeal {
        crate::keyseal::KeySeal::new("http://relay", ORG, &[9; 32], None, None)
    }

    /// A second report for the same key and meter (another id).
    fn another_report() -> UsageReport {
        UsageReport::new(Key::new("POLAR-ABC-123"), "tokens_used", 1.0, [8; 16])
    }

    /// The buffered machine for the relay at `http://relay`, this install's seal, the backlog
    /// `saved`, the call's `report` (`None`: a flush) at `now`.
    fn buffered(saved: Option<&str>, report: Option<UsageReport>, now: i64) -> BufferedUsage {
        BufferedUsage::new("http://relay", ORG, seal(), saved, report, now).expect("a run")
    }

    fn recorded() -> Result<HttpResponse, Error> {
        Ok(HttpResponse::new(
            200,
            br#"{"recorded":true,"duplicate":false,"balance":null}"#.to_vec(),
        ))
    }

    fn offline() -> Result<HttpResponse, Error> {
        Err(Error::Offline {
            timeout: false,
            detail: "refused".into(),
        })
    }

    /// The backlog's store entry in these tests.
    const BACKLOG: &str = "usage-backlog-test";

    /// Drives `m` as a machine of the family ([`BufferedRun`]) with a shell's one loop,
    /// answering every send with `answer` and every write as stored: the ids sent, the text
    /// saved (a durable write of [`BACKLOG`], nothing else), the end.
    fn drive(
        m: BufferedUsage,
        answer: impl Fn() -> Result<HttpResponse, Error>,
    ) -> (Vec<String>, Option<String>, Result<UsageAnswer, Error>) {
        drive_run(m.run(BACKLOG), answer).0
    }

    type Driven = (Vec<String>, Option<String>, Result<UsageAnswer, Error>);

    /// [`drive`] on a run, and the waits it asked for.
    fn drive_run(
        mut m: BufferedRun,
        answer: impl Fn() -> Result<HttpResponse, Error>,
    ) -> (Driven, Vec<core::time::Duration>) {
        use crate::flow::{Given, Standalone, Want};
        let (mut sent, mut saved, mut waits) = (Vec::new(), None, Vec::new());
        for _ in 0..1_000 {
            let given = match m.want() {
                Want::Send(request) => {
                    let v: serde_json::Value = serde_json::from_slice(&request.body).expect("JSON");
                    sent.push(v["id"].as_str().expect("an id").to_string());
                    Given::Response(answer())
                }
                Want::Wait(wait) => {
                    waits.push(wait);
                    Given::Waited
                }
                Want::Write {
                    name,
                    bytes,
                    keep,
                    compare,
                } => {
                    assert_eq!(
                        (name, keep, compare.is_none()),
                        (BACKLOG, crate::slot::Keep::Durable, true)
                    );
                    saved = Some(String::from_utf8(bytes.to_vec()).expect("text"));
                    Given::Written(Ok(()))
                }
                Want::Done => return ((sent, saved, m.outcome()), waits),
                _ => panic!("a buffered run asks for no store read, lock or clock"),
            };
            m.give(given);
        }
        panic!("a run that never ends");
    }

    /// Issue #77: a buffered report's schedule is the machine's steps. The relay out of reach,
    /// each send again comes after a [`crate::flow::Want::Wait`] of [`wait_before`]'s (no
    /// shell sleeps of its own), and the backlog is one durable write of the entry the shell
    /// named; then the answer.
    #[test]
    fn a_buffered_runs_waits_and_its_save_are_steps() {
        let run = buffered(None, Some(report()), 0).run(BACKLOG);
        let ((sent, saved, end), waits) = drive_run(run, offline);
        assert_eq!(sent.len(), USAGE_SENDS as usize);
        let expected: Vec<_> = (2..=USAGE_SENDS).map(wait_before).collect();
        assert_eq!(waits, expected);
        assert!(waits.iter().all(|w| !w.is_zero()));
        assert_eq!(end.expect("an answer").code(), BACKLOG_CODE);
        assert_eq!(UsageBacklog::read(saved.as_deref()).len(), 1);
    }

    #[test]
    fn a_report_the_relay_cannot_take_waits_in_the_backlog_then_goes_first_once() {
        let first = report();
        let m = buffered(None, Some(first.clone()), 0);
        let (sent, saved, end) = drive(m, offline);
        assert_eq!(sent, vec![first.id.clone(); USAGE_SENDS as usize]);
        assert_eq!(end.expect("an answer").code(), BACKLOG_CODE);
        let saved = saved.expect("the backlog saved");
        assert!(
            !saved.contains("POLAR-ABC-123"),
            "the key is sealed: {saved}"
        );
        assert_eq!(
            UsageBacklog::read(Some(&saved)).ids(),
            vec![first.id.as_str()]
        );
        // The relay back: the waiting report first, then this call's; the backlog emptied.
        let second = another_report();
        let m = buffered(Some(&saved), Some(second.clone()), 5);
        let (sent, saved, end) = drive(m, recorded);
        assert_eq!(sent, vec![first.id.clone(), second.id.clone()]);
        assert_eq!(end.expect("an answer").code(), RECORDED_CODE);
        assert!(UsageBacklog::read(saved.as_deref()).is_empty());
        // A backlog sealed for another install opens to nothing: dropped, never sent.
        let other = crate::keyseal::KeySeal::new("http://relay", ORG, &[1; 32], None, None);
        let m =
            BufferedUsage::new("http://relay", ORG, other, None, Some(first), 0).expect("a run");
        let (_, stored, _) = drive(m, offline);
        let m = buffered(stored.as_deref(), None, 0);
        let (sent, _, _) = drive(m, recorded);
        assert!(sent.is_empty(), "{sent:?}");
    }

    #[test]
    fn the_relays_retry_after_holds_the_backlog_until_then() {
        let backlog = || {
            let mut r =
                HttpResponse::new(429, br#"{"error":"UsageBacklog","detail":"x"}"#.to_vec());
            r.headers.push(("retry-after".into(), "60".into()));
            Ok(r)
        };
        let r = report();
        let m = buffered(None, Some(r.clone()), 1000);
        let (sent, saved, end) = drive(m, backlog);
        // Sent once: the relay asked for 60 s, more than the next send's wait.
        assert_eq!(sent.len(), 1);
        assert_eq!(
            end.expect("an answer"),
            UsageAnswer::Backlog {
                retry_after: Some(60)
            }
        );
        let saved = saved.expect("saved");
        assert_eq!(UsageBacklog::read(Some(&saved)).hold_until(), Some(1060));
        // Within the hold nothing is sent: a new report joins the backlog.
        let later = another_report();
        let m = buffered(Some(&saved), Some(later.clone()), 1030);
        let (sent, saved, end) = drive(m, recorded);
        assert!(sent.is_empty(), "{sent:?}");
        assert_eq!(end.expect("an answer").retry_after(), Some(30));
        let saved = saved.expect("saved");
        // After it, both go, in order, and the hold is gone.
        let m = buffered(Some(&saved), None, 1061);
        let (sent, saved, end) = drive(m, recorded);
        assert_eq!(sent, vec![r.id, later.id]);
        assert_eq!(end.expect("an answer").code(), RECORDED_CODE);
        let saved = UsageBacklog::read(saved.as_deref());
        assert!(saved.is_empty() && saved.hold_until().is_none());
    }

    /// Signed mode (issue #76): the relay's acknowledgement for this send is believed, with
    /// the balance it signed; the same answer with the token stripped, or a fake relay's
    /// `recorded` with a million credits, is `protocol_error`, never recorded. Through the
    /// host's Ed25519 (`answer_with`, npm's way), the first reading asks the host and moves
    /// nothing; the same answer again, once answered, ends as the core's own verifier does.
    #[test]
    fn signed_mode_believes_only_the_relays_acknowledgement() {
        use crate::lease::{AskedEd25519, SigningKey, UsageClaims};
        let signer = SigningKey::generate(Some("k1")).expect("a key");
        let r = report();
        let entropy = [9; 16];
        let nonce = crate::lease::nonce_text(&entropy);
        let ack = |balance: f64| {
            let claims = UsageClaims {
                organization_id: ORG.into(),
                key_sha256: crate::lease::key_hash(&r.key),
                report_id: r.id.clone(),
                meter: r.meter.clone(),
                units: r.units,
                recorded: true,
                duplicate: false,
                balance: Some(balance),
                issued_at: 1_800_000_000,
                id: "6a1f4b7e3c2d4e5f8a9b0c1d2e3f4a5b".into(),
                nonce: nonce.clone(),
            };
            signer.sign_usage(&claims).expect("signed")
        };
        let answer = |token: Option<String>, balance: f64| {
            let mut resp = HttpResponse::new(
                200,
                format!(r#"{{"recorded":true,"duplicate":false,"balance":{balance}}}"#),
            );
            if let Some(t) = token {
                resp.headers
                    .push((crate::lease::USAGE_HEADER.to_string(), t));
            }
            resp
        };
        let machine = || {
            let mut m = RecordUsage::signed("http://relay", ORG, &r, signer.relay_keys(), entropy)
                .expect("a machine");
            let UsageStep::Send { request, .. } = m.start() else {
                panic!("no send")
            };
            assert!(request
                .headers
                .iter()
                .any(|(n, v)| *n == crate::lease::NONCE_HEADER && *v == nonce));
            m
        };
        let end = |step: UsageStep| match step {
            UsageStep::Done(result) => result,
            UsageStep::Send { .. } => panic!("sent again"),
        };
        // The acknowledgement, the body's balance rewritten: the signed balance.
        let got = end(machine().answer(Ok(answer(Some(ack(4.0)), 1_000_000.0))));
        assert_eq!(
            got,
            Ok(UsageAnswer::Recorded {
                duplicate: false,
                balance: Some(4.0),
                signed: true
            })
        );
        // Stripped, or a fake relay's: no acknowledgement, nothing believed.
        for resp in [answer(None, 1_000_000.0), answer(None, 4.0)] {
            match end(machine().answer(Ok(resp))) {
                Err(Error::Protocol { detail, .. }) => {
                    assert!(detail.contains("no acknowledgement"), "{detail}");
                }
                other => panic!("{other:?}"),
            }
        }
        // The host's Ed25519: asked first (nothing moves), then the same answer again.
        let host = AskedEd25519::default();
        let mut m =
            RecordUsage::signed_by_host("http://relay", ORG, &r, signer.relay_keys(), entropy)
                .expect("a machine");
        let _ = m.start();
        assert!(m
            .answer_with(Ok(answer(Some(ack(4.0)), 9.0)), &host)
            .is_none());
        let asked = host.take_asked();
        assert!(asked.starts_with("{\"verify\":[[0,"), "{asked}");
        host.answer(0, true);
        let got = end(m
            .answer_with(Ok(answer(Some(ack(4.0)), 9.0)), &host)
            .expect("answered"));
        assert!(
            matches!(got, Ok(UsageAnswer::Recorded { balance: Some(b), signed: true, .. }) if b == 4.0),
            "{got:?}"
        );
        // Stripped, through the host's way: nothing to ask, `protocol_error` at once.
        let mut m =
            RecordUsage::signed_by_host("http://relay", ORG, &r, signer.relay_keys(), entropy)
                .expect("a machine");
        let _ = m.start();
        let got = m.answer_with(Ok(answer(None, 1_000_000.0)), &host);
        assert!(
            matches!(got, Some(UsageStep::Done(Err(Error::Protocol { .. })))),
            "{got:?}"
        );
    }
}
