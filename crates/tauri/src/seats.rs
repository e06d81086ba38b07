//! Floating and CI seats (issue #67) through the seller's relay (the plugin's base URL):
//! `seat_acquire`, `seat_heartbeat`, `seat_release`. The held seats live in the plugin's state
//! by id; which request comes next, what an answer does to a seat, when the next heartbeat
//! goes, when a failed one is retried and when the hold ends are the core's
//! (`polar_license::seat_hold::SeatHold`, its schedule as steps `polar_license::seat_beat::SeatBeat`;
//! issue #77). Each seat acquired is driven on a thread of the core's
//! (`polar_license::Beating`, as the Rust face's `SeatGuard` and Python's seat are), which
//! calls back here only when the hold ended without a release (`lost` at the lease's end with
//! no renewal the relay signed, or `gone`): the plugin then emits [`crate::SEAT_ENDED_EVENT`]
//! with `seat_lost` or `seat_gone`. The plugin keeps no schedule and no loop, and the guest
//! package none either (its `seat()` listens for the event and releases on its `AbortSignal`).
//!
//! Every seat lease is verified with the plugin's relay keys before a seat is held (a plugin
//! without them holds no seat: `invalid_input`, field `relay_keys`); an answer whose lease
//! does not verify is `protocol_error` and the seat it named is given back.

use crate::answers::LicenseError;
use crate::PolarLicense;
use polar_license::seat::{SeatAnswer, SeatAsk, SEAT_GONE_CODE};
use polar_license::seat_hold::{HoldPoll, HoldState, SeatHold};
use polar_license::{system_clock_ms, Beating, Error, Key, Licensing};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tauri::{AppHandle, Emitter, Runtime, State};

/// A seat held, as `seatAcquire` and `seatHeartbeat` answer it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeatInfo {
    /// The seat's id (what `seatHeartbeat` and `seatRelease` take).
    pub id: String,
    /// A CI seat.
    pub ci: bool,
    /// When it frees unless heard from (unix seconds, the relay's signed lease's end); each
    /// heartbeat moves it on.
    pub expires_at: i64,
    /// When the hold ends on this machine unless renewed (unix milliseconds: the lease's end,
    /// sooner when this clock is behind the relay's).
    pub ends_at_ms: u64,
    /// How often to heartbeat, in seconds (a third of its life).
    pub heartbeat_every: u64,
    /// Seats of the key in use, this one with them.
    pub in_use: u32,
    /// The key's seats.
    pub size: u32,
}

impl SeatInfo {
    fn of(hold: &SeatHold) -> SeatInfo {
        let seat = hold.seat();
        SeatInfo {
            id: seat.id.clone(),
            ci: seat.ci,
            expires_at: seat.expires_at,
            ends_at_ms: hold.ends_at_ms(),
            heartbeat_every: hold.heartbeat_every().as_secs(),
            in_use: seat.in_use,
            size: seat.size,
        }
    }
}

/// [`crate::SEAT_ENDED_EVENT`]'s payload: the seat whose hold ended without a release, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeatEnded {
    /// The seat's id.
    pub seat: String,
    /// `lost` (its lease ended with no renewal) or `gone` (the relay freed it, or Polar
    /// denied the key).
    pub state: String,
    /// Why: `seat_lost` (with when, in its detail) or `seat_gone` (or Polar's denial),
    /// `gone: true`.
    pub error: SeatError,
}

/// The plugin's seats by id, each driven by the core's heartbeat thread ([`Beating`]: the
/// core's [`polar_license::seat_beat::SeatBeat`] on the native shell's one loop). A hold that
/// ends by itself is told to the guest by its thread while the seat is still here; a command
/// that takes a seat out (ended or released) answers for it, and its thread then tells nothing.
#[derive(Debug, Clone, Default)]
pub(crate) struct Seats(Arc<Mutex<HashMap<String, Beating>>>);

impl Seats {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Beating>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `f` on the hold of the seat `id`, `None` when the plugin holds no such seat.
    fn with<T>(&self, id: &str, f: impl FnOnce(&mut SeatHold) -> T) -> Option<T> {
        self.lock()
            .get(id)
            .map(|beating| beating.with(|b| f(b.hold_mut())))
    }

