//! Async without a runtime: a blocking call run on a thread of its own, behind a future any
//! executor can await (tokio, async-std, smol, a GUI toolkit's, `pollster::block_on`). The
//! library depends on no executor; the thread wakes the awaiting task when the answer is in.
//!
//! Dropping the future does not stop the work: the thread finishes its request (bounded by
//! the client's timeouts), writes the cache as a blocking call would, and its answer is
//! dropped.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// What the thread and the future share.
struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
}

/// The answer of a blocking call made on its own thread. `Send` when `T` is; resolves once.
#[must_use = "a future does nothing visible unless awaited (the work runs regardless)"]
pub struct Blocking<T> {
    slot: Arc<Mutex<Slot<T>>>,
}

impl<T> std::fmt::Debug for Blocking<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blocking").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while the lock is held cannot leave the slot half-written (two plain stores).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T: Send + 'static> Blocking<T> {
    /// Runs `work` on a new thread; when no thread can be started, the future resolves at
    /// once to `unstarted(error)`.
    pub(crate) fn spawn(
        work: impl FnOnce() -> T + Send + 'static,
        unstarted: impl FnOnce(std::io::Error) -> T,
    ) -> Blocking<T> {
        let slot = Arc::new(Mutex::new(Slot {
            value: None,
            waker: None,
        }));
        let shared = Arc::clone(&slot);
        let started = std::thread::Builder::new()
            .name("polar-license-async".into())
            .spawn(move || {
                let value = work();
                let waker = {
                    let mut s = lock(&shared);
                    s.value = Some(value);
                    s.waker.take()
                };
                if let Some(waker) = waker {
                    waker.wake();
                }
            });
        if let Err(e) = started {
            lock(&slot).value = Some(unstarted(e));
        }
        Blocking { slot }
    }
}

impl<T> Future for Blocking<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut s = lock(&self.slot);
        match s.value.take() {
            Some(value) => Poll::Ready(value),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
