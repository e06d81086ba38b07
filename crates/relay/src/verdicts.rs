//! The relay's verdict store at work ([`crate::store`] holds its data and its rules): what a
//! check routed with a store gets (an answer from the store, a wait for another check's call,
//! or a call within the token's budget), the answers made from an entry, Polar's webhooks, and
//! what Polar's answer leaves in the store.

use polar_license::lease::{key_hash, prepare, UnsignedLease, LEASE_HEADER};
use polar_license::proto::{HttpResponse, Operation};

use crate::breaker::Breaker;
use crate::clock::Now;
use crate::leases::Leases;
use crate::pending::{Pending, Routed};
use crate::scrub::{scrub, unscrub};
use crate::store::{self, Entry, Mark, Narrow, Use};
use crate::stored::{Seen, Stored};
use crate::types::Answered;
use crate::types::{
    add_cors, machine_of, private, sourced, Finished, RelayRequest, RelayResponse, SignWith,
    PASSED_HEADERS,
};

/// What a check routed with a store asks of the relay's other parts.
pub(crate) struct Around<'a> {
    /// Who signs the leases of stored answers, and for how long.
    pub(crate) leases: &'a Leases,
    /// The breaker in front of Polar.
    pub(crate) breaker: &'a Breaker,
    /// The per-key rate: the relay's 429 when the check's key is over it.
    pub(crate) per_key: &'a dyn Fn(&Pending) -> Option<RelayResponse>,
}

