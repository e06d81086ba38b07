//! A client's buffered usage (issue #68 item 3): the reports the relay could not take kept in
//! the app's storage ([`UsageBacklog`]) and sent again, in order and with their ids, before a
//! new one ([`BufferedUsage`], one run of it a [`BufferedRun`]). Each send is
//! [`super::RecordUsage`]'s: this part keeps only what waits between runs.

use super::{
    number, send_again, spent, usage_request, waited, RecordUsage, UsageAnswer, UsageReport,
    UsageStep, VerifyUsage,
};
use crate::error::Error;
use crate::json::JsonOut;
use crate::key::Key;
use crate::proto::{HttpRequest, HttpResponse};
use crate::strict::Value;
use core::time::Duration;

/// The most reports a client's [`UsageBacklog`] keeps (past it, a report that cannot be sent
/// is answered as it came, not kept).
pub const BACKLOG_MAX: usize = 100;

/// The storage text's version line ([`UsageBacklog::write`]).
const BACKLOG_VERSION: u64 = 1;

/// One report waiting in a client's backlog: its key sealed ([`crate::keyseal`]: never in
/// plain text in the app's storage, useless on another install).
#[derive(Clone, PartialEq)]
struct Waiting {
    sealed_key: String,
    meter: String,
    units: f64,
    id: String,
}

/// A client's durable buffer of usage reports (issue #68 item 3): the reports the relay could
/// not be reached for (or asked to wait, or answered 5xx), kept in the app's storage as text
/// ([`UsageBacklog::write`]) and sent again with their ids, in order, by [`BufferedUsage`],
/// no sooner than the relay's `Retry-After` asked. The text of another version, or not this
/// text at all, reads as an empty backlog (a report sent again later counts once anyway).
#[derive(Clone, Default, PartialEq)]
pub struct UsageBacklog {
    waiting: Vec<Waiting>,
    /// Unix seconds before which nothing is sent (the relay's or Polar's `Retry-After`).
    hold_until: Option<i64>,
}

impl std::fmt::Debug for UsageBacklog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageBacklog")
            .field("waiting", &self.waiting.len())
            .field("hold_until", &self.hold_until)
            .finish()
    }
}

impl UsageBacklog {
    /// The backlog of the stored `text` (`None`: nothing stored).
    pub fn read(text: Option<&str>) -> UsageBacklog {
        let Some(v) = text.and_then(|t| crate::strict::parse(t.as_bytes()).ok()) else {
            return UsageBacklog::default();
        };
        if !matches!(v.get("v"), Some(Value::UInt(BACKLOG_VERSION))) {
            return UsageBacklog::default();
        }
        let hold_until = match v.get("hold_until") {
            Some(Value::UInt(n)) => i64::try_from(*n).ok(),
            Some(Value::Int(n)) => Some(*n),
            _ => None,
        };
        let waiting = match v.get("reports") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|r| {
                    Some(Waiting {
                        sealed_key: r.text_of("key")?.to_string(),
                        meter: r.text_of("meter")?.to_string(),
                        units: number(r, "units")?,
                        id: r.text_of("id")?.to_string(),
                    })
                })
                .take(BACKLOG_MAX)
                .collect(),
            _ => Vec::new(),
        };
        UsageBacklog {
            waiting,
            hold_until,
        }
    }

    /// The text to store.
    pub fn write(&self) -> String {
        let mut o = JsonOut::new();
        o.raw("{").key("hold_until").opt_int(self.hold_until);
        o.key("reports").raw("[");
        for (n, w) in self.waiting.iter().enumerate() {
            if n > 0 {
                o.raw(",");
            }
            o.raw("{")
                .key("id")
                .str(&w.id)
                .key("key")
                .str(&w.sealed_key)
                .key("meter")
                .str(&w.meter)
                .key("units")
                .float(w.units)
                .raw("}");
        }
        o.raw("]").key("v").uint(BACKLOG_VERSION).raw("}").done()
    }

    /// The reports waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether no report waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// The ids of the reports waiting, oldest first.
    pub fn ids(&self) -> Vec<&str> {
        self.waiting.iter().map(|w| w.id.as_str()).collect()
    }

    /// Unix seconds before which nothing is sent, when the relay asked to wait.
    pub fn hold_until(&self) -> Option<i64> {
        self.hold_until
    }

    /// Seconds left of the hold at `now` (`None`: not held).
    fn held(&self, now: i64) -> Option<u64> {
        self.hold_until
            .filter(|until| *until > now)
            .and_then(|until| u64::try_from(until - now).ok())
    }
}