    /// The seat `id` taken out, its thread stopped (without waiting: a heartbeat under way
    /// ends by itself), its hold handed back.
    fn take(&self, id: &str) -> Option<SeatHold> {
        let mut beating = self.lock().remove(id)?;
        beating.stop(false);
        Some(beating.with(|b| b.hold().clone()))
    }

    /// Cuts the seat `id`'s thread's wait short: its machine asks the hold again.
    fn wake(&self, id: &str) {
        if let Some(beating) = self.lock().get(id) {
            beating.wake();
        }
    }

    /// Holds `hold` (its heartbeat on a thread of the core's, which emits
    /// [`crate::SEAT_ENDED_EVENT`] through `app` when the hold ends by itself).
    fn hold<R: Runtime>(
        &self,
        app: AppHandle<R>,
        licensing: &Licensing,
        hold: SeatHold,
    ) -> Result<(), Error> {
        let id = hold.seat().id.clone();
        // Under the lock: a hold that ends at once is found by its thread.
        let mut seats = self.lock();
        let (me, seat) = (self.clone(), id.clone());
        let beating = Beating::watched(licensing.client(), hold, move || {
            me.ended_by_itself(&app, &seat)
        })?;
        seats.insert(id, beating);
        Ok(())
    }

    /// The seat `id`'s hold ended by itself (its thread's last word): the guest is told why,
    /// unless a command took the seat first (and answered it so). The seat stays until a
    /// command asks for it (which then answers the same: `seat_lost`, `seat_gone`).
    fn ended_by_itself<R: Runtime>(&self, app: &AppHandle<R>, id: &str) {
        let seats = self.lock();
        let Some(beating) = seats.get(id) else {
            return;
        };
        let told = beating.with(|b| {
            let state = b.hold().state();
            let error = match state {
                HoldState::Lost => lost_error(b.hold()),
                HoldState::Gone => match b.take_beat().map(|beat| beat.answer) {
                    Some(Ok(answer)) => ended(&answer),
                    _ => ended(&SeatAnswer::Gone),
                },
                HoldState::Held | HoldState::Released => return None,
            };
            Some(SeatEnded {
                seat: id.to_string(),
                state: state.as_str().to_string(),
                error,
            })
        });
        drop(seats);
        if let Some(told) = told {
            if let Err(e) = app.emit(crate::SEAT_ENDED_EVENT, told) {
                log::warn!(
                    target: "polar_license",
                    "could not emit {}: {e}", crate::SEAT_ENDED_EVENT
                );
            }
        }
    }
}

/// `seatRelease`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeatReleased {
    /// Whether the relay still held the seat (`false`: it had freed by itself, or the relay
    /// could not be reached and it frees within its life).
    pub released: bool,
}

/// Why a seat command failed: a [`LicenseError`] (`code` `seats_full`, `seat_gone`, Polar's
/// denial of the key, `invalid_input`, `offline`, `rate_limited`, …) and, for `seats_full`,
/// how many are in use and when the soonest frees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeatError {
    /// The failure, as every command's.
    #[serde(flatten)]
    pub error: LicenseError,
    /// `seats_full`: the seats in use.
    pub in_use: Option<u32>,
    /// `seats_full`: the key's seats (for a CI seat, the CI cap).
    pub size: Option<u32>,
    /// `seats_full`: when the soonest seat frees (unix seconds).
    pub frees_at: Option<i64>,
    /// The plugin holds the seat no more (the relay freed it, Polar denied the key, or it
    /// was released): acquire again. `false`: a seat held is kept (try again within its life).
    pub gone: bool,
}

impl SeatError {
    fn of(error: &Error) -> SeatError {
        SeatError {
            error: LicenseError::of(error),
            in_use: None,
            size: None,
            frees_at: None,
            gone: false,
        }
    }

    /// A refusal of the relay's in the core's code and words (`SeatAnswer::code`,
    /// `SeatAnswer::message`).
    fn seat(answer: &SeatAnswer) -> LicenseError {
        let said = answer.message();
        let code = answer.code().unwrap_or(SEAT_GONE_CODE);
        LicenseError {
            code: code.to_string(),
            class: "denied".to_string(),
            user_message: said.as_ref().map(|m| m.text()).unwrap_or_default(),
            next_step: said.map(|m| m.next_step().to_string()),
            detail: code.to_string(),
            hint: None,
            field: None,
            status: None,
            retry_after: None,
            remaining_usages: None,
            stopped: None,
        }
    }

