//! A zone bundle as shards that each fit in one ConfigMap, written and read by one
//! implementation so that writer (the operator) and reader (satellites) cannot drift apart.
//! Nothing here knows Kubernetes: a [`Shard`] is the data, labels and annotations of one
//! ConfigMap; the operator wraps it into a ConfigMap, a satellite reads a ConfigMap as a
//! [`StoredShard`].
//!
//! **Layout.** The bundle's JSON (serde_json, compact, maps sorted) is cut into items — each
//! check, each machine with its check indices, each remote assignment — and the items are
//! packed in order into shards of at most [`SHARD_DATA_BYTES`] of data, counted as the bytes
//! the items take once escaped into a JSON string (the way the API server receives them). So
//! checks come first (split over several shards when they do not fit in one), then machines
//! by sorted host name, each shard holding one contiguous range, then remote assignments. A
//! shard's data keys:
//!
//! | key | content | where |
//! | --- | --- | --- |
//! | `manifest.json` | zone, bundle hash, shard count, agent settings, item counts | shard 0 only |
//! | `checks.json` | `{"offset": first check index, "items": [checks]}` | shards with checks |
//! | `machines.json` | `{"host": [check indices], ...}` | shards with machines |
//! | `remote.json` | `{"offset": first index, "items": [remote assignments]}` | shards with remote checks |
//! | `elements.json` | `{"offset": first index, "items": [process elements]}` | shards with process elements |
//!
//! Each shard is labelled `vedette.dev/bundle-shard: "<i>"` and with the first 16 hex digits of
//! the bundle hash as `vedette.dev/bundle-hash` (label values hold 63 characters, a SHA-256
//! takes 64); the annotations hold the full hash and the shard count.
//!
//! **Reading.** [`read_shards`] takes whatever shards of the zone a satellite sees. Shard 0's
//! manifest decides the hash and the shard count; every other shard must be there with that
//! same hash, or the bundle is incomplete (an update is under way) and the reader refuses it.
//! Shards numbered beyond the count are leftovers of a larger bundle and are ignored. The
//! reassembled bundle must hash to the manifest's hash, so a bundle read back is exactly the
//! bundle written.
//!
//! The writer of the ConfigMaps should write shards 1.. before shard 0 and delete leftovers
//! after, so that a reader never sees a manifest whose shards are not written yet for long.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::plan::{AgentSettings, PlannedCheck, RemoteAssignment, ZoneBundle, content_hash};
use crate::process::PlannedElement;

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
/// Data key of a shard's business-process elements.
pub const ELEMENTS_KEY: &str = "elements.json";
/// Version of this layout, in the manifest.
pub const FORMAT: u32 = 1;

/// Why a bundle cannot be written as, or read from, shards.
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
    /// A stored object is not a bundle shard (no or a bad shard label or hash annotation).
    #[error("config map {name} is not a bundle shard: {problem}")]
    NotAShard {
        /// The stored object (a ConfigMap).
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
    /// Business-process elements in the bundle.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub elements: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One shard as written: its place, the bundle it belongs to, and its data keys. The
/// operator stores it as a ConfigMap with [`Shard::labels`] and [`Shard::annotations`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// Index, from 0.
    pub index: usize,
    /// How many shards the bundle has.
    pub total: usize,
    /// Hex SHA-256 of the whole bundle.
    pub bundle_hash: String,
    /// Data keys ([`MANIFEST_KEY`], [`CHECKS_KEY`], [`MACHINES_KEY`], [`REMOTE_KEY`]) and their
    /// JSON.
    pub data: BTreeMap<String, String>,
}

impl Shard {
    /// [`SHARD_LABEL`] and [`HASH_LABEL`] (the short hash).
    pub fn labels(&self) -> [(String, String); 2] {
        let short = &self.bundle_hash[..SHORT_HASH_LENGTH.min(self.bundle_hash.len())];
        [
            (SHARD_LABEL.to_owned(), self.index.to_string()),
            (HASH_LABEL.to_owned(), short.to_owned()),
        ]
    }

