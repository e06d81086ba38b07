//! What the commands answer, as the webview receives it: plain, serializable data with
//! camelCase fields (the guest package's `index.d.ts` declares the same shapes, and the tests
//! tie the two together). Keys never cross whole: only Polar's `displayKey` (`****-4C5B6A`).

use polar_license::features::FeatureAccess;
use polar_license::grace::{CheckReport, LeaseWindow};
use polar_license::lease::{EntitlementClaims, EntitlementValue};
use polar_license::model::{
    LicenseKeyActivationRead, LicenseKeyMember, LicenseKeyOrder, LicenseKeyRead,
    LicenseKeySubscription,
};
use polar_license::perpetual::Perpetual;
use polar_license::stopped::Stopped;
use polar_license::trial::Trial;
use polar_license::{CacheState, CacheStatus, Denial, Error, Licensing};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A check's answer: what the UI shows and which features it unlocks. `check` and
/// `checkInBackground` resolve to one, and the `polar-license://checked` event carries one;
/// an answer that does not license is a state too (not licensed, with its reason), never a
/// rejected promise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LicenseState {
    /// `true` only when the license is good (online, or from the cache within the grace).
    pub licensed: bool,
    /// `licensed`, `denied`, `unverified` or `error` (the class of the reason when not
    /// licensed).
    pub outcome: String,
    /// `online` or `cache` when licensed.
    pub source: Option<String>,
    /// The reason code when not licensed (docs/interfaces.md §1), e.g. `inactive`, `offline`.
    pub code: Option<String>,
    /// The reason's class when not licensed: `denied`, `unverified` or `error`.
    pub class: Option<String>,
    /// A sentence for the person using the app: why it is not licensed, or, for a licensed
    /// answer, the core's words for it ("This device is licensed.", or how long it stays
    /// licensed while Polar cannot be reached; an addition, issue #80): the core's
    /// [`CheckReport::user_message`]. Tell the answer by `licensed`, not by this.
    pub user_message: Option<String>,
    /// Its next step alone (the core's), when not licensed. (An addition.)
    #[serde(default)]
    pub next_step: Option<String>,
    /// When a key that was valid here is refused now: what probably happened, where to look.
    pub hint: Option<String>,
    /// Polar's `detail` for a denial, else ours: for logs and support, not for the user.
    pub detail: Option<String>,
    /// For `invalid_input`: the field at fault (`key` when no key is remembered yet).
    pub field: Option<String>,
    /// `true` when the app should ask the user for a key (none remembered, or not a key).
    pub needs_key: bool,
    /// `true` for `checkInBackground`'s immediate answer while Polar is asked: a
    /// `polar-license://checked` event follows with the fresh state.
    pub pending: bool,
    /// When the licensed verdict was obtained online (unix seconds).
    pub verified_at: Option<i64>,
    /// When licensed: when the grace ends (unix seconds) if Polar stays unreachable; in
    /// signed mode never past the lease's end.
    pub grace_ends_at: Option<i64>,
    /// Signed mode: the stored lease that verifies (`null` for none, or without relay keys).
    pub lease: Option<LeaseInfo>,
    /// For a licensed answer from the cache: seconds of grace left.
    pub grace_remaining: Option<u64>,
    /// For a licensed answer from the cache although Polar was asked: why Polar gave no
    /// verdict (`offline`, `rate_limited`, `server_error` or `protocol_error`).
    pub fallback: Option<String>,
    /// `false` when the cache could not be written (the answer stands).
    pub cache_refreshed: bool,
    /// For an online answer through a seller's relay: where the relay took Polar's verdict
    /// from, as its `polar-license-source` header said (`polar`: asked just now; `store`: its
    /// store; `stale`: a stored grant replayed while Polar could not be asked). `None` without
    /// a relay, and for the cache's answers (contract §5a).
    pub relay_source: Option<String>,
    /// The license, when licensed.
    pub license: Option<LicenseSummary>,
    /// Perpetual fallback, when the app stated its build's release date
    /// ([`crate::Options::released`]); `None` otherwise.
    pub perpetual: Option<PerpetualState>,
    /// A trial (docs/trials.md): the local trial while no key is remembered
    /// ([`crate::Options::trial`]), or a key from a trial product; `None` otherwise.
    pub trial: Option<TrialInfo>,
    /// Every feature of the app's entitlement map, granted or not, by name.
    pub features: BTreeMap<String, FeatureState>,
    /// The key's entitlement values (issue #68, docs/entitlements.md): the Feature Flag
    /// values Polar grants it, by name, typed as Polar's metadata (a string, a number or a
    /// boolean), as the seller's relay signed them into the lease this licensed answer stands
    /// on (read offline). `{}`: Polar grants none. `null`: not known: in unsigned mode (values
    /// need the seller's relay), with a relay that does not sign them, before it read them,
    /// or when not licensed.
    #[serde(default)]
    pub entitlements: Option<BTreeMap<String, serde_json::Value>>,
    /// For a denial through the seller's relay: why the key stopped (issue #68), as Polar's
    /// webhooks told the relay; `null` otherwise. The reason (`code`) stays Polar's, and the
    /// denial stays re-checkable (a resumed subscription licenses at the next check).
    #[serde(default)]
    pub stopped: Option<StoppedInfo>,
}