impl Stored {
    /// A check routed with a store: validates without an increment from the store when it
    /// may, else one call per entry within the budget; the rest always Polar's, from the
    /// reserve. Calls take the budget in its order ([`Use`]): a known customer's grant past
    /// its freshness first, then known keys' activations, then the rest, first-seen keys last.
    pub(crate) fn routed(
        &self,
        around: &Around<'_>,
        mut pending: Pending,
        now: Now,
        may_wait: bool,
        entropy: Option<[u8; 16]>,
    ) -> Routed {
        let cacheable =
            pending.op == Operation::Validate && pending.checked.increment_usage.unwrap_or(0) == 0;
        if !cacheable {
            // Activations, deactivations and increments are always Polar's: the reserve.
            if let Some(r) = (around.per_key)(&pending) {
                return Routed::Answer(r);
            }
            // A first-seen key: its share, and never the reserve (crate::roster).
            let first_seen = self.roster.first_seen(&pending.key);
            if first_seen {
                if let Err(secs) = self.first_seen_take(&pending.client, now) {
                    return Routed::Answer(first_seen_refused(&pending, secs));
                }
            }
            // The breaker: no call while it is open.
            let Some(ticket) = around.breaker.allow(now) else {
                return Routed::Answer(crate::pending::breaker_refused(&pending));
            };
            // A known key: the reserve past the shared part, its fair part and its client's
            // (crate::roster::Reserve).
            let taken = if first_seen {
                self.take(now, Use::FirstSeen).map_err(|secs| (secs, None))
            } else {
                self.take_reserved(now, &pending.key, &pending.client)
            };
            if let Err((secs, who)) = taken {
                around.breaker.abandon(Some(ticket), now);
                // The real reason: a seller reading "the budget is spent" while it is not
                // would look for the wrong fault.
                match who {
                    Some(who) => log::info!(
                        "relay: {} {} 429 ({} holds its fair share of the reserve; client {}, \
                         the budget is not spent)",
                        pending.op.as_str(),
                        crate::logged::key(&pending.key),
                        who.as_str(),
                        crate::logged::escaped(&pending.client)
                    ),
                    None => log::info!(
                        "relay: {} {} 429 (the token's budget is spent)",
                        pending.op.as_str(),
                        crate::logged::key(&pending.key)
                    ),
                }
                return Routed::Answer(budget_refused(secs));
            }
            pending.ticket = Some(ticket);
            return Routed::Ask(Box::new(pending));
        }
        // The API version asked shapes Polar's answer (2027-01's member, subscription, order).
        let version = pending
            .request
            .headers
            .iter()
            .find(|(name, _)| *name == "polar-version")
            .map(|(_, v)| v.as_str());
        let id = crate::store::checked_entry_id(&pending.checked, &key_hash(&pending.key), version);
        // A stored answer that could not be read is not known to be absent: a revocation a
        // webhook left may be there. No call and nothing written over it: 503, the client
        // asks again.
        let prior = match self.backend.get(&id) {
            Ok(prior) => prior,
            Err(e) => return Routed::Answer(store_unread(&pending, &e)),
        };
        if let Some(f) = self.stored_answer(
            around.leases,
            &pending,
            prior.as_ref(),
            now,
            Reply::Fresh,
            entropy,
        ) {
            return Routed::Stored(f);
        }
        // A grant still fresh but past its refresh point is asked again ahead of its end;
        // until Polar answers, and whenever it cannot be asked, it answers as fresh.
        let early = prior
            .as_ref()
            .is_some_and(|e| refreshes_early(e, now.unix_seconds, &self.options));
        let fallback = if early { Reply::Held } else { Reply::Stale };
        // Polar not asked (`why`): the stored answer (`stale`, or as fresh for an early
        // refresh), else `refused`; the flight led, landed.
        let not_asked = |pending: &Pending, leads: bool, why: &str, refused: RelayResponse| {
            if leads {
                self.land(&id);
            }
            match self.stored_answer(
                around.leases,
                pending,
                prior.as_ref(),
                now,
                fallback,
                entropy,
            ) {
                Some(f) => {
                    log::info!(
                        "relay: validate {}: Polar not asked ({why}); the stored answer given",
                        crate::logged::key(&pending.key)
                    );
                    Routed::Stored(f)
                }
                None => Routed::Answer(refused),
            }
        };
        // Polar is needed, unless the breaker is open: then the stored answer at once (no
        // wait for a call under way either), or the 502 of an unreachable Polar.
        if around.breaker.is_open(now) {
            let refused = crate::pending::breaker_refused(&pending);
            return not_asked(&pending, false, "the breaker is open", refused);
        }
        // One call per entry at once: an early refresh under way leaves the grant fresh.
        let leads = if may_wait {
            match self.lead(id, now.monotonic_ms) {
                Ok(()) => true,
                Err(_under_way) => {
                    if early {
                        if let Some(f) = self.stored_answer(
                            around.leases,
                            &pending,
                            prior.as_ref(),
                            now,
                            fallback,
                            entropy,
                        ) {
                            return Routed::Stored(f);
                        }
                    }
                    pending.stored = Some((id, prior));
                    return Routed::Wait(id, Box::new(pending));
                }
            }
        } else {
            false
        };
        // A first-seen key (no grant stored, not in the roster): its share (crate::roster).
        let granted = prior.as_ref().is_some_and(|e| e.grant);
        let first_seen = !granted && self.roster.first_seen(&pending.key);
        let what = if early {
            Use::Shared
        } else if granted {
            Use::Refresh
        } else if first_seen {
            Use::FirstSeen
        } else {
            Use::Shared
        };
        // The key's rate counts only calls the budget has room for: a known key checked more
        // often than its rate while its refresh waits for room would otherwise find its rate
        // spent when the room comes (a key over its rate gets its stored answer, `stale`, as
        // past the budget: it costs Polar nothing).
        if self.budget(now).has_room(now.monotonic_ms, what) {
            if let Some(r) = (around.per_key)(&pending) {
                return not_asked(&pending, leads, "the key is over its rate", r);
            }
        }
        if first_seen {
            if let Err(secs) = self.first_seen_take(&pending.client, now) {
                let refused = first_seen_refused(&pending, secs);
                return not_asked(&pending, leads, "first-seen, past its share", refused);
            }
        }
        let Some(ticket) = around.breaker.allow(now) else {
            let refused = crate::pending::breaker_refused(&pending);
            return not_asked(&pending, leads, "the breaker is open", refused);
        };
        if let Err(secs) = self.take(now, what) {
            around.breaker.abandon(Some(ticket), now);
            if !early && prior.is_none() {
                log::info!(
                    "relay: validate {} 429 (the token's budget is spent, nothing stored)",
                    crate::logged::key(&pending.key)
                );
            }
            let why = match what {
                Use::Refresh => "no room for a refresh in the budget",
                Use::Shared if early => "no room for an early refresh in the budget",
                _ => "the budget is spent",
            };
            return not_asked(&pending, leads, why, budget_refused(secs));
        }
        pending.stored = Some((id, prior));
        pending.flight = leads.then_some(id);
        pending.ticket = Some(ticket);
        pending.early = early;
        Routed::Ask(Box::new(pending))
    }

