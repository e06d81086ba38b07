//! The file store under crashes and concurrency (native only).
//!
//! The test binary re-executes itself as the child processes: `child_process` does nothing
//! unless `POLAR_LICENSE_TEST_CHILD` names a role, so a parent can run
//! `<this binary> child_process --exact --nocapture` with that variable set.
#![cfg(not(target_arch = "wasm32"))]

use polar_license::cache::{self, MacKey};
use polar_license::grace::{DenialMark, Record};
use polar_license::store::{FileStore, MemoryStore, Store};
use polar_license::Reason;
use polar_license_testkit::{Launch, ScratchDir};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use std::{env, fs, thread};

const ROLE_ENV: &str = "POLAR_LICENSE_TEST_CHILD";
const DIR_ENV: &str = "POLAR_LICENSE_TEST_DIR";
const ORG: &str = "d2fcbff8-108b-411e-bf2b-6383e0a8802d";
const KEY: &str = "MYAPP-50B22C51-07BD-4160-A61E-19B6CC6ED415";
const KILLS: usize = 200;
const READY: &str = "CHILD-READY";
/// A child that outlives this (its parent died or hung) stops on its own.
const CHILD_LIFETIME: Duration = Duration::from_secs(20);
const INCREMENTS: usize = 200;

/// Two clearly different records, big enough (~100 KB) that a kill often lands mid-write.
fn record(which: u8) -> Record {
    Record {
        origin: "https://api.polar.sh".to_string(),
        organization_id: ORG.to_string(),
        display_key: "****-6ED415".to_string(),
        good: None,
        latest_seen: 1_790_000_000 + i64::from(which),
        stalled: 0,
        seq: u64::from(which),
        denied: Some(DenialMark {
            reason: Reason::Inactive,
            detail: char::from(b'A' + which)
                .to_string()
                .repeat(100_000 + usize::from(which) * 333),
            status: 404,
            remaining_usages: None,
            at: i64::from(which),
            signed: None,
            verified: None,
        }),
        blocked_until: None,
        activation: None,
        lease_gate: Default::default(),
    }
}

fn mac(store: &FileStore) -> MacKey {
    MacKey::derive(KEY, ORG, &store.install_secret().unwrap(), None)
}

fn slot() -> String {
    cache::slot_name("https://api.polar.sh", ORG, KEY)
}

