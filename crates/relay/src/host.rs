//! What every host of the relay does alike, and where the hosts truly differ (issue #63: no
//! host holds a rule). The native server (`relay serve`, [`crate::serve`]) and the npm
//! package's relay (bindings/relay-wasm driven by pkg-template/relay-handler.js, on Workers,
//! node, Deno or Bun) take their caps, timeouts and failure answers from here; the few
//! differences between them are [`Host`]'s, each with its reason.

// The Workers host's order: the npm relay's machines, loads, saves and alarm in one driver.
pub mod workers;

use crate::types::RelayRequest;
use polar_license::Error;

/// Where a relay runs (defined beside [`crate::RelayConfig`], which names it; its rules are
/// here).
pub use crate::types::Host;

/// The most bytes of Polar's answer to a client's check that a host reads (1 MiB): Polar's
/// answers are small, and a bigger one is not Polar's (it is cut, and reads as no answer).
pub const MAX_UPSTREAM_BYTES: usize = 1 << 20;

// The limits on a call to Polar that every host, and the doctor's own reads, take
// ([`crate::types::MAX_READ_BYTES`], [`crate::types::CALL_TIMEOUT_MS`]).
pub use crate::types::{CALL_TIMEOUT_MS, MAX_READ_BYTES};

// The background's slices ([`crate::flow::background::JOBS_PER_RUN`]) and the answer to a
// host's own failure ([`crate::types::failure`]): every host reads them here.
pub use crate::flow::background::JOBS_PER_RUN;
pub use crate::types::failure;

/// Requests a host keeps under way at most (1024; the npm relay's table of exchanges): past
/// it the oldest is dropped and answered 502, so a host whose requests never finish cannot
/// grow the table.
pub const MAX_EXCHANGES: usize = 1024;

/// The fewest characters of a metrics bearer token (the npm relay's `metricsToken`, `relay
/// serve --metrics-token`): a secret a scraper sends, not a word to guess.
pub const MIN_METRICS_TOKEN: usize = 16;

/// The longest a breaker may stay open, in seconds (an hour): the option's top (`relay serve
/// --breaker-open-for`, `createRelay`'s `breakerOpenFor`).
pub const MAX_BREAKER_OPEN_FOR: u64 = 3600;

/// The breaker's longest open time as a seller gives it, in seconds (`relay serve
/// --breaker-open-for`, `createRelay`'s `breakerOpenFor`), read into
/// [`crate::BreakerOptions::open_for_ms`]: 1 to [`MAX_BREAKER_OPEN_FOR`] (a breaker that never
/// waits is no breaker; past an hour a Polar back up stays unused). Every host reads the
/// option through this, so the range is written once.
pub fn breaker_open_for(seconds: u64) -> Result<u64, Error> {
    if (1..=MAX_BREAKER_OPEN_FOR).contains(&seconds) {
        Ok(seconds * 1000)
    } else {
        Err(Error::invalid(
            "breaker_open_for",
            "must be a whole number of seconds from 1 to 3600",
        ))
    }
}

/// The largest request body a seller may let a host read (16 MiB): a license request is a few
/// hundred bytes and a webhook a few KiB, so past this a body only costs the relay memory and
/// time (no single request may cost more than a request).
pub const MAX_BODY_BYTES: u64 = 16 << 20;

/// The request body cap as a seller gives it (`relay serve --max-body-bytes`, `createRelay`'s
/// `maxBodyBytes`), read into [`crate::Limits::max_body_bytes`]: 0 (no body) to
/// [`MAX_BODY_BYTES`]. Every host reads the option through this, so the range is written once.
pub fn max_body_bytes(bytes: u64) -> Result<usize, Error> {
    match usize::try_from(bytes) {
        Ok(max) if bytes <= MAX_BODY_BYTES => Ok(max),
        _ => Err(Error::invalid(
            "max_body_bytes",
            "must be a whole number of bytes from 0 to 16777216 (16 MiB)",
        )),
    }
}

/// Where the npm relay runs, as far as its verdict store goes (`createRelay`'s `durableObject`
/// fact, set by the package's Durable Object pieces, not by a seller).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreHome {
    /// Not a Durable Object's (node, Deno, Bun, a Worker's own `createRelay`): the store is
    /// the seller's `store` option.
    Given,
    /// Inside the Durable Object (`relayStore`): the object exists to hold the store, so it
    /// keeps one, with the defaults when the seller gave none.
    DurableObject,
    /// A Worker with no Durable Object binding (`relayWorker`): an isolate's memory is not
    /// one store (each isolate would keep its own and spend its own budget), so none is kept
    /// and every check is forwarded to Polar.
    Unbound,
}

