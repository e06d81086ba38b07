//! Where cache records live in JS hosts: the [`AsyncStore`] trait, `localStorage`
//! ([`WebStorage`]), a [`MemoryStore`] and the app's own `{ get, set, remove }` ([`JsStore`]).
//!
//! Values are strings: a record is the native cache text ([`crate::cache::encode`], UTF-8),
//! the install secret is 64 hex digits. Every failure is [`Error::Cache`]; nothing panics.

use super::js::{describe, LocalFuture};
use crate::error::Error;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// Storage for cache records: named strings. Object safe, so JS adapters plug in.
pub trait AsyncStore {
    /// The string stored under `name`, or `None`.
    fn get<'a>(&'a self, name: &'a str) -> LocalFuture<'a, Result<Option<String>, Error>>;
    /// Replaces the string under `name`.
    fn set<'a>(&'a self, name: &'a str, value: &'a str) -> LocalFuture<'a, Result<(), Error>>;
    /// Removes `name`; removing a missing name is not an error.
    fn remove<'a>(&'a self, name: &'a str) -> LocalFuture<'a, Result<(), Error>>;
}

fn cache_err(what: &str, e: &JsValue) -> Error {
    Error::Cache {
        detail: format!("{what}: {}", describe(e)),
    }
}

// ---------------------------------------------------------------------------------------------
// Memory

/// A store in memory (the default where there is no `localStorage`, e.g. node): nothing
/// survives the process. Clones share the same map.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    map: Rc<RefCell<HashMap<String, String>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }
}

impl AsyncStore for MemoryStore {
    fn get<'a>(&'a self, name: &'a str) -> LocalFuture<'a, Result<Option<String>, Error>> {
        let value = self.map.borrow().get(name).cloned();
        Box::pin(async move { Ok(value) })
    }

    fn set<'a>(&'a self, name: &'a str, value: &'a str) -> LocalFuture<'a, Result<(), Error>> {
        self.map
            .borrow_mut()
            .insert(name.to_string(), value.to_string());
        Box::pin(async { Ok(()) })
    }

    fn remove<'a>(&'a self, name: &'a str) -> LocalFuture<'a, Result<(), Error>> {
        self.map.borrow_mut().remove(name);
        Box::pin(async { Ok(()) })
    }
}

// ---------------------------------------------------------------------------------------------
// JS objects

fn method(target: &JsValue, name: &str) -> Option<js_sys::Function> {
    js_sys::Reflect::get(target, &JsValue::from_str(name))
        .ok()?
        .dyn_into::<js_sys::Function>()
        .ok()
}

/// Calls `target[name](args…)` and awaits the result if it is a promise (or any thenable).
async fn call(target: &JsValue, name: &str, args: &[&JsValue]) -> Result<JsValue, Error> {
    let f = method(target, name).ok_or_else(|| Error::Cache {
        detail: format!("storage has no {name}() function"),
    })?;
    let array = js_sys::Array::new();
    for arg in args {
        array.push(arg);
    }
    let value = f
        .apply(target, &array)
        .map_err(|e| cache_err(&format!("storage {name}() threw"), &e))?;
    let is_thenable = value.is_object() && method(&value, "then").is_some();
    if !is_thenable {
        return Ok(value);
    }
    JsFuture::from(js_sys::Promise::resolve(&value))
        .await
        .map_err(|e| cache_err(&format!("storage {name}() rejected"), &e))
}

fn as_text(value: JsValue, name: &str) -> Result<Option<String>, Error> {
    if value.is_null() || value.is_undefined() {
        return Ok(None);
    }
    value.as_string().map(Some).ok_or_else(|| Error::Cache {
        detail: format!("storage returned a non-string value for {name:?}"),
    })
}

/// The app's storage: any JS object with `get(name)`, `set(name, value)` and `remove(name)`,
/// each returning its result directly or as a promise. `get` answers a string, or
/// `null`/`undefined` when there is none. An Electron main process can keep the strings in
/// a file this way.
#[derive(Debug, Clone)]
pub struct JsStore {
    target: JsValue,
}

