//! Issue #78: the seller's set-up checked (`polar_license_relay::doctor::check`) against the
//! emulator seeded with each mistake, through its seed file's format and Polar's own webhook
//! routes: each mistake found as its kind, and nothing on a clean seed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod rig;

use polar_license::AccessToken;
use polar_license_emulator::{Emulator, Options, Seed};
use polar_license_relay::doctor::{self, Environment, Finding, Needs, Report, Setup};
use serde_json::{json, Value};

const ORG: &str = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";
/// A production organization id, in a build pointed at the sandbox.
const OTHER_ORG: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
const BENEFIT: &str = "5d3c2b1a-9e8f-4a7b-8c6d-1e2f3a4b5c6d";
const FLAG: &str = "6f1c2d3e-4a5b-4c6d-8e7f-9a0b1c2d3e4f";
const TOKEN: &str = "polar_oat_doctor_all_scopes_0123456789";
const RELAY: &str = "https://relay.example.com";

/// The clean seed: one license-key benefit with a limit and device management, a key of it, a
/// Feature Flag, and a token with every scope.
fn clean_seed() -> Value {
    json!({
        "organization_id": ORG,
        "benefits": [
            {"id": BENEFIT, "limit_activations": 3, "enable_customer_admin": true},
            {"id": FLAG, "type": "feature_flag", "metadata": {"tier": "pro"}}
        ],
        "license_keys": [
            {"key": "DOC-4F0C2A9E-5B7D-4E21-9C3A-1F2E3D4C5B6A", "benefit_id": BENEFIT,
             "limit_activations": 3}
        ],
        "access_tokens": [{"token": TOKEN}]
    })
}

/// The clean endpoint: the relay's route, raw, the four grant events, the current version.
fn clean_endpoint() -> Value {
    json!({
        "url": format!("{RELAY}/v1/webhooks/polar"),
        "format": "raw",
        "api_version": "2026-10",
        "events": doctor::WEBHOOK_EVENTS,
    })
}

fn setup(emulator: &Emulator, token: &str) -> Setup {
    Setup {
        base_url: emulator.url(),
        token: AccessToken::new(token),
        organization_id: Some(ORG.to_string()),
        benefit_ids: vec![BENEFIT.to_string()],
        relay_url: Some(RELAY.to_string()),
        needs: Needs {
            store: true,
            webhooks: true,
            entitlements: true,
            usage: true,
        },
    }
}

/// The emulator of `seed`, with `endpoint` created through Polar's route (then `patch`ed
/// when given).
fn start(
    seed: &Value,
    options: Options,
    endpoint: Option<Value>,
    patch: Option<Value>,
) -> Emulator {
    let seed = Seed::from_json(&seed.to_string()).unwrap();
    let emulator = Emulator::start(seed, options).unwrap();
    if let Some(body) = endpoint {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut r = agent
            .post(&format!("{}/v1/webhooks/endpoints", emulator.url()))
            .header("authorization", &format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .send(body.to_string().as_bytes())
            .unwrap();
        let text = r.body_mut().read_to_string().unwrap();
        assert_eq!(r.status().as_u16(), 201, "{text}");
        if let Some(patch) = patch {
            let id = serde_json::from_str::<Value>(&text).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string();
            let r = agent
                .patch(&format!("{}/v1/webhooks/endpoints/{id}", emulator.url()))
                .header("authorization", &format!("Bearer {TOKEN}"))
                .header("content-type", "application/json")
                .send(patch.to_string().as_bytes())
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
        }
    }
    emulator
}

fn codes(report: &Report) -> Vec<&'static str> {
    report.findings.iter().map(Finding::code).collect()
}

#[test]
fn a_clean_seed_finds_nothing() {
    let emulator = start(
        &clean_seed(),
        Options::default(),
        Some(clean_endpoint()),
        None,
    );
    let report = doctor::check(&setup(&emulator, TOKEN));
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.organization.as_deref(), Some(ORG));
    // And every license-key benefit checked when the app names none.
    let mut all = setup(&emulator, TOKEN);
    all.benefit_ids.clear();
    assert!(doctor::check(&all).is_clean());
}

/// One seeded mistake: the seed, the emulator's options, the endpoint, the setup's changes,
/// and the one finding expected.
struct Case {
    name: &'static str,
    seed: Value,
    options: Options,
    endpoint: Option<Value>,
    patch: Option<Value>,
    change: fn(&mut Setup),
    expect: fn(&Finding) -> bool,
}

fn case(name: &'static str) -> Case {
    Case {
        name,
        seed: clean_seed(),
        options: Options::default(),
        endpoint: Some(clean_endpoint()),
        patch: None,
        change: |_| {},
        expect: |_| false,
    }
}

fn scoped(scopes: &[&str]) -> Value {
    let mut seed = clean_seed();
    seed["access_tokens"] = json!([{"token": TOKEN, "scopes": scopes}]);
    seed
}

const EVERY_READ: &[&str] = &[
    "organizations:read",
    "benefits:read",
    "webhooks:write",
    "license_keys:read",
    "license_keys:write",
    "customer_meters:read",
    "events:write",
];

