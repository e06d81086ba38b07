//! Floating and CI seats (issue #67): acquire one of a key's seats through the seller's relay
//! (the client's base URL), heartbeat it within its life, release it. The steps are the core's
//! (`polar_license::seat_hold::SeatHold`: whether an answer holds a seat (its signed lease
//! verified with the client's relay keys: none, no seat), which request comes next and when,
//! what an answer does to the hold, when it is lost); this file only hands them to C. The
//! heartbeat's thread is the app's: call `polar_license_seat_heartbeat` when
//! `polar_license_seat_next_ms` says (or every `polar_license_seat_heartbeat_interval`
//! seconds) from any thread; a seat whose lease ended with no renewal is lost
//! (`POLAR_LICENSE_SEAT_ERROR_SEAT_LOST`, reason `SEAT_LOST`).

use super::client::polar_license_client;
use super::enums::{polar_license_reason, polar_license_status};
use super::out;
use super::panic::read;
use super::strings::to_cstring;
use polar_license::seat::{SeatAnswer, SeatOp};
use polar_license::seat_hold::{HoldPoll, HoldState, SeatHold};
use polar_license::{system_clock_ms, Key};
use std::ffi::{c_char, CString};
use std::sync::{Mutex, MutexGuard};

/// What a seat call came to, as `polar_license_seat_result_error` tells it.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum polar_license_seat_error {
    /// No failure: the seat is held (acquire, heartbeat) or was released.
    None = 0,
    /// `invalid_input`: a key, machine or organization refused before anything was sent
    /// (`polar_license_seat_result_message` names the field), or the seat was already
    /// released.
    InvalidInput = 1,
    /// `seats_full`: every seat of the key is in use; `polar_license_seat_result_in_use`,
    /// `_size`, `_frees_at` and `_retry_after` say how many and when the soonest frees.
    SeatsFull = 2,
    /// `seat_gone`: the relay no longer holds this seat (not heard from within its life, or
    /// Polar denied the key): acquire again.
    SeatGone = 3,
    /// `denied`: Polar denied the key (the reason says why: `not_found`, `inactive`,
    /// `expired`, …); no seat.
    Denied = 4,
    /// `rate_limited`: too many acquisitions (the relay's churn limit) or requests;
    /// `polar_license_seat_result_retry_after` says how long to wait.
    RateLimited = 5,
    /// `offline` (or `server_error`, `protocol_error`: the reason says which): no answer of
    /// the relay's, or one that holds no seat (a seat lease missing or not the relay's:
    /// `protocol_error`); the seat, if held, is kept until its lease ends (try the heartbeat
    /// again within its life).
    Offline = 6,
    /// `seat_lost`: the seat's signed lease ended with no renewal from the relay (out of
    /// reach): the seat is no longer held (the relay may have given it to another machine);
    /// stop what it licensed, release it, acquire again. Later heartbeats send nothing and
    /// answer `SEAT_LOST`.
    SeatLost = 7,
}

face_errors!(polar_license_seat_error);

/// A seat held through the relay (opaque): made by `polar_license_client_seat_acquire`,
/// freed by `polar_license_seat_free`. Its state is locked inside: any thread may heartbeat,
/// release or read it, at the same time as others.
pub struct polar_license_seat {
    hold: Mutex<SeatHold>,
    /// The seat's id, fixed for its life.
    id: CString,
}

// The thread rules in bindings/c/README.md rest on this (checked at compile time).
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<polar_license_seat>();
};

impl polar_license_seat {
    fn hold(&self) -> MutexGuard<'_, SeatHold> {
        self.hold
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The answer of a seat call (opaque), freed by `polar_license_seat_result_free`.
pub struct polar_license_seat_result {
    error: polar_license_seat_error,
    reason: polar_license_reason,
    code: CString,
    message: CString,
    /// The core's one sentence and next step for a failure (`SeatAnswer::message`,
    /// `Error::message`), empty on success.
    user_message: CString,
    next_step: CString,
    in_use: Option<u32>,
    size: Option<u32>,
    frees_at: Option<i64>,
    retry_after: Option<u64>,
    released: bool,
}

impl polar_license_seat_result {
    fn done() -> Self {
        polar_license_seat_result {
            error: polar_license_seat_error::None,
            reason: polar_license_reason::None,
            code: CString::default(),
            message: CString::default(),
            user_message: CString::default(),
            next_step: CString::default(),
            in_use: None,
            size: None,
            frees_at: None,
            retry_after: None,
            released: false,
        }
    }