impl StoreHome {
    /// From the `durableObject` fact: `true` inside the object, `false` a Worker without
    /// the binding, absent anywhere else.
    pub fn of_fact(durable_object: Option<bool>) -> StoreHome {
        match durable_object {
            None => StoreHome::Given,
            Some(true) => StoreHome::DurableObject,
            Some(false) => StoreHome::Unbound,
        }
    }

    /// Whether the relay keeps a verdict store, given whether the seller's `store` option is
    /// an object (`given`).
    pub fn keeps_store(self, given: bool) -> bool {
        match self {
            StoreHome::Given => given,
            StoreHome::DurableObject => true,
            StoreHome::Unbound => false,
        }
    }
}

/// The calls a host's `storage` must have, from the calls it has: a storage read per key
/// (`paged`: a Durable Object's) is read with `get` and `list` and written with `put` and
/// `delete` (at most 128 each), or with its own `write` of `[key, value | null]` when it has
/// no `put`; a storage read whole has `load` and `save`. Names the calls wanted when one is
/// missing.
pub fn storage_calls(paged: bool, has: impl Fn(&str) -> bool) -> Result<(), Error> {
    let wants: &[&str] = match (paged, has("put")) {
        (true, true) => &["get", "list", "delete"],
        (true, false) => &["get", "list", "write"],
        (false, _) => &["load", "save"],
    };
    if wants.iter().all(|call| has(call)) {
        Ok(())
    } else {
        Err(Error::invalid(
            "storage",
            format!("must have {}", wants.join(", ")),
        ))
    }
}

/// How a host wakes the background at `poll`'s `wait`, from the calls its `storage` has
/// (the npm relay's `caps`' `wake`): the storage's alarm when it has `getAlarm` and `setAlarm`
/// (a Durable Object's, as [`Alarm`] rules), else a `wake` of its own, else a timer (a
/// runtime's `setTimeout`, which the host clamps to its longest wait).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// The storage's alarm (`getAlarm`, `setAlarm`).
    Alarm,
    /// The storage's own `wake`.
    Own,
    /// A timer of the host's.
    Timer,
}

impl Wake {
    /// From the calls the storage has (`has`: none when no storage was given).
    pub fn of_calls(has: impl Fn(&str) -> bool) -> Wake {
        if has("getAlarm") && has("setAlarm") {
            Wake::Alarm
        } else if has("wake") {
            Wake::Own
        } else {
            Wake::Timer
        }
    }

    /// `alarm`, `wake` or `timer` (the word `caps` gives the host).
    pub const fn as_str(self) -> &'static str {
        match self {
            Wake::Alarm => "alarm",
            Wake::Own => "wake",
            Wake::Timer => "timer",
        }
    }
}

/// How a host reads its kept store from its storage at start (the npm relay's `caps`'
/// `start`): opened key by key when the storage reads per key (`openStore`), else restored
/// whole from its `load` (`restore`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Opened key by key (`openStore`).
    Open,
    /// Restored whole (`restore` with the storage's `load`).
    Restore,
}

impl Start {
    /// For a relay that keeps a store (`kept`, [`StoreHome::keeps_store`]) read per key or
    /// whole (`paged`), with a storage given or not: `None` when there is nothing to read (no
    /// store kept, or no storage to read it from).
    pub fn of(kept: bool, paged: bool, storage_given: bool) -> Option<Start> {
        match (kept && storage_given, paged) {
            (false, _) => None,
            (true, true) => Some(Start::Open),
            (true, false) => Some(Start::Restore),
        }
    }

    /// `open` or `restore` (the word `caps` gives the host).
    pub const fn as_str(self) -> &'static str {
        match self {
            Start::Open => "open",
            Start::Restore => "restore",
        }
    }
}

/// The metrics bearer token as a seller gives it (`relay serve --metrics-token`,
/// `createRelay`'s `metricsToken`): at least [`MIN_METRICS_TOKEN`] characters. The error never
/// holds the token.
pub fn metrics_token(token: &str) -> Result<(), Error> {
    if token.chars().count() >= MIN_METRICS_TOKEN {
        Ok(())
    } else {
        Err(Error::invalid(
            "metrics_token",
            "must be a secret of at least 16 characters (the scraper sends it as \
             `authorization: Bearer <token>`)",
        ))
    }
}

