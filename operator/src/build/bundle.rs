//! A zone bundle as ConfigMaps, sharded so that every ConfigMap stays at most 256 KiB
//! including its metadata, and the inverse that satellites use to read it back.
//!
//! **Layout.** The bundle's JSON (serde_json, compact, maps sorted) is cut into items —
//! each check, each machine with its check indices, each remote assignment — and the items
//! are packed in order into shards of at most [`SHARD_DATA_BYTES`] of data, counted as the
//! bytes the items take once escaped into a JSON string (the way the API server receives
//! them). So checks come first (split over several shards when they do not fit in one),
//! then machines by sorted host name, each shard holding one contiguous range, then remote
//! assignments. A shard's data keys:
//!
//! | key | content | where |
//! | --- | --- | --- |
//! | `manifest.json` | zone, bundle hash, shard count, agent settings, item counts | shard 0 only |
//! | `checks.json` | `{"offset": first check index, "items": [checks]}` | shards with checks |
//! | `machines.json` | `{"host": [check indices], ...}` | shards with machines |
//! | `remote.json` | `{"offset": first index, "items": [remote assignments]}` | shards with remote checks |
//!
//! **Names and labels.** Shard `i` is `vedette-zone-<zone>-bundle-<i>`, labelled with the
//! zone, `app.kubernetes.io/component: bundle`, `vedette.dev/bundle-shard: "<i>"` and the
//! first 16 hex digits of the bundle hash as `vedette.dev/bundle-hash` (label values hold 63
//! characters, a SHA-256 takes 64); the annotations hold the full hash and the shard count.
//!
//! **Reading.** [`bundle_from_config_maps`] takes whatever ConfigMaps of the zone a
//! satellite sees. Shard 0's manifest decides the hash and shard count; every other shard
//! must be there with that same hash, or the bundle is incomplete (mid-update) and the
//! satellite keeps serving the one it has. Shards numbered beyond the count are leftovers of
//! a larger bundle and are ignored. The reassembled bundle must hash to the manifest's hash,
//! so a bundle read back is exactly the bundle written.
//!
//! The reconciler should write shards 1.. before shard 0 and delete leftovers after, so that
//! a reader never sees a manifest whose shards are not written yet for long.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use serde::Serialize;
pub use vedette_agent::bundle_shards::{
    BundleError, CHECKS_KEY, FORMAT, HASH_ANNOTATION, HASH_LABEL, MACHINES_KEY, MANIFEST_KEY,
    MAX_CONFIG_MAP_BYTES, Manifest, REMOTE_KEY, SHARD_DATA_BYTES, SHARD_LABEL, SHARDS_ANNOTATION,
    SHORT_HASH_LENGTH, bundle_from_config_maps,
};
use vedette_agent::plan::{ZoneBundle, content_hash};
use vedette_crds::MonitorZone;

use super::BuildContext;
use super::common::{Component, bundle_shard_name, object_meta, zone_name};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Checks,
    Machines,
    Remote,
}

/// One item of the bundle as JSON text, and what it costs in a shard.
struct Piece {
    section: Section,
    text: String,
    cost: usize,
}

/// The items of one shard, as JSON text per section.
#[derive(Default)]
struct Shard {
    checks_offset: usize,
    checks: Vec<String>,
    machines: Vec<String>,
    remote_offset: usize,
    remote: Vec<String>,
    cost: usize,
}

/// What each section's key and wrapper may take at most once escaped:
/// `"checks.json":"{\"offset\":4294967295,\"items\":[]}",`.
const SECTION_OVERHEAD: usize = 64;

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
    let hash = content_hash(bundle);
    let mut manifest = Manifest {
        format: FORMAT,
        zone: bundle.zone.clone(),
        bundle_hash: hash.clone(),
        shards: u32::MAX,
        settings: bundle.settings.clone(),
        checks: count(bundle.checks.len())?,
        machines: count(bundle.machines.len())?,
        remote: count(bundle.remote.len())?,
    };
    // Sized with the widest shard count, so the real one never takes more.
    let manifest_cost = escaped_len(&to_json(&manifest)?) + MANIFEST_KEY.len() + 6;
    let shards = pack(pieces(bundle)?, manifest_cost, shard_data_bytes)?;
    manifest.shards = count(shards.len())?;
    let manifest_text = to_json(&manifest)?;
    let total = shards.len();
    shards
        .into_iter()
        .enumerate()
        .map(|(index, shard)| {
            let manifest = (index == 0).then_some(manifest_text.as_str());
            let config_map = shard_config_map(zone, ctx, &hash, index, total, manifest, shard);
            check_size(config_map)
        })
        .collect()
}