/// Why a key stopped (issue #68, a denial's detail from the seller's relay), as the npm
/// package's `Stopped` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoppedInfo {
    /// `paused`, `canceled`, `seat_revoked`, `refunded`, `rotated` or `past_due`.
    pub kind: String,
    /// When it happened (unix seconds), when known.
    pub at: Option<i64>,
    /// For `paused`: when the subscription resumes (unix seconds), if Polar said.
    pub until: Option<i64>,
}

impl StoppedInfo {
    /// From the core's detail.
    pub fn of(s: &Stopped) -> StoppedInfo {
        StoppedInfo {
            kind: s.kind.code().to_string(),
            at: s.at,
            until: s.until,
        }
    }
}

/// An entitlement value as JSON: a string, a number or a boolean.
fn entitlement_json(value: &EntitlementValue) -> serde_json::Value {
    match value {
        EntitlementValue::Str(s) => serde_json::Value::from(s.as_str()),
        EntitlementValue::Int(i) => serde_json::Value::from(*i),
        // A float Polar holds is finite; one that is not crosses as `null`.
        EntitlementValue::Float(f) => serde_json::Value::from(*f),
        EntitlementValue::Bool(b) => serde_json::Value::from(*b),
    }
}

/// Signed values by name, as JSON.
fn entitlements_json(claims: &EntitlementClaims) -> BTreeMap<String, serde_json::Value> {
    claims
        .values
        .iter()
        .map(|(name, value)| (name.clone(), entitlement_json(value)))
        .collect()
}

/// `entitlement`'s answer: one entitlement value of the key (issue #68).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntitlementState {
    /// The name asked about (the Feature Flag's metadata key).
    pub name: String,
    /// The value when granted: a string, a number or a boolean; `null` otherwise.
    pub value: Option<serde_json::Value>,
    /// `granted`; `absent` (the relay signed the key's values and this one is not among
    /// them); `unknown` (the lease carries no values: a relay started without
    /// `--sign-entitlements`, or that had not read them yet: check again); `unsigned` (the
    /// answer stands on no signed lease: values need the seller's relay and its public key,
    /// signed mode); `not_licensed` (the check did not license: its state says why).
    pub state: String,
    /// For `absent`, `unknown` and `unsigned`: what to tell the person, the core's one
    /// sentence and next step as one line (`EntitlementState::message`, every face's words);
    /// `null` otherwise.
    #[serde(default)]
    pub user_message: Option<String>,
    /// The next step of `user_message`, alone.
    #[serde(default)]
    pub next_step: Option<String>,
}

impl EntitlementState {
    /// `name` of a check's report.
    pub fn of(report: &CheckReport, name: &str) -> EntitlementState {
        let (state, value) = report.entitlement_state(name);
        let said = state.message();
        EntitlementState {
            name: name.to_string(),
            value: value.map(entitlement_json),
            state: state.code().to_string(),
            user_message: said.as_ref().map(|m| m.text()),
            next_step: said.as_ref().map(|m| m.next_step().to_string()),
        }
    }
}

