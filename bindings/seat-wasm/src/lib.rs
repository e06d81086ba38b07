//! The npm package's seat module (`polar-license/seat`, issue #67 item 5; issue #76 finding
//! 2): the core's held seat for `wasm32-unknown-unknown` only (natively this crate is empty).
//!
//! One of a key's floating (or CI) seats through the seller's relay: every request is built by
//! the core (`polar_license::seat::seat_request`), every answer read by it
//! (`read_seat_answer`), and what each answer does to the hold, when the next heartbeat goes,
//! when a failed one is retried and when the hold ends are the core's `SeatHold`'s (a machine
//! with time: `Hold::poll`), as for the Rust `SeatGuard`, the CLI, the C face and Tauri.
//! `seat.js` only sends what this module asks over the host's `fetch`, sleeps as long as
//! `Hold::poll` says and wires the `AbortSignal`. The default entry's wasm carries none of it.
//!
//! A seat is held only while the relay says so, in words checked here: every seat lease is
//! verified (the relay's signature by one of the `relayKeys` the app gave, the organization,
//! the key, this holder's binding, the seat's id and kind, its end) before the seat is
//! `held`, and the hold ends at the lease's end (`lost`, reason `seat_lost`) when no renewal
//! the relay signed arrived. Without relay keys no seat is held (`invalid_input`, field
//! `relay_keys`). The signature alone is checked by the host, as signed mode's leases are
//! (issue #38; the core's `AskedEd25519`): a step that meets a lease it has no answer for answers
//! `{"verify": [[id, public key, message, signature]…]}` (hex) instead; `seat.js` has the
//! package's Ed25519 verify each, hands the answers to `Hold::verified` and runs the same
//! step again with the same answer. Nothing in this wasm verifies a signature itself.
//!
//! Every method answers JSON written with the core's `JsonOut`: `{"send": {method, url,
//! headers: [[name, value]], body}}` (a request for the host to send), `{"wait": ms}` (sleep
//! that long, then poll), `{"ended": STATE, "error"?: ERROR}` (the hold has ended),
//! `{"none": true}` (nothing to send), `{"held": SEAT}`, `{"released": bool}`, `{"verify":
//! …}`, or `{"error": ERROR}`; a heartbeat's answer adds `"state"` (`held`, `gone`, `lost`).
//! SEAT is `{id, ci, expiresAt (unix seconds, the signed lease's), expiresIn, heartbeatMs,
//! endsAtMs, inUse, size}`; ERROR is `{code, detail, userMessage, status?, retryAfter?, field?,
//! inUse?, size?, freesAt?, kind?, endedAt?}` (`code`: a reason code, or `seat_gone` with its
//! `kind`). An answer's headers come as `name\nvalue\n…` (fetch's names and values hold no
//! line break).

#![cfg(target_arch = "wasm32")]

use polar_license::error::Error;
use polar_license::json::{digits, JsonOut};
use polar_license::key::Key;
use polar_license::lease::{AskedEd25519, Ed25519, RelayKeys};
use polar_license::proto::HttpResponse;
use polar_license::seat::{read_seat_answer, seat_request, SeatAnswer, SeatAsk, SeatOp};
use polar_license::seat_hold::{HoldPoll, HoldState, HoldTerms, SeatHold};
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

