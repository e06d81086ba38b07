//! Regression tests for what the fuzz targets (`fuzz/`, `scripts/fuzz.sh`) found; each names
//! the target that found it. The first two were fixed in a47706d.

use polar_license::cache::{self, MacKey};
use polar_license::grace::{Record, StoredActivation};
use polar_license::metadata::check_uuid_v4;
use polar_license::{
    ActivateRequest, Api, DeactivateRequest, Key, MetaValue, Metadata, Reason, Server,
    ValidateRequest,
};

const ORG: &str = "d2fcbff8-108b-411e-bf2b-6383e0a8802d";
/// `ORG` with the variant nibble (first digit of the 4th group) set to 6: version 4, but the
/// Microsoft/NCS variant, not RFC 4122.
const NOT_RFC4122: &str = "d2fcbff8-108b-411e-6f2b-6383e0a8802d";

/// Found by `requests`. Polar's pydantic-core checks a `UUID4` field's version *and* its
/// variant (`uuid.get_version_num() != 4 || uuid.get_variant() != Variant::RFC4122` gives 422
/// `uuid_version`), but `check_uuid_v4` read only the version nibble, so the client sent what
/// Polar answers with 422 (and the emulator accepted it too).
#[test]
fn a_version_4_uuid_of_another_variant_is_refused_locally() {
    assert!(check_uuid_v4("organization_id", NOT_RFC4122).is_err());
    assert!(Api::new(NOT_RFC4122, &Server::Production).is_err());
    let api = Api::new(ORG, &Server::Production).expect("a good org");
    let key = "MYAPP-50B22C51-07BD-4160-A61E-19B6CC6ED415";
    let err = api
        .validate_request(&ValidateRequest::new(key).activation_id(NOT_RFC4122))
        .expect_err("activation_id of another variant");
    assert_eq!(err.reason(), Reason::InvalidInput);
    assert!(api
        .deactivate_request(&DeactivateRequest::new(key, NOT_RFC4122))
        .is_err());
}

#[test]
fn version_4_rfc4122_uuids_are_still_accepted() {
    // The fix must keep these: every RFC 4122 variant digit (8, 9, a, b), any case.
    for digit in ['8', '9', 'a', 'b', 'A', 'B'] {
        let id = format!("d2fcbff8-108b-411e-{digit}f2b-6383e0a8802d");
        assert!(check_uuid_v4("x", &id).is_ok(), "{id}");
    }
    let api = Api::new(ORG, &Server::Production).expect("org");
    assert!(api
        .activate_request(&ActivateRequest::new("K", "label"))
        .is_ok());
}

/// Found by `cache_roundtrip` and `requests`. Without serde_json's `float_roundtrip` feature
/// about 10 % of floats with 16–17 significant digits came back one ulp off after the cache's
/// encode -> decode, so a remembered activation's float condition changed: the next `check`
/// sent `985.6906946328696` where `activate` had sent `985.6906946328695`, Polar (exact float
/// parsing) answered `conditions_mismatch`, and a good verdict bound to such a condition never
/// matched its query again (no cache answer).
#[test]
fn a_float_condition_survives_the_cache() {
    let mut conditions = Metadata::new();
    conditions.insert("ratio".into(), MetaValue::Float(985.690_694_632_869_5));
    let record = Record::with_activation(
        ORG,
        &Key::new("MYAPP-50B22C51-07BD-4160-A61E-19B6CC6ED415"),
        StoredActivation {
            id: "21bf892b-2e46-4f50-8060-8fdaf02aa482".into(),
            label: "laptop".into(),
            conditions,
            created_at: 1_790_000_000,
        },
        1_790_000_000,
    );
    let key = MacKey::derive("K", ORG, &[7; 32], None);
    let back = cache::decode(&cache::encode(&record, &key), &key).expect("decodes");
    assert_eq!(back, record);
}

#[test]
fn short_decimal_floats_survive_the_cache() {
    let mut conditions = Metadata::new();
    for (i, x) in [0.1, 2.5, 3.25, 1e-7, 123456.789].into_iter().enumerate() {
        conditions.insert(format!("f{i}"), MetaValue::Float(x));
    }
    let record = Record::with_activation(
        ORG,
        &Key::new("K"),
        StoredActivation {
            id: "a".into(),
            label: String::new(),
            conditions,
            created_at: 0,
        },
        0,
    );
    let key = MacKey::derive("K", ORG, &[7; 32], None);
    assert_eq!(
        cache::decode(&cache::encode(&record, &key), &key).expect("decodes"),
        record
    );
}

/// Found by `cache_roundtrip` (issue #17's record codec): a record whose sequence number is past
/// `i64::MAX` (a `u64`, as the format has always allowed) did not decode: the core's reader
/// read it as a signed integer. Our own encoding must always decode, to the same record.
#[test]
fn a_sequence_number_past_i64_survives_the_cache() {
    let key = MacKey::derive("K", ORG, &[7; 32], None);
    for seq in [u64::MAX, 1 << 63, 14_159_252_357_262_871_170] {
        let mut record = Record::new(ORG, &Key::new("MYAPP-50B22C51-07BD"), -134_217_783);
        record.seq = seq;
        record.stalled = u32::MAX;
        let bytes = cache::encode(&record, &key);
        assert_eq!(cache::decode(&bytes, &key), Ok(record), "seq {seq}");
    }
}
