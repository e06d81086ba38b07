//! Where cache records live in JS hosts: the [`AsyncStore`] trait, `localStorage`
//! ([`WebStorage`]), a [`MemoryStore`] and the app's own `{ get, set, remove }` ([`JsStore`]).
//!
//! Values are strings: a record is the native cache text ([`crate::cache::encode`], UTF-8),
//! the install secret is 64 hex digits. Every failure is [`Error::Cache`]; nothing panics.

use super::js::{describe, LocalFuture};
use crate::error::Error;
use std::cell::RefCell;
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
/// instance (so two `LicenseClient`s over the same storage never interleave on one key).
#[derive(Default)]
struct Locks {
    held: HashSet<String>,
    waiting: Vec<Waker>,
}

thread_local! {
    static LOCKS: RefCell<Locks> = RefCell::default();
}

/// A held slot lock; released (and waiters woken) when dropped.
pub(crate) struct SlotGuard {
    name: String,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let waiting = LOCKS.with(|locks| {
            let mut locks = locks.borrow_mut();
            locks.held.remove(&self.name);
            std::mem::take(&mut locks.waiting)
        });
        for waker in waiting {
            waker.wake();
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
                Poll::Ready(SlotGuard {
                    name: self.name.clone(),
                })
            } else {
                locks.waiting.push(cx.waker().clone());
                Poll::Pending
            }
        })
    }
}

/// Waits for the lock of `name` (in-process only; other tabs and processes are not locked
/// out: at worst they send one more validate, and each write is folded into the record as it
/// was read, under the ledger's sequence numbers).
pub(crate) fn lock(name: &str) -> impl Future<Output = SlotGuard> {
    Acquire {
        name: name.to_string(),
    }
}

/// Takes the lock of `name` when it is free, without waiting: `None` while another holds it.
/// A check holds its slot's "ask marker" this way while it asks Polar, so that the other
/// checks of the key answer from the cache at once instead of queueing behind a hung server.
pub(crate) fn try_lock(name: &str) -> Option<SlotGuard> {
    LOCKS.with(|locks| {
        locks
            .borrow_mut()
            .held
            .insert(name.to_string())
            .then(|| SlotGuard {
                name: name.to_string(),
            })
    })
}
