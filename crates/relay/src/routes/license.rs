//! Polar's three license operations through the relay (`validate`, `activate`,
//! `deactivate`): the body checked by Polar's rules once, at the parse; the call made of it
//! routed through the per-key limit, the breaker and the verdict store; Polar's answer kept
//! and leased ([`Relay::verdict_of`]).

use polar_license::lease::key_hash;
use polar_license::proto::Operation;
use polar_license_rules::CheckedBody;

use super::{Begin, Door, License, Part, Refused, Route};
use crate::flow::{Moment, Upstream};
use crate::ids::OrgId;
use crate::pending::{Pending, Routed};
use crate::relay::{bucket_of, Relay};
use crate::store::{self, Wants};
use crate::types::{Finished, RelayRequest, RelayResponse};

impl License {
    /// The route's checks in the relay's order: the method (405), the body's size (413),
    /// Polar's input checks, the organization.
    pub(super) fn parse(
        op: Operation,
        req: &RelayRequest,
        door: &Door<'_>,
    ) -> Result<License, Refused> {
        let at_door = |answer| Refused { answer, what: None };
        if req.method != "POST" {
            return Err(at_door(super::not_post()));
        }
        let max = door.max_body;
        if req.body.len() > max {
            log::info!("relay: {} 413 (body over {max} bytes)", op.as_str());
            return Err(at_door(RelayResponse::error(
                413,
                "RequestBodyTooLarge",
                &format!("Request body exceeded the maximum allowed size of {max} bytes."),
            )));
        }
        let checked =
            super::checked(op, req.header("content-type"), &req.body, door).map_err(|answer| {
                Refused {
                    answer,
                    what: Some(op.as_str()),
                }
            })?;
        Ok(License { op, checked })
    }
}

impl Part for License {
    fn wants(&self, relay: &Relay, req: &RelayRequest, _now_unix: i64) -> Option<Wants> {
        relay.store.as_ref()?;
        Some(verdict_wants(self.op, &self.checked, req))
    }

    fn begin(&self, b: &Begin<'_>) -> Routed {
        let routed = b.routed(self.op, &self.checked, Route::License(self.clone()));
        // A validate the store answered with Polar's grant of its activation: seen.
        if let Routed::Stored(f) = &routed {
            self.saw(b.relay, &f.response, b.at.now.unix_seconds);
        }
        routed
    }

    /// A stale answer (Polar out of reach) of Polar's earlier grant: the activation seen.
    fn settle(&self, relay: &Relay, verdict: Finished, at: Moment) -> Finished {
        self.saw(relay, &verdict.response, at.now.unix_seconds);
        verdict
    }

    /// An activation or a deactivation Polar made is counted in the key's churn (issue #67),
    /// then the verdict kept and leased; a validate Polar granted for its activation is that
    /// activation seen, a deactivation Polar made ends its record (crate::last_seen).
    fn finish(&self, relay: &Relay, pending: &Pending, upstream: Upstream, at: Moment) -> Finished {
        let made_one = matches!(
            (self.op, upstream.as_ref().map(|u| u.status)),
            (Operation::Activate, Ok(200)) | (Operation::Deactivate, Ok(204))
        );
        if made_one {
            let organization_id = OrgId::checked(&self.checked);
            let key_id = bucket_of(&organization_id, &pending.key);
            let churn = relay.seats.activation_churn();
            relay.churned.count(&key_id, churn, at.now.unix_seconds);
            if let Some(s) = &relay.store {
                crate::seats::count_activation(
                    s.backend.as_ref(),
                    &s.seats_live,
                    &organization_id,
                    &pending.key,
                    if self.op == Operation::Activate {
                        1
                    } else {
                        -1
                    },
                    churn,
                    at.now.unix_seconds,
                );
            }
            if let (Operation::Deactivate, Some(activation)) =
                (self.op, self.checked.activation_id.as_deref())
            {
                match &relay.store {
                    Some(s) => relay.last_seen.forget_kept(
                        s.backend.as_ref(),
                        organization_id.as_str(),
                        &polar_license::lease::key_hash(&pending.key),
                        activation,
                    ),
                    None => relay.last_seen.forget(activation),
                }
            }
        }
        let finished = relay.verdict_of(pending, upstream, at);
        self.saw(relay, &finished.response, at.now.unix_seconds);
        finished
    }

