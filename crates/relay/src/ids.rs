//! The ids the relay reads once and derives its stored state from: an organization's in its
//! one canonical form ([`OrgId`]), a UUID's ([`canonical_uuid`]), and a 32-byte id's hex (a
//! stored entry's, a roster digest's: [`hex_id`], [`id_of_hex`]). A leaf: the requests' asks,
//! the store and the parts that serve them all take their ids from here, and it names none of
//! them.

use polar_license_rules::CheckedBody;

/// An organization id in its one canonical form: a UUID v4, hyphenated, lower case (issue #76
/// finding 1). Polar reads `2D4F…`, `{2d4f…}`, `2d4f…` without hyphens and `urn:uuid:2d4f…` as
/// the same organization; every id the relay derives from an organization (a seat pool's, a
/// usage buffer's, a per-key bucket's, a verdict's) is made from this form only, so that no
/// spelling of one id names stored state of its own. Made only by [`OrgId::parse`] (Polar's
/// rules, at the door) or from a body Polar's rules checked ([`OrgId::checked`]): an unparsed
/// string cannot reach a store id by type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct OrgId(String);

impl OrgId {
    /// `text` as Polar's rules read an organization id (a UUID v4 in any spelling the `uuid`
    /// crate reads, as pydantic does), canonical; `None` when Polar would refuse it.
    pub(crate) fn parse(text: &str) -> Option<OrgId> {
        let id = uuid::Uuid::try_parse(text).ok()?;
        (id.get_version_num() == 4 && id.get_variant() == uuid::Variant::RFC4122)
            .then(|| OrgId(id.hyphenated().to_string()))
    }

    /// The organization of a body Polar's rules accepted: already canonical
    /// (`polar_license_rules::check_body` writes every id hyphenated, lower case).
    pub(crate) fn checked(checked: &CheckedBody) -> OrgId {
        OrgId(checked.organization_id.clone())
    }

    /// The canonical text.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// A UUID in any spelling the `uuid` crate reads, canonical (hyphenated, lower case): a seat's
/// id, an activation's id. `None` when it is no UUID.
pub(crate) fn canonical_uuid(text: &str) -> Option<String> {
    uuid::Uuid::try_parse(text)
        .ok()
        .map(|id| id.hyphenated().to_string())
}

/// Lowercase hex of a 32-byte id (an entry's, a roster digest's): a storage key's tail.
pub(crate) fn hex_id(id: &[u8; 32]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// [`hex_id`] read back; `None` unless 64 hex digits.
pub(crate) fn id_of_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}
