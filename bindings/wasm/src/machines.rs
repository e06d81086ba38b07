//! The check, validate, activate and deactivate, as the core's machines ([`Check`] and
//! [`Update`], issue #44) kept in a handle table: `license.js` starts one (`start`: its id and
//! what it wants first), does that IO and gives back what happened (`give`: JSON, and a
//! response's body as bytes; it answers what the machine wants next, as `want` does), until it
//! is done. A check starts with the slot the host has just read (`start('check', …)` with the
//! texts read, [`Engine::check`]): a cached answer is that one call. The order of the steps is
//! the machine's, the same as the native and Rust-on-wasm clients'; the JS only does the IO
//! (storage, the locks, the mark, `fetch`, the host's Ed25519), with one drive loop for every
//! operation.
//!
//! `want` answers one of:
//!
//! * `{"read": [record, ledger, clock]}`: the storage names to read (the ledger before the
//!   record; a clock note that cannot be read is none);
//! * `{"lock": name}`, `{"unlock": true}`: the slot's lock;
//! * `{"mark": name}`: try to take the mark that this check asks Polar (not waiting); with
//!   `"pending": answer` for a check in the background (the answer to give at once);
//! * `{"write": [name, text, keep?]}` (`keep`: `revertible` or `volatile`, else durable), with
//!   `"compare": [ledger, text]` for the slot's record or ledger: stored only while the entry
//!   `ledger` still holds `text` (`null`: nothing), else nothing is stored and the answer is
//!   `{"late": true}` (the machine's compare-and-set: another writer's newer ledger stays); or
//!   `{"remove": name}`;
//! * `{"send": {"url", "headers", "body"}}`;
//! * `{"verify": [[id, public key, message, signature]…]}` (hex): lease signatures for the host
//!   (signed mode), answered with `verified` and then `{"verified": true}`;
//! * `{"done": answer, …}`: the answer (see the engine's module doc) and, for a check,
//!   `"refreshed": bool` and `"relaySource"`; for an activate, `"cacheError": detail` when the
//!   record could not learn it; for a deactivate, `"forgetKey": true` when it freed the
//!   remembered activation. The machine is gone from the table.
//!
//! `give` takes `{"locked": true}` or `{"locked": "why not"}`, `{"unlocked": true}`,
//! `{"marked": bool}`, `{"read": [record, ledger, clock]}` (texts or `null`) or
//! `{"read": "why not"}`, `{"written": true}` or `{"written": "why not"}`, `{"late": true}`,
//! `{"removed": true}`,
//! `{"response": {"status", "headers": [[name, value]…]}}` with the body as bytes, or
//! `{"response": {"fail": 1 (connect), 2 (timeout) or 3 (bad body), "detail"}}`, and
//! `{"verified": true}`.

use crate::bindings::deactivate_options;
use crate::engine::{
    denial_json, error_json, lease_json, request_json, trial_json, verify_json, Engine,
};
use crate::runs::{Again, Flow, Kept, Run};
use polar_license::answers::SchemaLicense;
use polar_license::error::{Error, Verdict};
use polar_license::flow::check::Check;
use polar_license::flow::heal::Heal;
use polar_license::flow::update::Update;
use polar_license::flow::{Ctx, Given, Slot, Stored, Want};
use polar_license::grace::{CheckOutcome, LeaseWindow};
use polar_license::json::{JsonIn, JsonOut as Json, Num};
use polar_license::key::Key;
use polar_license::portal::ListDevices;
use polar_license::strict::{self, Value};
use polar_license_wasm_steps::{self as steps, name};
use std::cell::Cell;
use std::sync::Arc;

/// The string member `name` of `o`, if it has one.
fn member(o: &Value, name: &str) -> Option<String> {
    o.member(name).and_then(|v| v.string())
}

/// The number member `name` of `o` (whole: a fraction is cut), `0` for none.
fn number(o: &Value, name: &str) -> i64 {
    match o.member(name).and_then(|v| v.number()) {
        Some(Num::Int(n)) => n,
        Some(Num::Float(x)) => x as i64,
        None => 0,
    }
}