    /// An answer from a stored entry: fresh ([`Reply::Fresh`]: a grant younger than
    /// `fresh_for` and not yet at its refresh point, a denial younger than `denial_for`, a
    /// revocation a webhook told of; [`Reply::Held`]: a grant past its refresh point too), or,
    /// when Polar cannot be asked ([`Reply::Stale`]), a grant younger than `stale_for` or a
    /// revocation. A grant's lease is verified as of when Polar answered.
    pub(crate) fn stored_answer(
        &self,
        leases: &Leases,
        pending: &Pending,
        entry: Option<&Entry>,
        now: Now,
        reply: Reply,
        entropy: Option<[u8; 16]>,
    ) -> Option<Finished> {
        let stale = reply == Reply::Stale;
        let e = entry?;
        let age = now.unix_seconds.saturating_sub(e.answered_at);
        // An answer dated after now (stored while the clock was ahead) is neither fresh nor
        // stale: its age is unknown. A revocation still refuses.
        if age < 0 && e.mark != Mark::Revoked {
            return None;
        }
        // Polar's answer was given for the conditions its request sent (with an activation,
        // Polar compares them with the activation's): another request's conditions are
        // Polar's to judge. A revocation refuses whatever they are.
        if e.mark != Mark::Revoked
            && e.conditions != crate::store::checked_conditions(&pending.checked)
        {
            return None;
        }
        let o = &self.options;
        let source = if stale { "stale" } else { "store" };
        // A stored denial as answered: its source, CORS, and the lease that signs it with why
        // the key stopped.
        let denied = |r: RelayResponse| {
            let mut r = sourced(r, source);
            add_cors(&mut r);
            let stop = self.lifecycle.explain(
                self.backend.as_ref(),
                &pending.checked.organization_id,
                &pending.key,
            );
            signed_denial(leases, pending, r, now, entropy, stop)
        };
        match e.mark {
            Mark::Revoked => {
                // Counted from when the relay marked it (its clock), not the event's own time:
                // a late delivery refuses as long as a prompt one.
                // A newer event made it a re-check: Polar is asked (it refuses only while
                // Polar cannot be).
                if stale || store::refuses_without_call(e, now.unix_seconds, o.denial_for) {
                    log::info!(
                        "relay: validate {} 404 ({source}: revoked by a webhook)",
                        crate::logged::key(&pending.key)
                    );
                    let r = RelayResponse::error(
                        404,
                        "ResourceNotFound",
                        "License key is no longer active.",
                    );
                    return Some(denied(private(r)));
                }
                None
            }
            Mark::Stale if !stale => None,
            // A marked answer stands in for Polar a shorter while: what changed is Polar's to
            // say.
            Mark::Stale
                if now.unix_seconds.saturating_sub(e.marked_at)
                    >= i64::try_from(o.marked_stale_for).unwrap_or(i64::MAX) =>
            {
                None
            }
            _ if !e.grant => {
                // A denial is Polar's answer too: fresh for `denial_for`, and kept (it only
                // refuses) as long as a grant would be while Polar cannot be asked.
                let window = if stale { o.stale_for } else { o.denial_for };
                if age >= i64::try_from(window).unwrap_or(i64::MAX) {
                    return None;
                }
                let r = aged(replayed(e, &pending.checked.key)?, age);
                log::info!(
                    "relay: validate {} {} ({source}: a denial)",
                    crate::logged::key(&pending.key),
                    e.status
                );
                Some(denied(r))
            }
            _ => {
                let window = if stale { o.stale_for } else { o.fresh_for };
                let window = i64::try_from(window).unwrap_or(i64::MAX);
                if age >= window {
                    return None;
                }
                // Refresh ahead: past its own refresh point, a grant is asked again (with
                // room in the budget's shared part; meanwhile it answers, `Reply::Held`).
                if reply == Reply::Fresh && refreshes_early(e, now.unix_seconds, o) {
                    return None;
                }
                let r = replayed(e, &pending.checked.key)?;
                let upstream = HttpResponse {
                    status: r.status,
                    headers: r.headers.clone(),
                    body: r.body.clone(),
                };
                let (claims, holder) = leases
                    .grant(
                        pending.op,
                        &pending.checked,
                        &pending.call,
                        &upstream,
                        now,
                        e.answered_at,
                        entropy,
                    )
                    .ok()?;
                #[cfg_attr(not(feature = "entitlements"), allow(unused_mut))]
                let mut claims = pending.claims(claims);
                #[cfg(feature = "entitlements")]
                self.entitled.sign_in(
                    &mut claims,
                    &holder,
                    pending.nonce.as_deref(),
                    now,
                    &self.options,
                );
                #[cfg(not(feature = "entitlements"))]
                let _ = holder;
                if claims.expires_at <= now.unix_seconds {
                    return None;
                }
                let machine = machine_of(&pending.checked);
                log::info!(
                    "relay: validate {} 200 ({source}: Polar's answer of {age} s ago, lease until {})",
                    crate::logged::key(&pending.key),
                    crate::logged::instant(claims.expires_at)
                );
                let mut r = aged(sourced(r, source), age);
                add_cors(&mut r);
                match &leases.signer {
                    SignWith::Key(key) => {
                        let token = key.sign(&claims, machine.as_deref()).ok()?;
                        r.set(LEASE_HEADER, &token);
                        Some(Finished {
                            response: r,
                            unsigned: None,
                        })
                    }
                    SignWith::External { kid, .. } => {
                        let unsigned = prepare(&claims, kid, machine.as_deref()).ok()?;
                        Some(Finished {
                            response: r,
                            unsigned: Some((unsigned, machine)),
                        })
                    }
                }
            }
        }
    }