/// What comes next for a report through a client's backlog ([`BufferedUsage`]): the steps
/// [`BufferedRun`] asks a shell for.
#[derive(Debug)]
enum BufferedStep {
    /// Send `request` after waiting `after`, then hand what came back to
    /// [`BufferedUsage::answer`].
    Send {
        /// The request (a waiting report's, or this call's).
        request: HttpRequest,
        /// How long to wait first.
        after: core::time::Duration,
    },
    /// Store `text` as the backlog (under the lock the shell holds for the whole run), then
    /// hand the outcome to [`BufferedUsage::saved`].
    Save(String),
    /// The end: this call's report's answer ([`UsageAnswer::Backlog`] when it now waits in
    /// the backlog; for a flush, a backlog while reports still wait, else recorded).
    Done(Result<UsageAnswer, Error>),
}

/// Which report the machine is sending.
#[derive(Debug)]
enum Sending {
    Waiting(RecordUsage),
    New(RecordUsage),
}

/// A usage report through a client's durable backlog (issue #68 item 3): the one order of
/// steps a client with storage (the Rust-on-wasm `AsyncLicensing`) drives as a machine of the
/// family ([`BufferedUsage::run`]), its shell doing only the IO (the storage's read under a
/// lock, then the waits, the sends and the write the machine asks for):
///
/// 1. Nothing is sent while the backlog is held (the relay's `Retry-After`): this call's
///    report joins the backlog, answered [`UsageAnswer::Backlog`] with the seconds left.
/// 2. The waiting reports first, oldest first, each through [`RecordUsage`] (its own id, its
///    sends again): a final answer (recorded, a duplicate, credits exhausted, a denial, a
///    refusal) takes it out of the backlog; one worth sending again later (the relay out of
///    reach, its 5xx, its backlog, a rate limit) stops the drain, holding it for the
///    `Retry-After` asked.
/// 3. Then this call's report, sent only when the drain went through: an answer worth
///    sending again later puts it in the backlog (at most [`BACKLOG_MAX`] reports; an id
///    already waiting is not added twice), answered [`UsageAnswer::Backlog`] ([`super::BACKLOG_CODE`]).
/// 4. The backlog, when it changed, is saved before the answer is given; a report that could
///    not be saved is answered with the storage's error.
#[derive(Debug)]
pub struct BufferedUsage {
    base_url: String,
    organization_id: String,
    seal: crate::keyseal::KeySeal,
    now: i64,
    backlog: UsageBacklog,
    changed: bool,
    new: Option<UsageReport>,
    /// This call's report went into the backlog.
    buffered_new: bool,
    /// The drain stopped: the relay cannot take reports now.
    stopped: bool,
    sending: Option<Sending>,
    answer: Option<Result<UsageAnswer, Error>>,
    /// Signed mode ([`BufferedUsage::with_relay_keys`]): the relay's keys and the run's
    /// nonce's randomness (each acknowledgement names the nonce and its own report).
    signed: Option<(crate::lease::RelayKeys, [u8; 16], Option<VerifyUsage>)>,
}

impl BufferedUsage {
    /// The run for `report` (`None`: a flush of the backlog alone) to the relay at `base_url`,
    /// over the backlog stored as `stored`, at unix seconds `now`; keys sealed with `seal`. A
    /// report with bad input is refused here (`invalid_input`): nothing sent, nothing kept.
    pub fn new(
        base_url: &str,
        organization_id: &str,
        seal: crate::keyseal::KeySeal,
        stored: Option<&str>,
        report: Option<UsageReport>,
        now: i64,
    ) -> Result<BufferedUsage, Error> {
        if let Some(r) = &report {
            usage_request(base_url, organization_id, r)?;
        }
        Ok(BufferedUsage {
            base_url: base_url.to_string(),
            organization_id: organization_id.to_string(),
            seal,
            now,
            backlog: UsageBacklog::read(stored),
            changed: false,
            new: report,
            buffered_new: false,
            stopped: false,
            sending: None,
            answer: None,
            signed: None,
        })
    }

    /// This run in signed mode (issue #76, [`RecordUsage::signed`]): every report's answer
    /// believed only from the relay's acknowledgement that verifies under `keys` and names
    /// the nonce of `entropy` (16 random bytes, one nonce for the run: each acknowledgement
    /// also names its report's id). Empty `keys`: unsigned, as without this call.
    pub fn with_relay_keys(mut self, keys: crate::lease::RelayKeys, entropy: [u8; 16]) -> Self {
        self.signed =
            (!keys.is_empty()).then_some((keys, entropy, Some(crate::lease::verify_usage)));
        self
    }

