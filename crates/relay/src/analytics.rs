//! Install analytics, opt-in (issue #80): an app that turned it on sends the relay one small
//! ping a day ([`ANALYTICS_ROUTE`]: a hashed install id, the app's version, the OS, the
//! architecture and the face), and the relay ingests at most one event per install per day into
//! the seller's own Polar (`POST /v1/events/ingest`, the token then needs `events:write`), from
//! which the seller's meters count active installs (`unique` of `install`) and version
//! adoption (the same meter's quantities filtered by `metadata[app_version]`): the guide is
//! docs/guides/analytics.md.
//!
//! Nothing personal is taken, since Polar's events cannot be deleted: the body's fields are
//! short tokens of `[A-Za-z0-9._+-]` (no spaces, no `@`), the install id a hash the client
//! salted per organization; no key, no address, no label is read or sent.
//!
//! Every piece of state a request can create is bounded, and no request costs more than a
//! request: the installs seen today ([`AnalyticsOptions::max_installs_per_day`], cleared when
//! the UTC day turns) and the events waiting ([`MAX_WAITING`]) have caps, and a ping past
//! either is dropped (counted); so that one client flooding made-up install ids cannot fill the
//! day's cap and crowd out the real installs, each client address (an IPv6 one by its /64, which
//! one machine is usually given whole) brings at most
//! [`AnalyticsOptions::max_installs_per_address`] new installs a day; one ping is at most one event, sent in batches of
//! [`MAX_BATCH`] by the background machine from the token's budget (its usage part). Each
//! event's `external_id` is the install's and the day's, so Polar itself drops a day's second
//! event of one install (`on_conflict_do_nothing` on the organization and `external_id`) even
//! after the relay restarts and forgets what it saw.
//!
//! Off (the default), the route still answers, the same `202`, and keeps nothing: an app
//! cannot tell, and sends nothing more for it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;

use crate::clock::Now;
use crate::types::RelayResponse;

// The route an app sends its daily ping to, with the relay's other routes.
pub use crate::types::ANALYTICS_ROUTE;

/// The event's name in the seller's Polar (the guide's meters filter on it).
pub const EVENT_NAME: &str = "polar_license.install";

/// The events kept waiting for Polar at most: past it a ping is dropped (a Polar down for long
/// loses a day's pings, never the relay's memory).
pub const MAX_WAITING: usize = 10_000;

/// The most events in one ingest call.
pub const MAX_BATCH: usize = 100;

/// The default of [`AnalyticsOptions::max_installs_per_day`].
pub const DEFAULT_MAX_INSTALLS_PER_DAY: usize = 100_000;

/// The default of [`AnalyticsOptions::max_installs_per_address`]: an office or a school behind
/// one address has fewer installs than this; a flood from one address fills 1 % of the default
/// day's cap.
pub const DEFAULT_MAX_INSTALLS_PER_ADDRESS: usize = 1_000;

/// The most bytes of a field's value (an app version, an OS, an architecture, a face).
const MAX_FIELD_BYTES: usize = 40;

/// How long the machine waits after a failed ingest before it tries the batch again.
const RETRY_MS: u64 = 30_000;

/// How often an idle relay with analytics on looks for events (a native relay's background
/// thread keeps running while it is on).
const IDLE_MS: u64 = 2_000;

/// The seller's analytics settings (`relay serve --install-analytics`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyticsOptions {
    /// Ingest the pings into the seller's Polar (default `false`: dropped unread).
    pub enabled: bool,
    /// The distinct installs kept per UTC day (default [`DEFAULT_MAX_INSTALLS_PER_DAY`]):
    /// the day's further installs are dropped, so a flood of made-up install ids costs the
    /// relay this much memory and the seller this many events a day, no more.
    pub max_installs_per_day: usize,
    /// The new installs one client address brings per UTC day (default
    /// [`DEFAULT_MAX_INSTALLS_PER_ADDRESS`]; an IPv6 address counted by its /64): past it the
    /// address's pings of further installs are dropped, so the day's cap is not one client's
    /// to fill. The addresses are kept only beside an install they brought (never more than
    /// the day's installs).
    pub max_installs_per_address: usize,
}

impl Default for AnalyticsOptions {
    fn default() -> Self {
        AnalyticsOptions {
            enabled: false,
            max_installs_per_day: DEFAULT_MAX_INSTALLS_PER_DAY,
            max_installs_per_address: DEFAULT_MAX_INSTALLS_PER_ADDRESS,
        }
    }
}

