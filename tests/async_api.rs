//! Issue #15 item 3: async without a runtime dependency. `Licensing`'s `*_async` calls are
//! awaited by two executors the library does not depend on (tokio and pollster, dev
//! dependencies only), and a tokio current-thread runtime keeps running its other tasks while
//! Polar answers slowly (it would not with the blocking `check` called from a task).
#![cfg(not(target_arch = "wasm32"))]

use polar_license::grace::Source;
use polar_license::{
    ActivateRequest, GracePolicy, Licensing, MachineBinding, Reason, ValidateRequest, Verdict,
};
use polar_license_emulator::{Emulator, Fault, Options, Seed, DEMO_KEY};
use polar_license_testkit::{licensing_builder, ScratchDir};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn licensing(polar: &Emulator) -> (Licensing, ScratchDir) {
    let dir = ScratchDir::new("async");
    let l = licensing_builder(polar, &dir, MachineBinding::Id("machine-A".into()))
        .policy(GracePolicy {
            revalidate_after: Duration::ZERO,
            ..GracePolicy::default()
        })
        .timeout(Duration::from_secs(5))
        .build()
        .expect("builds");
    (l, dir)
}

#[test]
fn licensing_stays_send_sync_clone_and_its_futures_are_send() {
    fn send_sync_clone<T: Send + Sync + Clone + 'static>() {}
    fn send<T: Send + 'static>(_: &T) {}
    send_sync_clone::<Licensing>();
    let polar = Emulator::start(Seed::demo(), Options::default()).expect("emulator");
    let (l, _dir) = licensing(&polar);
    let future = l.check_async(DEMO_KEY);
    send(&future);
    assert!(pollster::block_on(future).is_licensed());
}

#[test]
fn pollster_awaits_activate_validate_check_and_deactivate() {
    let polar = Emulator::start(Seed::demo(), Options::default()).expect("emulator");
    let (l, _dir) = licensing(&polar);
    let read = match pollster::block_on(l.activate_async(ActivateRequest::new(DEMO_KEY, "laptop")))
    {
        Ok(Verdict::Accepted(read)) => read,
        other => panic!("{other:?}"),
    };
    let id = read.activation.id.clone();
    let validated =
        pollster::block_on(l.validate_async(ValidateRequest::new(DEMO_KEY).activation_id(&id)));
    assert!(validated.is_ok_and(|v| v.is_accepted()));
    let report = pollster::block_on(l.check_report_async(DEMO_KEY));
    assert_eq!(report.outcome.source(), Some(Source::Online), "{report:?}");
    let gone = pollster::block_on(l.deactivate_async(DEMO_KEY, None));
    assert!(gone.is_ok_and(|v| v.is_accepted()));
    assert!(polar.activations(DEMO_KEY).is_empty());
    // Bad input comes back as the error, through the future too.
    let bad = pollster::block_on(l.validate_async(ValidateRequest::new(" padded ")));
    assert_eq!(bad.err().map(|e| e.reason()), Some(Reason::InvalidInput));
}

/// Each async call takes what its blocking twin takes: the key as `&String` or `&Key` (a key
/// typed by the user, kept for later calls), the request by reference, the activation id as
/// `Option<&str>` (issue #27: `check_async(&key)` with a `String` did not compile, and
/// `activate` took `&req` where `activate_async` took the value).
#[test]
fn async_calls_take_the_arguments_of_their_blocking_twins() {
    let polar = Emulator::start(Seed::demo(), Options::default()).expect("emulator");
    let (l, _dir) = licensing(&polar);
    let typed: String = format!("  {DEMO_KEY}\n").trim().to_string();
    let req = ActivateRequest::new(&typed, "laptop");
    let id = match pollster::block_on(l.activate_async(&req)) {
        Ok(Verdict::Accepted(read)) => read.activation.id,
        other => panic!("{other:?}"),
    };
    assert!(l.check(&typed).is_licensed());
    assert!(pollster::block_on(l.check_async(&typed)).is_licensed());
    let key = polar_license::Key::from(&typed);
    assert!(pollster::block_on(l.check_report_async(&key))
        .outcome
        .is_licensed());
    let v = ValidateRequest::new(&key).activation_id(&id);
    assert!(l.validate(&v).is_ok_and(|v| v.is_accepted()));
    assert!(pollster::block_on(l.validate_async(&v)).is_ok_and(|v| v.is_accepted()));
    let gone = pollster::block_on(l.deactivate_async(&key, Some(id.as_str())));
    assert!(gone.is_ok_and(|v| v.is_accepted()));
    assert!(polar.activations(DEMO_KEY).is_empty());
}

/// A 10 ms ticker on a tokio current-thread runtime while Polar takes 600 ms to
/// answer: awaiting `check_async` leaves the runtime free (the ticker ticks on); calling the
/// blocking `check` from a task stalls it (the ticker does not tick meanwhile).
#[test]
fn a_current_thread_tokio_runtime_keeps_running_while_polar_is_slow() {
    let polar = Emulator::start(Seed::demo(), Options::default()).expect("emulator");
    let (l, _dir) = licensing(&polar);
    polar.set_fault(Some(Fault::Delay { ms: 600 }));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let ticks_while = |blocking: bool| {
        let l = l.clone();
        runtime.block_on(async move {
            let ticks = Arc::new(AtomicUsize::new(0));
            let counter = Arc::clone(&ticks);
            let ticker = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            });
            tokio::task::yield_now().await;
            let before = ticks.load(Ordering::SeqCst);
            let verdict = if blocking {
                l.check(DEMO_KEY)
            } else {
                l.check_async(DEMO_KEY).await
            };
            let during = ticks.load(Ordering::SeqCst) - before;
            ticker.abort();
            (verdict, during)
        })
    };
    let (verdict, during) = ticks_while(false);
    assert!(verdict.is_licensed(), "{verdict:?}");
    assert!(during >= 20, "only {during} ticks during a 600 ms answer");
    let (verdict, during) = ticks_while(true);
    assert!(verdict.is_licensed(), "{verdict:?}");
    assert_eq!(
        during, 0,
        "the blocking call stalls the runtime (the reason for *_async)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_spawns_the_futures_on_a_multi_thread_runtime() {
    let polar = Emulator::start(Seed::demo(), Options::default()).expect("emulator");
    let (l, _dir) = licensing(&polar);
    let tasks: Vec<_> = (0..4)
        .map(|_| tokio::spawn(l.check_async(DEMO_KEY)))
        .collect();
    for task in tasks {
        assert!(task.await.expect("joined").is_licensed());
    }
}