    /// The machine of one report, signed when this run is.
    fn machine(&self, report: &UsageReport) -> Result<RecordUsage, Error> {
        match &self.signed {
            Some(signed) => RecordUsage::signed_with(
                &self.base_url,
                &self.organization_id,
                report,
                signed.clone(),
            ),
            None => RecordUsage::new(&self.base_url, &self.organization_id, report),
        }
    }

    /// The backlog as it stands.
    pub fn backlog(&self) -> &UsageBacklog {
        &self.backlog
    }

    /// The first step.
    fn start(&mut self) -> BufferedStep {
        if let Some(left) = self.backlog.held(self.now) {
            self.stopped = true;
            return self.buffer_new(Some(left));
        }
        self.next()
    }

    /// Puts this call's report (if any, not sent) in the backlog and ends.
    fn buffer_new(&mut self, retry_after: Option<u64>) -> BufferedStep {
        match self.new.take() {
            Some(report) => {
                let result = Ok(UsageAnswer::Backlog { retry_after });
                self.keep(report, result)
            }
            None => self.finish(),
        }
    }

    /// Keeps `report` in the backlog (answered [`UsageAnswer::Backlog`]), or, full or its key
    /// not sealable, answers `otherwise` as it came.
    fn keep(&mut self, report: UsageReport, otherwise: Result<UsageAnswer, Error>) -> BufferedStep {
        let retry_after = waited(&otherwise).or_else(|| self.backlog.held(self.now));
        if self.backlog.waiting.iter().any(|w| w.id == report.id) {
            self.buffered_new = true;
            self.answer = Some(Ok(UsageAnswer::Backlog { retry_after }));
            return self.finish();
        }
        let sealed = self
            .seal
            .seal(&report.key)
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        match sealed {
            Some(sealed_key) if self.backlog.waiting.len() < BACKLOG_MAX => {
                self.backlog.waiting.push(Waiting {
                    sealed_key,
                    meter: report.meter,
                    units: report.units,
                    id: report.id,
                });
                self.changed = true;
                self.buffered_new = true;
                self.answer = Some(Ok(UsageAnswer::Backlog { retry_after }));
            }
            _ => self.answer = Some(otherwise),
        }
        self.finish()
    }

    fn next(&mut self) -> BufferedStep {
        // The waiting reports first, oldest first.
        while !self.stopped {
            let Some(w) = self.backlog.waiting.first() else {
                break;
            };
            let machine = self
                .seal
                .open(w.sealed_key.as_bytes())
                .ok()
                .map(|key| UsageReport {
                    key,
                    meter: w.meter.clone(),
                    units: w.units,
                    id: w.id.clone(),
                })
                .and_then(|r| self.machine(&r).ok());
            match machine {
                Some(mut m) => {
                    let step = m.start();
                    self.sending = Some(Sending::Waiting(m));
                    return self.step(step);
                }
                // Sealed for another install, or no longer valid input: never sendable.
                None => {
                    self.backlog.waiting.remove(0);
                    self.changed = true;
                }
            }
        }
        if self.stopped {
            let left = self.backlog.held(self.now);
            return self.buffer_new(left);
        }
        match self.new.take() {
            Some(report) => match self.machine(&report) {
                Ok(mut m) => {
                    let step = m.start();
                    self.new = Some(report);
                    self.sending = Some(Sending::New(m));
                    self.step(step)
                }
                Err(e) => {
                    self.answer = Some(Err(e));
                    self.finish()
                }
            },
            None => self.finish(),
        }
    }

    fn step(&mut self, step: UsageStep) -> BufferedStep {
        match step {
            UsageStep::Send { request, after } => BufferedStep::Send { request, after },
            UsageStep::Done(result) => self.done(result),
        }
    }

    /// Whether a report that ended in `result` waits in the backlog for a later send: what
    /// [`send_again`] says, and a rate limit (sent after its `Retry-After`).
    fn worth_keeping(result: &Result<UsageAnswer, Error>) -> bool {
        send_again(result) || matches!(result, Err(Error::RateLimited { .. }))
    }

    fn done(&mut self, result: Result<UsageAnswer, Error>) -> BufferedStep {
        let keep = Self::worth_keeping(&result);
        if keep {
            if let Some(secs) = waited(&result) {
                let until = self
                    .now
                    .saturating_add(i64::try_from(secs).unwrap_or(i64::MAX));
                self.backlog.hold_until = Some(until);
                self.changed = true;
            }
        } else if self.backlog.hold_until.take().is_some() {
            self.changed = true;
        }
        match self.sending.take() {
            Some(Sending::Waiting(_)) => {
                if keep {
                    self.stopped = true;
                } else {
                    self.backlog.waiting.remove(0);
                    self.changed = true;
                }
                self.next()
            }
            Some(Sending::New(_)) => match self.new.take() {
                Some(report) if keep => self.keep(report, result),
                _ => {
                    self.answer = Some(result);
                    self.finish()
                }
            },
            None => self.finish(),
        }
    }