    /// `POST /v1/webhooks/polar`: verified before anything is read, a repeated id done, an
    /// event narrowing only (see [`store::narrowing`]).
    pub(crate) fn webhook(
        &self,
        req: &RelayRequest,
        client: &str,
        max_body_bytes: usize,
        now: Now,
    ) -> RelayResponse {
        if req.method != "POST" {
            let mut r = RelayResponse::detail(405, "Method Not Allowed");
            r.set("allow", "POST");
            return r;
        }
        let max = crate::types::WEBHOOK_MAX_BODY_BYTES.max(max_body_bytes);
        if req.body.len() > max {
            log::warn!("relay: a webhook refused (body over {max} bytes): nothing changed");
            return RelayResponse::error(
                413,
                "RequestBodyTooLarge",
                &format!("Request body exceeded the maximum allowed size of {max} bytes."),
            );
        }
        // Verified once per request (a look by `store_wants` before is read, not redone), an
        // address over its failures refused before any HMAC (crate::deliveries).
        let secret = self.webhook_secret.as_deref().unwrap_or_default();
        let client = crate::roster::client_group(client);
        if let Err(r) = self
            .deliveries
            .verify(secret, &client, req, now.unix_seconds, false)
        {
            return r;
        }
        let id = req.header("webhook-id").unwrap_or_default();
        let Ok(event) = serde_json::from_slice::<serde_json::Value>(&req.body) else {
            return RelayResponse::detail(400, "the webhook's body is not JSON");
        };
        let kind = event
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or("?")
            .to_string();
        // What the event changes of why a key stopped, kept in the store (crate::lifecycle).
        let affected = self.lifecycle.affected(&event);
        self.lifecycle.on_event(&event);
        self.lifecycle
            .keep(self.backend.as_ref(), &affected, now.unix_seconds);
        // Read, narrowed and written in one step of the store's: two deliveries at once (a
        // retry after Polar's timeout and the next event), or an answer kept meanwhile, each
        // narrow what the other wrote, never a copy read before it.
        let n = store::narrowing(&event);
        let tags = n.as_ref().map(|n| n.tags.clone()).unwrap_or_default();
        if let Some(n) = n.as_ref().filter(|n| n.mark == Mark::Revoked) {
            // Noted before it is written: a read by id under way does not lift it.
            for l in n.tags.iter().filter_map(|t| t.strip_prefix("l:")) {
                self.note_revoked(l, now);
            }
        }
        // A rotation (§15): the old string's grants, answered before it, are retired: stale
        // with their stand-in window over (marked at 0), never given while Polar cannot be
        // asked.
        let rotated = store::rotation(&event);
        let narrowed = self.backend.narrow(
            Narrow::delivery(id, now.unix_seconds, &tags),
            &mut |entry| {
                let n = n.as_ref()?;
                let mut e = store::narrowed(entry, n)?;
                if e.marked_at != store::RECHECK_MARKED_AT {
                    e.marked_at = now.unix_seconds;
                }
                if rotated && e.mark == Mark::Stale && entry.answered_at <= n.at {
                    e.marked_at = 0;
                }
                Some(e)
            },
        );
        // A grant event's key refetched by id (crate::roster), once what it narrowed is
        // written: Polar's answer then ends a revocation the key's re-grant made obsolete.
        crate::roster::on_event(&self.roster, &event, now.monotonic_ms);
        #[cfg(feature = "entitlements")]
        self.entitled.on_event(&event);
        match narrowed {
            Ok(Some(count)) => {
                log::info!(
                    "relay: webhook {}: {count} entries narrowed",
                    crate::logged::escaped(&kind)
                );
                RelayResponse::json(200, "{\"ok\":true}")
            }
            Ok(None) => {
                log::info!(
                    "relay: webhook {}: a repeat, already done",
                    crate::logged::escaped(&kind)
                );
                RelayResponse::json(200, "{\"ok\":true}")
            }
            Err(e) => {
                log::error!("relay: {e}: the webhook is refused, Polar retries it");
                RelayResponse::detail(500, "the store failed")
            }
        }
    }

