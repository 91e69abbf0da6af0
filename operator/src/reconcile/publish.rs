//! Publishing a zone: server-side apply (one field manager, forced) of every object that
//! differs from what was last applied, then deletion of the zone's objects no longer wanted
//! (a bundle shard that disappeared, the DaemonSet of a zone whose agents were disabled).
//! Objects of zones that no longer exist are left to the garbage collector: they carry the
//! zone as their controlling owner.

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::ResourceExt;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use vedette_crds::MonitorZone;
use vedette_protocol::plan::ZoneBundle;

use super::desired::{self, Desired};
use super::error::{Error, Result};
use super::owned::{KINDS, OwnedIndex, OwnedKey};
use crate::build::BuildContext;
use crate::build::common::{MANAGER, zone_label_value};
use crate::compile::bundle_hash;
use crate::metrics::Metrics;

/// What every zone shares of the build context.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Namespace of the zones' objects.
    pub namespace: String,
    /// Image of `vedette-agent`.
    pub image: String,
    /// URL satellites report to.
    pub masters_url: String,
}

/// Applies zones' objects.
pub struct Publisher {
    client: kube::Client,
    settings: Settings,
    owned: Arc<OwnedIndex>,
    metrics: Arc<Metrics>,
}

impl Publisher {
    /// A publisher writing with `client`.
    pub fn new(
        client: kube::Client,
        settings: Settings,
        owned: Arc<OwnedIndex>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            client,
            settings,
            owned,
            metrics,
        }
    }

    /// Publishes one zone; returns how many writes it took.
    pub async fn zone(&self, zone: &MonitorZone, bundle: &ZoneBundle) -> Result<usize> {
        let ctx = BuildContext {
            namespace: self.settings.namespace.clone(),
            image: self.settings.image.clone(),
            masters_url: self.settings.masters_url.clone(),
            bundle_hash: bundle_hash(bundle),
        };
        let objects = desired::objects(zone, &ctx, bundle)?;
        let label = zone_label_value(&zone.name_any());
        let mut writes = 0;
        for object in &objects {
            if self.owned.applied_hash(&object.key).as_deref() == Some(object.hash.as_str()) {
                continue;
            }
            self.apply(object).await?;
            self.owned
                .applied(object.key.clone(), label.clone(), object.hash.clone());
            writes += 1;
        }
        let wanted: BTreeSet<&OwnedKey> = objects.iter().map(|o| &o.key).collect();
        for key in self.owned.of_zone(&label) {
            if !wanted.contains(&key) {
                self.delete(&key).await?;
                self.owned.deleted(&key);
                writes += 1;
            }
        }
        Ok(writes)
    }

    async fn apply(&self, object: &Desired) -> Result<()> {
        let api = self.api(&object.resource, &object.key.namespace);
        let params = PatchParams::apply(MANAGER).force();
        api.patch(&object.key.name, &params, &Patch::Apply(&object.value))
            .await
            .map_err(|source| Error::Apply {
                kind: object.key.kind.clone(),
                name: object.key.to_string(),
                source,
            })?;
        self.metrics.wrote(&object.key.kind, "apply");
        tracing::info!(message = "Applied.", object = %object.key);
        Ok(())
    }

    async fn delete(&self, key: &OwnedKey) -> Result<()> {
        let Some(resource) = resource_of(&key.kind) else {
            return Ok(());
        };
        let api = self.api(&resource, &key.namespace);
        let result = api.delete(&key.name, &DeleteParams::background()).await;
        self.metrics.wrote(&key.kind, "delete");
        match result {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => {
                return Err(Error::Delete {
                    kind: key.kind.clone(),
                    name: key.to_string(),
                    source,
                });
            }
        }
        tracing::info!(message = "Deleted what is no longer wanted.", object = %key);
        Ok(())
    }

    fn api(&self, resource: &ApiResource, namespace: &str) -> Api<DynamicObject> {
        if namespace.is_empty() {
            Api::all_with(self.client.clone(), resource)
        } else {
            Api::namespaced_with(self.client.clone(), namespace, resource)
        }
    }
}

/// The API resource of an owned kind.
fn resource_of(kind: &str) -> Option<ApiResource> {
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
    use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
    debug_assert!(KINDS.contains(&kind), "{kind} is not an owned kind");
    Some(match kind {
        "ConfigMap" => ApiResource::erase::<ConfigMap>(&()),
        "StatefulSet" => ApiResource::erase::<StatefulSet>(&()),
        "Deployment" => ApiResource::erase::<Deployment>(&()),
        "Service" => ApiResource::erase::<Service>(&()),
        "PodDisruptionBudget" => ApiResource::erase::<PodDisruptionBudget>(&()),
        "DaemonSet" => ApiResource::erase::<DaemonSet>(&()),
        "ServiceAccount" => ApiResource::erase::<ServiceAccount>(&()),
        "Role" => ApiResource::erase::<Role>(&()),
        "RoleBinding" => ApiResource::erase::<RoleBinding>(&()),
        "ClusterRole" => ApiResource::erase::<ClusterRole>(&()),
        "ClusterRoleBinding" => ApiResource::erase::<ClusterRoleBinding>(&()),
        _ => return None,
    })
}