    /// A refusal of the relay's (not a seat held).
    fn refused(answer: &SeatAnswer) -> SeatError {
        match answer {
            SeatAnswer::Full(full) => {
                let mut error = SeatError::seat(answer);
                error.status = Some(409);
                error.retry_after = full.retry_after;
                SeatError {
                    error,
                    in_use: Some(full.in_use),
                    size: Some(full.size),
                    frees_at: full.frees_at,
                    gone: false,
                }
            }
            SeatAnswer::Denied(denial) => SeatError {
                error: LicenseError::denied(denial),
                in_use: None,
                size: None,
                frees_at: None,
                gone: false,
            },
            SeatAnswer::Gone | SeatAnswer::Held(_) | SeatAnswer::Released(_) => SeatError {
                error: SeatError::seat(&SeatAnswer::Gone),
                in_use: None,
                size: None,
                frees_at: None,
                gone: false,
            },
        }
    }
}

type SeatResult<T> = Result<T, SeatError>;

/// Sends `ask` to the relay on the blocking pool.
async fn send(licensing: &Licensing, ask: SeatAsk) -> SeatResult<SeatAnswer> {
    send_raw(licensing, ask)
        .await?
        .map_err(|e| SeatError::of(&e))
}

/// Sends `ask` to the relay on the blocking pool: what it got, for the hold to take.
async fn send_raw(licensing: &Licensing, ask: SeatAsk) -> SeatResult<Result<SeatAnswer, Error>> {
    let licensing = licensing.clone();
    tauri::async_runtime::spawn_blocking(move || licensing.client().seat(&ask))
        .await
        .map_err(|e| {
            SeatError::of(&Error::Cache {
                detail: format!("the seat task stopped: {e}"),
            })
        })
}

/// The hold lost (its lease ended with no renewal): the core's `seat_lost`; the plugin
/// forgot the seat.
fn lost(hold: Option<SeatHold>) -> SeatError {
    match hold {
        Some(hold) => lost_error(&hold),
        None => unknown_seat(),
    }
}

/// `seat_lost` for `hold`, with when and why (`gone`: held no more).
fn lost_error(hold: &SeatHold) -> SeatError {
    let e = hold
        .lost(system_clock_ms())
        .unwrap_or_else(|| Error::SeatLost {
            ended_at: i64::try_from(hold.ends_at_ms() / 1_000).unwrap_or(i64::MAX),
            cause: "no heartbeat was answered in time".into(),
        });
    SeatError {
        gone: true,
        ..SeatError::of(&e)
    }
}

fn unknown_seat() -> SeatError {
    SeatError {
        gone: true,
        ..SeatError::of(&Error::invalid(
            "seat",
            "is not a seat this app holds (released, or never acquired here)",
        ))
    }
}

/// The hold ended with `answer`: the plugin forgot the seat.
fn ended(answer: &SeatAnswer) -> SeatError {
    SeatError {
        gone: true,
        ..SeatError::refused(answer)
    }
}

