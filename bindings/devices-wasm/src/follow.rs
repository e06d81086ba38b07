//! A rotated key's follow (issue #64 item 4) for `polar-license/devices`: the core's follow
//! machine ([`Follow`], the same order of steps the native, Rust-on-wasm, C, CLI and Tauri faces
//! drive) with its IO done by the app's `LicenseClient`: `devices.js` hands it to the package's
//! one drive loop (`drive.js`) with the client's storage, locks and fetch (through the door the
//! client keeps for this module), which reads and writes the client's storage under its locks and sends the requests over its
//! `fetch`. So the machine reads the very record the client's checks read (the same slot: the
//! client's options and install secret), and the new string's record it writes is the one the
//! client's next check answers from.
//!
//! The wants and givens are the package's one step protocol, written and read by the same code
//! as the engine's (`polar-license-wasm-steps`: `read`, `lock`, `unlock`, `write` with its
//! `compare`, `remove`, `send`, and in signed mode `verify`: the lease's signature, verified by
//! the client's host as the engine's are), a customer-portal request as a `send` with its
//! `method` (`GET` has no body). In signed mode the client's `portalUrl` is where the
//! customer's keys are read (Polar), its base URL where the new string is validated (the relay).
//! The answer: `{"done": {"key", "forgot", "activationId", "license": {…}}}` once Polar granted
//! the new string, `{"done": {"key", "forgot", "denied": {reason, detail, userMessage,
//! status}}}` when it denied it, or `{"done": {"error": …}}` (the portal's typed error, as the
//! module's other steps answer it).

use crate::error;
use polar_license::answers::SchemaLicense;
use polar_license::cache::install_secret_from_hex;
use polar_license::error::{Error, Verdict};
use polar_license::fingerprint::fingerprint_from;
use polar_license::flow::follow::Follow;
use polar_license::flow::{Ctx, LeaseMemo, Memo, Slot, Want};
use polar_license::grace::{GracePolicy, LicenseData};
use polar_license::json::{JsonIn, JsonOut, Num};
use polar_license::key::Key;
use polar_license::lease::{AskedEd25519, RelayKeys};
use polar_license::portal::{PortalError, SessionToken};
use polar_license::proto::Api;
use polar_license::strict::{self, Value};
use polar_license_wasm_steps as steps;
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use wasm_bindgen::prelude::*;

fn text(o: &Value, name: &str) -> Option<String> {
    o.member(name).and_then(|v| v.string())
}

fn number(o: &Value, name: &str) -> Option<f64> {
    o.member(name).and_then(|v| match v.number()? {
        Num::Int(n) => Some(n as f64),
        Num::Float(x) => Some(x),
    })
}

/// A policy duration as the client hands it (seconds, checked by `license.js`).
fn seconds(o: &Value, name: &str, default: Duration) -> Duration {
    number(o, name)
        .filter(|s| s.is_finite() && (0.0..=1e12).contains(s))
        .map_or(default, |s| Duration::from_micros((s * 1e6) as u64))
}

/// The client's options the follow's context is made of (the engine's reading of the same
/// JSON text: `bindings/wasm/src/engine.rs`'s `Engine::new`).
struct Parts {
    api: Api,
    policy: GracePolicy,
    relay_keys: RelayKeys,
    lease_memo: LeaseMemo,
    memo: Memo<SchemaLicense>,
    machine: Option<String>,
    require_activation: bool,
    /// Signed mode's lease signatures, verified by the client's host (its WebCrypto or the
    /// package's verifier, through the drive loop's `verify` want), as the engine's are.
    ed25519: AskedEd25519,
}

impl Parts {
    fn ctx(&self) -> Ctx<'_, SchemaLicense> {
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
            random: Some(random),
            clock: None,
        }
    }
}

thread_local! {
    /// The host's random bytes for the follow's validate (signed mode's nonce), set around
    /// each of its steps and taken once ([`Ctx::random`]).
    static RANDOM: Cell<Option<[u8; 16]>> = const { Cell::new(None) };
}

fn random() -> Option<[u8; 16]> {
    RANDOM.with(Cell::take)
}

/// How the follow has the slot of a key (the old string's, the new one's).
type SlotOf = Rc<dyn Fn(&Key) -> Slot>;

