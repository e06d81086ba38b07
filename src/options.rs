//! What every builder takes, held once: [`ClientOptions`] (which Polar, how long to wait, how
//! much to read, which routes) and [`LicensingOptions`] (the grace policy and the rules of the
//! cache). The native `ClientBuilder` and `LicensingBuilder` and the wasm32 `AsyncClientBuilder`
//! and `AsyncLicensingBuilder` each hold these and get their common setters from one
//! definition (`client_setters!` and `licensing_setters!`, crate-internal), so a setting
//! reads, defaults and is checked the same way on every face.

use crate::error::Error;
use crate::features::Entitlements;
use crate::grace::GracePolicy;
use crate::key::AccessToken;
use crate::lease::RelayKeys;
use crate::proto::{Api, Server};
use std::time::Duration;

/// Default whole-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default connect timeout (TCP and TLS handshake; natively only: `fetch` has no such step).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest timeout a client takes (a day): a larger one is `invalid_input` (its field).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);
/// Default cap on a response body. Polar's answers are a few KB.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 1024 * 1024;

/// The online client's settings, on every face.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// The seller organization (a UUID v4).
    pub organization_id: String,
    /// Which Polar (default: production).
    pub server: Server,
    /// Whole-request timeout (default [`DEFAULT_TIMEOUT`]).
    pub timeout: Duration,
    /// Connect timeout (default [`DEFAULT_CONNECT_TIMEOUT`]; read by the native transport).
    pub connect_timeout: Duration,
    /// Cap on a response body (default [`DEFAULT_MAX_RESPONSE_BYTES`]); a larger answer is
    /// `protocol_error`.
    pub max_response_bytes: u64,
    /// An organization access token: the token-authenticated `/v1/license-keys/…` routes
    /// instead of the public ones (backends only).
    pub access_token: Option<AccessToken>,
    /// Where the customer portal and checkouts are (the session's sign-in, devices and keys,
    /// key rotation, checkout links, buying in the app); `None` (the default): `server`. In
    /// signed mode `server` is the seller's relay, which serves none of them: point this at
    /// Polar ([`crate::proto::Server::Production`], or the emulator while developing).
    pub portal_server: Option<Server>,
}

impl ClientOptions {
    /// The defaults for `organization_id`.
    pub fn new(organization_id: impl Into<String>) -> ClientOptions {
        ClientOptions {
            organization_id: organization_id.into(),
            server: Server::Production,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            access_token: None,
            portal_server: None,
        }
    }

    /// Checks the settings (timeouts above zero and at most [`MAX_TIMEOUT`], the organization
    /// a UUID v4, the base URL `https://` or loopback `http://`) and makes the request builder,
    /// with this `User-Agent` when the host lets one be set (browsers do not).
    pub fn api(&self, user_agent: Option<&str>) -> Result<Api, Error> {
        if self.timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(Error::invalid("timeout", "must be greater than zero"));
        }
        // A larger one is no timeout a check could wait for, and the clock's arithmetic past
        // it is not the transport's to survive (a deadline beyond `Instant`'s range panics).
        for (field, timeout) in [
            ("timeout", self.timeout),
            ("connect_timeout", self.connect_timeout),
        ] {
            if timeout > MAX_TIMEOUT {
                return Err(Error::invalid(
                    field,
                    "must be at most a day (86400 seconds)",
                ));
            }
        }
        let mut api = Api::new(&self.organization_id, &self.server)?;
        if let Some(portal) = &self.portal_server {
            api = api.with_portal(portal)?;
        }
        if let Some(agent) = user_agent {
            api = api.with_user_agent(agent);
        }
        match &self.access_token {
            Some(token) => api.with_access_token(token.clone()),
            None => Ok(api),
        }
    }
}