impl JsStore {
    /// Wraps `target`; fails with `invalid_input` (field `storage`) when one of the three
    /// functions is missing.
    pub fn new(target: JsValue) -> Result<JsStore, Error> {
        for name in ["get", "set", "remove"] {
            if method(&target, name).is_none() {
                return Err(Error::invalid(
                    "storage",
                    format!("must be an object with get, set and remove functions (no {name})"),
                ));
            }
        }
        Ok(JsStore { target })
    }
}

/// [`AsyncStore`] for a wrapper of a JS object (its `target`) through three of the object's
/// methods, named `$get`, `$set` and `$remove`: [`JsStore`] and [`WebStorage`] differ only in
/// those names.
macro_rules! store_through_methods {
    ($store:ty, $get:literal, $set:literal, $remove:literal) => {
        impl AsyncStore for $store {
            fn get<'a>(&'a self, name: &'a str) -> LocalFuture<'a, Result<Option<String>, Error>> {
                Box::pin(async move {
                    as_text(
                        call(&self.target, $get, &[&JsValue::from_str(name)]).await?,
                        name,
                    )
                })
            }

            fn set<'a>(
                &'a self,
                name: &'a str,
                value: &'a str,
            ) -> LocalFuture<'a, Result<(), Error>> {
                Box::pin(async move {
                    let args = [&JsValue::from_str(name), &JsValue::from_str(value)];
                    call(&self.target, $set, &args).await.map(drop)
                })
            }

            fn remove<'a>(&'a self, name: &'a str) -> LocalFuture<'a, Result<(), Error>> {
                Box::pin(async move {
                    call(&self.target, $remove, &[&JsValue::from_str(name)])
                        .await
                        .map(drop)
                })
            }
        }
    };
}

store_through_methods!(JsStore, "get", "set", "remove");

/// A Web Storage object (`localStorage`, `sessionStorage`): `getItem`, `setItem`,
/// `removeItem`. Quota and security errors are `cache_error`.
#[derive(Debug, Clone)]
pub struct WebStorage {
    target: JsValue,
}

impl WebStorage {
    /// `globalThis.localStorage`, when the host has a usable one (browsers, Electron
    /// renderers); `None` in node, in sandboxed frames and where access throws.
    pub fn local() -> Option<WebStorage> {
        let global: JsValue = js_sys::global().into();
        // Reading the property itself throws a SecurityError in some sandboxed contexts.
        let storage = js_sys::Reflect::get(&global, &JsValue::from_str("localStorage")).ok()?;
        let store = WebStorage::new(storage)?;
        // Node >= 22 may define a `localStorage` that throws or warns unless configured.
        let probe = method(&store.target, "getItem")?;
        probe
            .call1(&store.target, &JsValue::from_str("polar-license.probe"))
            .ok()?;
        Some(store)
    }

    /// Wraps a Web Storage object; `None` when it lacks `getItem`, `setItem` or `removeItem`.
    pub fn new(target: JsValue) -> Option<WebStorage> {
        ["getItem", "setItem", "removeItem"]
            .iter()
            .all(|name| method(&target, name).is_some())
            .then_some(WebStorage { target })
    }
}

store_through_methods!(WebStorage, "getItem", "setItem", "removeItem");

// ---------------------------------------------------------------------------------------------
// Slot locks

/// Slots held by a check or an activation in progress, shared by every client of this wasm
/// instance (so two `LicenseClient`s over the same storage never interleave on one key): the
/// lock of a host without Web Locks.
#[derive(Default)]
struct Locks {
    held: HashSet<String>,
    waiting: Vec<Waker>,
}

thread_local! {
    static LOCKS: RefCell<Locks> = RefCell::default();
    /// The host refused Web Locks once (a SecurityError: an opaque origin, a sandboxed
    /// frame): this instance's locks from then on, as license.js does.
    static WEB_REFUSED: Cell<bool> = const { Cell::new(false) };
}

/// How long (ms) a slot's Web Lock held elsewhere (another tab, window or worker) is waited
/// for: license.js's `LOCK_WAIT`. A frozen tab must not stall the others, and a lock is never
/// stolen from a holder that may still write.
const LOCK_WAIT_MS: i32 = 5000;

