//! The npm package's local Polar (`polar-license/emulator`; `wasm32-unknown-unknown` only:
//! natively this crate is empty).
//!
//! `Emulator` is the emulator's socket- and clock-free core (`polar_license_emulator::Core`,
//! the one `polar-license emulator` serves) behind wasm-bindgen: the package's `emulator.js`
//! runs a `node:http` server, hands each request over whole with the time (`Emulator::handle`)
//! and sends the `Answer` as its `delivery` says (a fault's delay, slow body, truncation, hang
//! or close). Every answer is the core's, so it is the Rust emulator's, byte for byte but the
//! ids it generates (random here too: 32 bytes of entropy from the host).
//!
//! `scripts/build-npm.sh` builds it into `polar_license_emulator_bg.wasm`, a file of its own
//! that only `polar-license/emulator` loads.

#![cfg(target_arch = "wasm32")]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use polar_license_emulator::{
    Core, Delivery, Fault, KeyUpdate, Options, Request, Response, Seed, SeedKey, Time,
    WebhookFault, WebhookOutcome,
};
use serde_json::Value;
use wasm_bindgen::prelude::*;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests: a panic is the report
mod tests;

/// The emulator's allocator (single-threaded wasm: no atomics), as the engine's.
#[cfg(not(target_feature = "atomics"))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

fn moment(unix_ms: f64, monotonic_ms: f64) -> Result<Time, JsError> {
    Time::from_millis(unix_ms, monotonic_ms).ok_or_else(|| {
        JsError::new(&format!(
            "bad time: {unix_ms} ms since the epoch, {monotonic_ms} ms monotonic"
        ))
    })
}

/// The emulator's options from JSON text (`null`, or an object of `rateLimit` (bool),
/// `rateLimitBlockMs` (ms), `sandbox` (bool), `apiVersions` (strings), `apiVersion` (string),
/// every one optional): [`Options`] with the native defaults.
pub(crate) fn read_options(text: &str) -> Result<Options, String> {
    let mut options = Options::default();
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("options are not JSON: {e}"))?;
    let map = match value {
        Value::Null => return Ok(options),
        Value::Object(map) => map,
        _ => return Err("options must be an object".to_string()),
    };
    for (name, v) in map {
        let bad = || format!("options.{name} has the wrong type");
        match name.as_str() {
            "rateLimit" => options.rate_limit = v.as_bool().ok_or_else(bad)?,
            "sandbox" => options.sandbox = v.as_bool().ok_or_else(bad)?,
            "rateLimitBlockMs" => {
                let ms = v.as_u64().ok_or_else(bad)?;
                options.rate_limit_block = Duration::from_millis(ms);
            }
            "apiVersion" => options.api_version = v.as_str().ok_or_else(bad)?.to_string(),
            "tokenBudget" => {
                let n = v.as_u64().ok_or_else(bad)?;
                options.token_budget = Some(u32::try_from(n).map_err(|_| bad())?);
            }
            "tokenWindowMs" => {
                let ms = v.as_u64().filter(|ms| *ms > 0).ok_or_else(bad)?;
                options.token_window = Some(Duration::from_millis(ms));
            }
            "webhookTimeScale" => {
                let f = v
                    .as_f64()
                    .filter(|f| f.is_finite() && *f > 0.0)
                    .ok_or_else(bad)?;
                options.webhooks.schedule_scale = f;
            }
            "webhookTimeoutMs" => {
                let ms = v.as_u64().filter(|ms| *ms > 0).ok_or_else(bad)?;
                options.webhooks.timeout = Duration::from_millis(ms);
            }
            "apiVersions" => {
                let list = v.as_array().ok_or_else(bad)?;
                options.api_versions = list
                    .iter()
                    .map(|v| v.as_str().map(str::to_string).ok_or_else(bad))
                    .collect::<Result<_, _>>()?;
            }
            _ => return Err(format!("unknown option {name}")),
        }
    }
    Ok(options)
}

