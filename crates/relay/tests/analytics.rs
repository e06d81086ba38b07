//! Install analytics through the relay (issue #80, docs/guides/analytics.md): apps' daily pings
//! (`Licensing::report_install`) through the native relay to the emulator over loopback. A run
//! of N installs, some pinging again the same day, is counted N by the guide's meter (`unique`
//! of `install`) and split by version as the guide reads it; nothing reaches Polar with
//! analytics off in the app or in the relay; the relay's state stays within its cap.

mod rig;

use std::sync::Arc;
use std::time::Duration;

use polar_license::Licensing;
use polar_license_emulator::{Emulator, Options, Seed, DEMO_ORGANIZATION_ID, DEMO_TOKEN};
use polar_license_relay::analytics::{AnalyticsOptions, EVENT_NAME};
use polar_license_relay::{serve_with, Relay, Running, ServeOptions};
use polar_license_testkit::{meter, poll, ScratchDir};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;

/// The guide's meter: active installs, the distinct `install` of the pings' events.
const ACTIVE: &str = "6a1f0c3e-2b4d-4e5f-8a9b-0c1d2e3f4a5b";

fn seed() -> Seed {
    let mut seed = Seed::demo();
    seed.meters.push(meter(
        ACTIVE,
        "Active installs",
        EVENT_NAME,
        Some(json!({"func": "unique", "property": "install"})),
    ));
    seed
}

/// The relay in front of `polar`, its analytics as `options` (no store: the day's state is the
/// relay's own), served; and the relay, for its counts.
fn relay(polar: &Emulator, options: AnalyticsOptions) -> (Running, Arc<Relay>) {
    let mut config = rig::config(polar.url(), "analytics-test");
    config.limits = rig::unlimited();
    let relay = Relay::from(rig::relay(config, rig::upstream(Duration::from_secs(5))))
        .with_analytics(options)
        .expect("the options");
    let relay = Arc::new(relay);
    let running =
        serve_with(Arc::clone(&relay), "127.0.0.1:0", ServeOptions::default()).expect("it listens");
    (running, relay)
}

fn on(max_installs_per_day: usize) -> AnalyticsOptions {
    AnalyticsOptions {
        enabled: true,
        max_installs_per_day,
        ..AnalyticsOptions::default()
    }
}

/// One install of the app: its own cache (so its own install secret), analytics as `consent`.
fn install(polar: &Emulator, dir: &ScratchDir, n: usize, consent: bool) -> Licensing {
    Licensing::builder(DEMO_ORGANIZATION_ID)
        .base_url(polar.url())
        .cache_dir(dir.path().join(format!("install-{n}")))
        .install_analytics(consent)
        .build()
        .expect("a licensing")
}

/// `GET` of `path` at the emulator with the seller's token: the JSON.
fn read(polar: &Emulator, path: &str) -> Value {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .get(&format!("{}{path}", polar.url()))
        .header("authorization", &format!("Bearer {DEMO_TOKEN}"))
        .call()
        .expect("the emulator answers");
    let text = resp.body_mut().read_to_string().expect("a body");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// The events Polar holds of the pings' name.
fn events(polar: &Emulator) -> u64 {
    read(polar, &format!("/v1/events/?name={EVENT_NAME}&limit=1"))["pagination"]["total_count"]
        .as_u64()
        .unwrap_or(0)
}

/// Today's quantity of the guide's meter (`query`: more of the query, such as
/// `&metadata[app_version]=1.0.0`), as the guide reads it.
fn active_today(polar: &Emulator, query: &str) -> f64 {
    let now = time::OffsetDateTime::now_utc();
    let start = now.date().midnight().assume_utc();
    let (start, end) = (
        start.format(&Rfc3339).expect("a time"),
        now.format(&Rfc3339).expect("a time"),
    );
    let v = read(
        polar,
        &format!(
            "/v1/meters/{ACTIVE}/quantities?start_timestamp={start}&end_timestamp={end}&interval=day{query}"
        ),
    );
    v["quantities"][0]["quantity"].as_f64().unwrap_or(-1.0)
}

#[test]
fn n_installs_are_counted_n_by_the_guide_s_meter_and_split_by_version() {
    const N: usize = 12;
    let polar = Emulator::start(seed(), Options::default()).expect("starts");
    let (relay, kept) = relay(&polar, on(1_000));
    let dir = ScratchDir::new("relay-analytics-run");
    for n in 0..N {
        let app = install(&polar, &dir, n, true);
        let version = if n < 5 { "1.0.0" } else { "1.1.0" };
        // Every third install starts three times today: one event still.
        let starts = if n % 3 == 0 { 3 } else { 1 };
        for _ in 0..starts {
            assert_eq!(app.report_install(&relay.url(), version), Ok(true));
        }
    }
    poll(
        "Polar holding one event per install",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || events(&polar),
        |got| *got == N as u64,
    );
    assert_eq!(active_today(&polar, ""), N as f64);
    assert_eq!(active_today(&polar, "&metadata[app_version]=1.0.0"), 5.0);
    assert_eq!(
        active_today(&polar, "&metadata[app_version]=1.1.0"),
        (N - 5) as f64
    );
    // Nothing more comes: the repeats were dropped at the relay, not on their way.
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(events(&polar), N as u64);
    let (counts, _) = kept.analytics_counts();
    assert_eq!((counts.taken, counts.repeated), (N as u64, 8));
}

#[test]
fn nothing_is_sent_with_analytics_off_in_the_app_or_in_the_relay() {
    let polar = Emulator::start(seed(), Options::default()).expect("starts");
    let dir = ScratchDir::new("relay-analytics-off");
    // The app's consent off: nothing leaves the app.
    let (relay_on, kept_on) = relay(&polar, on(1_000));
    for n in 0..3 {
        let app = install(&polar, &dir, n, false);
        assert_eq!(app.report_install(&relay_on.url(), "1.0.0"), Ok(false));
    }
    let (counts, held) = kept_on.analytics_counts();
    assert_eq!(
        (counts.taken + counts.off, held),
        (0, (0, 0)),
        "no ping came"
    );
    // The seller's option off: the pings are answered and dropped.
    let (relay_off, kept_off) = relay(&polar, AnalyticsOptions::default());
    for n in 3..6 {
        let app = install(&polar, &dir, n, true);
        assert_eq!(app.report_install(&relay_off.url(), "1.0.0"), Ok(true));
    }
    let (counts, held) = kept_off.analytics_counts();
    assert_eq!((counts.off, counts.taken, held), (3, 0, (0, 0)));
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(events(&polar), 0, "Polar's events unchanged");
}

#[test]
fn a_flood_of_made_up_installs_stays_within_the_day_s_cap() {
    let polar = Emulator::start(seed(), Options::default()).expect("starts");
    let (relay, kept) = relay(&polar, on(10));
    let dir = ScratchDir::new("relay-analytics-flood");
    for n in 0..30 {
        let app = install(&polar, &dir, n, true);
        assert_eq!(app.report_install(&relay.url(), "1.0.0"), Ok(true));
    }
    poll(
        "Polar holding the day's cap of events",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || events(&polar),
        |got| *got == 10,
    );
    let (counts, (installs, waiting)) = kept.analytics_counts();
    assert_eq!((counts.taken, counts.dropped), (10, 20));
    assert!(installs <= 10 && waiting == 0, "{installs} {waiting}");
}