    /// What Polar's answer leaves in the store: its 429 learned, a grant or a denial kept, or,
    /// when Polar could not answer, the stored answer given instead; the entry's flight landed.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn keep(
        &self,
        leases: &Leases,
        pending: &Pending,
        seen: Seen,
        now: Now,
        entropy: Option<[u8; 16]>,
        response: &mut RelayResponse,
        unsigned: &mut Option<(UnsignedLease, Option<String>)>,
    ) {
        let seen = seen.0;
        if seen.as_ref().is_some_and(|a| a.status == 200) {
            // Polar granted it: the organization's key (crate::roster).
            self.roster.learn(&pending.key, now.monotonic_ms);
        }
        self.lifecycle.learn_from(pending, seen.as_ref());
        // A known key Polar keeps refusing leaves the known set (crate::roster, issue #62).
        if let Some(a) = &seen {
            if self.roster.answered(&pending.key, a.status) {
                log::info!(
                    "relay: {} {} {}: Polar refused the key {} times in a row; it left the \
                     roster (its calls get the first-seen share until Polar grants it again)",
                    pending.op.as_str(),
                    crate::logged::key(&pending.key),
                    a.status,
                    crate::roster::REFUSALS_TO_FORGET
                );
            }
        }
        // An ordinary activation or deactivation Polar made is counted in the key's seats and
        // churn by the relay (`Relay::finish_made`: the churn limit is the seat options').
        if let Some(a) = seen.as_ref().filter(|a| a.status == 429) {
            let mut budget = self.budget(now);
            budget.learn(now.monotonic_ms, a.retry_after);
            self.backend
                .stage_budget(budget.state(now.unix_seconds, now.monotonic_ms));
        }
        if let Some((id, prior)) = &pending.stored {
            let polar_failed = match &seen {
                None => true,
                Some(a) => a.status == 429 || a.status >= 500,
            };
            if polar_failed {
                // The entry as it is now, not as it was before the call: a revocation
                // acknowledged while Polar was being asked is answered, never the grant read
                // before it.
                let current = self.current(id, "Polar's failure is passed on");
                // An early refresh's grant is still fresh.
                let reply = pending.standing_in();
                let stale =
                    self.stored_answer(leases, pending, current.as_ref(), now, reply, entropy);
                if let Some(f) = stale {
                    *response = f.response;
                    *unsigned = f.unsigned;
                }
            } else if let Some(a) = &seen {
                // A grant: its lease signed here, or waiting for an external signature.
                let grant = a.status == 200 && (response.lease().is_some() || unsigned.is_some());
                // The key and the emails never reach the store (the key goes back in its
                // place when the answer is replayed).
                let kept = (grant || a.denial)
                    .then(|| scrub(&response.body, &pending.checked.key))
                    .flatten()
                    .filter(|k| !grant || k.key_at.is_some());
                if (grant || a.denial) && kept.is_none() {
                    log::warn!(
                        "relay: validate {} {}: passed on, not stored (the key is in it beyond \
                         its key member)",
                        crate::logged::key(&pending.key),
                        a.status
                    );
                }
                if let Some(kept) = kept {
                    let headers = PASSED_HEADERS
                        .iter()
                        .filter_map(|n| response.header(n).map(|v| (n.to_string(), v.to_string())))
                        .collect();
                    let answer = Entry {
                        license_key_id: a.license_key_id.clone(),
                        customer_id: a.customer_id.clone(),
                        answered_at: now.unix_seconds,
                        status: a.status,
                        body: kept.body,
                        headers,
                        grant,
                        key_at: kept.key_at,
                        key_tag: Some(store::key_tag(
                            &pending.checked.organization_id,
                            &key_hash(&pending.key),
                        )),
                        conditions: crate::store::checked_conditions(&pending.checked),
                        ..Entry::default()
                    };
                    // An entry past the store's size limit is answered and not stored: a
                    // storage that refuses it (a Durable Object's, 128 KiB a value) would
                    // otherwise refuse it again with every save after it.
                    let size = store::entry_size(&answer);
                    let fits = size <= store::MAX_ENTRY_BYTES;
                    if !fits {
                        log::warn!(
                            "relay: validate {} {}: passed on, not stored ({size} bytes, past \
                             the store's limit of {} bytes an entry)",
                            pending.key.redacted(),
                            a.status,
                            store::MAX_ENTRY_BYTES
                        );
                    }
                    // Read and written in one step of the store's (a webhook acknowledged
                    // between a read and a write of its own would be overwritten). The newest
                    // events applied stay (an older one, late, changes nothing, or is only a
                    // re-check); a webhook applied while Polar was being asked keeps its mark
                    // (Polar may have answered before the change).
                    let written = fits.then(|| {
                        self.backend.update(id, &mut |current| {
                            let mut entry = answer.clone();
                            if let Some(current) = current {
                                // Polar's denial names no key or customer (its 404 says
                                // neither): it keeps the ids the key's entry is indexed by,
                                // so that the key's later webhooks (a resume's, a re-grant's)
                                // and the roster's lift still reach it (issue #68: a
                                // revocation carried onto a denial that named nothing refused
                                // for the whole `denial_for`, out of every webhook's reach).
                                if entry.license_key_id.is_none() {
                                    entry.license_key_id = current.license_key_id.clone();
                                }
                                if entry.customer_id.is_none() {
                                    entry.customer_id = current.customer_id.clone();
                                }
                                entry.customer_event_at = current.customer_event_at;
                                entry.key_event_at = current.key_event_at;
                                let seen = |e: &Entry| {
                                    (e.mark, e.customer_event_at, e.key_event_at, e.marked_at)
                                };
                                let changed = prior.as_ref().map(seen) != Some(seen(current));
                                if changed && current.mark != Mark::None {
                                    entry.mark = current.mark;
                                    entry.marked_at = current.marked_at;
                                }
                            }
                            Some(entry)
                        })
                    });
                    match written {
                        None => {}
                        Some(Err(e)) => {
                            log::error!("relay: {e}: the answer is passed on, not stored");
                        }
                        // Polar's grant: its key checked now (crate::reconcile).
                        Some(Ok(_)) if grant => {
                            if let Some(l) = &a.license_key_id {
                                self.reconcile.saw(l, now.unix_seconds);
                            }
                        }
                        Some(Ok(_)) => {}
                    }
                }
            }
        }
        if pending.stored.is_none() {
            if let Some(a) = &seen {
                self.narrow_own(pending, a, now);
            }
        }
        // The budget's state, when no write above carried it (a call whose answer is not
        // kept: an activation, a 429, a 5xx): written before the answer leaves.
        if let Err(e) = self.backend.flush_budget() {
            log::error!("relay: {e}: the token budget's state is written with the next change");
        }
        if let Some(id) = &pending.flight {
            self.land(id);
        }
    }
}

