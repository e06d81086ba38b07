//! The relay's unit tests.

// Test code only (for the hostile suite's scan of the routers' paths, which reads a file's
// code up to its first such line):
#[cfg(test)]
#[allow(clippy::expect_used)] // tests: a panic is the failure report
mod relay {
    use crate::clock::at;
    use crate::limit::Rate;
    use crate::relay::*;
    use crate::types::USER_AGENT;
    use polar_license::lease::SigningKey;
    use polar_license::proto::Server;
    use polar_license::proto::{HttpRequest, HttpResponse};
    use polar_license::TransportError;
    use std::sync::Arc;

    const ORG: &str = "d2fcbff8-108b-411e-bf2b-6383e0a8802d";

    fn relay_over(
        transport: impl Fn(&HttpRequest) -> Result<HttpResponse, TransportError> + Send + Sync + 'static,
    ) -> Relay {
        Relay::with_entropy(
            RelayConfig::for_tests(),
            Box::new(transport),
            Box::new(|| Some([7; 16])),
        )
        .expect("a relay")
    }

    fn validate(body: &str) -> RelayRequest {
        RelayRequest {
            method: "POST".into(),
            path: "/v1/customer-portal/license-keys/validate?x=1".into(),
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("Polar-Version".into(), "2026-10".into()),
            ],
            body: body.as_bytes().to_vec(),
            client_ip: "192.0.2.1".into(),
        }
    }

    const NOW: Now = crate::clock::at(0);

    #[test]
    fn it_asks_the_token_twin_with_the_token_and_the_checked_body() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let relay = relay_over(move |req: &HttpRequest| {
            locked(&log).push(req.clone());
            Ok(
                HttpResponse::new(404, r#"{"error":"ResourceNotFound","detail":"Not found"}"#)
                    .with_header("content-type", "application/json"),
            )
        });
        let body = format!(r#"{{"key":"K-1","organization_id":"{ORG}","increment_usage":"2"}}"#);
        let r = relay.handle(&validate(&body), NOW);
        assert_eq!((r.status, r.lease()), (404, None));
        let seen = locked(&seen);
        let req = seen.first().expect("one call");
        assert_eq!(seen.len(), 1);
        assert_eq!(req.url, "http://127.0.0.1:9/v1/license-keys/validate");
        let header = |name: &str| {
            req.headers
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("authorization"), Some("Bearer polar_oat_secret"));
        assert_eq!(header("polar-version"), Some("2026-10"));
        assert_eq!(header("user-agent"), Some(USER_AGENT));
        // Polar's lax "2" sent as the integer it means.
        let sent: serde_json::Value = serde_json::from_slice(&req.body).expect("JSON");
        assert_eq!(
            sent,
            serde_json::json!({"key": "K-1", "organization_id": ORG, "increment_usage": 2})
        );
        assert!(!format!("{relay:?}").contains("polar_oat_secret"));
    }

    #[test]
    fn transport_errors_are_502_and_the_token_is_nowhere_in_the_answer() {
        let relay = relay_over(|_: &HttpRequest| {
            Err(TransportError::new(
                polar_license::TransportErrorKind::Connect,
                "connection refused",
            ))
        });
        let body = format!(r#"{{"key":"K-1","organization_id":"{ORG}"}}"#);
        let r = relay.handle(&validate(&body), NOW);
        assert_eq!(r.status, 502);
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        let all = format!("{r:?}{}", String::from_utf8_lossy(&r.body));
        assert!(!all.contains("polar_oat_secret"), "{all}");
    }

    /// A relay whose upstream grants nothing (404) and counts its calls.
    /// A relay limited `per_ip` and `per_key` (the client named by `ip_header` when given)
    /// whose Polar answers every call 404, asked `reqs` (each at its clock in ms): each
    /// answer's status and `retry-after`, and how many calls reached Polar.
    fn limited(
        per_ip: Rate,
        per_key: Rate,
        ip_header: Option<&str>,
        reqs: &[(RelayRequest, u64)],
    ) -> (Vec<(u16, Option<String>)>, u32) {
        let calls = Arc::new(Mutex::new(0u32));
        let count = Arc::clone(&calls);
        let transport = move |_: &HttpRequest| {
            *locked(&count) += 1;
            Ok(HttpResponse::new(
                404,
                r#"{"error":"ResourceNotFound","detail":"Not found"}"#,
            ))
        };
        let mut config = RelayConfig::for_tests();
        config.limits = Limits {
            per_ip,
            per_key,
            ..Limits::default()
        };
        config.client_ip_header = ip_header.map(str::to_string);
        let relay =
            Relay::with_entropy(config, Box::new(transport), Box::new(|| None)).expect("a relay");
        let got = reqs
            .iter()
            .map(|(req, ms)| {
                let r = relay.handle(req, at(*ms));
                (r.status, r.header("retry-after").map(str::to_string))
            })
            .collect();
        let calls = *locked(&calls);
        (got, calls)
    }

    fn for_key(key: &str, ip: &str) -> RelayRequest {
        let mut req = validate(&format!(r#"{{"key":"{key}","organization_id":"{ORG}"}}"#));
        req.client_ip = ip.into();
        req
    }

    /// A check of `K1` through the proxy at 10.0.0.254, its `X-Forwarded-For` `value`.
    fn via(value: &str) -> RelayRequest {
        let mut req = for_key("K1", "10.0.0.254");
        req.headers.push(("X-Forwarded-For".into(), value.into()));
        req
    }

    /// No limit.
    const OFF: Rate = Rate::new(0, 0);

    /// One case of the rate limits: a relay limited `per_ip` and `per_key` (the client named
    /// by `ip_header` when given), asked `reqs` (each at its clock in ms), answers `statuses`
    /// (every 429 with `retry-after: 1`, nothing else with one) and makes `calls` calls.
    struct LimitCase {
        what: &'static str,
        per_ip: Rate,
        per_key: Rate,
        ip_header: Option<&'static str>,
        reqs: Vec<(RelayRequest, u64)>,
        statuses: Vec<u16>,
        calls: u32,
    }

    #[test]
    fn the_rate_limits_at_a_fixed_clock() {
        let a = |key: &str| for_key(key, "192.0.2.1");
        let cases = [
            LimitCase {
                what: "the per-IP bucket",
                per_ip: Rate::new(1, 2),
                per_key: OFF,
                ip_header: None,
                reqs: vec![
                    (a("K1"), 0),
                    (a("K2"), 0),
                    (a("K3"), 0),
                    (for_key("K3", "192.0.2.2"), 0),
                    (a("K3"), 999),
                    (a("K3"), 1000),
                ],
                statuses: vec![404, 404, 429, 404, 429, 404],
                calls: 4,
            },
            LimitCase {
                what: "an IPv6 client is one bucket across its /64",
                per_ip: Rate::new(1, 2),
                per_key: OFF,
                ip_header: None,
                reqs: vec![
                    (for_key("K1", "2001:db8:1:2::1"), 0),
                    (for_key("K2", "2001:db8:1:2:aaaa::7"), 0),
                    // A new address of the same /64: the same bucket.
                    (for_key("K3", "2001:db8:1:2:ffff:1:2:3"), 0),
                    // Another /64: its own.
                    (for_key("K4", "2001:db8:1:3::1"), 0),
                ],
                statuses: vec![404, 404, 429, 404],
                calls: 3,
            },
            LimitCase {
                what: "the per-key bucket",
                per_ip: OFF,
                per_key: Rate::new(2, 1),
                ip_header: None,
                reqs: vec![
                    (for_key("K1", "192.0.2.1"), 0),
                    (for_key("K1", "192.0.2.2"), 100),
                    (for_key("K2", "192.0.2.2"), 100),
                    (for_key("K1", "192.0.2.3"), 500),
                ],
                statuses: vec![404, 429, 404, 404],
                calls: 3,
            },
            LimitCase {
                what: "behind a proxy, its own entry names the client",
                per_ip: Rate::new(1, 1),
                per_key: OFF,
                ip_header: Some("x-forwarded-for"),
                reqs: vec![
                    (via("6.6.6.6, 198.51.100.7"), 0),
                    // The client's own entries change nothing: the proxy's (the last) is the
                    // same.
                    (via("7.7.7.7, 198.51.100.7"), 0),
                    (via("198.51.100.8"), 0),
                    // No header: the socket peer (the proxy itself).
                    (for_key("K1", "10.0.0.254"), 0),
                ],
                statuses: vec![404, 429, 404, 404],
                calls: 3,
            },
            // A proxy header's `IP:port` is the IP's bucket whatever the port (a client
            // writing a new port each time gets no new bucket), and a value that is no address
            // is the proxy's own bucket (the socket peer), never a fresh one.
            LimitCase {
                what: "behind a proxy, a port or garbage is no new identity",
                per_ip: Rate::new(1, 2),
                per_key: OFF,
                ip_header: Some("x-forwarded-for"),
                reqs: vec![
                    (via("198.51.100.7:1001"), 0),
                    (via("198.51.100.7:1002"), 0),
                    (via("6.6.6.6, 198.51.100.7:1003"), 0),
                    (via("[2001:db8::1]:4711"), 0),
                    (via("[2001:db8::2]:4712"), 0),
                    (via("[2001:db8::3]:4713"), 0),
                    (via("garbage-1"), 0),
                    (via("198.51.100.7:port"), 0),
                    (via("unknown"), 0),
                    (for_key("K1", "10.0.0.254"), 0),
                ],
                statuses: vec![404, 404, 429, 404, 404, 429, 404, 404, 429, 429],
                calls: 6,
            },
        ];
        for case in cases {
            let (got, calls) = limited(case.per_ip, case.per_key, case.ip_header, &case.reqs);
            let want: Vec<(u16, Option<String>)> = case
                .statuses
                .iter()
                .map(|&s| (s, (s == 429).then(|| "1".to_string())))
                .collect();
            assert_eq!(got, want, "{}", case.what);
            assert_eq!(calls, case.calls, "{}", case.what);
        }
    }

    /// `cors_origins`: an allowed page gets its origin back (and `vary: origin`), any other
    /// origin, or none, gets no CORS grant; without the option every answer says `*`.
    #[test]
    fn cors_origins_narrow_the_grant_to_the_pages_named() {
        let answer = |relay: &Relay, method: &str, origin: Option<&str>| {
            let mut req = validate(&format!(r#"{{"key":"K-1","organization_id":"{ORG}"}}"#));
            req.method = method.into();
            if let Some(origin) = origin {
                req.headers.push(("Origin".into(), origin.into()));
            }
            relay.handle(&req, NOW)
        };
        let polar = |_: &HttpRequest| Ok(HttpResponse::new(404, r#"{"detail":"Not found"}"#));
        let any = relay_over(polar);
        for method in ["POST", "OPTIONS"] {
            let r = answer(&any, method, Some("https://evil.example"));
            assert_eq!(
                r.header("access-control-allow-origin"),
                Some("*"),
                "{method}"
            );
            assert_eq!(r.header("vary"), None);
        }

        let mut config = RelayConfig::for_tests();
        config.cors_origins = Some(vec![
            "https://app.example.com".into(),
            "http://localhost:5173".into(),
        ]);
        // Every request here comes from one client at one instant: preflights take their
        // token as posts do, and this test is about the origins, not the rate.
        config.limits.per_ip = crate::limit::Rate::new(0, 0);
        let named = Relay::with_entropy(config, Box::new(polar), Box::new(|| Some([7; 16])))
            .expect("a relay");
        for method in ["POST", "OPTIONS"] {
            for origin in ["https://app.example.com", "http://localhost:5173"] {
                let r = answer(&named, method, Some(origin));
                assert_eq!(r.header("access-control-allow-origin"), Some(origin));
                assert_eq!(r.header("vary"), Some("origin"));
                let expose = r
                    .header("access-control-expose-headers")
                    .unwrap_or_default();
                assert!(method == "OPTIONS" || expose.contains("polar-license-lease"));
            }
            for origin in [
                Some("https://evil.example"),
                Some("https://app.example.com.evil"),
                None,
            ] {
                let r = answer(&named, method, origin);
                assert!(
                    !r.headers
                        .iter()
                        .any(|(k, _)| k.starts_with("access-control-")),
                    "{method} {origin:?}: {:?}",
                    r.headers
                );
                assert_eq!(r.header("vary"), Some("origin"));
            }
        }
        // The answer itself is unchanged: only the browser's permission to read it.
        assert_eq!(answer(&named, "POST", None).status, 404);

        for bad in [
            vec![],
            vec!["app.example.com".to_string()],
            vec!["https://app.example.com/".to_string()],
            vec!["https://app.example.com/path".to_string()],
            vec!["*".to_string()],
        ] {
            let mut config = RelayConfig::for_tests();
            config.cors_origins = Some(bad.clone());
            let transport = |_: &HttpRequest| Ok(HttpResponse::new(500, ""));
            let refused = Relay::with_entropy(config, Box::new(transport), Box::new(|| None));
            assert!(refused.is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_bad_configuration_is_refused() {
        let key = || SigningKey::generate(Some("k1")).expect("a key");
        let bad = [
            RelayConfig {
                lease_days: 0,
                ..RelayConfig::new(Server::Production, AccessToken::new("t"), key())
            },
            RelayConfig::new(Server::Production, AccessToken::new("has space"), key()),
            RelayConfig::new(
                Server::Custom("http://polar.example".into()),
                AccessToken::new("t"),
                key(),
            ),
            RelayConfig {
                organization_id: Some("not-a-uuid".into()),
                ..RelayConfig::new(Server::Production, AccessToken::new("t"), key())
            },
            // Retiring unseen activations: at most ten years (issue #80).
            RelayConfig {
                retire_unseen_days: crate::last_seen::MAX_RETIRE_UNSEEN_DAYS + 1,
                ..RelayConfig::new(Server::Production, AccessToken::new("t"), key())
            },
        ];
        for config in bad {
            let transport = |_: &HttpRequest| Ok(HttpResponse::new(500, ""));
            assert!(Relay::with_entropy(config, Box::new(transport), Box::new(|| None)).is_err());
        }
    }

    /// The install analytics route counts the address's share by the client the per-IP limit
    /// names (the proxy header's last entry when one is configured), not the proxy's own.
    #[test]
    fn an_install_ping_counts_for_the_client_the_proxy_names() {
        let mut config = RelayConfig::for_tests();
        config.limits = Limits {
            per_ip: OFF,
            ..Limits::default()
        };
        config.client_ip_header = Some("x-forwarded-for".into());
        let relay = Relay::with_entropy(
            config,
            Box::new(|_: &HttpRequest| {
                Err(TransportError::new(
                    polar_license::TransportErrorKind::Connect,
                    "no call is made",
                ))
            }),
            Box::new(|| None),
        )
        .and_then(|r| {
            r.with_analytics(crate::analytics::AnalyticsOptions {
                enabled: true,
                max_installs_per_day: 100,
                max_installs_per_address: 2,
            })
        })
        .expect("a relay");
        let ping = |n: u32, client: &str| {
            RelayRequest {
            method: "POST".into(),
            path: crate::types::ANALYTICS_ROUTE.into(),
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("X-Forwarded-For".into(), client.into()),
            ],
            body: format!(
                r#"{{"organization_id":"{ORG}","install":"{n:032x}","app_version":"1.0.0","os":"linux","arch":"x86_64","face":"rust"}}"#
            )
            .into_bytes(),
            client_ip: "10.0.0.254".into(),
        }
        };
        // Five installs behind one client, then one behind each of two others: all through
        // the one proxy at 10.0.0.254.
        for n in 0..5 {
            assert_eq!(relay.handle(&ping(n, "198.51.100.7"), NOW).status, 202);
        }
        for (n, client) in [(10, "198.51.100.8"), (11, "6.6.6.6, 198.51.100.9")] {
            assert_eq!(relay.handle(&ping(n, client), NOW).status, 202);
        }
        let (counts, (installs, _)) = relay.analytics_counts();
        assert_eq!((counts.taken, counts.dropped, installs), (4, 3, 4));
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)] // tests: a panic is the failure report
mod test_only_budget {
    use crate::store::{StoreOptions, Use};

    /// The test-only budget window: refused outside 1 to 3,600 s; given, the budget spent in
    /// it is whole again after that window, where Polar's minute would still hold it.
    #[test]
    fn a_test_only_budget_window_is_bounded_and_replaces_polars_minute() {
        let options = || StoreOptions {
            budget: 4,
            reserve: 1,
            ..StoreOptions::default()
        };
        let relay = || crate::roster::tests::relay_with(options());
        for bad in [0, 3_601] {
            assert!(
                relay().with_test_only_budget_seconds(bad).is_err(),
                "{bad} s"
            );
        }
        let spent_then = |r: &crate::relay::Relay, later_ms: u64| {
            let s = r.store.as_ref().expect("a store");
            let mut budget = s.budget.lock().expect("the budget");
            while budget.take(0, Use::Reserved).is_ok() {}
            budget.take(later_ms, Use::Reserved).is_ok()
        };
        let short = relay()
            .with_test_only_budget_seconds(2)
            .expect("2 s is allowed");
        assert_eq!(
            short
                .store
                .as_ref()
                .expect("a store")
                .options
                .budget_window_ms,
            2_000
        );
        assert!(spent_then(&short, 2_001), "the 2 s window over");
        assert!(
            !spent_then(&relay(), 2_001),
            "Polar's minute still holds it"
        );
    }
}
