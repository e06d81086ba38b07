//! `polar-license usage METER UNITS --relay URL` (issue #68 item 3): one usage report to the
//! seller's relay, through the core's `BlockingClient::record_usage` (its idempotency id, its
//! sends of the same id). The command only renders the core's answer.

use crate::args::{Global, UsageArgs};
use crate::output::{error_report, Report};
use crate::run::{key_or_remembered, licensing_with};
use polar_license::usage::UsageAnswer;
use polar_license::{BlockingClient, Error, Message, Reason};
use serde_json::{json, Map, Value};

const COMMAND: &str = "usage";

fn object(outcome: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("command".into(), json!(COMMAND));
    m.insert("outcome".into(), json!(outcome));
    m
}

fn failed(error: &Error) -> Report {
    let mut r = error_report(None, None, error);
    r.json.insert("command".into(), json!(COMMAND));
    r
}

/// The balance as a person reads it (`unknown` when the relay has not read it).
/// A report not recorded: its `first` line of facts, then the core's one sentence and one next
/// step ([`UsageAnswer::message`]), which the JSON carries too.
fn said(m: &mut Map<String, Value>, message: &Option<Message>, first: String) -> Vec<String> {
    let mut lines = vec![first];
    if let Some(said) = message {
        m.insert("user_message".into(), json!(said.text()));
        m.insert("next_step".into(), json!(said.next_step()));
        lines.push(format!("  {}", said.sentence()));
        lines.push(format!("  what to do: {}", said.next_step()));
    }
    lines
}

fn shown(balance: Option<f64>) -> String {
    balance.map_or_else(|| "unknown".to_string(), |b| format!("{b}"))
}

/// `usage METER UNITS`.
pub fn usage(g: &Global, a: &UsageArgs) -> Report {
    let licensing = match licensing_with(g, false) {
        Ok(l) => l,
        Err(e) => return failed(&e),
    };
    let key = match key_or_remembered(&licensing, a.key.key.as_deref()) {
        Ok(k) => k,
        Err(e) => return failed(&e),
    };
    let client = match crate::run::org(g).and_then(|org| {
        let mut b = BlockingClient::builder(org).base_url(&a.relay);
        if let Some(t) = g.timeout {
            b = b.timeout(t);
        }
        b.build()
    }) {
        Ok(c) => c,
        Err(e) => return failed(&e),
    };
    // Signed mode (--relay-key): the answer believed only from the relay's signed
    // acknowledgement (issue #76).
    let keys = match crate::run::relay_keys_of(g) {
        Ok(keys) => keys,
        Err(e) => return failed(&e),
    };
    // The app's own id (`--id`: a run sent again with it counts once), else a new one.
    let answer = match BlockingClient::usage_report(&key, &a.meter, a.units, a.id.as_deref())
        .and_then(|report| match &keys {
            Some(keys) => client.send_usage_signed(None, &report, keys),
            None => client.send_usage(&report),
        }) {
        Ok(answer) => answer,
        Err(e) => return failed(&e),
    };
    let redacted = key.redacted();
    let mut m = object("done");
    m.insert("key".into(), json!(redacted));
    m.insert("meter".into(), json!(a.meter));
    m.insert("units".into(), json!(a.units));
    let message = answer.message();
    match answer {
        UsageAnswer::Recorded {
            duplicate,
            balance,
            signed,
        } => {
            m.insert("duplicate".into(), json!(duplicate));
            m.insert("balance".into(), json!(balance));
            m.insert("signed".into(), json!(signed));
            Report::ok(
                m,
                vec![format!(
                    "done: {} units of {} recorded for {redacted}{}; balance {}{}",
                    a.units,
                    a.meter,
                    if duplicate {
                        " (once: sent before)"
                    } else {
                        ""
                    },
                    shown(balance),
                    if signed {
                        " (signed by the relay)"
                    } else {
                        " (unsigned: the relay's word, not verified; set --relay-key)"
                    }
                )],
            )
        }
        UsageAnswer::CreditsExhausted { balance } => {
            let reason = Reason::CreditsExhausted;
            m.insert("outcome".into(), json!("denied"));
            m.insert("reason".into(), json!(reason.code()));
            m.insert("balance".into(), json!(balance));
            Report {
                lines: said(
                    &mut m,
                    &message,
                    format!(
                        "denied: credits_exhausted — {} at balance {balance}: not recorded",
                        a.meter
                    ),
                ),
                json: m,
                to_stderr: true,
                exit: u8::try_from(reason.exit_code()).unwrap_or(1),
            }
        }
        a @ UsageAnswer::Backlog { .. } => {
            let retry_after = a.retry_after();
            let reason = Reason::RateLimited;
            m.insert("outcome".into(), json!("unverified"));
            // `reason` stays `rate_limited` as shipped (the contract's reason codes); `code` is
            // the core's name for the state, as every face gives it (`usage_backlog`).
            m.insert("reason".into(), json!(reason.code()));
            m.insert("code".into(), json!(a.code()));
            m.insert("retry_after".into(), json!(retry_after));
            Report {
                lines: said(
                    &mut m,
                    &message,
                    format!(
                        "unverified: {} — the relay has too many reports waiting: not recorded",
                        reason.code()
                    ),
                ),
                json: m,
                to_stderr: true,
                exit: u8::try_from(reason.exit_code()).unwrap_or(3),
            }
        }
        UsageAnswer::Denied(d) => {
            m.insert("outcome".into(), json!("denied"));
            m.insert("reason".into(), json!(d.reason.code()));
            m.insert("detail".into(), json!(d.detail));
            Report {
                lines: said(
                    &mut m,
                    &message,
                    format!(
                        "denied: {} — Polar refused the key {redacted}: not recorded",
                        d.reason.code()
                    ),
                ),
                json: m,
                to_stderr: true,
                exit: u8::try_from(d.reason.exit_code()).unwrap_or(1),
            }
        }
    }
}
