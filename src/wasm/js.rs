//! What every file of the wasm32 shell shares about its JS host: a single-threaded future,
//! a JS failure described as text, and the clock.

use std::future::Future;
use std::pin::Pin;
use wasm_bindgen::{JsCast, JsValue};

/// A boxed, single-threaded future (the JS event loop has one thread).
pub type LocalFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// A short description of a JS failure, e.g. `TypeError: fetch failed (ECONNREFUSED)`.
pub fn describe(value: &JsValue) -> String {
    if let Some(e) = value.dyn_ref::<js_sys::Error>() {
        let mut text = format!("{}: {}", String::from(e.name()), String::from(e.message()));
        // node's undici puts the socket error in `cause` (`ECONNREFUSED`, `ENOTFOUND`, …).
        let cause = js_sys::Reflect::get(e, &JsValue::from_str("cause")).unwrap_or_default();
        let code = js_sys::Reflect::get(&cause, &JsValue::from_str("code"))
            .ok()
            .and_then(|c| c.as_string());
        if let Some(code) = code {
            text.push_str(&format!(" ({code})"));
        }
        return text;
    }
    value
        .as_string()
        .unwrap_or_else(|| "unknown JavaScript error".to_string())
}

/// The local clock in unix seconds, from `Date.now()`.
pub fn date_now() -> i64 {
    // Date.now() is milliseconds as an integral f64, far inside i64's range.
    (js_sys::Date::now() / 1000.0).floor() as i64
}

/// The local clock in unix milliseconds, from `Date.now()` (a machine's [`crate::flow::Want::Clock`]).
pub fn now_ms() -> u64 {
    // Date.now() is whole milliseconds as an f64, far inside u64's range (0 before 1970).
    js_sys::Date::now().max(0.0) as u64
}

/// Waits `after` on the host's `setTimeout` (at once where the host has none).
pub async fn sleep(after: std::time::Duration) {
    if after.is_zero() {
        return;
    }
    let ms = after.as_secs_f64() * 1000.0;
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        let global = js_sys::global();
        let set = js_sys::Reflect::get(&global, &JsValue::from_str("setTimeout"))
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
        let armed =
            set.is_some_and(|set| set.call2(&global, &resolve, &JsValue::from_f64(ms)).is_ok());
        if !armed {
            let _ = resolve.call0(&JsValue::UNDEFINED);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}
