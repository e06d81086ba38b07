//! Pack time only (scripts/build-npm.sh, scripts/npm/stopped.mjs): the core's sentence for why
//! a key stopped, `polar_license::stopped::Stopped::user_message` (not a link: natively this
//! crate is empty), for `wasm32-unknown-unknown`. Never shipped: the pack asks it each kind's sentence, undated and dated, and
//! writes them into license.js as a table with the date's place (checked there against this
//! module for every kind, both dates and dates far apart), so that the npm engine's wasm, which
//! every check downloads, carries none of the words and the package still has one wording, the
//! core's.

#![cfg(target_arch = "wasm32")]

use polar_license::stopped::{self, StopKind, Stopped};
use wasm_bindgen::prelude::*;

/// The sentence for the detail `text` ([`Stopped::to_text`]'s form: `paused; at=N; until=N`),
/// or `undefined` when it does not read.
#[wasm_bindgen(js_name = userMessage)]
pub fn user_message(text: &str) -> Option<String> {
    Stopped::from_text(text).map(|s| s.user_message())
}

/// Every kind's code ([`StopKind::ALL`]), comma-separated.
#[wasm_bindgen]
pub fn kinds() -> String {
    StopKind::ALL.map(StopKind::code).join(",")
}

/// The date `secs` (unix seconds) as the sentences write it ([`stopped::date`]).
#[wasm_bindgen]
pub fn day(secs: i64) -> String {
    stopped::date(secs)
}

/// The core's words for what happened where nothing failed, and its last resort
/// ([`polar_license::message`]), by the gate's name for them (`licensed`, `offlineGrace` with no
/// grace end known, `deactivated`, `noDevices`, `noKeys`, `unknown`), as one line
/// ([`polar_license::Message::text`]); `undefined` for another name. scripts/npm/gate-words.mjs
/// writes them into ui.js, for a client of the app's own whose answers carry no `userMessage`.
#[wasm_bindgen(js_name = gateWords)]
pub fn gate_words(name: &str) -> Option<String> {
    use polar_license::message;
    Some(match name {
        "licensed" => message::LICENSED.to_string(),
        "offlineGrace" => message::LICENSED_OFFLINE_UNDATED.text(),
        "deactivated" => message::DEACTIVATED.text(),
        "noDevices" => message::NO_DEVICES.text(),
        "noKeys" => message::NO_KEYS.text(),
        "unknown" => message::UNKNOWN.text(),
        _ => return None,
    })
}

#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