/// The grace-aware licensing's settings, on every face.
#[derive(Debug, Clone, Default)]
pub struct LicensingOptions {
    /// The grace policy (default: [`GracePolicy::default`]).
    pub policy: GracePolicy,
    /// A secret of the app's, mixed into the cache's seal.
    pub app_secret: Option<Vec<u8>>,
    /// `check` refuses a key with no remembered activation (`invalid_input`, no request).
    pub require_activation: bool,
    /// The feature map `has_feature` answers from.
    pub entitlements: Entitlements,
    /// Signed mode ([`crate::lease`]) when not empty: the relay keys a lease must verify with
    /// before the cache licenses, and that every online grant must carry a lease of.
    pub relay_keys: RelayKeys,
    /// Perpetual fallback ([`crate::perpetual`]): this build's release date. `None` (the
    /// default): every answer as without it.
    pub released: Option<crate::perpetual::ReleaseDate>,
    /// Trials ([`crate::trial`], the native and wasm shells): a local trial of this many days
    /// while the app has no key. `None` (the default): no local trial.
    pub trial: Option<crate::trial::TrialDays>,
    /// Trials: the benefit ids of the seller's trial products (a key of one is reported as a
    /// trial, with its end).
    pub trial_benefits: Vec<String>,
}

/// The setters of [`ClientOptions`] for a builder whose options live at `self.<path>`.
macro_rules! client_setters {
    ($($path:ident).+) => {
        /// Talk to `server` (default: production).
        pub fn server(mut self, server: $crate::proto::Server) -> Self {
            self.$($path).+.server = server;
            self
        }

        /// Talk to this base URL (`https://`, or `http://` on loopback only).
        pub fn base_url(mut self, url: impl Into<String>) -> Self {
            self.$($path).+.server = $crate::proto::Server::Custom(url.into());
            self
        }

        /// Ask the customer portal and checkouts (sign-in, devices, the customer's keys, key
        /// rotation, checkout links, buying in the app) at this base URL instead of the base
        /// URL's (`https://`, or `http://` on loopback only). In signed mode the base URL is
        /// the seller's relay, which serves none of them: set this to Polar's
        /// (`https://api.polar.sh`, or the emulator while developing).
        pub fn portal_base_url(mut self, url: impl Into<String>) -> Self {
            self.$($path).+.portal_server = Some($crate::proto::Server::Custom(url.into()));
            self
        }

        /// Whole-request timeout (default 10 s).
        pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
            self.$($path).+.timeout = timeout;
            self
        }

        /// Cap on a response body (default 1 MiB); a larger answer is `protocol_error`.
        pub fn max_response_bytes(mut self, bytes: u64) -> Self {
            self.$($path).+.max_response_bytes = bytes;
            self
        }

        /// Use the token-authenticated `/v1/license-keys/…` routes with this access token
        /// (for backends and CI tools; never ship a token inside a client app).
        pub fn access_token(mut self, token: impl Into<String>) -> Self {
            self.$($path).+.access_token = Some($crate::key::AccessToken::new(token));
            self
        }
    };
}
pub(crate) use client_setters;

