//! A floating or CI seat held by a native app (issue #67 item 5, the Rust face): a
//! [`SeatGuard`] heartbeats its seat on a thread of its own and gives it back when dropped.
//! Every rule (whether an answer holds a seat, what comes next, when, what each answer does
//! to the hold, when it is lost) is the core's [`SeatHold`]; this shell only sends the
//! requests and sleeps as long as the hold says.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use crate::error::Error;
use crate::key::Key;
use crate::seat::{Seat, SeatAnswer};
use crate::seat_hold::{HoldPoll, HoldState, HoldTerms, SeatHold};

use super::clock::system_clock_ms;
use super::BlockingClient;

/// What the guard and its heartbeat thread share.
struct Shared {
    hold: Mutex<SeatHold>,
    /// Set when the guard is released or dropped: the thread stops at once.
    stop: Mutex<bool>,
    wake: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One of a key's seats held by this process, from [`BlockingClient::hold_seat`]: a thread
/// heartbeats it as the core's hold says (every third of its life, sooner after a failure)
/// until the relay says it is gone or its lease ends with no renewal (lost: the app learns
/// `seat_lost` from [`SeatGuard::state`] and [`SeatGuard::lost`]); dropping the guard stops
/// the thread and releases the seat (errors ignored: a seat not released frees itself when
/// its life ends). [`SeatGuard::release`] releases it and says how that went.
pub struct SeatGuard {
    client: BlockingClient,
    shared: Arc<Shared>,
    beat: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SeatGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hold = lock(&self.shared.hold);
        f.debug_struct("SeatGuard")
            .field("key", hold.key())
            .field("seat", &hold.seat().id)
            .field("state", &hold.state())
            .finish_non_exhaustive()
    }
}

impl BlockingClient {
    /// Acquires one of `key`'s floating seats (a CI seat when `ci`) for `machine` from the
    /// seller's relay at this client's base URL, and holds it under `terms` (the relay's keys
    /// the seat lease must verify with, the organization, the grace): `Ok(Ok(guard))` when
    /// the seat is held (its lease verified, its heartbeat running); `Ok(Err(answer))` when
    /// the relay gave none ([`SeatAnswer::Full`] with the seats in use and when the soonest
    /// frees, or Polar's denial of the key); `Err` when the request could not be made or
    /// answered, or the answer's seat lease is missing or does not verify (`protocol_error`:
    /// no seat; the seat it named is given back).
    pub fn hold_seat(
        &self,
        terms: &HoldTerms,
        key: Key,
        machine: impl Into<String>,
        ci: bool,
    ) -> Result<Result<SeatGuard, SeatAnswer>, Error> {
        let ask = SeatHold::acquire_ask(key, machine.into(), ci);
        let answer = self.seat(&ask)?;
        let hold = match SeatHold::acquire(terms, &ask, &answer, system_clock_ms()) {
            Ok(Ok(hold)) => hold,
            Ok(Err(refused)) => return Ok(Err(refused)),
            Err(e) => {
                if let Some(back) = SeatHold::release_unheld(&ask, &answer) {
                    let _ = self.seat(&back);
                }
                return Err(e);
            }
        };
        let shared = Arc::new(Shared {
            hold: Mutex::new(hold),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let mut guard = SeatGuard {
            client: self.clone(),
            shared,
            beat: None,
        };
        let (client, shared) = (self.clone(), Arc::clone(&guard.shared));
        match std::thread::Builder::new()
            .name("polar-license-seat".into())
            .spawn(move || beat(&client, &shared))
        {
            Ok(handle) => guard.beat = Some(handle),
            // No thread, no heartbeat: the seat goes back (the guard's drop releases it).
            Err(e) => {
                return Err(Error::Offline {
                    timeout: false,
                    detail: format!("could not start the seat's heartbeat thread: {e}"),
                })
            }
        }
        Ok(Ok(guard))
    }
}

/// The heartbeat thread: asks the hold what to do now (send its heartbeat, wait, or stop: the
/// hold ended, gone or lost at its lease's end), does it, and hands the heartbeat's answer
/// back; ends when stopped or when the hold ends. Every rule and every wait is the hold's.
fn beat(client: &BlockingClient, shared: &Shared) {
    loop {
        let next = lock(&shared.hold).poll(system_clock_ms());
        match next {
            HoldPoll::Send(ask) => {
                let answer = client.seat(&ask);
                let _ = lock(&shared.hold).heartbeat_answered(system_clock_ms(), &answer);
            }
            HoldPoll::Wait(wait) => {
                let stopped = lock(&shared.stop);
                let (stopped, _) = shared
                    .wake
                    .wait_timeout_while(stopped, wait, |stop| !*stop)
                    .unwrap_or_else(PoisonError::into_inner);
                if *stopped {
                    return;
                }
            }
            HoldPoll::Ended(_) => return,
        }
        if *lock(&shared.stop) {
            return;
        }
    }
}

impl SeatGuard {
    /// The seat as the relay last answered it (its life moves on with each heartbeat; its
    /// `expires_at` is the signed lease's).
    pub fn seat(&self) -> Seat {
        lock(&self.shared.hold).seat().clone()
    }

    /// Where the hold stands now: held; gone (the relay no longer holds it: acquire again);
    /// lost (its lease ended, and the grace after it, with no renewal from the relay:
    /// [`SeatGuard::lost`] says why; stop what it licensed). Never `held` past the lease's
    /// end, even before the heartbeat thread wakes.
    pub fn state(&self) -> HoldState {
        lock(&self.shared.hold).state_at(system_clock_ms())
    }

    /// When the hold is lost now: why ([`Error::SeatLost`], reason `seat_lost`).
    pub fn lost(&self) -> Option<Error> {
        lock(&self.shared.hold).lost(system_clock_ms())
    }

    /// Stops the heartbeat and gives the seat back: `Ok` once the relay answered (a seat it
    /// no longer held included); `Err` when the release could not be sent or answered (the
    /// seat then frees itself when its life ends).
    pub fn release(mut self) -> Result<(), Error> {
        self.give_back()
    }

    fn stop(&mut self) {
        *lock(&self.shared.stop) = true;
        self.shared.wake.notify_all();
        if let Some(handle) = self.beat.take() {
            // A heartbeat under way finishes first (within the client's timeout).
            let _ = handle.join();
        }
    }

    fn give_back(&mut self) -> Result<(), Error> {
        self.stop();
        let Some(ask) = lock(&self.shared.hold).release_ask() else {
            return Ok(());
        };
        let answer = self.client.seat(&ask);
        lock(&self.shared.hold).released();
        answer.map(|_| ())
    }
}

impl Drop for SeatGuard {
    fn drop(&mut self) {
        // Errors are the seat's life's to settle: it frees itself when not heard from.
        let _ = self.give_back();
    }
}
