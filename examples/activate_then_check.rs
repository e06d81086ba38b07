//! Activate once per machine, then check at every launch.
//!
//!     cargo run --example activate_then_check
//!
//! Runs against a local Polar (the crate polar-license-emulator) so it needs no network and no account;
//! an app leaves out `base_url` (production) and the emulator. Run it twice in one process's
//! lifetime and the second launch does not activate again: the cache remembers the activation.

use polar_license::{ActivateRequest, Licensing, Verdict};
use polar_license_emulator::{Emulator, Options, Seed, DEMO_KEY};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let polar = Emulator::start(Seed::demo(), Options::default())?;
    let cache = std::env::temp_dir().join(format!("polar-license-example-{}", std::process::id()));
    let licensing = Licensing::builder(polar.organization_id())
        .base_url(polar.url()) // leave out for production
        .cache_dir(&cache) // default: <data dir>/polar-license/<app id>
        .require_activation(true)
        .build()?;

    for launch in 1..=2 {
        // Once per machine: each activate takes one of the key's slots.
        if licensing.status(DEMO_KEY)?.activation.is_none() {
            match licensing.activate(&ActivateRequest::new(DEMO_KEY, "my laptop"))? {
                Verdict::Accepted(read) => {
                    println!("launch {launch}: activated {}", read.activation.id)
                }
                Verdict::Denied(denial) => {
                    println!("launch {launch}: {}", denial.user_message());
                    return Ok(());
                }
            }
        }
        // Every launch: online when stale, from the cache within the grace period.
        let verdict = licensing.check(DEMO_KEY);
        println!("launch {launch}: check {}", verdict.kind());
        assert!(verdict.is_licensed());
    }
    assert_eq!(
        polar.activations(DEMO_KEY).len(),
        1,
        "one slot taken, not two"
    );
    std::fs::remove_dir_all(&cache).ok();
    Ok(())
}
