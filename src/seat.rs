//! Floating and CI seats (issue #67), the client's side: the requests to a seller's relay
//! (`acquire`, `heartbeat`, `release` under [`SEATS_PATH`]) and the reading of its answers,
//! with no IO. A seat is one of a key's seats shared by the machines that run now: the relay
//! gives it for a short life (5 minutes by default) and a signed seat lease
//! ([`crate::lease::SeatClaims`]) saying so, a heartbeat extends it, a release frees it, and
//! one not heard from within its life frees by itself. The native shell sends them
//! (`BlockingClient::seat`, natively); the CLI's `seat run` holds one while a command runs.

use crate::error::{Denial, Error};
use crate::json::JsonOut;
use crate::key::Key;
use crate::lease::{
    verify_seat_with, Ed25519, NoLease, RelayKeys, SeatClaims, SeatExpect, SEAT_HEADER,
};
use crate::proto::{ErrorBody, HttpRequest, HttpResponse, Operation};
use crate::strict::Value;

/// The relay's seat routes' prefix (`acquire`, `heartbeat`, `release` follow it).
pub const SEATS_PATH: &str = "/v1/seats/";

/// The longest machine binding a seat request names, in bytes.
pub const MAX_MACHINE_BYTES: usize = 256;

/// What a seat request asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeatOp {
    /// A new seat.
    Acquire,
    /// The seat's life extended.
    Heartbeat,
    /// The seat given back.
    Release,
}

impl SeatOp {
    /// `acquire`, `heartbeat` or `release`: the route's last segment.
    pub const fn as_str(self) -> &'static str {
        match self {
            SeatOp::Acquire => "acquire",
            SeatOp::Heartbeat => "heartbeat",
            SeatOp::Release => "release",
        }
    }
}

/// A seat request: which key, on which machine, of which kind, and (but for an acquisition)
/// which seat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatAsk {
    /// The operation.
    pub op: SeatOp,
    /// The license key.
    pub key: Key,
    /// This machine's binding (signed into the seat lease): a heartbeat or a release from
    /// another binding is not the seat's.
    pub machine: String,
    /// A CI seat (the seller may cap CI seats apart); else a floating one.
    pub ci: bool,
    /// The seat's id (a heartbeat, a release).
    pub seat: Option<String>,
}

/// The request for `ask` to the relay at `base_url` (no trailing slash needed), for
/// `organization_id`; its input checked first (`invalid_input`, nothing sent).
pub fn seat_request(
    base_url: &str,
    organization_id: &str,
    ask: &SeatAsk,
) -> Result<HttpRequest, Error> {
    crate::metadata::check_uuid_v4("organization_id", organization_id)?;
    crate::metadata::check_key(ask.key.expose())?;
    if ask.machine.is_empty()
        || ask.machine.len() > MAX_MACHINE_BYTES
        || ask.machine.chars().any(char::is_control)
    {
        return Err(Error::invalid(
            "machine",
            "must be 1 to 256 bytes of printable text",
        ));
    }
    seat_body(ask, organization_id, None).map(|body| HttpRequest {
        operation: Operation::Validate,
        url: [base_url.trim_end_matches('/'), SEATS_PATH, ask.op.as_str()].concat(),
        headers: vec![("content-type", "application/json".to_string())],
        body: body.into_bytes(),
    })
}