/// Starts a child (a spawn that fails is tried again: [`Launch::start`]).
fn spawn_child(role: &str, dir: &Path) -> Child {
    Command::new(env::current_exe().unwrap())
        .args([
            "child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE_ENV, role)
        .env(DIR_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .start()
}

/// The child side: a writer that alternates the two records forever, or a counter that
/// increments a plain (non-atomic) counter file under the slot lock.
#[test]
fn child_process() {
    let Ok(role) = env::var(ROLE_ENV) else {
        return; // an ordinary run of the suite
    };
    let store = FileStore::new(env::var_os(DIR_ENV).unwrap());
    let slot = slot();
    match role.as_str() {
        "writer" => {
            let mac = mac(&store);
            let encoded = [
                cache::encode(&record(0), &mac),
                cache::encode(&record(1), &mac),
            ];
            let born = Instant::now();
            let mut i = 0usize;
            while born.elapsed() < CHILD_LIFETIME {
                let lock = store.lock(&slot).unwrap();
                store.save(&slot, &encoded[i % 2]).unwrap();
                drop(lock);
                if i == 0 {
                    println!("{READY}");
                }
                i += 1;
            }
        }
        "counter" => {
            println!("{READY}");
            for _ in 0..INCREMENTS {
                bump(&store, &slot);
            }
        }
        other => panic!("unknown child role {other}"),
    }
}

/// Reads, yields, writes: without the lock two bumpers would lose increments.
fn bump(store: &dyn Store, slot: &str) {
    let _lock = store.lock(slot).unwrap();
    let dir = PathBuf::from(env::var_os(DIR_ENV).unwrap_or_default());
    bump_file(&dir.join("counter"));
}

fn bump_file(path: &Path) {
    let n: u64 = fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    thread::yield_now();
    fs::write(path, (n + 1).to_string()).unwrap();
}

type Rest = std::io::Lines<BufReader<std::process::ChildStdout>>;

/// Reads the child's stdout up to its ready marker; returns the rest, which must be kept open
/// (or drained) while the child still prints.
fn wait_ready(child: &mut Child) -> Rest {
    try_ready(child).expect("child exited before it was ready")
}

/// [`wait_ready`], `None` when the child's stdout ended before the marker.
fn try_ready(child: &mut Child) -> Option<Rest> {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        // The harness prints `test child_process ... ` before it, on the same line.
        if line.unwrap().trim_end().ends_with(READY) {
            return Some(lines);
        }
    }
    None
}

/// A writer child, once it is ready. Under wine a child process sometimes dies before its
/// first line (the CI's Windows stage saw it once, at 4952db0, in a run whose every other
/// test passed): such a child wrote nothing the test reads, so it is started again, at most
/// three times; a writer that never gets ready still fails the test.
fn ready_writer(dir: &Path) -> (Child, Rest) {
    for _ in 0..3 {
        let mut child = spawn_child("writer", dir);
        if let Some(rest) = try_ready(&mut child) {
            return (child, rest);
        }
        let status = child.wait().unwrap();
        eprintln!("the writer exited before it was ready ({status}): started again");
    }
    panic!("the writer exited before it was ready, three times");
}

fn temp_files(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect()
}

#[test]
fn a_killed_writer_leaves_the_old_or_the_new_record() {
    let started = Instant::now();
    let dir = ScratchDir::new("crash");
    let store = FileStore::new(&dir);
    let mac = mac(&store);
    let slot = slot();
    let (a, b) = (record(0), record(1));
    store.save(&slot, &cache::encode(&a, &mac)).unwrap();

    let (mut saw_a, mut saw_b, mut leftovers) = (0, 0, 0);
    for i in 0..KILLS {
        let (mut child, _rest) = ready_writer(&dir);
        // From right after the first save up to ~6 ms in, in 37 µs steps.
        thread::sleep(Duration::from_micros((i as u64 * 37) % 6_000));
        child.kill().unwrap();
        child.wait().unwrap();

        let bytes = store
            .load(&slot)
            .unwrap()
            .expect("a record is always there");
        match cache::decode(&bytes, &mac) {
            Ok(r) if r == a => saw_a += 1,
            Ok(r) if r == b => saw_b += 1,
            other => panic!("kill {i}: neither the old nor the new record: {other:?}"),
        }
        let tmp = temp_files(&dir);
        assert!(tmp.len() <= 1, "kill {i}: temp files pile up: {tmp:?}");
        leftovers += tmp.len();
    }
    // The next save sweeps what a crash left.
    let lock = store.lock(&slot).unwrap();
    store.save(&slot, &cache::encode(&b, &mac)).unwrap();
    drop(lock);
    assert_eq!(temp_files(&dir), Vec::<String>::new());
    assert!(saw_a > 0 && saw_b > 0, "a: {saw_a}, b: {saw_b}");
    eprintln!(
        "{KILLS} kills in {:?}: old/new {saw_a}/{saw_b}, {leftovers} killed mid-write",
        started.elapsed()
    );
    dir.remove().unwrap();
}

#[test]
fn the_slot_lock_excludes_other_processes() {
    let dir = ScratchDir::new("lock-procs");
    let mut children: Vec<Child> = (0..2).map(|_| spawn_child("counter", &dir)).collect();
    let outputs: Vec<_> = children.iter_mut().map(wait_ready).collect();
    for (mut child, rest) in children.into_iter().zip(outputs) {
        rest.for_each(drop);
        assert!(child.wait().unwrap().success());
    }
    let total = fs::read_to_string(dir.join("counter")).unwrap();
    assert_eq!(total, (2 * INCREMENTS).to_string());
    dir.remove().unwrap();
}

fn count_with_threads(make: impl Fn() -> Box<dyn Store>, counter: &Path) -> String {
    thread::scope(|s| {
        for _ in 0..2 {
            let store = make();
            s.spawn(move || {
                for _ in 0..INCREMENTS {
                    let _lock = store.lock("counter").unwrap();
                    bump_file(counter);
                }
            });
        }
    });
    fs::read_to_string(counter).unwrap()
}

#[test]
fn the_slot_lock_excludes_other_threads() {
    let dir = ScratchDir::new("lock-threads");
    // Two FileStore values on one directory, as two parts of an app would have.
    let files = count_with_threads(|| Box::new(FileStore::new(&dir)), &dir.join("c1"));
    assert_eq!(files, (2 * INCREMENTS).to_string());
    let memory = MemoryStore::new().unwrap();
    let mem = count_with_threads(|| Box::new(memory.clone()), &dir.join("c2"));
    assert_eq!(mem, (2 * INCREMENTS).to_string());
    dir.remove().unwrap();
}

#[test]
fn the_install_secret_survives_and_is_shared() {
    let dir = ScratchDir::new("secret");
    let first = FileStore::new(&dir).install_secret().unwrap();
    let second = FileStore::new(&dir).install_secret().unwrap();
    assert_eq!(first, second);
    assert_eq!(first.len(), 32);
    // Another directory, another install.
    let other = ScratchDir::new("secret-other");
    assert_ne!(FileStore::new(&other).install_secret().unwrap(), first);
    dir.remove().unwrap();
    other.remove().unwrap();
}
