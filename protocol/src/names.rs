//! Names and labels of a zone's objects that both the operator (which writes them) and the
//! satellites (which find their bundle and their peers' Leases by them) must agree on.
//!
//! Names and label values are at most 63 characters. A zone name that does not fit, or that
//! has characters a label does not allow (dots), is shortened and made unique again with a
//! hash suffix of the full zone name.

use sha2::{Digest, Sha256};

/// Longest name or label value the builders produce.
pub const MAX_NAME_LENGTH: usize = 63;
/// `app.kubernetes.io/component`: `satellite`, `agent` or `bundle`.
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
/// The zone an object belongs to (shortened like names when needed).
pub const LABEL_ZONE: &str = "vedette.dev/zone";
/// `vedette-zone-<zone>-<suffix>`, at most 63 characters: a long or dotted zone name is
/// shortened and followed by 8 hex characters of its hash, the suffix is always kept whole.
pub fn object_name(zone: &str, suffix: &str) -> String {
    let prefix = "vedette-zone-";
    let plain = format!("{prefix}{zone}-{suffix}");
    if plain.len() <= MAX_NAME_LENGTH && !zone.contains('.') {
        return plain;
    }
    let hash = short_hash(zone, 8);
    let room = MAX_NAME_LENGTH.saturating_sub(prefix.len() + suffix.len() + hash.len() + 2);
    let shortened = zone.replace('.', "-");
    let shortened = truncate(&shortened, room).trim_end_matches('-');
    format!("{prefix}{shortened}-{hash}-{suffix}")
}

/// The Secret holding the values of the Secrets a zone's checks read
/// (`vedette-zone-<zone>-check-secrets`), written by the masters, read by the zone's
/// satellites.
pub fn check_secrets_name(zone: &str) -> String {
    object_name(zone, "check-secrets")
}

/// The zone name as a label value: itself when it fits in 63 characters, otherwise
/// shortened with a hash suffix (label values may hold dots, so only length matters).
pub fn zone_label_value(zone: &str) -> String {
    if zone.len() <= MAX_NAME_LENGTH {
        return zone.to_owned();
    }
    let hash = short_hash(zone, 8);
    let shortened = truncate(zone, MAX_NAME_LENGTH - hash.len() - 1).trim_end_matches(['-', '.']);
    format!("{shortened}-{hash}")
}

/// The longest prefix of `text` of at most `length` bytes that ends on a character boundary.
fn truncate(text: &str, length: usize) -> &str {
    let mut end = length.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The first `length` hex characters of the SHA-256 of `text`.
pub fn short_hash(text: &str, length: usize) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex[..length.min(hex.len())].to_owned()
}

/// Name of the Lease by which satellite replica `replica` of `zone` says it is alive.
pub fn satellite_lease_name(zone: &str, replica: &str) -> String {
    object_name(zone, &format!("satellite-{replica}"))
}
