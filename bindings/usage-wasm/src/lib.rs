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
//! Every method answers JSON written with the core's `JsonOut`: `{"send": {method, url,
//! headers: [[name, value]], body}, "afterMs": N}` (wait N ms, then send), `{"recorded": {id,
//! duplicate, balance, signed}}` (`balance` null when the relay has not read it; `signed`
//! always `false`: this module holds no relay keys, issue #76), or `{"error": ERROR}`;
//! ERROR is `{code, detail, userMessage, id, status?, retryAfter?, field?, balance?}` (`code`: a
//! reason code, `credits_exhausted` with the balance, or `usage_backlog`). An answer's headers
//! come as `name\nvalue\n…` (fetch's names and values hold no line break).

#![cfg(target_arch = "wasm32")]

use polar_license::error::Error;
use polar_license::json::JsonOut;
use polar_license::key::Key;
use polar_license::proto::HttpResponse;
use polar_license::usage::{RecordUsage, UsageAnswer, UsageReport, UsageStep};
use wasm_bindgen::prelude::*;

/// One usage report and the core's machine sending it.
#[wasm_bindgen]
pub struct Report {
    id: String,
    machine: Result<RecordUsage, Error>,
}

#[wasm_bindgen]
impl Report {
    /// A report of `units` of `meter` used with `key`, to the relay at `relay` for the
    /// organization `org`; its id `id`, or (none) a UUID v4 of `entropy` (16 random bytes of
    /// the host's). Nothing is sent: [`Report::start`] gives the first request, or the error
    /// of bad input.
    #[wasm_bindgen(constructor)]
    pub fn new(
        org: &str,
        relay: &str,
        key: &str,
        meter: &str,
        units: f64,
        id: Option<String>,
        entropy: &[u8],
    ) -> Report {
        let mut bytes = [0u8; 16];
        for (b, e) in bytes.iter_mut().zip(entropy) {
            *b = *e;
        }
        let mut report = UsageReport::new(Key::new(key), meter, units, bytes);
        if let Some(id) = id {
            report.id = id;
        } else if entropy.len() < 16 {
            return Report {
                id: String::new(),
                machine: Err(Error::invalid("usage", "no random id: 16 bytes needed")),
            };
        }
        Report {
            id: report.id.clone(),
            machine: RecordUsage::new(relay, org, &report),
        }
    }

    /// The first step.
    pub fn start(&mut self) -> String {
        match &mut self.machine {
            Ok(m) => step(&self.id, m.start()),
            Err(e) => failure(&self.id, Some(e), None),
        }
    }

    /// The answer to the last send (`status` 0: none came, `body` says why): the next step.
    pub fn answer(&mut self, status: u16, headers: &str, body: &str) -> String {
        match &mut self.machine {
            Ok(m) => step(
                &self.id,
                m.answer(HttpResponse::from_host(status, headers, body)),
            ),
            Err(e) => failure(&self.id, Some(e), None),
        }
    }
}

fn step(id: &str, step: UsageStep) -> String {
    let mut o = JsonOut::new();
    match step {
        UsageStep::Send { request, after } => {
            o.raw("{")
                .key("send")
                .request("POST", &request.url, &request.headers, &request.body);
            o.key("afterMs")
                .uint(u64::try_from(after.as_millis()).unwrap_or(u64::MAX));
            o.raw("}").done()
        }
        UsageStep::Done(Ok(UsageAnswer::Recorded {
            duplicate, balance, ..
        })) => {
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
            // This module takes no relay keys and verifies nothing (issue #76): the answer is
            // the relay's word, said so.
            o.key("signed").bool(false);
            o.raw("}}").done()
        }
        UsageStep::Done(Ok(answer)) => failure(id, None, Some(&answer)),
        UsageStep::Done(Err(e)) => failure(id, Some(&e), None),
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
        (None, Some(UsageAnswer::CreditsExhausted { balance })) => {
            let reason = polar_license::Reason::CreditsExhausted;
            o.key("code").str(reason.code());
            o.key("detail").str(reason.code());
            o.key("userMessage")
                .str("No credits left: this use was not recorded.");
            o.key("status").uint(402);
            o.key("balance").float(*balance);
        }
        (None, Some(a @ UsageAnswer::Backlog { retry_after })) => {
            // The core's code (`polar_license::usage::BACKLOG_CODE`), not one of this face's.
            o.key("code").str(a.code());
            o.key("detail").str(a.code());
            o.key("userMessage")
                .str("Too many usage reports wait at the relay: send it again later.");
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