    fn failed(error: polar_license_seat_error, code: &str, message: &str) -> Self {
        polar_license_seat_result {
            error,
            code: to_cstring(code),
            message: to_cstring(message),
            ..Self::done()
        }
    }

    /// The core's words for this failure, passed on as they are.
    fn said(mut self, said: Option<polar_license::Message>) -> Self {
        if let Some(said) = said {
            self.user_message = to_cstring(&said.text());
            self.next_step = to_cstring(said.next_step());
        }
        self
    }

    fn of_error(e: &polar_license::Error) -> Self {
        use polar_license::Reason;
        let reason = e.reason();
        let kind = match reason {
            Reason::InvalidInput => polar_license_seat_error::InvalidInput,
            Reason::RateLimited => polar_license_seat_error::RateLimited,
            Reason::SeatLost => polar_license_seat_error::SeatLost,
            _ => polar_license_seat_error::Offline,
        };
        let mut r = Self::failed(kind, reason.code(), &e.to_string()).said(Some(e.message()));
        r.reason = reason.into();
        if let polar_license::Error::RateLimited { retry_after } = e {
            r.retry_after = *retry_after;
        }
        r
    }

    /// A seat held, as the hold has it now.
    fn held(hold: &SeatHold) -> Self {
        Self::of_answer(&SeatAnswer::Held(hold.seat().clone()))
    }

    /// A hold lost: the core's `seat_lost`, its words.
    fn lost(hold: &SeatHold) -> Self {
        match hold.lost(system_clock_ms()) {
            Some(e) => Self::of_error(&e),
            None => Self::of_answer(&SeatAnswer::Gone),
        }
    }

