//! Answer at once at launch and revalidate in the background.
//!
//!     cargo run --example background_check
//!
//! `check_in_background` answers from the cache immediately (or "not yet verified" when there
//! is nothing usable) and, when the policy wants a fresh verdict, asks Polar on a thread of
//! its own and calls back with the answer. Here Polar answers slowly (a 500 ms delay the
//! emulator injects): the app starts at once, in a limited mode, and upgrades on the callback.

use polar_license::Licensing;
use polar_license_emulator::{Emulator, Fault, Options, Seed, DEMO_KEY};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let polar = Emulator::start(Seed::demo(), Options::default())?;
    polar.set_fault(Some(Fault::Delay { ms: 500 }));
    let licensing = Licensing::builder(polar.organization_id())
        .base_url(polar.url())
        .memory_store()?
        .build()?;

    let started = Instant::now();
    let (tx, rx) = mpsc::channel();
    let (now, pending) = licensing.check_in_background(DEMO_KEY, move |fresh| {
        let _ = tx.send(fresh); // hand it to your UI thread
    });
    println!(
        "at launch, after {} ms: {} ({})",
        started.elapsed().as_millis(),
        now.kind(),
        now.reason().map(|r| r.code()).unwrap_or("licensed")
    );
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "did not wait for Polar"
    );
    if pending.is_some() {
        let fresh = rx.recv_timeout(Duration::from_secs(10))?;
        println!(
            "after {} ms: {}",
            started.elapsed().as_millis(),
            if fresh.is_licensed() {
                "licensed: unlock the app"
            } else {
                "not licensed"
            }
        );
        assert!(fresh.is_licensed());
    }
    Ok(())
}
