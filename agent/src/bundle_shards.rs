//! The layout of a zone bundle stored as sharded ConfigMaps, and reading it back. The
//! operator writes the shards (`vedette_operator::build::bundle`); satellites read them with
//! [`bundle_from_config_maps`]. One implementation of the format lives here so that writer
//! and reader cannot drift apart.
//!
//! Each shard's data keys: `manifest.json` (shard 0 only: zone, bundle hash, shard count,
//! agent settings, item counts), `checks.json` and `remote.json` (`{"offset": first index,
//! "items": [...]}`), `machines.json` (`{"host": [check indices]}`). Shard 0's manifest
//! decides the hash and the shard count; every other shard must carry the same hash (the
//! `vedette.dev/bundle-hash` annotation), or the bundle is incomplete (an update is under
//! way) and the reader refuses it. The reassembled bundle must hash to the manifest's hash.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::plan::{AgentSettings, PlannedCheck, RemoteAssignment, ZoneBundle, content_hash};

/// Largest ConfigMap, serialized as JSON with all its metadata.
pub const MAX_CONFIG_MAP_BYTES: usize = 256 * 1024;
/// Data per shard, leaving room below [`MAX_CONFIG_MAP_BYTES`] for metadata, the keys and
/// what the API server adds (managed fields).
pub const SHARD_DATA_BYTES: usize = 200 * 1024;
/// Label: index of the shard, from 0.
pub const SHARD_LABEL: &str = "vedette.dev/bundle-shard";
/// Label: the first [`SHORT_HASH_LENGTH`] hex digits of the bundle hash.
pub const HASH_LABEL: &str = "vedette.dev/bundle-hash";
/// Annotation: the full bundle hash (hex SHA-256 of the bundle's JSON).
pub const HASH_ANNOTATION: &str = "vedette.dev/bundle-hash";
/// Annotation: how many shards the bundle has.
pub const SHARDS_ANNOTATION: &str = "vedette.dev/bundle-shards";
/// Hex digits of the hash in [`HASH_LABEL`].
pub const SHORT_HASH_LENGTH: usize = 16;
/// Data key of the manifest, in shard 0.
pub const MANIFEST_KEY: &str = "manifest.json";
/// Data key of a shard's checks.
pub const CHECKS_KEY: &str = "checks.json";
/// Data key of a shard's machines.
pub const MACHINES_KEY: &str = "machines.json";
/// Data key of a shard's remote assignments.
pub const REMOTE_KEY: &str = "remote.json";
/// Version of this layout, in the manifest.
pub const FORMAT: u32 = 1;

/// Why a bundle cannot be written as, or read from, ConfigMaps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// One item does not fit in a shard on its own.
    #[error("{what} takes {bytes} bytes, more than the {limit} bytes a bundle shard holds")]
    TooLarge {
        /// The item or ConfigMap.
        what: String,
        /// Its size.
        bytes: usize,
        /// The limit it exceeds.
        limit: usize,
    },
    /// Serializing the bundle failed.
    #[error("failed to serialize the bundle: {0}")]
    Serialize(String),
    /// A ConfigMap is not a bundle shard (no or a bad shard label or hash annotation).
    #[error("config map {name} is not a bundle shard: {problem}")]
    NotAShard {
        /// The ConfigMap.
        name: String,
        /// What is missing.
        problem: String,
    },
    /// No shard 0, hence no manifest.
    #[error("bundle shard 0 (the manifest) is missing")]
    NoManifest,
    /// A shard the manifest counts is not there.
    #[error("bundle shard {index} of {shards} is missing")]
    MissingShard {
        /// The shard.
        index: usize,
        /// Shards the manifest counts.
        shards: usize,
    },
    /// Two ConfigMaps claim the same shard of the same bundle.
    #[error("bundle shard {index} appears more than once")]
    DuplicateShard {
        /// The shard.
        index: usize,
    },
    /// A shard belongs to another bundle than shard 0 (an update is under way).
    #[error("bundle shard {index} has hash {found}, the manifest says {expected}")]
    HashMismatch {
        /// The shard.
        index: usize,
        /// The manifest's hash.
        expected: String,
        /// The shard's hash.
        found: String,
    },
    /// A data key does not parse.
    #[error("failed to parse {key} of config map {name}: {message}")]
    Parse {
        /// The ConfigMap.
        name: String,
        /// The data key.
        key: String,
        /// The parser's message.
        message: String,
    },
    /// The shards parse but do not make up the bundle the manifest describes.
    #[error("bundle shards are inconsistent: {0}")]
    Inconsistent(String),
}

impl BundleError {
    /// The variant's name, as a metric label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            BundleError::TooLarge { .. } => "too_large",
            BundleError::Serialize(_) => "serialize",
            BundleError::NotAShard { .. } => "not_a_shard",
            BundleError::NoManifest => "no_manifest",
            BundleError::MissingShard { .. } => "missing_shard",
            BundleError::DuplicateShard { .. } => "duplicate_shard",
            BundleError::HashMismatch { .. } => "hash_mismatch",
            BundleError::Parse { .. } => "parse",
            BundleError::Inconsistent(_) => "inconsistent",
        }
    }
}

/// Shard 0's description of the whole bundle.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    /// Version of the layout ([`FORMAT`]).
    pub format: u32,
    /// The zone.
    pub zone: String,
    /// Hex SHA-256 of the whole bundle.
    pub bundle_hash: String,
    /// How many shards there are.
    pub shards: u32,
    /// Agent settings of the zone.
    pub settings: AgentSettings,
    /// Checks in the bundle.
    pub checks: u32,
    /// Machines in the bundle.
    pub machines: u32,
    /// Remote assignments in the bundle.
    pub remote: u32,
}

