//! The zone's check-secrets Secret: the values of the Secrets its checks read (HTTP
//! credentials, SNMP pass phrases, database passwords), read one by one from the rule sets'
//! namespaces and written, in the operator's namespace, for the zone's satellites, which give
//! each machine's plan only its own. Written when the values change (one write per change;
//! its content hash is kept in an annotation, so a restarted master writes nothing new) and
//! read again at most every [`REFRESH`], so a rotated password reaches the agents within it.
//! Never logged: only Secret names and keys are.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use vedette_crds::MonitorZone;
use vedette_protocol::check_secrets::data_key;
use vedette_protocol::names::check_secrets_name;
use vedette_protocol::plan::{SecretValues, ZoneBundle, content_hash};

use super::owned::APPLIED_HASH_ANNOTATION;
use crate::build::common::{MANAGER, owner_reference};

/// How often the referenced Secrets are read again while the bundle stays the same.
pub const REFRESH: Duration = Duration::from_secs(60);

/// One referenced key: `(namespace, name, key)`.
type Reference = (String, String, String);

/// Every Secret key the checks of `bundle` read.
pub fn references(bundle: &ZoneBundle) -> BTreeSet<Reference> {
    bundle
        .checks
        .iter()
        .flat_map(|check| check.check.secrets())
        .filter_map(|secret| {
            let namespace = secret.namespace.clone()?;
            Some((namespace, secret.name.clone(), secret.key.clone()))
        })
        .collect()
}

/// The zone Secret holding `values`, with their hash in an annotation.
pub fn zone_secret(zone: &MonitorZone, namespace: &str, values: &SecretValues) -> Secret {
    let data: BTreeMap<String, ByteString> = values
        .0
        .iter()
        .filter_map(|(plan_key, value)| {
            Some((data_key(plan_key)?, ByteString(value.as_bytes().to_vec())))
        })
        .collect();
    let mut secret = Secret {
        data: Some(data),
        type_: Some("Opaque".to_owned()),
        ..Secret::default()
    };
    secret.metadata.name = Some(check_secrets_name(&zone.name_any()));
    secret.metadata.namespace = Some(namespace.to_owned());
    secret.metadata.owner_references = Some(vec![owner_reference(zone)]);
    secret.metadata.labels = Some(BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "vedette-operator".to_owned(),
        ),
        (
            "app.kubernetes.io/component".to_owned(),
            "check-secrets".to_owned(),
        ),
    ]));
    secret.metadata.annotations = Some(BTreeMap::from([(
        APPLIED_HASH_ANNOTATION.to_owned(),
        content_hash(values),
    )]));
    secret
}

/// What was last written for a zone.
struct Written {
    bundle_hash: String,
    values_hash: String,
    read_at: Instant,
}

/// Writes zones' check-secrets Secrets.
pub struct CheckSecrets {
    client: kube::Client,
    namespace: String,
    written: Mutex<HashMap<String, Written>>,
}

impl CheckSecrets {
    /// Writing into `namespace` (the operator's).
    pub fn new(client: kube::Client, namespace: String) -> Self {
        Self {
            client,
            namespace,
            written: Mutex::new(HashMap::new()),
        }
    }