fn send(base: &str, org: &str, ask: &SeatAsk) -> String {
    let request = match seat_request(base, org, ask) {
        Ok(r) => r,
        Err(e) => return error(&Failure::Error(&e)),
    };
    let mut o = JsonOut::new();
    o.raw("{")
        .key("send")
        .request("POST", &request.url, &request.headers, &request.body);
    o.raw("}").done()
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
        Failure::Refused(SeatAnswer::Full {
            in_use,
            size,
            frees_at,
            retry_after,
        }) => {
            // The sentence as the Tauri face's (crates/tauri/src/seats.rs).
            let mut message = [
                "Every seat of this license is in use (",
                &digits(u64::from(*in_use)),
                " of ",
                &digits(u64::from(*size)),
                ").",
            ]
            .concat();
            if let Some(s) = retry_after {
                message = [&message, " The soonest frees in ", &digits(*s), " seconds."].concat();
            }
            o.key("code").str("seats_full");
            o.key("detail").str("seats_full");
            o.key("userMessage").str(&message);
            o.key("status").uint(409);
            if let Some(s) = retry_after {
                o.key("retryAfter").uint(*s);
            }
            o.key("inUse").uint(u64::from(*in_use));
            o.key("size").uint(u64::from(*size));
            o.key("freesAt").opt_int(*frees_at);
        }
        Failure::Refused(_) => {
            // Not a reason code: its kind said here, `denied` as the Tauri face's.
            o.key("code").str("seat_gone");
            o.key("kind").str("denied");
            o.key("detail").str("seat_gone");
            o.key("userMessage")
                .str("This seat was freed (not heard from within its life): take a seat again.");
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

/// One seat of a key for one machine: its acquisition, then the core's `SeatHold`.
#[wasm_bindgen]
pub struct Hold {
    base: String,
    org: String,
    ask: SeatAsk,
    /// The terms a seat is held under (the relay's keys), or why there are none: no seat.
    terms: Result<HoldTerms, Error>,
    hold: Option<SeatHold>,
    ed25519: AskedEd25519,
}

#[wasm_bindgen]
impl Hold {
    /// A seat of `key` for `machine` (a CI seat when `ci`) from the relay at `relay`, for
    /// the organization `org`, its seat lease verified with the relay's `keys`
    /// (`KID=k4.public.…`, comma separated; none: no seat, `invalid_input` naming
    /// `relay_keys`), held `grace_ms` past a lease's end with no renewal (none: not at all).
    /// Nothing is sent: [`Hold::acquire`] gives the request.
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
        }
    }

    /// The acquisition's request (its input checked first: `invalid_input`, nothing to send).
    pub fn acquire(&self) -> String {
        if let Err(e) = &self.terms {
            return error(&Failure::Error(e));
        }
        send(&self.base, &self.org, &self.ask)
    }

    /// The relay's answer to the acquisition: `{"held": SEAT}` (its lease verified), `{"error":
    /// …}` (`seats_full` with the seats in use and when the soonest frees; Polar's denial; a
    /// lease that does not verify, `protocol_error`, with `"release"`: the request giving back
    /// the seat a real relay may count), or `{"verify": …}` (then `Hold::verified`, and this
    /// again with the same answer).
    pub fn acquired(&mut self, status: u16, headers: &str, body: &str) -> String {
        let answer = match HttpResponse::from_host(status, headers, body)
            .and_then(|r| read_seat_answer(SeatOp::Acquire, &r))
        {
            Ok(a) => a,
            Err(e) => return error(&Failure::Error(&e)),
        };
        let terms = match &self.terms {
            Ok(terms) => terms,
            Err(e) => return error(&Failure::Error(e)),
        };
        let now = now_ms();
        let result = SeatHold::acquire_with(terms, &self.ask, &answer, now, &self.ed25519);
        if self.ed25519.pending() {
            return self.ed25519.take_asked();
        }
        match result {
            Ok(Ok(hold)) => {
                let mut o = JsonOut::new();
                o.raw("{").key("held");
                seat_json(&mut o, &hold);
                self.hold = Some(hold);
                o.raw("}").done()
            }
            Ok(Err(refused)) => error(&Failure::Refused(&refused)),
            Err(e) => {
                let mut o = JsonOut::new();
                o.raw("{").key("error");
                error_object(&mut o, &Failure::Error(&e));
                if let Some(back) = SeatHold::release_unheld(&self.ask, &answer) {
                    if let Ok(request) = seat_request(&self.base, &self.org, &back) {
                        o.key("release").request(
                            "POST",
                            &request.url,
                            &request.headers,
                            &request.body,
                        );
                    }
                }
                o.raw("}").done()
            }
        }
    }

    /// The host's answers to a `{"verify": …}`: `[id, 1 or 0, id, 1 or 0, …]`.
    pub fn verified(&self, answers: Vec<u32>) {
        for pair in answers.chunks_exact(2) {
            self.ed25519.answer(pair[0], pair[1] == 1);
        }
    }

    /// What the core's machine says to do now: `{"send": …}` (the heartbeat: send it and give
    /// what it got to [`Hold::heartbeat_answer`]), `{"wait": ms}` (poll again then), or
    /// `{"ended": "lost" | "gone" | "released" | "none", "error"?: ERROR}` (nothing more to
    /// send but a release; `lost` carries `seat_lost`).
    pub fn poll(&mut self) -> String {
        let Some(hold) = self.hold.as_mut() else {
            return "{\"ended\":\"none\"}".to_string();
        };
        let now = now_ms();
        match hold.poll(now) {
            HoldPoll::Send(ask) => send(&self.base, &self.org, &ask),
            HoldPoll::Wait(wait) => {
                let mut o = JsonOut::new();
                o.raw("{")
                    .key("wait")
                    .uint(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX))
                    .raw("}");
                o.done()
            }
            HoldPoll::Ended(state) => {
                let mut o = JsonOut::new();
                o.raw("{").key("ended").str(state.as_str());
                ended_error(&mut o, hold, state, now);
                o.raw("}").done()
            }
        }
    }

    /// How long until `Hold::poll` wants to run, in ms, changing nothing (`-1` once the
    /// hold has ended, or was never held).
    #[wasm_bindgen(js_name = nextWait)]
    pub fn next_wait(&self) -> f64 {
        match self.hold.as_ref().and_then(|h| h.next_wait(now_ms())) {
            // Precision: waits are far below 2^53 ms.
            #[allow(clippy::cast_precision_loss)]
            Some(wait) => u64::try_from(wait.as_millis()).unwrap_or(u64::MAX) as f64,
            None => -1.0,
        }
    }

    /// The relay's answer to the heartbeat `Hold::poll` gave (status 0: none came), taken
    /// by the hold: `{"state": "held", "held": SEAT}` (its new life, the lease verified),
    /// `{"state": "gone", "error": …}` (the relay freed it, or Polar denied the key),
    /// `{"state": "lost", "error": …}` (the answer came after the hold's end), `{"state":
    /// "held", "error": …}` (the heartbeat failed: the machine retries it while the lease
    /// runs), or `{"verify": …}` (then `Hold::verified`, and this again with the same
    /// answer: the hold is left as it was until then).
    #[wasm_bindgen(js_name = heartbeatAnswer)]
    pub fn heartbeat_answer(&mut self, status: u16, headers: &str, body: &str) -> String {
        let Some(held) = self.hold.as_mut() else {
            return "{\"none\":true}".to_string();
        };
        let read = HttpResponse::from_host(status, headers, body)
            .and_then(|r| read_seat_answer(SeatOp::Heartbeat, &r));
        let now = now_ms();
        // Tried on a copy first: a lease the host has not judged yet changes nothing.
        let mut trial = held.clone();
        let result = trial.heartbeat_answered_with(now, &read, &self.ed25519);
        if self.ed25519.pending() {
            return self.ed25519.take_asked();
        }
        self.ed25519.clear();
        *held = trial;
        let hold = &*held;
        let mut o = JsonOut::new();
        match result {
            Ok(HoldState::Held) => {
                o.raw("{").key("state").str("held").key("held");
                seat_json(&mut o, hold);
            }
            Ok(state) => {
                o.raw("{").key("state").str(state.as_str());
                match (&read, state) {
                    // The relay's own word (Polar's denial, with its code) over the generic one.
                    (Ok(answer @ (SeatAnswer::Gone | SeatAnswer::Denied(_))), HoldState::Gone) => {
                        o.key("error");
                        error_object(&mut o, &Failure::Refused(answer));
                    }
                    _ => ended_error(&mut o, hold, state, now),
                }
            }
            Err(e) => {
                o.raw("{").key("state").str(hold.state_at(now).as_str());
                o.key("error");
                error_object(&mut o, &Failure::Error(&e));
            }
        }
        o.raw("}").done()
    }

    /// The release to send, or `{"none": true}` when already released (or never held). A
    /// lost or gone seat is released too: the relay answers whether it still held it.
    pub fn release(&self) -> String {
        match self.hold.as_ref().and_then(SeatHold::release_ask) {
            Some(ask) => send(&self.base, &self.org, &ask),
            None => "{\"none\":true}".to_string(),
        }
    }

    /// The relay's answer to the release: `{"released": bool}` (whether the relay still held
    /// it), or `{"error": …}` (no answer: the relay frees it at the end of its life; seat.js
    /// sends a release once).
    #[wasm_bindgen(js_name = releaseAnswer)]
    pub fn release_answer(&mut self, status: u16, headers: &str, body: &str) -> String {
        let read = HttpResponse::from_host(status, headers, body)
            .and_then(|r| read_seat_answer(SeatOp::Release, &r));
        if let Some(hold) = self.hold.as_mut() {
            hold.released();
        }
        match read {
            Ok(SeatAnswer::Released(held)) => {
                ["{\"released\":", if held { "true" } else { "false" }, "}"].concat()
            }
            Ok(other) => error(&Failure::Refused(&other)),
            Err(e) => error(&Failure::Error(&e)),
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
