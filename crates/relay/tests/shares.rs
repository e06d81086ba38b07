//! Fair shares of Polar's budget for known keys (issue #62, item 3), over loopback against the
//! emulator: four keys the roster knew and Polar refuses (revoked, disabled, expired), their
//! activations flooded from four addresses, spent the token's whole budget (new customers'
//! activations refused, and every first validate); and a few keys Polar grants, flooding
//! activations, spent the whole reserve. Each scenario counts answers within one budget window
//! (Polar's minute): no timing is asserted, and no per-address or per-key rate limit is on
//! (the attackers as strong as the relay lets them be).

mod rig;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use polar_license_emulator::{Emulator, KeyUpdate, Options, Seed, SeedKey, DEMO_ORGANIZATION_ID};
use polar_license_relay::store::StoreOptions;
use polar_license_relay::{Running, ServeOptions};
use serde_json::json;

/// The token's calls a minute, at Polar (the emulator) and at the relay.
const BUDGET: u32 = 100;
/// New customers in each scenario.
const NEW: usize = 25;

/// The emulator enforcing [`BUDGET`], with the demo seed and `keys` (each with up to `limit`
/// activations).
fn polar(keys: &[String], limit: i64) -> Emulator {
    let mut seed = Seed::demo();
    for k in keys {
        seed.license_keys.push(SeedKey {
            limit_activations: Some(limit),
            ..SeedKey::new(k)
        });
    }
    let options = Options {
        token_budget: Some(BUDGET),
        ..Options::default()
    };
    Emulator::start(seed, options).expect("emulator")
}

/// The relay in front of `polar`: the store's defaults but the budget (Polar's, a quarter
/// kept), the roster on, no per-address or per-key limit; once its roster has read every page.
fn relay(polar: &Emulator) -> Running {
    let mut config = rig::config(polar.url(), "shares");
    config.limits = rig::unlimited();
    let mut store = StoreOptions::default();
    store.budget = BUDGET;
    store.reserve = BUDGET / 4;
    config.store = rig::store(rig::memory(10_000), store, None);
    // The reserve's shares are what is measured: no churn limit on the keys' activations
    // (issue #67's would refuse the flood first).
    let seats = polar_license_relay::SeatOptions {
        activation_churn: 0,
        ..polar_license_relay::SeatOptions::default()
    };
    let relayed = rig::relay(config, rig::upstream(Duration::from_secs(10)))
        .with_seats(seats)
        .expect("seat options");
    let relay = rig::listen(relayed, ServeOptions::default());
    let agent = rig::agent(Duration::from_secs(10));
    let current = rig::wait_until(Duration::from_secs(30), Duration::from_millis(50), || {
        rig::health(&agent, &relay.url())["roster"]["state"] == "current"
    });
    assert!(current, "the roster read every page");
    relay
}

/// `op` (activate, validate) of `key` from `from`: the status and `polar-license-source`
/// (`None`: no answer).
fn ask(
    rt: &tokio::runtime::Runtime,
    from: Ipv4Addr,
    to: SocketAddr,
    op: &str,
    key: &str,
) -> Option<(u16, Option<String>)> {
    let body = json!({"key": key, "organization_id": DEMO_ORGANIZATION_ID, "label": "shares"});
    rig::post_from(rt, from, to, &format!("{}{op}", rig::PUBLIC), &body)
}

/// Four keys (`SHARES-{name}-{i}-4A5B6C`) and the new customers' in [`polar`] (each with up to
/// `limit` activations), and [`relay`] in front of it: the four keys.
fn four_and_new_customers(name: &str, limit: i64) -> (Vec<String>, Emulator, Running) {
    let four: Vec<String> = (0..4)
        .map(|i| format!("SHARES-{name}-{i}-4A5B6C"))
        .collect();
    let mut keys = four.clone();
    keys.extend(new_keys());
    let polar = polar(&keys, limit);
    let relay = relay(&polar);
    (four, polar, relay)
}