    /// [`HASH_ANNOTATION`] (the full hash) and [`SHARDS_ANNOTATION`].
    pub fn annotations(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (HASH_ANNOTATION.to_owned(), self.bundle_hash.clone()),
            (SHARDS_ANNOTATION.to_owned(), self.total.to_string()),
        ])
    }
}

/// A shard as a reader finds it stored (a ConfigMap's name, labels, annotations and data).
#[derive(Debug, Clone, Copy)]
pub struct StoredShard<'a> {
    /// Name of the stored object, for messages.
    pub name: &'a str,
    /// Its labels.
    pub labels: &'a BTreeMap<String, String>,
    /// Its annotations.
    pub annotations: &'a BTreeMap<String, String>,
    /// Its data keys.
    pub data: &'a BTreeMap<String, String>,
}

/// The bundle as shards of at most `shard_data_bytes` of data each ([`SHARD_DATA_BYTES`] for
/// ConfigMaps; tests use small shards to exercise splitting cheaply), shard 0 first.
/// Deterministic: the same bundle gives the same shards, byte for byte.
pub fn write_shards(
    bundle: &ZoneBundle,
    shard_data_bytes: usize,
) -> Result<Vec<Shard>, BundleError> {
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
        elements: count(bundle.elements.len())?,
    };
    // Sized with the widest shard count, so the real one never takes more.
    let manifest_cost = escaped_len(&to_json(&manifest)?) + MANIFEST_KEY.len() + 6;
    let packed = pack(pieces(bundle)?, manifest_cost, shard_data_bytes)?;
    manifest.shards = count(packed.len())?;
    let manifest_text = to_json(&manifest)?;
    let total = packed.len();
    let shards = packed.into_iter().enumerate().map(|(index, packed)| {
        let manifest = (index == 0).then_some(manifest_text.as_str());
        Shard {
            index,
            total,
            bundle_hash: hash.clone(),
            data: shard_data(manifest, packed),
        }
    });
    Ok(shards.collect())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Checks,
    Machines,
    Remote,
    Elements,
}

/// One item of the bundle as JSON text, and what it costs in a shard.
struct Piece {
    section: Section,
    text: String,
    cost: usize,
}

/// The items of one shard, as JSON text per section.
#[derive(Default)]
struct Packed {
    checks_offset: usize,
    checks: Vec<String>,
    machines: Vec<String>,
    remote_offset: usize,
    remote: Vec<String>,
    elements_offset: usize,
    elements: Vec<String>,
    cost: usize,
}

/// What each section's key and wrapper may take at most once escaped:
/// `"checks.json":"{\"offset\":4294967295,\"items\":[]}",`.
const SECTION_OVERHEAD: usize = 64;
/// Sections besides the manifest a shard may hold.
const SECTIONS: usize = 4;

/// Whether `check` fits in a bundle shard on its own (the same cost and room the packing
/// uses); compile leaves a check that does not out of the bundle, so the rest is published.
pub fn check_fits(check: &PlannedCheck) -> Result<(), BundleError> {
    let piece = piece(Section::Checks, to_json(check)?)?;
    let room = SHARD_DATA_BYTES.saturating_sub(SECTIONS * SECTION_OVERHEAD + 2);
    if piece.cost > room {
        return Err(BundleError::TooLarge {
            what: format!("check {}", check.id),
            bytes: piece.cost,
            limit: room,
        });
    }
    Ok(())
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
    let elements = bundle
        .elements
        .iter()
        .map(|element| piece(Section::Elements, to_json(element)?));
    checks
        .chain(machines)
        .chain(remote)
        .chain(elements)
        .collect()
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
) -> Result<Vec<Packed>, BundleError> {
    let room = |index: usize| {
        let manifest = if index == 0 { manifest_cost } else { 0 };
        shard_data_bytes.saturating_sub(manifest + SECTIONS * SECTION_OVERHEAD + 2)
    };
    let mut shards = vec![Packed::default()];
    let (mut checks_seen, mut remote_seen, mut elements_seen) = (0, 0, 0);
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
            shards.push(Packed::default());
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
            Section::Elements => {
                if shard.elements.is_empty() {
                    shard.elements_offset = elements_seen;
                }
                elements_seen += 1;
                shard.elements.push(piece.text);
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
        Section::Elements => "process element",
    };
    format!("{section} {start}…")
}

