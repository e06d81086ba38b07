//! Trials (issue #54 item 4): the one rule every face applies when the app states a trial.
//!
//! Two kinds, both reported as a [`Trial`] in the check's report
//! ([`crate::grace::CheckReport::trial`]):
//!
//! * **A local trial of N days** ([`TrialDays`]): with no key, the first check starts it; its
//!   start is sealed in the cache beside the records (an HMAC-SHA256 under a key derived from
//!   the organization, the server's origin, the per-install secret, this machine's identity and
//!   the app's secret, as [`crate::keyseal`] seals the remembered key; in a slot of the app's
//!   own, named by its secret, so that two apps of one organization sharing a cache directory
//!   each have their own trial: [`TrialSeal`]), so an edited or copied
//!   record is refused ([`TrialState::Refused`]: it never restarts the trial). The record keeps
//!   the latest clock reading it saw: a clock set back past the grace policy's tolerance is
//!   `clock_rollback`, as for the grace. After N days the trial has [`TrialState::Ended`].
//!   **Wiping the app's data (the cache directory) restarts it**: this is a convenience for
//!   honest users, not a protection against a determined one.
//! * **A key from a trial product**: a licensed answer whose benefit is one the app names as a
//!   trial's, or (API version 2027-01) whose subscription's status is `trialing`. Its end is the
//!   subscription's `current_period_end` or the key's `expires_at`, whichever comes first.
//!   Only a licensed answer is a trial: a revoked, disabled or expired key never is.
//!
//! The rule is pure (the caller passes `now`); its slot's IO (the lock, the loads, the sealed
//! record's write) are the steps of a machine of the core, [`LocalTrial`], which every shell
//! drives with its one loop.

use crate::cache::{hex, unhex};
use crate::error::Error;
use crate::grace::{CheckOutcome, CheckReport, GracePolicy, LicenseData};
use hmac::Mac;

mod run;
pub use run::LocalTrial;

const DAY: i64 = 86_400;

pub use crate::release::{Trial, TrialState};

/// The header line of a local trial's record.
pub const HEADER: &str = "polar-license-trial v1\n";

const DERIVE_LABEL: &[u8] = b"polar-license/trial-seal/v1";
/// The slot every app of an organization shared before issue #62 (the origin and the
/// organization only): read once by every face for [`TrialSeal::stored`]'s migration.
const SLOT_LABEL: &[u8] = b"polar-license/trial-slot/v1";
/// The app's own slot ([`TrialSeal::app_slot`]): the shared slot with the app's secret.
const APP_SLOT_LABEL: &[u8] = b"polar-license/trial-slot/v2";

/// The length of a local trial, in days (1 to 3650).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrialDays(u32);

impl TrialDays {
    /// `days` days; `invalid_input` (field `trial`) outside 1 to 3650.
    pub fn new(days: u32) -> Result<TrialDays, Error> {
        if (1..=3650).contains(&days) {
            Ok(TrialDays(days))
        } else {
            Err(Error::invalid(
                "trial",
                "must be a number of days from 1 to 3650",
            ))
        }
    }

    /// The number of days.
    pub fn days(self) -> u32 {
        self.0
    }

    fn secs(self) -> i64 {
        i64::from(self.0).saturating_mul(DAY)
    }
}

/// Whole days from `now` to `end`, counted up; 0 once it has passed.
fn days_left(end: i64, now: i64) -> u32 {
    let secs = end.saturating_sub(now);
    if secs <= 0 {
        return 0;
    }
    u32::try_from((secs + DAY - 1) / DAY).unwrap_or(u32::MAX)
}

/// A local trial's record: when it started and the latest clock reading it saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrialRecord {
    /// The first check's clock reading (unix seconds).
    pub started: i64,
    /// The latest clock reading a check saw (clock-rollback detection).
    pub latest_seen: i64,
}

/// Why stored bytes did not open to a trial record. Both refuse the trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unopened {
    /// Not in the format (or truncated, or another version).
    Malformed,
    /// Sealed for another organization, server, install, machine or app secret, or edited.
    BadSeal,
}

