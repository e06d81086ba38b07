//! The remembered key (issue #15, item 5) on the native face: opt-in, sealed beside the
//! records, never in plain text, useless when copied to another install, machine or app, and
//! `check_remembered` needs no argument. The emulator over loopback, a real file store in a
//! temp dir, a fake clock.
#![cfg(not(target_arch = "wasm32"))]

use polar_license::grace::{CheckOutcome, Source};
use polar_license::{ActivateRequest, Error, Licensing, MachineBinding, Reason};
use polar_license_emulator::{KeyUpdate, DEMO_KEY, DEMO_KEY_REVOKED};
use polar_license_testkit::{ScratchDir, World};
use std::path::{Path, PathBuf};

/// This suite's world: the testkit's, its directory named for the test.
fn world(name: &str) -> World {
    World::new(&format!("remembered-{name}"))
}

/// This suite's helpers on the testkit's world.
trait Here {
    fn remembering(&self) -> Licensing;
    fn key_files(&self, dir: &Path) -> Vec<PathBuf>;
}

impl Here for World {
    /// A licensing that remembers the keys it activates.
    fn remembering(&self) -> Licensing {
        self.builder(&self.dir, "machine-A")
            .remember_keys(true)
            .build()
            .expect("builds")
    }

    fn key_files(&self, dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().path())
                    // The entry, not its lock file (empty: the lock a deactivate takes to
                    // compare the entry before it forgets it).
                    .filter(|p| {
                        let name = p.file_name().unwrap().to_string_lossy().into_owned();
                        name.starts_with("key-") && !name.ends_with(".lock")
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn activate(l: &Licensing, key: &str) {
    let v = l
        .activate(&ActivateRequest::new(key, "laptop"))
        .expect("activate answers");
    assert!(v.accepted().is_some(), "{v:?}");
}

#[track_caller]
fn no_key_remembered(outcome: &CheckOutcome) {
    match outcome {
        CheckOutcome::Unverified(Error::InvalidInput { field, message }) => {
            assert_eq!(field, "key");
            assert!(
                message.contains("no license key is remembered"),
                "{message}"
            );
        }
        other => panic!("expected invalid_input (no key remembered), got {other:?}"),
    }
    assert_eq!(outcome.reason(), Some(Reason::InvalidInput));
    // What the app shows: a first run, not a key with a typo.
    assert_eq!(
        outcome.user_message().as_deref(),
        Some("This app is not licensed yet: enter your license key.")
    );
}

#[test]
fn an_activated_key_is_remembered_across_restarts_and_checked_with_no_argument() {
    let w = world("restart");
    activate(&w.remembering(), DEMO_KEY);
    assert_eq!(w.requests(), 1);

    // A new process: nothing but the directory is shared.
    let later = w.remembering();
    let key = later.remembered_key().unwrap().expect("remembered");
    assert_eq!(key.expose(), DEMO_KEY);
    let tail = &DEMO_KEY[DEMO_KEY.len() - 6..];
    assert_eq!(format!("{key:?}"), format!("Key(****-{tail})"));
    let verdict = later.check_remembered();
    assert!(verdict.is_licensed(), "{verdict:?}");
    assert_eq!(verdict.source(), Some(Source::Cache));
    assert_eq!(w.requests(), 0, "the activation's verdict answers");

    // The async form answers the same.
    let verdict = pollster::block_on(later.check_remembered_async());
    assert!(verdict.is_licensed(), "{verdict:?}");

    // The key is in no file in plain text, nor its hidden part (records keep Polar's
    // display form, `****-` and the tail), nor in hex.
    let key_hex: String = DEMO_KEY.bytes().map(|b| format!("{b:02x}")).collect();
    for entry in std::fs::read_dir(&w.dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let hidden = &DEMO_KEY[..DEMO_KEY.len() - 6];
        for needle in [DEMO_KEY, hidden, key_hex.as_str()] {
            assert!(!text.contains(needle), "{needle} stored: {text}");
        }
    }
    let files = w.key_files(&w.dir);
    assert_eq!(files.len(), 1, "{files:?}");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.starts_with("polar-license-key v1\n"), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
}

#[test]
fn off_by_default_and_a_missing_key_asks_nothing() {
    let w = world("default");
    let plain = w.builder(&w.dir, "machine-A").build().unwrap();
    activate(&plain, DEMO_KEY);
    w.requests();
    assert!(w.key_files(&w.dir).is_empty());
    assert_eq!(plain.remembered_key().unwrap(), None);
    no_key_remembered(&plain.check_remembered());
    let report = plain.check_remembered_report();
    no_key_remembered(&report.outcome);
    assert_eq!(w.requests(), 0, "no key, no request");

    // Remembered on request, then checked; replaced by another; forgotten.
    plain.remember_key(DEMO_KEY).unwrap();
    assert!(plain.check_remembered().is_licensed());
    plain.remember_key(DEMO_KEY_REVOKED).unwrap();
    assert_eq!(
        plain.remembered_key().unwrap().unwrap().expose(),
        DEMO_KEY_REVOKED
    );
    assert_eq!(w.key_files(&w.dir).len(), 1, "one key per organization");
    plain.forget_key().unwrap();
    assert_eq!(plain.remembered_key().unwrap(), None);
    plain.forget_key().unwrap();
    // Forgetting the key keeps the record: the key checks from the cache as before.
    assert_eq!(plain.check(DEMO_KEY).source(), Some(Source::Cache));
}

#[test]
fn bad_keys_are_refused_before_anything_is_written() {
    let w = world("bad");
    let l = w.remembering();
    for bad in ["", " MYKEY", "MYKEY\n", "MY\0KEY"] {
        match l.remember_key(bad) {
            Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "key"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    match l.remember_key("K".repeat(1025)) {
        Err(Error::InvalidInput { field, message }) => {
            assert_eq!(field, "key");
            assert!(message.contains("1024"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(w.key_files(&w.dir).is_empty());
    assert_eq!(w.requests(), 0);
}

#[test]
fn a_copied_edited_or_foreign_key_file_opens_to_nothing() {
    let w = world("copied");
    activate(&w.remembering(), DEMO_KEY);
    w.requests();
    let file = w.key_files(&w.dir).remove(0);

    // The whole directory on another machine, install secret and all.
    let elsewhere = ScratchDir::new("remembered-elsewhere");
    for entry in std::fs::read_dir(&w.dir).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, elsewhere.join(path.file_name().unwrap())).unwrap();
    }
    let other_machine = w.builder(&elsewhere, "machine-B").build().unwrap();
    assert_eq!(other_machine.remembered_key().unwrap(), None);
    no_key_remembered(&other_machine.check_remembered());
    let same_machine = w.builder(&elsewhere, "machine-A").build().unwrap();
    assert_eq!(
        same_machine
            .remembered_key()
            .unwrap()
            .map(|k| k.expose().to_string()),
        Some(DEMO_KEY.to_string()),
        "the copy itself is intact"
    );
    // Another app secret, another organization's client: nothing.
    let other_app = w
        .builder(&w.dir, "machine-A")
        .app_secret(b"another app".to_vec())
        .build()
        .unwrap();
    assert_eq!(other_app.remembered_key().unwrap(), None);
    let other_org = Licensing::builder("9c7e3b1a-2f4d-4a6b-8c5e-1d2f3a4b5c6d")
        .base_url(w.polar.url())
        .cache_dir(&w.dir)
        .machine_binding(MachineBinding::Id("machine-A".into()))
        .build()
        .unwrap();
    assert_eq!(other_org.remembered_key().unwrap(), None);

    // Only the file's install secret is new (the same machine): nothing.
    std::fs::remove_file(elsewhere.join("install-secret")).unwrap();
    let new_install = w.builder(&elsewhere, "machine-A").build().unwrap();
    assert_eq!(new_install.remembered_key().unwrap(), None);

    // One byte edited: nothing.
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 2;
    bytes[last] = if bytes[last] == b'0' { b'1' } else { b'0' };
    std::fs::write(&file, &bytes).unwrap();
    let l = w.remembering();
    assert_eq!(l.remembered_key().unwrap(), None);
    no_key_remembered(&l.check_remembered());
    assert_eq!(w.requests(), 0);
}

#[test]
fn a_revoked_key_stays_remembered_and_is_denied_and_deactivation_forgets_it() {
    let w = world("revoked");
    let l = w.remembering();
    activate(&l, DEMO_KEY);
    w.polar.update_key(
        DEMO_KEY,
        KeyUpdate {
            status: Some("revoked".into()),
            ..KeyUpdate::default()
        },
    );
    w.clock.advance(2 * 3600);
    let denied = l.check_remembered();
    assert_eq!(denied.reason(), Some(Reason::Inactive), "{denied:?}");
    // Still remembered: the app can say which key was revoked and ask for another.
    assert!(l.remembered_key().unwrap().is_some());

    // A good deactivation forgets it; a deactivation of another key does not.
    w.polar.update_key(
        DEMO_KEY,
        KeyUpdate {
            status: Some("granted".into()),
            ..KeyUpdate::default()
        },
    );
    let freed = l.deactivate(DEMO_KEY, None).expect("deactivates");
    assert!(freed.accepted().is_some(), "{freed:?}");
    assert_eq!(l.remembered_key().unwrap(), None);
    no_key_remembered(&l.check_remembered());

    // `forget(key)` forgets the remembered key with the record.
    activate(&l, DEMO_KEY);
    assert!(l.remembered_key().unwrap().is_some());
    l.forget(DEMO_KEY).unwrap();
    assert_eq!(l.remembered_key().unwrap(), None);
}

/// Freeing an activation that a later activate replaced leaves the remembered key and the
/// current activation alone; freeing the current one forgets the key (issue #27).
#[test]
fn deactivating_a_replaced_activation_keeps_the_remembered_key() {
    let w = world("replaced");
    let l = w.remembering();
    let id = |v: Result<polar_license::Verdict<_>, Error>| match v {
        Ok(polar_license::Verdict::Accepted(polar_license::LicenseKeyActivationRead {
            activation,
            ..
        })) => activation.id,
        other => panic!("{other:?}"),
    };
    let old = id(l.activate(&ActivateRequest::new(DEMO_KEY, "laptop")));
    let current = id(l.activate(&ActivateRequest::new(DEMO_KEY, "laptop")));
    assert_ne!(old, current);
    let freed = l.deactivate(DEMO_KEY, Some(&old)).expect("deactivates");
    assert!(freed.accepted().is_some(), "{freed:?}");
    assert_eq!(
        l.remembered_key().unwrap().map(|k| k.redacted()),
        Some(polar_license::Key::from(DEMO_KEY).redacted())
    );
    assert_eq!(
        l.status(DEMO_KEY).unwrap().activation.map(|a| a.id),
        Some(current.clone())
    );
    w.clock.advance(2 * 3600);
    let verdict = l.check_remembered();
    assert!(verdict.is_licensed(), "{verdict:?}");

    let freed = l.deactivate(DEMO_KEY, None).expect("deactivates");
    assert!(freed.accepted().is_some(), "{freed:?}");
    assert_eq!(l.remembered_key().unwrap(), None);
    assert!(w.polar.activations(DEMO_KEY).is_empty());
}

#[test]
fn a_denied_activation_remembers_nothing() {
    let w = world("denied");
    let l = w.remembering();
    let v = l
        .activate(&ActivateRequest::new(DEMO_KEY_REVOKED, "laptop"))
        .unwrap();
    assert!(v.accepted().is_none(), "{v:?}");
    assert_eq!(l.remembered_key().unwrap(), None);
    assert!(w.key_files(&w.dir).is_empty());
}

/// The cache directory's store, whose writes of the remembered key's entry (`key-…`) fail.
struct KeyUnwritable(polar_license::FileStore);

impl polar_license::Store for KeyUnwritable {
    fn load(&self, slot: &str) -> Result<Option<Vec<u8>>, Error> {
        self.0.load(slot)
    }
    fn save(&self, slot: &str, bytes: &[u8]) -> Result<(), Error> {
        if slot.starts_with("key-") {
            return Err(Error::Cache {
                detail: "the key's entry cannot be written here".to_string(),
            });
        }
        self.0.save(slot, bytes)
    }
    fn remove(&self, slot: &str) -> Result<(), Error> {
        self.0.remove(slot)
    }
    fn install_secret(&self) -> Result<Vec<u8>, Error> {
        self.0.install_secret()
    }
    fn lock(&self, slot: &str) -> Result<polar_license::SlotLock, Error> {
        self.0.lock(slot)
    }
}

/// Remembering the key is the activate machine's last step, after the record learned the
/// activation: when it cannot be written, the activation stands and the record knows it, and
/// the error is the activation's `cache_error`, naming the new activation id.
#[test]
fn a_key_that_cannot_be_remembered_is_the_activations_cache_error_and_the_record_keeps_it() {
    let w = world("unwritable");
    let l = w
        .builder(&w.dir, "machine-A")
        .store(KeyUnwritable(polar_license::FileStore::new(&w.dir)))
        .remember_keys(true)
        .build()
        .expect("builds");
    let activated = l.activate_update(&ActivateRequest::new(DEMO_KEY, "laptop"));
    let id = match &activated.online {
        Ok(v) => v.accepted().expect("activated").activation.id.clone(),
        Err(e) => panic!("activate answers: {e:?}"),
    };
    let e = activated
        .cache_error
        .as_ref()
        .expect("the key's write failed");
    assert!(e.to_string().contains("cannot be written here"), "{e}");
    let unremembered = activated.unremembered().expect("names the activation");
    assert!(unremembered.to_string().contains(&id), "{unremembered}");
    assert_eq!(l.remembered_key().unwrap(), None);
    assert!(w.key_files(&w.dir).is_empty());
    // The record learned the activation before: checked from the cache, with no request.
    let status = l.status(DEMO_KEY).expect("status");
    assert_eq!(status.activation.map(|a| a.id), Some(id));
    let checked = l.check(DEMO_KEY);
    let from = (checked.is_licensed(), checked.source());
    assert_eq!(from, (true, Some(Source::Cache)), "{checked:?}");
}

/// Deactivate's forget race: a deactivate of the remembered key waits on a slow Polar while
/// another process (its own client on the same directory) activates another key, which
/// remembers it. When the deactivation's answer arrives, the remembered key is the other one:
/// it stays. The forget compares, under the remembered key's lock, with the entry as it is
/// then, not with what it held before the request was sent.
#[test]
fn a_key_remembered_while_a_deactivate_waits_on_polar_is_not_forgotten() {
    use polar_license_emulator::{Fault, DEMO_KEY_USAGE};
    use std::time::{Duration, Instant};
    let w = world("forget-race");
    let first = w.remembering();
    activate(&first, DEMO_KEY);
    let before = w.polar.request_count();

    // Polar answers the deactivate 1.5 s after it arrives.
    w.polar.set_fault(Some(Fault::Delay { ms: 1500 }));
    let deactivating = std::thread::spawn(move || first.deactivate(DEMO_KEY, None));
    let asked = Instant::now();
    while w.polar.request_count() == before {
        assert!(asked.elapsed() < Duration::from_secs(10), "never asked");
        std::thread::sleep(Duration::from_millis(5));
    }
    w.polar.set_fault(None);

    // Meanwhile another process activates another key, and remembers it.
    let second = w.remembering();
    activate(&second, DEMO_KEY_USAGE);
    assert!(
        !deactivating.is_finished(),
        "the deactivate must still wait on Polar for this race to be tested"
    );
    let freed = deactivating
        .join()
        .expect("the deactivate's thread")
        .expect("deactivates");
    assert!(freed.accepted().is_some(), "{freed:?}");
    assert!(w.polar.activations(DEMO_KEY).is_empty());

    // The key remembered meanwhile stays, for both processes.
    for l in [&second, &w.remembering()] {
        assert_eq!(
            l.remembered_key().unwrap().map(|k| k.redacted()),
            Some(polar_license::Key::from(DEMO_KEY_USAGE).redacted())
        );
    }
    assert_eq!(w.key_files(&w.dir).len(), 1);
}