/// Whether an answer is Polar's own (a grant passed on), not the relay's 429.
fn polars_grant(answer: &Option<(u16, Option<String>)>) -> bool {
    matches!(answer, Some((200, Some(source))) if source == "polar")
}

/// The new customers' keys.
fn new_keys() -> Vec<String> {
    (0..NEW)
        .map(|i| format!("SHARES-NEW-{i:03}-7D8E9F"))
        .collect()
}

/// Each new customer activates (all from one address, as an office's NAT or the attack
/// benchmark's buyers) and then validates: how many activations and first validates Polar
/// answered with a grant.
fn new_customers(rt: &tokio::runtime::Runtime, to: SocketAddr) -> (usize, usize, Vec<String>) {
    let from = Ipv4Addr::new(127, 0, 0, 2);
    let (mut activated, mut validated, mut seen) = (0, 0, Vec::new());
    for key in new_keys() {
        let a = ask(rt, from, to, "activate", &key);
        let v = ask(rt, from, to, "validate", &key);
        activated += usize::from(polars_grant(&a));
        validated += usize::from(matches!(v, Some((200, _))));
        seen.push(format!("{a:?} {v:?}"));
    }
    (activated, validated, seen)
}

/// Issue #62: four keys the roster knew, then refused by Polar (revoked, disabled, expired:
/// no webhook told the relay, as none fires for a disabled key), their activations flooded
/// from four addresses: each used the reserve, capped only by the whole budget, and took it
/// (here 99 of 100 calls; 7 of 25 new customers' activations refused in the try, and
/// every first validate after 30 s). Now a key Polar refused three times in a row leaves the
/// roster's known set and gets only the first-seen share (10 % of the budget, fairly per
/// client): the flood costs Polar at most 4 × 3 + 10 calls, and every new customer's
/// activation (≥ 95 %, the bar) and first validate is answered by Polar.
#[test]
fn keys_polar_keeps_refusing_leave_the_roster_and_new_customers_are_answered() {
    let (refused, polar, relay) = four_and_new_customers("REFUSED", 3);
    // Known to the roster as granted; now refused, and the relay not told.
    let updates = [
        KeyUpdate {
            status: Some("revoked".into()),
            ..KeyUpdate::default()
        },
        KeyUpdate {
            status: Some("disabled".into()),
            ..KeyUpdate::default()
        },
        KeyUpdate {
            expires_at: Some(Some(rig::rfc3339(rig::now() - 86_400))),
            ..KeyUpdate::default()
        },
        KeyUpdate {
            status: Some("disabled".into()),
            expires_at: Some(Some(rig::rfc3339(rig::now() - 60))),
            ..KeyUpdate::default()
        },
    ];
    for (key, update) in refused.iter().zip(updates) {
        assert!(polar.update_key(key, update), "{key}");
    }
    let (rt, to) = (rig::runtime(), rig::address(&relay));
    polar.reset_request_count();
    // The flood: 50 activations of each refused key, round robin, one address each.
    let mut answers = Vec::new();
    for _ in 0..50 {
        for (i, key) in refused.iter().enumerate() {
            let from = Ipv4Addr::new(127, 0, 0, 11 + i as u8);
            answers.push(ask(&rt, from, to, "activate", key).map(|(s, _)| s));
        }
    }
    let spent = polar.request_count();
    let refusals = answers.iter().filter(|a| **a == Some(403)).count();
    let limited = answers.iter().filter(|a| **a == Some(429)).count();
    assert_eq!(refusals + limited, answers.len(), "{answers:?}");
    // Three refusals each while known, then the first-seen share (10 calls of the window).
    assert!(spent <= 4 * 3 + 10, "the flood cost Polar {spent} calls");
    assert_eq!(
        refusals as u64, spent,
        "each call Polar's refusal, passed on"
    );

    let (activated, validated, seen) = new_customers(&rt, to);
    assert!(
        activated * 100 >= NEW * 95,
        "{activated} of {NEW} activations answered by Polar: {seen:#?}"
    );
    assert_eq!(validated, NEW, "first validates: {seen:#?}");
    relay.stop();
}

