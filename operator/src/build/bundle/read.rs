//! Reading a bundle back from its shards, as satellites do: every shard of shard 0's hash
//! present once, the pieces continuing each other, and the result hashing to the manifest's
//! hash, so that what is read is exactly what was written.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use serde::de::DeserializeOwned;
use vedette_agent::plan::{PlannedCheck, RemoteAssignment, ZoneBundle, content_hash};

use super::{
    BundleError, CHECKS_KEY, HASH_ANNOTATION, MACHINES_KEY, MANIFEST_KEY, Manifest, REMOTE_KEY,
    SHARD_LABEL, Slice,
};

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

/// The value of a data key, parsed; `None` when the key is absent.
pub(super) fn parse<T: DeserializeOwned>(
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
