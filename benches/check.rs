//! The cached `check` through the file store, warm (issue #6: target median <= 20 µs).
//!
//! A `Licensing` with a file store in a temp dir and the embedded emulator is activated (the
//! activation is the verdict), so the record is fresh; `check(key)` then answers from the
//! cache with no request (asserted: the emulator's request counter does not move). Every
//! cached answer is recorded (issue #12: a held clock must not repeat it without end), but a
//! check repeated by the same process within the same clock second on the record it wrote is
//! the same answer and is not written again: `cached_file_store` is that repeated check (one
//! write per second of the run), `cached_recorded_answer` a check whose clock moved, which
//! records its answer (a durable write: temp file, fsync, rename, directory fsync, twice,
//! for the record and its ledger). For context, the pure pieces of that path are benched
//! too: the record file read, `cache::decode` (HMAC-SHA256 + the JSON parse) and `grace::plan`.
//!
//! Run: `cargo bench -p polar-license --bench check` (or `scripts/bench.sh`).

use criterion::{criterion_group, criterion_main, Criterion};
use polar_license::cache::{self, MacKey};
use polar_license::grace::{self, CheckOutcome, GracePolicy, Plan, Query, Source};
use polar_license::{system_clock, Licensing, MachineBinding};
use polar_license_emulator::{Emulator, Options, Seed, DEMO_KEY};
use polar_license_testkit::activated_bench_client;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

/// A temp dir removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("polar-license-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bench_check(c: &mut Criterion) {
    let polar = Emulator::start(Seed::demo(), Options::default()).expect("emulator starts");
    let dir = TempDir::new("check");
    let licensing = activated_bench_client(&polar, &dir.0);
    // Warm: answered from the cache, no request.
    polar.reset_request_count();
    let warm = licensing.check(DEMO_KEY);
    assert!(
        matches!(
            warm,
            CheckOutcome::Licensed {
                source: Source::Cache,
                ..
            }
        ),
        "second check should come from the cache: {warm:?}"
    );

    let mut group = c.benchmark_group("check");
    group.bench_function("cached_file_store", |b| {
        b.iter(|| black_box(licensing.check(black_box(DEMO_KEY))))
    });
    assert_eq!(
        polar.request_count(),
        0,
        "a cached check must not send a request"
    );

    // The pure pieces, on the very bytes the store holds.
    let record_path = std::fs::read_dir(&dir.0)
        .expect("cache dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.extension().is_some_and(|e| e == "cache")
                && !p.to_string_lossy().ends_with("-seq.cache")
                && !p.to_string_lossy().ends_with("-clock.cache")
        })
        .expect("a .cache file");
    let bytes = std::fs::read(&record_path).expect("read record");
    eprintln!("cache record: {} bytes", bytes.len());
    group.bench_function("fs_read_record", |b| {
        b.iter(|| black_box(std::fs::read(black_box(&record_path)).expect("read")))
    });

    // `cache::decode` with a key of our own: the same work (one HMAC over the same length,
    // one JSON parse of the same record) as with the Licensing's sealed key.
    let org = polar.organization_id();
    let record = {
        // Decode needs the right key; reseal the record's JSON under a bench key. The record
        // body is the second line of the stored bytes.
        let body = bytes
            .split(|&b| b == b'\n')
            .nth(1)
            .expect("record body line");
        cache::read_body(body).expect("record JSON")
    };
    let mac = MacKey::derive(DEMO_KEY, &org, &[7u8; 32], Some(b"bench"));
    let sealed = cache::encode(&record, &mac);
    assert_eq!(sealed.len(), bytes.len(), "same record, same size");
    group.bench_function("cache_decode", |b| {
        b.iter(|| black_box(cache::decode(black_box(&sealed), &mac).expect("decodes")))
    });
    // decode = one HMAC-SHA256 over the header and body + one JSON parse: each alone.
    let body_len = sealed.len() - 65;
    let body = &sealed[sealed.iter().position(|&b| b == b'\n').expect("header") + 1..body_len - 1];
    group.bench_function("record_json_parse", |b| {
        b.iter(|| black_box(cache::read_body(black_box(body)).expect("JSON")))
    });
    group.bench_function("hmac_sha256_record", |b| {
        use hmac::{Hmac, Mac};
        b.iter(|| {
            let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&[9u8; 32]).expect("key");
            mac.update(black_box(&sealed[..body_len]));
            black_box(mac.finalize().into_bytes())
        })
    });
    group.bench_function("cache_encode", |b| {
        b.iter(|| black_box(cache::encode(black_box(&record), &mac)))
    });
    group.bench_function("mac_key_derive", |b| {
        b.iter(|| {
            black_box(MacKey::derive(
                black_box(DEMO_KEY),
                &org,
                &[7u8; 32],
                Some(b"bench"),
            ))
        })
    });

    let activation = record.activation.as_ref().expect("remembered activation");
    let mut query = Query::new(org.clone(), DEMO_KEY).activation_id(activation.id.clone());
    query.conditions = record
        .good
        .as_ref()
        .expect("good verdict")
        .conditions
        .clone();
    let policy = GracePolicy::default();
    let now = system_clock();
    assert!(
        matches!(
            grace::plan(Some(&record), &query, now, &policy),
            Plan::Cached(_)
        ),
        "plan should answer from the record"
    );
    group.bench_function("grace_plan", |b| {
        b.iter(|| black_box(grace::plan(Some(black_box(&record)), &query, now, &policy)))
    });

    // A clock that moves one second per check: every answer is recorded.
    let ticks = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(system_clock()));
    let clock = std::sync::Arc::clone(&ticks);
    let recording = Licensing::builder(polar.organization_id())
        .base_url(polar.url())
        .cache_dir(&dir.0)
        .machine_binding(MachineBinding::Id("bench-machine".to_string()))
        .policy(GracePolicy {
            revalidate_after: Duration::from_secs(6 * 24 * 3600),
            ..GracePolicy::default()
        })
        .clock(move || clock.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
        .build()
        .expect("licensing builds");
    group.bench_function("cached_recorded_answer", |b| {
        b.iter(|| {
            let answer = recording.check(black_box(DEMO_KEY));
            debug_assert!(answer.is_licensed());
            black_box(answer)
        })
    });
    assert_eq!(
        polar.request_count(),
        0,
        "a recorded cached check must not send a request"
    );
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = bench_check
}
criterion_main!(benches);
