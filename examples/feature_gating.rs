//! Gate features on the tier (benefit) the customer bought.
//!
//!     cargo run --example feature_gating
//!
//! On Polar a tier is a license-key benefit: map features to the benefits that grant them and
//! ask the verdict, online or from the cache, "may this copy use feature X?".

use polar_license::features::Entitlements;
use polar_license::Licensing;
use polar_license_emulator::{Emulator, Options, Seed, DEMO_BENEFIT_ID, DEMO_KEY, DEMO_KEY_USAGE};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let polar = Emulator::start(Seed::demo(), Options::default())?;
    let team_tier = "1c2d3e4f-5061-4b7c-9d8e-0f1a2b3c4d5e";
    let features = Entitlements::new()
        .grant("pro_export", [DEMO_BENEFIT_ID, team_tier])?
        .grant("team_sync", [team_tier])?
        .grant_metered("api_calls", [DEMO_BENEFIT_ID])?;
    let licensing = Licensing::builder(polar.organization_id())
        .base_url(polar.url())
        .memory_store()?
        .entitlements(features)
        .build()?;

    for key in [DEMO_KEY, DEMO_KEY_USAGE] {
        let verdict = licensing.check(key);
        for feature in ["pro_export", "team_sync", "api_calls"] {
            let access = licensing.has_feature(&verdict, feature);
            println!(
                "{}: {feature}: {} ({}{})",
                &key[key.len() - 6..],
                if access.granted { "yes" } else { "no" },
                access.why.code(),
                access
                    .remaining_usage
                    .map(|n| format!(", {n} uses left"))
                    .unwrap_or_default()
            );
        }
        assert!(licensing.has_feature(&verdict, "pro_export").granted);
        assert!(!licensing.has_feature(&verdict, "team_sync").granted);
    }
    Ok(())
}
