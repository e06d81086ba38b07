//! The official PASETO v4.public and PASERK k4 test vectors (paseto-standard/test-vectors at
//! 32d7406591eb022f9eff88abb84106dd9d42c0f2, copied to tests/vectors/paseto/) pass with the
//! implementation the leases use (src/lease.rs), with the same features the core builds it
//! with: the lease format is the standard's, not a look-alike.

use pasetors::keys::{AsymmetricPublicKey, AsymmetricSecretKey};
use pasetors::paserk::{FormatAsPaserk, Id};
use pasetors::token::UntrustedToken;
use pasetors::version4::{PublicToken, V4};
use pasetors::Public;
use serde_json::Value;

fn vectors(name: &str) -> Vec<Value> {
    let path = format!("{}/tests/vectors/paseto/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    doc["tests"].as_array().cloned().unwrap_or_default()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

fn text(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap_or_default().to_string()
}

fn paserk<K: FormatAsPaserk>(key: &K) -> String {
    let mut out = String::new();
    key.fmt(&mut out).unwrap_or_else(|e| panic!("{e}"));
    out
}

#[test]
fn v4_public_tokens_sign_and_verify_as_the_standard_says() {
    let tests: Vec<Value> = vectors("v4.json")
        .into_iter()
        .filter(|t| t["public-key"].is_string())
        .collect();
    assert_eq!(tests.len(), 4, "4-S-1..3 and 4-F-1");
    for t in &tests {
        let name = text(t, "name");
        let public = AsymmetricPublicKey::<V4>::from(&hex(&text(t, "public-key")))
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let footer = text(t, "footer");
        let implicit = text(t, "implicit-assertion");
        let token = text(t, "token");
        let verified = UntrustedToken::<Public, V4>::try_from(token.as_str())
            .ok()
            .and_then(|u| {
                let known = (!footer.is_empty()).then_some(footer.as_bytes());
                PublicToken::verify(&public, &u, known, Some(implicit.as_bytes())).ok()
            });
        if t["expect-fail"].as_bool() == Some(true) {
            assert!(verified.is_none(), "{name} must fail");
            continue;
        }
        let verified = verified.unwrap_or_else(|| panic!("{name} must verify"));
        assert_eq!(verified.payload(), text(t, "payload"), "{name}");
        // Ed25519 is deterministic: signing the payload again gives the very token.
        let secret = AsymmetricSecretKey::<V4>::from(&hex(&text(t, "secret-key")))
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let again = PublicToken::sign(
            &secret,
            text(t, "payload").as_bytes(),
            Some(footer.as_bytes()),
            Some(implicit.as_bytes()),
        )
        .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(again, token, "{name}");
        // One changed implicit assertion (another machine) and the token no longer verifies.
        let untrusted = UntrustedToken::<Public, V4>::try_from(token.as_str())
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert!(
            PublicToken::verify(&public, &untrusted, None, Some(b"another machine")).is_err(),
            "{name}"
        );
    }
}

#[test]
fn k4_public_secret_and_pid_paserks_are_the_standards() {
    // The public key's PASERK, which also parses back; its id's (`k4.pid`).
    for (file, pid) in [("k4.public.json", false), ("k4.pid.json", true)] {
        for t in vectors(file) {
            let name = text(&t, "name");
            let key = AsymmetricPublicKey::<V4>::from(&hex(&text(&t, "key")));
            if t["expect-fail"].as_bool() == Some(true) {
                assert!(key.is_err(), "{name} must fail");
                continue;
            }
            let key = key.unwrap_or_else(|e| panic!("{name}: {e:?}"));
            if pid {
                assert_eq!(paserk(&Id::from(&key)), text(&t, "paserk"), "{name}");
                continue;
            }
            assert_eq!(paserk(&key), text(&t, "paserk"), "{name}");
            let parsed = AsymmetricPublicKey::<V4>::try_from(text(&t, "paserk").as_str())
                .unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_eq!(parsed.as_bytes(), key.as_bytes(), "{name}");
        }
    }
    for t in vectors("k4.secret.json") {
        let name = text(&t, "name");
        if name == "k4.secret-1" {
            // An all-zero seed: pasetors 0.8.1 panics on it (ed25519-compact's `from_seed`), so
            // the lease code refuses it before pasetors sees it (see the next test).
            continue;
        }
        let key = AsymmetricSecretKey::<V4>::from(&hex(&text(&t, "key")));
        if t["expect-fail"].as_bool() == Some(true) {
            // A short key is refused; a wrong-version public half fails to pair with it.
            let paired = key
                .ok()
                .and_then(|k| AsymmetricPublicKey::<V4>::try_from(&k).ok());
            let public = hex(&text(&t, "public-key"));
            assert!(
                paired.is_none_or(|p| p.as_bytes() != public.as_slice()),
                "{name} must fail"
            );
            continue;
        }
        let key = key.unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(paserk(&key), text(&t, "paserk"), "{name}");
    }
}

#[test]
fn a_key_file_with_the_all_zero_seed_vector_is_refused_without_a_panic() {
    let t = vectors("k4.secret.json")
        .into_iter()
        .find(|t| text(t, "name") == "k4.secret-1")
        .unwrap_or_else(|| panic!("k4.secret-1"));
    let file = format!("k1={}\n", text(&t, "paserk"));
    let err = polar_license::lease::SigningKey::from_file_text(&file).map(|k| k.kid().to_string());
    assert!(err.is_err(), "{err:?}");
    // The two good secret vectors are read, and give the vectors' public keys.
    for t in vectors("k4.secret.json")
        .iter()
        .filter(|t| t["expect-fail"].as_bool() == Some(false) && text(t, "name") != "k4.secret-1")
    {
        let key =
            polar_license::lease::SigningKey::from_file_text(&format!("k1={}", text(t, "paserk")))
                .unwrap_or_else(|e| panic!("{}: {e}", text(t, "name")));
        let public = AsymmetricPublicKey::<V4>::from(&hex(&text(t, "public-key")))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(key.public_paserk(), paserk(&public));
    }
}

/// The relay keys a client trusts are read by the core itself (issue #38: the npm engine
/// carries no pasetors): every k4.public vector is read, and anything else that is not
/// exactly `k4.public.` and 32 bytes of unpadded base64url is refused, as pasetors refuses it.
#[test]
fn relay_keys_read_every_k4_public_vector_and_refuse_the_rest() {
    use polar_license::lease::RelayKeys;
    for t in vectors("k4.public.json") {
        if t["expect-fail"].as_bool() == Some(true) {
            continue;
        }
        let pair = format!("k={}", text(&t, "paserk"));
        assert!(RelayKeys::parse(&pair).is_ok(), "{}", text(&t, "name"));
    }
    let good = "k4.public.cHFyc3R1dnd4eXp7fH1-f4CBgoOEhYaHiImKi4yNjo8";
    let encoded = &good["k4.public.".len()..];
    let bad = [
        format!("k4.public.{}", &encoded[..42]),
        format!("k4.public.{encoded}A"),
        format!("k4.public.{encoded}="),
        format!("k4.public.{}+{}", &encoded[..20], &encoded[21..]),
        format!("k3.public.{encoded}"),
        format!("k4.secret.{encoded}"),
        format!("k4.public.{encoded}.x"),
        "k4.public.".to_string(),
    ];
    for paserk in bad {
        let ours = RelayKeys::parse(&format!("k={paserk}")).is_ok();
        let theirs = AsymmetricPublicKey::<V4>::try_from(paserk.as_str()).is_ok();
        assert!(!ours, "{paserk} must be refused");
        assert_eq!(ours, theirs, "{paserk}");
    }
}