/// A held slot lock; released (and waiters woken) when dropped.
pub(crate) enum SlotGuard {
    /// This instance's lock of `name`.
    Local(String),
    /// A Web Lock: held until this function (the resolve of the promise the lock's callback
    /// returned) is called.
    Web(js_sys::Function),
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        match self {
            SlotGuard::Local(name) => {
                let waiting = LOCKS.with(|locks| {
                    let mut locks = locks.borrow_mut();
                    locks.held.remove(name.as_str());
                    std::mem::take(&mut locks.waiting)
                });
                for waker in waiting {
                    waker.wake();
                }
            }
            SlotGuard::Web(release) => {
                // Let go in a task after this one, as license.js does: Firefox hands a task's
                // localStorage writes to the other tabs when the task ends, and a tab that took
                // the lock before then would read the slot as it was (tests/browser/
                // late-grant.test.mjs, the trial race, shows it for license.js). Where the host
                // has no `setTimeout`, at once. Resolving a promise cannot throw; if it did,
                // the lock would outlive the page's use of it, never a write.
                let global = js_sys::global();
                let later = js_sys::Reflect::get(&global, &JsValue::from_str("setTimeout"))
                    .ok()
                    .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
                if later.is_none_or(|set| set.call1(&global, release).is_err()) {
                    let _ = release.call0(&JsValue::UNDEFINED);
                }
            }
        }
    }
}

struct Acquire {
    name: String,
}

impl Future for Acquire {
    type Output = SlotGuard;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<SlotGuard> {
        LOCKS.with(|locks| {
            let mut locks = locks.borrow_mut();
            if locks.held.insert(self.name.clone()) {
                Poll::Ready(SlotGuard::Local(self.name.clone()))
            } else {
                locks.waiting.push(cx.waker().clone());
                Poll::Pending
            }
        })
    }
}

/// The host's `navigator.locks` and its `request`, unless absent or refused once.
fn web_locks() -> Option<(JsValue, js_sys::Function)> {
    if WEB_REFUSED.with(Cell::get) {
        return None;
    }
    let global: JsValue = js_sys::global().into();
    let navigator = js_sys::Reflect::get(&global, &JsValue::from_str("navigator")).ok()?;
    if !navigator.is_object() {
        return None;
    }
    let locks = js_sys::Reflect::get(&navigator, &JsValue::from_str("locks")).ok()?;
    if !locks.is_object() {
        return None;
    }
    let request = method(&locks, "request")?;
    Some((locks, request))
}

/// What a Web Lock request came to.
enum WebLock {
    /// Held: the guard releases it.
    Held(SlotGuard),
    /// Not had: held elsewhere (`ifAvailable`), or not within [`LOCK_WAIT_MS`].
    Busy,
    /// The host refused Web Locks here.
    Refused,
}

