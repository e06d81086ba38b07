//! A seat held (issue #67 item 5, "every face"): the steps every face takes with one of a
//! key's seats, written once. [`SeatHold::acquire`] reads an acquisition's answer into a hold;
//! the hold says which request comes next ([`SeatHold::heartbeat_ask`],
//! [`SeatHold::release_ask`]), what each answer does to it ([`SeatHold::absorb`]) and how
//! often to beat ([`SeatHold::heartbeat_every`]). A shell (C, npm, Tauri) only sends the
//! requests ([`crate::seat::seat_request`], [`crate::seat::read_seat_answer`]) and schedules
//! the heartbeat; it holds no rule.

use core::time::Duration;

use crate::error::Error;
use crate::key::Key;
use crate::seat::{Seat, SeatAnswer, SeatAsk, SeatOp};

/// Where a hold stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldState {
    /// The seat is held: heartbeat it within its life.
    Held,
    /// The relay no longer holds it (not heard from within its life, or Polar denied the key
    /// at a heartbeat): acquire again.
    Gone,
    /// Released: nothing more to send.
    Released,
}

impl HoldState {
    /// `held`, `gone` or `released`.
    pub const fn as_str(self) -> &'static str {
        match self {
            HoldState::Held => "held",
            HoldState::Gone => "gone",
            HoldState::Released => "released",
        }
    }
}

/// One seat held by this machine, and what to send for it next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatHold {
    key: Key,
    machine: String,
    seat: Seat,
    state: HoldState,
}

impl SeatHold {
    /// The request for a new seat of `key` on `machine` (a CI seat when `ci`).
    pub fn acquire_ask(key: Key, machine: String, ci: bool) -> SeatAsk {
        SeatAsk {
            op: SeatOp::Acquire,
            key,
            machine,
            ci,
            seat: None,
        }
    }

    /// The answer to `ask` (an acquisition) read into a hold: `Ok` when the seat is held;
    /// otherwise the answer itself (`Full`, `Denied`), for the face to tell. An answer that is
    /// no acquisition's (`Gone`, `Released`) is a protocol error.
    pub fn acquire(
        ask: &SeatAsk,
        answer: SeatAnswer,
    ) -> Result<Result<SeatHold, SeatAnswer>, Error> {
        if ask.op != SeatOp::Acquire {
            return Err(Error::invalid("seat", "a hold starts from an acquisition"));
        }
        match answer {
            SeatAnswer::Held(seat) => Ok(Ok(SeatHold {
                key: ask.key.clone(),
                machine: ask.machine.clone(),
                seat,
                state: HoldState::Held,
            })),
            full @ (SeatAnswer::Full { .. } | SeatAnswer::Denied(_)) => Ok(Err(full)),
            SeatAnswer::Gone | SeatAnswer::Released(_) => Err(Error::Protocol {
                status: None,
                detail: "the relay answered an acquisition as a heartbeat or a release".into(),
            }),
        }
    }

    fn ask(&self, op: SeatOp) -> SeatAsk {
        SeatAsk {
            op,
            key: self.key.clone(),
            machine: self.machine.clone(),
            ci: self.seat.ci,
            seat: Some(self.seat.id.clone()),
        }
    }

    /// The heartbeat to send now, or `None` when the seat is no longer held (gone or
    /// released: nothing is sent).
    pub fn heartbeat_ask(&self) -> Option<SeatAsk> {
        (self.state == HoldState::Held).then(|| self.ask(SeatOp::Heartbeat))
    }

    /// The release to send, or `None` when already released. A gone seat is released too
    /// (the relay answers that it was not held; nothing is lost).
    pub fn release_ask(&self) -> Option<SeatAsk> {
        (self.state != HoldState::Released).then(|| self.ask(SeatOp::Release))
    }

