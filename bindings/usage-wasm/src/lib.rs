//! The npm package's usage module (`polar-license/usage`, issue #68 item 3): the core's usage
//! report for `wasm32-unknown-unknown` only (natively this crate is empty).
//!
//! One report of `units` of a meter used with a key, through the seller's relay
//! (`POST /v1/usage/record`): its idempotency id (the app's, or a UUID v4 of the host's random
//! bytes), its request, its sends again with the same id and which answers end it are the
//! core's `RecordUsage` machine, as for the native client, the CLI, C, Tauri and Python.
//! `usage.js` only sends what this module asks over the host's `fetch`, waits as it says, and
//! hands back what came. The default entry's wasm carries none of it.
//!
//! Signed mode (issue #76): given the relay's public keys (`relayKeys`), every send carries a
//! fresh nonce and an answer is believed (`recorded`, `credits_exhausted`, the balance) only
//! from the relay's signed acknowledgement naming it (the core's `RecordUsage::signed_by_host`);
//! one without it, or whose signature does not verify, is `protocol_error`. Its signature is
//! checked by the package's Ed25519 (`hostEd25519`, as signed mode's leases and
//! `polar-license/seat`'s are), so this wasm carries none: an answer whose signature has no
//! answer yet is `{"verify": [[id, key, message, signature]…]}` (hex); the package's drive loop
//! verifies each and gives the answers back (`{"verified": …}`), and the same answer is read
//! again.
//!
//! The report speaks the package's one step protocol (`polar-license-wasm-steps`, driven by
//! `pkg-template/drive.js`, the loop every face of the package shares): `Report::start` and
//! `Report::give` answer what it wants next, `{"wait": ms}` (the core's wait before a send
//! again), `{"send": …}`, `{"verify": …}` (signed mode: the same answer read again once the
//! loop gives `{"verified": …}`) or `{"done": {"recorded": {id, duplicate, balance, signed}}}`
//! (`balance` null when the relay has not read it; `signed` `true` when the relay's
//! acknowledgement verified, `false` without relay keys) or `{"done": {"error": ERROR}}`;
//! ERROR is `{code, detail, userMessage, id, status?, retryAfter?, field?, balance?}` (`code`: a
//! reason code, `credits_exhausted` with the balance, or `usage_backlog`).

#![cfg(target_arch = "wasm32")]

use polar_license::error::Error;
use polar_license::json::JsonOut;
use polar_license::key::Key;
use polar_license::lease::{AskedEd25519, RelayKeys};
use polar_license::proto::{HttpRequest, HttpResponse};
use polar_license::usage::{RecordUsage, UsageAnswer, UsageReport, UsageStep};
use polar_license_wasm_steps as steps;
use wasm_bindgen::prelude::*;

/// One usage report and the core's machine sending it.
#[wasm_bindgen]
pub struct Report {
    id: String,
    machine: Result<RecordUsage, Error>,
    /// The package's Ed25519, asked through the drive loop (signed mode).
    ed25519: AskedEd25519,
    /// The send the core asked for after a wait, sent once the loop has waited.
    waiting: Option<HttpRequest>,
    /// The last answer, read again once the host has verified what it asked.
    last: Option<Result<HttpResponse, Error>>,
}

#[wasm_bindgen]
impl Report {
    /// A report of `units` of `meter` used with `key`, to the relay at `relay` for the
    /// organization `org`; its id `id`, or (none) a UUID v4 of `entropy`'s first 16 bytes (the
    /// host's random bytes). With `keys` (the relay's public keys, `KID=k4.public.…`, comma
    /// separated; none or empty: unsigned) signed mode, its nonce of `entropy`'s next 16 bytes.
    /// Nothing is sent: [`Report::start`] gives the first request, or the error of bad input.
    #[wasm_bindgen(constructor)]
    #[allow(clippy::too_many_arguments)] // the JS constructor's arguments, in usage.js's order
    pub fn new(
        org: &str,
        relay: &str,
        key: &str,
        meter: &str,
        units: f64,
        id: Option<String>,
        entropy: &[u8],
        keys: Option<String>,
    ) -> Report {
        let sixteen = |from: usize| {
            let mut bytes = [0u8; 16];
            for (b, e) in bytes.iter_mut().zip(entropy.iter().skip(from)) {
                *b = *e;
            }
            bytes
        };
        let refused = |id: String, e: Error| Report {
            id,
            machine: Err(e),
            ed25519: AskedEd25519::default(),
            waiting: None,
            last: None,
        };
        let mut report = UsageReport::new(Key::new(key), meter, units, sixteen(0));
        if let Some(id) = id {
            report.id = id;
        } else if entropy.len() < 16 {
            return refused(
                String::new(),
                Error::invalid("usage", "no random id: 16 bytes needed"),
            );
        }
        let keys = keys.as_deref().map(str::trim).filter(|k| !k.is_empty());
        let machine = match keys {
            None => RecordUsage::new(relay, org, &report),
            Some(_) if entropy.len() < 32 => Err(Error::invalid(
                "usage",
                "no random nonce: 32 bytes needed in signed mode",
            )),
            Some(keys) => RelayKeys::parse(keys).and_then(|keys| {
                RecordUsage::signed_by_host(relay, org, &report, keys, sixteen(16))
            }),
        };
        match machine {
            Ok(machine) => Report {
                id: report.id.clone(),
                machine: Ok(machine),
                ed25519: AskedEd25519::default(),
                waiting: None,
                last: None,
            },
            Err(e) => refused(report.id.clone(), e),
        }
    }

