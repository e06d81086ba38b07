//! The npm package's one step protocol, written once for every wasm that speaks it (the engine,
//! `bindings/wasm`; the devices, seat and usage modules): a machine answers what it wants as
//! JSON text, the package's one drive loop (`pkg-template/drive.js`) does that IO and gives
//! back what happened, and the machine answers what it wants next. The loop holds no rule,
//! schedule or sentence: a retry is a `wait` and a `send` the machine asks for.
//!
//! What a machine may want, and what the loop gives back for it:
//!
//! * `{"send": {"method"?, "url", "headers": [[name, value]…], "body"?}, "timeoutMs"?}` (the
//!   request, sent within the loop's timeout or the machine's `timeoutMs` if shorter):
//!   `{"response": {"status", "headers": [[name, value]…]}}` with the body as bytes, or
//!   `{"response": {"fail": 1 (no connection), 2 (timed out) or 3 (a bad or too large body),
//!   "detail"}}` (`response`);
//! * `{"wait": ms}`: `{"waited": true}`, or `{"stopped": true}` when the run's owner stopped it
//!   (an aborted signal: a held seat's release) before or during the wait;
//! * `{"verify": [[id, public key, message, signature]…]}` (hex): the host's Ed25519 on each,
//!   `{"verified": [id, 1 or 0, …]}`;
//! * `{"note": …}`: something the run's owner is told now (a seat held, a hold ended), then
//!   `{"noted": true}`;
//! * the storage wants of a client's machines (`read`, `load`, `lock`, `unlock`, `mark`,
//!   `write`, `remove`: `storage_want`, read back by `storage_given`), which only a loop given
//!   the client's storage does; `{"load": name}` (one plain entry, a local trial's record) is
//!   answered `{"loaded": [text or null]}`, or `{"loaded": "why not"}`;
//! * `{"done": …}`: the end; the loop hands it to the run's owner.
//!
//! Anything else is the loop's `protocol_error`: a wasm and a loop that do not match fail
//! clearly, never silently.

#![cfg(target_arch = "wasm32")]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use polar_license::error::Error;
use polar_license::flow::{Given, Keep, Stored, Want};
use polar_license::json::{JsonIn, JsonOut, Num};
use polar_license::lease::AskedEd25519;
use polar_license::proto::HttpResponse;
use polar_license::strict::{self, Value};
use polar_license::transport::{TransportError, TransportErrorKind};
use polar_license::wasm::STORAGE_PREFIX;

/// What the loop gave: its kind (`response`, `waited`, `stopped`, `verified`, `noted`, a
/// storage answer) and its value; `None` for a text that is no given at all.
pub fn given(text: &str) -> Option<(String, Value)> {
    strict::parse(text.as_bytes())
        .ok()?
        .members()?
        .into_iter()
        .next()
}

/// A `response` as the loop gives it (its body as bytes): the answer, or the failure to get one.
pub fn response(v: &Value, body: Vec<u8>) -> Result<HttpResponse, Error> {
    let int = |name: &str| match v.member(name).and_then(|n| n.number()) {
        Some(Num::Int(n)) => n,
        _ => 0,
    };
    let kind = match int("fail") {
        0 => {
            let headers = v
                .member("headers")
                .and_then(|h| h.items())
                .unwrap_or_default()
                .into_iter()
                .filter_map(|pair| {
                    let pair = pair.items()?;
                    Some((pair.first()?.string()?, pair.get(1)?.string()?))
                })
                .collect();
            return Ok(HttpResponse {
                status: u16::try_from(int("status")).unwrap_or(0),
                headers,
                body,
            });
        }
        2 => TransportErrorKind::Timeout,
        3 => TransportErrorKind::TooLarge,
        _ => TransportErrorKind::Connect,
    };
    let detail = v
        .member("detail")
        .and_then(|d| d.string())
        .unwrap_or_default();
    Err(Error::from(TransportError::new(kind, detail)))
}

/// `{"verified": [id, 1 or 0, …]}`'s answers handed to the module's `AskedEd25519`.
pub fn verified(v: &Value, ed25519: &AskedEd25519) {
    let items = v.items().unwrap_or_default();
    for pair in items.chunks_exact(2) {
        let id = match pair[0].number() {
            Some(Num::Int(n)) => u32::try_from(n).ok(),
            _ => None,
        };
        let valid = matches!(pair[1].number(), Some(Num::Int(1)));
        if let Some(id) = id {
            ed25519.answer(id, valid);
        }
    }
}

/// `{"wait": ms}`.
pub fn wait(ms: u64) -> String {
    let mut o = JsonOut::new();
    o.raw("{").key("wait").uint(ms).raw("}");
    o.done()
}