/// A run of a list, starting at `offset`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Slice<T> {
    offset: u32,
    items: Vec<T>,
}

/// The bundle the ConfigMaps hold; see the module documentation for what is checked.
pub fn bundle_from_config_maps(config_maps: &[ConfigMap]) -> Result<ZoneBundle, BundleError> {
    let shards = config_maps
        .iter()
        .map(shard_identity)
        .collect::<Result<Vec<_>, _>>()?;
    let mut first = shards.iter().filter(|(index, _, _)| *index == 0);
    let (_, _, shard_zero) = first.next().ok_or(BundleError::NoManifest)?;
    if first.next().is_some() {
        return Err(BundleError::DuplicateShard { index: 0 });
    }
    let manifest: Manifest = parse(shard_zero, MANIFEST_KEY)?.ok_or(BundleError::NoManifest)?;
    let total = manifest.shards as usize;
    let mut ordered = Vec::with_capacity(total);
    for index in 0..total {
        let candidates: Vec<&(usize, &str, &ConfigMap)> =
            shards.iter().filter(|(i, _, _)| *i == index).collect();
        let matching: Vec<&ConfigMap> = candidates
            .iter()
            .filter(|(_, hash, _)| *hash == manifest.bundle_hash)
            .map(|(_, _, config_map)| *config_map)
            .collect();
        match (matching.as_slice(), candidates.first()) {
            ([config_map], _) => ordered.push(*config_map),
            ([], None) => {
                return Err(BundleError::MissingShard {
                    index,
                    shards: total,
                });
            }
            ([], Some((_, found, _))) => {
                return Err(BundleError::HashMismatch {
                    index,
                    expected: manifest.bundle_hash.clone(),
                    found: (*found).to_owned(),
                });
            }
            _ => return Err(BundleError::DuplicateShard { index }),
        }
    }
    let bundle = assemble(&manifest, &ordered)?;
    let found = content_hash(&bundle);
    if found != manifest.bundle_hash {
        return Err(BundleError::Inconsistent(format!(
            "the shards hash to {found}, the manifest says {}",
            manifest.bundle_hash
        )));
    }
    Ok(bundle)
}

/// A ConfigMap's shard index and full bundle hash.
fn shard_identity(config_map: &ConfigMap) -> Result<(usize, &str, &ConfigMap), BundleError> {
    let not_a_shard = |problem: &str| BundleError::NotAShard {
        name: config_map.name_any(),
        problem: problem.to_owned(),
    };
    let index = config_map
        .labels()
        .get(SHARD_LABEL)
        .ok_or_else(|| not_a_shard("no shard label"))?
        .parse()
        .map_err(|_| not_a_shard("the shard label is not a number"))?;
    let hash = config_map
        .annotations()
        .get(HASH_ANNOTATION)
        .ok_or_else(|| not_a_shard("no bundle hash annotation"))?;
    Ok((index, hash.as_str(), config_map))
}

fn assemble(manifest: &Manifest, shards: &[&ConfigMap]) -> Result<ZoneBundle, BundleError> {
    let mut bundle = ZoneBundle {
        zone: manifest.zone.clone(),
        settings: manifest.settings.clone(),
        ..ZoneBundle::default()
    };
    for config_map in shards {
        if let Some(slice) = parse::<Slice<PlannedCheck>>(config_map, CHECKS_KEY)? {
            append(&mut bundle.checks, slice, "checks")?;
        }
        if let Some(machines) = parse::<BTreeMap<String, Vec<u32>>>(config_map, MACHINES_KEY)? {
            for (host, indices) in machines {
                if bundle.machines.insert(host.clone(), indices).is_some() {
                    return Err(BundleError::Inconsistent(format!(
                        "machine {host} appears in two shards"
                    )));
                }
            }
        }
        if let Some(slice) = parse::<Slice<RemoteAssignment>>(config_map, REMOTE_KEY)? {
            append(&mut bundle.remote, slice, "remote assignments")?;
        }
    }
    let counts = [
        ("checks", bundle.checks.len(), manifest.checks),
        ("machines", bundle.machines.len(), manifest.machines),
        ("remote assignments", bundle.remote.len(), manifest.remote),
    ];
    for (what, found, expected) in counts {
        if found != expected as usize {
            return Err(BundleError::Inconsistent(format!(
                "{found} {what}, the manifest says {expected}"
            )));
        }
    }
    Ok(bundle)
}

/// Appends a slice that must continue the list exactly where it ends.
fn append<T>(list: &mut Vec<T>, slice: Slice<T>, what: &str) -> Result<(), BundleError> {
    if slice.offset as usize != list.len() {
        return Err(BundleError::Inconsistent(format!(
            "{what} continue at {}, expected {}",
            slice.offset,
            list.len()
        )));
    }
    list.extend(slice.items);
    Ok(())
}

/// The value of a data key of a shard, parsed; `None` when the key is absent.
pub fn parse<T: DeserializeOwned>(
    config_map: &ConfigMap,
    key: &str,
) -> Result<Option<T>, BundleError> {
    let Some(text) = config_map.data.as_ref().and_then(|data| data.get(key)) else {
        return Ok(None);
    };
    serde_json::from_str(text)
        .map(Some)
        .map_err(|error| BundleError::Parse {
            name: config_map.name_any(),
            key: key.to_owned(),
            message: error.to_string(),
        })
}