impl Stored {
    /// A change made through the relay narrows what it touched, as a webhook would: after a
    /// deactivation Polar accepted, or a validate that incremented the usage, the key's
    /// stored answers are marked stale (the next check asks Polar; while Polar cannot be
    /// asked they answer for at most [`crate::store::StoreOptions::marked_stale_for`]).
    fn narrow_own(&self, pending: &Pending, a: &Answered, now: Now) {
        let changed = match pending.op {
            Operation::Deactivate => (200..300).contains(&a.status),
            Operation::Validate => {
                a.status == 200 && pending.checked.increment_usage.unwrap_or(0) > 0
            }
            _ => false,
        };
        if !changed {
            return;
        }
        let tag = store::key_tag(&pending.checked.organization_id, &key_hash(&pending.key));
        let marked = self.backend.narrow(Narrow::own(&[tag]), &mut |e| {
            (e.mark == Mark::None).then(|| Entry {
                mark: Mark::Stale,
                marked_at: now.unix_seconds,
                ..e.clone()
            })
        });
        match marked {
            Ok(n) => log::info!(
                "relay: {} {}: {} stored answers of the key marked stale",
                pending.op.as_str(),
                crate::logged::key(&pending.key),
                n.unwrap_or(0)
            ),
            Err(e) => log::error!(
                "relay: {e}: the key's stored answers are not marked stale (they are asked \
                 again when their freshness ends)"
            ),
        }
    }
}