/// The metrics route on the relay's own listener, for a host with no second port (Workers:
/// `createRelay`'s `metricsPath` with `metricsToken`; `relay serve` has a listener of its own,
/// `--metrics-addr`, and reads its token with [`metrics_token`]): a path of its own, not one of
/// the relay's routes, and the token it asks for. Returns the `(path, token)` the request
/// machine answers on ([`crate::flow::ExchangeOptions::metrics`]).
pub fn metrics_route(path: &str, token: Option<&str>) -> Result<(String, String), Error> {
    // Every route the relay's own listener answers (crate::ROUTES: a route added there is
    // kept from the metrics path without an edit here), and the license routes' prefix.
    let ours = path.starts_with(crate::types::ROUTE_PREFIX)
        || crate::types::ROUTES
            .iter()
            .any(|r| r.listener == crate::types::Listener::Public && r.path == path);
    if !path.starts_with('/') || path.contains('?') || ours {
        return Err(Error::invalid(
            "metrics_path",
            "must be a path of its own (such as /metrics), not one of the relay's routes",
        ));
    }
    let token = token.ok_or_else(|| {
        Error::invalid(
            "metrics_token",
            "is required with the metrics path: a secret of at least 16 characters",
        )
    })?;
    metrics_token(token)?;
    Ok((path.to_string(), token.to_string()))
}

impl Host {
    /// The npm relay's host, from the runtime's user agent (`navigator.userAgent`, as the
    /// handler reads it): `Cloudflare-Workers` is [`Host::Workers`] (no socket peer: the
    /// address is Cloudflare's header), any other a [`Host::Fetch`].
    pub fn of_user_agent(user_agent: Option<&str>) -> Host {
        match user_agent {
            Some("Cloudflare-Workers") => Host::Workers,
            _ => Host::Fetch,
        }
    }

    /// Whether the host's calls to Polar go through the relay's own transport (counted there,
    /// a connection never made told apart): see [`Host::Native`].
    pub fn counts_calls(self) -> bool {
        matches!(self, Host::Native)
    }

    /// Whether a call to Polar waits for a slot first ([`crate::flow::Need::Slot`]): see
    /// [`Host::Native`].
    pub fn call_slots(self) -> bool {
        matches!(self, Host::Native)
    }

    /// The header that stands for the socket peer on a host that has none (Workers:
    /// `cf-connecting-ip`).
    pub(crate) fn peer_header(self) -> Option<&'static str> {
        match self {
            Host::Workers => Some("cf-connecting-ip"),
            Host::Native | Host::Fetch => None,
        }
    }

    /// The socket peer of `req` as the per-IP limit reads it: the host's (`req.client_ip`),
    /// or on a host without one the header that stands for it.
    pub(crate) fn peer(self, req: &RelayRequest) -> &str {
        let given = req.client_ip.as_str();
        match self.peer_header().and_then(|name| req.header(name)) {
            Some(header) if given.is_empty() || given == "unknown" => header,
            _ => given,
        }
    }
}

/// The socket peer a fetch host was handed, from the facts each runtime gives the handler, in
/// this order: the seller's `clientIp` option's answer, node's `createNodeListener` socket
/// address (the handler's third argument's `clientIp`), Deno.serve's `info.remoteAddr.hostname`,
/// Bun.serve's `server.requestIP(request).address`; `unknown` when none is a non-empty string.
/// Which address the per-IP limit then counts (a proxy's header, Cloudflare's on Workers) is
/// `Host::peer`'s and the relay's `client_ip_header` rule.
pub fn socket_peer<'a>(facts: impl IntoIterator<Item = Option<&'a str>>) -> &'a str {
    facts
        .into_iter()
        .flatten()
        .find(|peer| !peer.is_empty())
        .unwrap_or("unknown")
}

/// A host's alarm (a Durable Object's: one per object) for the relay's next work between
/// requests: set for the background's next job unless one rings sooner, which is known without
/// a storage call when this relay set it (every request asks), else read first (another
/// instance of the object may have set it). Times in milliseconds since the epoch.
///
/// "Sooner" has a slack of a tenth of the wait, at most [`ALARM_SLACK_MS`]: the background's
/// waits are counted from clocks read a moment apart, some in whole seconds (the webhooks'
/// silence, a day off by default), so the same work asked again after a request may come out a
/// little earlier than the alarm already set; without the slack each request would read and
/// set the alarm again for nothing (two storage calls).
#[derive(Debug, Default)]
pub struct Alarm {
    set: Option<u64>,
}

/// The most an alarm already set may ring after the work it stands for is due ([`Alarm`]).
pub const ALARM_SLACK_MS: u64 = 2_000;

