//! A seat's requests and its hold as the client's timed machines (issue #77, see
//! [`crate::flow::timed`]): [`SeatCall`] is one seat request (an acquisition, a heartbeat, a
//! release, a borrowing) asked again after a `429`'s wait, and [`SeatBeat`] is a held seat's
//! heartbeat schedule ([`SeatHold`]'s: every third of its life, sooner after a failure,
//! never before a `429`'s `Retry-After`, nothing at or past the lease's end) as steps. Every
//! face drives them with its one loop: it sends what they ask, waits as long as they say and
//! reads its clock when they ask; none keeps a schedule or a retry of its own.

use core::time::Duration;

use crate::error::Error;
use crate::flow::{Given, Patience, Standalone, Want};
use crate::key::Key;
use crate::proto::HttpRequest;
use crate::seat::{read_seat_answer, SeatAnswer, SeatAsk, SeatOp};
use crate::seat_hold::{HoldPoll, HoldState, SeatHold};

/// One seat request to the seller's relay, asked again after each `429`'s `Retry-After`
/// while the waits fit [`crate::flow::timed::RETRY_BUDGET`]; then its answer
/// ([`SeatCall::outcome`]).
#[derive(Debug, Clone)]
pub struct SeatCall {
    op: SeatOp,
    key: Key,
    request: Option<HttpRequest>,
    waiting: Option<Duration>,
    outcome: Option<Result<SeatAnswer, Error>>,
    patience: Patience,
    /// Whether a `429` is waited out here (a hold's heartbeat is retried by its hold).
    patient: bool,
}

impl SeatCall {
    /// `ask` to the relay at `base_url` for `organization_id` ([`crate::seat::seat_request`]);
    /// a bad ask ends at once with its error, unsent.
    pub fn new(base_url: &str, organization_id: &str, ask: &SeatAsk) -> SeatCall {
        let made = crate::seat::seat_request(base_url, organization_id, ask);
        SeatCall::of(ask, made)
    }

    /// `ask` sent once, its `429` answered as it came: a held seat's heartbeat, which its
    /// hold asks again on its own schedule (after the `Retry-After`, never past the lease's
    /// end: [`SeatHold::heartbeat_answered`]).
    pub fn once(base_url: &str, organization_id: &str, ask: &SeatAsk) -> SeatCall {
        SeatCall {
            patient: false,
            ..SeatCall::new(base_url, organization_id, ask)
        }
    }

    /// The borrowing of a seat for `days` days ([`crate::seat::borrow_request`]).
    pub fn borrow(base_url: &str, organization_id: &str, ask: &SeatAsk, days: u32) -> SeatCall {
        let made = crate::seat::borrow_request(base_url, organization_id, ask, days);
        SeatCall::of(ask, made)
    }

    fn of(ask: &SeatAsk, made: Result<HttpRequest, Error>) -> SeatCall {
        let (request, outcome) = match made {
            Ok(request) => (Some(request), None),
            Err(e) => (None, Some(Err(e))),
        };
        SeatCall {
            op: ask.op,
            key: ask.key.clone(),
            request,
            waiting: None,
            outcome,
            patience: Patience::default(),
            patient: true,
        }
    }

    /// The wait the machine asks for now when the relay limited the last try (a face may tell
    /// its user it is waiting); `None` otherwise.
    pub fn limited(&self) -> Option<Duration> {
        self.waiting
    }

    /// The relay's answer once done (or why there was none); taken once.
    pub fn outcome(&mut self) -> Result<SeatAnswer, Error> {
        self.outcome.take().unwrap_or_else(|| {
            Err(Error::invalid(
                "seat",
                "the request is not done, or its answer was taken already",
            ))
        })
    }
}

impl Standalone for SeatCall {
    fn want(&self) -> Want<'_> {
        match (&self.waiting, &self.request) {
            (Some(wait), _) => Want::Wait(*wait),
            (None, Some(request)) => Want::Send(request),
            (None, None) => Want::Done,
        }
    }

    fn give(&mut self, given: Given) {
        match given {
            Given::Waited => self.waiting = None,
            Given::Response(sent) if self.waiting.is_none() && self.request.is_some() => {
                let answer = sent.and_then(|resp| read_seat_answer(self.op, &resp));
                if let Err(e) = &answer {
                    if self.patient && e.reason() == crate::reason::Reason::RateLimited {
                        self.waiting = self.patience.wait_for(e.retry_after());
                        if self.waiting.is_some() {
                            return;
                        }
                    }
                }
                self.request = None;
                self.outcome = Some(answer);
            }
            _ => {}
        }
    }

    fn key(&self) -> &Key {
        &self.key
    }
}

