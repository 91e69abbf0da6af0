//! Pure builders: from a `MonitorZone` (and, for the bundle, its compiled `ZoneBundle`) to the
//! typed Kubernetes objects that run the zone. One file per Kubernetes kind, no I/O, no clock,
//! no randomness: the same input always renders the same objects, so the reconciler can
//! server-side apply them on every pass without causing writes when nothing changed.
//!
//! What each zone gets, all in [`BuildContext::namespace`] unless said otherwise:
//!
//! | object | builder |
//! | --- | --- |
//! | satellite StatefulSet, a volume claim per replica | [`satellite_stateful_set`] |
//! | satellite Service (ClusterIP, port 7080) and headless Service | [`satellite_service`], [`satellite_peers_service`] |
//! | satellite PodDisruptionBudget | [`satellite_pod_disruption_budget`] |
//! | agent DaemonSet, when `spec.agents.enabled` | [`agent_daemon_set`] |
//! | ServiceAccounts of satellite and agent | [`satellite_service_account`], [`agent_service_account`] |
//! | satellite Role + RoleBinding | [`satellite_role`], [`satellite_role_binding`] |
//! | satellite ClusterRole + ClusterRoleBinding (cluster-scoped) | [`satellite_cluster_role`], [`satellite_cluster_role_binding`] |
//! | bundle ConfigMaps, sharded | [`bundle_config_maps`] (inverse: [`bundle_from_config_maps`]) |
//!
//! Every object carries the common labels and a controller owner reference to the zone
//! ([`common`]), so deleting the zone lets the garbage collector remove all of it.
//!
//! The builders assume a zone that passed validation and came from the API server, i.e. it
//! has a name and a uid; a missing uid renders an owner reference with an empty uid, which the
//! API server refuses.

pub mod bundle;
pub mod common;
pub mod daemon_set;
pub mod pod_disruption_budget;
pub mod rbac;
pub mod service;
pub mod service_account;
pub mod stateful_set;

#[cfg(test)]
mod fixtures;

pub use bundle::{BundleError, bundle_config_maps, bundle_from_config_maps};
pub use daemon_set::agent_daemon_set;
pub use pod_disruption_budget::satellite_pod_disruption_budget;
pub use rbac::{
    satellite_cluster_role, satellite_cluster_role_binding, satellite_role, satellite_role_binding,
};
pub use service::{satellite_peers_service, satellite_service};
pub use service_account::{agent_service_account, satellite_service_account};
pub use stateful_set::satellite_stateful_set;

/// What the builders need besides the zone itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildContext {
    /// Namespace the zone's objects live in, e.g. `vedette-system`.
    pub namespace: String,
    /// Image of `vedette-agent`, e.g. `ghcr.io/vedette-dev/vedette-agent:0.1.0`.
    pub image: String,
    /// URL the satellites report to (the masters, or the parent zone's satellites).
    pub masters_url: String,
    /// Hash of the zone's current bundle (`vedette_protocol::plan::content_hash`).
    pub bundle_hash: String,
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde::Deserialize;
    use vedette_crds::MonitorZone;

    use super::common::MAX_NAME_LENGTH;
    use super::fixtures::{context, small_bundle, zone_named};
    use super::*;

    /// The metadata of every object a zone gets.
    fn everything(zone: &MonitorZone) -> Vec<ObjectMeta> {
        let ctx = context();
        let mut all = vec![
            satellite_stateful_set(zone, &ctx).metadata,
            satellite_service(zone, &ctx).metadata,
            satellite_peers_service(zone, &ctx).metadata,
            satellite_pod_disruption_budget(zone, &ctx).metadata,
            satellite_service_account(zone, &ctx).metadata,
            agent_service_account(zone, &ctx).metadata,
            satellite_role(zone, &ctx).metadata,
            satellite_role_binding(zone, &ctx).metadata,
            satellite_cluster_role(zone).metadata,
            satellite_cluster_role_binding(zone, &ctx).metadata,
        ];
        all.extend(agent_daemon_set(zone, &ctx).map(|daemon_set| daemon_set.metadata));
        let bundle = bundle_config_maps(zone, &ctx, &small_bundle()).expect("fits");
        all.extend(bundle.into_iter().map(|config_map| config_map.metadata));
        all
    }

    fn assert_well_formed(zone: &MonitorZone) {
        for metadata in everything(zone) {
            let name = metadata.name.clone().unwrap_or_default();
            assert!(
                name.len() <= MAX_NAME_LENGTH,
                "{name} is {} long",
                name.len()
            );
            for value in metadata.labels.iter().flatten().map(|(_, v)| v) {
                assert!(value.len() <= MAX_NAME_LENGTH, "label {value}");
            }
            let owner = &metadata.owner_references.as_ref().expect("owned")[0];
            assert_eq!(owner.kind, "MonitorZone");
            assert_eq!(owner.controller, Some(true));
            assert_eq!(owner.block_owner_deletion, Some(true));
        }
    }

    #[test]
    fn every_sample_zone_renders_well_formed_objects() {
        let text = include_str!("../../../config/samples/00-zones.yaml");
        let mut zones = 0;
        for document in serde_yaml::Deserializer::from_str(text) {
            let zone = MonitorZone::deserialize(document).expect("sample zones parse");
            assert_well_formed(&zone);
            zones += 1;
        }
        assert_eq!(zones, 2);
    }

    #[test]
    fn a_long_zone_name_renders_names_of_at_most_63_characters() {
        let long = format!("{}.example", "very-long-zone-name-".repeat(10));
        assert_well_formed(&zone_named(&long));
        let set = satellite_stateful_set(&zone_named(&long), &context());
        assert!(
            set.metadata.name.unwrap().ends_with("-satellite"),
            "the component stays readable"
        );
    }
}
