//! Floating and CI seats from Python (issue #76): a seat held through the seller's relay (the
//! licensing's base URL) by the core's hold ([`SeatHold`]): whether an answer holds a seat (its
//! signed lease verified with the licensing's relay keys: none, no seat), what to send next
//! and when, what each answer does to the hold, when it is lost. Its heartbeats run on a
//! thread of their own (`background`: the native shell's [`Beating`], the Rust face's
//! `SeatGuard` thread, driving the core's `SeatBeat`) or when the app calls
//! [`NativeSeat::poll`] (the C face's `polar_license_seat_next_ms` and `_heartbeat`); no rule,
//! no schedule and no loop live here, and no sentence is written in Python: every error is
//! the core's.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use polar_license::seat::{Seat, SeatAnswer, SeatAsk};
use polar_license::seat_hold::{HoldPoll, HoldState, SeatHold};
use polar_license::{system_clock_ms, Beating, BlockingClient, Denial, Error, Licensing, Reason};
use pyo3::prelude::*;
use serde_json::{json, Value};

use super::{denial_json, err, error_json, key_or_remembered, ok, seconds, to_py};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The seat as Python reads it: its id, kind, this machine's binding, the signed lease's end
/// (unix seconds), the heartbeat interval the hold keeps (seconds), the relay's count.
fn seat_json(hold: &SeatHold) -> Value {
    let seat: &Seat = hold.seat();
    json!({
        "id": seat.id,
        "ci": seat.ci,
        "machine": hold.machine(),
        "expires_at": seat.expires_at,
        "heartbeat_every": hold.heartbeat_every().as_secs_f64(),
        "in_use": seat.in_use,
        "size": seat.size,
    })
}

/// An acquisition the relay refused, as the Python layer raises it: `seats_full` (a denial of
/// the relay's, with the count in use, the key's seats and when the soonest frees), or Polar's
/// denial of the key.
fn refused_json(answer: &SeatAnswer) -> Value {
    match answer {
        SeatAnswer::Full(seats) => {
            // The core's words (its sentence with the relay's count, its next step with the
            // wait): none of this face's.
            let said = answer
                .message()
                .unwrap_or_else(|| Reason::SeatsFull.message());
            let full = Denial {
                reason: Reason::SeatsFull,
                detail: said.text(),
                status: 409,
                remaining_usages: None,
                previously_valid: false,
                activation_gone: false,
                stopped: None,
            };
            let mut e = denial_json(&full);
            e["user_message"] = json!(said.text());
            e["next_step"] = json!(said.next_step());
            e["retry_after"] = json!(seats.retry_after);
            e["seats"] =
                json!({ "in_use": seats.in_use, "size": seats.size, "frees_at": seats.frees_at });
            json!({ "error": e })
        }
        SeatAnswer::Denied(d) => json!({ "error": denial_json(d) }),
        other => err(&Error::Protocol {
            status: None,
            detail: format!("the relay answered an acquisition with {other:?}"),
        }),
    }
}

/// Acquires one of `key`'s seats for `machine` (a CI seat when `ci`) from the relay at
/// `licensing`'s base URL under its hold terms and `grace`: the hold, or the answer to raise.
/// A seat whose lease does not verify is given back.
fn acquire(
    licensing: &Licensing,
    key: Option<String>,
    machine: Option<String>,
    ci: bool,
    grace: f64,
) -> Result<SeatHold, Value> {
    let grace = seconds("grace", grace).map_err(|e| err(&e))?;
    let terms = licensing
        .hold_terms()
        .map_err(|e| err(&e))?
        .with_grace(grace);
    let key = key_or_remembered(licensing, key).map_err(|e| err(&e))?;
    let machine = match machine {
        Some(m) => m,
        // This machine's fingerprint; with binding off there is none, and the core refuses
        // the empty machine before anything is sent.
        None => licensing
            .machine_fingerprint()
            .unwrap_or_default()
            .to_string(),
    };
    match licensing.client().acquire_hold(&terms, key, machine, ci) {
        Ok(Ok(hold)) => Ok(hold),
        Ok(Err(refused)) => Err(refused_json(&refused)),
        Err(e) => Err(err(&e)),
    }
}

/// `licensing.acquire_seat`: `(seat, {"ok": seat})` when held (its heartbeat on a thread of
/// its own when `background`), else `(None, {"error": …})`.
pub(crate) fn acquire_seat<'py>(
    py: Python<'py>,
    licensing: &Licensing,
    key: Option<String>,
    machine: Option<String>,
    ci: bool,
    grace: f64,
    background: bool,
) -> PyResult<(Option<NativeSeat>, Bound<'py, PyAny>)> {
    let held = py.detach(|| acquire(licensing, key, machine, ci, grace));
    let hold = match held {
        Ok(hold) => hold,
        Err(answer) => return Ok((None, to_py(py, &answer)?)),
    };
    let answer = ok(seat_json(&hold));
    let client = licensing.client().clone();
    let beating = match Beating::start(&client, hold.clone(), background) {
        Ok(beating) => beating,
        Err(e) => {
            // No thread, no heartbeat: the seat goes back at once.
            if let Some(back) = hold.release_ask() {
                let _ = py.detach(|| client.seat(&back));
            }
            return Ok((None, to_py(py, &err(&e))?));
        }
    };
    let seat = NativeSeat {
        client,
        beating: Mutex::new(beating),
    };
    Ok((Some(seat), to_py(py, &answer)?))
}

/// One of a key's seats held by this process (`polar_license.Seat` wraps it).
#[pyclass(frozen, module = "polar_license._native")]
pub(crate) struct NativeSeat {
    client: BlockingClient,
    beating: Mutex<Beating>,
}

