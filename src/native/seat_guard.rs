//! A floating or CI seat held by a native app (issue #67 item 5, the Rust face): a
//! [`SeatGuard`] heartbeats its seat on a thread of its own and gives it back when dropped.
//! Every rule (whether an answer holds a seat, what comes next, when, what each answer does
//! to the hold, when it is lost) is the core's [`SeatHold`], its schedule the core's
//! [`SeatBeat`]; this shell drives it with its one loop ([`BlockingClient::drive_shared`]) on
//! a thread ([`Beating`], which Python's seat shares), its waits cut short by a release.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use crate::error::Error;
use crate::key::Key;
use crate::seat::{Seat, SeatAnswer};
use crate::seat_beat::SeatBeat;
use crate::seat_hold::{HoldState, HoldTerms, SeatHold};

use super::clock::system_clock_ms;
use super::BlockingClient;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a held seat's handle and its heartbeat thread share.
struct Shared {
    beat: Mutex<SeatBeat>,
    signal: Mutex<Signal>,
    wake: Condvar,
}

/// What the handle tells the thread, in the middle of a wait.
#[derive(Default)]
struct Signal {
    /// Set when the seat is released or its handle dropped: the thread stops at once.
    stop: bool,
    /// Set when the app changed the hold ([`Beating::wake`]): the wait ends and the machine
    /// asks its hold again.
    woken: bool,
}

/// What a watched hold's thread calls once the hold has ended by itself ([`Beating::watched`]).
type Ended = Box<dyn FnOnce() + Send + 'static>;

/// A held seat's machine ([`SeatBeat`]) and, when asked for, the thread that drives it with
/// the client's one loop until the hold ends or [`Beating::stop`]: the part of a seat every
/// native face shares ([`SeatGuard`], Python's `Seat`). No rule and no wait of its own.
pub struct Beating {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Beating {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let beat = lock(&self.shared.beat);
        f.debug_struct("Beating")
            .field("seat", &beat.hold().seat().id)
            .field("state", &beat.hold().state())
            .finish_non_exhaustive()
    }
}

impl Beating {
    /// `hold`'s heartbeats to `client`'s base URL, on a thread of their own when `background`
    /// (else the app drives the hold itself, through [`Beating::with`]). `Err`: no thread
    /// could be started (nothing is released here: the caller gives the seat back).
    pub fn start(
        client: &BlockingClient,
        hold: SeatHold,
        background: bool,
    ) -> Result<Beating, Error> {
        let ended = background.then(|| -> Ended { Box::new(|| {}) });
        Beating::spawn(client, hold, ended)
    }

    /// `hold`'s heartbeats on a thread of their own, and `ended` called on that thread once
    /// the hold has ended by itself (the relay said it is gone, or its lease ended with no
    /// renewal: [`SeatBeat::hold`] says which; never after [`Beating::stop`]), so that an app
    /// that is not polling its seat (the Tauri plugin's guest) is told. `Err`: no thread.
    pub fn watched(
        client: &BlockingClient,
        hold: SeatHold,
        ended: impl FnOnce() + Send + 'static,
    ) -> Result<Beating, Error> {
        Beating::spawn(client, hold, Some(Box::new(ended)))
    }

    fn spawn(
        client: &BlockingClient,
        hold: SeatHold,
        ended: Option<Ended>,
    ) -> Result<Beating, Error> {
        let shared = Arc::new(Shared {
            beat: Mutex::new(SeatBeat::new(hold, client.base_url())),
            signal: Mutex::new(Signal::default()),
            wake: Condvar::new(),
        });
        let mut beating = Beating {
            shared,
            thread: None,
        };
        if let Some(ended) = ended {
            let (client, shared) = (client.clone(), Arc::clone(&beating.shared));
            let started = std::thread::Builder::new()
                .name("polar-license-seat".into())
                .spawn(move || {
                    if beat(&client, &shared) {
                        ended();
                    }
                })
                .map_err(|e| Error::Offline {
                    timeout: false,
                    detail: format!("could not start the seat's heartbeat thread: {e}"),
                })?;
            beating.thread = Some(started);
        }
        Ok(beating)
    }

    /// Cuts the thread's wait short (the app heartbeated the hold itself, through
    /// [`Beating::with`]): the machine asks its hold again, which says when the next one is due.
    pub fn wake(&self) {
        lock(&self.shared.signal).woken = true;
        self.shared.wake.notify_all();
    }

    /// `f` on the seat's machine (under its lock: not held over a request or a wait).
    pub fn with<R>(&self, f: impl FnOnce(&mut SeatBeat) -> R) -> R {
        f(&mut lock(&self.shared.beat))
    }

    /// Stops the thread (at once, even in a wait); with `join`, waits for it (a heartbeat
    /// under way finishes first, within the client's timeout).
    pub fn stop(&mut self, join: bool) {
        lock(&self.shared.signal).stop = true;
        self.shared.wake.notify_all();
        if let Some(handle) = self.thread.take() {
            if join {
                let _ = handle.join();
            }
        }
    }
}

