//! The relay's own check of its set-up (issue #78), run while it serves: a host of the
//! sans-IO check ([`super::calls`], [`super::examine`]) whose calls the background machine
//! hands out one at a time, and whose last report `GET /healthz` reads.

use serde_json::{json, Value};

use super::{calls, examine, Answer, Call, Probe, Report, Setup};

/// The relay's own check of its set-up, run by the background machine at the start and every
/// [`crate::RelayConfig::check_setup_every`] seconds (crate::flow::background, on every host):
/// its calls one at a time, each from the budget's shared part; the last report kept for
/// `GET /healthz` (no call and no work per request: the answer reads what is kept).
pub(crate) struct Watch {
    setup: Setup,
    every_ms: u64,
    state: std::sync::Mutex<WatchState>,
}

#[derive(Default)]
struct WatchState {
    /// No run before this monotonic ms (0: at once).
    next_at: u64,
    /// The run under way: its calls not yet handed out, and when it began.
    run: Option<(Vec<Call>, u64)>,
    answers: Vec<(Probe, Result<Answer, String>)>,
    /// The last report, and when it was made (unix seconds).
    last: Option<(Report, i64)>,
}

/// How long a run waits for answers the host lost before it reports without them.
const RUN_PATIENCE_MS: u64 = 60_000;

impl Watch {
    /// The watch of `setup`, every `every_secs` seconds (0: none).
    pub(crate) fn new(setup: Setup, every_secs: u64) -> Option<Watch> {
        (every_secs > 0).then(|| Watch {
            setup,
            every_ms: every_secs.saturating_mul(1_000),
            state: std::sync::Mutex::new(WatchState::default()),
        })
    }

    /// The next call at `now`, or how long until one (`take` spends the budget's call:
    /// `Err(secs)` to wait). Not while `breaker_open`.
    pub(crate) fn next_call(
        &self,
        now: crate::clock::Now,
        breaker_open: bool,
        take: impl FnOnce() -> Result<(), u64>,
    ) -> Result<Call, u64> {
        let mut st = crate::locked::locked(&self.state);
        let at = now.monotonic_ms;
        if st.run.is_none() {
            if at < st.next_at {
                return Err(st.next_at - at);
            }
            let mut calls = calls(&self.setup);
            calls.reverse();
            st.run = Some((calls, at));
            st.answers.clear();
        }
        let (pending, began) = match &st.run {
            Some((pending, began)) => (pending.len(), *began),
            None => return Err(1_000),
        };
        if pending == 0 {
            // Every call handed out: the report once all are answered (or the host lost one).
            if at.saturating_sub(began) >= RUN_PATIENCE_MS {
                self.finish(&mut st, now);
                return Err(self.every_ms);
            }
            return Err(1_000);
        }
        if breaker_open {
            return Err(1_000);
        }
        if let Err(secs) = take() {
            return Err(secs.saturating_mul(1_000).max(1_000));
        }
        match st.run.as_mut().and_then(|(pending, _)| pending.pop()) {
            Some(call) => Ok(call),
            None => Err(1_000),
        }
    }

    /// Polar's answer to the call of `probe`, kept; the report made once the run's calls are
    /// all answered.
    pub(crate) fn answered(
        &self,
        probe: Probe,
        answer: crate::roster::ReadAnswer,
        now: crate::clock::Now,
    ) {
        let mut st = crate::locked::locked(&self.state);
        let answer = answer.map(|(status, _, body)| Answer {
            status,
            body,
            sandbox: false,
        });
        st.answers.push((probe, answer));
        let expected = calls(&self.setup).len();
        let done = st
            .run
            .as_ref()
            .is_some_and(|(pending, _)| pending.is_empty())
            && st.answers.len() >= expected;
        if done {
            self.finish(&mut st, now);
        }
    }

    fn finish(&self, st: &mut WatchState, now: crate::clock::Now) {
        let report = examine(&self.setup, &st.answers);
        if !report.findings.is_empty() {
            for f in &report.findings {
                log::warn!("relay: set-up: {f}");
            }
        }
        st.last = Some((report, now.unix_seconds));
        st.run = None;
        st.answers.clear();
        st.next_at = now.monotonic_ms.saturating_add(self.every_ms);
    }

    /// What `/healthz` says: `checked_at` (unix seconds, null before the first report),
    /// `every_seconds`, and the report's `findings`, `unchecked` and `environment`.
    pub(crate) fn reading(&self) -> Value {
        let st = crate::locked::locked(&self.state);
        let mut v = match &st.last {
            Some((report, at)) => {
                let mut v = report.to_json();
                if let Some(m) = v.as_object_mut() {
                    m.insert("checked_at".into(), json!(at));
                }
                v
            }
            None => json!({"checked_at": null, "findings": [], "unchecked": []}),
        };
        if let Some(m) = v.as_object_mut() {
            m.insert("every_seconds".into(), json!(self.every_ms / 1_000));
        }
        v
    }
}