/// A shard's data keys: the manifest (shard 0) and each section's items.
fn shard_data(manifest: Option<&str>, shard: Packed) -> BTreeMap<String, String> {
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
    if !shard.elements.is_empty() {
        let items = shard.elements.join(",");
        let text = format!(
            r#"{{"offset":{},"items":[{items}]}}"#,
            shard.elements_offset
        );
        data.insert(ELEMENTS_KEY.to_owned(), text);
    }
    data
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

/// A run of a list, starting at `offset`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Slice<T> {
    offset: u32,
    items: Vec<T>,
}

/// The bundle the stored shards hold; see the module documentation for what is checked.
pub fn read_shards(stored: &[StoredShard<'_>]) -> Result<ZoneBundle, BundleError> {
    let shards = stored
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
        let candidates: Vec<&(usize, &str, &StoredShard<'_>)> =
            shards.iter().filter(|(i, _, _)| *i == index).collect();
        let matching: Vec<&StoredShard<'_>> = candidates
            .iter()
            .filter(|(_, hash, _)| *hash == manifest.bundle_hash)
            .map(|(_, _, shard)| *shard)
            .collect();
        match (matching.as_slice(), candidates.first()) {
            ([shard], _) => ordered.push(*shard),
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

/// A stored shard's index and full bundle hash.
fn shard_identity<'a, 's>(
    shard: &'s StoredShard<'a>,
) -> Result<(usize, &'a str, &'s StoredShard<'a>), BundleError> {
    let not_a_shard = |problem: &str| BundleError::NotAShard {
        name: shard.name.to_owned(),
        problem: problem.to_owned(),
    };
    let index = shard
        .labels
        .get(SHARD_LABEL)
        .ok_or_else(|| not_a_shard("no shard label"))?
        .parse()
        .map_err(|_| not_a_shard("the shard label is not a number"))?;
    let hash = shard
        .annotations
        .get(HASH_ANNOTATION)
        .ok_or_else(|| not_a_shard("no bundle hash annotation"))?;
    Ok((index, hash.as_str(), shard))
}

fn assemble(manifest: &Manifest, shards: &[&StoredShard<'_>]) -> Result<ZoneBundle, BundleError> {
    let mut bundle = ZoneBundle {
        zone: manifest.zone.clone(),
        settings: manifest.settings.clone(),
        ..ZoneBundle::default()
    };
    for shard in shards {
        if let Some(slice) = parse::<Slice<PlannedCheck>>(shard, CHECKS_KEY)? {
            append(&mut bundle.checks, slice, "checks")?;
        }
        if let Some(machines) = parse::<BTreeMap<String, Vec<u32>>>(shard, MACHINES_KEY)? {
            for (host, indices) in machines {
                if bundle.machines.insert(host.clone(), indices).is_some() {
                    return Err(BundleError::Inconsistent(format!(
                        "machine {host} appears in two shards"
                    )));
                }
            }
        }
        if let Some(slice) = parse::<Slice<RemoteAssignment>>(shard, REMOTE_KEY)? {
            append(&mut bundle.remote, slice, "remote assignments")?;
        }
        if let Some(slice) = parse::<Slice<PlannedElement>>(shard, ELEMENTS_KEY)? {
            append(&mut bundle.elements, slice, "process elements")?;
        }
    }
    let counts = [
        ("checks", bundle.checks.len(), manifest.checks),
        ("machines", bundle.machines.len(), manifest.machines),
        ("remote assignments", bundle.remote.len(), manifest.remote),
        ("process elements", bundle.elements.len(), manifest.elements),
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
    shard: &StoredShard<'_>,
    key: &str,
) -> Result<Option<T>, BundleError> {
    let Some(text) = shard.data.get(key) else {
        return Ok(None);
    };
    serde_json::from_str(text)
        .map(Some)
        .map_err(|error| BundleError::Parse {
            name: shard.name.to_owned(),
            key: key.to_owned(),
            message: error.to_string(),
        })
}
