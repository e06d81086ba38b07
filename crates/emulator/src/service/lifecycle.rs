//! A key's subscription through its lifecycle (docs/polar-api.md §16.6), as a seller's
//! customer or Polar's scheduler moves it: `POST /__emulator/keys/{key}/subscription` with
//! `{"action": …}`, each change queueing Polar's webhooks in Polar's order (the subscription's
//! first, then the grants', then `customer.state_changed`):
//!
//! - `cancel_at_period_end`: the key stays granted until the period ends; `canceled_at` is
//!   set at once and a scheduled pause dropped; `subscription.updated`, `subscription.canceled`.
//! - `pause_at_period_end` (`resumes_at` optional): `subscription.updated`.
//! - `period_end`: a cancellation due ends the subscription (`canceled`): `subscription.revoked`;
//!   a pause due pauses it: `subscription.updated`, `subscription.paused`; then each grant of the
//!   key's purchase revoked (the key `revoked`: validate 404 `License key is no longer
//!   active.`), `benefit_grant.revoked` each, `customer.state_changed`. Nothing due: a 400 (a
//!   renewal is `POST /__emulator/keys/{key}/cycle`).
//! - `past_due` (`grace_days`, default 0): `subscription.updated`, `subscription.past_due`; the
//!   grants revoked at once with no grace, else at `grace_end`.
//! - `resume` (a paused one): `active`, a new period from now; `subscription.updated`,
//!   `subscription.resumed`, each grant made again (the same key, the same activations),
//!   `benefit_grant.created` each, `customer.state_changed`; a seat's key stays revoked.
//!
//! Every key of the subscription moves together (a pause revokes each seat first:
//! `customer_seat.revoked`); one `customer.state_changed` ends a change, after the grants'
//! webhooks (Polar enqueues one after each grant's webhook, §16.4: a simplification of the
//! emulator's, documented in docs/interfaces.md).
//! A refund (`…/refund`) and a seat's revocation (`…/seat/revoke`) are below.

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
    /// `past_due`: the organization's grace in days before the grants are revoked (0, the
    /// default: at once; otherwise the `grace_end` action ends it).
    #[serde(default)]
    grace_days: Option<u32>,
}

