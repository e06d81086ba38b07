//! What a request touches in the verdict store, computed before it is answered: a host whose
//! store is read per key ([`store::PagedBackend`], the npm package's relay over a Durable
//! Object's storage) loads that much, then the core answers.

use polar_license::lease::key_hash;
use polar_license_rules::check_body;

use crate::store::{self, Wants};
use crate::stored::Stored;
use crate::types::{RelayRequest, ROUTE_PREFIX, WEBHOOK_ROUTE};

/// What `req` reads or narrows in the store: a validate its entry and its key's index row
/// (with every entry of it after an increment, which narrows them); a deactivation its
/// key's row and entries; a webhook the rows of the key id or customer it names, and their
/// entries. `None` without a store, or for a request that touches nothing stored (an
/// activation, a request refused before the store, a webhook whose signature does not
/// verify at `now_unix` seconds: it reads nothing); an activation its key's seat pool, a
/// deactivation that pool too, read with its key's entries. Nothing is spent here: the request is
/// answered by the request machine's next steps as before.
/// (`client`: the request's client, asked only for a webhook.)
pub(crate) fn store_wants(
    s: &Stored,
    client: impl FnOnce() -> String,
    req: &RelayRequest,
    now_unix: i64,
) -> Option<Wants> {
    let path = req.path.split('?').next().unwrap_or_default();
    if crate::seats::route(path).is_some() {
        return crate::seats::wants(req);
    }
    if crate::devices::is_route(path) {
        // A device listing reads its key's verdict as a validate does.
        let ask = crate::devices::read_ask(&req.body).ok()?;
        let validate = req.validate_of(&ask.key, &ask.organization_id);
        return store_wants(s, client, &validate, now_unix);
    }
    if crate::usage::is_route(path) {
        // A usage report reads its key's verdict as a validate does, and its key's buffer
        // with it (the same storage call).
        let ask = crate::usage::read_ask(&req.body).ok()?;
        let validate = req.validate_of(&ask.key, &ask.organization_id);
        let mut wants = store_wants(s, client, &validate, now_unix)?;
        if s.usage.on() {
            wants.entries.push(crate::usage::buffer_of_ask(&ask));
        }
        return Some(wants);
    }
    if path == WEBHOOK_ROUTE {
        // Its outcome kept for the begin that follows (verified once per request).
        let client = crate::roster::client_group(&client());
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
        return Some(Wants {
            entries: Vec::new(),
            tags,
            all: true,
            later,
        });
    }
    let op = path.strip_prefix(ROUTE_PREFIX)?;
    if op != "validate" && op != "deactivate" && op != "activate" {
        return None;
    }
    let checked = check_body(op, req.header("content-type"), &req.body)?.ok()?;
    let key = key_hash(&polar_license::Key::new(checked.key.clone()));
    // The key's seat pool (issue #67): an activation is checked against the seats held and
    // counted in them, a deactivation counted, both in its churn (a deactivation's read with
    // the key's entries, or alone once its row names none).
    let pool = crate::seats::pool_id(&crate::types::OrgId::checked(&checked), &key);
    // Why the key stopped, kept by the webhooks (crate::lifecycle): read with the request's
    // own entries, for its denial's detail after a restart.
    let stopped = crate::lifecycle::stored_id(&checked.organization_id, &key);
    if op == "activate" {
        return Some(Wants {
            entries: vec![pool, stopped],
            tags: Vec::new(),
            all: false,
            later: Vec::new(),
        });
    }
    let tags = vec![store::key_tag(&checked.organization_id, &key)];
    if op == "deactivate" {
        return Some(Wants {
            entries: Vec::new(),
            tags,
            all: true,
            later: vec![pool],
        });
    }
    let id = store::checked_entry_id(
        &checked,
        &key,
        crate::types::passed_version(req.header("polar-version")),
    );
    Some(Wants {
        entries: vec![id, stopped],
        tags,
        all: checked.increment_usage.unwrap_or(0) > 0,
        later: Vec::new(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::flow::Asks;
    use crate::relay::Relay;
    use crate::store::{EntryId, Keeper, MemoryBackend, StoreOptions};
    use crate::types::RelayConfig;
    use std::sync::{Arc, Mutex};

    /// A store in memory that records the entries the relay reads.
    #[derive(Default)]
    struct Recording {
        memory: MemoryBackend,
        read: Mutex<Vec<EntryId>>,
    }

    impl Keeper for Recording {
        fn memory(&self) -> &MemoryBackend {
            &self.memory
        }
        fn read(&self, id: &EntryId) {
            self.read.lock().unwrap().push(*id);
        }
    }

    #[test]
    fn what_a_validate_wants_is_the_entry_the_relay_reads() {
        let backend = Arc::new(Recording::default());
        let config = RelayConfig::stored_for_tests(backend.clone(), StoreOptions::default());
        let relay = Relay::never_calling(config);
        let org = "d2fcbff8-108b-411e-bf2b-6383e0a8802d";
        let bodies = [
            format!(r#"{{"key":"K-1","organization_id":"{org}"}}"#),
            format!(r#"{{"key":"K-1","organization_id":"{org}","conditions":{{"a":1}}}}"#),
            format!(
                r#"{{"key":"K-1","organization_id":"{org}","activation_id":"6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b","conditions":{{"a":1}}}}"#
            ),
        ];
        let mut ids = Vec::new();
        for (i, body) in bodies.iter().enumerate() {
            for version in [None, Some(" 2026-10 "), Some("not a version, far too long")] {
                let mut headers = vec![("Content-Type".into(), "application/json".into())];
                if let Some(v) = version {
                    headers.push(("Polar-Version".into(), v.to_string()));
                }
                let req = RelayRequest {
                    method: "POST".into(),
                    path: format!("{ROUTE_PREFIX}validate"),
                    headers,
                    body: body.as_bytes().to_vec(),
                    client_ip: format!("192.0.2.{i}"),
                };
                let wants = Asks::store_wants(&relay, &req, 0)
                    .unwrap_or_else(|| panic!("no wants for {body} {version:?}"));
                backend.read.lock().unwrap().clear();
                let now = crate::clock::at(0);
                let _ = relay.begin_admitted(&req, now, None, 0);
                // The verdict read; what explains a denial (crate::lifecycle) loaded beside it,
                // read only for a denial.
                assert_eq!(
                    *backend.read.lock().unwrap(),
                    wants.entries[..1],
                    "{body} {version:?}"
                );
                assert_eq!(
                    wants.entries[1..],
                    [crate::lifecycle::stored_id(
                        org,
                        &polar_license::lease::key_hash(&polar_license::Key::new("K-1"))
                    )]
                );
                ids.push(wants.entries[0]);
            }
        }
        // Conditions without an activation are no part of the id; with one they are.
        assert_eq!(ids[0], ids[3]);
        assert_ne!(ids[0], ids[6]);
        assert_ne!(ids[0], ids[1], "the version asked is part of the id");
    }
}
