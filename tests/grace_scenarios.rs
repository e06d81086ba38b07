//! The grace state machine as scenarios: a fake clock (plain unix seconds), a scripted server
//! (no network), a `MemoryStore` holding MACed bytes, and one summary line per check.
//!
//! Each step reads `at, server, expected` where the expected line is
//! `"<ask|quiet>: <outcome>"`: `ask` when a request was sent, `quiet` when `plan` answered
//! alone; the outcome is `licensed online`, `licensed cache <grace seconds left>`,
//! `denied <reason>`, `unverified <reason>` or `error <reason>`.
#![cfg(not(target_arch = "wasm32"))]

use polar_license::cache::{self, MacKey, Untrusted};
use polar_license::grace::{self, CheckOutcome, GracePolicy, Plan, Query, Source, StoreAction};
use polar_license::proto::{HttpResponse, Stamp};
use polar_license::store::{MemoryStore, Store};
use polar_license::{Denial, Error, Reason, ValidateRequest, ValidatedLicenseKey, Verdict};
use std::time::Duration;

const ORG: &str = "d2fcbff8-108b-411e-bf2b-6383e0a8802d";
const KEY: &str = "MYAPP-50B22C51-07BD-4160-A61E-19B6CC6ED415";
const ORIGIN: &str = "https://api.polar.sh";
const ACT_A: &str = "21bf892b-2e46-4f50-8060-8fdaf02aa482";
const ACT_B: &str = "9c6f3a0e-3f43-4b8e-9d7e-5b1c8f7a2e11";

const T0: i64 = 1_790_000_000;
const MIN: i64 = 60;
const H: i64 = 3600;
const D: i64 = 86_400;
const GRACE: i64 = 7 * D;

fn license(expires_at: Option<&str>) -> ValidatedLicenseKey {
    let json = format!(
        r#"{{
  "id": "f7d9ba8a-dd63-4db8-bb8b-015006335825",
  "created_at": "2026-08-01T10:15:30.412907Z",
  "modified_at": null,
  "organization_id": "{ORG}",
  "customer_id": "854fa59b-860f-4262-a6ac-ae0388a7f579",
  "customer": {{
    "id": "854fa59b-860f-4262-a6ac-ae0388a7f579",
    "created_at": "2026-08-01T10:14:58Z",
    "metadata": {{"plan": "pro", "seats": 3}},
    "email": "jane.doe@example.com",
    "email_verified": true,
    "type": "individual",
    "name": "Jane \"JD\" Doe\nline two",
    "organization_id": "{ORG}"
  }},
  "benefit_id": "0d4a8e1e-6a0f-4e43-9a7f-4a3f1d2b5c6e",
  "key": "{KEY}",
  "display_key": "****-6ED415",
  "status": "granted",
  "limit_activations": 3,
  "usage": 0,
  "limit_usage": null,
  "validations": 5,
  "last_validated_at": "2026-08-20T07:02:11Z",
  "expires_at": {},
  "activation": null
}}"#,
        expires_at.map_or("null".to_string(), |t| format!("{t:?}"))
    );
    serde_json::from_str(&json).unwrap()
}