/// What a check says about the release dates the key covers (perpetual fallback,
/// docs/perpetual.md), as the command line's `--json` and the C ABI say it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PerpetualState {
    /// The build's release date the app stated, `YYYY-MM-DD`.
    pub released: String,
    /// The end of the time the key was paid for (unix seconds): its expiry, or a cancelled
    /// subscription's end. `None` when no end is known (a key that does not expire).
    pub paid_through: Option<i64>,
    /// `true` when the answer licenses only because this build was released on or before
    /// `paid_through`: the key itself has expired (offer the upgrade).
    pub fallback: bool,
}

/// A trial's standing (docs/trials.md), as the command line's `--json` and the C ABI say it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrialInfo {
    /// `true` for the app's local trial of N days (no key); `false` for a key from a trial
    /// product (the answer is then licensed, with the key's license).
    pub local: bool,
    /// `active`, `ended` or `refused` (a local trial's record edited, copied, or its clock set
    /// back: not a trial that runs).
    pub state: String,
    /// When the local trial started (unix seconds); `None` for a key.
    pub started_at: Option<i64>,
    /// When it ends (unix seconds), when known.
    pub ends_at: Option<i64>,
    /// Whole days left, counted up (0 once ended).
    pub days_left: u32,
}

impl TrialInfo {
    /// From the check's report.
    pub fn of(t: &Trial) -> TrialInfo {
        TrialInfo {
            local: t.local,
            state: t.state.as_str().to_string(),
            started_at: t.started_at,
            ends_at: t.ends_at,
            days_left: t.days_left,
        }
    }
}

impl PerpetualState {
    /// From the check's report.
    pub fn of(p: &Perpetual) -> PerpetualState {
        PerpetualState {
            released: p.released.to_string(),
            paid_through: p.paid_through,
            fallback: p.fallback,
        }
    }
}

/// Signed mode (docs/signed-mode.md): the relay's lease the cache holds and that verifies,
/// as the command line's `lease` and the npm package's `lease`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseInfo {
    /// The relay key that signed it.
    pub kid: String,
    /// When it ends (unix seconds): offline licensing stops then, whatever the grace says.
    pub expires_at: i64,
}

impl LeaseInfo {
    /// From the lease's window.
    pub fn of(window: &LeaseWindow) -> LeaseInfo {
        LeaseInfo {
            kid: window.kid.clone(),
            expires_at: window.expires_at,
        }
    }
}

/// What the UI may show of a license: never the whole key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LicenseSummary {
    /// Polar's redacted form of the key, e.g. `****-4C5B6A`.
    pub display_key: String,
    /// `granted`, `revoked` or `disabled`.
    pub status: String,
    /// The benefit (product or tier) the key belongs to.
    pub benefit_id: String,
    /// The customer's email, when Polar sent it.
    pub customer_email: Option<String>,
    /// When the key expires (unix seconds), `None` for never.
    pub expires_at: Option<i64>,
    /// Usages counted so far.
    pub usage: i64,
    /// The usage limit, if any.
    pub limit_usage: Option<i64>,
    /// The activation limit, if any.
    pub limit_activations: Option<i64>,
    /// The activation this machine validates, when known.
    pub activation_id: Option<String>,
    /// The seat holder the key is assigned to (Polar API 2027-01 and later; absent before,
    /// or when Polar sent none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<MemberInfo>,
    /// The subscription the key was granted through (2027-01 and later; absent before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<SubscriptionInfo>,
    /// The order the key was granted through (2027-01 and later; absent before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<OrderInfo>,
}

/// The seat holder a key is assigned to (`member`, Polar API 2027-01 and later), as the npm
/// package's `Member` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberInfo {
    /// Member id.
    pub id: String,
    /// The member's email, when Polar sent it.
    pub email: Option<String>,
    /// The seller's own id for the member, when set.
    pub external_id: Option<String>,
}

