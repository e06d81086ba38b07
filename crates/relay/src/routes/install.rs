//! The install analytics ping's part (issue #80, [`crate::analytics`] holds the day's state and
//! the ingest): no key and no call of Polar's on the request's path; the ping is read, taken
//! (or dropped) and answered `202` at once, the same answer whether the seller turned
//! analytics on or not.

use super::{Begin, Door, Install, Part, Refused};
use crate::ids::OrgId;
use crate::pending::Routed;
use crate::types::{private, RelayRequest};

impl Install {
    /// The route's checks in the relay's order: the method (405), the body's size (413), the
    /// body (422 `InvalidAnalyticsRequest`), the organization (another's: the private 404).
    pub(super) fn parse(req: &RelayRequest, door: &Door<'_>) -> Result<Install, Refused> {
        let refused = super::refusal("analytics");
        let read = |body: &[u8]| crate::analytics::read_ping(body).map_err(private);
        let (organization_id, ping) = super::posted(req, door.max_body, &refused, read)?;
        let serves = OrgId::parse(&organization_id).is_some_and(|org| door.serves(&org));
        if !serves {
            return Err(refused(super::another_organization()));
        }
        Ok(Install { ping })
    }
}

impl Part for Install {
    // Nothing of the store (the default `wants`): the day's state is the relay's own, in memory.

    /// Taken (one event at most, bounded; the client's address's share counted) or dropped,
    /// and answered at once.
    fn begin(&self, b: &Begin<'_>) -> Routed {
        let relay = b.relay;
        relay
            .analytics
            .take(self.ping.clone(), &relay.client_of(b.req), b.at.now);
        let mut r = private(crate::analytics::accepted());
        r.set("access-control-allow-origin", "*");
        Routed::Answer(r)
    }
}
