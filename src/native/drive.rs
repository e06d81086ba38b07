//! The native shell's one drive loop for the client's timed machines ([`Standalone`]:
//! devices, usage, a seat request, a seat's hold): it sends what they ask, sleeps as long as
//! they say, reads the clock when they ask, and hands back what came. Every schedule and
//! every retry is the machine's ([`crate::flow::timed`]); `Licensing`'s loop answers the same
//! wants through [`BlockingClient::answer`] and adds its store's.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::flow::{Given, Standalone, Want};
use crate::portal::PortalRequest;
use crate::proto::HttpRequest;

use super::clock::system_clock_ms;
use super::BlockingClient;

/// What a machine asked of the network or the clock, owned: done with the machine's lock
/// released (a seat's hold is read by the app while its heartbeat is out).
#[derive(Debug)]
pub(crate) enum Io {
    Send(HttpRequest),
    Portal(PortalRequest),
    Wait(Duration),
    Clock,
    /// Done, or a want of a store this shell part has none of (a timed machine asks none).
    Done,
}

impl Io {
    pub(crate) fn of(want: Want<'_>) -> Io {
        match want {
            Want::Send(request) => Io::Send(request.clone()),
            Want::Portal(request) => Io::Portal(request.clone()),
            Want::Wait(wait) => Io::Wait(wait),
            Want::Clock => Io::Clock,
            _ => Io::Done,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl BlockingClient {
    /// What came of `io` (a wait is slept through here; [`BlockingClient::drive_shared`]'s
    /// caller may wait otherwise). `None` for [`Io::Done`].
    pub(crate) fn answer(&self, io: &Io) -> Option<Given> {
        Some(match io {
            Io::Send(request) => Given::Response(self.send(request)),
            Io::Portal(request) => Given::Response(self.portal_response(request)),
            Io::Wait(wait) => {
                std::thread::sleep(*wait);
                Given::Waited
            }
            Io::Clock => Given::Clock(system_clock_ms()),
            Io::Done => return None,
        })
    }

    /// Drives `machine` until it is done, sleeping through its waits: the one loop.
    pub fn drive<M: Standalone>(&self, machine: M) -> M {
        let cell = Mutex::new(machine);
        self.drive_shared(
            &cell,
            |wait| {
                std::thread::sleep(wait);
                true
            },
            |_| true,
        );
        cell.into_inner().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drives the machine in `shared` until it is done, its lock held only while it is asked
    /// and told, never over a request or a wait (an app reads a seat's hold meanwhile).
    /// `wait` does a wait the machine asks for (`false`: stop driving, the app is done with
    /// it); `seen` looks at the machine after each step (`false`: stop driving). Returns
    /// whether the machine is done.
    pub fn drive_shared<M: Standalone>(
        &self,
        shared: &Mutex<M>,
        mut wait: impl FnMut(Duration) -> bool,
        mut seen: impl FnMut(&mut M) -> bool,
    ) -> bool {
        loop {
            let io = Io::of(lock(shared).want());
            let given = match io {
                Io::Wait(d) => {
                    if !wait(d) {
                        return false;
                    }
                    Given::Waited
                }
                io => match self.answer(&io) {
                    Some(given) => given,
                    None => return true,
                },
            };
            let mut machine = lock(shared);
            machine.give(given);
            if !seen(&mut machine) {
                return false;
            }
        }
    }
}