/// The subscription a key was granted through (`subscription`, 2027-01 and later), as the
/// npm package's `Subscription` names it; times in unix seconds like `expiresAt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionInfo {
    /// Subscription id.
    pub id: String,
    /// `active`, `trialing`, `past_due`, `canceled`, … as Polar sent it.
    pub status: String,
    /// Start of the current billing period (unix seconds), when known.
    pub current_period_start: Option<i64>,
    /// End of the current billing period (unix seconds), when known.
    pub current_period_end: Option<i64>,
    /// The customer cancelled: the subscription ends at the period end.
    pub cancel_at_period_end: bool,
    /// When the subscription ends or ended (unix seconds); `None` while it renews.
    pub ends_at: Option<i64>,
}

/// The order a key was granted through (`order`, 2027-01 and later), as the npm package's
/// `Order` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderInfo {
    /// Order id.
    pub id: String,
    /// When the order was made (unix seconds), when known.
    pub created_at: Option<i64>,
    /// `paid`, `pending`, `refunded`, `partially_refunded`, … as Polar sent it.
    pub status: String,
    /// Whether the order is paid.
    pub paid: bool,
}

impl MemberInfo {
    /// From Polar's `member`.
    pub fn of(m: &LicenseKeyMember) -> MemberInfo {
        MemberInfo {
            id: m.id.clone(),
            email: m.email.clone(),
            external_id: m.external_id.clone(),
        }
    }
}

impl SubscriptionInfo {
    /// From Polar's `subscription`.
    pub fn of(s: &LicenseKeySubscription) -> SubscriptionInfo {
        SubscriptionInfo {
            id: s.id.clone(),
            status: s.status.clone(),
            current_period_start: s.current_period_start.map(|t| t.unix_timestamp()),
            current_period_end: s.current_period_end.map(|t| t.unix_timestamp()),
            cancel_at_period_end: s.cancel_at_period_end,
            ends_at: s.ends_at.map(|t| t.unix_timestamp()),
        }
    }
}

impl OrderInfo {
    /// From Polar's `order`.
    pub fn of(o: &LicenseKeyOrder) -> OrderInfo {
        OrderInfo {
            id: o.id.clone(),
            created_at: o.created_at.map(|t| t.unix_timestamp()),
            status: o.status.clone(),
            paid: o.paid,
        }
    }
}

/// May this copy use a feature (the app's entitlement map, `Options::entitlements`)?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeatureState {
    /// The feature asked about.
    pub feature: String,
    /// `true` only when granted.
    pub granted: bool,
    /// `granted`, `license_not_valid`, `not_granted_by_benefit`, `unknown_feature` or
    /// `usage_exhausted`.
    pub why: String,
    /// When the license itself is not valid: its reason code.
    pub license_reason: Option<String>,
    /// For a metered feature: usages left.
    pub remaining_usage: Option<i64>,
    /// Where the licensed verdict came from (`online` or `cache`), when there was one.
    pub source: Option<String>,
}

/// Why a command failed: the promise of `activate`, `deactivate`, `validate`, `status`,
/// `rememberedKey` and `forgetKey` rejects with this (Polar's denials too: `not_found`,
/// `activation_limit`, …), never with a bare string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LicenseError {
    /// The stable reason code (docs/interfaces.md §1).
    pub code: String,
    /// `denied`, `unverified` or `error`.
    pub class: String,
    /// A sentence for the person using the app (the core's one sentence and next step).
    pub user_message: String,
    /// The next step of `user_message` alone (the core's, `Message::next_step`), for a screen
    /// that shows the two apart; `None` only from an older plugin. (An addition.)
    #[serde(default)]
    pub next_step: Option<String>,
    /// Polar's `detail` for a denial, else ours: for logs and support.
    pub detail: String,
    /// For a denial of a key that was valid here before: what probably happened.
    pub hint: Option<String>,
    /// For `invalid_input`: the field at fault.
    pub field: Option<String>,
    /// The HTTP status, when there was one.
    pub status: Option<u16>,
    /// For `rate_limited`: seconds to wait, when Polar said.
    pub retry_after: Option<u64>,
    /// For `usage_exhausted`: the usages left.
    pub remaining_usages: Option<i64>,
    /// For a denial through the seller's relay: why the key stopped (issue #68); `null`
    /// otherwise.
    #[serde(default)]
    pub stopped: Option<StoppedInfo>,
}

