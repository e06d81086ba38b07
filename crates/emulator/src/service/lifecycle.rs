//! A key's subscription through its lifecycle (docs/polar-api.md §16.6), as a seller's
//! customer or Polar's scheduler moves it: `POST /__emulator/keys/{key}/subscription` with
//! `{"action": …}`, each change queueing Polar's webhooks in Polar's order (the subscription's
//! first, then the grants', then `customer.state_changed`):
//!
//! - `cancel_at_period_end`: the key stays granted until the period ends;
//!   `subscription.updated`, `subscription.canceled`.
//! - `pause_at_period_end` (`resumes_at` optional): `subscription.updated`.
//! - `period_end`: a cancellation due ends the subscription (`canceled`): `subscription.revoked`;
//!   a pause due pauses it: `subscription.updated`, `subscription.paused`; then each grant of the
//!   key's purchase revoked (the key `revoked`: validate 404 `License key is no longer
//!   active.`), `benefit_grant.revoked` each, `customer.state_changed`. Nothing due: a 400 (a
//!   renewal is `POST /__emulator/keys/{key}/cycle`).
//! - `resume` (a paused one): `active`, a new period from now; `subscription.updated`,
//!   `subscription.resumed`, each grant made again (the same key, the same activations),
//!   `benefit_grant.created` each, `customer.state_changed`.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Core, Time};
use crate::json::{s, J};
use crate::state::lifecycle::{get, render_subscription};
use crate::util::{fmt_ts, parse_ts};
use crate::KeyUpdate;

/// A change of a key's subscription (the control route's body).
#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct SubscriptionChange {
    action: String,
    #[serde(default)]
    resumes_at: Option<String>,
}

fn text(j: &J, name: &str) -> Option<String> {
    match get(j, name) {
        Some(J::Str(t)) => Some(t.clone()),
        _ => None,
    }
}

impl Core {
    fn queue(&mut self, organization_id: Uuid, kind: &str, data: &J, now: Time) {
        let wall = self.clock(now);
        let store = &mut self.store;
        self.webhooks
            .emit(organization_id, kind, data, wall, now.monotonic, || {
                store.next_id()
            });
    }

    /// Revokes (`granted` false) or grants again the key and every grant of its purchase, each
    /// grant's webhook queued, then `customer.state_changed`.
    fn set_purchase(&mut self, key: &str, benefits: &[Uuid], granted: bool, now: Time) {
        let status = if granted { "granted" } else { "revoked" };
        let update = KeyUpdate {
            status: Some(status.to_string()),
            ..KeyUpdate::default()
        };
        let _ = self.update_key_json(key, &update, now);
        let wall = self.clock(now);
        let kind = if granted {
            "benefit_grant.created"
        } else {
            "benefit_grant.revoked"
        };
        let mut target = None;
        for b in benefits {
            if let Some(change) = self.store.set_flag_grant(key, *b, granted, wall) {
                target = Some((change.organization_id, change.customer_id));
                if change.changed {
                    self.queue(change.organization_id, kind, &change.grant, now);
                }
            }
        }
        let target = target.or_else(|| {
            self.store
                .subscription_of(key)
                .map(|s| (s.organization_id, s.customer_id))
        });
        if let Some((org, customer)) = target {
            if let Some(state) = self.store.customer_state(None, customer, wall) {
                self.queue(org, "customer.state_changed", &state, now);
            }
        }
    }

