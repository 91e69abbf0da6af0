//! Tests of the bundle ConfigMaps: snapshot, exact roundtrip, size limits at 10,000
//! machines, determinism, and every way a set of shards can be incomplete or wrong.

use super::*;
use crate::build::fixtures::{context, dmz, huge_bundle, small_bundle};
use proptest::prelude::*;
use vedette_protocol::bundle_shards::parse;
use vedette_protocol::plan::{AgentSettings, CheckId, RemoteAssignment, content_hash};
use vedette_satellite::bundle_source::stored_shard;

fn shards(bundle: &ZoneBundle) -> Vec<ConfigMap> {
    bundle_config_maps(&dmz(), &context(), bundle).expect("the bundle fits")
}

fn largest(config_maps: &[ConfigMap]) -> usize {
    config_maps.iter().map(config_map_bytes).max().unwrap_or(0)
}

/// The ConfigMaps with each data value shown as the JSON it holds, so that a reviewer reads
/// the bundle rather than one escaped line per key.
fn readable(config_maps: &[ConfigMap]) -> serde_json::Value {
    let mut value = serde_json::to_value(config_maps).expect("serializes");
    for config_map in value.as_array_mut().expect("a list") {
        for text in config_map["data"]
            .as_object_mut()
            .expect("data")
            .values_mut()
        {
            *text = serde_json::from_str(text.as_str().expect("text")).expect("json");
        }
    }
    value
}

#[test]
fn bundle_config_maps_snapshot() {
    insta::assert_yaml_snapshot!(readable(&shards(&small_bundle())));
}

#[test]
fn a_small_bundle_is_one_shard_and_reads_back_exactly() {
    let config_maps = shards(&small_bundle());
    assert_eq!(config_maps.len(), 1);
    assert_eq!(bundle_from_config_maps(&config_maps), Ok(small_bundle()));
}

#[test]
fn an_empty_bundle_still_has_a_manifest() {
    let bundle = ZoneBundle {
        zone: "dmz".to_owned(),
        ..ZoneBundle::default()
    };
    let config_maps = shards(&bundle);
    assert_eq!(config_maps.len(), 1);
    assert_eq!(bundle_from_config_maps(&config_maps), Ok(bundle));
}

#[test]
fn ten_thousand_machines_fit_in_shards_of_at_most_256_kib_and_read_back_exactly() {
    let bundle = huge_bundle(10_000, 50);
    let config_maps = shards(&bundle);
    let largest = largest(&config_maps);
    eprintln!(
        "10,000 machines x 50 checks: {} shards, largest config map {largest} bytes",
        config_maps.len()
    );
    assert!(
        largest <= MAX_CONFIG_MAP_BYTES,
        "largest is {largest} bytes"
    );
    assert!(config_maps.len() > 1);
    // The reader does not depend on the order the API server lists shards in.
    let mut reversed = config_maps.clone();
    reversed.reverse();
    assert!(bundle_from_config_maps(&reversed) == Ok(bundle));
}

#[test]
fn the_same_bundle_gives_the_same_config_maps_byte_for_byte() {
    let bundle = huge_bundle(2_000, 20);
    let first = shards(&bundle);
    let second = shards(&bundle.clone());
    assert_eq!(first, second);
    let bytes = |maps: &[ConfigMap]| serde_json::to_vec(maps).expect("serializes");
    assert_eq!(bytes(&first), bytes(&second));
}

#[test]
fn machines_are_split_by_contiguous_sorted_host_ranges() {
    let config_maps = shards(&huge_bundle(5_000, 10));
    let ranges: Vec<(String, String)> = config_maps
        .iter()
        .filter_map(|config_map| {
            let machines: BTreeMap<String, Vec<u32>> =
                parse(&stored_shard(config_map), MACHINES_KEY).expect("parses")?;
            let first = machines.keys().next()?.clone();
            let last = machines.keys().next_back()?.clone();
            Some((first, last))
        })
        .collect();
    assert!(ranges.len() > 1);
    for pair in ranges.windows(2) {
        assert!(pair[0].1 < pair[1].0, "{pair:?}");
    }
}