/// `{"send": request}` (a body only when there is one), with `"timeoutMs"` when the machine
/// bounds the answer's wait itself (a heartbeat that must be answered before a lease ends).
pub fn send<K: AsRef<str>>(
    method: &str,
    url: &str,
    headers: &[(K, String)],
    body: &[u8],
    timeout_ms: Option<u64>,
) -> String {
    let mut o = JsonOut::new();
    o.raw("{").key("send").request(method, url, headers, body);
    if let Some(ms) = timeout_ms {
        o.key("timeoutMs").uint(ms);
    }
    o.raw("}").done()
}

/// `{"done": DONE}` (DONE already JSON).
pub fn done(answer: &str) -> String {
    ["{\"done\":", answer, "}"].concat()
}

/// `{"note": NOTE}` (NOTE already JSON).
pub fn note(note: &str) -> String {
    ["{\"note\":", note, "}"].concat()
}

/// The client's storage name of a slot's entry (the engine's names).
pub fn name(name: &str) -> String {
    [STORAGE_PREFIX, name].concat()
}

/// Stored text as it is (the cache format is UTF-8: a header, compact JSON and hex).
fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}

/// A storage want of a client's machine (`read`, `load`, `lock`, `unlock`, `mark` without the check's
/// pending answer, `write` with its `compare`, `remove`) written into `j`; `false` for a want
/// of another kind (nothing written).
pub fn storage_want(j: &mut JsonOut, want: &Want<'_>) -> bool {
    match want {
        Want::Read(slot) => {
            j.raw("{\"read\":[").str(&name(&slot.name)).raw(",");
            j.str(&name(&slot.ledger)).raw(",").str(&name(&slot.clock));
            j.raw("]}");
        }
        Want::Load(n) => {
            j.raw("{\"load\":").str(&name(n)).raw("}");
        }
        Want::Lock(slot) => {
            j.raw("{\"lock\":").str(&name(slot)).raw("}");
        }
        Want::Unlock => {
            j.raw("{\"unlock\":true}");
        }
        Want::Mark(mark) => {
            j.raw("{\"mark\":").str(&name(mark)).raw("}");
        }
        Want::Write {
            name: n,
            bytes,
            keep,
            compare,
        } => {
            j.raw("{\"write\":[")
                .str(&name(n))
                .raw(",")
                .str(text(bytes));
            match keep {
                Keep::Revertible => j.raw(",").str("revertible"),
                Keep::Volatile => j.raw(",").str("volatile"),
                Keep::Durable => &mut *j,
            };
            j.raw("]");
            // Stored only while the ledger holds this (`null`: nothing), else `late`.
            if let Some(c) = compare {
                j.raw(",\"compare\":[").str(&name(c.ledger)).raw(",");
                match c.holds {
                    Some(holds) => j.str(text(holds)),
                    None => j.raw("null"),
                };
                j.raw("]");
            }
            j.raw("}");
        }
        Want::Remove(n) => {
            j.raw("{\"remove\":").str(&name(n)).raw("}");
        }
        _ => return false,
    }
    true
}

/// `{"x": true}` or `{"x": "why not"}`: the error a storage step failed with.
fn outcome(v: &Value) -> Result<(), Error> {
    match v.string() {
        Some(detail) => Err(Error::Cache { detail }),
        None => Ok(()),
    }
}

fn opt_text(v: Option<&Value>) -> Option<Vec<u8>> {
    v.and_then(JsonIn::string).map(String::into_bytes)
}

/// What a client's machine is given for the loop's answer of kind `kind` (a storage answer,
/// a `response`; anything else is `verified`, whose answers the caller has handed in).
pub fn storage_given(kind: &str, v: &Value, body: Vec<u8>) -> Given {
    match kind {
        "response" => Given::Response(response(v, body)),
        _ => store_given(kind, v).unwrap_or(Given::Verified),
    }
}

/// A storage answer of kind `kind` as a machine is given it (`None`: no storage answer), for a
/// module whose machine sends nothing (the local trial's: no response reader linked in).
pub fn store_given(kind: &str, v: &Value) -> Option<Given> {
    Some(match kind {
        "locked" => Given::Locked(outcome(v)),
        "unlocked" => Given::Unlocked,
        "marked" => Given::Marked(v.boolean() == Some(true)),
        "read" => Given::Read(match v.items() {
            Some(texts) => Ok(Stored {
                record: opt_text(texts.first()),
                ledger: opt_text(texts.get(1)),
                clock: opt_text(texts.get(2)),
            }),
            None => Err(Error::Cache {
                detail: v.string().unwrap_or_default(),
            }),
        }),
        "loaded" => Given::Loaded(match v.items() {
            Some(text) => Ok(opt_text(text.first())),
            None => Err(Error::Cache {
                detail: v.string().unwrap_or_default(),
            }),
        }),
        "written" => Given::Written(outcome(v)),
        "late" => Given::Late,
        "removed" => Given::Removed,
        _ => return None,
    })
}
