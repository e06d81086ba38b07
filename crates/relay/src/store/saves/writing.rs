//! One save's batch as the storage's own calls (issue #63 item 2: the host holds no rule): the
//! puts, then the deletes, at most [`KEYS_PER_CALL`] keys a call; a put the storage refuses
//! as a whole written again key by key, and the keys refused alone judged by the store's
//! refusal policy ([`Refusals`]). The host only makes each call it is handed and says how it
//! went ([`Writing::ended`]), with the storage's error as it came (its name and message:
//! which errors mean "never storable" is decided here, [`unstorable`]).

use serde_json::Value;

use super::super::layout::{Refusals, Refused, Write};

/// The most keys one call of the storage reads, writes or deletes (a Durable Object's storage
/// API refuses more: 128).
pub(crate) const KEYS_PER_CALL: usize = 128;

/// A call for the storage to make.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Call {
    /// Store these values (at most [`KEYS_PER_CALL`]).
    Put(Vec<(String, Value)>),
    /// Delete these keys (at most [`KEYS_PER_CALL`]).
    Delete(Vec<String>),
}

/// What comes next in a save.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Next {
    /// Make this call, then [`Writing::ended`] with how it went.
    Call(Call),
    /// Saved: the keys refused for good (`[key, why]`: dropped, logged once) left out.
    Saved(Vec<(String, String)>),
    /// The save failed (the storage's error): every change is tried again with the next.
    Failed(String),
}

/// The storage's error, as the host caught it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StorageError {
    /// The error's name (`RangeError`, `TypeError`, `DataCloneError`, `Error`, …).
    pub(crate) name: String,
    /// Its message, as logged.
    pub(crate) message: String,
}

/// Whether a storage error says the value can never be stored: a Durable Object's
/// `RangeError` (past its 128 KiB a value or 2 KiB a key), a `TypeError` or a
/// `DataCloneError` (a value that cannot be cloned). Any other error (the storage down, a
/// timeout) is tried again.
pub(crate) fn unstorable(error: &StorageError) -> bool {
    matches!(
        error.name.as_str(),
        "RangeError" | "TypeError" | "DataCloneError"
    )
}

/// Logs a value the storage refused for good (dropped, never tried again): once, its key cut
/// to its kind and a few characters of its id.
pub(crate) fn dropped(key: &str, why: &str) {
    let short: String = key.chars().take(18).collect();
    log::error!("relay: the storage refused {short}… for good ({why}): dropped, not tried again");
}

/// A put refused as a whole, written again key by key.
#[derive(Debug)]
struct Alone {
    /// The keys left, last first (popped from the end).
    left: Vec<(String, Value)>,
    written: Vec<String>,
    refused: Vec<Refused>,
    /// The error of the call refused as a whole: the save's, if it fails.
    error: String,
}

/// One save's batch, call by call (see the module docs).
#[derive(Debug)]
pub(crate) struct Writing {
    /// The calls left, last first (popped from the end).
    puts: Vec<Vec<(String, Value)>>,
    deletes: Vec<Vec<String>>,
    alone: Option<Alone>,
    /// The call handed, its outcome not given yet.
    handed: Option<Call>,
    dropped: Vec<(String, String)>,
    failed: Option<String>,
}

impl Writing {
    /// The calls of a batch of writes (`None`: the key deleted), puts first, in order.
    pub(crate) fn new(writes: Vec<Write>) -> Writing {
        let mut puts = Vec::new();
        let mut gone = Vec::new();
        for (key, value) in writes {
            match value {
                Some(v) => puts.push((key, v)),
                None => gone.push(key),
            }
        }
        Writing {
            puts: puts
                .chunks(KEYS_PER_CALL)
                .rev()
                .map(<[_]>::to_vec)
                .collect(),
            deletes: gone
                .chunks(KEYS_PER_CALL)
                .rev()
                .map(<[_]>::to_vec)
                .collect(),
            alone: None,
            handed: None,
            dropped: Vec::new(),
            failed: None,
        }
    }

    /// The next call, or the save's end (`refusals`: the store's policy, which judges the
    /// keys of a put refused as a whole once each was written alone).
    pub(crate) fn next(&mut self, refusals: &mut Refusals) -> Next {
        loop {
            if let Some(why) = &self.failed {
                return Next::Failed(why.clone());
            }
            if let Some(alone) = &mut self.alone {
                if let Some((key, value)) = alone.left.pop() {
                    return self.hand(Call::Put(vec![(key, value)]));
                }
                let refused = std::mem::take(&mut alone.refused);
                match refusals.judge(&alone.written, refused) {
                    Some(for_good) => self.dropped.extend(for_good),
                    None => self.failed = Some(alone.error.clone()),
                }
                self.alone = None;
                continue;
            }
            if let Some(put) = self.puts.pop() {
                return self.hand(Call::Put(put));
            }
            if let Some(keys) = self.deletes.pop() {
                return self.hand(Call::Delete(keys));
            }
            return Next::Saved(std::mem::take(&mut self.dropped));
        }
    }

    fn hand(&mut self, call: Call) -> Next {
        self.handed = Some(call.clone());
        Next::Call(call)
    }