impl AnalyticsOptions {
    /// What is wrong with these options, if anything (`(field, why)`).
    pub fn problem(&self) -> Option<(&'static str, &'static str)> {
        if self.max_installs_per_day == 0 || self.max_installs_per_day > 10_000_000 {
            return Some(("max_installs_per_day", "must be from 1 to 10000000"));
        }
        (self.max_installs_per_address == 0 || self.max_installs_per_address > 10_000_000)
            .then_some(("max_installs_per_address", "must be from 1 to 10000000"))
    }
}

/// One install's daily ping, its fields checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ping {
    /// The install's id as the client hashed it (32 lowercase hex characters).
    pub(crate) install: String,
    pub(crate) app_version: String,
    pub(crate) os: String,
    pub(crate) arch: String,
    pub(crate) face: String,
}

/// What the relay counted of the pings (the operator's view; tests read it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnalyticsCounts {
    /// Pings taken as the day's first of their install (an event each).
    pub taken: u64,
    /// Pings of an install already seen today.
    pub repeated: u64,
    /// Pings dropped: the day's installs or the waiting events at their cap.
    pub dropped: u64,
    /// Pings taken while analytics was off (dropped unread).
    pub off: u64,
    /// Events Polar took (`inserted` and `duplicates` together).
    pub ingested: u64,
}

#[derive(Debug, Default)]
struct State {
    /// The UTC day (days since 1970) `seen` is of.
    day: i64,
    seen: HashSet<String>,
    /// The new installs each client address brought today (an entry only beside one: at most
    /// `seen`'s size).
    by_address: HashMap<String, usize>,
    /// Each event's JSON, waiting for its batch.
    waiting: VecDeque<String>,
    /// The batch under way.
    sending: Vec<String>,
    /// No batch before this monotonic time (a failed one waits [`RETRY_MS`]).
    not_before: u64,
    counts: AnalyticsCounts,
}

/// The relay's analytics: the options and the bounded state of the day.
#[derive(Debug, Default)]
pub(crate) struct Analytics {
    pub(crate) options: AnalyticsOptions,
    state: Mutex<State>,
}

/// A field's refusal: 422 `InvalidAnalyticsRequest` naming it.
fn refuse(detail: &str) -> RelayResponse {
    RelayResponse::error(422, "InvalidAnalyticsRequest", detail)
}

/// Whether `v` is a short token: 1 to [`MAX_FIELD_BYTES`] bytes of `[A-Za-z0-9._+-]`.
fn is_token(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= MAX_FIELD_BYTES
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'))
}

/// The ping's body read (JSON: `organization_id`, `install`, `app_version`, `os`, `arch`,
/// `face`; nothing else), or its 422. Returns the organization as sent and the ping.
pub(crate) fn read_ping(body: &[u8]) -> Result<(String, Ping), RelayResponse> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| refuse("the body is not JSON"))?;
    let obj = value
        .as_object()
        .ok_or_else(|| refuse("the body is not a JSON object"))?;
    const FIELDS: [&str; 6] = [
        "organization_id",
        "install",
        "app_version",
        "os",
        "arch",
        "face",
    ];
    if let Some(other) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        // Nothing the relay does not know is passed on: no field can carry more than these.
        let _ = other;
        return Err(refuse("the body has a field the relay does not take"));
    }
    let text = |name: &str| obj.get(name).and_then(|v| v.as_str());
    let organization_id = text("organization_id")
        .and_then(crate::ids::canonical_uuid)
        .ok_or_else(|| refuse("organization_id must be a UUID"))?;
    let install = text("install")
        .filter(|i| {
            i.len() == 32
                && i.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
        .ok_or_else(|| {
            refuse("install must be 32 lowercase hex characters (the hashed install id)")
        })?;
    let field = |name: &'static str| {
        text(name)
            .filter(|v| is_token(v))
            .map(str::to_string)
            .ok_or_else(|| {
                refuse("app_version, os, arch and face must each be 1 to 40 characters of A-Z, a-z, 0-9, '.', '_', '+' or '-'")
            })
    };
    Ok((
        organization_id,
        Ping {
            install: install.to_string(),
            app_version: field("app_version")?,
            os: field("os")?,
            arch: field("arch")?,
            face: field("face")?,
        },
    ))
}

