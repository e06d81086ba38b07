//! Signed leases (issue #25): what signed mode adds to a check, and what the relay spends
//! signing. `verify` is what every read of a record costs in signed mode (the lease is checked
//! again on each open: its bytes can be re-sealed, its signature cannot); `sign` is the relay's
//! part of each grant.
//!
//! Run: `cargo bench -p polar-license --bench lease` (or `scripts/bench.sh`).

use criterion::{criterion_group, criterion_main, Criterion};
use polar_license::key::Key;
use polar_license::lease::{self, LeaseExpect, SigningKey};
use polar_license_testkit::leases::{self, Facts};
use std::hint::black_box;

fn bench_lease(c: &mut Criterion) {
    let key = Key::new("MYAPP-50B22C51-07BD-4160-A61E-19B6CC6ED415");
    let org = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";
    let activation = "b6724bc8-7ad0-4ad5-a5d1-2b1a6b0a4a4a";
    let machine = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let now = 1_790_000_000;
    let mut facts = Facts::granted(
        org,
        &key,
        activation,
        "f2b2c2a1-1d2b-4c53-9b4a-0c8f2f0f8a11",
    );
    facts.license["limit_activations"] = 3.into();
    let claims = leases::claims(&facts, now, 7);
    let signer = SigningKey::generate(Some("relay-2026")).expect("a key");
    let token = signer.sign(&claims, Some(machine)).expect("signed");
    let keys = signer.relay_keys();
    let expect = LeaseExpect {
        organization_id: org,
        key: &key,
        activation_id: Some(activation),
        benefit_id: None,
        machine: Some(machine),
    };
    assert!(lease::verify(&token, &keys, &expect, now, 600).is_ok());
    println!("lease: {} bytes", token.len());

    c.bench_function("lease_verify", |b| {
        b.iter(|| lease::verify(black_box(&token), &keys, &expect, now, 600).is_ok())
    });
    c.bench_function("lease_sign", |b| {
        b.iter(|| signer.sign(black_box(&claims), Some(machine)).is_ok())
    });
}

criterion_group!(benches, bench_lease);
criterion_main!(benches);