/// A seat request's body, its members in name order (as serde_json wrote them): `kind` but
/// for a release, `seat` but for an acquisition, `borrow_days` for a borrowing. Written with
/// the core's [`JsonOut`] (no serde code in a face that links only the seats).
fn seat_body(
    ask: &SeatAsk,
    organization_id: &str,
    borrow_days: Option<u32>,
) -> Result<String, Error> {
    let seat = match (ask.op, &ask.seat) {
        (SeatOp::Acquire, None) => None,
        (SeatOp::Acquire, Some(_)) => {
            return Err(Error::invalid("seat", "an acquisition names no seat"));
        }
        (_, Some(seat)) => {
            crate::metadata::check_uuid_v4("seat", seat)?;
            Some(seat.as_str())
        }
        (_, None) => return Err(Error::invalid("seat", "is required")),
    };
    let mut o = JsonOut::new();
    o.raw("{");
    if let Some(days) = borrow_days {
        o.key("borrow_days").uint(u64::from(days));
    }
    o.key("key").str(ask.key.expose());
    if ask.op != SeatOp::Release {
        o.key("kind").str(if ask.ci { "ci" } else { "floating" });
    }
    o.key("machine")
        .str(&ask.machine)
        .key("organization_id")
        .str(organization_id);
    if let Some(seat) = seat {
        o.key("seat").str(seat);
    }
    Ok(o.raw("}").done())
}

/// The longest a relay lends a seat for offline use, in days (a seller allows less, or none).
pub const MAX_BORROW_DAYS: u32 = 90;

/// The request to borrow one of the key's floating seats for offline use for `days` days
/// from the relay at `base_url` (`ask`: an acquisition of a floating seat; the relay refuses
/// more days than its seller allows, or any when it lends none). The seat's lease (a
/// `borrowed` claim, its end `days` from now) licenses offline until then and not after
/// ([`Seat::verify_borrowed`]); the relay counts it until then too, whatever a release says
/// (a release answers `released: false`: the lease cannot be called back).
pub fn borrow_request(
    base_url: &str,
    organization_id: &str,
    ask: &SeatAsk,
    days: u32,
) -> Result<HttpRequest, Error> {
    if ask.op != SeatOp::Acquire {
        return Err(Error::invalid("seat", "only an acquisition borrows"));
    }
    if ask.ci {
        return Err(Error::invalid("seat", "a CI seat is not borrowed"));
    }
    if !(1..=MAX_BORROW_DAYS).contains(&days) {
        return Err(Error::invalid("days", "must be 1 to 90"));
    }
    let mut request = seat_request(base_url, organization_id, ask)?;
    request.body = seat_body(ask, organization_id, Some(days))?.into_bytes();
    Ok(request)
}

/// A seat held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat {
    /// Its id: what a heartbeat and a release name.
    pub id: String,
    /// A CI seat.
    pub ci: bool,
    /// When it frees unless heard from (unix seconds).
    pub expires_at: i64,
    /// Its life from the relay's answer, in seconds (heartbeat well within it).
    pub expires_in: u64,
    /// Seats of the key in use now, this one with them.
    pub in_use: u32,
    /// The key's seats.
    pub size: u32,
    /// The signed seat lease, when the relay sent one.
    pub lease: Option<String>,
}

/// The shortest heartbeat interval a seat asks for, in seconds.
const MIN_BEAT: u64 = 1;

impl Seat {
    /// How often to heartbeat it: a third of its life (at least a second), so one lost
    /// heartbeat still leaves the next within it. Every face's (the CLI's `seat run`, the
    /// hold of [`crate::seat_hold::SeatHold`]).
    pub fn heartbeat_every(&self) -> core::time::Duration {
        core::time::Duration::from_secs((self.expires_in / 3).max(MIN_BEAT))
    }

    /// The seat's lease verified offline against the relay's `keys` for this organization,
    /// key and machine at `now` (unix seconds), and naming this seat.
    pub fn verify(
        &self,
        keys: &RelayKeys,
        organization_id: &str,
        key: &Key,
        machine: &str,
        now: i64,
    ) -> Result<SeatClaims, NoLease> {
        self.verify_with(
            keys,
            organization_id,
            key,
            machine,
            now,
            &crate::lease::Builtin,
        )
    }

    /// [`Seat::verify`] with the signature checked by `ed25519` (the npm package's seat
    /// module asks its host's, as signed mode does: issue #38).
    pub fn verify_with(
        &self,
        keys: &RelayKeys,
        organization_id: &str,
        key: &Key,
        machine: &str,
        now: i64,
        ed25519: &dyn Ed25519,
    ) -> Result<SeatClaims, NoLease> {
        let token = self.lease.as_deref().ok_or(NoLease::Missing)?;
        let expect = SeatExpect {
            organization_id,
            key,
            machine,
        };
        let claims = verify_seat_with(token, keys, &expect, now, ed25519)?;
        if claims.seat != self.id {
            return Err(NoLease::Mismatch);
        }
        Ok(claims)
    }

