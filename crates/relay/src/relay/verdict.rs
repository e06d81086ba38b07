//! A verdict's answer: Polar's answer passed back (or the relay's 502 when it could not ask),
//! kept in the store, with a lease on a grant (signed here, or to be signed elsewhere) or a
//! signed denial; what every route's part finishes with (a route part's `finish`).

use polar_license::lease::{prepare, LeaseClaims, LEASE_HEADER};
use polar_license::{HttpResponse, TransportError};

use super::Relay;
use crate::clock::Now;
use crate::flow::{Moment, Upstream};
use crate::pending::Pending;
use crate::types::Host;
use crate::types::{
    add_cors, machine_of, refuses_token, Finished, Holder, RelayResponse, SignWith, Unsigned,
    PASSED_HEADERS,
};

impl Relay {
    /// Polar's answer to a verdict's call (or why there is none) kept in the store and passed
    /// back, with a lease on a grant (signed here, or to be signed elsewhere).
    pub(crate) fn verdict_of(&self, pending: &Pending, upstream: Upstream, at: Moment) -> Finished {
        let Moment { now, entropy } = at;
        let seen = self
            .store
            .as_ref()
            .map(|_| crate::stored::Seen::of(&upstream));
        let (mut response, mut unsigned, holder) = self.answer(pending, upstream, now, entropy);
        if let (Some(s), Some(seen)) = (&self.store, seen) {
            let seen = seen.held_by(holder);
            s.keep(
                &self.leases,
                pending,
                seen,
                now,
                entropy,
                &mut response,
                &mut unsigned,
            );
        }
        add_cors(&mut response);
        Finished { response, unsigned }
    }

    /// Polar's answer passed back, with the lease signed here, or to be signed elsewhere; and
    /// for a grant, its license key's and customer's ids as the grant's reading found them.
    fn answer(
        &self,
        pending: &Pending,
        upstream: Result<HttpResponse, TransportError>,
        now: Now,
        entropy: Option<[u8; 16]>,
    ) -> (RelayResponse, Unsigned, Option<Holder>) {
        let Pending {
            op,
            key,
            checked,
            call,
            ..
        } = pending;
        let op = *op;
        let upstream = match upstream {
            Ok(resp) => resp,
            Err(e) => {
                log::warn!(
                    "relay: {} {} 502 (Polar unreachable: {:?})",
                    op.as_str(),
                    crate::logged::key(key),
                    e.kind
                );
                return (
                    RelayResponse::unreached("the relay could not reach Polar"),
                    None,
                    None,
                );
            }
        };
        if refuses_token(op, &upstream) {
            // The setting named as the seller wrote it: `relay serve`'s option, or the npm
            // relay's `createRelay` option (a Worker's binding feeds the same option).
            let setting = match self.host {
                Host::Native => "--access-token (POLAR_ACCESS_TOKEN)",
                Host::Fetch | Host::Workers => "createRelay's accessToken",
            };
            log::error!(
                "relay: Polar refused the relay's access token ({}): check {setting} and its \
                 license_keys:write scope; answering 502",
                upstream.status
            );
            return (
                RelayResponse::unreached("the relay could not ask Polar"),
                None,
                None,
            );
        }
        let mut r = RelayResponse::new(upstream.status);
        for name in PASSED_HEADERS {
            if let Some(value) = upstream.header(name) {
                r.set(name, value);
            }
        }
        r.body = upstream.body.clone();
        let verified_at = now.unix_seconds;
        let granted = self
            .leases
            .grant(op, checked, call, &upstream, now, verified_at, entropy);
        #[cfg_attr(not(feature = "entitlements"), allow(unused_mut))]
        let (mut lease, holder) = match granted {
            Ok((lease, holder)) => (pending.claims(lease), holder),
            Err(why) => {
                log::info!(
                    "relay: {} {} {} (no lease: {why})",
                    op.as_str(),
                    crate::logged::key(key),
                    upstream.status
                );
                // Why the key stopped, beside Polar's denial (crate::lifecycle).
                let stop = self
                    .store
                    .as_ref()
                    .and_then(|s| s.lifecycle.denied(s.backend.as_ref(), pending, &upstream));
                crate::lifecycle::tell(&mut r, stop);
                let denial = self.leases.denial(
                    checked,
                    call,
                    &upstream,
                    now,
                    pending.nonce.as_deref(),
                    entropy,
                );
                let denial = crate::lifecycle::signed(denial, stop);
                return match denial {
                    Some(denial) => {
                        let (r, unsigned) = self.leases.sign_denial(pending, r, &denial, false);
                        (r, unsigned, None)
                    }
                    None => (r, None, None),
                };
            }
        };
        #[cfg(feature = "entitlements")]
        if let Some(s) = &self.store {
            let nonce = pending.nonce.as_deref();
            s.entitled
                .sign_in(&mut lease, &holder, nonce, now, &s.options);
        }
        let (r, unsigned) = self.leased(pending, r, &lease);
        (r, unsigned, Some(holder))
    }

    /// A grant's answer with its lease signed here, or to be signed elsewhere.
    fn leased(
        &self,
        pending: &Pending,
        mut r: RelayResponse,
        lease: &LeaseClaims,
    ) -> (RelayResponse, Unsigned) {
        let Pending {
            op, key, checked, ..
        } = pending;
        let op = *op;
        let machine = machine_of(checked);
        let signed = match &self.leases.signer {
            SignWith::Key(signing_key) => {
                signing_key.sign(lease, machine.as_deref()).map(|token| {
                    r.set(LEASE_HEADER, &token);
                    log::info!(
                        "relay: {} {} 200 (lease {} until {})",
                        op.as_str(),
                        crate::logged::key(key),
                        lease.id,
                        crate::logged::instant(lease.expires_at)
                    );
                    None
                })
            }
            SignWith::External { kid, .. } => {
                prepare(lease, kid, machine.as_deref()).map(|unsigned| {
                    log::info!(
                        "relay: {} {} 200 (lease {} until {}, to sign)",
                        op.as_str(),
                        crate::logged::key(key),
                        lease.id,
                        crate::logged::instant(lease.expires_at)
                    );
                    Some((unsigned, machine))
                })
            }
        };
        match signed {
            Ok(unsigned) => (r, unsigned),
            Err(e) => {
                log::error!(
                    "relay: {} {} 200 without a lease: {}",
                    op.as_str(),
                    crate::logged::key(key),
                    e.text()
                );
                (r, None)
            }
        }
    }
}