/// The heartbeat thread: the core's [`SeatBeat`] driven by the client's one loop (its
/// heartbeats sent, its waits waited here so that a release cuts them short); ends when
/// stopped or when the hold ends (gone, or lost at its lease's end): then `true`, unless it
/// was stopped meanwhile. Every rule and every wait is the machine's.
fn beat(client: &BlockingClient, shared: &Shared) -> bool {
    let waited = |wait| {
        let signal = lock(&shared.signal);
        let (mut signal, _) = shared
            .wake
            .wait_timeout_while(signal, wait, |s| !s.stop && !s.woken)
            .unwrap_or_else(PoisonError::into_inner);
        signal.woken = false;
        !signal.stop
    };
    let stopped = || lock(&shared.signal).stop;
    client.drive_shared(&shared.beat, waited, |_| !stopped()) && !stopped()
}

/// One of a key's seats held by this process, from [`BlockingClient::hold_seat`]: a thread
/// heartbeats it as the core's hold says (every third of its life, sooner after a failure)
/// until the relay says it is gone or its lease ends with no renewal (lost: the app learns
/// `seat_lost` from [`SeatGuard::state`] and [`SeatGuard::lost`]); dropping the guard stops
/// the thread and releases the seat (errors ignored: a seat not released frees itself when
/// its life ends). [`SeatGuard::release`] releases it and says how that went.
pub struct SeatGuard {
    client: BlockingClient,
    beating: Beating,
}

impl std::fmt::Debug for SeatGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.beating.with(|b| {
            let hold = b.hold();
            f.debug_struct("SeatGuard")
                .field("key", hold.key())
                .field("seat", &hold.seat().id)
                .field("state", &hold.state())
                .finish_non_exhaustive()
        })
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
        let hold = match self.acquire_hold(terms, key, machine.into(), ci)? {
            Ok(hold) => hold,
            Err(refused) => return Ok(Err(refused)),
        };
        match Beating::start(self, hold.clone(), true) {
            Ok(beating) => Ok(Ok(SeatGuard {
                client: self.clone(),
                beating,
            })),
            // No thread, no heartbeat: the seat goes back.
            Err(e) => {
                if let Some(back) = hold.release_ask() {
                    let _ = self.seat(&back);
                }
                Err(e)
            }
        }
    }

    /// One of `key`'s seats acquired for `machine` and read into a hold under `terms`:
    /// `Ok(Ok(hold))` held, `Ok(Err(answer))` refused (full, or Polar's denial), `Err` no
    /// answer, or one whose lease does not verify (the seat it named given back).
    pub fn acquire_hold(
        &self,
        terms: &HoldTerms,
        key: Key,
        machine: String,
        ci: bool,
    ) -> Result<Result<SeatHold, SeatAnswer>, Error> {
        let ask = SeatHold::acquire_ask(key, machine, ci);
        let answer = self.seat(&ask)?;
        match SeatHold::acquire(terms, &ask, &answer, system_clock_ms()) {
            Ok(held) => Ok(held),
            Err(e) => {
                if let Some(back) = SeatHold::release_unheld(&ask, &answer) {
                    let _ = self.seat(&back);
                }
                Err(e)
            }
        }
    }
}

impl SeatGuard {
    /// The seat as the relay last answered it (its life moves on with each heartbeat; its
    /// `expires_at` is the signed lease's).
    pub fn seat(&self) -> Seat {
        self.beating.with(|b| b.hold().seat().clone())
    }

    /// Where the hold stands now: held; gone (the relay no longer holds it: acquire again);
    /// lost (its lease ended, and the grace after it, with no renewal from the relay:
    /// [`SeatGuard::lost`] says why; stop what it licensed). Never `held` past the lease's
    /// end, even before the heartbeat thread wakes.
    pub fn state(&self) -> HoldState {
        self.beating.with(|b| b.hold().state_at(system_clock_ms()))
    }

    /// When the hold is lost now: why ([`Error::SeatLost`], reason `seat_lost`).
    pub fn lost(&self) -> Option<Error> {
        self.beating.with(|b| b.hold().lost(system_clock_ms()))
    }

    /// Stops the heartbeat and gives the seat back: `Ok` once the relay answered (a seat it
    /// no longer held included); `Err` when the release could not be sent or answered (the
    /// seat then frees itself when its life ends).
    pub fn release(mut self) -> Result<(), Error> {
        self.give_back()
    }

    fn give_back(&mut self) -> Result<(), Error> {
        self.beating.stop(true);
        let Some(ask) = self.beating.with(|b| b.hold().release_ask()) else {
            return Ok(());
        };
        let answer = self.client.seat(&ask);
        self.beating.with(|b| b.hold_mut().released());
        answer.map(|_| ())
    }
}

impl Drop for SeatGuard {
    fn drop(&mut self) {
        // Errors are the seat's life's to settle: it frees itself when not heard from.
        let _ = self.give_back();
    }
}
