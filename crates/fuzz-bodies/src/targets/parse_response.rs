//! `proto::parse_validate`, `parse_activate` and `parse_deactivate` on an arbitrary status,
//! headers and body: never a panic, and every answer is classified the way the reason
//! table of docs/interfaces.md §1 says (a denial only for 400/403/404, 429 is rate_limited with the
//! header's retry-after, 5xx is server_error, success only for 200, or 204 for deactivate). An
//! accepted body must also survive the JSON round trip the offline cache puts it through.

use crate::{assert_json_roundtrip, Op, ResponseInput};
use polar_license::{grace, proto, Error, HttpResponse, Reason, ReasonClass, Verdict};

fn check<T>(op: Op, resp: &HttpResponse, result: &Result<Verdict<T>, Error>) {
    let status = resp.status;
    match result {
        Ok(Verdict::Accepted(_)) => {
            let want = if op == Op::Deactivate { 204 } else { 200 };
            assert_eq!(status, want, "{op:?} accepted a {status}");
        }
        Ok(Verdict::Denied(d)) => {
            assert_eq!(d.reason.class(), ReasonClass::Denied, "{d:?}");
            assert_eq!(d.status, status);
            assert!(
                matches!(status, 400 | 403 | 404),
                "denial from a {status}: {d:?}"
            );
            if status == 400 {
                assert_eq!(op, Op::Validate);
                assert_eq!(d.reason, Reason::UsageExhausted);
            }
            assert_eq!(
                d.reason == Reason::UsageExhausted,
                d.remaining_usages.is_some(),
                "{d:?}"
            );
            let _ = d.to_string();
        }
        Err(e) => {
            assert_ne!(e.reason().class(), ReasonClass::Denied, "{e:?}");
            match status {
                429 => assert_eq!(
                    *e,
                    Error::RateLimited {
                        retry_after: proto::retry_after(resp)
                    }
                ),
                500..=599 => assert!(
                    matches!(e, Error::ServerError { status: s, .. } if *s == status),
                    "{e:?}"
                ),
                422 => assert!(
                    matches!(e.reason(), Reason::InvalidInput | Reason::ProtocolError),
                    "{e:?}"
                ),
                // No answer at all, as fetch sees it: a proxy's 407, no final status.
                407 | 0..=199 | 600.. => assert_eq!(e.reason(), Reason::Offline, "{status}: {e:?}"),
                _ => assert_eq!(e.reason(), Reason::ProtocolError, "{status}: {e:?}"),
            }
            let _ = (e.to_string(), e.detail());
        }
    }
}

/// The target on one input, as libFuzzer gives it: the bytes read as [`ResponseInput`] the way
/// `fuzz_target!` reads a typed input (a panic is a finding).
pub fn run(data: &[u8]) {
    if let Some(input) = crate::decode::<ResponseInput>(data) {
        fuzz_one(input);
    }
}

/// The target on one decoded input.
fn fuzz_one(input: ResponseInput) {
    let resp = &input.response;
    let _ = proto::retry_after(resp);
    if let Some(date) = resp.header("date") {
        let _ = grace::http_date(date);
    }
    match input.op {
        Op::Validate => {
            let result = proto::parse_validate(resp);
            check(input.op, resp, &result);
            // Held to a request: never more accepting than the plain classifier, and a grant
            // is always for the key asked, granted and not expired.
            let req = polar_license::ValidateRequest::new(crate::cache_key::KEY);
            let expect = proto::Expect::validate(crate::cache_key::ORG, &req, 1_790_000_000);
            if let Some(expect) = expect {
                let held = proto::parse_validate_for(resp, &expect);
                check(input.op, resp, &held);
                if let Ok(Verdict::Accepted(v)) = &held {
                    assert!(matches!(result, Ok(Verdict::Accepted(_))));
                    assert_eq!(v.license_key.key.expose(), crate::cache_key::KEY);
                    assert_eq!(
                        v.license_key.status,
                        polar_license::LicenseKeyStatus::Granted
                    );
                }
            }
            if let Ok(Verdict::Accepted(license)) = &result {
                // What `grace::settle` stores in the cache record.
                assert_json_roundtrip("ValidatedLicenseKey", license);
                let _ = license.license_key.remaining_usage();
            }
        }
        Op::Activate => {
            let result = proto::parse_activate(resp);
            check(input.op, resp, &result);
            if let Ok(Verdict::Accepted(read)) = &result {
                assert_json_roundtrip("LicenseKeyActivationRead", read);
            }
        }
        Op::Deactivate => {
            let result = proto::parse_deactivate(resp);
            check(input.op, resp, &result);
        }
    }
}