/// What the scripted server does for one request.
#[derive(Clone, Copy, Debug)]
enum Server {
    /// Up, with a correct clock (its `Date` is the check's time).
    Up,
    /// Up, its `Date` this many seconds behind the local clock (a local clock that jumped
    /// ahead).
    UpBehindBy(i64),
    /// Up, but the license it returns expired at this time.
    UpExpiringAt(&'static str),
    Deny(Reason, &'static str),
    Offline,
    Limited(Option<u64>),
    Down5xx,
    Broken,
}

impl Server {
    fn answer(self, now: i64) -> (Result<Verdict<ValidatedLicenseKey>, Error>, Option<i64>) {
        match self {
            Server::Up => (Ok(Verdict::Accepted(license(None))), Some(now)),
            Server::UpBehindBy(skew) => (Ok(Verdict::Accepted(license(None))), Some(now - skew)),
            Server::UpExpiringAt(t) => (Ok(Verdict::Accepted(license(Some(t)))), None),
            Server::Deny(reason, detail) => (
                Ok(Verdict::Denied(Denial {
                    reason,
                    detail: detail.to_string(),
                    status: 404,
                    remaining_usages: None,
                    previously_valid: false,
                    activation_gone: false,
                    stopped: None,
                })),
                None,
            ),
            Server::Offline => (
                Err(Error::Offline {
                    timeout: false,
                    detail: "connection refused".into(),
                }),
                None,
            ),
            Server::Limited(retry_after) => (Err(Error::RateLimited { retry_after }), None),
            Server::Down5xx => (
                Err(Error::ServerError {
                    status: 503,
                    detail: "unavailable".into(),
                }),
                None,
            ),
            Server::Broken => (
                Err(Error::Protocol {
                    status: Some(200),
                    detail: "truncated body".into(),
                }),
                None,
            ),
        }
    }
}

/// One app install: a store, the MAC key, the policy, and a request counter.
struct App {
    store: MemoryStore,
    mac: MacKey,
    slot: String,
    policy: GracePolicy,
    requests: usize,
}

impl App {
    fn new() -> App {
        let store = MemoryStore::with_secret(*b"0123456789abcdef0123456789abcdef");
        let mac = MacKey::derive(KEY, ORG, &store.install_secret().unwrap(), None);
        App {
            store,
            mac,
            slot: cache::slot_name(ORIGIN, ORG, KEY),
            policy: GracePolicy::default(),
            requests: 0,
        }
    }

    /// The whole check as the client will run it: lock, load, plan, maybe ask, settle, save.
    fn check(&mut self, query: &Query, now: i64, server: Server) -> String {
        let _lock = self.store.lock(&self.slot).unwrap();
        let record = self
            .store
            .load(&self.slot)
            .unwrap()
            .and_then(|bytes| cache::decode(&bytes, &self.mac).ok());
        let (asked, outcome) = match grace::plan(record.as_ref(), query, now, &self.policy) {
            Plan::Ask => {
                self.requests += 1;
                let (online, date) = server.answer(now);
                let (action, outcome) =
                    grace::settle(record, query, now, &self.policy, online, date);
                if let StoreAction::Write(r) = action {
                    self.store
                        .save(&self.slot, &cache::encode(&r, &self.mac))
                        .unwrap();
                }
                (true, outcome)
            }
            Plan::Cached(outcome) => {
                assert!(outcome.is_licensed(), "{outcome:?}");
                // Every cached answer is recorded before it is given.
                let mut r = record.expect("a cached answer has a record");
                r.note_answer(now);
                self.store
                    .save(&self.slot, &cache::encode(&r, &self.mac))
                    .unwrap();
                (false, outcome)
            }
            Plan::Refuse(outcome) => {
                assert!(!outcome.is_licensed(), "{outcome:?}");
                (false, outcome)
            }
        };
        format!(
            "{}: {}",
            if asked { "ask" } else { "quiet" },
            summary(&outcome, query)
        )
    }
}

fn summary(outcome: &CheckOutcome, query: &Query) -> String {
    match outcome {
        CheckOutcome::Licensed {
            source,
            license,
            grace_remaining,
            ..
        } => {
            assert_eq!(
                license.license_key.key, query.key,
                "the caller's key comes back"
            );
            match (source, grace_remaining) {
                (Source::Online, None) => "licensed online".to_string(),
                (Source::Cache, Some(left)) => format!("licensed cache {}", left.as_secs()),
                other => panic!("unexpected licensed shape {other:?}"),
            }
        }
        other => format!(
            "{} {}",
            other.kind(),
            other.reason().map_or("-", |r| r.code())
        ),
    }
}

fn q() -> Query {
    Query::new(ORG, KEY)
}

/// A first grant (no record before it) settled at `now` under the default policy, dated by
/// `stamp`: the record it writes, and its answer.
fn first_grant(now: i64, stamp: impl Into<Stamp>) -> (Box<grace::Record>, CheckOutcome) {
    let policy = GracePolicy::default();
    let grant = Ok(Verdict::Accepted(license(None)));
    let (StoreAction::Write(record), outcome) =
        grace::settle(None, &q(), now, &policy, grant, stamp)
    else {
        panic!("expected a write")
    };
    (record, outcome)
}

fn with_activation(id: &str) -> Query {
    q().activation_id(id).condition("machine", "c0ffee42")
}

type Step = (i64, Server, &'static str);

fn run(name: &str, steps: &[Step]) -> App {
    run_queries(name, &steps.iter().map(|s| (q(), *s)).collect::<Vec<_>>())
}

fn run_queries(name: &str, steps: &[(Query, Step)]) -> App {
    let mut app = App::new();
    for (i, (query, (at, server, expected))) in steps.iter().enumerate() {
        let got = app.check(query, *at, *server);
        assert_eq!(
            got,
            *expected,
            "scenario {name:?}, step {i} (t = T0 + {} s, server {server:?})",
            at - T0
        );
    }
    app
}

#[test]
fn scenarios() {
    use Server::*;
    let inactive = Deny(Reason::Inactive, "License key is no longer active.");
    let table: &[(&str, &[Step])] = &[
        (
            "fresh cache answers with no request",
            &[
                (T0, Up, "ask: licensed online"),
                (T0 + 30 * MIN, Up, "quiet: licensed cache 603000"),
                (T0 + H - 1, Offline, "quiet: licensed cache 601201"),
            ],
        ),
        (
            "stale cache with the server up asks and writes a new record",
            &[
                (T0, Up, "ask: licensed online"),
                (T0 + 2 * H, Up, "ask: licensed online"),
                (
                    T0 + 2 * H + 10 * MIN,
                    Offline,
                    "quiet: licensed cache 604200",
                ),
            ],
        ),
        (
            "stale and offline within the grace: the exact time left",
            &[
                (T0, Up, "ask: licensed online"),
                (T0 + 3 * D + 17, Offline, "ask: licensed cache 345583"),
                (T0 + 3 * D + 18, Down5xx, "ask: licensed cache 345582"),
                (T0 + GRACE, Offline, "ask: licensed cache 0"),
            ],
        ),
        (
            "past the grace",
            &[
                (T0, Up, "ask: licensed online"),
                (T0 + GRACE + 1, Offline, "ask: unverified grace_expired"),
                (T0 + GRACE + 2, Down5xx, "ask: unverified grace_expired"),
                (T0 + GRACE + 3, Up, "ask: licensed online"),
            ],
        ),
        (
            "no cache and offline stays offline",
            &[
                (T0, Offline, "ask: unverified offline"),
                (T0 + 1, Down5xx, "ask: unverified server_error"),
            ],
        ),
        (
            "a denial removes the cache's power to grant until an online success",
            &[
                (T0, Up, "ask: licensed online"),
                (T0 + 2 * H, inactive, "ask: denied inactive"),
                (T0 + 2 * H + 1, Offline, "ask: unverified offline"),
                (
                    T0 + 2 * H + 2,
                    Limited(Some(5)),
                    "ask: unverified rate_limited",
                ),
                (T0 + 2 * H + 3, Up, "quiet: unverified rate_limited"),
                (T0 + 2 * H + 10, Up, "ask: licensed online"),
                (T0 + 2 * H + 11, Offline, "quiet: licensed cache 604799"),
            ],
        ),
        (
            "429 without a cache: nothing is sent before the block ends",
            &[
                (T0, Limited(Some(120)), "ask: unverified rate_limited"),
                (T0 + 60, Up, "quiet: unverified rate_limited"),
                (T0 + 119, Up, "quiet: unverified rate_limited"),
                (T0 + 120, Up, "ask: licensed online"),
            ],
        ),
        (
            "429 with an unreadable retry-after blocks 60 s",
            &[
                (T0, Limited(None), "ask: unverified rate_limited"),
                (T0 + 59, Up, "quiet: unverified rate_limited"),
                (T0 + 60, Up, "ask: licensed online"),
            ],
        ),
        (
            "429 with a stale cache: licensed from the cache while blocked, no request",
            &[
                (T0, Up, "ask: licensed online"),
                (T0 + 2 * H, Limited(Some(300)), "ask: licensed cache 597600"),
                (T0 + 2 * H + 299, Up, "quiet: licensed cache 597301"),
                (T0 + 2 * H + 300, Up, "ask: licensed online"),
            ],
        ),
        (
            "429 past the grace: grace_expired, still no request while blocked",
            &[
                (T0, Up, "ask: licensed online"),
                (
                    T0 + 8 * D,
                    Limited(Some(30)),
                    "ask: unverified grace_expired",
                ),
                (T0 + 8 * D + 10, Up, "quiet: unverified grace_expired"),
                (T0 + 8 * D + 30, Up, "ask: licensed online"),
            ],
        ),
        (
            "a clock moved back beyond the tolerance is clock_rollback",
            &[
                (T0, Up, "ask: licensed online"),
                (T0 + 3 * D, Offline, "ask: licensed cache 345600"),
                (
                    T0 + 3 * D - 11 * MIN,
                    Offline,
                    "ask: unverified clock_rollback",
                ),
                // Within the tolerance: licensed, but the time moved back buys no grace
                // (ages are measured at the latest time seen).
                (T0 + 3 * D - 10 * MIN, Offline, "ask: licensed cache 345600"),
                (T0 + 3 * D - 9 * MIN, Down5xx, "ask: licensed cache 345600"),
            ],
        ),
        (
            "setting the clock back into the grace window gains nothing",
            &[
                (T0, Up, "ask: licensed online"),
                (T0 + 6 * D, Offline, "ask: licensed cache 86400"),
                (T0 + 8 * D, Offline, "ask: unverified grace_expired"),
                (T0 + D, Offline, "ask: unverified clock_rollback"),
                // Even inside the fresh window by age, a rolled-back clock asks.
                (T0 + 5 * MIN, Offline, "ask: unverified clock_rollback"),
                (
                    T0 + 5 * MIN,
                    Limited(Some(60)),
                    "ask: unverified clock_rollback",
                ),
                // Only the server can re-anchor the record.
                (T0 + 6 * MIN, Up, "ask: licensed online"),
                (T0 + 7 * MIN, Offline, "quiet: licensed cache 604740"),
            ],
        ),
        (
            "a clock slightly behind the last verdict (within tolerance) is fine",
            &[
                (T0, Up, "ask: licensed online"),
                (T0 - 5 * MIN, Offline, "quiet: licensed cache 604800"),
                (T0 + 2 * H, Offline, "ask: licensed cache 597600"),
            ],
        ),
        (
            "an answer that is not Polar's falls back like an unreachable Polar, no tombstone",
            &[
                (T0, Broken, "ask: error protocol_error"),
                (T0 + 1, Up, "ask: licensed online"),
                (T0 + 2 * H, Broken, "ask: licensed cache 597601"),
                (T0 + 2 * H + 1, Offline, "ask: licensed cache 597600"),
                (T0 + 8 * D, Broken, "ask: unverified grace_expired"),
            ],
        ),
        (
            "a local clock that jumped ahead is anchored at the server's Date",
            &[
                (T0, UpBehindBy(3 * D), "ask: licensed online"),
                // The clock comes back: no rollback, the grace runs from the server's time.
                (T0 - 3 * D + 2 * H, Offline, "ask: licensed cache 597600"),
                // A skew within the tolerance keeps the local time.
                (T0 + 2 * H, UpBehindBy(5 * MIN), "ask: licensed online"),
                (T0 + 2 * H + 1, Offline, "quiet: licensed cache 604799"),
            ],
        ),
        (
            "a license that expired never grants from the cache",
            &[
                (
                    T0,
                    UpExpiringAt("2026-09-23T15:00:00Z"),
                    "ask: licensed online",
                ),
                // 2026-09-23T15:00:00Z is T0 + 2 D + 2800 s.
                (T0 + 30 * MIN, Offline, "quiet: licensed cache 603000"),
                (T0 + 2 * D, Offline, "ask: licensed cache 432000"),
                (T0 + 3 * D, Offline, "ask: unverified offline"),
            ],
        ),
    ];
    assert_eq!(
        time::OffsetDateTime::from_unix_timestamp(T0 + 2 * D + 2800)
            .unwrap()
            .to_string(),
        "2026-09-23 15:00:00.0 +00:00:00"
    );
    for (name, steps) in table {
        run(name, steps);
    }
}

#[test]
fn a_held_clock_stops_the_cache_after_max_stalled_answers() {
    let mut app = App::new();
    assert_eq!(app.check(&q(), T0, Server::Up), "ask: licensed online");
    // A clock held 30 minutes after the verdict: the answers are counted.
    let held = T0 + 30 * MIN;
    for i in 0..=grace::MAX_STALLED {
        let got = app.check(&q(), held, Server::Up);
        assert_eq!(got, "quiet: licensed cache 603000", "answer {i}");
    }
    // One more at the same time: Polar is asked (a revocation is seen at once)…
    let revoked = Server::Deny(Reason::Inactive, "License key is no longer active.");
    assert_eq!(app.check(&q(), held, revoked), "ask: denied inactive");
    // …and with Polar unreachable, a held clock no longer licenses from the cache.
    let mut app = App::new();
    app.check(&q(), T0, Server::Up);
    for _ in 0..=grace::MAX_STALLED {
        app.check(&q(), held, Server::Up);
    }
    assert_eq!(
        app.check(&q(), held, Server::Offline),
        "ask: unverified clock_rollback"
    );
    // The clock moving forward ends the stall.
    assert_eq!(
        app.check(&q(), held + 1, Server::Offline),
        "quiet: licensed cache 602999"
    );
    // Moving back inside the tolerance regains no fresh time: the age is measured at the
    // latest time seen.
    assert_eq!(
        app.check(&q(), held - 5 * MIN, Server::Offline),
        "quiet: licensed cache 602999"
    );
}

#[test]
fn fresh_cache_sends_zero_requests() {
    let app = run(
        "fresh",
        &[
            (T0, Server::Up, "ask: licensed online"),
            (T0 + 1, Server::Up, "quiet: licensed cache 604799"),
            (T0 + 2, Server::Up, "quiet: licensed cache 604798"),
            (T0 + H - 1, Server::Up, "quiet: licensed cache 601201"),
        ],
    );
    assert_eq!(app.requests, 1);
}

#[test]
fn a_changed_activation_or_condition_asks() {
    let a = with_activation(ACT_A);
    let b = with_activation(ACT_B);
    let a_other_machine = q().activation_id(ACT_A).condition("machine", "deadbeef");
    run_queries(
        "binding",
        &[
            (a.clone(), (T0, Server::Up, "ask: licensed online")),
            (
                a.clone(),
                (T0 + 60, Server::Up, "quiet: licensed cache 604740"),
            ),
            (b.clone(), (T0 + 120, Server::Up, "ask: licensed online")),
            // The record now belongs to activation B: A offline has no cache.
            (
                a.clone(),
                (T0 + 180, Server::Offline, "ask: unverified offline"),
            ),
            (
                b.clone(),
                (T0 + 240, Server::Offline, "quiet: licensed cache 604680"),
            ),
            (
                a_other_machine.clone(),
                (T0 + 300, Server::Offline, "ask: unverified offline"),
            ),
            (q(), (T0 + 360, Server::Offline, "ask: unverified offline")),
        ],
    );
}

#[test]
fn usage_increments_always_ask() {
    let mut metered = q();
    metered.increment_usage = 1;
    run_queries(
        "metered",
        &[
            (q(), (T0, Server::Up, "ask: licensed online")),
            (
                metered.clone(),
                (T0 + 1, Server::Up, "ask: licensed online"),
            ),
            (
                metered,
                (T0 + 2, Server::Offline, "ask: licensed cache 604799"),
            ),
        ],
    );
}

#[test]
fn a_denial_inside_the_fresh_window_is_not_overridden_by_the_cache() {
    let mut metered = q();
    metered.increment_usage = 1;
    let exhausted = Server::Deny(
        Reason::UsageExhausted,
        "License key only has 0 more usages.",
    );
    let app = run_queries(
        "denied while fresh",
        &[
            (q(), (T0, Server::Up, "ask: licensed online")),
            (metered, (T0 + 60, exhausted, "ask: denied usage_exhausted")),
            // By age the old verdict is fresh, but the tombstone forces a request.
            (q(), (T0 + 120, Server::Offline, "ask: unverified offline")),
            (q(), (T0 + 180, Server::Up, "ask: licensed online")),
            (q(), (T0 + 240, Server::Up, "quiet: licensed cache 604740")),
        ],
    );
    assert_eq!(app.requests, 4);
}

#[test]
fn another_key_or_organization_never_reads_the_record() {
    let mut app = App::new();
    assert_eq!(app.check(&q(), T0, Server::Up), "ask: licensed online");
    let record = cache::decode(&app.store.load(&app.slot).unwrap().unwrap(), &app.mac).unwrap();
    let policy = GracePolicy::default();
    let other_key = Query::new(ORG, "OTHER-KEY-0000-000000000000");
    assert_eq!(
        grace::plan(Some(&record), &other_key, T0 + 1, &policy),
        Plan::Ask
    );
    let other_org = Query::new("8f14e45f-ceea-467a-9c1e-5f2b3b2f9b11", KEY);
    assert_eq!(
        grace::plan(Some(&record), &other_org, T0 + 1, &policy),
        Plan::Ask
    );
    let (_, outcome) = grace::settle(
        Some(record),
        &other_key,
        T0 + 2,
        &policy,
        Err(Error::Offline {
            timeout: true,
            detail: "timed out".into(),
        }),
        None,
    );
    assert_eq!(outcome.reason(), Some(Reason::Offline));
}

#[test]
fn online_denial_writes_a_tombstone_that_status_can_read() {
    let policy = GracePolicy::default();
    let denial = Denial {
        reason: Reason::Expired,
        detail: "License key has expired.".into(),
        status: 404,
        remaining_usages: None,
        previously_valid: false,
        activation_gone: false,
        stopped: None,
    };
    let (action, outcome) = grace::settle::<ValidatedLicenseKey>(
        None,
        &q(),
        T0,
        &policy,
        Ok(Verdict::Denied(denial.clone())),
        None,
    );
    assert_eq!(outcome, CheckOutcome::Denied(denial.clone()));
    let StoreAction::Write(record) = action else {
        panic!("expected a write")
    };
    assert_eq!(record.denied.as_ref().map(|d| d.to_denial()), Some(denial));
    assert_eq!(record.grace_remaining(T0, &policy), None);
    assert_eq!(record.display_key, "****-6ED415");
}

#[test]
fn records_report_rollback_and_grace_for_status() {
    let policy = GracePolicy::default();
    let (record, _) = first_grant(T0, Some(T0 - 3));
    let good = record.good.as_ref().unwrap();
    assert_eq!((good.verified_at, good.server_date), (T0, Some(T0 - 3)));
    assert_eq!(
        record.grace_remaining(T0 + D, &policy),
        Some(Duration::from_secs(6 * D as u64))
    );
    assert_eq!(record.rollback(T0 - 10 * MIN, &policy), None);
    assert_eq!(record.rollback(T0 - 10 * MIN - 1, &policy), Some(601));
    assert_eq!(record.grace_remaining(T0 - H, &policy), None);
}

/// A relay's replay of a stored answer says its `Age`: the verdict is dated from when Polar
/// gave it, so a replayed grant never restarts the grace (docs/threat-model.md).
#[test]
fn a_replayed_grant_is_dated_from_polars_answer_by_its_age() {
    let policy = GracePolicy::default();
    let stamp = |date, age| Stamp { date, age };
    // An hour-old replay: licensed, the grace ending an hour sooner than for Polar's own
    // answer; the clock's high-water mark is now.
    let (record, outcome) = first_grant(T0, stamp(Some(T0), H));
    let good = record.good.as_ref().unwrap();
    assert_eq!((good.verified_at, record.latest_seen), (T0 - H, T0));
    assert!(
        matches!(outcome, CheckOutcome::Licensed { source: Source::Online, verified_at, .. } if verified_at == T0 - H),
        "{outcome:?}"
    );
    assert_eq!(
        record.grace_remaining(T0, &policy),
        Some(Duration::from_secs((GRACE - H) as u64))
    );
    assert_eq!(record.grace_remaining(T0 + GRACE - H + 1, &policy), None);
    // The next check asks again (older than revalidate_after), and offline the cache licenses
    // only until Polar's answer's grace ends.
    assert_eq!(grace::plan(Some(&record), &q(), T0 + 1, &policy), Plan::Ask);
    let offline = || Error::Offline {
        timeout: false,
        detail: "refused".into(),
    };
    let (_, late) = grace::settle(
        Some((*record).clone()),
        &q(),
        T0 + GRACE - H + 1,
        &policy,
        Err(offline()),
        None,
    );
    assert_eq!(late.reason(), Some(Reason::GraceExpired), "{late:?}");

    // The clock ahead of the server: the answer is anchored at the server's Date, then aged.
    let (ahead, _) = first_grant(T0 + D, stamp(Some(T0), 300));
    assert_eq!(ahead.good.as_ref().unwrap().verified_at, T0 - 300);

    // Older than the grace: `grace_expired`, as the cache would answer, and nothing stored
    // (a tombstone stays a tombstone).
    let denial = Denial {
        reason: Reason::Inactive,
        detail: "License key is no longer active.".into(),
        status: 404,
        remaining_usages: None,
        previously_valid: true,
        activation_gone: false,
        stopped: None,
    };
    let (StoreAction::Write(tomb), _) = grace::settle::<ValidatedLicenseKey>(
        None,
        &q(),
        T0,
        &policy,
        Ok(Verdict::Denied(denial)),
        None,
    ) else {
        panic!("expected a write")
    };
    for age in [GRACE + 1, i64::MAX] {
        let (action, outcome) = grace::settle(
            Some((*tomb).clone()),
            &q(),
            T0 + 1,
            &policy,
            Ok(Verdict::Accepted(license(None))),
            stamp(None, age),
        );
        assert_eq!(action, StoreAction::Keep, "age {age}");
        assert_eq!(outcome.reason(), Some(Reason::GraceExpired), "age {age}");
    }
    // Exactly the grace: licensed, with nothing left.
    let (edge, outcome) = first_grant(T0, stamp(None, GRACE));
    assert!(outcome.is_licensed());
    assert_eq!(edge.grace_remaining(T0, &policy), Some(Duration::ZERO));
}

#[test]
fn the_age_header_reads_as_delta_seconds_only() {
    let age = |values: &[&str]| {
        values
            .iter()
            .fold(HttpResponse::new(200, ""), |r, v| r.with_header("Age", v))
            .age()
    };
    assert_eq!(age(&[]), None);
    assert_eq!(age(&["0"]), Some(0));
    assert_eq!(age(&["3600"]), Some(3600));
    assert_eq!(age(&[" 12\t"]), Some(12));
    assert_eq!(age(&["99999999999999999999"]), Some(i64::MAX));
    for bad in ["", "-5", "+5", "1.5", "12s", "0x10", "1 2", "１"] {
        assert_eq!(age(&[bad]), None, "{bad:?}");
    }
    assert_eq!(age(&["5", "5"]), None, "two headers read as none");
    let stamped = HttpResponse::new(200, "")
        .with_header("date", "Sun, 06 Nov 1994 08:49:37 GMT")
        .with_header("age", "7");
    assert_eq!(
        stamped.stamp(),
        Stamp {
            date: Some(784_111_777),
            age: 7
        }
    );
    assert_eq!(HttpResponse::new(200, "").stamp(), Stamp::default());
}

#[test]
fn query_from_request_takes_everything_that_changes_the_answer() {
    let req = ValidateRequest::new(KEY)
        .activation_id(ACT_A)
        .benefit_id("0d4a8e1e-6a0f-4e43-9a7f-4a3f1d2b5c6e")
        .increment_usage(2)
        .condition("machine", "c0ffee42");
    let query = Query::from_request(ORG, &req).unwrap();
    assert_eq!(query.activation_id.as_deref(), Some(ACT_A));
    assert_eq!(query.increment_usage, 2);
    assert_eq!(query.conditions.len(), 1);
    let err = Query::from_request(ORG, &ValidateRequest::default()).unwrap_err();
    assert_eq!(err.reason(), Reason::InvalidInput);
}

// ---------------------------------------------------------------------------------------------
// The stored bytes

fn sealed() -> (Vec<u8>, MacKey, grace::Record) {
    let policy = GracePolicy::default();
    let query = with_activation(ACT_A);
    let (StoreAction::Write(record), _) = grace::settle(
        None,
        &query,
        T0,
        &policy,
        Ok(Verdict::Accepted(license(Some("2027-01-01T00:00:00Z")))),
        Some(T0),
    ) else {
        panic!("expected a write")
    };
    let mac = MacKey::derive(KEY, ORG, &[7u8; 32], Some(b"app secret"));
    (cache::encode(&record, &mac), mac, *record)
}

#[test]
fn encode_decode_roundtrip() {
    let (bytes, mac, record) = sealed();
    assert_eq!(cache::decode(&bytes, &mac), Ok(record));
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.starts_with("polar-license-cache v2\n{"), "{text}");
    assert_eq!(text.lines().count(), 3);
    assert!(!text.contains(KEY), "the full key is never stored");
    assert!(
        !text.contains("50B22C51"),
        "no part of the key but the display tail"
    );
}

#[test]
fn every_single_byte_change_is_untrusted() {
    let (bytes, mac, _) = sealed();
    let mut checked = 0;
    for i in 0..bytes.len() {
        for delta in [0x01u8, 0x20, 0x80, 0xff] {
            let mut edited = bytes.clone();
            edited[i] ^= delta;
            let got = cache::decode(&edited, &mac);
            assert!(got.is_err(), "byte {i} ^ {delta:#04x} was trusted");
            checked += 1;
        }
        // Deleting and duplicating a byte too.
        let mut shorter = bytes.clone();
        shorter.remove(i);
        assert!(cache::decode(&shorter, &mac).is_err(), "byte {i} removed");
        let mut longer = bytes.clone();
        longer.insert(i, bytes[i]);
        assert!(cache::decode(&longer, &mac).is_err(), "byte {i} doubled");
    }
    assert!(checked > 4000, "{checked}");
    let mut appended = bytes.clone();
    appended.push(b'\n');
    assert_eq!(cache::decode(&appended, &mac), Err(Untrusted::Malformed));
    assert_eq!(cache::decode(b"", &mac), Err(Untrusted::Malformed));
    assert_eq!(
        cache::decode(&bytes[..bytes.len() - 1], &mac),
        Err(Untrusted::Malformed)
    );
}

#[test]
fn a_body_edit_is_bad_mac() {
    let (bytes, mac, _) = sealed();
    let text = String::from_utf8(bytes).unwrap();
    let edited = text.replacen(
        &format!("\"verified_at\":{T0}"),
        &format!("\"verified_at\":{}", T0 + D),
        1,
    );
    assert_ne!(edited, text);
    assert_eq!(
        cache::decode(edited.as_bytes(), &mac),
        Err(Untrusted::BadMac)
    );
}

#[test]
fn unknown_version_is_untrusted() {
    let (bytes, mac, _) = sealed();
    let text = String::from_utf8(bytes).unwrap();
    for version in ["v1", "v3", "v0", "v20", "v"] {
        let edited = text.replacen("v2\n", &format!("{version}\n"), 1);
        assert_eq!(
            cache::decode(edited.as_bytes(), &mac),
            Err(Untrusted::UnknownVersion),
            "{version}"
        );
    }
    let edited = text.replacen("polar-license-cache", "polar-license-cachf", 1);
    assert_eq!(
        cache::decode(edited.as_bytes(), &mac),
        Err(Untrusted::Malformed)
    );
    assert_eq!(
        Untrusted::UnknownVersion.to_string(),
        "cache present but in an unknown format version"
    );
}

#[test]
fn another_install_secret_app_secret_key_or_org_is_bad_mac() {
    let (bytes, _, _) = sealed();
    let others = [
        MacKey::derive(KEY, ORG, &[8u8; 32], Some(b"app secret")),
        MacKey::derive(KEY, ORG, &[7u8; 32], Some(b"app secreT")),
        MacKey::derive(KEY, ORG, &[7u8; 32], None),
        MacKey::derive("MYAPP-OTHER", ORG, &[7u8; 32], Some(b"app secret")),
        MacKey::derive(
            KEY,
            "8f14e45f-ceea-467a-9c1e-5f2b3b2f9b11",
            &[7u8; 32],
            Some(b"app secret"),
        ),
    ];
    for (i, other) in others.iter().enumerate() {
        assert_eq!(
            cache::decode(&bytes, other),
            Err(Untrusted::BadMac),
            "key {i}"
        );
    }
}

#[test]
fn a_record_from_another_slot_is_rejected_by_its_mac() {
    // Copying one key's cache file over another key's slot: the MAC key differs.
    let (bytes, _, _) = sealed();
    let other = MacKey::derive("MYAPP-0000", ORG, &[7u8; 32], Some(b"app secret"));
    assert_eq!(cache::decode(&bytes, &other), Err(Untrusted::BadMac));
    assert_ne!(
        cache::slot_name(ORIGIN, ORG, KEY),
        cache::slot_name(ORIGIN, ORG, "MYAPP-0000")
    );
}

#[test]
fn oversized_bytes_are_malformed() {
    let (_, mac, _) = sealed();
    let huge = vec![b'x'; cache::MAX_RECORD_BYTES + 1];
    assert_eq!(cache::decode(&huge, &mac), Err(Untrusted::Malformed));
}

/// Issue #53 item 2 in the pure rules: a grant never lifts a denial received after its call
/// was asked (dated after `now`), whether it is a check's (`settle`), the check's own question
/// asked by a validate (`observe_validate`: the denial is kept beside the fresh verdict), or
/// another question's (`observe_validate` lifting a key-level denial); a denial dated before
/// the call is lifted as before.
#[test]
fn a_grant_never_lifts_a_denial_received_after_it_was_asked() {
    let policy = GracePolicy::default();
    let (granted, _) = first_grant(T0, None);
    let denied_at = |at: i64| {
        let mut r = (*granted).clone();
        r.denied = Some(grace::DenialMark {
            reason: Reason::Inactive,
            detail: "License key is no longer active.".into(),
            status: 404,
            remaining_usages: None,
            at,
            signed: None,
            verified: None,
        });
        r
    };
    // A check asked at T0 + 10 settled with a grant, the record denied at `denied`.
    let settle = |denied: i64| {
        grace::settle(
            Some(denied_at(denied)),
            &q(),
            T0 + 10,
            &policy,
            Ok(Verdict::Accepted(license(None))),
            None,
        )
    };
    // The denial came at T0 + 11: it stands, nothing written.
    let (action, outcome) = settle(T0 + 11);
    assert_eq!(action, StoreAction::Keep);
    assert_eq!(outcome.reason(), Some(Reason::Inactive), "{outcome:?}");
    // One before the check: lifted.
    let (_, outcome) = settle(T0 + 9);
    assert!(outcome.is_licensed(), "{outcome:?}");
    // A validate of `question` asked at T0 + 10 (the check's question is `q()`), answered with
    // a grant, the record denied at `denied`.
    let answer = Ok((Verdict::Accepted(license(None)), Stamp::default()));
    let observe = |denied: i64, question: &Query| {
        grace::observe_validate(
            Some(denied_at(denied)),
            question,
            Some(&q()),
            T0 + 10,
            &policy,
            &answer,
        )
        .expect("a record")
    };
    // A validate of the check's question: the fresh verdict is stored, the later denial kept.
    let r = observe(T0 + 11, &q());
    assert!(r.denied.is_some(), "{r:?}");
    // A validate of another question: a key-level denial received after it is not lifted.
    let other = q().activation_id("another");
    let r = observe(T0 + 11, &other);
    assert!(r.denied.is_some(), "{r:?}");
    let r = observe(T0 + 9, &other);
    assert!(r.denied.is_none(), "{r:?}");
}

/// A "not found" of the activation the record's grant is for speaks about that activation (it
/// was deleted), not about the key: a grant of the key asked without it (a face's plain
/// validate) does not lift it, so the deleted activation's old grant never licenses from the
/// cache again; a grant that asked that activation does, and a key-level `inactive` is lifted
/// by any grant of the key, as before.
#[test]
fn a_grant_of_the_key_alone_does_not_lift_a_deleted_activations_not_found() {
    let policy = GracePolicy::default();
    let ours = with_activation(ACT_A);
    let grant = |at: i64, record: Option<grace::Record>| {
        let answer = Ok(Verdict::Accepted(license(None)));
        match grace::settle(record, &ours, at, &policy, answer, Some(at)) {
            (StoreAction::Write(r), outcome) => {
                assert!(outcome.is_licensed(), "{outcome:?}");
                *r
            }
            other => panic!("{other:?}"),
        }
    };
    let denied = |reason: Reason, detail: &str| {
        let denial = Ok(Verdict::Denied(Denial {
            reason,
            detail: detail.into(),
            status: 404,
            remaining_usages: None,
            previously_valid: false,
            activation_gone: false,
            stopped: None,
        }));
        match grace::settle(
            Some(grant(T0, None)),
            &ours,
            T0 + 2 * H,
            &policy,
            denial,
            None,
        ) {
            (StoreAction::Write(r), outcome) => {
                assert!(!outcome.is_licensed(), "{outcome:?}");
                *r
            }
            other => panic!("{other:?}"),
        }
    };
    let plain = Ok((Verdict::Accepted(license(None)), Stamp::default()));
    // A validate asked at `at` of `question`, the check's question being ours.
    let observe = |record: grace::Record, question: &Query, at: i64| {
        grace::observe_validate(Some(record), question, Some(&ours), at, &policy, &plain)
            .expect("a record")
    };
    // Then Polar cannot be reached: does the record license?
    let offline = |record: grace::Record| {
        let (_, outcome) = grace::settle(
            Some(record),
            &ours,
            T0 + 3 * H,
            &policy,
            Err(Error::Offline {
                timeout: false,
                detail: "connection refused".into(),
            }),
            None,
        );
        outcome
    };
    let gone = denied(Reason::NotFound, "Not found");
    assert_eq!(
        gone.denied.as_ref().map(|d| d.reason),
        Some(Reason::NotFound)
    );
    // The key alone, or another activation: the denial stands, nothing licenses offline.
    for question in [q(), q().activation_id(ACT_B)] {
        let r = observe(gone.clone(), &question, T0 + 2 * H + MIN);
        assert!(r.denied.is_some(), "{question:?}: {r:?}");
        let outcome = offline(r);
        assert!(!outcome.is_licensed(), "{question:?}: {outcome:?}");
    }
    // The same activation asked (other conditions): it exists, the denial is lifted.
    let r = observe(gone, &q().activation_id(ACT_A), T0 + 2 * H + MIN);
    assert!(r.denied.is_none(), "{r:?}");
    // A key-level denial: any grant of the key lifts it.
    let r = observe(
        denied(Reason::Inactive, "License key is no longer active."),
        &q(),
        T0 + 2 * H + MIN,
    );
    assert!(r.denied.is_none(), "{r:?}");
    assert!(offline(r).is_licensed());
}