/// A refused key out of the roster is known again once Polar grants it (here a 200 of
/// Polar's to one of its calls): meanwhile its calls come from the first-seen share.
#[test]
fn a_key_out_of_the_roster_is_known_again_once_polar_grants_it() {
    let key = "SHARES-BACK-4A5B6C".to_string();
    let polar = polar(std::slice::from_ref(&key), 3);
    let relay = relay(&polar);
    let (rt, to) = (rig::runtime(), rig::address(&relay));
    let from = Ipv4Addr::new(127, 0, 0, 21);
    let set = |status: &str| {
        let update = KeyUpdate {
            status: Some(status.into()),
            ..KeyUpdate::default()
        };
        assert!(polar.update_key(&key, update));
    };
    set("disabled");
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(ask(&rt, from, to, "activate", &key).map_or(0, |a| a.0));
    }
    assert_eq!(statuses, [403; 5]);
    set("granted");
    let validated = ask(&rt, from, to, "validate", &key);
    assert!(polars_grant(&validated), "{validated:?}");
    let activated = ask(&rt, from, to, "activate", &key);
    assert!(polars_grant(&activated), "{activated:?}");
    relay.stop();
}

/// A few keys Polar grants, their activations flooded from a few addresses (each activation
/// granted: a large limit), spend the shared part of the budget, and then at most their fair
/// parts of the reserve (a key's and a client's: the reserve divided by one more than those
/// holding calls of it), never all of it: new customers (other keys, other addresses) are
/// still answered by Polar. On the code before, the flood took all 100 calls and no new
/// customer was answered.
#[test]
fn a_few_keys_polar_grants_cannot_spend_the_whole_reserve() {
    polar_license_testkit::logs::capture();
    let (flooders, polar, relay) = four_and_new_customers("GREEDY", 1_000);
    let (rt, to) = (rig::runtime(), rig::address(&relay));
    polar.reset_request_count();
    let mut granted = 0;
    for _ in 0..50 {
        for (i, key) in flooders.iter().enumerate() {
            let from = Ipv4Addr::new(127, 0, 0, 31 + i as u8);
            granted += usize::from(polars_grant(&ask(&rt, from, to, "activate", key)));
        }
    }
    // The shared part (75, the roster's page took one) and four fair parts of the reserve's
    // 25 calls: 12, 8, 6 and 5 as each joined, each held to 5 (25 / 5) once all four hold.
    let reserve = (BUDGET / 4) as usize;
    let shared = BUDGET as usize - reserve;
    assert!(
        granted <= shared + 4 * (reserve / 5),
        "the flood spent {granted} calls of {BUDGET}"
    );
    let (activated, _, seen) = {
        let mut activated = 0;
        let mut seen = Vec::new();
        for (i, key) in new_keys().iter().enumerate().take(3) {
            let from = Ipv4Addr::new(127, 0, 0, 101 + i as u8);
            let a = ask(&rt, from, to, "activate", key);
            activated += usize::from(polars_grant(&a));
            seen.push(format!("{a:?}"));
        }
        (activated, (), seen)
    };
    assert_eq!(
        activated, 3,
        "room left in the reserve: {seen:?} (flood {granted})"
    );
    // Each refusal is logged with its reason: a key's (or client's) share of the reserve
    // taken, never "the budget is spent" (it is not: new customers were answered).
    let lines = polar_license_testkit::logs::lines();
    let shares = lines
        .iter()
        .filter(|l| l.contains("activate") && l.contains("fair share of the reserve"))
        .count();
    assert!(shares >= 50, "{shares} refusals logged as a share taken");
    let spent: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("budget is spent"))
        .collect();
    assert!(spent.is_empty(), "logged as a spent budget: {spent:#?}");
    relay.stop();
}
