//! What the entitlements and lifecycle suites seed alike: a Feature Flag benefit, and the
//! tier key of a subscription granting it.

#![allow(dead_code)]

use polar_license_emulator::SeedKey;
use polar_license_testkit::{customers_key, subscription_with_id};

/// The Feature Flag benefit.
pub const PRO: &str = "0f6c1f5e-8b2a-4c3d-9e4f-5a6b7c8d9e0f";
/// The license benefit the keys are bought with.
pub const LICENSE: &str = "3a4b5c6d-7e8f-4a1b-8c2d-3e4f5a6b7c8d";
/// The keys' customer.
pub const CUSTOMER: &str = "6b7c8d9e-0f1a-4b2c-9d3e-4f5a6b7c8d9e";
/// The tier key's subscription.
pub const SUBSCRIPTION: &str = "9e0f1a2b-3c4d-4e5f-8a6b-7c8d9e0f1a2b";
/// The tier key.
pub const KEY: &str = "TIER-1B2C3D4E-5F6A-4B7C-8D9E-0F1A2B3C4D5E";

/// The tier key: the customer's (`tier@example.com`), two activations, of the subscription,
/// granting the flag.
pub fn tier_key() -> SeedKey {
    SeedKey {
        customer_email: Some("tier@example.com".into()),
        limit_activations: Some(2),
        subscription: Some(subscription_with_id(SUBSCRIPTION)),
        benefits: vec![PRO.into()],
        ..customers_key(KEY, LICENSE, CUSTOMER)
    }
}