/// Every item of the bundle in order: checks, machines by name, remote assignments.
fn pieces(bundle: &ZoneBundle) -> Result<Vec<Piece>, BundleError> {
    let checks = bundle
        .checks
        .iter()
        .map(|check| piece(Section::Checks, to_json(check)?));
    let machines = bundle.machines.iter().map(|(host, indices)| {
        piece(
            Section::Machines,
            format!("{}:{}", to_json(host)?, to_json(indices)?),
        )
    });
    let remote = bundle
        .remote
        .iter()
        .map(|assignment| piece(Section::Remote, to_json(assignment)?));
    checks.chain(machines).chain(remote).collect()
}

fn piece(section: Section, text: String) -> Result<Piece, BundleError> {
    // The item itself plus the comma that separates it from the next one.
    let cost = escaped_len(&text) + 1;
    Ok(Piece {
        section,
        text,
        cost,
    })
}

/// Packs pieces greedily, in order, into shards whose data, as JSON, takes at most
/// `shard_data_bytes`; shard 0 also carries the manifest. Always at least one shard, so an
/// empty bundle has a manifest.
fn pack(
    pieces: Vec<Piece>,
    manifest_cost: usize,
    shard_data_bytes: usize,
) -> Result<Vec<Shard>, BundleError> {
    let room = |index: usize| {
        let manifest = if index == 0 { manifest_cost } else { 0 };
        shard_data_bytes.saturating_sub(manifest + 3 * SECTION_OVERHEAD + 2)
    };
    let mut shards = vec![Shard::default()];
    let (mut checks_seen, mut remote_seen) = (0, 0);
    for piece in pieces {
        let mut index = shards.len() - 1;
        if shards[index].cost + piece.cost > room(index) {
            // Later shards have the most room; shard 0 may stay with the manifest alone.
            if piece.cost > room(index + 1) {
                return Err(BundleError::TooLarge {
                    what: describe(&piece),
                    bytes: piece.cost,
                    limit: room(index + 1),
                });
            }
            shards.push(Shard::default());
            index += 1;
        }
        let shard = &mut shards[index];
        shard.cost += piece.cost;
        match piece.section {
            Section::Checks => {
                if shard.checks.is_empty() {
                    shard.checks_offset = checks_seen;
                }
                checks_seen += 1;
                shard.checks.push(piece.text);
            }
            Section::Machines => shard.machines.push(piece.text),
            Section::Remote => {
                if shard.remote.is_empty() {
                    shard.remote_offset = remote_seen;
                }
                remote_seen += 1;
                shard.remote.push(piece.text);
            }
        }
    }
    Ok(shards)
}

fn describe(piece: &Piece) -> String {
    let start: String = piece.text.chars().take(80).collect();
    let section = match piece.section {
        Section::Checks => "check",
        Section::Machines => "machine",
        Section::Remote => "remote assignment",
    };
    format!("{section} {start}…")
}

fn shard_config_map(
    zone: &MonitorZone,
    ctx: &BuildContext,
    hash: &str,
    index: usize,
    total: usize,
    manifest: Option<&str>,
    shard: Shard,
) -> ConfigMap {
    let name = zone_name(zone);
    let mut metadata = object_meta(
        zone,
        ctx,
        bundle_shard_name(&name, index),
        Component::Bundle,
    );
    let labels = metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(SHARD_LABEL.to_owned(), index.to_string());
    labels.insert(
        HASH_LABEL.to_owned(),
        hash[..SHORT_HASH_LENGTH.min(hash.len())].to_owned(),
    );
    metadata.annotations = Some(BTreeMap::from([
        (HASH_ANNOTATION.to_owned(), hash.to_owned()),
        (SHARDS_ANNOTATION.to_owned(), total.to_string()),
    ]));
    let mut data = BTreeMap::new();
    if let Some(manifest) = manifest {
        data.insert(MANIFEST_KEY.to_owned(), manifest.to_owned());
    }
    if !shard.checks.is_empty() {
        let items = shard.checks.join(",");
        let text = format!(r#"{{"offset":{},"items":[{items}]}}"#, shard.checks_offset);
        data.insert(CHECKS_KEY.to_owned(), text);
    }
    if !shard.machines.is_empty() {
        data.insert(
            MACHINES_KEY.to_owned(),
            format!("{{{}}}", shard.machines.join(",")),
        );
    }
    if !shard.remote.is_empty() {
        let items = shard.remote.join(",");
        let text = format!(r#"{{"offset":{},"items":[{items}]}}"#, shard.remote_offset);
        data.insert(REMOTE_KEY.to_owned(), text);
    }
    ConfigMap {
        metadata,
        data: Some(data),
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

fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String, BundleError> {
    serde_json::to_string(value).map_err(|error| BundleError::Serialize(error.to_string()))
}

/// Bytes `text` takes as the content of a JSON string.
fn escaped_len(text: &str) -> usize {
    serde_json::to_string(text).map_or(usize::MAX / 2, |quoted| quoted.len() - 2)
}

fn count(length: usize) -> Result<u32, BundleError> {
    u32::try_from(length).map_err(|_| BundleError::Serialize(format!("{length} items overflow")))
}

#[cfg(test)]
#[path = "bundle_tests.rs"]
mod tests;