    /// Brings the zone's Secret up to date unless it was read moments ago for the same
    /// bundle; returns how many writes it took.
    pub async fn zone(&self, zone: &MonitorZone, bundle: &ZoneBundle) -> kube::Result<usize> {
        let name = zone.name_any();
        let bundle_hash = content_hash(bundle);
        if self.fresh(&name, &bundle_hash) {
            return Ok(0);
        }
        let values = self.read_values(&references(bundle)).await;
        let values_hash = content_hash(&values);
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let secret_name = check_secrets_name(&name);
        let known = self.known_hash(&name);
        let current = match known {
            Some(hash) => Some(hash),
            None => api
                .get_opt(&secret_name)
                .await?
                .and_then(|s| s.annotations().get(APPLIED_HASH_ANNOTATION).cloned()),
        };
        let mut writes = 0;
        if values.is_empty() {
            if current.is_some() {
                match api.delete(&secret_name, &DeleteParams::background()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(status)) if status.code == 404 => {}
                    Err(error) => return Err(error),
                }
                writes += 1;
            }
        } else if current.as_deref() != Some(values_hash.as_str()) {
            let secret = zone_secret(zone, &self.namespace, &values);
            let params = PatchParams::apply(MANAGER).force();
            api.patch(&secret_name, &params, &Patch::Apply(&secret))
                .await?;
            tracing::info!(message = "Applied the zone's check secrets.", zone = %name, keys = ?values);
            writes += 1;
        }
        let written = Written {
            bundle_hash,
            values_hash: if values.is_empty() {
                String::new()
            } else {
                values_hash
            },
            read_at: Instant::now(),
        };
        self.lock().insert(name, written);
        Ok(writes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Written>> {
        self.written.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fresh(&self, zone: &str, bundle_hash: &str) -> bool {
        self.lock()
            .get(zone)
            .is_some_and(|w| w.bundle_hash == bundle_hash && w.read_at.elapsed() < REFRESH)
    }

    /// The hash last written for the zone; `Some("")` when it has no Secret.
    fn known_hash(&self, zone: &str) -> Option<String> {
        self.lock()
            .get(zone)
            .map(|w| w.values_hash.clone())
            .filter(|hash| !hash.is_empty())
    }

    /// Reads each referenced Secret once; a missing Secret or key is left out (the agent
    /// reports its check UNKNOWN, naming it) and logged by name.
    async fn read_values(&self, references: &BTreeSet<Reference>) -> SecretValues {
        let mut by_secret: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
        for (namespace, name, key) in references {
            by_secret.entry((namespace, name)).or_default().push(key);
        }
        let mut values = BTreeMap::new();
        for ((namespace, name), keys) in by_secret {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
            let secret = match api.get_opt(name).await {
                Ok(Some(secret)) => secret,
                Ok(None) => {
                    tracing::warn!(
                        message = "A Secret checks read does not exist.",
                        namespace,
                        name
                    );
                    continue;
                }
                Err(error) => {
                    tracing::warn!(message = "Failed to read a Secret checks read.", namespace, name, %error);
                    continue;
                }
            };
            for key in keys {
                match value_of(&secret, key) {
                    Some(value) => {
                        values.insert(format!("{namespace}/{name}/{key}"), value);
                    }
                    None => {
                        tracing::warn!(
                            message = "A Secret checks read has no such key.",
                            namespace,
                            name,
                            key
                        );
                    }
                }
            }
        }
        SecretValues(values)
    }
}

/// A key's value as text (`data`, or `stringData` as a client may have left it).
fn value_of(secret: &Secret, key: &str) -> Option<String> {
    if let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return String::from_utf8(bytes.0.clone()).ok();
    }
    secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vedette_protocol::check_secrets::from_data;

    #[test]
    fn the_zone_secret_holds_the_values_under_data_keys_and_their_hash() {
        let zone = MonitorZone::new(
            "core",
            serde_json::from_str(r#"{"nodeSelector": {}}"#).unwrap(),
        );
        let values = SecretValues(BTreeMap::from([(
            "shop/db/password".to_owned(),
            "s3cret".to_owned(),
        )]));
        let secret = zone_secret(&zone, "vedette-system", &values);
        assert_eq!(
            secret.metadata.name.as_deref(),
            Some("vedette-zone-core-check-secrets")
        );
        let data = secret.data.clone().unwrap();
        let read = from_data(data.iter().map(|(k, v)| (k, v.0.as_slice())));
        assert_eq!(read, values);
        assert_eq!(
            secret.annotations()[APPLIED_HASH_ANNOTATION],
            content_hash(&values)
        );
        // The values never show in Debug output (logs).
        assert!(!format!("{values:?}").contains("s3cret"));
    }
}