/// Requests the exclusive Web Lock `name`: with `if_available`, only when it is free at once;
/// otherwise waited for at most [`LOCK_WAIT_MS`] (an `AbortSignal`). The lock's callback
/// returns a promise whose resolve is handed out as the guard, so the lock is held until the
/// guard drops; JS functions (the promise's own resolve and reject, a bound `abort`) carry
/// every other signal, so the only Rust closure is that callback (left to the collector when
/// a wait is aborted before it runs).
async fn web_lock(
    locks: &JsValue,
    request: &js_sys::Function,
    name: &str,
    if_available: bool,
) -> WebLock {
    let mut hands = None;
    let granted = js_sys::Promise::new(&mut |resolve, reject| hands = Some((resolve, reject)));
    let Some((resolve, reject)) = hands else {
        return WebLock::Refused;
    };
    let options = js_sys::Object::new();
    let mut timer = None;
    let set = |key: &str, value: &JsValue| {
        js_sys::Reflect::set(&options, &JsValue::from_str(key), value).is_ok()
    };
    if if_available {
        set("ifAvailable", &JsValue::TRUE);
    } else if let Ok(abort) = web_sys::AbortController::new() {
        let global: JsValue = js_sys::global().into();
        let abort_now = method(&abort, "abort").map(|f| f.bind0(&abort));
        let set_timeout = method(&global, "setTimeout");
        if let (Some(abort_now), Some(set_timeout)) = (abort_now, set_timeout) {
            let wait = JsValue::from(LOCK_WAIT_MS);
            timer = set_timeout.call2(&global, &abort_now, &wait).ok();
            set("signal", &abort.signal());
        }
    }
    let callback = wasm_bindgen::closure::Closure::once_into_js(move |lock: JsValue| -> JsValue {
        if lock.is_null() {
            // `ifAvailable` and held elsewhere: nothing to hold.
            let _ = resolve.call1(&JsValue::UNDEFINED, &JsValue::NULL);
            return JsValue::UNDEFINED;
        }
        js_sys::Promise::new(&mut |release, _| {
            let _ = resolve.call1(&JsValue::UNDEFINED, &release);
        })
        .into()
    });
    let name = JsValue::from_str(name);
    let refused = match request.call3(locks, &name, &options, &callback) {
        // The request's promise rejects when the wait is aborted or the host refuses: it
        // rejects `granted` (no effect once granted).
        Ok(promise) => match method(&promise, "then") {
            Some(then) => then.call2(&promise, &JsValue::UNDEFINED, &reject).is_err(),
            None => true,
        },
        Err(_) => true,
    };
    if refused {
        return WebLock::Refused;
    }
    let outcome = JsFuture::from(granted).await;
    if let (Some(timer), Some(clear)) = (timer, method(&js_sys::global(), "clearTimeout")) {
        let _ = clear.call1(&JsValue::UNDEFINED, &timer);
    }
    match outcome {
        Ok(release) => match release.dyn_into::<js_sys::Function>() {
            Ok(release) => WebLock::Held(SlotGuard::Web(release)),
            Err(_) => WebLock::Busy,
        },
        Err(e) => {
            let name = js_sys::Reflect::get(&e, &JsValue::from_str("name")).unwrap_or_default();
            if name.as_string().as_deref() == Some("AbortError") {
                WebLock::Busy
            } else {
                WebLock::Refused
            }
        }
    }
}

/// Waits for the lock of `name` (a storage name: `polar-license.…`). Where the host has Web
/// Locks (`navigator.locks`: browsers, their workers, Electron's windows) it is the origin's
/// Web Lock of that name, the one license.js takes, shared by every tab, window and worker of
/// the origin, and waited for at most [`LOCK_WAIT_MS`]: a `cache_error` then, as license.js.
/// Elsewhere (node, an opaque origin) this instance's lock: other processes are not locked
/// out, and each write of a record is ordered by its ledger (`AsyncLicensing`'s drive).
pub(crate) async fn lock(name: &str) -> Result<SlotGuard, Error> {
    if let Some((locks, request)) = web_locks() {
        match web_lock(&locks, &request, name, false).await {
            WebLock::Held(guard) => return Ok(guard),
            WebLock::Busy => {
                return Err(Error::Cache {
                    detail: format!(
                        "this key's storage is held by another tab or window (waited {LOCK_WAIT_MS} ms)"
                    ),
                })
            }
            WebLock::Refused => WEB_REFUSED.with(|r| r.set(true)),
        }
    }
    Ok(Acquire {
        name: name.to_string(),
    }
    .await)
}

/// Takes the lock of `name` when it is free, without waiting: `None` while another holds it
/// (with Web Locks, `ifAvailable`: in any tab of the origin). A check holds its slot's "ask
/// marker" this way while it asks Polar, so that the other checks of the key answer from the
/// cache at once instead of queueing behind a hung server.
pub(crate) async fn try_lock(name: &str) -> Option<SlotGuard> {
    if let Some((locks, request)) = web_locks() {
        match web_lock(&locks, &request, name, true).await {
            WebLock::Held(guard) => return Some(guard),
            WebLock::Busy => return None,
            WebLock::Refused => WEB_REFUSED.with(|r| r.set(true)),
        }
    }
    LOCKS.with(|locks| {
        locks
            .borrow_mut()
            .held
            .insert(name.to_string())
            .then(|| SlotGuard::Local(name.to_string()))
    })
}
