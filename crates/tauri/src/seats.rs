//! Floating and CI seats (issue #67) through the seller's relay (the plugin's base URL):
//! `seat_acquire`, `seat_heartbeat`, `seat_release`. The held seats live in the plugin's state
//! by id; which request comes next and what an answer does to a seat are the core's
//! (`polar_license::seat_hold::SeatHold`); the guest package (`seat()`) schedules the
//! heartbeat every `heartbeatEvery` seconds and releases on its `AbortSignal`.

use crate::answers::LicenseError;
use crate::PolarLicense;
use polar_license::seat::{SeatAnswer, SeatAsk};
use polar_license::seat_hold::{HoldPoll, HoldState, SeatHold};
use polar_license::{system_clock_ms, Error, Key, Licensing};
use serde::{Deserialize, Serialize};
use tauri::State;

/// A seat held, as `seatAcquire` and `seatHeartbeat` answer it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeatInfo {
    /// The seat's id (what `seatHeartbeat` and `seatRelease` take).
    pub id: String,
    /// A CI seat.
    pub ci: bool,
    /// When it frees unless heard from (unix seconds); each heartbeat moves it on.
    pub expires_at: i64,
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
            heartbeat_every: hold.heartbeat_every().as_secs(),
            in_use: seat.in_use,
            size: seat.size,
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

    fn seat(code: &str, user_message: String, detail: &str) -> LicenseError {
        LicenseError {
            code: code.to_string(),
            class: "denied".to_string(),
            user_message,
            detail: detail.to_string(),
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
            SeatAnswer::Full {
                in_use,
                size,
                frees_at,
                retry_after,
            } => {
                let wait = retry_after.map_or(String::new(), |s| {
                    format!(" The soonest frees in {s} seconds.")
                });
                let mut error = SeatError::seat(
                    "seats_full",
                    format!("Every seat of this license is in use ({in_use} of {size}).{wait}"),
                    "seats_full",
                );
                error.status = Some(409);
                error.retry_after = *retry_after;
                SeatError {
                    error,
                    in_use: Some(*in_use),
                    size: Some(*size),
                    frees_at: *frees_at,
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
                error: SeatError::seat(
                    "seat_gone",
                    "This seat was freed (not heard from within its life): take a seat again."
                        .to_string(),
                    "seat_gone",
                ),
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
    let e = hold
        .and_then(|h| h.lost(system_clock_ms()))
        .unwrap_or_else(|| Error::SeatLost {
            ended_at: 0,
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
/// default its fingerprint; a CI seat when `ci`). No Polar activation is made.
#[tauri::command]
pub(crate) async fn seat_acquire(
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
            state.seats().insert(info.id.clone(), hold);
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

/// Extends the seat `seat`'s life. Rejects with `seat_gone` when the relay no longer holds it
/// (the app forgets it: acquire again), `offline` when the relay could not be reached (kept:
/// try again within its life).
#[tauri::command]
pub(crate) async fn seat_heartbeat(
    state: State<'_, PolarLicense>,
    seat: String,
) -> SeatResult<SeatInfo> {
    let next = match state.seats().get_mut(&seat) {
        None => return Err(unknown_seat()),
        Some(hold) => hold.heartbeat_now(system_clock_ms()),
    };
    let ask = match next {
        HoldPoll::Send(ask) => ask,
        // One under way, or a 429's wait: held as it is.
        HoldPoll::Wait(_) => {
            return state
                .seats()
                .get(&seat)
                .map(SeatInfo::of)
                .ok_or_else(unknown_seat)
        }
        HoldPoll::Ended(HoldState::Lost) => return Err(lost(state.seats().remove(&seat))),
        HoldPoll::Ended(_) => {
            state.seats().remove(&seat);
            return Err(ended(&SeatAnswer::Gone));
        }
    };
    let answer = send_raw(state.licensing(), ask).await?;
    let mut seats = state.seats();
    let Some(hold) = seats.get_mut(&seat) else {
        // Released meanwhile by another call.
        return Err(unknown_seat());
    };
    match hold.heartbeat_answered(system_clock_ms(), &answer) {
        Ok(HoldState::Held) => Ok(SeatInfo::of(hold)),
        Ok(HoldState::Lost) => Err(lost(seats.remove(&seat))),
        Ok(_) => {
            seats.remove(&seat);
            Err(match &answer {
                Ok(answer) => ended(answer),
                Err(e) => SeatError::of(e),
            })
        }
        Err(e) => Err(SeatError::of(&e)),
    }
}

/// Gives the seat `seat` back (another machine may take it at once); the app forgets it
/// whatever the answer (a relay that cannot be reached lets it free within its life).
#[tauri::command]
pub(crate) async fn seat_release(
    state: State<'_, PolarLicense>,
    seat: String,
) -> SeatResult<SeatReleased> {
    let Some(mut hold) = state.seats().remove(&seat) else {
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