/// Header lines from `[name, value, name, value, …]` (node's `req.rawHeaders`).
pub(crate) fn header_pairs(flat: Vec<String>) -> Result<Vec<(String, String)>, String> {
    if !flat.len().is_multiple_of(2) {
        return Err("headers must be name, value pairs".to_string());
    }
    let mut pairs = Vec::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(name), Some(value)) = (it.next(), it.next()) {
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// The local Polar: the seed's keys, the fault set, the request count, the clock offset.
#[wasm_bindgen]
pub struct Emulator {
    core: Core,
    seed: Seed,
}

#[wasm_bindgen]
impl Emulator {
    /// A Polar serving `seed` (seed-file JSON, docs/interfaces.md §3; `undefined`: the demo
    /// seed of `polar-license emulator`) with `options` (JSON: see the package's
    /// `emulator.d.ts`), its generated ids derived from `entropy` (32 random bytes), its keys
    /// created at the time given. Throws on a bad seed or options.
    #[wasm_bindgen(constructor)]
    pub fn new(
        seed: Option<String>,
        options: Option<String>,
        entropy: &[u8],
        unix_ms: f64,
        monotonic_ms: f64,
    ) -> Result<Emulator, JsError> {
        let seed = match seed {
            Some(text) => Seed::from_json(&text).map_err(|e| JsError::new(&e))?,
            None => Seed::demo(),
        };
        let options = match options {
            Some(text) => read_options(&text).map_err(|e| JsError::new(&e))?,
            None => Options::default(),
        };
        let entropy: [u8; 32] = entropy
            .try_into()
            .map_err(|_| JsError::new("entropy must be 32 bytes"))?;
        let now = moment(unix_ms, monotonic_ms)?;
        let core = Core::with_entropy(seed.clone(), options, now, entropy)
            .map_err(|e| JsError::new(&e))?;
        Ok(Emulator { core, seed })
    }

    /// The seed's organization id.
    #[wasm_bindgen(js_name = organizationId)]
    pub fn organization_id(&self) -> String {
        self.core.organization_id().to_string()
    }

    /// The organization token's budget: `[calls per window (0: off), window in ms]`.
    #[wasm_bindgen(js_name = tokenBudget)]
    pub fn token_budget(&self) -> Vec<f64> {
        let (limit, window) = self.core.token_budget();
        vec![f64::from(limit), window.as_secs_f64() * 1000.0]
    }

    /// The webhook attempts due now, as JSON: `[{id, url, headers: [[name, value]…], body,
    /// timeoutMs}]`. The host sends each and reports it with `webhookFinished`.
    #[wasm_bindgen(js_name = webhooksDue)]
    pub fn webhooks_due(&mut self, unix_ms: f64, monotonic_ms: f64) -> Result<String, JsError> {
        let due = self.core.webhooks_due(moment(unix_ms, monotonic_ms)?);
        let list: Vec<Value> = due
            .into_iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id,
                    "url": r.url,
                    "headers": r.headers,
                    "body": String::from_utf8_lossy(&r.body),
                    "timeoutMs": r.timeout.as_millis() as u64,
                })
            })
            .collect();
        serde_json::to_string(&list).map_err(|e| JsError::new(&e.to_string()))
    }

    /// How attempt `id` went: `status` 0 when there was no answer (`error` says why).
    #[wasm_bindgen(js_name = webhookFinished)]
    pub fn webhook_finished(
        &mut self,
        id: f64,
        status: u16,
        body: String,
        error: String,
        unix_ms: f64,
        monotonic_ms: f64,
    ) -> Result<(), JsError> {
        let outcome = if status == 0 {
            WebhookOutcome::Failed { error }
        } else {
            WebhookOutcome::Answered { status, body }
        };
        self.core
            .webhook_finished(id as u64, outcome, moment(unix_ms, monotonic_ms)?);
        Ok(())
    }

    /// The monotonic time (ms) of the next webhook attempt, if one waits.
    #[wasm_bindgen(js_name = webhooksNextAt)]
    pub fn webhooks_next_at(&self) -> Option<f64> {
        self.core
            .webhooks_next_at()
            .map(|d| d.as_secs_f64() * 1000.0)
    }

    /// Sets (JSON; `undefined` clears) the fault of the next change's webhook deliveries.
    #[wasm_bindgen(js_name = setWebhookFault)]
    pub fn set_webhook_fault(&mut self, fault: Option<String>) -> Result<(), JsError> {
        let fault = match fault {
            Some(text) => Some(
                serde_json::from_str::<WebhookFault>(&text)
                    .map_err(|e| JsError::new(&format!("invalid webhook fault: {e}")))?,
            ),
            None => None,
        };
        self.core.set_webhook_fault(fault);
        Ok(())
    }

    /// A new billing period for a key (`benefit_grant.cycled`, the key unchanged); `false` when
    /// the key is unknown.
    #[wasm_bindgen(js_name = cycleKey)]
    pub fn cycle_key(
        &mut self,
        key: String,
        unix_ms: f64,
        monotonic_ms: f64,
    ) -> Result<bool, JsError> {
        Ok(self.core.cycle_key(&key, moment(unix_ms, monotonic_ms)?))
    }

    /// The seed's keys, in its order.
    pub fn keys(&self) -> Vec<String> {
        self.seed
            .license_keys
            .iter()
            .map(|k| k.key.clone())
            .collect()
    }

    /// The banner's lines about the seed, as `polar-license emulator` prints them (one per key,
    /// with its benefit id, and one per access token).
    pub fn banner(&self) -> String {
        self.seed.banner(|key| {
            self.core
                .key(key)
                .and_then(|v| v["benefit_id"].as_str().map(str::to_string))
        })
    }

    /// Sets the fault of every following license request (JSON, as `POST /__emulator/fault`
    /// takes it: `{"kind":"status","status":503,"body":"down"}`, …; `undefined` or `null`
    /// clears it).
    #[wasm_bindgen(js_name = setFault)]
    pub fn set_fault(&mut self, fault: Option<String>) -> Result<(), JsError> {
        let fault: Option<Fault> = match fault {
            Some(text) => {
                serde_json::from_str(&text).map_err(|e| JsError::new(&format!("bad fault: {e}")))?
            }
            None => None,
        };
        self.core.set_fault(fault);
        Ok(())
    }

    /// The fault set, as JSON (`undefined`: none).
    pub fn fault(&self) -> Option<String> {
        self.core
            .fault()
            .and_then(|f| serde_json::to_string(f).ok())
    }

    /// Adds a key (seed-file JSON of one key: `{"key": "…", "limit_activations": 3, …}`),
    /// created at `unix_ms`.
    #[wasm_bindgen(js_name = addKey)]
    pub fn add_key(&mut self, key: String, unix_ms: f64, monotonic_ms: f64) -> Result<(), JsError> {
        let key: SeedKey =
            serde_json::from_str(&key).map_err(|e| JsError::new(&format!("bad key: {e}")))?;
        let now = moment(unix_ms, monotonic_ms)?;
        self.core.add_key(&key, now).map_err(|e| JsError::new(&e))
    }

    /// Changes a key as Polar's `PATCH /v1/license-keys/{id}` (JSON: `status`, `usage`,
    /// `limit_activations`, `limit_usage`, `expires_at`); `false` when the key is unknown or a
    /// value invalid.
    #[wasm_bindgen(js_name = updateKey)]
    pub fn update_key(
        &mut self,
        key: String,
        update: String,
        unix_ms: f64,
        monotonic_ms: f64,
    ) -> Result<bool, JsError> {
        let update: KeyUpdate = serde_json::from_str(&update)
            .map_err(|e| JsError::new(&format!("bad key update: {e}")))?;
        let now = moment(unix_ms, monotonic_ms)?;
        Ok(self.core.update_key(&key, &update, now))
    }

    /// Rotates a key: its new string (`undefined` when unknown).
    #[wasm_bindgen(js_name = rotateKey)]
    pub fn rotate_key(
        &mut self,
        key: String,
        unix_ms: f64,
        monotonic_ms: f64,
    ) -> Result<Option<String>, JsError> {
        let now = moment(unix_ms, monotonic_ms)?;
        Ok(self.core.rotate_key(&key, now))
    }

    /// A key's `LicenseKeyRead` JSON (`undefined` when unknown).
    pub fn key(&self, key: String) -> Option<String> {
        self.core.key(&key).map(|v| v.to_string())
    }

    /// A key's live activations, as a JSON array.
    pub fn activations(&self, key: String) -> String {
        Value::Array(self.core.activations(&key)).to_string()
    }

    /// License requests received (faults and errors included; preflights and admin routes
    /// not).
    #[wasm_bindgen(js_name = requestCount)]
    pub fn request_count(&self) -> f64 {
        self.core.request_count() as f64
    }

    /// Sets the request count back to 0.
    #[wasm_bindgen(js_name = resetRequestCount)]
    pub fn reset_request_count(&mut self) {
        self.core.reset_request_count();
    }

    /// Moves the emulator's clock by whole `seconds` from the host's.
    #[wasm_bindgen(js_name = setClockOffset)]
    pub fn set_clock_offset(&mut self, seconds: f64) -> Result<(), JsError> {
        if !seconds.is_finite()
            || seconds.fract() != 0.0
            || seconds.abs() > 9.007_199_254_740_992e15
        {
            return Err(JsError::new("the clock offset must be whole seconds"));
        }
        self.core.set_clock_offset(seconds as i64);
        Ok(())
    }

    /// The host started writing a fault's body (slow or huge): `GET /__emulator/streams`.
    #[wasm_bindgen(js_name = streamStarted)]
    pub fn stream_started(&mut self) {
        self.core.stream_started();
    }

    /// The host stopped writing a fault's body (done, or the client went away).
    #[wasm_bindgen(js_name = streamEnded)]
    pub fn stream_ended(&mut self) {
        self.core.stream_ended();
    }
}