    /// A borrowed seat's lease verified offline, as [`Seat::verify`] does, and borrowed (its
    /// `borrowed` claim; a seat lease that is not is [`NoLease::Claims`]): it licenses at
    /// `now` until its end (`expires_at`) and not after ([`NoLease::Expired`]).
    pub fn verify_borrowed(
        &self,
        keys: &RelayKeys,
        organization_id: &str,
        key: &Key,
        machine: &str,
        now: i64,
    ) -> Result<SeatClaims, NoLease> {
        let claims = self.verify(keys, organization_id, key, machine, now)?;
        if !claims.borrowed {
            return Err(NoLease::Claims);
        }
        Ok(claims)
    }
}

/// A refusal with every seat in use (`seats_full`): `in_use` of `size`, the soonest frees at
/// `frees_at` (unix seconds), `retry_after` seconds from the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeatsFull {
    /// Seats in use.
    pub in_use: u32,
    /// The key's seats (or, for a CI seat, the CI cap).
    pub size: u32,
    /// When the soonest frees.
    pub frees_at: Option<i64>,
    /// Seconds until then, as the relay counted them.
    pub retry_after: Option<u64>,
}

/// What the relay answered a seat request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeatAnswer {
    /// The seat is held (acquired, or its life extended).
    Held(Seat),
    /// Every seat is in use (`seats_full`): how many, and when the soonest frees.
    Full(SeatsFull),
    /// The seat is not held (culled, released, or another machine's): acquire again.
    Gone,
    /// A release: whether the seat was held.
    Released(bool),
    /// Polar denied the key (its answer, as the relay passed it on).
    Denied(Denial),
}

impl SeatAnswer {
    /// What to tell the person using the app when no seat is held: one sentence and one next
    /// step, with the seats in use and the wait for `seats_full`. `None` for a seat held or a
    /// release.
    pub fn message(&self) -> Option<crate::message::Message> {
        use crate::decimal::digits;
        use crate::message::Message;
        match self {
            SeatAnswer::Held(_) | SeatAnswer::Released(_) => None,
            SeatAnswer::Full(SeatsFull {
                in_use,
                size,
                retry_after,
                ..
            }) => {
                let full = crate::reason::Reason::SeatsFull;
                let sentence = [
                    full.user_message().trim_end_matches('.'),
                    " (",
                    &digits(u64::from(*in_use)),
                    " of ",
                    &digits(u64::from(*size)),
                    ").",
                ]
                .concat();
                Some(match retry_after {
                    Some(s) => Message::new(
                        sentence,
                        ["Try again in ", &digits(*s), " seconds."].concat(),
                    ),
                    None => Message::new(sentence, full.next_step()),
                })
            }
            SeatAnswer::Gone => Some(Message::fixed(
                "This seat was freed (not heard from within its life).",
                "Take a seat again.",
            )),
            SeatAnswer::Denied(d) => Some(d.reason_said()),
        }
    }

    /// [`SeatAnswer::message`] as one line.
    pub fn user_message(&self) -> Option<String> {
        self.message().map(|m| m.text())
    }

    /// The code a face gives a refusal by (the one spelling every face uses): `seats_full`,
    /// `seat_gone`, or Polar's reason for a denial. `None` for a seat held or a release.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            SeatAnswer::Held(_) | SeatAnswer::Released(_) => None,
            SeatAnswer::Full(_) => Some(crate::reason::Reason::SeatsFull.code()),
            SeatAnswer::Gone => Some(SEAT_GONE_CODE),
            SeatAnswer::Denied(d) => Some(d.reason.code()),
        }
    }
}