    /// Moves `key`'s subscription as `change` says; its `Subscription` after. `Ok(None)`: no
    /// such key; `Err`: a key without a subscription, an unknown action, or one that does not
    /// apply to the subscription's state.
    pub(crate) fn change_subscription(
        &mut self,
        key: &str,
        change: &SubscriptionChange,
        now: Time,
    ) -> Result<Option<J>, String> {
        if self.store.key_json(key).is_none() {
            return Ok(None);
        }
        let sub = self
            .store
            .subscription_of(key)
            .ok_or_else(|| format!("key {key} has no subscription"))?;
        let wall = self.clock(now);
        let at = s(&fmt_ts(wall));
        let status = text(&sub.object, "status").unwrap_or_else(|| "active".to_string());
        let flag = |name: &str| matches!(get(&sub.object, name), Some(J::Bool(true)));
        let live = matches!(status.as_str(), "active" | "trialing");
        let period = |start: OffsetDateTime| {
            [
                ("current_period_start", s(&fmt_ts(start))),
                (
                    "current_period_end",
                    s(&fmt_ts(start + time::Duration::days(30))),
                ),
            ]
        };
        let org = sub.organization_id;
        let render = |store: &crate::state::Store| {
            store
                .subscription_of(key)
                .map(|s| render_subscription(&s))
                .unwrap_or(J::Null)
        };
        match change.action.as_str() {
            "cancel_at_period_end" => {
                if !live || flag("cancel_at_period_end") {
                    return Err(format!("the subscription is {status}: nothing to cancel"));
                }
                let end = get(&sub.object, "current_period_end")
                    .cloned()
                    .unwrap_or(J::Null);
                self.store.set_subscription(
                    &sub.id,
                    &[
                        ("cancel_at_period_end", J::Bool(true)),
                        ("ends_at", end),
                        ("canceled_at", at.clone()),
                        ("modified_at", at),
                    ],
                );
                let data = render(&self.store);
                self.queue(org, "subscription.updated", &data, now);
                self.queue(org, "subscription.canceled", &data, now);
                Ok(Some(data))
            }
            "pause_at_period_end" => {
                if !live || flag("pause_at_period_end") {
                    return Err(format!("the subscription is {status}: nothing to pause"));
                }
                let resumes_at = match &change.resumes_at {
                    Some(t) => s(&fmt_ts(parse_ts(t)?)),
                    None => J::Null,
                };
                self.store.set_subscription(
                    &sub.id,
                    &[
                        ("pause_at_period_end", J::Bool(true)),
                        ("resumes_at", resumes_at),
                        ("modified_at", at),
                    ],
                );
                let data = render(&self.store);
                self.queue(org, "subscription.updated", &data, now);
                Ok(Some(data))
            }
            "period_end" if live && flag("cancel_at_period_end") => {
                self.store.set_subscription(
                    &sub.id,
                    &[
                        ("status", s("canceled")),
                        ("ended_at", at.clone()),
                        ("modified_at", at),
                    ],
                );
                let data = render(&self.store);
                self.queue(org, "subscription.revoked", &data, now);
                self.set_purchase(key, &sub.granted, false, now);
                Ok(Some(data))
            }
            "period_end" if live && flag("pause_at_period_end") => {
                self.store.set_subscription(
                    &sub.id,
                    &[
                        ("status", s("paused")),
                        ("pause_at_period_end", J::Bool(false)),
                        ("paused_at", at.clone()),
                        ("modified_at", at),
                    ],
                );
                let data = render(&self.store);
                self.queue(org, "subscription.updated", &data, now);
                self.queue(org, "subscription.paused", &data, now);
                self.set_purchase(key, &sub.granted, false, now);
                Ok(Some(data))
            }
            "period_end" => Err(format!(
                "the subscription is {status} with neither a cancellation nor a pause due: a renewal is POST /__emulator/keys/{{key}}/cycle"
            )),
            "resume" => {
                if status != "paused" {
                    return Err(format!("the subscription is {status}: nothing to resume"));
                }
                // The grants the pause revoked: every grant of the key's purchase.
                let benefits = self.store.purchase_benefits(key);
                let mut fields = vec![
                    ("status", s("active")),
                    ("paused_at", J::Null),
                    ("resumes_at", J::Null),
                    ("modified_at", at),
                ];
                fields.extend(period(wall));
                self.store.set_subscription(&sub.id, &fields);
                let data = render(&self.store);
                self.queue(org, "subscription.updated", &data, now);
                self.queue(org, "subscription.resumed", &data, now);
                self.set_purchase(key, &benefits, true, now);
                Ok(Some(data))
            }
            other => Err(format!(
                "unknown action `{other}`: cancel_at_period_end, pause_at_period_end, period_end or resume"
            )),
        }
    }
}