#[test]
fn checks_that_do_not_fit_one_shard_are_split_too() {
    let mut bundle = huge_bundle(10, 2_000);
    for (i, check) in bundle.checks.iter_mut().enumerate() {
        check.id = CheckId {
            namespace: "shop".to_owned(),
            rule_set: "web".to_owned(),
            rule: format!("rule-{i:05}-{}", "y".repeat(100)),
        };
    }
    let config_maps = shards(&bundle);
    let with_checks = config_maps
        .iter()
        .filter(|config_map| config_map.data.as_ref().unwrap().contains_key(CHECKS_KEY))
        .count();
    assert!(with_checks > 1, "checks took {with_checks} shard(s)");
    assert!(largest(&config_maps) <= MAX_CONFIG_MAP_BYTES);
    assert!(bundle_from_config_maps(&config_maps) == Ok(bundle));
}

#[test]
fn a_check_larger_than_a_shard_is_refused() {
    let mut bundle = small_bundle();
    bundle.checks[0]
        .labels
        .insert("huge".to_owned(), "z".repeat(300 * 1024));
    let error = bundle_config_maps(&dmz(), &context(), &bundle).unwrap_err();
    assert!(matches!(error, BundleError::TooLarge { .. }), "{error}");
    assert_eq!(error.metric_label(), "too_large");
}

#[test]
fn shards_carry_index_and_short_hash_labels_and_the_full_hash() {
    let bundle = huge_bundle(3_000, 10);
    let hash = content_hash(&bundle);
    let config_maps = shards(&bundle);
    for (index, config_map) in config_maps.iter().enumerate() {
        assert_eq!(
            config_map.name_any(),
            format!("vedette-zone-dmz-bundle-{index}")
        );
        assert_eq!(config_map.labels()[SHARD_LABEL], index.to_string());
        assert_eq!(config_map.labels()[HASH_LABEL], hash[..16]);
        assert_eq!(config_map.annotations()[HASH_ANNOTATION], hash);
        assert_eq!(
            config_map.annotations()[SHARDS_ANNOTATION],
            config_maps.len().to_string()
        );
        let has_manifest = config_map.data.as_ref().unwrap().contains_key(MANIFEST_KEY);
        assert_eq!(has_manifest, index == 0);
    }
}

#[test]
fn a_missing_shard_is_named() {
    let mut config_maps = shards(&huge_bundle(3_000, 10));
    let total = config_maps.len();
    config_maps.remove(1);
    assert_eq!(
        bundle_from_config_maps(&config_maps),
        Err(BundleError::MissingShard {
            index: 1,
            shards: total
        })
    );
    assert_eq!(
        bundle_from_config_maps(&config_maps[1..]),
        Err(BundleError::NoManifest)
    );
}

#[test]
fn shards_of_two_bundles_do_not_mix() {
    let old = shards(&huge_bundle(3_000, 10));
    let mut new_bundle = huge_bundle(3_000, 10);
    new_bundle.settings.keepalive_interval_seconds = 30;
    let new = shards(&new_bundle);
    // Mid-update: the new shard 0 is written, shard 1 is still the old one.
    let mut mixed = new.clone();
    mixed[1] = old[1].clone();
    assert!(matches!(
        bundle_from_config_maps(&mixed),
        Err(BundleError::HashMismatch { index: 1, .. })
    ));
    // Both versions of a shard listed: the one with the manifest's hash wins.
    let mut both = new.clone();
    both.push(old[1].clone());
    assert!(bundle_from_config_maps(&both) == Ok(new_bundle.clone()));
    // The same shard twice is ambiguous.
    let mut twice = new.clone();
    twice.push(new[1].clone());
    assert_eq!(
        bundle_from_config_maps(&twice),
        Err(BundleError::DuplicateShard { index: 1 })
    );
    // A leftover shard of a bigger, older bundle is ignored.
    let mut leftover = new.clone();
    let mut extra = old[0].clone();
    extra
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert(SHARD_LABEL.to_owned(), "99".to_owned());
    leftover.push(extra);
    assert!(bundle_from_config_maps(&leftover) == Ok(new_bundle));
}