/// How a stored answer may be given ([`Stored::stored_answer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    /// As fresh, unless a grant is due to be asked again ahead of its end
    /// ([`refreshes_early`]).
    Fresh,
    /// As fresh, a grant past its refresh point included (while it is asked again, or when it
    /// cannot be).
    Held,
    /// Polar cannot be asked: within the stale window (`stale`).
    Stale,
}

/// The part of `--fresh-for` at its end in which each grant has its refresh point: a
/// quarter.
const EARLY_PART: i64 = 4;

/// The age (seconds) at which the grant `e` is asked again ahead of the end of its
/// freshness (`fresh_for`): a whole second in the last quarter of it (none when that quarter is
/// under a second), its own for each key and each
/// of Polar's answers, so that grants stored together (a warm-up, the refreshes after an
/// outage) are not due together again and again.
pub(crate) fn refresh_point(e: &Entry, fresh_for: i64) -> i64 {
    let part = fresh_for / EARLY_PART;
    let spread = match u64::try_from(part) {
        Ok(spread) if spread > 0 => spread,
        _ => return fresh_for,
    };
    // FNV-1a of the key's tag and the answer's time.
    let tag = e.key_tag.as_deref().unwrap_or_default().bytes();
    let h = tag
        .chain(e.answered_at.to_le_bytes())
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    fresh_for - 1 - i64::try_from(h % spread).unwrap_or(0)
}