/// A refund of a key's order (the control route's body).
#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct RefundChange {
    #[serde(default)]
    revoke_benefits: bool,
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
    /// grant's webhook queued (a grant already so sends none).
    fn set_purchase(&mut self, key: &str, granted: bool, now: Time) {
        let benefits = self.store.purchase_benefits(key);
        let status = if granted { "granted" } else { "revoked" };
        let update = KeyUpdate {
            status: Some(status.to_string()),
            ..KeyUpdate::default()
        };
        if self
            .store
            .grant_view(key)
            .is_some_and(|v| v.status != status)
        {
            let _ = self.update_key_grant(key, &update, now);
        }
        let wall = self.clock(now);
        let kind = if granted {
            "benefit_grant.created"
        } else {
            "benefit_grant.revoked"
        };
        for b in benefits {
            if let Some(change) = self.store.set_flag_grant(key, b, granted, wall) {
                if change.changed {
                    self.queue(change.organization_id, kind, &change.grant, now);
                }
            }
        }
    }

    /// `customer.state_changed` for the customer of `key`, after its grants' webhooks.
    fn state_changed(&mut self, key: &str, now: Time) {
        if let Some(p) = self.store.purchase_of(key) {
            self.customer_changed(p.organization_id, p.customer_id, now);
        }
    }

    /// Revokes every key of subscription `id` and the grants of their purchases (a pause
    /// revokes each seat first: `customer_seat.revoked`), then `customer.state_changed`.
    fn revoke_subscription(&mut self, key: &str, id: &str, seats: bool, now: Time) {
        for (k, seat) in self.store.subscription_keys(id) {
            if seats && seat {
                if let Some(payload) = self.seat_payload(&k, now) {
                    let org = self.store.purchase_of(&k).map(|p| p.organization_id);
                    if let Some(org) = org {
                        self.queue(org, "customer_seat.revoked", &payload, now);
                    }
                }
            }
            self.set_purchase(&k, false, now);
        }
        self.state_changed(key, now);
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
                        // `_perform_cancellation`: `canceled_at` now, and a scheduled pause
                        // dropped (`pause_at_period_end` false, `resumes_at` null).
                        ("canceled_at", at.clone()),
                        ("pause_at_period_end", J::Bool(false)),
                        ("resumes_at", J::Null),
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
                self.revoke_subscription(key, &sub.id, false, now);
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
                self.revoke_subscription(key, &sub.id, true, now);
                Ok(Some(data))
            }
            "period_end" => Err(format!(
                "the subscription is {status} with neither a cancellation nor a pause due: a renewal is POST /__emulator/keys/{{key}}/cycle"
            )),
            "past_due" => {
                if !live {
                    return Err(format!("the subscription is {status}: it cannot fall past due"));
                }
                self.store.set_subscription(
                    &sub.id,
                    &[("status", s("past_due")), ("modified_at", at)],
                );
                let data = render(&self.store);
                self.queue(org, "subscription.updated", &data, now);
                self.queue(org, "subscription.past_due", &data, now);
                // The organization's `benefit_revocation_grace_period`: 0 revokes at once.
                if change.grace_days.unwrap_or(0) == 0 {
                    self.revoke_subscription(key, &sub.id, false, now);
                }
                Ok(Some(data))
            }
            "grace_end" => {
                if status != "past_due" {
                    return Err(format!("the subscription is {status}: no grace is running"));
                }
                self.revoke_subscription(key, &sub.id, false, now);
                Ok(Some(render(&self.store)))
            }
            "resume" => {
                if status != "paused" {
                    return Err(format!("the subscription is {status}: nothing to resume"));
                }
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
                // Every key of the subscription and its purchase's grants again, but a seat's:
                // "benefits are granted when seats are claimed" (the seat stays revoked).
                for (k, seat) in self.store.subscription_keys(&sub.id) {
                    if !seat {
                        self.set_purchase(&k, true, now);
                    }
                }
                self.state_changed(key, now);
                Ok(Some(data))
            }
            other => Err(format!(
                "unknown action `{other}`: cancel_at_period_end, pause_at_period_end, period_end, past_due, grace_end or resume"
            )),
        }
    }
}

/// Why a refund was refused.
pub(crate) enum RefundRefusal {
    /// Polar's own answer (`RevokeSubscriptionBenefitsProhibited`, 400).
    Polar(&'static str, &'static str),
    /// The control route's 400.
    Control(String),
}

impl Core {
    /// Refunds `key`'s order in full (docs/polar-api.md §16.6): `refund.created`, then
    /// `order.refunded` (the order `refunded`); with `revoke_benefits` (a one-time order only:
    /// a subscription's answers Polar's 400) the key and every grant of its purchase revoked,
    /// `benefit_grant.revoked` each, then `customer.state_changed`. A subscription order's key
    /// is unaffected. Answers the `Order`; `Ok(None)`: no such key.
    pub(crate) fn refund(
        &mut self,
        key: &str,
        change: &RefundChange,
        now: Time,
    ) -> Result<Option<J>, RefundRefusal> {
        let Some(p) = self.store.purchase_of(key) else {
            return Ok(None);
        };
        let Some((order_id, order)) = p.order.clone() else {
            return Err(RefundRefusal::Control(format!("key {key} has no order")));
        };
        if text(&order, "status").as_deref() == Some("refunded") {
            return Err(RefundRefusal::Control(
                "the order is refunded already".into(),
            ));
        }
        if change.revoke_benefits && p.subscription_id.is_some() {
            return Err(RefundRefusal::Polar(
                "RevokeSubscriptionBenefitsProhibited",
                "Subscription benefits can only be revoked upon cancellation",
            ));
        }
        let wall = self.clock(now);
        let at = s(&fmt_ts(wall));
        self.store
            .set_order(&order_id, &[("status", s("refunded"))]);
        let customer = s(&p.customer_id.to_string());
        let subscription = p.subscription_id.as_deref().map_or(J::Null, s);
        let order_id_j = s(&order_id);
        let refund_id = crate::webhooks::derived_id("refund", p.key_id).to_string();
        let refund = crate::json::obj(vec![
            ("created_at", at.clone()),
            ("modified_at", J::Null),
            ("id", s(&refund_id)),
            ("metadata", J::Obj(Vec::new())),
            ("status", s("succeeded")),
            ("reason", s("customer_request")),
            ("amount", J::Int(0)),
            ("tax_amount", J::Int(0)),
            ("currency", s("usd")),
            ("organization_id", s(&p.organization_id.to_string())),
            ("order_id", order_id_j.clone()),
            ("subscription_id", subscription.clone()),
            ("customer_id", customer.clone()),
            ("revoke_benefits", J::Bool(change.revoke_benefits)),
        ]);
        let order_now = self
            .store
            .purchase_of(key)
            .and_then(|p| p.order)
            .map_or(J::Null, |(_, o)| o);
        let mut order_data = vec![
            ("id", order_id_j),
            (
                "created_at",
                get(&order_now, "created_at").cloned().unwrap_or(J::Null),
            ),
            ("modified_at", at),
            ("status", s("refunded")),
            (
                "paid",
                get(&order_now, "paid").cloned().unwrap_or(J::Bool(true)),
            ),
            ("refunded_amount", J::Int(0)),
            ("customer_id", customer),
            ("subscription_id", subscription),
        ];
        order_data.push(("organization_id", s(&p.organization_id.to_string())));
        let order_data = crate::json::obj(order_data);
        self.queue(p.organization_id, "refund.created", &refund, now);
        self.queue(p.organization_id, "order.refunded", &order_data, now);
        if change.revoke_benefits {
            self.set_purchase(key, false, now);
            self.state_changed(key, now);
        }
        Ok(Some(order_data))
    }