/// `activate`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Activated {
    /// The new activation's id (remembered in the cache; `check` validates it).
    pub activation_id: String,
    /// Its label, as Polar shows it in the customer portal.
    pub label: String,
    /// The license.
    pub license: LicenseSummary,
    /// Signed mode: the lease stored with it (`null` without relay keys).
    pub lease: Option<LeaseInfo>,
}

/// `deactivate`'s answer (an addition, issue #80: it answered nothing): what to tell the person
/// now that this device's seat is free, in the core's words (`polar_license::message::DEACTIVATED`,
/// the same as every face's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deactivated {
    /// The sentence and its next step, to show whole.
    pub user_message: String,
    /// The next step alone.
    pub next_step: String,
}

impl Deactivated {
    pub(crate) fn said() -> Deactivated {
        let said = polar_license::message::DEACTIVATED;
        Deactivated {
            user_message: said.text(),
            next_step: said.next_step().to_string(),
        }
    }
}

/// `followRotation`'s answer: the rotated key followed to its new string, validated with this
/// machine's activation (the same one: no slot taken). The whole new key never reaches the
/// webview: when the old key was the remembered one, the new one is remembered in its place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Followed {
    /// The activation the new key was validated with (the one this machine held).
    pub activation_id: Option<String>,
    /// The new key took the old one's place as the remembered key.
    pub remembered: bool,
    /// The license, under its new key (`displayKey` is the new key's).
    pub license: LicenseSummary,
}

/// `validate`'s answer (one online validation, no cache answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Validated {
    /// The license.
    pub license: LicenseSummary,
    /// Signed mode: the stored lease that verifies (`null` for none, or without relay keys).
    pub lease: Option<LeaseInfo>,
}

/// `status`'s answer: what the cache holds for the key, with no request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusState {
    /// `none`, `denied`, `licensed` or `lapsed`: what a check would start from.
    pub standing: String,
    /// `empty`, `untrusted` or `present`.
    pub stored: String,
    /// The remembered activation, when there is one.
    pub activation_id: Option<String>,
    /// When the last good verdict was obtained (unix seconds).
    pub verified_at: Option<i64>,
    /// When its grace ends (unix seconds); in signed mode never past the lease's end.
    pub grace_ends_at: Option<i64>,
    /// Signed mode: the stored lease that verifies (`null` for none, or without relay keys).
    pub lease: Option<LeaseInfo>,
    /// Seconds of grace left now, if Polar were unreachable.
    pub grace_remaining: Option<u64>,
    /// The denial Polar gave last, if it is the standing.
    pub denied: Option<String>,
    /// The redacted key the record is for.
    pub display_key: Option<String>,
}

/// `rememberedKey`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RememberedKey {
    /// `true` when a key is remembered on this machine.
    pub remembered: bool,
    /// Its redacted form (`****-4C5B6A`).
    pub display_key: Option<String>,
}

impl LicenseError {
    /// From an error of the library.
    pub fn of(error: &Error) -> LicenseError {
        let reason = error.reason();
        LicenseError {
            code: reason.code().to_string(),
            class: reason.class().as_str().to_string(),
            user_message: error.user_message(),
            next_step: Some(error.message().next_step().to_string()),
            detail: error.detail(),
            hint: None,
            field: error.field().map(str::to_string),
            status: error.status(),
            retry_after: error.retry_after(),
            remaining_usages: None,
            stopped: None,
        }
    }

    /// From Polar's denial.
    pub fn denied(denial: &Denial) -> LicenseError {
        LicenseError {
            code: denial.reason.code().to_string(),
            class: denial.reason.class().as_str().to_string(),
            user_message: denial.user_message(),
            next_step: Some(denial.message().next_step().to_string()),
            detail: denial.detail.clone(),
            hint: denial.hint().map(str::to_string),
            field: None,
            status: Some(denial.status),
            retry_after: None,
            remaining_usages: denial.remaining_usages,
            stopped: denial.stopped.as_ref().map(StoppedInfo::of),
        }
    }
}

