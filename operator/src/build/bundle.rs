//! A zone bundle as ConfigMaps: the shards of [`vedette_protocol::bundle_shards`] (which
//! documents the layout and writes and reads it), each wrapped in a ConfigMap
//! `vedette-zone-<zone>-bundle-<i>` labelled with the zone, `app.kubernetes.io/component:
//! bundle` and the shard's labels and annotations, and checked to stay at most 256 KiB
//! including its metadata. Satellites read them back with [`bundle_from_config_maps`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use vedette_crds::MonitorZone;
pub use vedette_protocol::bundle_shards::{
    BundleError, CHECKS_KEY, FORMAT, HASH_ANNOTATION, HASH_LABEL, MACHINES_KEY, MANIFEST_KEY,
    MAX_CONFIG_MAP_BYTES, Manifest, REMOTE_KEY, SHARD_DATA_BYTES, SHARD_LABEL, SHARDS_ANNOTATION,
    SHORT_HASH_LENGTH, Shard, write_shards,
};
use vedette_protocol::plan::ZoneBundle;
pub use vedette_satellite::bundle_source::bundle_from_config_maps;

use super::BuildContext;
use super::common::{Component, bundle_shard_name, object_meta, zone_name};

/// The bundle as ConfigMaps `vedette-zone-<zone>-bundle-<i>`, shard 0 first. Deterministic:
/// the same bundle gives the same ConfigMaps, byte for byte.
pub fn bundle_config_maps(
    zone: &MonitorZone,
    ctx: &BuildContext,
    bundle: &ZoneBundle,
) -> Result<Vec<ConfigMap>, BundleError> {
    shard_bundle(zone, ctx, bundle, SHARD_DATA_BYTES)
}

/// [`bundle_config_maps`] with `shard_data_bytes` of data per shard (tests use small shards
/// to exercise splitting cheaply).
fn shard_bundle(
    zone: &MonitorZone,
    ctx: &BuildContext,
    bundle: &ZoneBundle,
    shard_data_bytes: usize,
) -> Result<Vec<ConfigMap>, BundleError> {
    write_shards(bundle, shard_data_bytes)?
        .into_iter()
        .map(|shard| check_size(shard_config_map(zone, ctx, shard)))
        .collect()
}

fn shard_config_map(zone: &MonitorZone, ctx: &BuildContext, shard: Shard) -> ConfigMap {
    let name = zone_name(zone);
    let mut metadata = object_meta(
        zone,
        ctx,
        bundle_shard_name(&name, shard.index),
        Component::Bundle,
    );
    metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .extend(shard.labels());
    metadata.annotations = Some(shard.annotations());
    ConfigMap {
        metadata,
        data: Some(shard.data),
        ..ConfigMap::default()
    }
}

/// The ConfigMap, when its JSON is within [`MAX_CONFIG_MAP_BYTES`].
fn check_size(config_map: ConfigMap) -> Result<ConfigMap, BundleError> {
    let bytes = config_map_bytes(&config_map);
    if bytes > MAX_CONFIG_MAP_BYTES {
        return Err(BundleError::TooLarge {
            what: format!("config map {}", config_map.name_any()),
            bytes,
            limit: MAX_CONFIG_MAP_BYTES,
        });
    }
    Ok(config_map)
}

/// Size of a ConfigMap as JSON, metadata included: what the API server receives.
pub fn config_map_bytes(config_map: &ConfigMap) -> usize {
    serde_json::to_vec(config_map).map_or(usize::MAX, |bytes| bytes.len())
}

#[cfg(test)]
#[path = "bundle_tests.rs"]
mod tests;