/// Where a store keeps the local trial's record, and the key that seals it. `Debug` shows no
/// bytes.
///
/// [`TrialSeal::slot`] is the slot every app of the organization shared before issue #62 (the
/// origin and the organization only). Every face (the npm package's trial add-on too) keeps
/// its record in the app's own slot, [`TrialSeal::app_slot`] (issue #62):
/// two apps of one organization sharing a cache directory each have their own trial, neither
/// refusing the other's record. While the app's slot holds nothing, the shared slot is read
/// once, and its record copied to the app's slot only when it opens under this app's seal
/// ([`TrialSeal::stored`]).
#[derive(Clone, PartialEq, Eq)]
pub struct TrialSeal {
    /// The shared store slot (`trial-` and 32 hex digits: the origin and the organization).
    pub slot: String,
    mac: [u8; 32],
}

/// What a trial's slots hold, as [`TrialSeal::stored`] reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// The record for [`local`] (`None`: none, the trial starts).
    pub record: Option<Result<TrialRecord, Unopened>>,
    /// The shared slot's record, which opened under this app's seal: it is copied to the
    /// app's slot (and left in the shared one, where an older release reads it).
    pub adopted: Option<TrialRecord>,
}

impl Stored {
    /// The record to write to the app's slot after [`local`]'s `answer` on this: the answer's,
    /// else an adopted record as it was (it is copied even when unchanged).
    pub fn write(&self, answer: &LocalAnswer) -> Option<TrialRecord> {
        answer.write.or(self.adopted)
    }
}

impl std::fmt::Debug for TrialSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrialSeal")
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

impl TrialSeal {
    /// The seal for `organization_id` on the server at `base_url` (only its origin counts),
    /// with the install secret, this machine's identity and the app's secret (each framed with
    /// its length, "none" told from "empty").
    pub fn new(
        base_url: &str,
        organization_id: &str,
        install_secret: &[u8],
        machine: Option<&str>,
        app_secret: Option<&[u8]>,
    ) -> TrialSeal {
        let (slot, root) = crate::keyseal::derive(
            SLOT_LABEL,
            DERIVE_LABEL,
            base_url,
            organization_id,
            install_secret,
            machine,
            app_secret,
        );
        TrialSeal {
            slot: ["trial-", &hex(&slot[..16])].concat(),
            mac: root,
        }
    }

    /// The app's own slot (`trial-` and 32 hex digits): the shared slot's name with the app's
    /// `app_secret` (framed, "none" told from "empty"), as [`TrialSeal::new`] was given it.
    pub fn app_slot(&self, app_secret: Option<&[u8]>) -> String {
        let mut h = crate::keyseal::hmac_with(APP_SLOT_LABEL);
        h.update(self.slot.as_bytes());
        match app_secret {
            Some(secret) => {
                h.update(&[1]);
                h.update(&(secret.len() as u64).to_be_bytes());
                h.update(secret);
            }
            None => h.update(&[0]),
        }
        ["trial-", &hex(&h.finalize().into_bytes()[..16])].concat()
    }

    /// The trial's record from the app's slot's bytes `own`, else (nothing there) from the
    /// shared slot's `shared`: adopted when it opens under this seal (this app's record from
    /// before each app had its own slot), else ignored and left where it is (another app's, or
    /// not a record: the app's own trial starts). A shell reads `shared` only when `own` is
    /// `None`, and only while the two slots differ.
    pub fn stored(&self, own: Option<&[u8]>, shared: Option<&[u8]>) -> Stored {
        if let Some(own) = own {
            return Stored {
                record: Some(self.open(own)),
                adopted: None,
            };
        }
        match shared.map(|bytes| self.open(bytes)) {
            Some(Ok(record)) => Stored {
                record: Some(Ok(record)),
                adopted: Some(record),
            },
            _ => Stored {
                record: None,
                adopted: None,
            },
        }
    }

    /// The header and the two readings, each a line (decimal, written without `core::fmt`,
    /// which the npm engine's wasm does not carry: the same text as `i64`'s `Display`).
    fn body(record: &TrialRecord) -> String {
        let mut body = String::from(HEADER);
        for n in [record.started, record.latest_seen] {
            if n < 0 {
                body.push('-');
            }
            crate::decimal::push_digits(&mut body, n.unsigned_abs());
            body.push('\n');
        }
        body
    }

