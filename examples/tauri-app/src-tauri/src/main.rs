// No console window on Windows in release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

use polar_license_tauri::{Entitlements, Options};

/// Your organization id and the benefit that unlocks "export", from Polar's dashboard (here
/// the local emulator's demo organization).
const ORGANIZATION_ID: &str = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";
const PRO_BENEFIT: &str = "5d3c2b1a-9e8f-4a7b-8c6d-1e2f3a4b5c6d";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let features = Entitlements::new().grant("export", [PRO_BENEFIT])?;
    #[allow(unused_mut)]
    let mut options = Options::default().entitlements(features);
    // Development builds only: POLAR_API_URL points the app at a local Polar. A release build
    // always asks Polar itself (an address a user could set would let any server license it).
    #[cfg(debug_assertions)]
    if let Ok(url) = std::env::var("POLAR_API_URL") {
        options = options.base_url(url);
    }
    tauri::Builder::default()
        .plugin(polar_license_tauri::init(ORGANIZATION_ID, options))
        .run(tauri::generate_context!())?;
    Ok(())
}
