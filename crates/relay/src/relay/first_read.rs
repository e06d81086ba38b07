//! A grant's read of its customer's values before its lease is made (issue #80: a new
//! customer's entitlement values read "not known" after the first activation, until the
//! background had read them and the client checked again, up to an hour later). The exchange
//! asks for it between Polar's answer and the lease ([`crate::flow::Exchange`]); the reading
//! and what is kept of it are the cache's ([`crate::entitled::Entitled::first_read`]).

use polar_license::proto::Operation;

use super::Relay;
use crate::clock::Now;
use crate::flow::{FirstRead, Upstream};
use crate::pending::{get_like, Pending};

impl Relay {
    /// The first page's request of the read `pending`'s grant waits for, if any: only a
    /// license operation's 200 (a validate's or an activation's), and only as
    /// [`crate::entitled::Entitled::first_read`] allows.
    pub(super) fn first_read_of(
        &self,
        pending: &Pending,
        upstream: &Upstream,
        now: Now,
    ) -> Option<FirstRead> {
        if pending.read || !matches!(*pending.route, crate::route::Route::License(_)) {
            return None;
        }
        let answer = upstream.as_ref().ok().filter(|u| u.status == 200)?;
        let customer = customer_of(pending.op, &answer.body)?;
        let s = self.store.as_ref()?;
        let pages = s.entitled.first_read(
            &customer,
            pending.nonce.as_deref(),
            self.base_url(),
            || self.breaker.is_open(now),
            || s.take(now, crate::store::Use::Shared),
            now,
        )?;
        Some(FirstRead {
            request: get_like(&pending.request, pages.url().to_string()),
            pages,
        })
    }

    /// The next page's request of a first read, after Polar's `answer` to this one.
    pub(super) fn first_answered_of(
        &self,
        read: FirstRead,
        answer: Upstream,
        now: Now,
    ) -> Option<FirstRead> {
        let s = self.store.as_ref()?;
        let answer = answer
            .map(|r| {
                let retry_after = r
                    .headers
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case("retry-after"))
                    .and_then(|(_, v)| v.trim().parse().ok());
                (r.status, retry_after, r.body)
            })
            .map_err(|e| e.to_string());
        let FirstRead { request, pages } = read;
        let pages = s.entitled.first_answered(
            pages,
            answer,
            self.base_url(),
            || s.take(now, crate::store::Use::Shared),
            s.usage.ingestions(),
            now,
        )?;
        Some(FirstRead {
            request: get_like(&request, pages.url().to_string()),
            pages,
        })
    }
}

/// The customer of a grant's answer: a validate's `customer_id`, an activation's key's.
fn customer_of(op: Operation, body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let license = match op {
        Operation::Activate => v.get("license_key")?,
        _ => &v,
    };
    Some(license.get("customer_id")?.as_str()?.to_string())
}