    /// The stored bytes of `record`: the header, the start and the latest reading (decimal
    /// unix seconds), and the MAC over those lines, each line ending in `\n`.
    pub fn seal(&self, record: &TrialRecord) -> Vec<u8> {
        let body = TrialSeal::body(record);
        let mut mac = crate::keyseal::hmac_with(&self.mac);
        mac.update(body.as_bytes());
        let tag = hex(&mac.finalize().into_bytes());
        [body.as_str(), &tag, "\n"].concat().into_bytes()
    }

    /// The record stored in `bytes`, if they were sealed here and not edited.
    pub fn open(&self, bytes: &[u8]) -> Result<TrialRecord, Unopened> {
        let text = std::str::from_utf8(bytes).map_err(|_| Unopened::Malformed)?;
        let rest = text.strip_prefix(HEADER).ok_or(Unopened::Malformed)?;
        let rest = rest.strip_suffix('\n').ok_or(Unopened::Malformed)?;
        let mut lines = rest.split('\n');
        let (Some(started), Some(seen), Some(tag), None) =
            (lines.next(), lines.next(), lines.next(), lines.next())
        else {
            return Err(Unopened::Malformed);
        };
        let number = |s: &str| read_i64(s).ok_or(Unopened::Malformed);
        let record = TrialRecord {
            started: number(started)?,
            latest_seen: number(seen)?,
        };
        let tag = unhex(tag.as_bytes()).ok_or(Unopened::Malformed)?;
        let mut mac = crate::keyseal::hmac_with(&self.mac);
        mac.update(TrialSeal::body(&record).as_bytes());
        mac.verify_slice(&tag).map_err(|_| Unopened::BadSeal)?;
        if record.latest_seen < record.started {
            return Err(Unopened::BadSeal);
        }
        Ok(record)
    }
}

/// A record's decimal line: an optional `-` and digits, as `i64`'s `FromStr` reads them
/// (without a `+`), read by hand: the npm engine's wasm would otherwise carry `FromStr` for
/// this alone.
fn read_i64(s: &str) -> Option<i64> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let n = crate::decimal::read_u64(digits.as_bytes())?;
    if negative {
        // Down to i64::MIN, whose magnitude is one past i64::MAX.
        (n <= 1 << 63).then(|| (n as i64).wrapping_neg())
    } else {
        i64::try_from(n).ok()
    }
}

/// A local trial's answer at `now`: the trial, the error it answers with when the clock was
/// set back (`clock_rollback`), and the record to store (`None`: leave the stored one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAnswer {
    /// The trial as it stands.
    pub trial: Trial,
    /// `clock_rollback` when the clock is behind the record's latest reading past the
    /// tolerance.
    pub error: Option<Error>,
    /// The record to store: a new trial's, or the latest reading moved forward.
    pub write: Option<TrialRecord>,
}

/// The local trial of `days` at `now`, from what its slot holds (`None`: nothing, the first
/// check: the trial starts; `Some(Err(_))`: bytes that did not open, refused).
pub fn local(
    stored: Option<Result<TrialRecord, Unopened>>,
    days: TrialDays,
    now: i64,
    policy: &GracePolicy,
) -> LocalAnswer {
    let refused = |started: Option<i64>, error: Option<Error>| LocalAnswer {
        trial: Trial {
            local: true,
            state: TrialState::Refused,
            started_at: started,
            ends_at: None,
            days_left: 0,
        },
        error,
        write: None,
    };
    let (record, write) = match stored {
        None => {
            let record = TrialRecord {
                started: now,
                latest_seen: now,
            };
            (record, Some(record))
        }
        Some(Err(_)) => return refused(None, None),
        Some(Ok(record)) => {
            let floor = record.latest_seen.saturating_sub(policy.tolerance_secs());
            if now < floor {
                let by = record.latest_seen.saturating_sub(now);
                let error = Error::ClockRollback {
                    by_seconds: u64::try_from(by).unwrap_or(0),
                };
                return refused(Some(record.started), Some(error));
            }
            let moved = (now > record.latest_seen).then_some(TrialRecord {
                started: record.started,
                latest_seen: now,
            });
            (record, moved)
        }
    };
    // Measured on the latest reading seen: a clock set back within the tolerance gains nothing.
    let seen = now.max(record.latest_seen);
    let ends_at = record.started.saturating_add(days.secs());
    let left = days_left(ends_at, seen);
    LocalAnswer {
        trial: Trial {
            local: true,
            state: if left > 0 {
                TrialState::Active
            } else {
                TrialState::Ended
            },
            started_at: Some(record.started),
            ends_at: Some(ends_at),
            days_left: left,
        },
        error: None,
        write,
    }
}