/// The code of a seat the relay no longer holds ([`SeatAnswer::Gone`]): not a reason of a
/// check (the key is not denied), a seat to take again.
pub const SEAT_GONE_CODE: &str = "seat_gone";

/// The member `name` when it is an integer that fits `u64`.
fn number(v: &Value, name: &str) -> Option<u64> {
    match v.get(name)? {
        Value::UInt(n) => Some(*n),
        _ => None,
    }
}

/// The member `name` when it is an integer that fits `u32`.
fn count(v: &Value, name: &str) -> Option<u32> {
    number(v, name).and_then(|n| u32::try_from(n).ok())
}

/// The member `name`, an RFC 3339 time, in unix seconds.
fn time(v: &Value, name: &str) -> Option<i64> {
    crate::rfc3339::DateTime::parse(v.text_of(name)?).map(|t| t.unix_timestamp())
}

/// The relay's answer to a seat request `op`, read. Its body is read with the core's strict
/// reader ([`crate::strict`]), as Polar's answers are: a body that is not JSON, or a 200
/// without a seat's members, is a `protocol_error`, never a panic. Polar's answers (a denial,
/// a rate limit, an unreachable Polar) are classified as every answer of Polar's is
/// ([`crate::proto::failure`]).
pub fn read_seat_answer(op: SeatOp, resp: &HttpResponse) -> Result<SeatAnswer, Error> {
    let protocol = |detail: &str| Error::Protocol {
        status: Some(resp.status),
        detail: detail.to_string(),
    };
    let json = crate::strict::parse(&resp.body).ok();
    let body = json.as_ref().unwrap_or(&Value::Null);
    let reason = body.text_of("reason");
    match (resp.status, reason) {
        (200, _) if op == SeatOp::Release => {
            if json.is_none() {
                return Err(protocol("a release's answer is not JSON"));
            }
            match body.get("released") {
                Some(Value::Bool(released)) => Ok(SeatAnswer::Released(*released)),
                _ => Err(protocol("a release's answer names no `released`")),
            }
        }
        (200, _) => {
            if json.is_none() {
                return Err(protocol("a seat's answer is not JSON"));
            }
            let seat = (|| {
                Some(Seat {
                    id: body.text_of("seat")?.to_string(),
                    ci: body.text_of("kind")? == "ci",
                    expires_at: time(body, "expires_at")?,
                    expires_in: number(body, "expires_in")?,
                    in_use: count(body, "in_use")?,
                    size: count(body, "size")?,
                    lease: resp.header(SEAT_HEADER).map(str::to_string),
                })
            })()
            .ok_or_else(|| {
                protocol("a 200 that is no seat: is the base URL the seller's relay?")
            })?;
            Ok(SeatAnswer::Held(seat))
        }
        (409, Some("seats_full")) => Ok(SeatAnswer::Full(SeatsFull {
            in_use: count(body, "in_use").unwrap_or(0),
            size: count(body, "size").unwrap_or(0),
            frees_at: time(body, "frees_at"),
            retry_after: resp
                .header("retry-after")
                .and_then(|s| s.trim().parse().ok()),
        })),
        (404, Some("seat_gone")) => Ok(SeatAnswer::Gone),
        (422, None) if body.text_of("error") == Some("InvalidSeatRequest") => Err(Error::invalid(
            "seat",
            body.text_of("detail")
                .unwrap_or("refused by the relay")
                .to_string(),
        )),
        // Every 200 is read above: what is left is a failure, Polar's (passed on by the
        // relay) or one on the way.
        _ => crate::proto::failure_named(
            "a seat request",
            Operation::Validate,
            resp.status,
            &resp.body,
            json.as_ref().and_then(ErrorBody::read).as_ref(),
            resp.single("retry-after"),
        )
        .map(SeatAnswer::Denied),
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
    fn a_page_that_is_not_the_relays_names_the_seat_request() {
        for status in [404, 418] {
            let resp = HttpResponse::new(status, &b"<html>Not Found</html>"[..]);
            match read_seat_answer(SeatOp::Acquire, &resp) {
                Err(e @ Error::Protocol { .. }) => {
                    let said = e.to_string();
                    assert!(said.contains("for a seat request"), "{said}");
                    assert!(!said.contains("validate"), "{said}");
                }
                other => panic!("{status}: {other:?}"),
            }
        }
    }
    const SEAT: &str = "6a1f4b7e-3c2d-4e5f-8a9b-0c1d2e3f4a5b";

    /// The one spelling of a refusal's code every face gives (C, the CLI, Tauri and npm's seat
    /// module read it here): the relay's own reason read back, and none for an answer that
    /// is no refusal.
    #[test]
    fn a_refusals_code_is_the_cores() {
        let full = SeatAnswer::Full(SeatsFull {
            in_use: 2,
            size: 2,
            frees_at: None,
            retry_after: None,
        });
        assert_eq!(full.code(), Some("seats_full"));
        let gone = HttpResponse::new(404, &br#"{"reason":"seat_gone"}"#[..]);
        let gone = read_seat_answer(SeatOp::Heartbeat, &gone).unwrap();
        assert_eq!(gone.code(), Some(SEAT_GONE_CODE));
        assert_eq!(SeatAnswer::Released(true).code(), None);
    }

    fn ask(op: SeatOp, seat: Option<&str>) -> SeatAsk {
        SeatAsk {
            op,
            key: Key::new("K-1"),
            machine: "m".into(),
            ci: true,
            seat: seat.map(str::to_string),
        }
    }

    #[test]
    fn requests_go_to_the_relays_seat_routes_and_bad_input_sends_nothing() {
        let r = seat_request("http://127.0.0.1:1/", ORG, &ask(SeatOp::Acquire, None)).unwrap();
        assert_eq!(r.url, "http://127.0.0.1:1/v1/seats/acquire");
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"key": "K-1", "organization_id": ORG, "machine": "m", "kind": "ci"})
        );
        let r = seat_request("http://h", ORG, &ask(SeatOp::Release, Some(SEAT))).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["seat"], SEAT);
        assert!(body.get("kind").is_none());
        for (a, field) in [
            (ask(SeatOp::Acquire, Some(SEAT)), "seat"),
            (ask(SeatOp::Heartbeat, None), "seat"),
            (ask(SeatOp::Heartbeat, Some("nope")), "seat"),
            (
                SeatAsk {
                    machine: String::new(),
                    ..ask(SeatOp::Acquire, None)
                },
                "machine",
            ),
        ] {
            let e = seat_request("http://h", ORG, &a).unwrap_err();
            assert_eq!(e.reason(), crate::Reason::InvalidInput, "{a:?}");
            assert!(e.to_string().contains(field), "{e}");
        }
        assert!(seat_request("http://h", "not-an-org", &ask(SeatOp::Acquire, None)).is_err());
    }

    #[test]
    fn a_borrowed_seat_licenses_offline_until_its_end_and_not_after() {
        let (signer, keys, key, now) = crate::lease::seat_rig();
        let end = now + 7 * 86_400;
        let claims = SeatClaims {
            organization_id: ORG.into(),
            key_sha256: crate::lease::key_hash(&key),
            seat: SEAT.into(),
            kind: "floating".into(),
            issued_at: now,
            expires_at: end,
            size: 1,
            borrowed: true,
        };
        let lease = signer.sign_seat(&claims, "m").unwrap();
        let mut answer = HttpResponse::new(
            200,
            br#"{"seat":"6a1f4b7e-3c2d-4e5f-8a9b-0c1d2e3f4a5b","kind":"floating","expires_at":"2027-01-22T08:00:00Z","expires_in":604800,"in_use":1,"size":1,"borrowed":true}"#.to_vec(),
        );
        answer.headers.push((SEAT_HEADER.to_string(), lease));
        let SeatAnswer::Held(seat) = read_seat_answer(SeatOp::Acquire, &answer).unwrap() else {
            panic!("no seat");
        };
        // The clock is the caller's: offline, a day before its end, a second before it, at it.
        for at in [now + 86_400, end - 1] {
            assert!(
                seat.verify_borrowed(&keys, ORG, &key, "m", at)
                    .unwrap()
                    .borrowed
            );
        }
        assert_eq!(
            seat.verify_borrowed(&keys, ORG, &key, "m", end),
            Err(NoLease::Expired)
        );
        // A seat that is not borrowed does not license offline as one.
        let short = signer
            .sign_seat(
                &SeatClaims {
                    borrowed: false,
                    expires_at: now + 300,
                    ..claims
                },
                "m",
            )
            .unwrap();
        let held = Seat {
            lease: Some(short),
            ..seat
        };
        assert_eq!(
            held.verify_borrowed(&keys, ORG, &key, "m", now),
            Err(NoLease::Claims)
        );
    }

    #[test]
    fn a_borrowing_asks_days_of_a_floating_acquisition_only() {
        let floating = SeatAsk {
            ci: false,
            ..ask(SeatOp::Acquire, None)
        };
        let r = borrow_request("http://h", ORG, &floating, 7).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            (body["borrow_days"].as_u64(), body["kind"].as_str()),
            (Some(7), Some("floating"))
        );
        assert_eq!(r.url, "http://h/v1/seats/acquire");
        for (a, days) in [
            (floating.clone(), 0),
            (floating.clone(), 91),
            (ask(SeatOp::Acquire, None), 7),
            (ask(SeatOp::Release, Some(SEAT)), 7),
        ] {
            assert_eq!(
                borrow_request("http://h", ORG, &a, days)
                    .unwrap_err()
                    .reason(),
                crate::Reason::InvalidInput
            );
        }
    }

    #[test]
    fn the_relays_answers_are_read() {
        let held = HttpResponse::new(
            200,
            br#"{"seat":"6a1f4b7e-3c2d-4e5f-8a9b-0c1d2e3f4a5b","kind":"ci","expires_at":"2027-01-15T08:00:00Z","expires_in":300,"in_use":1,"size":2}"#.to_vec(),
        );
        match read_seat_answer(SeatOp::Acquire, &held).unwrap() {
            SeatAnswer::Held(seat) => {
                assert_eq!(
                    (
                        seat.id.as_str(),
                        seat.ci,
                        seat.expires_in,
                        seat.in_use,
                        seat.size
                    ),
                    (SEAT, true, 300, 1, 2)
                );
                assert_eq!(seat.lease, None);
            }
            other => panic!("{other:?}"),
        }
        let full = HttpResponse::new(
            409,
            br#"{"error":"SeatsFull","detail":"x","reason":"seats_full","in_use":2,"size":2,"frees_at":"2027-01-15T08:00:00Z"}"#.to_vec(),
        );
        assert!(matches!(
            read_seat_answer(SeatOp::Acquire, &full).unwrap(),
            SeatAnswer::Full(SeatsFull {
                in_use: 2,
                size: 2,
                frees_at: Some(_),
                ..
            })
        ));
        let gone = HttpResponse::new(
            404,
            br#"{"error":"SeatGone","detail":"x","reason":"seat_gone"}"#.to_vec(),
        );
        assert_eq!(
            read_seat_answer(SeatOp::Heartbeat, &gone).unwrap(),
            SeatAnswer::Gone
        );
        let released = HttpResponse::new(200, br#"{"released":true}"#.to_vec());
        assert_eq!(
            read_seat_answer(SeatOp::Release, &released).unwrap(),
            SeatAnswer::Released(true)
        );
        let polar = HttpResponse::new(
            404,
            br#"{"error":"ResourceNotFound","detail":"Not found"}"#.to_vec(),
        );
        match read_seat_answer(SeatOp::Acquire, &polar).unwrap() {
            SeatAnswer::Denied(d) => assert_eq!(d.reason, crate::Reason::NotFound),
            other => panic!("{other:?}"),
        }
        let not_a_relay = HttpResponse::new(200, br#"{"id":"x"}"#.to_vec());
        assert_eq!(
            read_seat_answer(SeatOp::Acquire, &not_a_relay)
                .unwrap_err()
                .reason(),
            crate::Reason::ProtocolError
        );
    }

    /// The bodies as serde_json's `json!` wrote them (members in name order, its escapes):
    /// byte for byte, whatever the machine's text.
    #[test]
    fn request_bodies_are_written_as_serde_json_wrote_them() {
        for machine in [
            "m",
            "a \"quoted\" \\ name",
            "héllo wörld ✓",
            "tab\there",
            "\u{7f}x",
        ] {
            for ci in [true, false] {
                let mut a = SeatAsk {
                    machine: machine.into(),
                    ci,
                    ..ask(SeatOp::Acquire, None)
                };
                if machine.chars().any(char::is_control) {
                    // Refused before anything is written.
                    assert!(seat_request("http://h", ORG, &a).is_err(), "{machine:?}");
                    continue;
                }
                let kind = if ci { "ci" } else { "floating" };
                let want = |v: serde_json::Value| serde_json::to_vec(&v).unwrap();
                let r = seat_request("http://h", ORG, &a).unwrap();
                assert_eq!(
                    r.body,
                    want(
                        serde_json::json!({"key": "K-1", "organization_id": ORG, "machine": machine, "kind": kind})
                    )
                );
                if !ci {
                    let r = borrow_request("http://h", ORG, &a, 90).unwrap();
                    assert_eq!(
                        r.body,
                        want(
                            serde_json::json!({"key": "K-1", "organization_id": ORG, "machine": machine, "kind": kind, "borrow_days": 90})
                        )
                    );
                }
                a.seat = Some(SEAT.into());
                a.op = SeatOp::Heartbeat;
                let r = seat_request("http://h", ORG, &a).unwrap();
                assert_eq!(r.url, "http://h/v1/seats/heartbeat");
                assert_eq!(
                    r.body,
                    want(
                        serde_json::json!({"key": "K-1", "organization_id": ORG, "machine": machine, "kind": kind, "seat": SEAT})
                    )
                );
                a.op = SeatOp::Release;
                let r = seat_request("http://h", ORG, &a).unwrap();
                assert_eq!(r.url, "http://h/v1/seats/release");
                assert_eq!(
                    r.body,
                    want(
                        serde_json::json!({"key": "K-1", "organization_id": ORG, "machine": machine, "seat": SEAT})
                    )
                );
            }
        }
    }

    /// A malformed answer is a typed `protocol_error` (or, for a failure's status, the failure
    /// it is), never a panic nor a seat: every prefix of a seat's answer, bodies the strict
    /// reader refuses, members of the wrong type or out of range.
    #[test]
    fn a_malformed_answer_is_a_protocol_error_not_a_panic() {
        let whole = br#"{"seat":"6a1f4b7e-3c2d-4e5f-8a9b-0c1d2e3f4a5b","kind":"ci","expires_at":"2027-01-15T08:00:00Z","expires_in":300,"in_use":1,"size":2}"#;
        assert!(matches!(
            read_seat_answer(SeatOp::Heartbeat, &HttpResponse::new(200, whole.to_vec())),
            Ok(SeatAnswer::Held(_))
        ));
        let protocol = |op: SeatOp, status: u16, body: &[u8]| {
            let e = read_seat_answer(op, &HttpResponse::new(status, body.to_vec()))
                .expect_err(&String::from_utf8_lossy(body));
            assert_eq!(
                e.reason(),
                crate::Reason::ProtocolError,
                "{status} {}: {e}",
                String::from_utf8_lossy(body)
            );
        };
        for end in 0..whole.len() {
            protocol(SeatOp::Acquire, 200, &whole[..end]);
            protocol(SeatOp::Release, 200, &whole[..end]);
        }
        let held = String::from_utf8(whole.to_vec()).unwrap();
        for bad in [
            // Refused by the strict reader: a member twice, a lone surrogate, not UTF-8 text,
            // trailing text.
            held.replace(r#""size":2"#, r#""size":2,"size":3"#),
            held.replace("6a1f4b7e", r"\ud800"),
            held.clone() + " x",
            // A seat's members of the wrong type or out of range.
            held.replace(r#""expires_in":300"#, r#""expires_in":300.0"#),
            held.replace(r#""expires_in":300"#, r#""expires_in":-1"#),
            held.replace(r#""in_use":1"#, r#""in_use":4294967296"#),
            held.replace(r#""size":2"#, r#""size":"2""#),
            held.replace(r#""kind":"ci""#, r#""kind":null"#),
            held.replace("2027-01-15T08:00:00Z", "tomorrow"),
            held.replace(r#","in_use":1"#, ""),
            "[]".into(),
            "null".into(),
        ] {
            protocol(SeatOp::Acquire, 200, bad.as_bytes());
        }
        protocol(SeatOp::Acquire, 200, b"\xff\xfe{}");
        for bad in [
            r#"{"released":"yes"}"#,
            r#"{"released":null}"#,
            "{}",
            "true",
        ] {
            protocol(SeatOp::Release, 200, bad.as_bytes());
        }
        // A failure's status with a body that is not Polar's envelope: no denial.
        for (status, body) in [
            (404, "<html>not found</html>"),
            (404, r#"{"reason":"seat_gone""#),
            (403, r#"{"detail":"x"}"#),
            (409, r#"{"reason":"seats_ful"}"#),
        ] {
            protocol(SeatOp::Heartbeat, status, body.as_bytes());
        }
    }

    #[test]
    fn the_relays_refusals_and_polars_failures_keep_their_kinds() {
        // seats_full whose numbers are missing or malformed: still full, the numbers 0.
        let full = HttpResponse::new(
            409,
            br#"{"reason":"seats_full","in_use":"2","frees_at":7}"#.to_vec(),
        )
        .with_header("retry-after", " 30 ");
        assert_eq!(
            read_seat_answer(SeatOp::Acquire, &full).unwrap(),
            SeatAnswer::Full(SeatsFull {
                in_use: 0,
                size: 0,
                frees_at: None,
                retry_after: Some(30)
            })
        );
        let full = HttpResponse::new(
            409,
            br#"{"reason":"seats_full","in_use":3,"size":3,"frees_at":"2027-01-15T08:00:00Z"}"#
                .to_vec(),
        );
        assert_eq!(
            read_seat_answer(SeatOp::Acquire, &full).unwrap(),
            SeatAnswer::Full(SeatsFull {
                in_use: 3,
                size: 3,
                frees_at: Some(1_800_000_000),
                retry_after: None
            })
        );
        let invalid = HttpResponse::new(
            422,
            br#"{"error":"InvalidSeatRequest","detail":"unknown seat kind"}"#.to_vec(),
        );
        let e = read_seat_answer(SeatOp::Acquire, &invalid).unwrap_err();
        assert_eq!(e.reason(), crate::Reason::InvalidInput);
        assert!(e.to_string().contains("unknown seat kind"), "{e}");
        let limited = HttpResponse::new(429, br#"{"detail":"slow down"}"#.to_vec())
            .with_header("retry-after", "12");
        assert_eq!(
            read_seat_answer(SeatOp::Heartbeat, &limited).unwrap_err(),
            Error::RateLimited {
                retry_after: Some(12)
            }
        );
        let down = HttpResponse::new(502, b"bad gateway".to_vec());
        assert_eq!(
            read_seat_answer(SeatOp::Release, &down)
                .unwrap_err()
                .reason(),
            crate::Reason::ServerError
        );
        let expired = HttpResponse::new(
            404,
            br#"{"error":"ResourceNotFound","detail":"License key has expired."}"#.to_vec(),
        );
        match read_seat_answer(SeatOp::Heartbeat, &expired).unwrap() {
            SeatAnswer::Denied(d) => {
                assert_eq!((d.reason, d.status), (crate::Reason::Expired, 404));
            }
            other => panic!("{other:?}"),
        }
    }
}
