//! Polar's webhook deliveries' part (a store with a webhook secret): the delivery verified
//! before its body is read as JSON (an HMAC over the bytes, its failures counted per address:
//! [`crate::deliveries`]), so its body is read after the route, by the store
//! ([`crate::stored::Stored::webhook`]), not at the parse.

use super::{Begin, Part, Webhook};
use crate::pending::Routed;
use crate::relay::Relay;
use crate::store::{self, Wants};
use crate::types::{RelayRequest, RelayResponse};

impl Part for Webhook {
    /// The rows of the key id or customer the event names, and their entries (`None` when its
    /// signature does not verify at `now_unix`: it reads nothing). Its outcome is kept for
    /// the begin that follows (verified once per request).
    fn wants(&self, relay: &Relay, req: &RelayRequest, now_unix: i64) -> Option<Wants> {
        let s = relay.store.as_ref()?;
        let client = crate::roster::client_group(&relay.client_of(req));
        s.deliveries
            .verify(s.webhook_secret.as_deref()?, &client, req, now_unix, true)
            .ok()?;
        let event = serde_json::from_slice::<serde_json::Value>(&req.body).ok()?;
        let tags = store::narrowing(&event)?.tags;
        // What explains the key strings it changes (crate::lifecycle), read with the entries
        // its rows name (the same storage call). An event that narrows nothing (a pause, told
        // by the `subscription.updated` beside it too) reads nothing, as before: its change is
        // kept in memory, and in the store at the key's next narrowing event.
        let later = s
            .lifecycle
            .affected(&event)
            .iter()
            .map(|(org, digest)| crate::lifecycle::stored_id(org, digest))
            .collect();
        Some(Wants {
            entries: Vec::new(),
            tags,
            all: true,
            later,
        })
    }

    fn begin(&self, b: &Begin<'_>) -> Routed {
        let relay = b.relay;
        match relay.store.as_ref().filter(|s| s.webhook_secret.is_some()) {
            Some(s) => {
                let client = relay.client_of(b.req);
                let max = relay.limits.max_body_bytes;
                Routed::Answer(s.webhook(b.req, &client, max, b.at.now))
            }
            None => Routed::Answer(RelayResponse::detail(404, "Not Found")),
        }
    }
}
