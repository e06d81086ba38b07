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
//! * `validate/baseline_ureq_timeouts`: the baseline through an agent configured like the
//!   client's transport (5 s connect and 10 s global timeouts): attributes the difference.
//!   With any timeout set, ureq 3's default resolver resolves on a new thread on every call
//!   (even for an IP literal and a pooled connection), which over loopback costs more than
//!   everything else the client does.
//!
//! Both run in one process against one emulator (keep-alive connections on both sides), so
//! the emulator's own per-request cost, which dominates, is in both and cancels in the ratio
//! `client / baseline` that `scripts/bench.sh` prints. The request is the one a `check`
//! sends: the key, a remembered activation id and its machine condition.
//!
//! After criterion, an interleaved A/B run (`BENCH_ROUNDS` rounds, default 30, of 100 calls
//! of each, order alternating) gives the same ratios robust to drift on a busy machine; it
//! is written to `target/criterion/validate-interleaved.json`.
//!
//! Run: `cargo bench -p polar-license --bench validate` (or `scripts/bench.sh`).

use criterion::{criterion_group, criterion_main, Criterion};
use polar_license::{ActivateRequest, BlockingClient, ValidateRequest, Verdict};
use polar_license_emulator::{Emulator, Options, Seed, DEMO_KEY};
use std::hint::black_box;
use std::time::{Duration, Instant};

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
    let timeouts: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(5)))
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let post = |agent: &ureq::Agent| -> serde_json::Value {
        let mut builder = agent.post(&http.url);
        for (name, value) in &http.headers {
            builder = builder.header(*name, value);
        }
        let mut response = builder.send(&http.body[..]).expect("baseline POST");
        assert_eq!(response.status().as_u16(), 200);
        let body = response.body_mut().read_to_vec().expect("baseline body");
        serde_json::from_slice(&body).expect("baseline JSON")
    };
    let baseline = || post(&agent);
    let baseline_timeouts = || post(&timeouts);
    let client_call = || {
        let verdict = client.validate(black_box(&req)).expect("validate answers");
        debug_assert!(verdict.is_accepted());
        verdict
    };
    let sample = baseline();
    assert_eq!(sample["key"], DEMO_KEY);
    assert_eq!(sample["activation"]["id"], activation.as_str());

    let mut group = c.benchmark_group("validate");
    group.bench_function("baseline_ureq_value", |b| b.iter(|| black_box(baseline())));
    group.bench_function("client", |b| b.iter(|| black_box(client_call())));
    group.bench_function("baseline_ureq_timeouts", |b| {
        b.iter(|| black_box(baseline_timeouts()))
    });
    group.finish();

    // Only when benchmarking (`cargo bench` passes --bench), not in criterion's test mode.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    interleaved(&[
        ("baseline_ureq_value", &|| drop(black_box(baseline()))),
        ("client", &|| drop(black_box(client_call()))),
        ("baseline_ureq_timeouts", &|| {
            drop(black_box(baseline_timeouts()))
        }),
    ]);
}

/// Runs the contenders in alternating rounds and writes the per-call medians and the median
/// per-round ratios against the first one.
fn interleaved(contenders: &[(&str, &dyn Fn())]) {
    const CALLS: u32 = 100;
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let mut per_call = vec![Vec::with_capacity(rounds); contenders.len()];
    for round in 0..rounds {
        for i in 0..contenders.len() {
            // Alternate the order so neither always runs first.
            let i = if round % 2 == 0 {
                i
            } else {
                contenders.len() - 1 - i
            };
            let (_, f) = contenders[i];
            let start = Instant::now();
            for _ in 0..CALLS {
                f();
            }
            per_call[i].push(start.elapsed().as_nanos() as f64 / f64::from(CALLS));
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut fields = Vec::new();
    for (i, (name, _)) in contenders.iter().enumerate() {
        let mut ratios: Vec<f64> = per_call[i]
            .iter()
            .zip(&per_call[0])
            .map(|(x, base)| x / base)
            .collect();
        let ratio = median(&mut ratios);
        let ns = median(&mut per_call[i].clone());
        eprintln!("interleaved {name}: median {ns:.0} ns/call, ratio to baseline {ratio:.3}");
        fields.push(format!(
            "\"{name}\":{{\"median_ns\":{ns:.1},\"ratio\":{ratio:.4}}}"
        ));
    }
    let dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".to_string());
    let path = std::path::Path::new(&dir).join("criterion/validate-interleaved.json");
    let json = format!(
        "{{\"rounds\":{rounds},\"calls_per_round\":{CALLS},{}}}\n",
        fields.join(",")
    );
    if let Err(e) = std::fs::create_dir_all(path.parent().unwrap_or(&path))
        .and_then(|()| std::fs::write(&path, json))
    {
        eprintln!("cannot write {}: {e}", path.display());
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = bench_validate
}
criterion_main!(benches);