/// One follow of a rotated key, driven by the client's drive loop.
#[wasm_bindgen]
pub struct Follower {
    parts: Option<Parts>,
    follow: Option<Follow<'static, SchemaLicense>>,
    random: Option<[u8; 16]>,
    /// Why the follow could not start (the client's options refused: the client refuses them
    /// first, so never in practice).
    first: Option<PortalError>,
}

/// The client's options (JSON text, as `license.js` hands them to its engine), the install
/// secret (hex) and the clock: the context and the slots of every key.
fn parts(options: &str, secret: &str) -> Result<(Parts, SlotOf), Error> {
    let o = strict::parse(options.as_bytes())
        .map_err(|_| Error::invalid("options", "the client's options must be a JSON object"))?;
    // The module's own reading of the client's server options (signed mode's portal at
    // `portalUrl`, Polar's, not the relay at the base URL).
    let api = crate::Settings::new(
        &text(&o, "organizationId").unwrap_or_default(),
        text(&o, "baseUrl"),
        text(&o, "server"),
        text(&o, "portalUrl"),
        None,
        false,
    )
    .api?;
    let p = o.member("gracePolicy").unwrap_or(Value::Null);
    let d = GracePolicy::default();
    let policy = GracePolicy {
        revalidate_after: seconds(&p, "revalidateAfter", d.revalidate_after),
        grace_period: seconds(&p, "gracePeriod", d.grace_period),
        clock_tolerance: seconds(&p, "clockTolerance", d.clock_tolerance),
    };
    let relay_keys = match text(&o, "relayKeys") {
        Some(list) => RelayKeys::parse(&list)?,
        None => RelayKeys::new(),
    };
    let org = api.organization_id().to_string();
    let machine = text(&o, "machineId").map(|id| fingerprint_from(&id, &org));
    // The seal of the client's slots: its machine, else the OS machine id the node store gave.
    let seal = machine
        .clone()
        .or_else(|| text(&o, "sealMachineId").map(|id| fingerprint_from(&id, &org)));
    let app_secret = text(&o, "appSecret").map(String::into_bytes);
    let secret = install_secret_from_hex(secret).unwrap_or_default();
    let base = api.base_url().to_string();
    let slots = Rc::new(move |key: &Key| {
        Slot::new(
            &base,
            &org,
            key,
            &secret,
            seal.as_deref(),
            app_secret.as_deref(),
        )
    });
    let parts = Parts {
        api,
        policy,
        relay_keys,
        lease_memo: LeaseMemo::default(),
        memo: Memo::default(),
        machine,
        require_activation: o.member("requireActivation").and_then(|v| v.boolean()) == Some(true),
        ed25519: AskedEd25519::default(),
    };
    Ok((parts, slots))
}

/// Stored text as it is (the cache format is UTF-8: a header, compact JSON and hex).
fn utf8(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}

#[wasm_bindgen]
impl Follower {
    /// The follow of `key` through the customer `session`, with the client's `options` (JSON
    /// text), install `secret` (hex), clock `now` (unix seconds) and 16 `random` bytes (32 hex
    /// digits, signed mode's nonce; none: no nonce).
    #[wasm_bindgen(constructor)]
    pub fn new(
        options: &str,
        secret: &str,
        now: f64,
        session: &str,
        key: &str,
        random: Option<String>,
    ) -> Follower {
        let random = random
            .and_then(|hex| polar_license::cache::unhex(hex.as_bytes()))
            .and_then(|b| <[u8; 16]>::try_from(b).ok());
        let (parts, slots) = match parts(options, secret) {
            Ok(made) => made,
            Err(e) => {
                return Follower {
                    parts: None,
                    follow: None,
                    random,
                    first: Some(PortalError::of_error(e)),
                }
            }
        };
        let old = Key::new(key);
        let first = Ok(Arc::new(slots(&old)));
        let follow = Follow::new(
            &parts.ctx(),
            old,
            first,
            SessionToken::new(session),
            Box::new(move |k: &Key| Ok(Arc::new(slots(k)))),
            now as i64,
        );
        Follower {
            parts: Some(parts),
            follow: Some(follow),
            random,
            first: None,
        }
    }

