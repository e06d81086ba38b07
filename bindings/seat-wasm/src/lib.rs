//! The npm package's seat module (`polar-license/seat`, issue #67 item 5; issue #76 finding
//! 2): the core's held seat for `wasm32-unknown-unknown` only (natively this crate is empty).
//!
//! One of a key's floating (or CI) seats through the seller's relay: every request is built by
//! the core (`polar_license::seat::seat_request`), every answer read by it
//! (`read_seat_answer`), and what each answer does to the hold, when the next heartbeat goes,
//! when a failed one is retried and when the hold ends are the core's `SeatHold`'s (a machine
//! with time, polled by `Hold::give`), as for the Rust `SeatGuard`, the CLI, the C face and Tauri.
//! The hold speaks the package's one step protocol (`polar-license-wasm-steps`, driven by
//! `pkg-template/drive.js`, the loop every face of the package shares): `seat.js` starts the
//! loop and wires the `AbortSignal` to its stop; the loop sends, waits and verifies as this
//! module says. The default entry's wasm carries none of it.
//!
//! A seat is held only while the relay says so, in words checked here: every seat lease is
//! verified (the relay's signature by one of the `relayKeys` the app gave, the organization,
//! the key, this holder's binding, the seat's id and kind, its end) before the seat is
//! `held`, and the hold ends at the lease's end (`lost`, reason `seat_lost`) when no renewal
//! the relay signed arrived. Without relay keys no seat is held (`invalid_input`, field
//! `relay_keys`). The signature alone is checked by the host, as signed mode's leases are
//! (issue #38; the core's `AskedEd25519`): a step that meets a lease it has no answer for answers
//! `{"verify": [[id, public key, message, signature]…]}` (hex) instead; the loop has the
//! package's Ed25519 verify each and gives the answers back (`{"verified": …}`), and the same
//! answer is read again. Nothing in this wasm verifies a signature itself.
//!
//! `Hold::start` and `Hold::give` answer, in the protocol's JSON (written with the core's
//! `JsonOut`): `{"send": …, "timeoutMs"?}` (the acquisition, a heartbeat (its answer awaited
//! until the hold's end at most), the release), `{"wait": ms}` (the machine's time until it
//! runs again; `-1`: until stopped, once the hold has ended), `{"verify": …}`, `{"note":
//! {"held": SEAT}}` (the seat held, or its life renewed), `{"note": {"ended": "lost" |
//! "gone", "error": ERROR}}` (the hold has ended: the app is told), and the end, `{"done":
//! {"error": ERROR}}` (no seat held) or `{"done": {"released": bool}}` (the release's answer:
//! whether the relay still held it) or `{"done": {"released": false, "error": ERROR}}` (none
//! came). The loop's `{"stopped": true}` (the app's release) is answered with the release.
//! SEAT is `{id, ci, expiresAt (unix seconds, the signed lease's), expiresIn, heartbeatMs,
//! endsAtMs, inUse, size}`; ERROR is `{code, detail, userMessage, status?, retryAfter?, field?,
//! inUse?, size?, freesAt?, kind?, endedAt?}` (`code`: a reason code, or `seat_gone` with its
//! `kind`).

#![cfg(target_arch = "wasm32")]

use polar_license::error::Error;
use polar_license::json::JsonOut;
use polar_license::key::Key;
use polar_license::lease::{AskedEd25519, Ed25519, RelayKeys};
use polar_license::proto::HttpResponse;
use polar_license::reason::Reason;
use polar_license::seat::{read_seat_answer, seat_request, SeatAnswer, SeatAsk, SeatOp, SeatsFull};
use polar_license::seat_hold::{HoldPoll, HoldState, HoldTerms, SeatHold};
use polar_license_wasm_steps as steps;
use std::time::Duration;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// The host's clock, unix ms (the hold's `now`).
    #[wasm_bindgen(js_namespace = Date, js_name = now)]
    fn date_now() -> f64;
}

