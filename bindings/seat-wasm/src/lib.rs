//! The npm package's seat module (`polar-license/seat`, issue #67 item 5): the core's held
//! seat for `wasm32-unknown-unknown` only (natively this crate is empty).
//!
//! One of a key's floating (or CI) seats through the seller's relay: every request is built by
//! the core (`polar_license::seat::seat_request`), every answer read by it
//! (`read_seat_answer`), and what each answer does to the hold, what comes next and how often
//! to beat are the core's `SeatHold`'s, as for the Rust `SeatGuard`, the C face and Tauri.
//! `seat.js` only sends what this module asks over the host's `fetch`, schedules the heartbeat
//! at the interval given here and wires the `AbortSignal`. The default entry's wasm carries
//! none of it.
//!
//! Every method answers JSON written with the core's `JsonOut`: `{"send": {method, url,
//! headers: [[name, value]], body}}` (a request for the host to send), `{"none": true}`
//! (nothing to send), `{"held": SEAT}`, `{"released": bool}`, or `{"error": ERROR}`; a
//! heartbeat's answer adds `"state"` (`held`, `gone`). SEAT is `{id, ci, expiresAt (unix
//! seconds), expiresIn, heartbeatMs, inUse, size}`; ERROR is `{code, detail, userMessage,
//! status?, retryAfter?, field?, inUse?, size?, freesAt?, kind?}` (`code`: a reason code,
//! or `seat_gone` with its `kind`). An answer's headers come as `name\nvalue\n…` (fetch's
//! names and values hold no line break).

#![cfg(target_arch = "wasm32")]

use polar_license::error::Error;
use polar_license::json::{digits, JsonOut};
use polar_license::key::Key;
use polar_license::lease::RelayKeys;
use polar_license::proto::HttpResponse;
use polar_license::seat::{read_seat_answer, seat_request, Seat, SeatAnswer, SeatAsk, SeatOp};
use polar_license::seat_hold::{HoldPoll, HoldState, HoldTerms, SeatHold};
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// The host's clock, unix ms (the hold's `now`).
    #[wasm_bindgen(js_namespace = Date, js_name = now)]
    fn date_now() -> f64;
}

/// Now, unix ms, as the hold takes it.
fn now_ms() -> u64 {
    let now = date_now();
    if now.is_finite() && now > 0.0 {
        // Truncation intended: whole milliseconds.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let ms = now as u64;
        ms
    } else {
        0
    }
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

fn seat_json(o: &mut JsonOut, seat: &Seat, every_ms: u128) {
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
        .uint(u64::try_from(every_ms).unwrap_or(u64::MAX))
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

/// One seat of a key for one machine: its acquisition, then the core's `SeatHold`.
#[wasm_bindgen]
pub struct Hold {
    base: String,
    org: String,
    ask: SeatAsk,
    /// The terms a seat is held under (the relay's keys), or why there are none: no seat.
    terms: Result<HoldTerms, Error>,
    hold: Option<SeatHold>,
}

#[wasm_bindgen]
impl Hold {
    /// A seat of `key` for `machine` (a CI seat when `ci`) from the relay at `relay`, for
    /// the organization `org`, its seat lease verified with the relay's `keys`
    /// (`KID=k4.public.…`, comma separated; none: no seat, `invalid_input` naming
    /// `relay_keys`). Nothing is sent: [`Hold::acquire`] gives the request.
    #[wasm_bindgen(constructor)]
    pub fn new(
        org: &str,
        relay: &str,
        key: &str,
        machine: &str,
        ci: bool,
        keys: Option<String>,
    ) -> Hold {
        let terms = RelayKeys::parse(keys.as_deref().unwrap_or_default())
            .and_then(|keys| HoldTerms::new(keys, org));
        Hold {
            base: relay.to_string(),
            org: org.to_string(),
            ask: SeatHold::acquire_ask(Key::new(key), machine.to_string(), ci),
            terms,
            hold: None,
        }
    }

    /// The acquisition's request (its input checked first: `invalid_input`, nothing to send).
    pub fn acquire(&self) -> String {
        if let Err(e) = &self.terms {
            return error(&Failure::Error(e));
        }
        send(&self.base, &self.org, &self.ask)
    }

    /// The relay's answer to the acquisition: `{"held": SEAT}` or `{"error": …}`
    /// (`seats_full` with the seats in use and when the soonest frees; Polar's denial).
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
        match SeatHold::acquire(terms, &self.ask, &answer, now_ms()) {
            Ok(Ok(hold)) => {
                let mut o = JsonOut::new();
                o.raw("{").key("held");
                seat_json(&mut o, hold.seat(), hold.heartbeat_every().as_millis());
                self.hold = Some(hold);
                o.raw("}").done()
            }
            Ok(Err(refused)) => error(&Failure::Refused(&refused)),
            Err(e) => error(&Failure::Error(&e)),
        }
    }

    /// The heartbeat to send now, or `{"none": true}` when the seat is not held (gone,
    /// released, or never acquired).
    pub fn heartbeat(&mut self) -> String {
        match self.hold.as_mut().map(|h| h.heartbeat_now(now_ms())) {
            Some(HoldPoll::Send(ask)) => send(&self.base, &self.org, &ask),
            _ => "{\"none\":true}".to_string(),
        }
    }

    /// The relay's answer to a heartbeat, absorbed by the hold: `{"state": "held", "held":
    /// SEAT}` (its new life), `{"state": "gone", "error": …}` (the relay freed it, or Polar
    /// denied the key: acquire again), or `{"state": "held", "error": …}` (no answer, or one
    /// that changes nothing: the seat is kept, beat again at the next interval).
    #[wasm_bindgen(js_name = heartbeatAnswer)]
    pub fn heartbeat_answer(&mut self, status: u16, headers: &str, body: &str) -> String {
        let Some(hold) = self.hold.as_mut() else {
            return "{\"none\":true}".to_string();
        };
        let read = HttpResponse::from_host(status, headers, body)
            .and_then(|r| read_seat_answer(SeatOp::Heartbeat, &r));
        let mut o = JsonOut::new();
        let state = match hold.heartbeat_answered(now_ms(), &read) {
            Ok(state) => state,
            Err(_) => hold.state_at(now_ms()),
        };
        o.raw("{").key("state").str(state.as_str());
        match (&read, state) {
            (Ok(SeatAnswer::Held(s)), HoldState::Held) if s.id == hold.seat().id => {
                o.key("held");
                seat_json(&mut o, hold.seat(), hold.heartbeat_every().as_millis());
                o.raw("}").done()
            }
            (Ok(answer), _) => {
                o.key("error");
                error_object(&mut o, &Failure::Refused(answer));
                o.raw("}").done()
            }
            (Err(e), _) => {
                o.key("error");
                error_object(&mut o, &Failure::Error(e));
                o.raw("}").done()
            }
        }
    }

    /// The release to send, or `{"none": true}` when already released (or never held).
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

    /// Where the hold stands: `held`, `gone`, `released`, or `none` (never acquired).
    pub fn state(&self) -> String {
        self.hold
            .as_ref()
            .map_or("none", |h| h.state_at(now_ms()).as_str())
            .to_string()
    }
}

#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
