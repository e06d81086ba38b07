//! Signed mode's rows (issue #44): the one table every face plays (`tests/signed/rows.tsv`, its
//! columns described in its header), read here for the Rust faces: the native `Licensing`
//! (tests/signed_mode.rs) and the Rust-on-wasm `AsyncLicensing` (tests/wasm_signed.rs). Builds
//! for wasm32 too. The npm face reads the same file with its own few lines.

use polar_license::grace::{CheckOutcome, Source};
use polar_license::{Error, Reason};
use std::time::Duration;

/// The table, as the Rust faces build it in.
pub const TABLE: &str = include_str!("../../../tests/signed/rows.tsv");

/// Another key under the relay's kid (`other-key`): PASERK's official `k4.secret-2` test
/// vector, as the key file text `SigningKey::from_file_text` reads.
pub const OTHER_KEY: &str = "relay-2026=k4.secret.cHFyc3R1dnd4eXp7fH1-f4CBgoOEhYaHiImKi4yNjo8c5WpIyC_5kWKhS8VEYSZ05dYfuTF-ZdQFV4D9vLTcNQ";

/// What the relay signs on every grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signs {
    /// A 3-day lease with the relay's key.
    Honest,
    /// A lease signed by another key under the relay's kid.
    OtherKey,
    /// A lease with the relay's key, bound to another machine.
    OtherMachine,
}

/// One step after the activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Polar becomes unreachable.
    Offline,
    /// This many seconds pass.
    Advance(i64),
    /// The record is re-sealed as verified now, with the secrets on the machine.
    Forge,
}

/// What a check (or the activation) must answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Licensed from the cache, with this much grace left when given.
    Cache(Option<Duration>),
    /// Granted (an activation).
    Granted,
    /// Not licensed (or an error), for this reason (its code).
    Reason(String),
}

/// One row.
#[derive(Debug, Clone)]
pub struct Row {
    /// Its name, which failures give.
    pub name: String,
    /// What the relay signs.
    pub signs: Signs,
    /// What activating the key in signed mode answers.
    pub activate: Expect,
    /// What happens after it, in order.
    pub then: Vec<Then>,
    /// Whether the app that checks has the relay keys.
    pub relay_keys: bool,
    /// What its check answers.
    pub expect: Expect,
}

fn parse_expect(text: &str) -> Result<Expect, String> {
    Ok(match text {
        "granted" => Expect::Granted,
        "cache" => Expect::Cache(None),
        _ => match text.strip_prefix("cache:") {
            Some(n) => Expect::Cache(Some(Duration::from_secs(
                n.parse().map_err(|e| format!("{text}: {e}"))?,
            ))),
            None => Expect::Reason(text.to_string()),
        },
    })
}

fn parse_then(word: &str) -> Result<Then, String> {
    Ok(match word {
        "offline" => Then::Offline,
        "forge" => Then::Forge,
        _ => {
            let n = word.strip_prefix('+').ok_or(format!("a step: {word}"))?;
            let (n, unit) = match n.strip_suffix('d') {
                Some(days) => (days, 86_400),
                None => (n, 1),
            };
            Then::Advance(n.parse::<i64>().map_err(|e| format!("{word}: {e}"))? * unit)
        }
    })
}

fn parse_row(line: &str) -> Result<Row, String> {
    let cols: Vec<&str> = line.split('\t').collect();
    let [name, lease, activate, then, keys, expect] = cols[..] else {
        return Err(format!("six columns, tab-separated: {line:?}"));
    };
    Ok(Row {
        name: name.to_string(),
        signs: match lease {
            "honest" => Signs::Honest,
            "other-key" => Signs::OtherKey,
            "other-machine" => Signs::OtherMachine,
            _ => return Err(format!("a lease: {lease}")),
        },
        activate: parse_expect(activate)?,
        then: match then {
            "-" => Vec::new(),
            _ => then.split(' ').map(parse_then).collect::<Result<_, _>>()?,
        },
        relay_keys: match keys {
            "relay" => true,
            "none" => false,
            _ => return Err(format!("keys: {keys}")),
        },
        expect: parse_expect(expect)?,
    })
}

/// The rows of `table` (panics, naming the line, on one it cannot read: the table is a
/// test's fixture).
pub fn parse(table: &str) -> Vec<Row> {
    table
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| parse_row(line).unwrap_or_else(|e| panic!("tests/signed/rows.tsv: {e}")))
        .collect()
}

/// The table's rows.
pub fn rows() -> Vec<Row> {
    parse(TABLE)
}

impl Expect {
    /// Whether `outcome` is what this says (`Err` says how it is not).
    pub fn check(&self, outcome: &CheckOutcome) -> Result<(), String> {
        let ok = match self {
            Expect::Cache(left) => match outcome {
                CheckOutcome::Licensed {
                    source: Source::Cache,
                    grace_remaining,
                    ..
                } => left.is_none() || left == grace_remaining,
                _ => false,
            },
            Expect::Granted => outcome.is_licensed(),
            Expect::Reason(code) => {
                !outcome.is_licensed() && outcome.reason().map(Reason::code) == Some(code)
            }
        };
        match ok {
            true => Ok(()),
            false => Err(format!("expected {self:?}, the check answered {outcome:?}")),
        }
    }

    /// Whether an activation's answer is what this says.
    pub fn activated<T: std::fmt::Debug>(
        &self,
        answer: &Result<polar_license::Verdict<T>, Error>,
    ) -> Result<(), String> {
        let ok = match (self, answer) {
            (Expect::Granted, Ok(verdict)) => verdict.is_accepted(),
            (Expect::Reason(code), Err(e)) => e.reason().code() == code,
            _ => false,
        };
        match ok {
            true => Ok(()),
            false => Err(format!(
                "expected {self:?}, the activation answered {answer:?}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_reads_as_its_columns_say() {
        let rows = parse("# a comment\n\nname\tother-key\tprotocol_error\toffline +2d +1 forge\tnone\tcache:86400\n");
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(row.name, "name");
        assert_eq!(row.signs, Signs::OtherKey);
        assert_eq!(row.activate, Expect::Reason("protocol_error".into()));
        assert_eq!(
            row.then,
            vec![
                Then::Offline,
                Then::Advance(2 * 86_400),
                Then::Advance(1),
                Then::Forge
            ]
        );
        assert!(!row.relay_keys);
        assert_eq!(row.expect, Expect::Cache(Some(Duration::from_secs(86_400))));
    }

    #[test]
    fn a_line_it_cannot_read_is_an_error_not_a_row() {
        for line in [
            "five\thonest\tgranted\t-\trelay",
            "seven\thonest\tgranted\t-\trelay\tcache\textra",
            "lease\tkindly\tgranted\t-\trelay\tcache",
            "step\thonest\tgranted\tsoon\trelay\tcache",
            "keys\thonest\tgranted\t-\tsome\tcache",
            "seconds\thonest\tgranted\t-\trelay\tcache:soon",
        ] {
            assert!(parse_row(line).is_err(), "{line}");
        }
    }

    #[test]
    fn the_table_has_every_kind_of_row() {
        let rows = rows();
        for signs in [Signs::Honest, Signs::OtherKey, Signs::OtherMachine] {
            assert!(rows.iter().any(|r| r.signs == signs), "{signs:?}");
        }
        assert!(rows
            .iter()
            .any(|r| r.then.contains(&Then::Forge) && r.relay_keys));
        assert!(rows
            .iter()
            .any(|r| r.then.contains(&Then::Forge) && !r.relay_keys));
    }
}