/// What a host does with its alarm ([`Alarm::wake`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ring {
    /// Nothing: an alarm rings sooner.
    Keep,
    /// Read the alarm set, then ask again with it.
    Read,
    /// Set the alarm at this time.
    Set(u64),
}

impl Alarm {
    /// The alarm for work due at `at`, now `now`; `stored`: the alarm the storage holds, once
    /// read (`Some(None)`: none).
    pub fn wake(&mut self, now: u64, at: u64, stored: Option<Option<u64>>) -> Ring {
        let slack = (at.saturating_sub(now) / 10).min(ALARM_SLACK_MS);
        let sooner = |set: u64| set > now && set <= at.saturating_add(slack);
        if self.set.is_some_and(sooner) {
            return Ring::Keep;
        }
        match stored {
            None => Ring::Read,
            Some(Some(set)) if sooner(set) => {
                self.set = Some(set);
                Ring::Keep
            }
            // None set, one past (ringing now), or a later one: this one.
            Some(_) => {
                self.set = Some(at);
                Ring::Set(at)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::types::{RELAY_SOURCE, SOURCE_HEADER};

    #[test]
    fn the_body_cap_is_0_to_16_mib() {
        assert_eq!(max_body_bytes(0).unwrap(), 0);
        assert_eq!(max_body_bytes(64 * 1024).unwrap(), 65_536);
        assert_eq!(max_body_bytes(16 << 20).unwrap(), 16 << 20);
        for too_big in [(16 << 20) + 1, u64::from(u32::MAX), u64::MAX] {
            match max_body_bytes(too_big) {
                Err(Error::InvalidInput { field, message }) => {
                    assert_eq!(field, "max_body_bytes");
                    assert!(message.contains("16 MiB"), "{message}");
                }
                other => panic!("{too_big}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_store_is_kept_by_where_the_relay_runs() {
        let home = StoreHome::of_fact;
        assert!(home(None).keeps_store(true));
        assert!(!home(None).keeps_store(false));
        // The Durable Object keeps one, given or not; a Worker with no binding never.
        assert!(home(Some(true)).keeps_store(false));
        assert!(home(Some(true)).keeps_store(true));
        assert!(!home(Some(false)).keeps_store(true));
    }

    #[test]
    fn a_storage_is_named_the_calls_it_lacks() {
        let having = |calls: &'static [&'static str]| move |c: &str| calls.contains(&c);
        assert!(storage_calls(false, having(&["load", "save"])).is_ok());
        assert!(storage_calls(true, having(&["get", "list", "put", "delete"])).is_ok());
        assert!(storage_calls(true, having(&["get", "list", "write"])).is_ok());
        for (paged, calls, wants) in [
            (false, &["load"][..], "must have load, save"),
            (
                true,
                &["get", "list", "put"][..],
                "must have get, list, delete",
            ),
            (true, &["get", "write"][..], "must have get, list, write"),
            (true, &["load", "save"][..], "must have get, list, write"),
        ] {
            match storage_calls(paged, |c: &str| calls.contains(&c)) {
                Err(Error::InvalidInput { field, message }) => {
                    assert_eq!((field.as_str(), message.as_str()), ("storage", wants));
                }
                other => panic!("{calls:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_storage_calls_choose_the_wake_and_the_start() {
        let having = |calls: &'static [&'static str]| move |c: &str| calls.contains(&c);
        assert_eq!(
            Wake::of_calls(having(&["getAlarm", "setAlarm", "wake"])),
            Wake::Alarm
        );
        assert_eq!(Wake::of_calls(having(&["getAlarm", "wake"])), Wake::Own);
        assert_eq!(Wake::of_calls(having(&["setAlarm"])), Wake::Timer);
        assert_eq!(Wake::of_calls(having(&[])), Wake::Timer);
        let words = [Wake::Alarm, Wake::Own, Wake::Timer].map(Wake::as_str);
        assert_eq!(words, ["alarm", "wake", "timer"]);
        assert_eq!(Start::of(true, true, true), Some(Start::Open));
        assert_eq!(Start::of(true, false, true), Some(Start::Restore));
        assert_eq!(Start::of(true, true, false), None);
        assert_eq!(Start::of(false, true, true), None);
        assert_eq!(Start::Open.as_str(), "open");
        assert_eq!(Start::Restore.as_str(), "restore");
    }

    fn request(headers: &[(&str, &str)], client_ip: &str) -> RelayRequest {
        RelayRequest {
            method: "POST".into(),
            path: "/v1/customer-portal/license-keys/validate".into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: Vec::new(),
            client_ip: client_ip.into(),
        }
    }

    #[test]
    fn the_alarm_is_set_unless_one_rings_sooner() {
        let mut alarm = Alarm::default();
        assert_eq!(alarm.wake(1_000, 5_000, None), Ring::Read);
        assert_eq!(alarm.wake(1_000, 5_000, Some(None)), Ring::Set(5_000));
        // Ours rings sooner: no storage call.
        assert_eq!(alarm.wake(2_000, 9_000, None), Ring::Keep);
        // Sooner work: read, then set.
        assert_eq!(alarm.wake(2_000, 3_000, None), Ring::Read);
        assert_eq!(
            alarm.wake(2_000, 3_000, Some(Some(5_000))),
            Ring::Set(3_000)
        );
        // One another instance set sooner is kept; one past is replaced.
        let mut other = Alarm::default();
        assert_eq!(other.wake(1_000, 9_000, Some(Some(4_000))), Ring::Keep);
        assert_eq!(other.wake(1_000, 9_000, None), Ring::Keep);
        let mut late = Alarm::default();
        assert_eq!(late.wake(5_000, 9_000, Some(Some(4_000))), Ring::Set(9_000));
        // A day's wait asked again a moment later, and a second earlier (the webhooks' silence
        // counted in whole seconds): the alarm set stands, no storage call; two seconds and
        // more past the work's due time, it is set again.
        let day = 86_400_000;
        let mut silence = Alarm::default();
        assert_eq!(
            silence.wake(1_900, 1_900 + day, Some(None)),
            Ring::Set(1_900 + day)
        );
        assert_eq!(silence.wake(2_050, 1_000 + day, None), Ring::Keep);
        assert_eq!(silence.wake(2_050, day - 200, None), Ring::Read);
        // A wait of nothing (a slice of the background's jobs) has no slack.
        assert_eq!(silence.wake(2_050, 2_050, None), Ring::Read);
    }

    #[test]
    fn the_runtime_and_its_socket_peer() {
        assert_eq!(
            Host::of_user_agent(Some("Cloudflare-Workers")),
            Host::Workers
        );
        for other in [
            None,
            Some("Node.js/20"),
            Some("Deno/2.0"),
            Some("cloudflare-workers"),
        ] {
            assert_eq!(Host::of_user_agent(other), Host::Fetch, "{other:?}");
        }
        assert_eq!(
            socket_peer([None, Some(""), Some("192.0.2.7"), Some("x")]),
            "192.0.2.7"
        );
        assert_eq!(socket_peer([Some("seller"), Some("192.0.2.7")]), "seller");
        assert_eq!(socket_peer([None, None]), "unknown");
    }

    #[test]
    fn a_failure_carries_the_configured_grant_not_a_star() {
        let page = request(&[("origin", "https://app.example")], "192.0.2.1");
        let other = request(&[("origin", "https://evil.example")], "192.0.2.1");
        let origins = vec!["https://app.example".to_string()];
        let open = failure(500, "the relay's host failed", None, &page);
        assert_eq!(open.status, 500);
        assert_eq!(open.header("access-control-allow-origin"), Some("*"));
        assert_eq!(open.header(SOURCE_HEADER), Some(RELAY_SOURCE));
        let named = failure(500, "x", Some(&origins), &page);
        assert_eq!(
            named.header("access-control-allow-origin"),
            Some("https://app.example")
        );
        assert_eq!(named.header("vary"), Some("origin"));
        let refused = failure(500, "x", Some(&origins), &other);
        assert!(refused
            .headers
            .iter()
            .all(|(k, _)| !k.starts_with("access-control-")));
        assert_eq!(
            String::from_utf8(refused.body).unwrap(),
            r#"{"detail":"x"}"#
        );
    }

    #[test]
    fn only_workers_reads_the_peer_from_cloudflares_header() {
        let sent = request(&[("cf-connecting-ip", "203.0.113.9")], "");
        assert_eq!(Host::Workers.peer(&sent), "203.0.113.9");
        // A host with a socket peer never takes the header a client may write.
        let direct = request(&[("cf-connecting-ip", "203.0.113.9")], "192.0.2.1");
        assert_eq!(Host::Native.peer(&direct), "192.0.2.1");
        assert_eq!(Host::Fetch.peer(&direct), "192.0.2.1");
        assert_eq!(Host::Fetch.peer(&sent), "");
        assert!(Host::Native.counts_calls() && Host::Native.call_slots());
        assert!(!Host::Workers.counts_calls() && !Host::Fetch.call_slots());
    }
}
