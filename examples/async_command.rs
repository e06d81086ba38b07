//! A Tauri- or axum-style async command that checks the license without blocking the runtime.
//!
//!     cargo run --example async_command
//!
//! `check_async` (and `activate_async`, `validate_async`, `deactivate_async`) run the request
//! on a thread of their own behind a future any executor can await: the library depends on no
//! runtime. Here a tokio current-thread runtime keeps ticking while Polar takes 300 ms.

use polar_license::Licensing;
use polar_license_emulator::{Emulator, Fault, Options, Seed, DEMO_KEY};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What a `#[tauri::command]` would be: async, returning something serializable.
async fn license_status(licensing: &Licensing, key: &str) -> Result<String, String> {
    let verdict = licensing.check_async(key).await;
    match verdict.user_message() {
        None => Ok("licensed".into()),
        Some(why) => Err(why), // a sentence to show, no internals
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let polar = Emulator::start(Seed::demo(), Options::default())?;
    polar.set_fault(Some(Fault::Delay { ms: 300 }));
    let licensing = Licensing::builder(polar.organization_id())
        .base_url(polar.url())
        .memory_store()?
        .build()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    runtime.block_on(async {
        let ticks = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&ticks);
        let ui = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                counter.fetch_add(1, Ordering::SeqCst); // the UI keeps animating
            }
        });
        let answer = license_status(&licensing, DEMO_KEY).await;
        ui.abort();
        println!(
            "{answer:?}; the runtime ticked {} times meanwhile",
            ticks.load(Ordering::SeqCst)
        );
        assert_eq!(answer, Ok("licensed".to_string()));
        assert!(ticks.load(Ordering::SeqCst) >= 10);
        let typo = license_status(&licensing, "DEMO-TYPO").await;
        println!("{typo:?}");
        assert!(typo.is_err());
    });
    Ok(())
}
