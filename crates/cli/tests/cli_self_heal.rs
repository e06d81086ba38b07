//! Self-healing activations from the command line (issue #80): a reinstall on the same
//! machine at the activation limit (a new cache directory) ends licensed with the activation
//! this machine already holds, found through the seller's relay (`activate --relay URL`), and
//! takes none; without a way to list the key's activations the limit stands as before. Real
//! processes, real cache directories, the emulator and a relay on loopback.

use polar_license_emulator::{Emulator, Options, Seed, SeedKey, DEMO_BENEFIT_ID, DEMO_CUSTOMER_ID};
use polar_license_testkit::{relay_in_front_of, ScratchDir};

mod common;
use common::{cli, BIN};

const KEY: &str = "HEAL-7C2D3E4F-5A6B-4C7D-8E9F-0A1B2C3D4E5F";

#[test]
fn a_reinstall_at_the_limit_reclaims_its_activation_through_the_relay() {
    let polar = Emulator::start(Seed::demo(), Options::default()).expect("emulator");
    polar
        .add_key(SeedKey {
            key: KEY.to_string(),
            benefit_id: Some(DEMO_BENEFIT_ID.to_string()),
            customer_id: Some(DEMO_CUSTOMER_ID.to_string()),
            limit_activations: Some(1),
            ..SeedKey::default()
        })
        .expect("a key added");
    let relay_dir = ScratchDir::new("cli-heal-relay");
    let relay = relay_in_front_of(BIN, &polar.url(), &relay_dir);
    let (first, bare, again) = (
        ScratchDir::new("cli-heal-first"),
        ScratchDir::new("cli-heal-bare"),
        ScratchDir::new("cli-heal-again"),
    );
    let activate = |dir: &ScratchDir, more: &[&str]| {
        let mut args = vec!["activate", "--key", KEY, "--label", "Jane's laptop"];
        args.extend_from_slice(more);
        cli(&polar, dir, &args)
    };
    let took = activate(&first, &[]);
    assert_eq!(took.0, 0, "{}", took.2);
    let id = took.1["activation_id"].as_str().expect("an id").to_string();
    assert_eq!(polar.activations(KEY).len(), 1);

    // With no relay and no session: the limit, as before (exit 1, `activation_limit`).
    let refused = activate(&bare, &[]);
    assert_eq!(
        (refused.0, refused.1["reason"].as_str()),
        (1, Some("activation_limit")),
        "{}",
        refused.1
    );

    // The reinstall with the relay: licensed, the same activation, none taken.
    let healed = activate(&again, &["--relay", &relay.url]);
    assert_eq!(healed.0, 0, "{}", healed.2);
    assert_eq!(healed.1["activation_id"], id.as_str(), "{}", healed.1);
    assert_eq!(
        healed.1["adopted_activation_id"],
        id.as_str(),
        "{}",
        healed.1
    );
    assert_eq!(polar.activations(KEY).len(), 1, "no new activation");
    let checked = cli(&polar, &again, &["check", "--key", KEY]);
    assert_eq!(checked.0, 0, "{}", checked.2);
    assert_eq!(checked.1["activation_id"], id.as_str(), "{}", checked.1);
}