/// Now, unix ms, as the hold takes it.
fn now_ms() -> u64 {
    ms_of(date_now())
}

/// `{"send": …}` of the core's request for `ask`, or the error that left none.
fn send(base: &str, org: &str, ask: &SeatAsk, timeout_ms: Option<u64>) -> Result<String, Error> {
    let r = seat_request(base, org, ask)?;
    Ok(steps::send("POST", &r.url, &r.headers, &r.body, timeout_ms))
}

fn seat_json(o: &mut JsonOut, hold: &SeatHold) {
    let seat = hold.seat();
    o.raw("{")
        .key("id")
        .str(&seat.id)
        .key("ci")
        .bool(seat.ci)
        .key("expiresAt")
        .int(seat.expires_at)
        .key("expiresIn")
        .uint(seat.expires_in)
        .key("heartbeatMs")
        .uint(u64::try_from(hold.heartbeat_every().as_millis()).unwrap_or(u64::MAX))
        .key("endsAtMs")
        .uint(hold.ends_at_ms())
        .key("inUse")
        .uint(u64::from(seat.in_use))
        .key("size")
        .uint(u64::from(seat.size))
        .raw("}");
}

/// Why a seat request did not leave a seat held.
enum Failure<'a> {
    /// The core's error (bad input, offline, rate limited, a bad answer).
    Error(&'a Error),
    /// The relay's or Polar's refusal.
    Refused(&'a SeatAnswer),
}

/// `{"error": ERROR}`.
fn error(f: &Failure<'_>) -> String {
    let mut o = JsonOut::new();
    o.raw("{").key("error");
    error_object(&mut o, f);
    o.raw("}").done()
}

/// ERROR: the failure's code, texts and, for `seats_full`, the pool's numbers.
fn error_object(o: &mut JsonOut, f: &Failure<'_>) {
    o.raw("{");
    match f {
        Failure::Error(e) => {
            o.error_members(e);
            if let Some(wait) = e.retry_after() {
                o.key("retryAfter").uint(wait);
            }
            if let Error::SeatLost { ended_at, .. } = e {
                o.key("endedAt").int(*ended_at);
            }
        }
        Failure::Refused(SeatAnswer::Denied(d)) => {
            // A seat answer never carries why a key stopped (its words stay out of this wasm).
            o.denial_members(d);
        }
        Failure::Refused(
            answer @ SeatAnswer::Full(SeatsFull {
                in_use,
                size,
                frees_at,
                retry_after,
            }),
        ) => {
            // The core's words (`SeatAnswer::message`), as every face's.
            let said = answer
                .message()
                .unwrap_or_else(|| Reason::SeatsFull.message());
            // The core's code (`SeatAnswer::code`), never this face's spelling of it.
            let code = answer.code().unwrap_or(Reason::SeatsFull.code());
            o.key("code").str(code);
            o.key("detail").str(code);
            o.key("userMessage").str(&said.text());
            o.key("nextStep").str(said.next_step());
            o.key("status").uint(409);
            if let Some(s) = retry_after {
                o.key("retryAfter").uint(*s);
            }
            o.key("inUse").uint(u64::from(*in_use));
            o.key("size").uint(u64::from(*size));
            o.key("freesAt").opt_int(*frees_at);
        }
        Failure::Refused(_) => {
            // Not a reason code: its kind said here, `denied` as the Tauri face's; its words the
            // core's.
            let gone = SeatAnswer::Gone;
            let said = gone.message();
            let code = gone.code().unwrap_or(polar_license::seat::SEAT_GONE_CODE);
            o.key("code").str(code);
            o.key("kind").str("denied");
            o.key("detail").str(code);
            if let Some(said) = said {
                o.key("userMessage").str(&said.text());
                o.key("nextStep").str(said.next_step());
            }
        }
    }
    o.raw("}");
}

/// `{"error": ERROR}` for a hold that has ended at `now`: `seat_lost` with when and why for
/// a lost one, `seat_gone` for a gone one; `None` for a released one.
fn ended_error(o: &mut JsonOut, hold: &SeatHold, state: HoldState, now: u64) {
    match state {
        HoldState::Lost => {
            if let Some(e) = hold.lost(now) {
                o.key("error");
                error_object(o, &Failure::Error(&e));
            }
        }
        HoldState::Gone => {
            o.key("error");
            error_object(o, &Failure::Refused(&SeatAnswer::Gone));
        }
        HoldState::Held | HoldState::Released => {}
    }
}

/// What the hold's last send was: how its answer is read.
#[derive(Clone, Copy, PartialEq)]
enum Sent {
    Nothing,
    Acquire,
    Heartbeat,
    Release,
    /// The release of a seat whose lease did not verify (a real relay may count it): the
    /// acquisition's error is the end, whatever the relay answers.
    GiveBack,
}

/// One seat of a key for one machine: its acquisition, then the core's `SeatHold`, then its
/// release, as one machine of the step protocol.
#[wasm_bindgen]
pub struct Hold {
    base: String,
    org: String,
    ask: SeatAsk,
    /// The terms a seat is held under (the relay's keys), or why there are none: no seat.
    terms: Result<HoldTerms, Error>,
    hold: Option<SeatHold>,
    ed25519: AskedEd25519,
    sent: Sent,
    /// The last answer (status, headers and body as the loop gave them), read again once the
    /// host has verified what it asked.
    last: Option<Result<HttpResponse, Error>>,
    /// The end kept while the given-back seat's release is out.
    after: Option<String>,
    /// The app has been told the hold ended.
    told: bool,
}

#[wasm_bindgen]
impl Hold {
    /// A seat of `key` for `machine` (a CI seat when `ci`) from the relay at `relay`, for
    /// the organization `org`, its seat lease verified with the relay's `keys`
    /// (`KID=k4.public.…`, comma separated; none: no seat, `invalid_input` naming
    /// `relay_keys`), held `grace_ms` past a lease's end with no renewal (none: not at all).
    /// Nothing is sent: [`Hold::start`] gives the request.
    #[wasm_bindgen(constructor)]
    pub fn new(
        org: &str,
        relay: &str,
        key: &str,
        machine: &str,
        ci: bool,
        keys: Option<String>,
        grace_ms: Option<f64>,
    ) -> Hold {
        let grace = Duration::from_millis(ms_of(grace_ms.unwrap_or(0.0)));
        let terms = RelayKeys::parse(keys.as_deref().unwrap_or_default())
            .and_then(|keys| HoldTerms::new(keys, org))
            .map(|t| t.with_grace(grace));
        Hold {
            base: relay.to_string(),
            org: org.to_string(),
            ask: SeatHold::acquire_ask(Key::new(key), machine.to_string(), ci),
            terms,
            hold: None,
            ed25519: AskedEd25519::default(),
            sent: Sent::Nothing,
            last: None,
            after: None,
            told: false,
        }
    }

    /// The acquisition's request (its input checked first: the end with `invalid_input`,
    /// nothing to send).
    pub fn start(&mut self) -> String {
        if let Err(e) = &self.terms {
            return steps::done(&error(&Failure::Error(e)));
        }
        self.sending(Sent::Acquire, &self.ask.clone(), None)
    }

    /// What the loop gave (`response`, `verified`, `noted`, `waited`, `stopped`: the step
    /// protocol's JSON, a response's body as bytes): what the hold wants next.
    pub fn give(&mut self, given: &str, body: Vec<u8>) -> String {
        let Some((kind, v)) = steps::given(given) else {
            return self.unexpected();
        };
        let read = match kind.as_str() {
            "response" => {
                let r = steps::response(&v, body);
                self.last = Some(r.clone());
                r
            }
            "verified" => {
                steps::verified(&v, &self.ed25519);
                match self.last.clone() {
                    Some(r) => r,
                    None => return self.unexpected(),
                }
            }
            "stopped" => return self.release(),
            "noted" | "waited" => return self.poll(),
            _ => return self.unexpected(),
        };
        let sent = std::mem::replace(&mut self.sent, Sent::Nothing);
        match sent {
            Sent::Acquire => self.acquired(read),
            Sent::Heartbeat => self.beaten(read),
            Sent::Release => self.release_answer(read),
            Sent::GiveBack => steps::done(&self.after.take().unwrap_or_default()),
            Sent::Nothing => self.unexpected(),
        }
    }

    /// Where the hold stands now: `held`, `lost` (from the hold's end on, even before a poll
    /// ended it), `gone`, `released`, or `none` (never acquired).
    pub fn state(&self) -> String {
        self.hold
            .as_ref()
            .map_or("none", |h| h.state_at(now_ms()).as_str())
            .to_string()
    }
}

impl Hold {
    /// `{"send": …}` of `ask`, remembered as `what` (the end with the error that left none).
    fn sending(&mut self, what: Sent, ask: &SeatAsk, timeout_ms: Option<u64>) -> String {
        match send(&self.base, &self.org, ask, timeout_ms) {
            Ok(want) => {
                self.sent = what;
                want
            }
            Err(e) => steps::done(&error(&Failure::Error(&e))),
        }
    }

    /// A given this hold did not ask for: the loop and the module do not match.
    fn unexpected(&self) -> String {
        let e = Error::Protocol {
            status: None,
            detail: "the seat module was given what it did not ask for".to_string(),
        };
        steps::done(&error(&Failure::Error(&e)))
    }

    /// The relay's answer to the acquisition: the seat held (its lease verified: noted), the
    /// end with the error (`seats_full` with the seats in use and when the soonest frees;
    /// Polar's denial; a lease that does not verify, `protocol_error`, after the seat a real
    /// relay may count is given back), or `{"verify": …}` (the same answer read again then).
    fn acquired(&mut self, read: Result<HttpResponse, Error>) -> String {
        let answer = match read.and_then(|r| read_seat_answer(SeatOp::Acquire, &r)) {
            Ok(a) => a,
            Err(e) => return steps::done(&error(&Failure::Error(&e))),
        };
        let terms = match &self.terms {
            Ok(terms) => terms,
            Err(e) => return steps::done(&error(&Failure::Error(e))),
        };
        let now = now_ms();
        let result = SeatHold::acquire_with(terms, &self.ask, &answer, now, &self.ed25519);
        if self.ed25519.pending() {
            self.sent = Sent::Acquire;
            return self.ed25519.take_asked();
        }
        match result {
            Ok(Ok(hold)) => {
                let mut o = JsonOut::new();
                o.raw("{").key("held");
                seat_json(&mut o, &hold);
                self.hold = Some(hold);
                steps::note(&o.raw("}").done())
            }
            Ok(Err(refused)) => steps::done(&error(&Failure::Refused(&refused))),
            Err(e) => {
                let end = error(&Failure::Error(&e));
                match SeatHold::release_unheld(&self.ask, &answer) {
                    Some(back) => {
                        self.after = Some(end.clone());
                        let want = self.sending(Sent::GiveBack, &back, None);
                        if self.sent == Sent::GiveBack {
                            want
                        } else {
                            steps::done(&end)
                        }
                    }
                    None => steps::done(&end),
                }
            }
        }
    }

    /// What the core's machine says to do now: the heartbeat (its answer awaited until the
    /// hold's end at most), a wait, or the hold's end told once (then a wait until stopped).
    fn poll(&mut self) -> String {
        let Some(hold) = self.hold.as_mut() else {
            return self.unexpected();
        };
        let now = now_ms();
        match hold.poll(now) {
            HoldPoll::Send(ask) => {
                let until = hold
                    .next_wait(now)
                    .map(|w| u64::try_from(w.as_millis()).unwrap_or(u64::MAX));
                self.sending(Sent::Heartbeat, &ask, until)
            }
            HoldPoll::Wait(wait) => {
                steps::wait(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX))
            }
            HoldPoll::Ended(_) if self.told => "{\"wait\":-1}".to_string(),
            HoldPoll::Ended(state) => {
                self.told = true;
                let mut o = JsonOut::new();
                o.raw("{").key("ended").str(state.as_str());
                ended_error(&mut o, hold, state, now);
                steps::note(&o.raw("}").done())
            }
        }
    }

    /// The relay's answer to a heartbeat, taken by the hold: its new life noted, the hold's end
    /// noted (the relay freed it, Polar denied the key, or the answer came after the end), a
    /// failed heartbeat left to the machine (it retries while the lease runs), or `{"verify":
    /// …}` (the hold left as it was until the same answer is read again).
    fn beaten(&mut self, read: Result<HttpResponse, Error>) -> String {
        let Some(held) = self.hold.as_mut() else {
            return self.unexpected();
        };
        let read = read.and_then(|r| read_seat_answer(SeatOp::Heartbeat, &r));
        let now = now_ms();
        // Tried on a copy first: a lease the host has not judged yet changes nothing.
        let mut trial = held.clone();
        let result = trial.heartbeat_answered_with(now, &read, &self.ed25519);
        if self.ed25519.pending() {
            self.sent = Sent::Heartbeat;
            return self.ed25519.take_asked();
        }
        self.ed25519.clear();
        *held = trial;
        let hold = &*held;
        let mut o = JsonOut::new();
        match result {
            Ok(HoldState::Held) => {
                o.raw("{").key("held");
                seat_json(&mut o, hold);
            }
            Ok(state @ (HoldState::Gone | HoldState::Lost)) => {
                self.told = true;
                o.raw("{").key("ended").str(state.as_str());
                match (&read, state) {
                    // The relay's own word (Polar's denial, with its code) over the generic one.
                    (Ok(answer @ (SeatAnswer::Gone | SeatAnswer::Denied(_))), HoldState::Gone) => {
                        o.key("error");
                        error_object(&mut o, &Failure::Refused(answer));
                    }
                    _ => ended_error(&mut o, hold, state, now),
                }
            }
            // Failed (the machine asks again while the lease runs), or ended meanwhile.
            _ => return self.poll(),
        }
        steps::note(&o.raw("}").done())
    }

    /// The app's release: the release to send, or the end `{"released": false}` when there is
    /// nothing to release (never held, or released already). A lost or gone seat is released
    /// too: the relay answers whether it still held it.
    fn release(&mut self) -> String {
        match self.hold.as_ref().and_then(SeatHold::release_ask) {
            Some(ask) => self.sending(Sent::Release, &ask, None),
            None => steps::done("{\"released\":false}"),
        }
    }

    /// The relay's answer to the release: whether it still held the seat, or (no answer) the
    /// error beside `released: false` (the relay frees it at the end of its life).
    fn release_answer(&mut self, read: Result<HttpResponse, Error>) -> String {
        if let Some(hold) = self.hold.as_mut() {
            hold.released();
        }
        match read.and_then(|r| read_seat_answer(SeatOp::Release, &r)) {
            Ok(SeatAnswer::Released(held)) => steps::done(if held {
                "{\"released\":true}"
            } else {
                "{\"released\":false}"
            }),
            Ok(other) => steps::done(&released_error(&Failure::Refused(&other))),
            Err(e) => steps::done(&released_error(&Failure::Error(&e))),
        }
    }
}

/// `{"released": false, "error": ERROR}`.
fn released_error(f: &Failure<'_>) -> String {
    let mut o = JsonOut::new();
    o.raw("{\"released\":false").key("error");
    error_object(&mut o, f);
    o.raw("}").done()
}

/// Milliseconds from JS (a non-finite or negative number: none).
fn ms_of(ms: f64) -> u64 {
    if ms.is_finite() && ms > 0.0 {
        // Truncation intended: whole milliseconds.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let whole = ms as u64;
        whole
    } else {
        0
    }
}

#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