    /// As [`Part::finish`]: all it does is Polar's answer's (the churn, the activation seen).
    fn keep(&self, relay: &Relay, pending: &Pending, upstream: Upstream, at: Moment) {
        self.finish(relay, pending, upstream, at);
    }
}

impl License {
    /// `answer`, a validate's of an activation: when it is Polar's grant of that activation
    /// (crate::last_seen::seen_in), the activation seen at `now` (unix seconds). Nothing for
    /// any other answer, so a client makes no record of an activation Polar did not grant.
    fn saw(&self, relay: &Relay, answer: &RelayResponse, now: i64) {
        if self.op != Operation::Validate {
            return;
        }
        let Some(asked) = self.checked.activation_id.as_deref() else {
            return;
        };
        // Seen within the hour: nothing to write, so Polar's answer is not parsed again.
        if relay.last_seen.fresh(asked, now) {
            return;
        }
        if let Some((activation, key_id)) =
            crate::last_seen::seen_in(asked, answer.status, &answer.body)
        {
            let organization_id = OrgId::checked(&self.checked);
            let moved = relay
                .last_seen
                .saw(&activation, &key_id, organization_id.as_str(), now);
            // Kept in the store too, when it moved (at most once an hour per activation).
            if let (true, Some(s)) = (moved, &relay.store) {
                let digest = key_hash(&polar_license::Key::new(self.checked.key.clone()));
                relay.last_seen.keep(
                    s.backend.as_ref(),
                    organization_id.as_str(),
                    &digest,
                    &activation,
                    &key_id,
                    now,
                );
            }
        }
    }
}

/// What a license operation of `checked` reads or narrows in the store: a validate its entry
/// and its key's index row (with every entry of it after an increment, which narrows them); a
/// deactivation its key's row and entries, and its key's seat pool later; an activation its
/// key's seat pool. Each with why the key stopped (crate::lifecycle), for a denial's detail
/// after a restart (not a deactivation's). A seat's acquisition, a device listing and a usage
/// report read their key's verdict as a validate does.
pub(crate) fn verdict_wants(op: Operation, checked: &CheckedBody, req: &RelayRequest) -> Wants {
    let key = key_hash(&polar_license::Key::new(checked.key.clone()));
    // The key's seat pool (issue #67): an activation is checked against the seats held and
    // counted in them, a deactivation counted, both in its churn (a deactivation's read with
    // the key's entries, or alone once its row names none).
    let pool = crate::seats::pool_id(&crate::ids::OrgId::checked(checked), &key);
    // Why the key stopped, kept by the webhooks (crate::lifecycle): read with the request's
    // own entries, for its denial's detail after a restart.
    let stopped = crate::lifecycle::stored_id(&checked.organization_id, &key);
    // When the key's activations were last seen (crate::last_seen): a validate's grant of an
    // activation moves it, a deactivation drops its activation (a device listing adds it; an
    // activation reads it for the deactivation's sake).
    let seen = crate::last_seen::stored_id(&checked.organization_id, &key);
    let tags = vec![store::key_tag(&checked.organization_id, &key)];
    match op {
        // With the key's last-seen value (crate::last_seen) in the same read, so that the
        // deactivation that often follows finds it cached (no storage call of its own).
        Operation::Activate => Wants {
            entries: vec![pool, stopped, seen],
            tags: Vec::new(),
            all: false,
            later: Vec::new(),
        },
        Operation::Deactivate => Wants {
            entries: Vec::new(),
            tags,
            all: true,
            later: vec![pool, seen],
        },
        _ => {
            let id = store::checked_entry_id(
                checked,
                &key,
                crate::types::passed_version(req.header("polar-version")),
            );
            let mut entries = vec![id, stopped];
            if checked.activation_id.is_some() {
                entries.push(seen);
            }
            Wants {
                entries,
                tags,
                all: checked.increment_usage.unwrap_or(0) > 0,
                later: Vec::new(),
            }
        }
    }
}