    /// The answer to an acquisition or a heartbeat that is not `Held`.
    pub(crate) fn of_answer(answer: &SeatAnswer) -> Self {
        match answer {
            SeatAnswer::Held(seat) => {
                let mut r = Self::done();
                r.in_use = Some(seat.in_use);
                r.size = Some(seat.size);
                r
            }
            SeatAnswer::Released(held) => {
                let mut r = Self::done();
                r.released = *held;
                r
            }
            SeatAnswer::Full(full) => {
                // The core's words, with the count in use and the wait.
                let said = answer.user_message().unwrap_or_default();
                let code = answer.code().unwrap_or_default();
                let mut r = Self::failed(polar_license_seat_error::SeatsFull, code, &said)
                    .said(answer.message());
                r.reason = polar_license_reason::SeatsFull;
                r.in_use = Some(full.in_use);
                r.size = Some(full.size);
                r.frees_at = full.frees_at;
                r.retry_after = full.retry_after;
                r
            }
            SeatAnswer::Gone => Self::failed(
                polar_license_seat_error::SeatGone,
                polar_license::seat::SEAT_GONE_CODE,
                &answer.user_message().unwrap_or_default(),
            )
            .said(answer.message()),
            SeatAnswer::Denied(d) => {
                let mut r =
                    Self::failed(polar_license_seat_error::Denied, d.reason.code(), &d.detail)
                        .said(answer.message());
                r.reason = d.reason.into();
                r
            }
        }
    }
}

/// Acquires one of `key`'s seats for this machine from the seller's relay at the client's base
/// URL (a CI seat when `ci`; a floating one otherwise). `machine` is the binding signed into
/// the seat's lease (1 to 256 bytes of printable text); NULL takes the client's machine
/// fingerprint (`polar_license_client_machine_fingerprint`; with machine binding off there is
/// none, and the call's result is `INVALID_INPUT`). No Polar activation is made.
///
/// A seat is held only with a seat lease the relay signed, verified with the client's relay
/// keys (`polar_license_config_add_relay_key`): a client without them holds no seat (the
/// result `INVALID_INPUT` naming `relay_keys`, nothing sent); an answer whose lease is
/// missing or does not verify holds none (`OFFLINE` with reason `PROTOCOL_ERROR`; the seat it
/// named is given back). It is held until its lease's end with no renewal, and the seat grace
/// after it (`polar_license_config_set_seat_grace_ms`, none by default).
///
/// Returns `POLAR_LICENSE_STATUS_OK` and writes a seat result to `*out_result` whatever the
/// relay answered, and to `*out_seat` the seat when the result's error is
/// `POLAR_LICENSE_SEAT_ERROR_NONE` (NULL otherwise): heartbeat it every
/// `polar_license_seat_heartbeat_interval` seconds, release it when done, then free it. Any
/// other status means the call itself was refused (a NULL or a string not UTF-8: see
/// `polar_license_client_last_error`) and nothing was written.
#[no_mangle]
pub extern "C" fn polar_license_client_seat_acquire(
    client: *const polar_license_client,
    key: *const c_char,
    machine: *const c_char,
    ci: bool,
    out_seat: *mut *mut polar_license_seat,
    out_result: *mut *mut polar_license_seat_result,
) -> polar_license_status {
    ffi_boundary! {
        let client = try_ref!(client);
        client.begin();
        let key = arg_str!(client, key, "key");
        let machine = if machine.is_null() {
            client.licensing().machine_fingerprint().unwrap_or_default()
        } else {
            arg_str!(client, machine, "machine")
        };
        if out_seat.is_null() {
            return client.fail(polar_license_status::NullArgument, "out_seat is NULL");
        }
        if out_result.is_null() {
            return client.fail(polar_license_status::NullArgument, "out_result is NULL");
        }
        let ask = SeatHold::acquire_ask(Key::new(key), machine.to_string(), ci);
        let answered = client.hold_terms().and_then(|terms| {
            let relay = client.licensing().client();
            let answer = relay.seat(&ask)?;
            SeatHold::acquire(&terms, &ask, &answer, system_clock_ms()).inspect_err(|_| {
                if let Some(back) = SeatHold::release_unheld(&ask, &answer) {
                    let _ = relay.seat(&back);
                }
            })
        });
        let (seat, result) = match answered {
            Ok(Ok(hold)) => {
                let result = polar_license_seat_result::of_answer(&SeatAnswer::Held(hold.seat().clone()));
                let id = to_cstring(&hold.seat().id);
                let seat = Box::into_raw(Box::new(polar_license_seat { hold: Mutex::new(hold), id }));
                (seat, result)
            }
            Ok(Err(refused)) => (std::ptr::null_mut(), polar_license_seat_result::of_answer(&refused)),
            Err(e) => (std::ptr::null_mut(), polar_license_seat_result::of_error(&e)),
        };
        out::write(out_seat, seat);
        out::give(out_result, result);
        polar_license_status::Ok
    }
}

/// Sends `op` for the seat when the hold has a request for it, and folds the answer in.
fn step(
    client: &polar_license_client,
    seat: &polar_license_seat,
    op: SeatOp,
) -> polar_license_seat_result {
    // The request is taken under the lock, sent without it (a heartbeat on one thread does
    // not hold up a read on another), and its answer folded in under it again.
    let ask = {
        let mut hold = seat.hold();
        match op {
            SeatOp::Release => hold.release_ask().ok_or(HoldState::Released),
            _ => match hold.heartbeat_now(system_clock_ms()) {
                HoldPoll::Send(ask) => Ok(ask),
                // Not before a 429's wait, or one is under way on another thread: held.
                HoldPoll::Wait(_) => return polar_license_seat_result::held(&hold),
                HoldPoll::Ended(state) => Err(state),
            },
        }
    };
    let ask = match ask {
        Ok(ask) => ask,
        Err(HoldState::Released) => {
            return polar_license_seat_result::failed(
                polar_license_seat_error::InvalidInput,
                "invalid_input",
                "invalid seat: it was released",
            )
        }
        Err(HoldState::Lost) => return polar_license_seat_result::lost(&seat.hold()),
        Err(_) => return polar_license_seat_result::of_answer(&SeatAnswer::Gone),
    };
    let answer = client.licensing().client().seat(&ask);
    let mut hold = seat.hold();
    if op == SeatOp::Release {
        // Released whatever came of it: a seat the relay was not told of frees by itself
        // within its life.
        hold.released();
        return match answer {
            Ok(answer) => polar_license_seat_result::of_answer(&answer),
            Err(e) => polar_license_seat_result::of_error(&e),
        };
    }
    match hold.heartbeat_answered(system_clock_ms(), &answer) {
        Ok(HoldState::Held) => polar_license_seat_result::held(&hold),
        Ok(HoldState::Lost) => polar_license_seat_result::lost(&hold),
        Ok(_) => match answer {
            Ok(answer) => polar_license_seat_result::of_answer(&answer),
            Err(e) => polar_license_seat_result::of_error(&e),
        },
        Err(e) => polar_license_seat_result::of_error(&e),
    }
}

macro_rules! seat_call {
    ($client:ident, $seat:ident, $out:ident, $op:expr) => {
        ffi_boundary! {
            let client = try_ref!($client);
            client.begin();
            if $seat.is_null() {
                return client.fail(polar_license_status::NullArgument, "seat is NULL");
            }
            let seat = try_ref!($seat);
            if $out.is_null() {
                return client.fail(polar_license_status::NullArgument, "out_result is NULL");
            }
            out::give($out, step(client, seat, $op));
            polar_license_status::Ok
        }
    };
}

/// Extends the seat's life (call it when `polar_license_seat_next_ms` says, or every
/// `polar_license_seat_heartbeat_interval` seconds, from any thread). The result's error is
/// `NONE` (held; `polar_license_seat_expires_at` moved on, or nothing sent while another
/// thread's heartbeat is under way or a `429`'s wait runs), `SEAT_GONE` (the relay no longer
/// holds it: acquire again; later heartbeats send nothing and answer `SEAT_GONE`), `DENIED`
/// (Polar denied the key: the seat is gone too), `OFFLINE` (no answer, or one whose lease
/// does not verify: the seat is kept until its lease ends, try again sooner),
/// `RATE_LIMITED`, `SEAT_LOST` (its lease ended with no renewal: no longer held; later
/// heartbeats send nothing and answer `SEAT_LOST`), or `INVALID_INPUT` (released). Status
/// and out-pointer as for `polar_license_client_seat_acquire`.
#[no_mangle]
pub extern "C" fn polar_license_seat_heartbeat(
    client: *const polar_license_client,
    seat: *const polar_license_seat,
    out_result: *mut *mut polar_license_seat_result,
) -> polar_license_status {
    seat_call!(client, seat, out_result, SeatOp::Heartbeat)
}

/// Gives the seat back to the key's pool (another machine may take it at once). Whatever the
/// answer, the seat is released here: a relay that cannot be reached lets it free by itself
/// within its life (`OFFLINE`). `polar_license_seat_result_released` says whether the relay
/// still held it. A second release answers `INVALID_INPUT` and sends nothing. Status and
/// out-pointer as for `polar_license_client_seat_acquire`.
#[no_mangle]
pub extern "C" fn polar_license_seat_release(
    client: *const polar_license_client,
    seat: *const polar_license_seat,
    out_result: *mut *mut polar_license_seat_result,
) -> polar_license_status {
    seat_call!(client, seat, out_result, SeatOp::Release)
}

/// Frees a seat handle. It sends nothing: release the seat first (a seat freed while held
/// frees at the relay by itself within its life). NULL is a no-op. No other thread may be
/// using it.
#[no_mangle]
pub extern "C" fn polar_license_seat_free(seat: *mut polar_license_seat) {
    ffi_boundary! { out::free(seat) }
}

fn read_seat<T: super::panic::Boundary>(
    seat: *const polar_license_seat,
    f: impl FnOnce(&SeatHold) -> T,
) -> T {
    let seat = try_ref!(seat);
    let hold = seat.hold();
    f(&hold)
}

/// The seat's id (what the relay's heartbeat and release name). Owned by the seat, valid until
/// it is freed. `""` for NULL. Never NULL.
#[no_mangle]
pub extern "C" fn polar_license_seat_id(seat: *const polar_license_seat) -> *const c_char {
    ffi_boundary! {
        let seat = try_ref!(seat);
        seat.id.as_ptr()
    }
}

/// When the seat frees unless heard from, unix seconds (moved on by each heartbeat); `-1` for
/// NULL.
#[no_mangle]
pub extern "C" fn polar_license_seat_expires_at(seat: *const polar_license_seat) -> i64 {
    ffi_boundary! { read_seat(seat, |h| h.seat().expires_at) }
}

/// How often to heartbeat, in seconds (a third of the seat's life, at least 1); `0` for NULL.
#[no_mangle]
pub extern "C" fn polar_license_seat_heartbeat_interval(seat: *const polar_license_seat) -> u32 {
    ffi_boundary! {
        read_seat(seat, |h| u32::try_from(h.heartbeat_every().as_secs()).unwrap_or(u32::MAX))
    }
}

/// Whether the seat is held now: acquired, neither released nor gone (a heartbeat answered
/// `SEAT_GONE` or `DENIED`), and its signed lease (or the renewal of it) not ended: `false`
/// from the lease's end on when no renewal came, even before a heartbeat call says
/// `SEAT_LOST`. `false` for NULL.
#[no_mangle]
pub extern "C" fn polar_license_seat_held(seat: *const polar_license_seat) -> bool {
    ffi_boundary! { read_seat(seat, |h| h.state_at(system_clock_ms()) == HoldState::Held) }
}

/// Whether the seat is lost now: its signed lease ended with no renewal from the relay (out
/// of reach), so the relay may have given it to another machine (reason `SEAT_LOST`). `false`
/// for NULL.
#[no_mangle]
pub extern "C" fn polar_license_seat_lost(seat: *const polar_license_seat) -> bool {
    ffi_boundary! { read_seat(seat, |h| h.state_at(system_clock_ms()) == HoldState::Lost) }
}

/// Milliseconds from now until the seat wants its next `polar_license_seat_heartbeat` call:
/// `0` when a heartbeat is due (a third of its life after the last renewal, sooner after a
/// failed one: 1 s, 2 s, 4 s, … while its lease runs); `-1` when the seat is no longer held
/// (released, gone or lost) or for NULL.
#[no_mangle]
pub extern "C" fn polar_license_seat_next_ms(seat: *const polar_license_seat) -> i64 {
    ffi_boundary! {
        read_seat(seat, |h| {
            h.next_wait(system_clock_ms())
                .map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        })
    }
}

/// Whether it is a CI seat. `false` for NULL.
#[no_mangle]
pub extern "C" fn polar_license_seat_ci(seat: *const polar_license_seat) -> bool {
    ffi_boundary! { read_seat(seat, |h| h.seat().ci) }
}

/// Frees a seat result. NULL is a no-op.
#[no_mangle]
pub extern "C" fn polar_license_seat_result_free(result: *mut polar_license_seat_result) {
    ffi_boundary! { out::free(result) }
}

/// What the call came to (`POLAR_LICENSE_SEAT_ERROR_NONE`: done; `_INVALID_INPUT` for NULL).
#[no_mangle]
pub extern "C" fn polar_license_seat_result_error(
    result: *const polar_license_seat_result,
) -> polar_license_seat_error {
    ffi_boundary! { read(result, |r| r.error) }
}

/// The reason code (docs/interfaces.md §1): `SEATS_FULL`, Polar's denial (`NOT_FOUND`,
/// `INACTIVE`, …), `RATE_LIMITED`, `INVALID_INPUT`, `OFFLINE`, `SERVER_ERROR`,
/// `PROTOCOL_ERROR`; `NONE` on success, for `SEAT_GONE` or for NULL.
#[no_mangle]
pub extern "C" fn polar_license_seat_result_reason(
    result: *const polar_license_seat_result,
) -> polar_license_reason {
    ffi_boundary! { read(result, |r| r.reason) }
}

/// The failure's name for scripts (`"seats_full"`, `"seat_gone"`, `"invalid_input"`,
/// `"offline"`, a denial's reason code); `""` on success. Owned by the result. Never NULL.
#[no_mangle]
pub extern "C" fn polar_license_seat_result_code(
    result: *const polar_license_seat_result,
) -> *const c_char {
    ffi_boundary! { read(result, |r| r.code.as_ptr()) }
}

/// The failure in one sentence (`""` on success). Owned by the result. Never NULL. It holds
/// no whole key.
#[no_mangle]
pub extern "C" fn polar_license_seat_result_message(
    result: *const polar_license_seat_result,
) -> *const c_char {
    ffi_boundary! { read(result, |r| r.message.as_ptr()) }
}

/// For a failure: the core's one sentence and next step to show the person using the app (for
/// `SEATS_FULL` with the seats in use and the wait), the same words as every face's; `""` on success. Owned by the result. Never NULL.
#[no_mangle]
pub extern "C" fn polar_license_seat_result_user_message(
    result: *const polar_license_seat_result,
) -> *const c_char {
    ffi_boundary! { read(result, |r| r.user_message.as_ptr()) }
}

/// For a failure: the next step alone, the second half of
/// `polar_license_seat_result_user_message`; `""` on success. Owned by the result. Never
/// NULL.
#[no_mangle]
pub extern "C" fn polar_license_seat_result_next_step(
    result: *const polar_license_seat_result,
) -> *const c_char {
    ffi_boundary! { read(result, |r| r.next_step.as_ptr()) }
}

/// Seats of the key in use, as the relay said (a seat held: this one with them; `SEATS_FULL`:
/// all of them): writes it to `*out_in_use` and returns `true`; `false` (nothing written)
/// otherwise.
#[no_mangle]
pub extern "C" fn polar_license_seat_result_in_use(
    result: *const polar_license_seat_result,
    out_in_use: *mut u32,
) -> bool {
    ffi_boundary! {
        check_out!(out_in_use);
        read(result, |r| out::write_some(out_in_use, r.in_use))
    }
}

/// The key's seats (for a CI seat that is full, the CI cap): as `_in_use`.
#[no_mangle]
pub extern "C" fn polar_license_seat_result_size(
    result: *const polar_license_seat_result,
    out_size: *mut u32,
) -> bool {
    ffi_boundary! {
        check_out!(out_size);
        read(result, |r| out::write_some(out_size, r.size))
    }
}

/// For `SEATS_FULL`, when the soonest seat frees, unix seconds: writes it to `*out_frees_at`
/// and returns `true`; `false` (nothing written) when not known.
#[no_mangle]
pub extern "C" fn polar_license_seat_result_frees_at(
    result: *const polar_license_seat_result,
    out_frees_at: *mut i64,
) -> bool {
    ffi_boundary! {
        check_out!(out_frees_at);
        read(result, |r| out::write_some(out_frees_at, r.frees_at))
    }
}

/// For `SEATS_FULL` and `RATE_LIMITED`, the seconds to wait as the relay said them: writes
/// them to `*out_seconds` and returns `true`; `false` (nothing written) when not known.
#[no_mangle]
pub extern "C" fn polar_license_seat_result_retry_after(
    result: *const polar_license_seat_result,
    out_seconds: *mut u64,
) -> bool {
    ffi_boundary! {
        check_out!(out_seconds);
        read(result, |r| out::write_some(out_seconds, r.retry_after))
    }
}

/// For a release, whether the relay still held the seat (`false`: it had freed by itself).
/// `false` otherwise, or for NULL.
#[no_mangle]
pub extern "C" fn polar_license_seat_result_released(
    result: *const polar_license_seat_result,
) -> bool {
    ffi_boundary! { read(result, |r| r.released) }
}
