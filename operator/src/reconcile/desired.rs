//! Everything a zone should have, rendered by the pure builders, as JSON ready for
//! server-side apply: each with the hash of its content in an annotation, so that an
//! unchanged object is recognised without reading it back. Bundle shards 1.. come before
//! shard 0 (the manifest), so readers never see a manifest whose shards are not written.

use kube::api::ApiResource;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde_json::Value;
use vedette_crds::MonitorZone;
use vedette_protocol::plan::{ZoneBundle, content_hash};

use super::error::{Error, Result};
use super::owned::{APPLIED_HASH_ANNOTATION, OwnedKey};
use crate::build::{self, BuildContext};

/// One object to apply.
#[derive(Clone, Debug)]
pub struct Desired {
    /// Which object.
    pub key: OwnedKey,
    /// Its API resource.
    pub resource: ApiResource,
    /// Its content, with the hash annotation.
    pub value: Value,
    /// The hash of its content (without the annotation).
    pub hash: String,
}

/// Every object of `zone`, in apply order.
pub fn objects(
    zone: &MonitorZone,
    ctx: &BuildContext,
    bundle: &ZoneBundle,
) -> Result<Vec<Desired>> {
    let mut shards =
        build::bundle_config_maps(zone, ctx, bundle).map_err(|source| Error::Bundle {
            zone: zone.name_any(),
            source,
        })?;
    if !shards.is_empty() {
        let manifest = shards.remove(0);
        shards.push(manifest);
    }
    let mut all = Vec::new();
    for shard in &shards {
        all.push(desired(shard)?);
    }
    all.push(desired(&build::satellite_service_account(zone, ctx))?);
    all.push(desired(&build::agent_service_account(zone, ctx))?);
    all.push(desired(&build::satellite_role(zone, ctx))?);
    all.push(desired(&build::satellite_role_binding(zone, ctx))?);
    all.push(desired(&build::satellite_cluster_role(zone))?);
    all.push(desired(&build::satellite_cluster_role_binding(zone, ctx))?);
    all.push(desired(&build::satellite_service(zone, ctx))?);
    all.push(desired(&build::satellite_peers_service(zone, ctx))?);
    all.push(desired(&build::satellite_stateful_set(zone, ctx))?);
    all.push(desired(&build::satellite_pod_disruption_budget(zone, ctx))?);
    if let Some(daemon_set) = build::agent_daemon_set(zone, ctx) {
        all.push(desired(&daemon_set)?);
    }
    Ok(all)
}

fn desired<K>(object: &K) -> Result<Desired>
where
    K: Resource<DynamicType = ()> + Serialize,
{
    let resource = ApiResource::erase::<K>(&());
    let key = OwnedKey {
        kind: resource.kind.clone(),
        namespace: object.meta().namespace.clone().unwrap_or_default(),
        name: object.meta().name.clone().unwrap_or_default(),
    };
    let mut value = serde_json::to_value(object).map_err(|source| Error::Serialize {
        what: key.to_string(),
        source,
    })?;
    let hash = content_hash(&value);
    let annotations = value["metadata"].as_object_mut().map(|meta| {
        meta.entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()))
    });
    if let Some(Value::Object(annotations)) = annotations {
        annotations.insert(
            APPLIED_HASH_ANNOTATION.to_owned(),
            Value::String(hash.clone()),
        );
    }
    Ok(Desired {
        key,
        resource,
        value,
        hash,
    })
}