impl NativeSeat {
    /// `f` on the hold (under the machine's lock, never over a request).
    fn with_hold<R>(&self, f: impl FnOnce(&mut SeatHold) -> R) -> R {
        lock(&self.beating).with(|b| f(b.hold_mut()))
    }

    /// The hold's request `ask` sent (the lock not held meanwhile), and its answer folded in:
    /// `{"ok": state}` or the heartbeat's `{"error": …}` (the seat kept while its lease runs;
    /// `seat_lost` once it has ended so). The heartbeat thread (`background`) is woken
    /// ([`Beating::wake`]): its machine asks the hold again, which says when the next one is
    /// due after this one (no schedule is kept here).
    fn send_heartbeat(&self, ask: &SeatAsk) -> Value {
        let answer = self.client.seat(ask);
        let told =
            self.with_hold(
                |hold| match hold.heartbeat_answered(system_clock_ms(), &answer) {
                    Ok(HoldState::Lost) => lost_or_state(hold),
                    Ok(state) => ok(json!(state.as_str())),
                    Err(e) => err(&e),
                },
            );
        lock(&self.beating).wake();
        told
    }

    /// Stops the thread and sends the release (none when already released): `{"ok": held}`,
    /// whether the relay still held the seat.
    fn give_back(&self) -> Value {
        lock(&self.beating).stop(false);
        let Some(ask) = self.with_hold(|hold| hold.release_ask()) else {
            return ok(json!(false));
        };
        let answer = self.client.seat(&ask);
        // Released whatever came of it: a seat the relay was not told of frees by itself
        // within its life.
        self.with_hold(|hold| hold.released());
        match answer {
            Ok(SeatAnswer::Released(held)) => ok(json!(held)),
            Ok(SeatAnswer::Gone) => ok(json!(false)),
            Ok(other) => err(&Error::Protocol {
                status: None,
                detail: format!("the relay answered a release with {other:?}"),
            }),
            Err(e) => err(&e),
        }
    }
}

/// `{"error": seat_lost}` for a hold lost now (the core's words), else `{"ok": state}`.
fn lost_or_state(hold: &SeatHold) -> Value {
    let now = system_clock_ms();
    match hold.lost(now) {
        Some(e) => err(&e),
        None => ok(json!(hold.state_at(now).as_str())),
    }
}

#[pymethods]
impl NativeSeat {
    /// The seat as the relay last answered it (its end is the signed lease's).
    fn seat<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let value = self.with_hold(|hold| seat_json(hold));
        to_py(py, &value)
    }

    /// `held`, `lost`, `gone` or `released` now: never `held` past the hold's end, even
    /// before a heartbeat says so.
    fn state(&self) -> &'static str {
        self.with_hold(|hold| hold.state_at(system_clock_ms()).as_str())
    }

    /// The core's `seat_lost` error when the hold is lost now, else `None`.
    fn lost<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        match self.with_hold(|hold| hold.lost(system_clock_ms())) {
            Some(e) => Ok(Some(to_py(py, &error_json(&e))?)),
            None => Ok(None),
        }
    }

    /// Seconds until the hold wants [`NativeSeat::poll`] again (0 when a heartbeat is due),
    /// `None` once it has ended.
    fn next_wait(&self) -> Option<f64> {
        self.with_hold(|hold| hold.next_wait(system_clock_ms()))
            .map(|d| d.as_secs_f64())
    }

    /// Does what the hold says now, for an app that drives the seat itself: sends the
    /// heartbeat when one is due (and hands the hold what it got), then `{"ok": seconds}`
    /// until the next call, `{"ok": null}` once the hold has ended; a failed heartbeat is
    /// `{"error": …}` (the seat kept while its lease runs; the hold's retry is due sooner).
    fn poll<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let value = py.detach(|| {
            let next = self.with_hold(|hold| hold.poll(system_clock_ms()));
            match next {
                HoldPoll::Send(ask) => {
                    let sent = self.send_heartbeat(&ask);
                    if sent.get("error").is_some() {
                        return sent;
                    }
                }
                HoldPoll::Wait(wait) => return ok(json!(wait.as_secs_f64())),
                HoldPoll::Ended(_) => return ok(Value::Null),
            }
            let wait = self.with_hold(|hold| hold.next_wait(system_clock_ms()));
            ok(json!(wait.map(|d: Duration| d.as_secs_f64())))
        });
        to_py(py, &value)
    }

    /// Sends a heartbeat now, due or not (not before a `429`'s wait, one at a time): `{"ok":
    /// state}`, the heartbeat's `{"error": …}`, or `seat_lost` once the hold is lost; a
    /// released seat is `invalid_input` (nothing sent).
    fn heartbeat<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let value = py.detach(|| {
            let next = self.with_hold(|hold| hold.heartbeat_now(system_clock_ms()));
            match next {
                HoldPoll::Send(ask) => self.send_heartbeat(&ask),
                HoldPoll::Wait(_) => ok(json!(HoldState::Held.as_str())),
                HoldPoll::Ended(HoldState::Released) => {
                    err(&Error::invalid("seat", "was released"))
                }
                HoldPoll::Ended(_) => self.with_hold(|hold| lost_or_state(hold)),
            }
        });
        to_py(py, &value)
    }

    /// Stops the heartbeat and gives the seat back: `{"ok": held}` (whether the relay still
    /// held it; `false` with nothing sent when already released), or `{"error": …}` when the
    /// release could not be sent or answered (the seat frees by itself within its life).
    fn release<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let value = py.detach(|| self.give_back());
        to_py(py, &value)
    }
}

impl Drop for NativeSeat {
    fn drop(&mut self) {
        // The thread stops at its next wake; the seat is not released here (no request
        // while the interpreter may be tearing down): one not heard from frees within its
        // life. `Seat.release` and `with` give it back.
        lock(&self.beating).stop(false);
    }
}