/// Whether the stored grant `e` is fresh at `now` (unix seconds) but past its refresh point
/// ([`refresh_point`]): asked again when the budget's shared part has room.
pub(crate) fn refreshes_early(e: &Entry, now: i64, o: &store::StoreOptions) -> bool {
    if !e.grant || e.mark != Mark::None {
        return false;
    }
    let fresh_for = i64::try_from(o.fresh_for).unwrap_or(i64::MAX);
    let age = now.saturating_sub(e.answered_at);
    (0..fresh_for).contains(&age) && age >= refresh_point(e, fresh_for)
}

/// A denial answered from the store (a webhook's revocation, Polar's stored denial), with the
/// signed denial of issue #62 when the request asks for signed facts (its nonce's mark): in
/// signed mode only signed facts decide, and the store's denials are the relay's facts as much
/// as Polar's answer passed on. Signed here, or left to the host's signer; without one when it
/// cannot be signed (the client then widens nothing on it).
fn signed_denial(
    leases: &Leases,
    pending: &Pending,
    mut r: RelayResponse,
    now: Now,
    entropy: Option<[u8; 16]>,
    stop: Option<polar_license::stopped::Stopped>,
) -> Finished {
    let unsigned = |response| Finished {
        response,
        unsigned: None,
    };
    crate::lifecycle::tell(&mut r, stop);
    let upstream = HttpResponse {
        status: r.status,
        headers: r.headers.clone(),
        body: r.body.clone(),
    };
    let Some(denial) = leases.denial(
        &pending.checked,
        &pending.call,
        &upstream,
        now,
        pending.nonce.as_deref(),
        entropy,
    ) else {
        return unsigned(r);
    };
    let denial = crate::lifecycle::with_stop(denial, stop);
    let (response, unsigned) = leases.sign_denial(pending, r, &denial, true);
    Finished { response, unsigned }
}

/// A check whose stored answer could not be read (the store failed, or a host that reads
/// the store per request could not read it): 503 with `retry-after: 1`, the relay's own,
/// never an answer made as if nothing were stored.
fn store_unread(pending: &Pending, e: &store::StoreError) -> RelayResponse {
    log::error!(
        "relay: {} {} 503 ({e}: the stored answer could not be read)",
        pending.op.as_str(),
        pending.key.redacted()
    );
    let mut r = RelayResponse::detail(503, "the store could not be read");
    r.set("retry-after", "1");
    sourced(r, crate::types::RELAY_SOURCE)
}

fn budget_refused(secs: u64) -> RelayResponse {
    RelayResponse::rate_limited(secs)
}

/// A first-seen key past its share: 429 with `Retry-After`, never a denial Polar did not give.
fn first_seen_refused(pending: &Pending, secs: u64) -> RelayResponse {
    log::info!(
        "relay: {} {} 429 (a first-seen key: client {} used its share)",
        pending.op.as_str(),
        crate::logged::key(&pending.key),
        crate::logged::escaped(&pending.client)
    );
    RelayResponse::rate_limited(secs)
}

/// Polar's stored answer, as it was sent to the client asking with `key`: its status, the
/// headers passed back, its body with the key back in its place. `None` for a grant stored
/// without the key's place (an older store's, which held the key): it is asked again.
fn replayed(e: &Entry, key: &str) -> Option<RelayResponse> {
    if e.grant && e.key_at.is_none() {
        return None;
    }
    Some(RelayResponse {
        status: e.status,
        headers: e.headers.clone(),
        body: unscrub(&e.body, e.key_at, key)?,
    })
}

/// A stored answer with its `Age`: how many seconds ago Polar gave it (RFC 9111 §5.1). A
/// client dates the verdict from then, so a replayed grant never restarts its grace.
fn aged(mut r: RelayResponse, age: i64) -> RelayResponse {
    r.set("age", &age.max(0).to_string());
    r
}