impl From<Error> for LicenseError {
    fn from(error: Error) -> LicenseError {
        LicenseError::of(&error)
    }
}

impl std::fmt::Display for LicenseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl std::error::Error for LicenseError {}

impl LicenseSummary {
    /// From a license Polar returned.
    pub fn of(license: &LicenseKeyRead, activation_id: Option<&str>) -> LicenseSummary {
        LicenseSummary {
            display_key: license.display_key.clone(),
            status: license.status.as_str().to_string(),
            benefit_id: license.benefit_id.clone(),
            customer_email: license.customer.email.clone(),
            expires_at: license.expires_at.map(|t| t.unix_timestamp()),
            usage: license.usage,
            limit_usage: license.limit_usage,
            limit_activations: license.limit_activations,
            activation_id: activation_id.map(str::to_string),
            member: license.member.as_ref().map(MemberInfo::of),
            subscription: license.subscription.as_ref().map(SubscriptionInfo::of),
            order: license.order.as_ref().map(OrderInfo::of),
        }
    }
}

impl FeatureState {
    /// From the library's answer.
    pub fn of(access: &FeatureAccess) -> FeatureState {
        FeatureState {
            feature: access.feature.clone(),
            granted: access.granted,
            why: access.why.code().to_string(),
            license_reason: access.license_reason.map(|r| r.code().to_string()),
            remaining_usage: access.remaining_usage,
            source: access.source.map(|s| s.as_str().to_string()),
        }
    }
}

impl LicenseState {
    /// A check's report as the UI sees it; `pending` for a background check's immediate
    /// answer while Polar is asked. Everything comes from the report: its lease (the one the
    /// key's record holds as the check left it, when it verifies: [`CheckReport::lease`],
    /// signed mode only) and the grace end it caps ([`CheckReport::grace_ends_at`]), so no
    /// caller reads the cache again after a check, nor passes a lease the report does not
    /// hold.
    pub fn of(licensing: &Licensing, report: &CheckReport, pending: bool) -> LicenseState {
        let outcome = &report.outcome;
        let features = licensing
            .entitlements()
            .features()
            .map(|name| {
                let access = licensing.has_feature(outcome, name);
                (name.to_string(), FeatureState::of(&access))
            })
            .collect();
        LicenseState {
            licensed: outcome.is_licensed(),
            outcome: outcome.kind().to_string(),
            source: outcome.source().map(|s| s.as_str().to_string()),
            code: outcome.reason().map(|r| r.code().to_string()),
            class: outcome.reason().map(|r| r.class().as_str().to_string()),
            user_message: Some(report.user_message()),
            next_step: outcome.next_step(),
            hint: outcome.hint().map(str::to_string),
            detail: outcome.detail(),
            field: outcome.field().map(str::to_string),
            needs_key: outcome.needs_key(),
            pending,
            verified_at: outcome.verified_at(),
            grace_ends_at: report.grace_ends_at(licensing.policy()),
            lease: report.lease.as_ref().map(LeaseInfo::of),
            grace_remaining: outcome.grace_remaining().map(|d| d.as_secs()),
            fallback: report
                .fallback
                .as_ref()
                .map(|e| e.reason().code().to_string()),
            cache_refreshed: report.cache_refreshed(),
            relay_source: report.relayed.map(|r| r.as_str().to_string()),
            license: outcome.license().map(|license| {
                let activation = license.activation.as_ref().map(|a| a.id.as_str());
                LicenseSummary::of(&license.license_key, activation)
            }),
            perpetual: report.perpetual.as_ref().map(PerpetualState::of),
            trial: report.trial.as_deref().map(TrialInfo::of),
            features,
            entitlements: report.entitlements().map(entitlements_json),
            stopped: match outcome {
                polar_license::grace::CheckOutcome::Denied(d) => {
                    d.stopped.as_ref().map(StoppedInfo::of)
                }
                _ => None,
            },
        }
    }
}

impl Activated {
    /// From Polar's answer to an activation.
    pub fn of(read: &LicenseKeyActivationRead, lease: Option<&LeaseWindow>) -> Activated {
        Activated {
            activation_id: read.activation.id.clone(),
            label: read.activation.label.clone(),
            license: LicenseSummary::of(&read.license_key, Some(&read.activation.id)),
            lease: lease.map(LeaseInfo::of),
        }
    }
}