fn without(scope: &str) -> Vec<&'static str> {
    EVERY_READ.iter().copied().filter(|s| *s != scope).collect()
}

#[test]
fn each_seeded_mistake_is_found_as_its_kind() {
    let mut cases = Vec::new();

    let mut c = case("a token this Polar does not know");
    c.change = |s| s.token = AccessToken::new("polar_oat_of_the_other_environment_0000");
    c.expect = |f| matches!(f, Finding::TokenRefused { .. });
    cases.push(c);

    let mut c = case("a token without license_keys:write");
    c.seed = scoped(&without("license_keys:write"));
    c.expect = |f| {
        matches!(
            f,
            Finding::ScopeMissing {
                scope: "license_keys:write",
                ..
            }
        )
    };
    cases.push(c);

    let mut c = case("a token without events:write for usage");
    c.seed = scoped(&without("events:write"));
    c.expect = |f| {
        matches!(
            f,
            Finding::ScopeMissing {
                scope: "events:write",
                ..
            }
        )
    };
    cases.push(c);

    let mut c = case("a token without customer_meters:read for entitlements");
    c.seed = scoped(&without("customer_meters:read"));
    c.expect = |f| {
        matches!(
            f,
            Finding::ScopeMissing {
                scope: "customer_meters:read",
                ..
            }
        )
    };
    cases.push(c);

    let mut c = case("a production organization id against the sandbox");
    c.options = Options {
        sandbox: true,
        ..Options::default()
    };
    c.change = |s| s.organization_id = Some(OTHER_ORG.to_string());
    c.expect = |f| {
        matches!(f, Finding::OrganizationNotFound { id, environment: Environment::Sandbox }
            if id == OTHER_ORG)
    };
    cases.push(c);

    let mut c = case("a benefit id the organization does not have");
    c.change = |s| s.benefit_ids = vec![OTHER_ORG.to_string()];
    c.expect = |f| matches!(f, Finding::BenefitNotFound { id, .. } if id == OTHER_ORG);
    cases.push(c);

    let mut c = case("the Feature Flag's id as the app's benefit");
    c.change = |s| s.benefit_ids = vec![FLAG.to_string()];
    c.expect = |f| matches!(f, Finding::BenefitNotLicenseKeys { id, kind } if id == FLAG && kind == "feature_flag");
    cases.push(c);

    let mut c = case("no license-key benefit at all");
    c.seed["license_keys"] = json!([]);
    c.seed["benefits"] = json!([{"id": FLAG, "type": "feature_flag", "metadata": {"tier": "pro"}}]);
    c.change = |s| s.benefit_ids.clear();
    c.expect = |f| matches!(f, Finding::NoLicenseKeyBenefit);
    cases.push(c);

    let mut c = case("a license-key benefit with no activation limit");
    c.seed["benefits"][0]["limit_activations"] = json!(0);
    c.expect = |f| matches!(f, Finding::ActivationLimitMissing { benefit_id, .. } if benefit_id == BENEFIT);
    cases.push(c);

    let mut c = case("customers cannot manage their devices");
    c.seed["benefits"][0]["enable_customer_admin"] = json!(false);
    c.expect =
        |f| matches!(f, Finding::CustomerAdminOff { benefit_id, .. } if benefit_id == BENEFIT);
    cases.push(c);

    let mut c = case("no endpoint delivers to the relay");
    c.endpoint = Some(
        json!({"url": "https://elsewhere.example.com/hook", "format": "raw",
        "events": doctor::WEBHOOK_EVENTS}),
    );
    c.expect = |f| {
        matches!(f, Finding::WebhookEndpointMissing { url: Some(u) }
            if u == "https://relay.example.com/v1/webhooks/polar")
    };
    cases.push(c);

    let mut c = case("the relay's endpoint disabled");
    c.patch = Some(json!({"enabled": false}));
    c.expect = |f| matches!(f, Finding::WebhookEndpointDisabled { .. });
    cases.push(c);

    let mut c = case("the relay's endpoint without the revocation event");
    c.endpoint = Some(
        json!({"url": format!("{RELAY}/v1/webhooks/polar"), "format": "raw",
        "events": ["benefit_grant.created", "benefit_grant.updated", "benefit_grant.cycled"]}),
    );
    c.expect = |f| {
        matches!(f, Finding::WebhookEventsMissing { events, .. }
            if events == &["benefit_grant.revoked".to_string()])
    };
    cases.push(c);

    let mut c = case("the relay's endpoint on 2026-04, removed in January 2027");
    c.endpoint = Some(
        json!({"url": format!("{RELAY}/v1/webhooks/polar"), "format": "raw",
        "api_version": "2026-04", "events": doctor::WEBHOOK_EVENTS}),
    );
    c.expect = |f| {
        matches!(f, Finding::WebhookVersionDue { version, removed: Some("January 2027"), .. }
            if version == "2026-04")
    };
    cases.push(c);

    let mut kinds = Vec::new();
    for c in cases {
        let emulator = start(&c.seed, c.options, c.endpoint, c.patch);
        let mut s = setup(&emulator, TOKEN);
        (c.change)(&mut s);
        let report = doctor::check(&s);
        assert!(
            report.findings.len() == 1 && (c.expect)(&report.findings[0]),
            "{}: {:?} (unchecked {:?})",
            c.name,
            report.findings,
            report.unchecked
        );
        let f = &report.findings[0];
        // Each with its sentence and its fix, the token in neither.
        assert!(!f.message().is_empty() && !f.fix().is_empty(), "{}", c.name);
        assert!(!f.to_string().contains(TOKEN), "{}", c.name);
        if !kinds.contains(&f.code()) {
            kinds.push(f.code());
        }
    }
    assert!(kinds.len() >= 8, "{kinds:?}");
}