    /// Revokes the seat `key` was granted through (docs/polar-api.md §16.6): the member's key
    /// and every grant of its purchase revoked; `customer_seat.revoked` (its `customer_id`,
    /// `member_id`, `member` and `email` nulled before sending, as Polar does), then
    /// `benefit_grant.revoked` each (with the `member_id`), then `customer.state_changed`.
    /// Answers the seat; `Ok(None)`: no such key.
    pub(crate) fn revoke_seat(&mut self, key: &str, now: Time) -> Result<Option<J>, String> {
        let Some(p) = self.store.purchase_of(key) else {
            return Ok(None);
        };
        if p.member_id.is_none() {
            return Err(format!("key {key} has no member: no seat to revoke"));
        }
        if self
            .store
            .grant_view(key)
            .is_some_and(|v| v.status == "revoked")
        {
            return Err(format!("key {key} is revoked already"));
        }
        let Some(seat) = self.seat_payload(key, now) else {
            return Ok(None);
        };
        self.queue(p.organization_id, "customer_seat.revoked", &seat, now);
        self.set_purchase(key, false, now);
        self.state_changed(key, now);
        Ok(Some(seat))
    }

    /// The `CustomerSeat` of `key`'s seat as `customer_seat.revoked` sends it (revoked now).
    fn seat_payload(&self, key: &str, now: Time) -> Option<J> {
        let p = self.store.purchase_of(key)?;
        let wall = self.clock(now);
        Some(crate::json::obj(vec![
            ("created_at", s(&fmt_ts(p.key_created_at))),
            ("modified_at", s(&fmt_ts(wall))),
            (
                "id",
                s(&crate::webhooks::derived_id("customer_seat", p.key_id).to_string()),
            ),
            (
                "subscription_id",
                p.subscription_id.as_deref().map_or(J::Null, s),
            ),
            (
                "order_id",
                p.order.as_ref().map_or(J::Null, |(id, _)| s(id)),
            ),
            ("status", s("revoked")),
            ("customer_id", J::Null),
            ("member_id", J::Null),
            ("member", J::Null),
            ("email", J::Null),
            (
                "customer_email",
                p.customer_email.as_deref().map_or(J::Null, s),
            ),
            ("invitation_token_expires_at", J::Null),
            ("claimed_at", s(&fmt_ts(p.key_created_at))),
            ("revoked_at", s(&fmt_ts(wall))),
            ("seat_metadata", J::Obj(Vec::new())),
        ]))
    }
}