    /// What the report wants first.
    pub fn start(&mut self) -> String {
        let first = match &mut self.machine {
            Ok(m) => m.start(),
            Err(e) => return steps::done(&failure(&self.id, Some(e), None)),
        };
        self.step(first)
    }

    /// What the loop gave (`response`, `waited`, `verified`: the step protocol's JSON, a
    /// response's body as bytes): what the report wants next.
    pub fn give(&mut self, given: &str, body: Vec<u8>) -> String {
        let Ok(m) = &mut self.machine else {
            return self.start();
        };
        let answered = match steps::given(given) {
            Some((kind, v)) if kind == "response" => {
                let sent = steps::response(&v, body);
                self.last = Some(sent.clone());
                sent
            }
            Some((kind, _)) if kind == "waited" => match self.waiting.take() {
                Some(r) => return steps::send("POST", &r.url, &r.headers, &r.body, None),
                None => return self.unexpected(),
            },
            Some((kind, v)) if kind == "verified" => {
                steps::verified(&v, &self.ed25519);
                match self.last.clone() {
                    Some(sent) => sent,
                    None => return self.unexpected(),
                }
            }
            _ => return self.unexpected(),
        };
        match m.answer_with(answered, &self.ed25519) {
            Some(next) => {
                self.ed25519.clear();
                self.step(next)
            }
            None => self.ed25519.take_asked(),
        }
    }

    /// The core's step as the protocol's want: a send after a wait is the wait first.
    fn step(&mut self, next: UsageStep) -> String {
        match next {
            UsageStep::Send { request, after } if !after.is_zero() => {
                self.waiting = Some(request);
                steps::wait(u64::try_from(after.as_millis()).unwrap_or(u64::MAX))
            }
            UsageStep::Send { request, .. } => {
                steps::send("POST", &request.url, &request.headers, &request.body, None)
            }
            UsageStep::Done(answer) => steps::done(&answered(&self.id, answer)),
        }
    }

    /// A given this report did not ask for: the loop and the module do not match.
    fn unexpected(&self) -> String {
        let e = Error::Protocol {
            status: None,
            detail: "the usage module was given what it did not ask for".to_string(),
        };
        steps::done(&failure(&self.id, Some(&e), None))
    }
}

/// The report's end: `{"recorded": …}` or `{"error": ERROR}`.
fn answered(id: &str, answer: Result<UsageAnswer, Error>) -> String {
    let mut o = JsonOut::new();
    match answer {
        Ok(UsageAnswer::Recorded {
            duplicate,
            balance,
            signed,
        }) => {
            o.raw("{")
                .key("recorded")
                .raw("{")
                .key("id")
                .str(id)
                .key("duplicate")
                .bool(duplicate)
                .key("balance");
            match balance {
                Some(b) => o.float(b),
                None => o.null(),
            };
            // `true` only from the relay's acknowledgement that verified (signed mode, issue
            // #76); without relay keys the answer is the relay's word, said so.
            o.key("signed").bool(signed);
            o.raw("}}").done()
        }
        Ok(answer) => failure(id, None, Some(&answer)),
        Err(e) => failure(id, Some(&e), None),
    }
}

/// A refusal's words: the core's one sentence and next step (`UsageAnswer::message`), none of
/// this face's.
fn said(o: &mut JsonOut, answer: &UsageAnswer) {
    if let Some(said) = answer.message() {
        o.key("userMessage").str(&said.text());
        o.key("nextStep").str(said.next_step());
    }
}

/// `{"error": ERROR}` of the core's error or the relay's refusal.
fn failure(id: &str, error: Option<&Error>, answer: Option<&UsageAnswer>) -> String {
    let mut o = JsonOut::new();
    o.raw("{").key("error").raw("{");
    match (error, answer) {
        (Some(e), _) => {
            o.error_members(e);
            if let Some(wait) = e.retry_after() {
                o.key("retryAfter").uint(wait);
            }
        }
        (None, Some(a @ UsageAnswer::CreditsExhausted { balance })) => {
            let reason = polar_license::Reason::CreditsExhausted;
            o.key("code").str(reason.code());
            o.key("detail").str(reason.code());
            said(&mut o, a);
            o.key("status").uint(402);
            o.key("balance").float(*balance);
        }
        (None, Some(a @ UsageAnswer::Backlog { retry_after })) => {
            // The core's code (`polar_license::usage::BACKLOG_CODE`), not one of this face's.
            o.key("code").str(a.code());
            o.key("detail").str(a.code());
            said(&mut o, a);
            o.key("status").uint(429);
            if let Some(s) = retry_after {
                o.key("retryAfter").uint(*s);
            }
        }
        (None, Some(UsageAnswer::Denied(d))) => {
            // A usage answer never carries why a key stopped (its words stay out of this wasm).
            o.denial_members(d);
        }
        (None, _) => {
            o.key("code").str("protocol_error");
            o.key("detail").str("no answer");
            o.key("userMessage").str("no answer");
        }
    }
    o.key("id").str(id);
    o.raw("}}").done()
}

#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