#[test]
fn polar_down_is_unchecked_not_found() {
    let emulator = start(&clean_seed(), Options::default(), None, None);
    let mut s = setup(&emulator, TOKEN);
    drop(emulator);
    s.needs = Needs::default();
    let report = doctor::check(&s);
    assert!(report.findings.is_empty(), "{report:?}");
    assert!(!report.unchecked.is_empty());
    assert_eq!(codes(&report), Vec::<&str>::new());
}

/// `/healthz`'s `setup` once the background machine's first check is done (10 s at most).
fn setup_of_health(relay: &polar_license_relay::Running) -> Value {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut r = agent
            .get(&format!("{}/healthz", relay.url()))
            .call()
            .unwrap();
        let health: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        let setup = health["setup"].clone();
        if !setup["checked_at"].is_null() || std::time::Instant::now() > deadline {
            return setup;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn relay_config(emulator: &Emulator, every: u64) -> polar_license_relay::RelayConfig {
    let signer = polar_license::lease::SigningKey::generate(Some("doc")).unwrap();
    let mut config = rig::config_with(emulator.url(), TOKEN, signer);
    config.organization_id = Some(ORG.to_string());
    config.check_setup_every = every;
    config
}

/// The relay runs the same check at its start and reports it in its health answer: the
/// seeded mistake (customers cannot manage their devices, an endpoint on 2026-04) found with
/// its fix, nothing on the clean seed, and `null` when the check is off.
#[test]
fn the_relays_health_reports_its_setups_findings() {
    let mut seed = clean_seed();
    seed["benefits"][0]["enable_customer_admin"] = json!(false);
    let mut endpoint = clean_endpoint();
    endpoint["api_version"] = json!("2026-04");
    let emulator = start(&seed, Options::default(), Some(endpoint), None);
    let relay = rig::listen_stored(relay_config(&emulator, 3_600), "whsec_doctor_relay_secret");
    let setup = setup_of_health(&relay);
    let codes: Vec<&str> = setup["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["code"].as_str())
        .collect();
    assert_eq!(
        codes,
        ["customer_admin_off", "webhook_version_due"],
        "{setup}"
    );
    assert!(setup["findings"][0]["fix"]
        .as_str()
        .unwrap()
        .contains("manage"));
    assert_eq!(setup["every_seconds"], 3_600);
    assert!(!setup.to_string().contains(TOKEN));

    let clean = start(
        &clean_seed(),
        Options::default(),
        Some(clean_endpoint()),
        None,
    );
    let relay = rig::listen_stored(relay_config(&clean, 3_600), "whsec_doctor_relay_secret");
    let setup = setup_of_health(&relay);
    assert_eq!(setup["findings"], json!([]), "{setup}");
    assert_eq!(setup["unchecked"], json!([]), "{setup}");

    // Off (the default): null, and no call of the check's made.
    let quiet = start(&clean_seed(), Options::default(), None, None);
    let relay = rig::listen_stored(relay_config(&quiet, 0), "whsec_doctor_relay_secret");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
    let mut r = agent
        .get(&format!("{}/healthz", relay.url()))
        .call()
        .unwrap();
    let health: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    assert!(health["setup"].is_null(), "{health}");
}

/// Periodically: the check runs again every `check_setup_every` seconds, so a mistake fixed in
/// Polar (an endpoint enabled again) leaves `/healthz` at the next run.
#[test]
fn the_relays_check_runs_again_and_sees_a_fix() {
    let emulator = start(
        &clean_seed(),
        Options::default(),
        Some(clean_endpoint()),
        Some(json!({"enabled": false})),
    );
    let relay = rig::listen_stored(relay_config(&emulator, 1), "whsec_doctor_relay_secret");
    let first = setup_of_health(&relay);
    assert_eq!(
        first["findings"][0]["code"], "webhook_endpoint_disabled",
        "{first}"
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent
        .get(&format!("{}/v1/webhooks/endpoints", emulator.url()))
        .header("authorization", &format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    let list: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    let id = list["items"][0]["id"].as_str().unwrap().to_string();
    let r = agent
        .patch(&format!("{}/v1/webhooks/endpoints/{id}", emulator.url()))
        .header("authorization", &format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .send(json!({"enabled": true}).to_string().as_bytes())
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let setup = setup_of_health(&relay);
        if setup["checked_at"] != first["checked_at"] && setup["findings"] == json!([]) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never re-checked: {setup}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