/// What the last heartbeat of a [`SeatBeat`] got ([`SeatBeat::take_beat`]): the relay's
/// answer (or why there was none) and what [`SeatHold::heartbeat_answered`] made of it.
#[derive(Debug, Clone)]
pub struct Beat {
    /// The relay's answer.
    pub answer: Result<SeatAnswer, Error>,
    /// The hold after it: `Ok(Held)` renewed, `Ok(Gone)` the relay freed it or Polar denied
    /// the key; `Err` the heartbeat failed (asked again later while the lease runs).
    pub state: Result<HoldState, Error>,
}

#[derive(Debug, Clone)]
enum Phase {
    /// The clock is wanted to poll the hold.
    Poll,
    /// The heartbeat is out.
    Send(HttpRequest),
    /// The heartbeat's answer came; the clock is wanted to take it.
    Answered(Result<SeatAnswer, Error>),
    /// Nothing to do before this long.
    Wait(Duration),
    /// The hold ended (gone, lost or released): done.
    Ended,
}

/// A held seat's heartbeats until the hold ends ([`HoldState::Gone`], [`HoldState::Lost`] at
/// the lease's end, and the grace, with no renewal): the [`SeatHold`]'s schedule as steps.
/// A shell stops driving it (its wait answered no more) when the app gives the seat back,
/// then sends [`SeatHold::release_ask`] through a [`SeatCall`].
#[derive(Debug, Clone)]
pub struct SeatBeat {
    hold: SeatHold,
    base_url: String,
    phase: Phase,
    beat: Option<Beat>,
}

impl SeatBeat {
    /// The heartbeats of `hold` to the relay at `base_url`.
    pub fn new(hold: SeatHold, base_url: &str) -> SeatBeat {
        SeatBeat {
            hold,
            base_url: base_url.to_string(),
            phase: Phase::Poll,
            beat: None,
        }
    }

    /// The hold as it stands.
    pub fn hold(&self) -> &SeatHold {
        &self.hold
    }

    /// The hold, to release it.
    pub fn hold_mut(&mut self) -> &mut SeatHold {
        &mut self.hold
    }

    /// What the last heartbeat got, once (a face tells its user, or stops what the seat
    /// licensed when the relay says it is gone).
    pub fn take_beat(&mut self) -> Option<Beat> {
        self.beat.take()
    }

    fn poll(&mut self, now: u64) {
        self.phase = match self.hold.poll(now) {
            HoldPoll::Send(ask) => {
                let org = self.hold.terms().organization_id();
                match crate::seat::seat_request(&self.base_url, org, &ask) {
                    Ok(request) => Phase::Send(request),
                    Err(e) => Phase::Answered(Err(e)),
                }
            }
            HoldPoll::Wait(wait) => Phase::Wait(wait),
            HoldPoll::Ended(_) => Phase::Ended,
        };
    }
}