    /// What the relay's `answer` to this hold's `op` does to it: a heartbeat's `Held` takes
    /// the seat's new life, `Gone` (or Polar's denial of the key) ends the hold, a release's
    /// answer releases it whatever it says. `Full` changes nothing. Returns the state after.
    pub fn absorb(&mut self, op: SeatOp, answer: &SeatAnswer) -> HoldState {
        match (op, answer) {
            (SeatOp::Release, _) => self.state = HoldState::Released,
            (_, _) if self.state == HoldState::Released => {}
            (SeatOp::Heartbeat, SeatAnswer::Held(seat)) if seat.id == self.seat.id => {
                self.seat = seat.clone();
                self.state = HoldState::Held;
            }
            (SeatOp::Heartbeat, SeatAnswer::Gone | SeatAnswer::Denied(_)) => {
                self.state = HoldState::Gone;
            }
            _ => {}
        }
        self.state
    }

    /// How often to heartbeat ([`Seat::heartbeat_every`]).
    pub fn heartbeat_every(&self) -> Duration {
        self.seat.heartbeat_every()
    }

    /// The seat as the relay last answered it.
    pub fn seat(&self) -> &Seat {
        &self.seat
    }

    /// Where the hold stands.
    pub fn state(&self) -> HoldState {
        self.state
    }

    /// The machine binding the seat was acquired with.
    pub fn machine(&self) -> &str {
        &self.machine
    }

    /// The key the seat is of.
    pub fn key(&self) -> &Key {
        &self.key
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn seat(id: &str, expires_in: u64) -> Seat {
        Seat {
            id: id.into(),
            ci: false,
            expires_at: 1_800_000_000,
            expires_in,
            in_use: 1,
            size: 1,
            lease: None,
        }
    }

    const ID: &str = "6a1f4b7e-3c2d-4e5f-8a9b-0c1d2e3f4a5b";

    #[test]
    fn a_hold_heartbeats_until_gone_and_releases_once() {
        let ask = SeatHold::acquire_ask(Key::new("K-1"), "m".into(), false);
        let mut hold = SeatHold::acquire(&ask, SeatAnswer::Held(seat(ID, 300)))
            .unwrap()
            .unwrap();
        assert_eq!(hold.heartbeat_every(), Duration::from_secs(100));
        let beat = hold.heartbeat_ask().unwrap();
        assert_eq!(
            (beat.op, beat.seat.as_deref()),
            (SeatOp::Heartbeat, Some(ID))
        );
        let mut longer = seat(ID, 300);
        longer.expires_at += 100;
        assert_eq!(
            hold.absorb(SeatOp::Heartbeat, &SeatAnswer::Held(longer.clone())),
            HoldState::Held
        );
        assert_eq!(hold.seat().expires_at, longer.expires_at);
        // Another seat's answer is not this seat's life.
        let mut other = seat("7a1f4b7e-3c2d-4e5f-8a9b-0c1d2e3f4a5b", 300);
        other.expires_at += 999;
        hold.absorb(SeatOp::Heartbeat, &SeatAnswer::Held(other));
        assert_eq!(hold.seat().expires_at, longer.expires_at);
        assert_eq!(
            hold.absorb(SeatOp::Heartbeat, &SeatAnswer::Gone),
            HoldState::Gone
        );
        assert!(hold.heartbeat_ask().is_none());
        assert_eq!(hold.release_ask().unwrap().op, SeatOp::Release);
        assert_eq!(
            hold.absorb(SeatOp::Release, &SeatAnswer::Released(false)),
            HoldState::Released
        );
        assert!(hold.release_ask().is_none());
        // Nothing after a release brings it back.
        hold.absorb(SeatOp::Heartbeat, &SeatAnswer::Held(seat(ID, 300)));
        assert_eq!(hold.state(), HoldState::Released);
    }

    #[test]
    fn an_acquisition_refused_is_handed_back() {
        let ask = SeatHold::acquire_ask(Key::new("K-1"), "m".into(), true);
        let full = SeatAnswer::Full {
            in_use: 1,
            size: 1,
            frees_at: Some(1),
            retry_after: Some(2),
        };
        assert_eq!(SeatHold::acquire(&ask, full.clone()).unwrap(), Err(full));
        assert!(SeatHold::acquire(&ask, SeatAnswer::Gone).is_err());
        let short = SeatHold::acquire(&ask, SeatAnswer::Held(seat(ID, 2)))
            .unwrap()
            .unwrap();
        assert_eq!(short.heartbeat_every(), Duration::from_secs(1));
    }
}