#[test]
fn tampered_shards_are_refused() {
    let config_maps = shards(&huge_bundle(3_000, 10));
    let mut edited = config_maps.clone();
    let data = edited[1].data.as_mut().unwrap();
    let text = data[MACHINES_KEY].replacen("[", "[49,", 1);
    data.insert(MACHINES_KEY.to_owned(), text);
    assert!(matches!(
        bundle_from_config_maps(&edited),
        Err(BundleError::Inconsistent(_))
    ));

    let mut garbled = config_maps.clone();
    garbled[0]
        .data
        .as_mut()
        .unwrap()
        .insert(CHECKS_KEY.to_owned(), "{".to_owned());
    assert!(matches!(
        bundle_from_config_maps(&garbled),
        Err(BundleError::Parse { .. })
    ));

    let mut unlabelled = config_maps;
    unlabelled[1].metadata.labels = None;
    assert!(matches!(
        bundle_from_config_maps(&unlabelled),
        Err(BundleError::NotAShard { .. })
    ));
}

/// Bytes of a ConfigMap's data as JSON: what the shard budget bounds.
fn data_bytes(config_map: &ConfigMap) -> usize {
    serde_json::to_vec(&config_map.data).map_or(usize::MAX, |bytes| bytes.len())
}

/// Random bundles: machines with random names and check lists, checks with random text
/// (quotes and non-ASCII included, which escaping makes longer), remote assignments.
fn arbitrary_bundle() -> impl Strategy<Value = ZoneBundle> {
    let text = r#"[a-z"\\é-]{0,120}"#;
    (
        proptest::collection::vec(text, 0..25),
        proptest::collection::btree_map(
            "[a-z0-9.-]{1,60}",
            proptest::collection::vec(0u32..25, 0..25),
            0..150,
        ),
        proptest::collection::vec(("[a-z.]{1,40}", 0u32..25), 0..20),
    )
        .prop_map(|(labels, machines, remote)| {
            let template = small_bundle().checks[0].clone();
            let checks = labels
                .into_iter()
                .enumerate()
                .map(|(i, label)| {
                    let mut check = template.clone();
                    check.id.rule = format!("rule-{i:03}");
                    check.labels.insert("note".to_owned(), label);
                    check
                })
                .collect();
            let remote = remote
                .into_iter()
                .map(|(target, check)| RemoteAssignment { check, target })
                .collect();
            ZoneBundle {
                zone: "dmz".to_owned(),
                settings: AgentSettings::default(),
                checks,
                machines,
                remote,
                elements: Vec::new(),
                secrets: Default::default(),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Small shards force many splits: every shard's data stays within the budget, the
    /// shards read back to exactly the bundle, and rendering twice gives the same objects.
    #[test]
    fn any_bundle_roundtrips_exactly_within_the_shard_budget(
        bundle in arbitrary_bundle(),
        shard_data_bytes in 2_048usize..8_192,
    ) {
        let config_maps = shard_bundle(&dmz(), &context(), &bundle, shard_data_bytes)
            .expect("every item fits a shard");
        for config_map in &config_maps {
            prop_assert!(
                data_bytes(config_map) <= shard_data_bytes,
                "{} bytes of data in a {shard_data_bytes}-byte shard",
                data_bytes(config_map)
            );
        }
        prop_assert_eq!(&bundle_from_config_maps(&config_maps), &Ok(bundle.clone()));
        let again = shard_bundle(&dmz(), &context(), &bundle, shard_data_bytes).unwrap();
        prop_assert_eq!(config_maps, again);
    }
}