impl Standalone for SeatBeat {
    fn want(&self) -> Want<'_> {
        match &self.phase {
            Phase::Poll | Phase::Answered(_) => Want::Clock,
            Phase::Send(request) => Want::Send(request),
            Phase::Wait(wait) => Want::Wait(*wait),
            Phase::Ended => Want::Done,
        }
    }

    fn give(&mut self, given: Given) {
        let phase = std::mem::replace(&mut self.phase, Phase::Poll);
        self.phase = match (phase, given) {
            (Phase::Poll, Given::Clock(now)) => return self.poll(now),
            (Phase::Answered(answer), Given::Clock(now)) => {
                let state = self.hold.heartbeat_answered(now, &answer);
                self.beat = Some(Beat { answer, state });
                return self.poll(now);
            }
            (Phase::Send(_), Given::Response(sent)) => {
                Phase::Answered(sent.and_then(|resp| read_seat_answer(SeatOp::Heartbeat, &resp)))
            }
            (Phase::Wait(_), Given::Waited) => Phase::Poll,
            // Anything else changes nothing.
            (phase, _) => phase,
        };
    }

    fn key(&self) -> &Key {
        self.hold.key()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::proto::HttpResponse;
    use crate::seat_hold::tests::{ms, rig};

    const ORG: &str = "d2fcbff8-108b-411e-bf2b-6383e0a8802d";
    const BASE: &str = "http://127.0.0.1:9";

    /// A hold of a seat of 300 s acquired at the rig's now (ms).
    fn hold() -> (SeatHold, u64) {
        let r = rig();
        (r.hold(), ms(r.now))
    }

    fn limited(secs: u64) -> HttpResponse {
        let mut r = HttpResponse::new(429, &br#"{"error":"TooManyRequests","detail":"slow"}"#[..]);
        r.headers.push(("retry-after".into(), secs.to_string()));
        r
    }

    fn offline() -> Result<HttpResponse, Error> {
        Err(Error::Offline {
            timeout: false,
            detail: "connection refused".into(),
        })
    }

    /// What a shell did, driving `m` over a fake clock from `now` with `answer` for every
    /// send: each wait asked, and each send's time (ms).
    fn drive<M: Standalone>(
        m: &mut M,
        mut now: u64,
        mut answer: impl FnMut(u64) -> Result<HttpResponse, Error>,
    ) -> (Vec<Duration>, Vec<u64>) {
        let (mut waits, mut sends) = (Vec::new(), Vec::new());
        for _ in 0..10_000 {
            let given = match m.want() {
                Want::Wait(wait) => {
                    waits.push(wait);
                    now += u64::try_from(wait.as_millis()).unwrap();
                    Given::Waited
                }
                Want::Clock => Given::Clock(now),
                Want::Send(_) => {
                    sends.push(now);
                    Given::Response(answer(now))
                }
                Want::Done => return (waits, sends),
                _ => panic!("a timed machine asks no store"),
            };
            m.give(given);
        }
        panic!("a machine that never ends");
    }

    /// The schedule is the machine's: the first heartbeat a third of the life after the
    /// acquisition; with the relay out of reach, retries after 1 s, 2 s, 4 s, … while the
    /// lease runs, and nothing sent at or past its end, where the hold is lost and the
    /// machine done.
    #[test]
    fn the_beat_waits_a_third_of_the_life_then_backs_off_and_sends_nothing_past_the_end() {
        let (hold, at) = hold();
        let end = hold.ends_at_ms();
        let mut beat = SeatBeat::new(hold, BASE);
        let (waits, sends) = drive(&mut beat, at, |_| offline());
        assert!(sends.iter().all(|t| *t < end), "nothing sent past the end");
        assert_eq!(waits[0], Duration::from_secs(100), "a third of 300 s");
        assert_eq!(sends[0], at + 100_000);
        assert_eq!(
            &waits[1..5],
            &[1, 2, 4, 8].map(Duration::from_secs),
            "backoff after each failure"
        );
        assert_eq!(beat.hold().state(), HoldState::Lost);
        assert!(beat.take_beat().is_some_and(|b| b.state.is_err()));
    }

    /// A heartbeat refused `429` with `Retry-After: 40` is not asked again for 40 s (longer
    /// than the backoff's 1 s).
    #[test]
    fn the_beat_honours_a_429s_retry_after() {
        let (hold, at) = hold();
        let mut beat = SeatBeat::new(hold, BASE);
        let mut first = true;
        let (waits, sends) = drive(&mut beat, at, |_| {
            if std::mem::take(&mut first) {
                Ok(limited(40))
            } else {
                offline()
            }
        });
        assert_eq!(waits[1], Duration::from_secs(40), "{waits:?}");
        assert_eq!(sends[1] - sends[0], 40_000);
    }

    /// A seat request refused `429` is sent again after its wait (here 2 s, then 3 s), the
    /// same bytes; a wait past the budget answers the `429` as it came.
    #[test]
    fn a_seat_call_waits_out_429s_within_the_budget() {
        let ask = SeatHold::acquire_ask(crate::Key::new("K-1"), "m".into(), false);
        let mut call = SeatCall::new(BASE, ORG, &ask);
        let mut n = 0;
        let (waits, sends) = drive(&mut call, 0, |_| {
            n += 1;
            match n {
                1 => Ok(limited(2)),
                2 => Ok(limited(3)),
                _ => Ok(HttpResponse::new(404, &br#"{"reason":"seat_gone"}"#[..])),
            }
        });
        assert_eq!(waits, [2, 3].map(Duration::from_secs));
        assert_eq!(sends.len(), 3);
        assert_eq!(call.outcome().unwrap(), SeatAnswer::Gone);

        let mut call = SeatCall::new(BASE, ORG, &ask);
        let (waits, _) = drive(&mut call, 0, |_| Ok(limited(31)));
        assert!(waits.is_empty(), "past the budget: not waited");
        let e = call.outcome().unwrap_err();
        assert_eq!(e.reason(), crate::reason::Reason::RateLimited);
        assert_eq!(e.retry_after(), Some(31));

        // A hold's heartbeat: once, its hold retries it.
        let mut call = SeatCall::once(BASE, ORG, &ask);
        let (waits, sends) = drive(&mut call, 0, |_| Ok(limited(2)));
        assert!(waits.is_empty() && sends.len() == 1);
        assert_eq!(call.outcome().unwrap_err().retry_after(), Some(2));
    }
}