    /// What the last send brought.
    fn answer(&mut self, sent: Result<HttpResponse, Error>) -> BufferedStep {
        let step = match &mut self.sending {
            Some(Sending::Waiting(m) | Sending::New(m)) => m.answer(sent),
            None => return self.finish(),
        };
        self.step(step)
    }

    fn finish(&mut self) -> BufferedStep {
        if self.changed {
            self.changed = false;
            return BufferedStep::Save(self.backlog.write());
        }
        BufferedStep::Done(self.outcome())
    }

    /// The answer of the run: this call's report's, or for a flush whether reports wait.
    fn outcome(&mut self) -> Result<UsageAnswer, Error> {
        match self.answer.take() {
            Some(answer) => answer,
            None if self.backlog.is_empty() => Ok(UsageAnswer::Recorded {
                duplicate: false,
                balance: None,
                signed: self.signed.is_some(),
            }),
            None => Ok(UsageAnswer::Backlog {
                retry_after: self.backlog.held(self.now),
            }),
        }
    }

    /// The storage's outcome of the last [`BufferedStep::Save`]: a report this call put in
    /// the backlog that could not be saved is answered with the storage's error.
    fn saved(&mut self, result: Result<(), Error>) -> BufferedStep {
        match result {
            Err(e) if self.buffered_new => BufferedStep::Done(Err(e)),
            _ => BufferedStep::Done(self.outcome()),
        }
    }
}

impl BufferedUsage {
    /// This run as a machine of the client's family ([`BufferedRun`], a
    /// [`crate::flow::Standalone`]): its waits, sends and the backlog's save to the store entry
    /// `backlog` as steps, so a shell drives it with its one loop (the Rust-on-wasm
    /// `AsyncLicensing`'s) and keeps no schedule of its own.
    pub fn run(mut self, backlog: &str) -> BufferedRun {
        let key = self
            .new
            .as_ref()
            .map_or_else(|| Key::new(""), |r| r.key.clone());
        let step = self.start();
        BufferedRun {
            usage: self,
            backlog: backlog.to_string(),
            key,
            step,
        }
    }
}

/// A [`BufferedUsage`] run as steps ([`BufferedUsage::run`]): a send's wait is
/// [`crate::flow::Want::Wait`], a send [`crate::flow::Want::Send`], the backlog's save a
/// durable [`crate::flow::Want::Write`] of the store entry named at the start; then
/// [`BufferedRun::outcome`].
#[derive(Debug)]
pub struct BufferedRun {
    usage: BufferedUsage,
    backlog: String,
    /// The report's key (none for a flush): the shell's log lines'.
    key: Key,
    step: BufferedStep,
}

impl BufferedRun {
    /// The backlog as it stands (after the run: the reports left waiting).
    pub fn backlog(&self) -> &UsageBacklog {
        self.usage.backlog()
    }

    /// The run's answer once done (it wants [`crate::flow::Want::Done`]); taken once.
    pub fn outcome(&mut self) -> Result<UsageAnswer, Error> {
        match &mut self.step {
            BufferedStep::Done(result) => std::mem::replace(result, Err(spent())),
            _ => Err(Error::invalid("usage", "the report is not done yet")),
        }
    }
}

impl crate::flow::Standalone for BufferedRun {
    fn want(&self) -> crate::flow::Want<'_> {
        use crate::flow::Want;
        match &self.step {
            BufferedStep::Send { after, .. } if !after.is_zero() => Want::Wait(*after),
            BufferedStep::Send { request, .. } => Want::Send(request),
            BufferedStep::Save(text) => Want::Write {
                name: &self.backlog,
                bytes: text.as_bytes(),
                keep: crate::slot::Keep::Durable,
                compare: None,
            },
            BufferedStep::Done(_) => Want::Done,
        }
    }

    fn give(&mut self, given: crate::flow::Given) {
        use crate::flow::Given;
        match (&mut self.step, given) {
            (BufferedStep::Send { after, .. }, Given::Waited) => *after = Duration::ZERO,
            (BufferedStep::Send { after, .. }, Given::Response(sent)) if after.is_zero() => {
                self.step = self.usage.answer(sent);
            }
            (BufferedStep::Save(_), Given::Written(written)) => {
                self.step = self.usage.saved(written);
            }
            // Nothing else is asked of a shell.
            _ => {}
        }
    }

    fn key(&self) -> &Key {
        &self.key
    }
}
