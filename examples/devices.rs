//! Out of activations, in the app: sign in with the emailed code, list the key's devices with
//! this machine marked, free another one, and activate here again (issue #80: the path a GUI
//! app walks, with no command line shipped beside it).
//!
//!     cargo run --example devices
//!
//! Runs against a local Polar (the crate polar-license-emulator), whose demo key allows three
//! machines and whose benefit lets customers see their devices ("customers can manage
//! activations" in Polar). Two other machines and this one hold the three seats; a fourth
//! machine is refused until the customer frees the old laptop from here.

use polar_license::portal::{KeyDevices, PortalError};
use polar_license::{ActivateRequest, Licensing, MachineBinding, Reason, Verdict};
use polar_license_emulator::{Emulator, Options, Seed, DEMO_KEY};
use std::path::Path;

/// The demo key's customer: Polar mails the sign-in code here.
const EMAIL: &str = "jane.doe@gmail.com";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let polar = Emulator::start(Seed::demo(), Options::default())?;
    let scratch =
        std::env::temp_dir().join(format!("polar-license-devices-{}", std::process::id()));
    // One cache directory and one machine id per machine: each stands in for a computer of
    // the customer's (on one computer, the OS's id would make every one of them this machine).
    let machine = |name: &str| machine(&polar, &scratch.join(name), name);

    for (name, label) in [("old", "Old laptop"), ("office", "Office desktop")] {
        accepted(machine(name)?.activate(&ActivateRequest::new(DEMO_KEY, label))?)?;
    }
    let here = machine("here")?;
    accepted(here.activate(&ActivateRequest::new(DEMO_KEY, "This laptop"))?)?;
    let new_one = machine("new")?;
    match new_one.activate(&ActivateRequest::new(DEMO_KEY, "New laptop"))? {
        Verdict::Denied(d) if d.reason == Reason::ActivationLimit => {
            println!("new laptop: {}", d.user_message())
        }
        _ => return Err("expected the activation limit".into()),
    }

    // Sign in: Polar mails a 6-character code; the app asks the customer to type it. The
    // emulator mails nothing: it keeps the code where this example reads it.
    here.client().request_sign_in_code(EMAIL)?;
    let code = polar
        .customer_session_codes()
        .last()
        .and_then(|c| c["code"].as_str().map(str::to_owned))
        .ok_or("the emulator kept no code")?;
    let session = here.client().sign_in(&code)?;

    // The key's devices, oldest first, this machine's marked by the activation its cache holds.
    let listed = here.list_devices(&session, DEMO_KEY).map_err(said)?;
    show(&listed);
    let this = listed.devices.iter().filter(|d| d.this_machine).count();
    assert_eq!(this, 1, "exactly one row is this machine");

    // Free the oldest device that is not this one (the public deactivate: no session needed).
    let gone = listed
        .devices
        .iter()
        .find(|d| !d.this_machine)
        .ok_or("no other device to free")?;
    match here.deactivate(DEMO_KEY, Some(&gone.id))? {
        Verdict::Accepted(()) => println!("freed: {}", gone.label),
        Verdict::Denied(d) => return Err(d.user_message().into()),
    }
    let after = here.list_devices(&session, DEMO_KEY).map_err(said)?;
    show(&after);
    assert_eq!(after.devices.len(), listed.devices.len() - 1);
    assert!(after.devices.iter().all(|d| d.id != gone.id));

    // The seat is free: the new laptop activates now.
    match new_one.activate(&ActivateRequest::new(DEMO_KEY, "New laptop"))? {
        Verdict::Accepted(_) => println!("new laptop: activated"),
        Verdict::Denied(d) => return Err(d.user_message().into()),
    }
    assert_eq!(polar.activations(DEMO_KEY).len(), 3);
    std::fs::remove_dir_all(&scratch).ok();
    Ok(())
}

/// A licensing whose cache is `dir` and whose machine is `id`: one machine of the customer's.
fn machine(polar: &Emulator, dir: &Path, id: &str) -> Result<Licensing, polar_license::Error> {
    Licensing::builder(polar.organization_id())
        .base_url(polar.url()) // leave out for production
        .cache_dir(dir)
        .machine_binding(MachineBinding::Id(format!("example-{id}"))) // leave out for production
        .build()
}

/// An activation that must have been taken.
fn accepted<T>(verdict: Verdict<T>) -> Result<T, String> {
    match verdict {
        Verdict::Accepted(t) => Ok(t),
        Verdict::Denied(d) => Err(d.user_message()),
    }
}

/// The portal's failure in the customer's words (one sentence and one next step).
fn said(e: PortalError) -> String {
    e.user_message()
}

fn show(listed: &KeyDevices) {
    let limit = listed.limit_activations.unwrap_or(0);
    println!("devices: {} of {limit} in use", listed.devices.len());
    for d in &listed.devices {
        let mark = if d.this_machine {
            "  (this machine)"
        } else {
            ""
        };
        println!("  {}  activated {}{mark}", d.label, d.activated_at.date());
    }
}