    /// What the follow wants first (as [`Follower::give`] answers).
    pub fn start(&mut self) -> String {
        self.want()
    }

    /// What happened in answer to the last want (JSON, a response's body as bytes): what the
    /// follow wants next.
    pub fn give(&mut self, given: &str, body: Option<Vec<u8>>) -> String {
        let Some((kind, v)) = steps::given(given) else {
            return self.want();
        };
        let given = steps::storage_given(&kind, &v, body.unwrap_or_default());
        if let (Some(parts), Some(follow)) = (&self.parts, &mut self.follow) {
            // The host's answers to the signatures asked (`Given::Verified` then runs the
            // step that asked again, which meets them).
            if kind == "verified" {
                steps::verified(&v, &parts.ed25519);
            }
            RANDOM.with(|r| r.set(self.random));
            follow.give(&parts.ctx(), given);
            RANDOM.with(|r| r.set(None));
        }
        self.want()
    }

    /// What the follow wants (the engine's want JSON), or its answer.
    fn want(&mut self) -> String {
        let mut j = JsonOut::new();
        let Some(follow) = &self.follow else {
            return self.done();
        };
        let want = follow.want();
        if steps::storage_want(&mut j, &want) {
            return j.done();
        }
        match want {
            // The validate: a POST, as the engine writes it (no method: the client's POST).
            Want::Send(http) => {
                j.raw("{\"send\":{")
                    .key("url")
                    .str(&http.url)
                    .key("headers");
                headers(&mut j, &http.headers);
                j.key("body").str(utf8(&http.body)).raw("}}");
                j.done()
            }
            // A page of the customer's keys: its method, a body only with a POST.
            Want::Portal(req) => {
                j.raw("{\"send\":{").key("method").str(req.method.as_str());
                j.key("url").str(&req.url).key("headers");
                headers(&mut j, &req.headers);
                if !req.body.is_empty() {
                    j.key("body").str(utf8(&req.body));
                }
                j.raw("}}");
                j.done()
            }
            // Signed mode: the lease signatures the step met, for the client's host to verify.
            Want::Verify => match &self.parts {
                Some(parts) => parts.ed25519.take_asked(),
                None => self.done(),
            },
            // The storage wants are written above: never here (nor a wait or the clock: a
            // follow never waits).
            _ => self.done(),
        }
    }

    /// `{"done": …}`: the follow's answer (see the module's doc).
    fn done(&mut self) -> String {
        let answer = match (self.follow.take(), self.first.take()) {
            (Some(follow), _) => {
                let forgot = follow.forgot();
                follow.answer().map(|a| (a, forgot))
            }
            (None, Some(e)) => Err(e),
            (None, None) => Err(PortalError::of_error(Error::Cache {
                detail: "this follow is over".to_string(),
            })),
        };
        let ((new, verdict), forgot) = match answer {
            Ok(a) => a,
            Err(e) => return ["{\"done\":", &error(&e), "}"].concat(),
        };
        let mut j = JsonOut::new();
        j.raw("{\"done\":{").key("key").str(new.expose());
        j.key("forgot").bool(forgot);
        match verdict {
            Verdict::Accepted(l) => {
                j.key("activationId").opt_str(l.activation_id());
                j.key("license").raw("{").key("id").str(&l.key_id());
                j.key("displayKey").str(l.display_key());
                j.key("benefitId").str(l.benefit_id());
                j.key("expiresAt").opt_int(l.expires_at());
                j.raw("}");
            }
            Verdict::Denied(d) => {
                j.key("denied").raw("{").key("reason").str(d.reason.code());
                j.key("detail").str(&d.detail);
                j.key("userMessage").str(&d.user_message());
                j.key("status").uint(u64::from(d.status)).raw("}");
            }
        }
        j.raw("}}").done()
    }
}

fn headers(j: &mut JsonOut, headers: &[(&'static str, String)]) {
    j.raw("[");
    for (i, (k, v)) in headers.iter().enumerate() {
        j.raw(if i == 0 { "[" } else { ",[" })
            .str(k)
            .raw(",")
            .str(v)
            .raw("]");
    }
    j.raw("]");
}
