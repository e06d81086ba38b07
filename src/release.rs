//! What a check's report says beside its verdict, as types: perpetual fallback's
//! ([`crate::perpetual`]: a build's release date and the release dates a key covers) and a
//! trial's ([`crate::trial`]). A leaf: the check's report ([`crate::grace::CheckReport`]) holds
//! them, and the rules that fill them ([`crate::perpetual::apply`], [`crate::trial::apply`])
//! read the report's types.

use crate::error::Error;
use crate::json::JsonOut;

/// A build's release date: a UTC calendar day, kept as the unix seconds of its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReleaseDate(i64);

impl ReleaseDate {
    /// The day `year-month-day` (UTC); `invalid_input` (field `released`) when it is no date.
    pub fn from_ymd(year: i64, month: i64, day: i64) -> Result<ReleaseDate, Error> {
        let valid = (1970..=9999).contains(&year)
            && (1..=12).contains(&month)
            && day >= 1
            && day <= crate::rfc3339::days_in_month(year, month);
        if !valid {
            return Err(Error::invalid("released", "must be a date YYYY-MM-DD"));
        }
        Ok(ReleaseDate(
            crate::rfc3339::days_from_civil(year, month, day).saturating_mul(86_400),
        ))
    }

    /// Reads `YYYY-MM-DD` (a whole RFC 3339 time is read as its UTC day too).
    pub fn parse(text: &str) -> Result<ReleaseDate, Error> {
        let bad = || Error::invalid("released", "must be a date YYYY-MM-DD");
        if text.len() > 10 {
            let at = crate::rfc3339::DateTime::parse(text).ok_or_else(bad)?;
            return Ok(ReleaseDate::from_unix(at.unix_timestamp()));
        }
        let b = text.as_bytes();
        let number = |from: usize, n: usize| -> Result<i64, Error> {
            let part = b.get(from..from + n).ok_or_else(bad)?;
            if !part.iter().all(u8::is_ascii_digit) {
                return Err(bad());
            }
            Ok(part
                .iter()
                .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0')))
        };
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        ReleaseDate::from_ymd(number(0, 4)?, number(5, 2)?, number(8, 2)?)
    }

    /// The UTC day of the unix time `secs`.
    pub fn from_unix(secs: i64) -> ReleaseDate {
        ReleaseDate(secs.div_euclid(86_400).saturating_mul(86_400))
    }

    /// The start of the day, in unix seconds (UTC).
    pub fn unix(self) -> i64 {
        self.0
    }

    /// `true` when a key paid through `paid_through` (unix seconds) covers this release: the
    /// release's day is on or before that time's day.
    pub fn within(self, paid_through: i64) -> bool {
        self.0 <= paid_through
    }
}

impl std::fmt::Display for ReleaseDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = String::new();
        crate::rfc3339::DateTime::from_unix(self.0).write(&mut text);
        f.write_str(text.get(..10).unwrap_or(&text))
    }
}

/// What a check says about the release dates the key covers, when the app stated its build's
/// ([`crate::grace::CheckReport::perpetual`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perpetual {
    /// The build's release date the app stated.
    pub released: ReleaseDate,
    /// The end of the time the key was paid for (unix seconds): its `expires_at`, or a
    /// cancelled subscription's end, whichever comes first. `None` when no end is known (a key
    /// that does not expire; a renewing subscription; a denial that is not an expiry).
    pub paid_through: Option<i64>,
    /// `true` when the answer licenses only because this build was released on or before
    /// `paid_through`: the key itself has expired (offer the upgrade).
    pub fallback: bool,
    /// Signed mode: why no fallback was taken where the answer might have given one: the
    /// denial came without the relay's signature for this request (a relay older than
    /// signed denials), or the cache holds no lease that verifies (issue #62). `None` in
    /// unsigned mode, and whenever the rule looked at signed facts only.
    pub refused: Option<&'static str>,
}

impl Perpetual {
    /// No fallback, no date known, for a build released on `released`.
    pub fn none(released: ReleaseDate) -> Perpetual {
        Perpetual {
            released,
            paid_through: None,
            fallback: false,
            refused: None,
        }
    }
}

/// Where a trial stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrialState {
    /// It runs: the app may be used until [`Trial::ends_at`].
    Active,
    /// Its time is over: ask for a key (offer the purchase).
    Ended,
    /// A local trial whose record cannot be believed: edited or copied from another install
    /// or machine, or the clock set back past the tolerance (the outcome is then
    /// `clock_rollback`). Not a trial that runs.
    Refused,
}

impl TrialState {
    /// The stable snake_case name: `active`, `ended` or `refused`.
    pub const fn as_str(self) -> &'static str {
        match self {
            TrialState::Active => "active",
            TrialState::Ended => "ended",
            TrialState::Refused => "refused",
        }
    }
}

/// What a check says about a trial ([`crate::grace::CheckReport::trial`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trial {
    /// `true` for the app's local trial of N days (no key); `false` for a key from a trial
    /// product (the outcome is then `licensed`, with the key's license).
    pub local: bool,
    /// Where it stands.
    pub state: TrialState,
    /// When it started (unix seconds): the local trial's first check; `None` for a key.
    pub started_at: Option<i64>,
    /// When it ends (unix seconds); `None` when not known (a refused record; a key from a
    /// trial product with neither a period end nor an expiry).
    pub ends_at: Option<i64>,
    /// Whole days left, counted up (a trial ending in 2 h has 1 day left; an ended one 0).
    pub days_left: u32,
}

impl Trial {
    /// `true` while the trial runs.
    pub fn is_active(&self) -> bool {
        self.state == TrialState::Active
    }

    /// What to tell the person of a trial that has ended (one sentence and one next step,
    /// every face's words: the command line said its own); `None` while it runs (its days
    /// left are data a face shows as it likes) and for a refused record (its outcome's reason,
    /// `clock_rollback`, says why).
    pub fn message(&self) -> Option<crate::message::Message> {
        (self.state == TrialState::Ended).then(|| {
            crate::message::Message::fixed(
                "The trial of this app has ended.",
                "Enter a license key to go on using it.",
            )
        })
    }

    /// Writes the trial as the npm package reports it (`{"local":…,"state":…,"startedAt":…,
    /// "endsAt":…,"daysLeft":…}`, unknown times `null`): the engine's check answers and the
    /// local-trial add-on's answer share this one shape.
    pub fn write_json<'j>(&self, j: &'j mut JsonOut) -> &'j mut JsonOut {
        j.raw("{");
        j.key("local").bool(self.local);
        j.key("state").str(self.state.as_str());
        j.key("startedAt").opt_int(self.started_at);
        j.key("endsAt").opt_int(self.ends_at);
        j.key("daysLeft").int(i64::from(self.days_left));
        j.raw("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trial_is_written_as_the_npm_package_reports_it() {
        let local = Trial {
            local: true,
            state: TrialState::Active,
            started_at: Some(1_790_000_000),
            ends_at: Some(1_791_209_600),
            days_left: 14,
        };
        assert_eq!(
            local.write_json(&mut JsonOut::new()).done(),
            r#"{"local":true,"state":"active","startedAt":1790000000,"endsAt":1791209600,"daysLeft":14}"#
        );
        let refused = Trial {
            local: false,
            state: TrialState::Refused,
            started_at: None,
            ends_at: None,
            days_left: 0,
        };
        let mut j = JsonOut::new();
        j.raw("[");
        refused.write_json(&mut j).raw("]");
        assert_eq!(
            j.done(),
            r#"[{"local":false,"state":"refused","startedAt":null,"endsAt":null,"daysLeft":0}]"#
        );
    }
}
