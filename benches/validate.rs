//! An online validate over loopback against the embedded emulator, against a baseline
//! (issue #6: target client overhead <= 5 %).
//!
//! * `validate/baseline_ureq_value`: the request bytes built once with
//!   `client.api().validate_request(&req)`, sent with a plain `ureq::Agent` (same URL, same
//!   headers, same body), the body read and parsed into a `serde_json::Value`.
//! * `validate/client`: `BlockingClient::validate(&req)`: local input checks, request
//!   building, the same POST through the client's transport, status classification and the
//!   typed parse into `ValidatedLicenseKey`.
//!
//! Both run in one process against one emulator (keep-alive connections on both sides), so
//! the emulator's own per-request cost, which dominates, is in both and cancels in the ratio
//! `client / baseline` that `scripts/bench.sh` prints. The request is the one a `check`
//! sends: the key, a remembered activation id and its machine condition.
//!
//! Run: `cargo bench --features emulator --bench validate` (or `scripts/bench.sh`).

use criterion::{criterion_group, criterion_main, Criterion};
use polar_license::emulator::{Emulator, Options, Seed, DEMO_KEY};
use polar_license::{ActivateRequest, BlockingClient, ValidateRequest, Verdict};
use std::hint::black_box;
use std::time::Duration;

fn bench_validate(c: &mut Criterion) {
    let polar = Emulator::start(Seed::demo(), Options::default()).expect("emulator starts");
    let client = BlockingClient::builder(polar.organization_id())
        .base_url(polar.url())
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client builds");

    let machine = "0123456789abcdef0123456789abcdef";
    let activation = match client
        .activate(
            &ActivateRequest::new(DEMO_KEY, "bench").condition("machine_fingerprint", machine),
        )
        .expect("activate answers")
    {
        Verdict::Accepted(read) => read.activation.id,
        Verdict::Denied(d) => panic!("activation refused: {d}"),
    };
    let req = ValidateRequest::new(DEMO_KEY)
        .activation_id(&activation)
        .condition("machine_fingerprint", machine);
    assert!(client
        .validate(&req)
        .expect("validate answers")
        .is_accepted());

    // The baseline: the same bytes, built once, through a plain agent.
    let http = client.api().validate_request(&req).expect("request builds");
    let agent = ureq::Agent::new_with_defaults();
    let baseline = || -> serde_json::Value {
        let mut builder = agent.post(&http.url);
        for (name, value) in &http.headers {
            builder = builder.header(*name, value);
        }
        let mut response = builder.send(&http.body[..]).expect("baseline POST");
        assert_eq!(response.status().as_u16(), 200);
        let body = response.body_mut().read_to_vec().expect("baseline body");
        serde_json::from_slice(&body).expect("baseline JSON")
    };
    let sample = baseline();
    assert_eq!(sample["key"], DEMO_KEY);
    assert_eq!(sample["activation"]["id"], activation.as_str());

    let mut group = c.benchmark_group("validate");
    group.bench_function("baseline_ureq_value", |b| b.iter(|| black_box(baseline())));
    group.bench_function("client", |b| {
        b.iter(|| {
            let verdict = client.validate(black_box(&req)).expect("validate answers");
            debug_assert!(verdict.is_accepted());
            black_box(verdict)
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = bench_validate
}
criterion_main!(benches);