/// The setters of [`LicensingOptions`] for a builder whose options live at `self.<path>`.
macro_rules! licensing_setters {
    ($($path:ident).+) => {
        /// The grace policy (default: 1 hour fresh, 7 days of grace, 10 minutes of clock
        /// tolerance).
        pub fn policy(mut self, policy: $crate::grace::GracePolicy) -> Self {
            self.$($path).+.policy = policy;
            self
        }

        /// A secret of the app's, mixed into the cache's seal (optional; records and the
        /// remembered key then open only for this app).
        pub fn app_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
            self.$($path).+.app_secret = Some(secret.into());
            self
        }

        /// Makes `check` refuse, with `invalid_input` (field `activation_id`) and no request,
        /// when no activation is remembered for the key. Polar validates a bare key even when
        /// it has activation slots, so an app that licenses per machine turns this on: a
        /// deleted or tampered cache then means "activate again", not a key-only check.
        pub fn require_activation(mut self, required: bool) -> Self {
            self.$($path).+.require_activation = required;
            self
        }

        /// The feature map `has_feature` answers from (checked when it is made: see
        /// [`Entitlements::grant`](crate::features::Entitlements::grant) and
        /// [`Entitlements::from_json`](crate::features::Entitlements::from_json)).
        pub fn entitlements(mut self, entitlements: $crate::features::Entitlements) -> Self {
            self.$($path).+.entitlements = entitlements;
            self
        }

        /// Signed mode: trust leases signed by these relay keys (`KID=k4.public.…` each, as
        /// `polar-license relay keygen` prints them; two at once while rotating), and point
        /// the base URL at the seller's relay. Then the cache licenses only with a lease that
        /// verifies for this organization, key, activation, benefit and machine and has not
        /// expired; a record without one never licenses offline, and an online grant without
        /// one is `protocol_error`. An empty set turns signed mode off.
        pub fn relay_keys(mut self, keys: $crate::lease::RelayKeys) -> Self {
            self.$($path).+.relay_keys = keys;
            self
        }

        /// Perpetual fallback ([`crate::perpetual`]): this build was released on `date`. A key
        /// whose paid time ran out (Polar's `expired`; a cached `expires_at` passed while
        /// Polar cannot be asked, within the grace rules; a cancelled subscription's end)
        /// keeps licensing this build when it is not newer than the date the key was paid
        /// through, and the check's report says so ([`CheckReport::perpetual`](crate::CheckReport::perpetual)). A revoked
        /// or disabled key never does. Not set: every answer exactly as without it.
        pub fn released(mut self, date: $crate::perpetual::ReleaseDate) -> Self {
            self.$($path).+.released = Some(date);
            self
        }

        /// Trials ([`crate::trial`]): a local trial of `days` while the app has no key. The
        /// first check with no key (`check_trial_report`, or `check_remembered_report` with
        /// none remembered) starts it, sealed beside the records (natively in the cache; on
        /// wasm in the storage, `polar-license.trial-<32 hex>`); every check then reports it
        /// in [`CheckReport::trial`](crate::CheckReport::trial) (days left, its end, or ended),
        /// and a clock set back past the policy's tolerance is `clock_rollback`. Wiping the
        /// app's data (or the site's storage) restarts it. With it set, a key from a trial
        /// product (a `trialing` subscription, API version 2027-01) is reported as a trial too.
        pub fn trial(mut self, days: $crate::trial::TrialDays) -> Self {
            self.$($path).+.trial = Some(days);
            self
        }

        /// Trials: a key whose benefit is `benefit_id` (a seller's trial product) is reported
        /// as a trial, with its end ([`CheckReport::trial`](crate::CheckReport::trial)), as is
        /// a `trialing` subscription (2027-01).
        pub fn trial_benefit(mut self, benefit_id: impl Into<String>) -> Self {
            self.$($path).+.trial_benefits.push(benefit_id.into());
            self
        }
    };
}
pub(crate) use licensing_setters;

#[cfg(test)]
#[allow(clippy::expect_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use crate::reason::Reason;

    #[test]
    fn defaults_and_checks() {
        let o = ClientOptions::new("2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10");
        assert_eq!(o.timeout, DEFAULT_TIMEOUT);
        assert!(o.api(Some("ua")).is_ok());
        let zero = ClientOptions {
            timeout: Duration::ZERO,
            ..o.clone()
        };
        assert_eq!(
            zero.api(None).map(drop).map_err(|e| e.reason()),
            Err(Reason::InvalidInput)
        );
        let bad_org = ClientOptions::new("not-a-uuid");
        assert_eq!(
            bad_org.api(None).map(drop).map_err(|e| e.reason()),
            Err(Reason::InvalidInput)
        );
    }

    /// Signed mode's split (issue #80): the license at the relay, the customer portal and the
    /// checkouts at Polar when `portal_server` says so; both at `server` when it does not.
    #[test]
    fn the_portal_and_checkouts_go_where_portal_server_says() {
        let mut o = ClientOptions::new("2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10");
        o.server = Server::Custom("https://relay.example.com".into());
        let api = o.api(None).expect("api");
        assert_eq!(api.portal_base_url(), "https://relay.example.com");
        o.portal_server = Some(Server::Production);
        let api = o.api(None).expect("api");
        assert_eq!(api.base_url(), "https://relay.example.com");
        assert_eq!(api.portal_base_url(), "https://api.polar.sh");
        let portal = crate::portal::Portal::for_api(&api);
        let asked = portal.request_code("jane@example.com").expect("request");
        assert!(
            asked
                .url
                .starts_with("https://api.polar.sh/v1/customer-portal/"),
            "{}",
            asked.url
        );
        let link = crate::purchase::open_link(&api, "polar_cl_abc", None).expect("link");
        assert!(
            link.url
                .starts_with("https://api.polar.sh/v1/checkout-links/"),
            "{}",
            link.url
        );
        assert!(
            api.url(crate::proto::Operation::Validate)
                .starts_with("https://relay.example.com/"),
            "the license's routes stay at the relay"
        );
        o.portal_server = Some(Server::Custom("http://polar.example.com".into()));
        let refused = o.api(None).map(drop).expect_err("plain http off loopback");
        assert_eq!(refused.field(), Some("portal_base_url"));
    }
}