impl StatusState {
    /// From what the cache holds.
    pub fn of(licensing: &Licensing, status: &CacheStatus) -> StatusState {
        let mut state = StatusState {
            standing: status.standing.as_str().to_string(),
            stored: "empty".to_string(),
            activation_id: status.activation.as_ref().map(|a| a.id.clone()),
            verified_at: None,
            grace_ends_at: None,
            lease: None,
            grace_remaining: status.grace_remaining.map(|d| d.as_secs()),
            denied: None,
            display_key: None,
        };
        match &status.state {
            CacheState::Empty => {}
            CacheState::Untrusted(_) => state.stored = "untrusted".to_string(),
            CacheState::Present(record) => {
                state.stored = "present".to_string();
                state.display_key = Some(record.display_key.clone());
                state.denied = record.denied.as_ref().map(|d| d.reason.code().to_string());
                let lease = record.lease_gate.window();
                state.lease = lease.map(LeaseInfo::of);
                if let Some(good) = &record.good {
                    state.verified_at = Some(good.verified_at);
                    state.grace_ends_at =
                        Some(licensing.policy().grace_end_leased(good.verified_at, lease));
                }
            }
        }
        state
    }
}

/// One device (a live activation) of a key, as `listDevices` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceInfo {
    /// The activation id (what `freeDevice` frees).
    pub id: String,
    /// The label it was activated with.
    pub label: String,
    /// When it was activated (unix seconds).
    pub activated_at: i64,
    /// `true` for the activation this machine holds: the one its cache remembers, or the one
    /// whose `meta` records this machine's fingerprint (a reinstall knows its own row).
    pub this_machine: bool,
    /// The platform family it recorded (`linux/x86_64`, `macos/aarch64`, …), to tell devices
    /// apart; `null` when it recorded none.
    #[serde(default)]
    pub platform: Option<String>,
    /// When the seller's relay last saw it validated (unix seconds); `null` when not known.
    #[serde(default)]
    pub last_seen: Option<i64>,
}

/// `listDevices`' answer: the key's live devices, oldest first, this machine's marked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceList {
    /// The key, redacted (`****-4C5B6A`).
    pub display_key: String,
    /// The key record's id.
    pub key_id: String,
    /// The key's activation limit (`null`: none set).
    pub limit_activations: Option<i64>,
    /// Its live devices.
    pub devices: Vec<DeviceInfo>,
}

impl DeviceList {
    /// From the core's answer.
    pub fn of(key: &polar_license::Key, found: &polar_license::portal::KeyDevices) -> DeviceList {
        DeviceList {
            display_key: key.redacted(),
            key_id: found.key_id.clone(),
            limit_activations: found.limit_activations,
            devices: found
                .devices
                .iter()
                .map(|d| DeviceInfo {
                    id: d.id.clone(),
                    label: d.label.clone(),
                    activated_at: d.activated_at.unix_timestamp(),
                    this_machine: d.this_machine,
                    platform: d.platform.clone(),
                    last_seen: d.last_seen.map(|t| t.unix_timestamp()),
                })
                .collect(),
        }
    }
}

/// One key `recoverableKeys` offers: its record id and display form, never the whole key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecoverableKey {
    /// The key record's id (what `recoverKey` takes).
    pub id: String,
    /// Polar's display form (`****-4C5B6A`).
    pub display_key: String,
    /// The benefit that granted it.
    pub benefit_id: String,
    /// Its activation limit (`null`: none set).
    pub limit_activations: Option<i64>,
    /// When it expires (unix seconds; `null`: never).
    pub expires_at: Option<i64>,
}

impl RecoverableKey {
    /// From a key the portal listed (the whole key is left behind).
    pub fn of(key: &LicenseKeyRead) -> RecoverableKey {
        RecoverableKey {
            id: key.id.clone(),
            display_key: key.display_key.clone(),
            benefit_id: key.benefit_id.clone(),
            limit_activations: key.limit_activations,
            expires_at: key.expires_at.map(|t| t.unix_timestamp()),
        }
    }
}