/// Acquires one of `key`'s seats (default: the remembered key) for this machine (`machine`,
/// default its fingerprint; a CI seat when `ci`), its lease verified with the plugin's relay
/// keys, and starts its heartbeat thread. No Polar activation is made.
#[tauri::command]
pub(crate) async fn seat_acquire<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, PolarLicense>,
    key: Option<String>,
    machine: Option<String>,
    ci: Option<bool>,
) -> SeatResult<SeatInfo> {
    let licensing = state.licensing();
    let key = match key {
        Some(key) => Key::new(key),
        None => {
            let l = licensing.clone();
            tauri::async_runtime::spawn_blocking(move || l.remembered_or_error())
                .await
                .map_err(|e| {
                    SeatError::of(&Error::Cache {
                        detail: format!("the seat task stopped: {e}"),
                    })
                })?
                .map_err(|e| SeatError::of(&e))?
        }
    };
    let machine = machine.unwrap_or_else(|| {
        licensing
            .machine_fingerprint()
            .unwrap_or_default()
            .to_string()
    });
    // A seat is held only with a lease verified with the plugin's relay keys.
    let terms = licensing.hold_terms().map_err(|e| SeatError::of(&e))?;
    let ask = SeatHold::acquire_ask(key, machine, ci.unwrap_or(false));
    let answer = send(licensing, ask.clone()).await?;
    match SeatHold::acquire(&terms, &ask, &answer, system_clock_ms()) {
        Ok(Ok(hold)) => {
            let info = SeatInfo::of(&hold);
            if let Err(e) = state.seats().hold(app, licensing, hold.clone()) {
                // No heartbeat, no seat: given back.
                if let Some(ask) = hold.release_ask() {
                    let _ = send_raw(licensing, ask).await;
                }
                return Err(SeatError::of(&e));
            }
            Ok(info)
        }
        Ok(Err(refused)) => Err(SeatError::refused(&refused)),
        Err(e) => {
            if let Some(back) = SeatHold::release_unheld(&ask, &answer) {
                let _ = send_raw(licensing, back).await;
            }
            Err(SeatError::of(&e))
        }
    }
}

/// Extends the seat `seat`'s life now (its heartbeat thread does so when the core's machine
/// says; this is for an app that wants it sooner). Rejects with `seat_lost` when the hold has
/// ended at its lease's end, `seat_gone` when the relay no longer holds it (either way the app
/// forgets it: acquire again), `offline` when the relay could not be reached (kept while its
/// lease runs: the machine retries it).
#[tauri::command]
pub(crate) async fn seat_heartbeat(
    state: State<'_, PolarLicense>,
    seat: String,
) -> SeatResult<SeatInfo> {
    let seats = state.seats();
    let next = seats
        .with(&seat, |hold| hold.heartbeat_now(system_clock_ms()))
        .ok_or_else(unknown_seat)?;
    let ask = match next {
        HoldPoll::Send(ask) => ask,
        // One under way, or a 429's wait: held as it is.
        HoldPoll::Wait(_) => {
            return seats
                .with(&seat, |hold| SeatInfo::of(hold))
                .ok_or_else(unknown_seat)
        }
        HoldPoll::Ended(HoldState::Lost) => return Err(lost(seats.take(&seat))),
        HoldPoll::Ended(_) => {
            seats.take(&seat);
            return Err(ended(&SeatAnswer::Gone));
        }
    };
    let answer = send_raw(state.licensing(), ask).await?;
    let Some(result) = seats.with(&seat, |hold| {
        (
            hold.heartbeat_answered(system_clock_ms(), &answer),
            SeatInfo::of(hold),
        )
    }) else {
        // Released meanwhile by another call.
        return Err(unknown_seat());
    };
    match result {
        (Ok(HoldState::Held), info) => {
            // The seat's thread asks the machine again (its next heartbeat moved on).
            seats.wake(&seat);
            Ok(info)
        }
        (Ok(HoldState::Lost), _) => Err(lost(seats.take(&seat))),
        (Ok(_), _) => {
            seats.take(&seat);
            Err(match &answer {
                Ok(answer) => ended(answer),
                Err(e) => SeatError::of(e),
            })
        }
        (Err(e), _) => {
            // Retried sooner than planned: the seat's thread asks the machine again.
            seats.wake(&seat);
            Err(SeatError::of(&e))
        }
    }
}

/// Gives the seat `seat` back (another machine may take it at once); the app forgets it
/// whatever the answer (a relay that cannot be reached lets it free within its life).
#[tauri::command]
pub(crate) async fn seat_release(
    state: State<'_, PolarLicense>,
    seat: String,
) -> SeatResult<SeatReleased> {
    // Its heartbeat thread stops.
    let Some(mut hold) = state.seats().take(&seat) else {
        return Err(unknown_seat());
    };
    let Some(ask) = hold.release_ask() else {
        return Err(unknown_seat());
    };
    hold.released();
    let answer = send(state.licensing(), ask).await?;
    match answer {
        SeatAnswer::Released(released) => Ok(SeatReleased { released }),
        other => Err(SeatError::refused(&other)),
    }
}