/// An `Emulator` method that answers a request through the core's method of the same name (its
/// method, target, header lines, body, the client's address, and the time), in an `impl` block
/// of its own: `handle` and `resume` take the same arguments and differ only in the core's call.
macro_rules! answering {
    ($(#[$doc:meta])* $name:ident) => {
        #[wasm_bindgen]
        impl Emulator {
            $(#[$doc])*
            #[allow(clippy::too_many_arguments)]
            pub fn $name(
                &mut self,
                method: String,
                target: String,
                headers: Vec<String>,
                body: Vec<u8>,
                peer: String,
                unix_ms: f64,
                monotonic_ms: f64,
            ) -> Result<Answer, JsError> {
                let req = request(method, target, headers, body, peer)?;
                let now = moment(unix_ms, monotonic_ms)?;
                Ok(Answer::from(self.core.$name(&req, now)))
            }
        }
    };
}

answering!(
    /// Answers one request: its method, target (path and query as sent), header lines as
    /// `[name, value, …]`, whole body, the client's address, and the time.
    handle
);

answering!(
    /// The answer to a request whose `delay` has passed (the same arguments as
    /// [`Emulator::handle`], the time being the end of the delay).
    resume
);

fn request(
    method: String,
    target: String,
    headers: Vec<String>,
    body: Vec<u8>,
    peer: String,
) -> Result<Request, JsError> {
    Ok(Request {
        method,
        target,
        headers: header_pairs(headers).map_err(|e| JsError::new(&e))?,
        body,
        peer,
    })
}

/// The core's answer to a request, and how to send it.
#[wasm_bindgen]
pub struct Answer {
    status: u16,
    headers: Vec<String>,
    body: Vec<u8>,
    close: bool,
    delivery: &'static str,
    amount: f64,
}

impl From<Response> for Answer {
    fn from(r: Response) -> Answer {
        let (delivery, amount) = match r.delivery {
            Delivery::Whole => ("whole", 0),
            Delivery::Delay { ms } => ("delay", ms),
            Delivery::SlowBody { ms_per_byte } => ("slow_body", ms_per_byte),
            Delivery::Truncated { content_length } => ("truncated", content_length),
            Delivery::Huge { bytes } => ("huge", bytes),
            Delivery::Hang => ("hang", 0),
            Delivery::Close => ("close", 0),
        };
        Answer {
            status: r.status,
            headers: r.headers.into_iter().flat_map(|(k, v)| [k, v]).collect(),
            body: r.body,
            close: r.close,
            delivery,
            amount: amount as f64,
        }
    }
}

#[wasm_bindgen]
impl Answer {
    /// The status (0 for `delay`, `hang` and `close`: nothing to send yet, or ever).
    #[wasm_bindgen(getter)]
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The headers as `[name, value, …]`, `date` first; never `content-length` (the host adds
    /// it: the body's length, or `amount` for `truncated` and `huge`, but on 1xx, 204 and 304).
    #[wasm_bindgen(getter)]
    pub fn headers(&self) -> Vec<String> {
        self.headers.clone()
    }

    /// The body.
    #[wasm_bindgen(getter)]
    pub fn body(&self) -> Vec<u8> {
        self.body.clone()
    }

    /// The connection closes after this answer.
    #[wasm_bindgen(getter)]
    pub fn close(&self) -> bool {
        self.close
    }

    /// How to send it: `whole`, `delay` (wait `amount` ms, then send what `resume` answers),
    /// `slow_body` (the head, then each body byte after `amount` ms), `truncated` (declare
    /// `amount` bytes, send the shorter body, close), `huge` (declare and stream `amount`
    /// bytes of `{"p":"xxx…"}`), `hang` (never answer) or `close` (close without answering).
    #[wasm_bindgen(getter)]
    pub fn delivery(&self) -> String {
        self.delivery.to_string()
    }

    /// The number `delivery` names (ms or bytes; 0 when none).
    #[wasm_bindgen(getter)]
    pub fn amount(&self) -> f64 {
        self.amount
    }
}