/// One of several customers with the email (`customer_selection_required`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerChoice {
    /// The customer id to sign in again with.
    pub id: String,
    /// The customer's name, when Polar gave one.
    pub name: Option<String>,
}

/// Why a customer-portal step failed (`requestSignInCode`, `signIn`, `listDevices`,
/// `recoverableKeys`, `recoverKey`): the core's typed failure, never a bare string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceError {
    /// The failure's name (docs/interfaces.md §2's `portal_error`: `code_invalid_or_expired`,
    /// `session_expired`, `not_signed_in`, `device_management_off`, `key_not_found`,
    /// `rate_limited`, `customer_selection_required`, `refused`), or the reason code of a
    /// failure that is no portal answer (`invalid_input`, `offline`, …).
    pub portal_error: String,
    /// The reason code (docs/interfaces.md §1), when the failure has one.
    pub code: Option<String>,
    /// `denied`, `unverified` or `error`.
    pub class: String,
    /// A sentence for the person using the app, with its next step.
    pub user_message: String,
    /// What the library says: for logs and support.
    pub detail: String,
    /// For `invalid_input`: the field at fault (`session` when not signed in).
    pub field: Option<String>,
    /// Polar's HTTP status of a `refused`.
    pub status: Option<u16>,
    /// For `rate_limited`: seconds to wait, when Polar said.
    pub retry_after: Option<u64>,
    /// For `customer_selection_required`: the customers to choose from.
    pub customers: Vec<CustomerChoice>,
}

impl DeviceError {
    /// From the core's portal failure.
    pub fn of(error: &polar_license::portal::PortalError) -> DeviceError {
        use polar_license::portal::PortalError as P;
        if let P::Invalid(e) | P::Offline(e) | P::Protocol(e) = error {
            let reason = e.reason();
            return DeviceError {
                portal_error: error.code().to_string(),
                code: Some(reason.code().to_string()),
                class: reason.class().as_str().to_string(),
                user_message: e.user_message(),
                detail: e.detail(),
                field: e.field().map(str::to_string),
                status: e.status(),
                retry_after: e.retry_after(),
                customers: Vec::new(),
            };
        }
        let class = match error {
            P::CodeInvalidOrExpired | P::SessionExpired | P::NotFound | P::DeviceManagementOff => {
                "denied"
            }
            P::RateLimited(_) => "unverified",
            _ => "error",
        };
        DeviceError {
            portal_error: error.code().to_string(),
            code: error.reason().map(|r| r.code().to_string()),
            class: class.to_string(),
            // The core's one sentence and next step (`PortalError::message`), as every face's
            // (issue #80: this face kept its own wording of each portal failure).
            user_message: error.user_message(),
            detail: error.to_string(),
            field: match error {
                P::NotSignedIn => Some("session".to_string()),
                P::CustomerSelectionRequired(_) => Some("customer_id".to_string()),
                _ => None,
            },
            status: match error {
                P::Refused { status, .. } => Some(*status),
                _ => None,
            },
            retry_after: match error {
                P::RateLimited(wait) => *wait,
                _ => None,
            },
            customers: match error {
                P::CustomerSelectionRequired(c) => c
                    .iter()
                    .map(|(id, name)| CustomerChoice {
                        id: id.clone(),
                        name: name.clone(),
                    })
                    .collect(),
                _ => Vec::new(),
            },
        }
    }
}

/// Why `recoverKey` or `followRotation` failed: the customer session's step ([`DeviceError`])
/// or the license's ([`LicenseError`], Polar's denial such as `activation_limit` for an
/// activation, or `revoked` for a followed key's new string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RecoverError {
    /// The session's step failed (nothing activated).
    Portal(DeviceError),
    /// The activation failed.
    License(LicenseError),
}

impl std::fmt::Display for DeviceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.portal_error, self.detail)
    }
}

impl std::error::Error for DeviceError {}

impl std::fmt::Display for RecoverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecoverError::Portal(e) => e.fmt(f),
            RecoverError::License(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RecoverError {}