impl Engine {
    /// What every check of this engine is given.
    pub(crate) fn ctx(&self) -> Ctx<'_, SchemaLicense> {
        Ctx {
            api: &self.api,
            policy: &self.policy,
            relay_keys: &self.relay_keys,
            lease_memo: &self.lease_memo,
            ed25519: &self.ed25519,
            memo: &self.memo,
            machine: self.machine.as_deref(),
            bound: true,
            require_activation: self.require_activation,
            // The host's randomness, given with each run (`start`'s `random`).
            random: Some(random),
            // A read's clock is given with the read (`advance`).
            clock: None,
        }
    }

    /// `start(op, key, run, options)`: a `check`, `validate`, `activate` or `deactivate` of
    /// `key`: its id and what it wants first, `{"id", …want}` (see [`Engine::want`]), or at once
    /// `{"done": error}` for options the engine refuses. `run` is JSON:
    /// `{"secret": install secret (hex), "cache": why the storage cannot be used, "now": unix
    /// seconds, "at": a monotonic clock's milliseconds, "feature": name, "background": bool}`;
    /// `options` the call's options as JSON text (validate, activate, deactivate).
    #[inline(never)]
    pub fn start(&self, op: &str, key: String, run: &str, options: &str) -> String {
        let o = strict::parse(run.as_bytes()).unwrap_or(Value::Null);
        let key = Key::new(key);
        let slot = match member(&o, "cache") {
            Some(detail) => Err(Error::Cache { detail }),
            None => Ok(Arc::new(
                self.sealed(&key, &member(&o, "secret").unwrap_or_default()),
            )),
        };
        match self.launch(op, key, &o, slot, options, None) {
            Ok(id) => self.first(&id),
            Err(done) => done,
        }
    }

    /// `start('check', key, run, record, ledger, clock)`: a check started with its slot as the
    /// host has just read it (the ledger first, without the lock), so that a cached answer is
    /// this one call: the id and what it wants next, as [`Engine::start`] answers (`{"done": …}`
    /// alone when the cache answered). `run` as `start`'s (`"cache": why` for a storage that
    /// cannot be used: nothing was read), with `"same": true` when the three texts read are
    /// those handed to the last `check` (then none are handed: the engine kept them, and the
    /// opened record with them), or `"unread": why` when they could not be read. The texts are
    /// the stored texts themselves (`undefined` for none), never JSON around them. Without the
    /// bytes it needs (`same` for another key or secret than the one it kept) the machine wants
    /// the read, as after `start`.
    #[inline(never)]
    pub fn check(
        &self,
        key: String,
        run: &str,
        record: Option<String>,
        ledger: Option<String>,
        clock: Option<String>,
    ) -> String {
        let o = strict::parse(run.as_bytes()).unwrap_or(Value::Null);
        let key = Key::new(key);
        let secret = member(&o, "secret").unwrap_or_default();
        let mut kept = self.kept.borrow_mut();
        let known = kept.as_ref().filter(|k| k.is(&key, &secret));
        let slot = match (member(&o, "cache"), known) {
            (Some(detail), _) => Err(Error::Cache { detail }),
            (None, Some(k)) => Ok(Arc::clone(&k.slot)),
            (None, None) => Ok(Arc::new(self.sealed(&key, &secret))),
        };
        let again = o.member("same").and_then(|v| v.boolean()) == Some(true);
        let (now, at) = (
            number(&o, "now"),
            u64::try_from(number(&o, "at")).unwrap_or(0),
        );
        let feature = member(&o, "feature");
        let plain = o.member("background").and_then(|b| b.boolean()) != Some(true);
        // The same check of the same bytes that the machine answered at once: its answer.
        if let (true, true, Some(k)) = (again, plain, known) {
            if let Some(a) = k
                .again
                .as_ref()
                .filter(|a| a.now == now && a.feature == feature)
            {
                if !a.recorded || self.memo.answered_again(&k.slot, now, at, &k.stored) {
                    return a.text.clone();
                }
            }
        }
        let given = match (member(&o, "unread"), &slot) {
            (_, Err(_)) => None,
            (Some(detail), _) => Some(Given::Read(Err(Error::Cache { detail }))),
            (None, Ok(_)) if again => known.map(|k| Given::Read(Ok(k.stored.clone()))),
            (None, Ok(slot)) => {
                let stored = Stored {
                    record: record.map(String::into_bytes),
                    ledger: ledger.map(String::into_bytes),
                    clock: clock.map(String::into_bytes),
                };
                *kept = Some(Kept {
                    key: key.clone(),
                    secret,
                    slot: Arc::clone(slot),
                    stored: stored.clone(),
                    again: None,
                });
                Some(Given::Read(Ok(stored)))
            }
        };
        drop(kept);
        let read = matches!(given, Some(Given::Read(Ok(_))));
        let id = match self.launch("check", key, &o, slot, "", given) {
            Ok(id) => id,
            Err(done) => return done,
        };
        let out = self.first(&id);
        if let (true, true, true, Some(k)) = (
            read,
            plain,
            out.starts_with("{\"done\":"),
            self.kept.borrow_mut().as_mut(),
        ) {
            k.again = Some(Again {
                now,
                feature,
                recorded: self.memo.answered_again(&k.slot, now, at, &k.stored),
                text: out.clone(),
            });
        }
        out
    }

    /// A machine for `op` started in the table (given `given` first, if any): its id, or at
    /// once `{"done": error}` for options the engine refuses.
    fn launch(
        &self,
        op: &str,
        key: Key,
        o: &Value,
        slot: Result<Arc<Slot>, Error>,
        options: &str,
        given: Option<Given>,
    ) -> Result<String, String> {
        let number = |name: &str| number(o, name);
        let now = number("now");
        let ctx = self.ctx();
        let bytes = member(o, "random").and_then(|hex| random_bytes(&hex));
        RANDOM.with(|r| r.set(bytes));
        let flow = match op {
            "validate" => {
                let req = self.validate_request(key.expose().to_string(), options);
                Ok(Flow::Validate(Update::validate(
                    &ctx,
                    req,
                    |_| slot.clone(),
                    now,
                )))
            }
            // Bound to this machine and checked by the machine, before the slot is used; at the
            // limit, the heal lists the key's activations through the relay and adopts this
            // machine's own (issue #80), the same machine the native shell drives.
            "activate" => {
                let req = self.activate_request(key.expose().to_string(), options);
                let update = Update::activation(&ctx, &req, |_| slot.clone(), now);
                let listing = self
                    .relay
                    .clone()
                    .map(|portal| ListDevices::via_relay(portal, key.clone(), None));
                let slots = slot.clone();
                let slots = Box::new(move |_: &Key| slots.clone());
                Ok(Flow::Activate(Box::new(Heal::new(
                    &ctx, &req, update, listing, slots, now,
                ))))
            }
            "deactivate" => Ok(Flow::Deactivate(Update::deactivate(
                key.clone(),
                deactivate_options(options).activation_id,
                slot.clone(),
                now,
            ))),
            _ => {
                let at = u64::try_from(number("at")).unwrap_or(0);
                // Perpetual fallback: the build's release date, when the app stated one.
                let check = Check::new(&ctx, key.clone(), None, slot.clone(), now, at)
                    .released(&ctx, self.released);
                Ok(Flow::Check(check.unlocked_read()))
            }
        };
        RANDOM.with(|r| r.set(None));
        let flow = flow.map_err(|e| ["{\"done\":", &error_json(&e), "}"].concat())?;
        let mut run = Run {
            random: bytes,
            flow,
            feature: member(o, "feature"),
            background: o.member("background").and_then(|b| b.boolean()) == Some(true),
            now,
        };
        if let Some(given) = given {
            self.advance(&mut run, given, None);
        }
        let id = self.runs.borrow_mut().start(run);
        Ok(polar_license::decimal::digits(u64::from(id)))
    }

    /// `{"id": id, …what the machine wants}`: a start's answer (`{"done": …}` alone when it is
    /// done already: the same answer is the same text).
    fn first(&self, id: &str) -> String {
        let want = self.want(id);
        if want.starts_with("{\"done\":") {
            return want;
        }
        ["{\"id\":\"", id, "\",", want.get(1..).unwrap_or_default()].concat()
    }

    /// `want(id)`: what the check wants next (see the module's doc).
    #[inline(never)]
    pub fn want(&self, id: &str) -> String {
        let mut runs = self.runs.borrow_mut();
        let Some(run) = runs.get(id) else {
            return gone();
        };
        let ctx = self.ctx();
        let mut j = Json::new();
        let want = run.flow.want();
        // The check in the background tells its pending answer with its mark: written here.
        if let (Want::Mark(mark), true, Flow::Check(check)) = (&want, run.background, &run.flow) {
            j.raw("{\"mark\":").str(&name(mark));
            if let Some(pending) = check.pending(&ctx) {
                let licensed = matches!(pending, CheckOutcome::Licensed { .. });
                let window = self.leased(run, check.lease(), licensed);
                let feature = run.feature.as_deref();
                let answer = self.outcome_json_leased(&pending, feature, None, window.as_ref());
                j.key("pending").raw(&answer);
                j.key("refreshed").bool(check.cache_error().is_none());
            }
            return j.raw("}").done();
        }
        if steps::storage_want(&mut j, &want) {
            return j.done();
        }
        match want {
            Want::Send(http) => {
                j.raw("{\"send\":");
                request_json(&mut j, http);
                j.raw("}");
            }
            Want::Verify => return verify_json(&self.ed25519.take_asked()),
            // A heal's listing of the key's activations through the relay (issue #80), and a
            // wait its `429` asks for.
            Want::Portal(request) => {
                let (method, url) = (request.method.as_str(), &request.url);
                return steps::send(method, url, &request.headers, &request.body, None);
            }
            Want::Wait(d) => {
                return steps::wait(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            }
            // The follow of a rotated key is no machine of this engine's, and neither are the
            // timed machines' clocks.
            Want::Clock => return gone(),
            Want::Done => {
                let run = runs.take(id);
                drop(runs);
                return run.map_or_else(gone, |run| self.done(run));
            }
            // Written above.
            _ => return gone(),
        }
        j.done()
    }

    /// `give(id, given, body)`: what happened (see the module's doc); answers what the check
    /// wants next, as [`Engine::want`] does.
    #[inline(never)]
    pub fn give(&self, id: &str, given: &str, body: Vec<u8>) -> String {
        let mut runs = self.runs.borrow_mut();
        let Some((kind, v)) = steps::given(given) else {
            // Not an answer at all: the machine ends here (answered as gone), out of the
            // table, never kept there for nothing.
            drop(runs.take(id));
            return gone();
        };
        let Some(run) = runs.get_mut(id) else {
            return gone();
        };
        // A read's fourth item: the host's clock once the bytes were read (the check reads
        // its `now` again: `Ctx::clock`).
        let read_at = (kind == "read")
            .then(|| v.items()?.get(3)?.number())
            .flatten()
            .map(|n| match n {
                Num::Int(n) => n,
                Num::Float(x) => x as i64,
            });
        let given = match kind.as_str() {
            // A heal's wait (this engine's runs are never stopped).
            "waited" | "stopped" => Given::Waited,
            _ => steps::storage_given(&kind, &v, body),
        };
        self.advance(run, given, read_at);
        drop(runs);
        self.want(id)
    }

    /// Gives `run`'s machine what happened.
    fn advance(&self, run: &mut Run, given: Given, read_at: Option<i64>) {
        // What the verifier asked is taken when the machine wants it verified (`want`).
        RANDOM.with(|r| r.set(run.random));
        let at = move || read_at.unwrap_or(i64::MIN);
        let ctx = Ctx {
            clock: read_at.map(|_| &at as &dyn Fn() -> i64),
            ..self.ctx()
        };
        run.flow.give(&ctx, given);
        RANDOM.with(|r| r.set(None));
    }

    /// The machine's answer: `{"done": answer, …}` (see the module's doc).
    fn done(&self, mut run: Run) -> String {
        match std::mem::replace(&mut run.flow, Flow::Taken) {
            Flow::Check(check) => self.check_done(run, check),
            flow => self.updated(run, flow),
        }
    }

    /// An update's answer, [`Engine::done`]'s: a function of its own, which a check never
    /// calls (V8 compiles a wasm function on its first call: a first cached check no longer
    /// compiles the validate's, activate's and deactivate's answers with `want`).
    #[inline(never)]
    fn updated(&self, run: Run, flow: Flow) -> String {
        let mut j = Json::new();
        j.raw("{\"done\":");
        match flow {
            Flow::Check(_) | Flow::Taken => return gone(),
            Flow::Validate(update) => {
                let mut validated = update.validated();
                let accepted = matches!(validated.online, Ok(Verdict::Accepted(_)));
                let window = self.leased(&run, validated.lease.take().as_ref(), accepted);
                self.validated_json(&mut j, validated.outcome(), window.as_ref());
            }
            Flow::Activate(mut heal) => {
                let activated = heal.activated();
                let accepted = matches!(activated.online, Ok(Verdict::Accepted(_)));
                let window = self.leased(&run, activated.lease.as_ref(), accepted);
                match activated.online {
                    Ok(Verdict::Accepted(read)) => {
                        j.raw("{\"ok\":{");
                        lease_json(&mut j, window.as_ref());
                        j.key("activation");
                        read.license().write_activation(&mut j);
                        j.key("license");
                        read.license().write_license(&mut j);
                        j.raw("}}")
                    }
                    Ok(Verdict::Denied(d)) => j.raw(&denial_json(&d)),
                    Err(e) => j.raw(&error_json(&e)),
                };
                if let Some(e) = activated.cache_error {
                    j.key("cacheError").str(&e.detail());
                }
            }
            Flow::Deactivate(update) => {
                let deactivated = update.deactivated();
                match deactivated.answer {
                    Ok(Verdict::Accepted(())) => {
                        j.raw("{\"ok\":{\"activationId\":");
                        j.opt_str(deactivated.activation_id.as_deref());
                        // The core's words for a freed seat (issue #80).
                        j.key("userMessage")
                            .str(&polar_license::message::DEACTIVATED.text())
                            .raw("}}")
                    }
                    Ok(Verdict::Denied(d)) => j.raw(&denial_json(&d)),
                    Err(e) => j.raw(&error_json(&e)),
                };
                if deactivated.ends_remembered_key {
                    j.key("forgetKey").bool(true);
                }
            }
        }
        j.raw("}").done()
    }

    /// A validate's answer: `{"ok": {lease, license, activation, features}}` (the feature
    /// answers of an online verdict), or the denial or error.
    fn validated_json(
        &self,
        j: &mut Json,
        verdict: CheckOutcome<SchemaLicense>,
        window: Option<&LeaseWindow>,
    ) {
        let license = match &verdict {
            CheckOutcome::Licensed { license, .. } => license,
            CheckOutcome::Denied(d) => {
                j.raw(&denial_json(d));
                return;
            }
            CheckOutcome::Unverified(e) => {
                j.raw(&error_json(e));
                return;
            }
        };
        j.raw("{\"ok\":{");
        lease_json(j, window);
        j.key("license");
        license.write_license(j);
        j.key("activation");
        license.write_activation(j);
        j.key("features");
        self.features_json(j, &verdict);
        j.raw("}}");
    }

    /// A check's answer: `{"done": answer, "refreshed": bool, "relaySource": …}`.
    fn check_done(&self, run: Run, check: Check<SchemaLicense>) -> String {
        let mut report = check.report();
        // Trials (issue #54 item 4): a licensed key from a trial product, when the app stated a
        // trial (the core's rule, linked only through this call).
        if let Some(benefits) = &self.trial_benefits {
            polar_license::trial::apply(&mut report, benefits, run.now);
        }
        let licensed = matches!(report.outcome, CheckOutcome::Licensed { .. });
        let window = self.leased(&run, report.lease.as_ref(), licensed);
        let feature = run.feature;
        let mut text = self.outcome_json_leased(
            &report.outcome,
            feature.as_deref(),
            report.fallback.as_ref(),
            window.as_ref(),
        );
        // A licensed answer (not a feature's) carries, inside its `ok`, perpetual fallback's
        // `fallback` and `paidThrough` when a release date was stated, and the key's `trial`
        // (or `null`) when a trial was: the answer's text without its last `}}`, these, `}}`.
        if licensed
            && feature.is_none()
            && (report.perpetual.is_some() || self.trial_benefits.is_some())
        {
            let mut o = Json::new();
            o.raw(text.get(..text.len() - 2).unwrap_or_default());
            if let Some(p) = report.perpetual {
                o.key("fallback").bool(p.fallback);
                o.key("paidThrough").opt_int(p.paid_through);
            }
            if self.trial_benefits.is_some() {
                o.key("trial");
                trial_json(&mut o, report.trial.as_deref());
            }
            text = o.raw("}}").done();
        }
        // A denial (not a feature's answer) carries the paid-through end perpetual fallback
        // read, when a release date was stated: `{"error":{…,"fallback":false,"paidThrough"}}`.
        if let (CheckOutcome::Denied(_), None, Some(p)) =
            (&report.outcome, feature.as_deref(), report.perpetual)
        {
            let mut o = Json::new();
            o.raw(text.get(..text.len() - 2).unwrap_or_default());
            o.key("fallback").bool(false);
            o.key("paidThrough").opt_int(p.paid_through);
            text = o.raw("}}").done();
        }
        let mut j = Json::new();
        j.raw("{\"done\":").raw(&text);
        j.key("refreshed").bool(report.cache_refreshed());
        j.key("relaySource")
            .opt_str(report.relayed.map(|r| r.as_str()));
        j.raw("}").done()
    }

    /// Signed mode: the window of the lease a licensed answer (`licensed`) stands on, as the
    /// machine's answer says the slot is left (`lease`: [`Check::lease`], the update's
    /// `lease`); `None` for a feature's answer, and in unsigned mode.
    fn leased(
        &self,
        run: &Run,
        lease: Option<&LeaseWindow>,
        licensed: bool,
    ) -> Option<LeaseWindow> {
        if self.relay_keys.is_empty() || run.feature.is_some() || !licensed {
            return None;
        }
        lease.cloned()
    }
}

/// The answer for a machine that is not in the table (never started, or dropped).
fn gone() -> String {
    let e = Error::Cache {
        detail: "this operation is not running".to_string(),
    };
    ["{\"done\":", &error_json(&e), ",\"refreshed\":false}"].concat()
}

thread_local! {
    /// The random bytes of the run being stepped ([`Run::random`]), set around each of its
    /// steps and taken once by its nonce ([`Ctx::random`], signed mode's freshness).
    static RANDOM: Cell<Option<[u8; 16]>> = const { Cell::new(None) };
}

/// [`Ctx::random`]: the stepped run's random bytes, if the host gave it any.
fn random() -> Option<[u8; 16]> {
    RANDOM.with(Cell::take)
}

/// 16 bytes from 32 hex digits (the host's `crypto.getRandomValues`), else none.
fn random_bytes(hex: &str) -> Option<[u8; 16]> {
    polar_license::cache::unhex(hex.as_bytes())?.try_into().ok()
}
