//! The lease parser and verifier (issue #25) on arbitrary text: never a panic, and never a
//! lease that verifies unless it is the one the fuzzer was given as a seed, unchanged (a
//! forged signature would be a break of Ed25519; a change anywhere must be refused). Also the
//! relay key list parser, the key file parser and the air-gapped lines.

use polar_license::airgap;
use polar_license::key::Key;
use polar_license::lease::{self, LeaseExpect, RelayKeys, SigningKey};
use polar_license_testkit::leases::{self, Facts};
use std::sync::OnceLock;

const ORG: &str = "2d4f1b7e-6c1a-4c39-9a55-0a4c1e2b7f10";
const KEY: &str = "MYAPP-50B22C51-07BD-4160-A61E-19B6CC6ED415";
const ACT: &str = "b6724bc8-7ad0-4ad5-a5d1-2b1a6b0a4a4a";
const MACHINE: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const NOW: i64 = 1_790_000_000;

/// A relay key made once per run and the one lease it signed.
fn fixture() -> &'static (RelayKeys, String) {
    static FIXTURE: OnceLock<(RelayKeys, String)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let signer = SigningKey::generate(Some("fuzz")).unwrap_or_else(|e| panic!("{e}"));
        // A day's lease of a grant with no usage and no limits, as the relay rig signs it.
        let benefit = "f2b2c2a1-1d2b-4c53-9b4a-0c8f2f0f8a11";
        let granted = Facts::granted(ORG, &Key::new(KEY), ACT, benefit);
        let claims = leases::claims(&granted, NOW, 1);
        let token = signer
            .sign(&claims, Some(MACHINE))
            .unwrap_or_else(|e| panic!("{e}"));
        (signer.relay_keys(), token)
    })
}

/// The target on one input, as libFuzzer gives it (a panic is a finding).
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (keys, good) = fixture();
    let key = Key::new(KEY);
    let expect = LeaseExpect {
        organization_id: ORG,
        key: &key,
        activation_id: Some(ACT),
        benefit_id: None,
        machine: Some(MACHINE),
    };
    // The input alone, and the input spliced into the good token (a change of it).
    let cut = data.first().map_or(0, |&b| usize::from(b)) % good.len();
    let spliced = format!("{}{}{}", &good[..cut], text, &good[cut..]);
    for candidate in [text.to_string(), spliced] {
        let verified = lease::verify(&candidate, keys, &expect, NOW, 600).is_ok();
        assert!(
            !verified || candidate == *good,
            "a changed lease verified: {candidate:?}"
        );
        let _ = lease::footer_kid(&candidate);
    }
    let _ = RelayKeys::parse(text);
    let _ = SigningKey::from_file_text(text);
    let _ = airgap::read_request(text);
    let _ = airgap::read_response(text);
}