/// A licensed answer's trial, when its key is one: its benefit is in `benefits` (the app's
/// trial benefit ids), or (2027-01) its subscription is `trialing`. `None` otherwise.
pub fn of_license<L: LicenseData>(license: &L, benefits: &[String], now: i64) -> Option<Trial> {
    let trialing = license.trialing();
    let named = benefits.iter().any(|b| b == license.benefit_id());
    if !trialing && !named {
        return None;
    }
    let ends_at = match (license.expires_at(), license.period_end()) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let left = ends_at.map_or(0, |end| days_left(end, now));
    Some(Trial {
        local: false,
        state: if ends_at.is_some_and(|end| end <= now) {
            TrialState::Ended
        } else {
            TrialState::Active
        },
        started_at: None,
        ends_at,
        days_left: left,
    })
}

/// Applies the key side of the rule to a check's `report` at `now`: a licensed answer from a
/// trial product gets its [`Trial`]; any other answer none.
pub fn apply<L: LicenseData>(report: &mut CheckReport<L>, benefits: &[String], now: i64) {
    report.trial = match &report.outcome {
        CheckOutcome::Licensed { license, .. } => {
            of_license(license.as_ref(), benefits, now).map(Box::new)
        }
        _ => None,
    };
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    const ORG: &str = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";

    fn seal() -> TrialSeal {
        TrialSeal::new("https://api.polar.sh/", ORG, b"install", Some("m"), None)
    }

    #[test]
    fn a_record_opens_only_as_sealed() {
        let s = seal();
        let r = TrialRecord {
            started: 1_790_000_000,
            latest_seen: 1_790_000_100,
        };
        let bytes = s.seal(&r);
        assert_eq!(s.open(&bytes), Ok(r));
        // Edited start: the MAC no longer matches.
        let text = String::from_utf8(bytes.clone()).unwrap();
        let edited = text.replace("1790000000", "1790900000");
        assert_eq!(s.open(edited.as_bytes()), Err(Unopened::BadSeal));
        // Another machine's seal.
        let other = TrialSeal::new("https://api.polar.sh/", ORG, b"install", Some("n"), None);
        assert_eq!(other.slot, s.slot);
        assert_eq!(other.open(&bytes), Err(Unopened::BadSeal));
        assert_eq!(
            s.open(b"polar-license-trial v1\n1\n"),
            Err(Unopened::Malformed)
        );
        assert!(!format!("{s:?}").contains("mac"));
    }

    #[test]
    fn each_app_has_its_own_slot_and_adopts_only_its_own_shared_record() {
        let with = |secret: Option<&[u8]>, machine| {
            TrialSeal::new(
                "https://api.polar.sh/",
                ORG,
                b"install",
                Some(machine),
                secret,
            )
        };
        let (a, b, none, empty) = (
            with(Some(b"a"), "m"),
            with(Some(b"b"), "m"),
            with(None, "m"),
            with(Some(b""), "m"),
        );
        let app = |s: &TrialSeal, secret: Option<&[u8]>| s.app_slot(secret);
        // The app's secret names its slot ("none" told from "empty"); the machine does not
        // (a record copied to another machine is found, and refused).
        let slots = [
            app(&a, Some(b"a")),
            app(&b, Some(b"b")),
            app(&none, None),
            app(&empty, Some(b"")),
        ];
        for (i, x) in slots.iter().enumerate() {
            assert!(x.starts_with("trial-") && x.len() == 38, "{x}");
            for y in &slots[i + 1..] {
                assert_ne!(x, y);
            }
        }
        assert_eq!(app(&with(Some(b"a"), "n"), Some(b"a")), slots[0]);
        // The shared slot: the origin and the organization only.
        for s in [&b, &none, &empty] {
            assert_eq!(s.slot, a.slot);
            assert!(!slots.contains(&s.slot));
        }
        let r = TrialRecord {
            started: 1_790_000_000,
            latest_seen: 1_790_000_100,
        };
        let (mine, theirs) = (a.seal(&r), b.seal(&r));
        // The app's own slot answers when it holds anything: the shared one is not read.
        let own = a.stored(Some(&mine), Some(&theirs));
        assert_eq!((own.record, own.adopted), (Some(Ok(r)), None));
        let own = a.stored(Some(&theirs), Some(&mine));
        assert_eq!(
            (own.record, own.adopted),
            (Some(Err(Unopened::BadSeal)), None)
        );
        // Nothing there: the shared record is adopted when it is this app's...
        let adopted = a.stored(None, Some(&mine));
        assert_eq!((adopted.record, adopted.adopted), (Some(Ok(r)), Some(r)));
        // ...copied even when the answer leaves it as it was.
        let answer = local(
            adopted.record,
            TrialDays::new(14).unwrap(),
            r.latest_seen,
            &GracePolicy::default(),
        );
        assert_eq!(answer.write, None);
        assert_eq!(adopted.write(&answer), Some(r));
        // ...and ignored (the app's own trial starts) when it is another's or not a record.
        for other in [&theirs[..], b"polar-license-trial v1\n1\n", b""] {
            let ignored = a.stored(None, Some(other));
            assert_eq!((ignored.record, ignored.adopted), (None, None));
        }
        assert_eq!(a.stored(None, None).record, None);
    }

    #[test]
    fn a_line_is_read_as_from_str_reads_it() {
        // What the record's reader accepted before: an optional '-', digits, `FromStr`.
        let before = |s: &str| {
            let digits = s.strip_prefix('-').unwrap_or(s);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse::<i64>().ok()
        };
        let texts = crate::decimal::tests::number_texts(
            &[
                "",
                "-",
                "+5",
                "--1",
                "-0",
                "0",
                "007",
                "1 ",
                " 1",
                "1a",
                "٣",
                "9223372036854775807",
                "9223372036854775808",
                "-9223372036854775808",
                "-9223372036854775809",
                "99999999999999999999",
            ],
            &[
                0i64,
                1,
                -1,
                9,
                10,
                -10,
                1_790_000_000,
                i64::MAX,
                i64::MIN,
                i64::MAX / 10,
            ],
            &["{}", "{}0", "0{}"],
        );
        for t in &texts {
            assert_eq!(read_i64(t), before(t), "{t:?}");
        }
    }

    #[test]
    fn the_body_is_written_as_display_writes_it() {
        for (started, latest_seen) in [
            (0, 0),
            (1_790_000_000, 1_790_000_100),
            (-5, 7),
            (i64::MIN, i64::MAX),
        ] {
            let r = TrialRecord {
                started,
                latest_seen,
            };
            assert_eq!(
                TrialSeal::body(&r),
                format!("{HEADER}{started}\n{latest_seen}\n")
            );
        }
    }

    #[test]
    fn a_local_trial_starts_counts_down_ends_and_refuses_rollback() {
        let p = GracePolicy::default();
        let days = TrialDays::new(14).unwrap();
        let t0 = 1_790_000_000;
        let first = local(None, days, t0, &p);
        assert_eq!(first.trial.state, TrialState::Active);
        assert_eq!(first.trial.days_left, 14);
        assert_eq!(first.trial.ends_at, Some(t0 + 14 * DAY));
        let rec = first.write.unwrap();
        let later = local(Some(Ok(rec)), days, t0 + 3 * DAY + 1, &p);
        assert_eq!(later.trial.days_left, 11);
        let rec = later.write.unwrap();
        let back = local(Some(Ok(rec)), days, t0 + DAY, &p);
        assert_eq!(back.trial.state, TrialState::Refused);
        assert_eq!(
            back.error.map(|e| e.reason()),
            Some(crate::reason::Reason::ClockRollback)
        );
        let ended = local(Some(Ok(rec)), days, t0 + 14 * DAY, &p);
        assert_eq!(ended.trial.state, TrialState::Ended);
        assert_eq!(ended.trial.days_left, 0);
        assert_eq!(
            local(Some(Err(Unopened::BadSeal)), days, t0, &p)
                .trial
                .state,
            TrialState::Refused
        );
        assert!(TrialDays::new(0).is_err());
    }
}
