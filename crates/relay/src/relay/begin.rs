//! The two steps every route's part begins with (the part is asked to begin by its route,
//! `Relay::begin_admitted` in `routes/`): the call a checked body asks ([`Relay::pending`]) and
//! that call through the store, the per-key limit and the breaker ([`Relay::route_pending`]).

use polar_license::lease::{is_nonce, NONCE_HEADER};
use polar_license::proto::{Api, Operation, Server};
use polar_license::{Error, Key};
use polar_license_rules::CheckedBody;

use super::Relay;
use crate::flow::Moment;
use crate::pending::{breaker_refused, Pending, Routed};
use crate::route::Route;
use crate::types::{
    invalid, private, with_version, Call, RelayRequest, RelayResponse, FLIGHT_WAITS, USER_AGENT,
};

impl Relay {
    /// A request past its local checks, through the store (or, without one, the per-key limit
    /// and the breaker): the answer, the call, or the wait. The per-key limit is taken there
    /// when `per_key` (`false`: the route took it already, a usage report's).
    pub(crate) fn route_pending(
        &self,
        pending: Pending,
        at: Moment,
        waited: u32,
        per_key: bool,
    ) -> Routed {
        let Moment { now, entropy } = at;
        let may_wait = waited < FLIGHT_WAITS;
        let limited = per_key;
        match &self.store {
            Some(s) => {
                let per_key = |p: &Pending| {
                    if limited {
                        self.per_key_limit(p, now)
                    } else {
                        None
                    }
                };
                let around = crate::verdicts::Around {
                    leases: &self.leases,
                    breaker: &self.breaker,
                    per_key: &per_key,
                };
                s.routed(&around, pending, now, may_wait, entropy)
            }
            None => {
                if let Some(r) = limited.then(|| self.per_key_limit(&pending, now)).flatten() {
                    return Routed::Answer(r);
                }
                let mut pending = pending;
                match self.breaker.allow(now) {
                    Some(ticket) => {
                        pending.ticket = Some(ticket);
                        Routed::Ask(Box::new(pending))
                    }
                    None => Routed::Answer(breaker_refused(&pending)),
                }
            }
        }
    }

    /// The call a route's checked body asks (`op` of `checked`, made on `req`'s head: its
    /// client, its version, its nonce), held with its `route`; or the refusal of a call that
    /// cannot be made of it.
    pub(crate) fn pending(
        &self,
        op: Operation,
        checked: &CheckedBody,
        req: &RelayRequest,
        route: Route,
    ) -> Result<Pending, RelayResponse> {
        let client = crate::roster::client_group(&self.client_of(req));
        let key = Key::new(checked.key.clone());
        let call = match Call::of(op, checked) {
            Ok(call) => call,
            Err(e) => return Err(private(invalid(op, &key, &e))),
        };
        let request = match self
            .api_for(&checked.organization_id)
            .and_then(|api| call.request(&api))
        {
            Ok(request) => request,
            Err(e) => return Err(private(invalid(op, &key, &e))),
        };
        let request = with_version(request, req.header("polar-version"));
        Ok(Pending {
            op,
            key,
            checked: checked.clone(),
            call,
            request,
            stored: None,
            flight: None,
            ticket: None,
            client,
            early: false,
            nonce: req
                .header(NONCE_HEADER)
                .filter(|n| is_nonce(n))
                .map(str::to_string),
            route: Box::new(route),
            read: false,
        })
    }

    /// The per-IP limit's identity: the address in the configured proxy header's last entry
    /// (its port stripped), else the peer; a value that is no address is the peer's (the
    /// proxy's) own ([`crate::address::client_address`]).
    pub(crate) fn client_of(&self, req: &RelayRequest) -> String {
        let header = self
            .client_ip_header
            .as_deref()
            .and_then(|name| req.header(name));
        crate::address::client_address(header, self.host.peer(req))
    }

    /// An `Api` for the organization a request names (checked as a UUID v4 by Polar's checks
    /// already), on the token twins.
    fn api_for(&self, organization_id: &str) -> Result<Api, Error> {
        Ok(
            Api::new(organization_id, &Server::Custom(self.base_url.clone()))?
                .with_access_token(self.token.clone())?
                .with_user_agent(USER_AGENT),
        )
    }
}