    /// How the call [`Writing::next`] handed went (`Err`: the storage's error).
    pub(crate) fn ended(&mut self, outcome: Result<(), StorageError>) {
        let Some(call) = self.handed.take() else {
            return;
        };
        match (call, outcome, &mut self.alone) {
            (Call::Put(mut one), outcome, Some(alone)) => {
                let Some((key, _)) = one.pop() else {
                    return;
                };
                match outcome {
                    Ok(()) => alone.written.push(key),
                    Err(e) => alone.refused.push(Refused {
                        unstorable: unstorable(&e),
                        key,
                        why: e.message,
                    }),
                }
            }
            (_, Ok(()), _) => {}
            // One value refused fails the whole call: each written alone tells a value refused
            // for good from a storage that is down.
            (Call::Put(mut batch), Err(e), None) => {
                batch.reverse();
                self.alone = Some(Alone {
                    left: batch,
                    written: Vec::new(),
                    refused: Vec::new(),
                    error: e.message,
                });
            }
            (Call::Delete(_), Err(e), _) => self.failed = Some(e.message),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    fn error(name: &str) -> StorageError {
        StorageError {
            name: name.into(),
            message: format!("{name}: no"),
        }
    }

    /// Runs a save against a storage that refuses the calls `refuse` names.
    fn run(
        writing: &mut Writing,
        refusals: &mut Refusals,
        refuse: impl Fn(&Call) -> Option<StorageError>,
    ) -> (Vec<Call>, Next) {
        let mut calls = Vec::new();
        loop {
            match writing.next(refusals) {
                Next::Call(call) => {
                    let outcome = refuse(&call).map_or(Ok(()), Err);
                    calls.push(call);
                    writing.ended(outcome);
                }
                end => return (calls, end),
            }
        }
    }

    #[test]
    fn puts_then_deletes_at_most_128_keys_a_call() {
        let writes: Vec<Write> = (0..300)
            .map(|i| (format!("e:{i:03}"), Some(json!(i))))
            .chain((0..130).map(|i| (format!("i:{i:03}"), None)))
            .collect();
        let (calls, end) = run(&mut Writing::new(writes), &mut Refusals::default(), |_| {
            None
        });
        let sizes: Vec<(bool, usize)> = calls
            .iter()
            .map(|c| match c {
                Call::Put(p) => (true, p.len()),
                Call::Delete(d) => (false, d.len()),
            })
            .collect();
        assert_eq!(
            sizes,
            [
                (true, 128),
                (true, 128),
                (true, 44),
                (false, 128),
                (false, 2)
            ]
        );
        assert_eq!(end, Next::Saved(vec![]));
        let Call::Put(first) = &calls[0] else {
            panic!()
        };
        assert_eq!(first[0], ("e:000".to_string(), json!(0)));
    }

    #[test]
    fn a_put_refused_whole_is_written_key_by_key_and_the_too_large_value_dropped() {
        let writes = vec![
            ("e:a".to_string(), Some(json!(1))),
            ("e:big".to_string(), Some(json!("x"))),
            ("w:c".to_string(), Some(json!(3))),
        ];
        let refuse = |call: &Call| match call {
            Call::Put(p) if p.iter().any(|(k, _)| k == "e:big") => Some(error("RangeError")),
            _ => None,
        };
        let (calls, end) = run(&mut Writing::new(writes), &mut Refusals::default(), refuse);
        assert_eq!(calls.len(), 4, "the batch, then each key alone: {calls:?}");
        assert_eq!(
            end,
            Next::Saved(vec![("e:big".into(), "RangeError: no".into())])
        );
    }

    #[test]
    fn a_storage_that_is_down_fails_the_save_and_another_error_is_tried_again() {
        let writes = vec![
            ("e:a".to_string(), Some(json!(1))),
            ("e:b".to_string(), None),
        ];
        let mut refusals = Refusals::default();
        // Nothing written: the save fails with the batch's error.
        let (_, end) = run(&mut Writing::new(writes.clone()), &mut refusals, |_| {
            Some(error("Error"))
        });
        assert_eq!(end, Next::Failed("Error: no".into()));
        // A delete refused: the save fails.
        let (_, end) = run(&mut Writing::new(writes), &mut refusals, |c| {
            matches!(c, Call::Delete(_)).then(|| error("Error"))
        });
        assert_eq!(end, Next::Failed("Error: no".into()));
        // One value refused alone by an error that is not "unstorable": tried again (the
        // save fails) until its third refusal.
        let two = || {
            vec![
                ("e:a".to_string(), Some(json!(1))),
                ("e:odd".to_string(), Some(json!(2))),
            ]
        };
        let refuse = |call: &Call| match call {
            Call::Put(p) if p.iter().any(|(k, _)| k == "e:odd") => Some(error("Error")),
            _ => None,
        };
        for _ in 0..2 {
            let (_, end) = run(&mut Writing::new(two()), &mut refusals, refuse);
            assert_eq!(end, Next::Failed("Error: no".into()));
        }
        let (_, end) = run(&mut Writing::new(two()), &mut refusals, refuse);
        assert_eq!(end, Next::Saved(vec![("e:odd".into(), "Error: no".into())]));
    }

    #[test]
    fn the_errors_that_mean_never_storable() {
        for name in ["RangeError", "TypeError", "DataCloneError"] {
            assert!(unstorable(&error(name)), "{name}");
        }
        for name in ["Error", "TimeoutError", "", "rangeerror"] {
            assert!(!unstorable(&error(name)), "{name}");
        }
    }
}
