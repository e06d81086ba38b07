//! What the native faces tell the `log` facade: one line per request Polar is sent and one per
//! grace decision, under the target `polar_license`. Silent unless the app installs a logger
//! (env_logger, tracing's log bridge, …). Keys appear only redacted (`****-6ED415`), and no
//! line carries an answer's body: a denial shows Polar's reason and its short `detail` text,
//! an error its reason code only.
//!
//! Levels: `debug` for requests (`validate ****-6ED415: accepted in 84 ms`), `info` for
//! decisions (`check ****-6ED415: licensed from the cache after offline, grace 6d 20h left`),
//! `warn` when the cache could not be written.

use crate::error::{Denial, Error, Verdict};
use crate::grace::{CheckOutcome, CheckReport, Source};
use crate::key::Key;
use std::time::{Duration, Instant};

const TARGET: &str = "polar_license";

/// One request: the operation, the key redacted, what came back and how long it took.
pub(crate) fn request<T>(
    operation: &str,
    key: Option<&Key>,
    started: Instant,
    result: Result<&Verdict<T>, &Error>,
) {
    let heard = result.map(|verdict| match verdict {
        Verdict::Accepted(_) => None,
        Verdict::Denied(d) => Some(d),
    });
    self::heard(operation, key, started, heard);
}

/// [`request`], as a machine of the core heard it ([`crate::flow::Heard`]): `None` accepted,
/// else Polar's denial.
pub(crate) fn heard(
    operation: &str,
    key: Option<&Key>,
    started: Instant,
    result: Result<Option<&Denial>, &Error>,
) {
    if !log::log_enabled!(target: TARGET, log::Level::Debug) {
        return;
    }
    let key = key.map_or_else(|| "(no key)".to_string(), Key::redacted);
    let ms = started.elapsed().as_millis();
    match result {
        Ok(None) => {
            log::debug!(target: TARGET, "{operation} {key}: accepted in {ms} ms");
        }
        Ok(Some(d)) => log::debug!(
            target: TARGET,
            "{operation} {key}: denied {} ({} {:?}) in {ms} ms",
            d.reason,
            d.status,
            d.detail
        ),
        Err(e) => log::debug!(target: TARGET, "{operation} {key}: {} in {ms} ms", e.reason()),
    }
}

/// One grace decision: a check's answer, and why it came from where it did.
pub(crate) fn decision(key: &Key, report: &CheckReport) {
    if !log::log_enabled!(target: TARGET, log::Level::Info) {
        return;
    }
    let key = key.redacted();
    let answer = match &report.outcome {
        CheckOutcome::Licensed {
            source: Source::Online,
            ..
        } => "licensed online".to_string(),
        CheckOutcome::Licensed {
            source: Source::Cache,
            grace_remaining,
            ..
        } => {
            let left = grace_remaining.map(human).unwrap_or_default();
            match &report.fallback {
                Some(why) => format!(
                    "licensed from the cache after {}, grace {left} left",
                    why.reason()
                ),
                None => format!("licensed from the cache (fresh), grace {left} left"),
            }
        }
        CheckOutcome::Denied(d) => format!("denied {} ({:?})", d.reason, d.detail),
        CheckOutcome::Unverified(e) => format!("not licensed: {}", e.reason()),
    };
    log::info!(target: TARGET, "check {key}: {answer}");
    if let Some(e) = &report.cache_error {
        log::warn!(target: TARGET, "check {key}: the cache was not refreshed ({})", e.reason());
    }
}

/// `6d 20h`, `3h 5m`, `42s`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (days, h, _) => format!("{days}d {h}h"),
    }
}
