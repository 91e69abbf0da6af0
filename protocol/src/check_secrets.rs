//! How the values of the Secrets a zone's checks read travel from the masters to the zone's
//! satellites: one Secret per zone (`names::check_secrets_name`) whose data keys stand for
//! `namespace/name/key` ([`data_key`], [`plan_key_of`]). Secret data keys allow only
//! `[-._a-zA-Z0-9]`; namespaces and names are DNS names (no `/`, and a namespace has no `.`),
//! a key may hold any allowed character, so it is written in hex.

use crate::plan::SecretValues;

/// The data key of `namespace/name/key`: `namespace.name.<hex of key>`.
pub fn data_key(plan_key: &str) -> Option<String> {
    let mut parts = plan_key.splitn(3, '/');
    let (namespace, name, key) = (parts.next()?, parts.next()?, parts.next()?);
    if namespace.is_empty() || namespace.contains('.') || name.is_empty() || key.is_empty() {
        return None;
    }
    let hex: String = key.bytes().map(|b| format!("{b:02x}")).collect();
    Some(format!("{namespace}.{name}.{hex}"))
}

/// The `namespace/name/key` a [`data_key`] stands for.
pub fn plan_key_of(data_key: &str) -> Option<String> {
    let (namespace, rest) = data_key.split_once('.')?;
    let (name, hex) = rest.rsplit_once('.')?;
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(format!(
        "{namespace}/{name}/{}",
        String::from_utf8(bytes).ok()?
    ))
}

/// The values a zone Secret's data holds (keys that are not [`data_key`]s and values that
/// are not UTF-8 are left out).
pub fn from_data<'a>(data: impl IntoIterator<Item = (&'a String, &'a [u8])>) -> SecretValues {
    let values = data
        .into_iter()
        .filter_map(|(key, value)| {
            let text = String::from_utf8(value.to_vec()).ok()?;
            Some((plan_key_of(key)?, text))
        })
        .collect();
    SecretValues(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_keys_round_trip_and_hold_only_allowed_characters() {
        for plan_key in ["shop/db-credentials/password", "a/b.c/key_with-dots.and_"] {
            let key = data_key(plan_key).unwrap();
            assert!(
                key.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)),
                "{key}"
            );
            assert_eq!(plan_key_of(&key).as_deref(), Some(plan_key));
        }
        assert!(data_key("no-namespace").is_none());
        assert!(plan_key_of("shop.db.zz").is_none());
    }
}