/// The answer to every ping read, kept or not (`202`, `{"accepted": true}`): a client learns
/// nothing of the seller's settings or of other installs from it.
pub(crate) fn accepted() -> RelayResponse {
    let mut r = RelayResponse::json(202, br#"{"accepted":true}"#.to_vec());
    r.set("cache-control", "no-store");
    r
}

impl Analytics {
    /// The relay's analytics with `options`.
    pub(crate) fn new(options: AnalyticsOptions) -> Analytics {
        Analytics {
            options,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes `ping` from the client at `address` at `now`: the day's first of its install
    /// becomes an event waiting for Polar; a repeat, a ping past the day's cap, the address's
    /// share of it or the waiting cap, or any ping while analytics is off is dropped. At most
    /// one event per ping.
    pub(crate) fn take(&self, ping: Ping, address: &str, now: Now) {
        let mut s = self.state();
        if !self.options.enabled {
            s.counts.off += 1;
            return;
        }
        let day = now.unix_seconds.div_euclid(86_400);
        if day != s.day {
            s.day = day;
            s.seen.clear();
            s.seen.shrink_to(1024);
            s.by_address.clear();
            s.by_address.shrink_to(1024);
        }
        if s.seen.contains(&ping.install) {
            s.counts.repeated += 1;
            return;
        }
        let address = address_group(address);
        let brought = s.by_address.get(&address).copied().unwrap_or(0);
        if s.seen.len() >= self.options.max_installs_per_day
            || s.waiting.len() >= MAX_WAITING
            || brought >= self.options.max_installs_per_address
        {
            s.counts.dropped += 1;
            return;
        }
        s.by_address.insert(address, brought + 1);
        s.seen.insert(ping.install.clone());
        s.waiting.push_back(event_json(&ping, day));
        s.counts.taken += 1;
    }

    /// What was counted so far.
    pub(crate) fn counts(&self) -> AnalyticsCounts {
        self.state().counts
    }

    /// The installs kept for today and the events waiting (the state's size).
    pub(crate) fn held(&self) -> (usize, usize) {
        let s = self.state();
        (s.seen.len(), s.waiting.len() + s.sending.len())
    }

    /// The next batch's call (`url`, body) when events wait, the breaker lets calls through and
    /// the budget gives one (`take`); else how long to wait (`None`: off).
    pub(crate) fn next_batch(
        &self,
        base_url: &str,
        breaker_open: impl FnOnce() -> bool,
        take: impl FnOnce() -> Result<(), u64>,
        now: Now,
    ) -> Result<(String, Vec<u8>), Option<u64>> {
        if !self.options.enabled {
            return Err(None);
        }
        let mut s = self.state();
        if !s.sending.is_empty() {
            return Err(Some(IDLE_MS));
        }
        if s.waiting.is_empty() {
            return Err(Some(IDLE_MS));
        }
        if now.monotonic_ms < s.not_before {
            return Err(Some(s.not_before - now.monotonic_ms));
        }
        if breaker_open() {
            return Err(Some(1_000));
        }
        if let Err(secs) = take() {
            return Err(Some(secs.max(1) * 1_000));
        }
        let n = s.waiting.len().min(MAX_BATCH);
        let batch: Vec<String> = s.waiting.drain(..n).collect();
        let body = format!("{{\"events\":[{}]}}", batch.join(","));
        s.sending = batch;
        Ok((
            format!("{}/v1/events/ingest", base_url.trim_end_matches('/')),
            body.into_bytes(),
        ))
    }

    /// Polar's answer to the batch under way: a 2xx ends it; a 429, a 5xx or no answer puts
    /// it back first in line (within [`MAX_WAITING`]) for [`RETRY_MS`]; any other refusal
    /// drops it, logged (the token without `events:write`, a body Polar will never take).
    pub(crate) fn answered(&self, answer: &crate::roster::ReadAnswer, now: Now) {
        let mut s = self.state();
        let batch = std::mem::take(&mut s.sending);
        match answer {
            Ok((status, _, _)) if (200..300).contains(status) => {
                s.counts.ingested += batch.len() as u64;
            }
            Ok((status, retry, _)) if *status == 429 || *status >= 500 => {
                let room = MAX_WAITING.saturating_sub(s.waiting.len());
                let lost = batch.len().saturating_sub(room);
                s.counts.dropped += lost as u64;
                for e in batch.into_iter().take(room).rev() {
                    s.waiting.push_front(e);
                }
                let wait = retry.map_or(RETRY_MS, |r| r.saturating_mul(1_000).max(1_000));
                s.not_before = now.monotonic_ms.saturating_add(wait);
            }
            Err(_) => {
                let room = MAX_WAITING.saturating_sub(s.waiting.len());
                s.counts.dropped += batch.len().saturating_sub(room) as u64;
                for e in batch.into_iter().take(room).rev() {
                    s.waiting.push_front(e);
                }
                s.not_before = now.monotonic_ms.saturating_add(RETRY_MS);
            }
            Ok((status, _, _)) => {
                log::warn!(
                    "relay: install analytics: Polar refused a batch of {} events ({status}): \
                     dropped (does the token have events:write?)",
                    batch.len()
                );
                s.counts.dropped += batch.len() as u64;
            }
        }
    }
}

/// The identity an address's share of the day's installs is counted by: an IPv6 address's /64
/// (a home or a machine is handed a whole /64, so counting each address would give one client
/// 2^64 shares), any other as the relay read it ([`crate::address::client_address`]).
fn address_group(address: &str) -> String {
    match address.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Ok(IpAddr::V6(v6)) => v6
            .to_ipv4_mapped()
            .map_or_else(String::new, |v4| v4.to_string()),
        _ => address.to_string(),
    }
}

/// The event of `ping` on UTC day `day`, as Polar's ingest takes it: the install id as the
/// external customer (no Polar customer is made of it), an `external_id` of the install and
/// the day (Polar drops a second one), the fields in `metadata`.
fn event_json(ping: &Ping, day: i64) -> String {
    let s = crate::types::string;
    format!(
        "{{\"name\":{},\"external_customer_id\":{},\"external_id\":{},\"metadata\":{{\"install\":{},\"app_version\":{},\"os\":{},\"arch\":{},\"face\":{}}}}}",
        s(EVENT_NAME),
        s(&ping.install),
        s(&format!("install:{}:{day}", ping.install)),
        s(&ping.install),
        s(&ping.app_version),
        s(&ping.os),
        s(&ping.arch),
        s(&ping.face),
    )
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn ping(n: u32) -> Ping {
        Ping {
            install: format!("{n:032x}"),
            app_version: "1.2.0".into(),
            os: "linux".into(),
            arch: "x86_64".into(),
            face: "rust".into(),
        }
    }

    fn at(unix_seconds: i64) -> Now {
        Now {
            unix_seconds,
            monotonic_ms: 1_000,
        }
    }

    /// The address most pings here come from.
    const CLIENT: &str = "192.0.2.1";

    /// Analytics on, `max` installs a day, the address's share not in the way.
    fn on(max: usize) -> Analytics {
        Analytics::new(AnalyticsOptions {
            enabled: true,
            max_installs_per_day: max,
            max_installs_per_address: 10_000_000,
        })
    }

    #[test]
    fn one_address_s_flood_leaves_the_day_s_cap_to_the_others() {
        let a = Analytics::new(AnalyticsOptions {
            enabled: true,
            max_installs_per_day: 100,
            max_installs_per_address: 10,
        });
        let now = at(86_400 * 20_000);
        // One client floods made-up installs from one IPv4 address, from every address of one
        // IPv6 /64, and from IPv4-mapped IPv6 spellings of its own address and one more: a
        // share each of 198.51.100.7, 198.51.100.8 and the /64.
        for n in 0..1_000 {
            a.take(ping(n), "198.51.100.7", now);
            a.take(ping(5_000 + n), &format!("2001:db8:1:2::{n:x}"), now);
            a.take(
                ping(9_000 + n),
                &format!("::ffff:198.51.100.{}", n % 2 + 7),
                now,
            );
        }
        assert_eq!(a.held().0, 30, "the flood took its addresses' shares only");
        // The day's real installs, each from its own address (another /64 for IPv6), still
        // count.
        for n in 0..50 {
            a.take(ping(20_000 + n), &format!("203.0.113.{n}"), now);
        }
        a.take(ping(30_000), "2001:db8:1:3::1", now);
        assert_eq!(a.held().0, 81);
        assert_eq!(a.counts().taken, 81);
        // The shares end with the day, as the installs do.
        a.take(ping(1), "198.51.100.7", at(86_400 * 20_001));
        assert_eq!(a.counts().taken, 82);
        assert_eq!(a.state().by_address.len(), 1);
    }

    #[test]
    fn one_event_per_install_per_day() {
        let a = on(100);
        let day = 1_795_000_000 - 1_795_000_000 % 86_400;
        a.take(ping(1), CLIENT, at(day + 10));
        a.take(ping(1), CLIENT, at(day + 20_000));
        a.take(ping(2), CLIENT, at(day + 30_000));
        assert_eq!(a.held(), (2, 2));
        // The next UTC day: the same install is counted again.
        a.take(ping(1), CLIENT, at(day + 86_400));
        let c = a.counts();
        assert_eq!((c.taken, c.repeated), (3, 1));
    }

    #[test]
    fn the_day_s_installs_and_the_waiting_events_are_bounded() {
        let a = on(50);
        for n in 0..1_000 {
            a.take(ping(n), CLIENT, at(86_400 * 20_000));
        }
        assert_eq!(a.held(), (50, 50));
        assert_eq!(a.counts().dropped, 950);
        // The waiting events' own cap, whatever the day's.
        let b = on(10_000_000);
        for n in 0..(MAX_WAITING as u32 + 10) {
            b.take(ping(n), CLIENT, at(86_400 * 20_000));
        }
        assert_eq!(b.held(), (MAX_WAITING, MAX_WAITING));
        assert_eq!(b.counts().dropped, 10);
    }

    #[test]
    fn off_keeps_nothing_and_asks_no_call() {
        let a = Analytics::new(AnalyticsOptions::default());
        a.take(ping(1), CLIENT, at(0));
        assert_eq!(a.held(), (0, 0));
        assert_eq!(a.counts().off, 1);
        assert_eq!(
            a.next_batch("http://x", || false, || Ok(()), at(0)),
            Err(None)
        );
    }

    #[test]
    fn batches_of_at_most_100_and_a_failed_one_is_sent_again() {
        let a = on(1_000);
        for n in 0..150 {
            a.take(ping(n), CLIENT, at(86_400));
        }
        let (url, body) = a
            .next_batch("http://polar/", || false, || Ok(()), at(86_400))
            .expect("a batch");
        assert_eq!(url, "http://polar/v1/events/ingest");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        let events = json["events"].as_array().expect("events");
        assert_eq!(events.len(), MAX_BATCH);
        assert_eq!(events[0]["name"], EVENT_NAME);
        assert_eq!(events[0]["external_id"], format!("install:{:032x}:1", 0));
        assert_eq!(events[0]["metadata"]["app_version"], "1.2.0");
        // One batch at a time.
        assert!(a
            .next_batch("http://polar", || false, || Ok(()), at(86_400))
            .is_err());
        a.answered(&Ok((503, None, Vec::new())), at(86_400));
        assert_eq!(a.held(), (150, 150));
        // Again after the wait, the same events first.
        let later = Now {
            unix_seconds: 86_400,
            monotonic_ms: 1_000 + RETRY_MS,
        };
        let (_, again) = a
            .next_batch("http://polar", || false, || Ok(()), later)
            .expect("again");
        assert_eq!(again, body);
        a.answered(&Ok((200, None, Vec::new())), later);
        assert_eq!(a.counts().ingested, 100);
        assert_eq!(a.held(), (150, 50));
    }

    #[test]
    fn a_ping_carries_only_short_tokens() {
        let ok = br#"{"organization_id":"2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10","install":"0123456789abcdef0123456789abcdef","app_version":"1.2.0","os":"linux","arch":"x86_64","face":"rust"}"#;
        assert!(read_ping(ok).is_ok());
        for bad in [
            // An e-mail in a field.
            br#"{"organization_id":"2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10","install":"0123456789abcdef0123456789abcdef","app_version":"jane@example.com","os":"linux","arch":"x86_64","face":"rust"}"#.as_slice(),
            // A field of its own.
            br#"{"organization_id":"2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10","install":"0123456789abcdef0123456789abcdef","app_version":"1","os":"linux","arch":"x86_64","face":"rust","user":"jane"}"#.as_slice(),
            // An install id that is no hash.
            br#"{"organization_id":"2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10","install":"jane-laptop","app_version":"1","os":"linux","arch":"x86_64","face":"rust"}"#.as_slice(),
        ] {
            assert_eq!(read_ping(bad).map(|_| ()).map_err(|r| r.status), Err(422));
        }
    }
}
