//! The satellite StatefulSet: `vedette-satellite` replicas of a zone, active-active, each with
//! a PersistentVolumeClaim of its own for its spool.
//!
//! **What a satellite acknowledged survives its pod.** A replica's spool is on its claim
//! (`spool-<statefulset>-<ordinal>`), and a replacement pod has the same name and the same
//! claim, so it resumes the same spool sequences and the same cursors: the masters'
//! deduplication by `(replica, sequence)` stays exact. Claims are deleted with the zone and
//! kept when the zone is scaled down (a replica scaled away still holds what it did not
//! forward; scaling up again delivers it). On SIGTERM the satellite drains within the
//! termination grace period (`TERMINATION_GRACE_SECONDS`).
//!
//! **Bundle changes do not touch the StatefulSet.** Satellites watch their zone's bundle
//! ConfigMaps and switch to a new bundle in place (the bundle hash is on the ConfigMaps), so
//! a bundle change writes the ConfigMaps only: no write, no restart. A rollout happens only
//! when something the pods are started with changes (image, arguments, resources); a new
//! replica count scales without one.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy,
    StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, EmptyDirVolumeSource, HTTPGetAction, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, TopologySpreadConstraint, Volume, VolumeMount,
    VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use vedette_crds::MonitorZone;

use super::BuildContext;
use super::common::{AGENT_TOKEN_DIR, field_env, vedette_token_volume};
use super::common::{
    Component, SATELLITE_PORT, SATELLITE_PORT_NAME, object_meta,
    restricted_container_security_context, runtime_default_seccomp, satellite_name,
    satellite_peers_name, selector_labels, zone_name,
};
use super::service::parent_satellite_url;

/// Where the satellite keeps its spool (the replica's claim).
pub const SATELLITE_SPOOL_DIR: &str = "/var/lib/vedette/spool";
/// The unprivileged user and group the satellite runs as.
pub const SATELLITE_USER: i64 = 65532;
/// Seconds a satellite pod has to drain on SIGTERM before it is killed.
pub const TERMINATION_GRACE_SECONDS: i64 = 30;
/// Name of the volume claim template (and of the spool volume).
const SPOOL_VOLUME: &str = "spool";

/// The zone's satellite StatefulSet.
pub fn satellite_stateful_set(zone: &MonitorZone, ctx: &BuildContext) -> StatefulSet {
    let name = zone_name(zone);
    let selector = selector_labels(&name, Component::Satellite);
    let metadata = object_meta(zone, ctx, satellite_name(&name), Component::Satellite);
    StatefulSet {
        metadata,
        spec: Some(StatefulSetSpec {
            replicas: Some(zone.spec.satellites.replicas),
            service_name: Some(satellite_peers_name(&name)),
            // Replicas are peers: start and stop them all at once, not one by one.
            pod_management_policy: Some("Parallel".to_owned()),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                match_expressions: None,
            },
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateStatefulSetStrategy {
                    max_unavailable: Some(IntOrString::Int(1)),
                    partition: None,
                }),
            }),
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Delete".to_owned()),
                    when_scaled: Some("Retain".to_owned()),
                },
            ),
            volume_claim_templates: Some(vec![spool_claim(zone)]),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(super::common::labels(&name, Component::Satellite)),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec(zone, ctx, &selector)),
            },
            ..StatefulSetSpec::default()
        }),
        status: None,
    }
}

fn spool_claim(zone: &MonitorZone) -> PersistentVolumeClaim {
    let storage = &zone.spec.satellites.storage;
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(SPOOL_VOLUME.to_owned()),
            labels: Some(super::common::labels(
                &zone_name(zone),
                Component::Satellite,
            )),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            storage_class_name: storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(storage.size.clone()),
                )])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}

fn pod_spec(
    zone: &MonitorZone,
    ctx: &BuildContext,
    selector: &BTreeMap<String, String>,
) -> PodSpec {
    let name = zone_name(zone);
    PodSpec {
        service_account_name: Some(satellite_name(&name)),
        automount_service_account_token: Some(true),
        enable_service_links: Some(false),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(SATELLITE_USER),
            run_as_group: Some(SATELLITE_USER),
            fs_group: Some(SATELLITE_USER),
            seccomp_profile: Some(runtime_default_seccomp()),
            ..PodSecurityContext::default()
        }),
        affinity: Some(spread_across_nodes(selector)),
        topology_spread_constraints: Some(vec![spread_across_zones(selector)]),
        termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
        containers: vec![container(zone, ctx)],
        volumes: Some(vec![empty_dir("tmp"), vedette_token_volume()]),
        ..PodSpec::default()
    }
}

fn container(zone: &MonitorZone, ctx: &BuildContext) -> Container {
    // The satellite presents the same kind of token to the masters as agents present to it.
    let token_file = format!("{AGENT_TOKEN_DIR}/token");
    // A zone with a parent forwards to the parent zone's satellites, which relay on.
    let (upstream_flag, upstream) = match parent_satellite_url(zone, ctx) {
        Some(url) => ("--parent-zone-url", url),
        None => ("--masters", ctx.masters_url.clone()),
    };
    let args = [
        "--zone",
        &zone_name(zone),
        "--listen",
        &format!("0.0.0.0:{SATELLITE_PORT}"),
        upstream_flag,
        &upstream,
        "--spool-dir",
        SATELLITE_SPOOL_DIR,
        "--token-file",
        &token_file,
    ];
    Container {
        name: "satellite".to_owned(),
        image: Some(ctx.image.clone()),
        command: Some(vec!["vedette-satellite".to_owned()]),
        args: Some(args.iter().map(|arg| (*arg).to_owned()).collect()),
        env: Some(vec![
            field_env("NODE_NAME", "spec.nodeName"),
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some(SATELLITE_PORT_NAME.to_owned()),
            container_port: SATELLITE_PORT,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(http_probe("/readyz", 5, 3)),
        liveness_probe: Some(http_probe("/healthz", 10, 6)),
        resources: zone.spec.satellites.resources.clone(),
        security_context: Some(restricted_container_security_context()),
        volume_mounts: Some(vec![
            mount(SPOOL_VOLUME, SATELLITE_SPOOL_DIR),
            mount("tmp", "/tmp"),
            VolumeMount {
                name: "token".to_owned(),
                mount_path: AGENT_TOKEN_DIR.to_owned(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
        ]),
        ..Container::default()
    }
}

fn http_probe(path: &str, period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String(SATELLITE_PORT_NAME.to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        failure_threshold: Some(failure_threshold),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

/// Prefer one satellite per node, so losing a node loses at most one replica.
fn spread_across_nodes(selector: &BTreeMap<String, String>) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        label_selector: Some(LabelSelector {
                            match_labels: Some(selector.clone()),
                            match_expressions: None,
                        }),
                        topology_key: "kubernetes.io/hostname".to_owned(),
                        ..PodAffinityTerm::default()
                    },
                },
            ]),
            required_during_scheduling_ignored_during_execution: None,
        }),
        ..Affinity::default()
    }
}

/// Spread replicas over failure domains where the nodes say which they are in; never block
/// scheduling over it.
fn spread_across_zones(selector: &BTreeMap<String, String>) -> TopologySpreadConstraint {
    TopologySpreadConstraint {
        max_skew: 1,
        topology_key: "topology.kubernetes.io/zone".to_owned(),
        when_unsatisfiable: "ScheduleAnyway".to_owned(),
        label_selector: Some(LabelSelector {
            match_labels: Some(selector.clone()),
            match_expressions: None,
        }),
        match_label_keys: Some(vec!["controller-revision-hash".to_owned()]),
        ..TopologySpreadConstraint::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

/// A read-write mount of a volume.
fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        ..VolumeMount::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures::{context, dmz};

    #[test]
    fn satellite_stateful_set_snapshot() {
        insta::assert_yaml_snapshot!(satellite_stateful_set(&dmz(), &context()));
    }

    #[test]
    fn a_bundle_change_does_not_change_the_stateful_set() {
        let before = satellite_stateful_set(&dmz(), &context());
        let mut ctx = context();
        ctx.bundle_hash = "0".repeat(64);
        assert_eq!(before, satellite_stateful_set(&dmz(), &ctx));
    }

    fn satellite_cli(zone: &MonitorZone) -> vedette_satellite::cli::Cli {
        let set = satellite_stateful_set(zone, &context());
        let container = &set.spec.unwrap().template.spec.unwrap().containers[0];
        assert_eq!(
            container.command,
            Some(vec!["vedette-satellite".to_owned()])
        );
        let argv = ["vedette-satellite".to_owned()]
            .into_iter()
            .chain(container.args.clone().unwrap());
        <vedette_satellite::cli::Cli as clap::Parser>::try_parse_from(argv).unwrap()
    }

    #[test]
    fn each_replica_keeps_its_spool_on_its_own_claim() {
        let spec = satellite_stateful_set(&dmz(), &context()).spec.unwrap();
        let claims = spec.volume_claim_templates.unwrap();
        assert_eq!(claims.len(), 1);
        let claim = &claims[0];
        assert_eq!(claim.metadata.name.as_deref(), Some(SPOOL_VOLUME));
        let requests = claim
            .spec
            .clone()
            .unwrap()
            .resources
            .unwrap()
            .requests
            .unwrap();
        assert_eq!(requests["storage"], Quantity("1Gi".to_owned()));
        let pod = spec.template.spec.unwrap();
        let mounts = pod.containers[0].volume_mounts.clone().unwrap();
        assert!(
            mounts
                .iter()
                .any(|m| m.name == SPOOL_VOLUME && m.mount_path == SATELLITE_SPOOL_DIR)
        );
        let volumes = pod.volumes.unwrap();
        assert!(
            volumes.iter().all(|v| v.name != SPOOL_VOLUME),
            "the spool is the claim, not a pod volume: {volumes:?}"
        );
        let retention = spec.persistent_volume_claim_retention_policy.unwrap();
        assert_eq!(retention.when_scaled.as_deref(), Some("Retain"));
    }

    #[test]
    fn a_zone_with_a_parent_forwards_to_the_parent_zones_satellites() {
        let cli = satellite_cli(&dmz());
        assert!(cli.args.masters.is_empty());
        assert_eq!(
            cli.args.parent_zone_url.as_deref(),
            Some("http://vedette-zone-core-satellite.vedette-system.svc:7080")
        );
    }

    #[test]
    fn a_zone_without_a_parent_forwards_to_the_masters() {
        let mut top = dmz();
        top.spec.parent_zone = None;
        let cli = satellite_cli(&top);
        assert_eq!(cli.args.parent_zone_url, None);
        assert_eq!(cli.args.masters, [context().masters_url]);
    }

    #[test]
    fn the_satellite_reads_its_arguments_as_meant() {
        let cli = satellite_cli(&dmz());
        assert_eq!(cli.args.zone, "dmz");
        assert_eq!(
            cli.args.spool_dir,
            std::path::Path::new(SATELLITE_SPOOL_DIR)
        );
    }

    #[test]
    fn the_pod_runs_unprivileged() {
        let set = satellite_stateful_set(&dmz(), &context());
        let pod = set.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
        let security = pod.containers[0].security_context.clone().unwrap();
        assert_eq!(security.read_only_root_filesystem, Some(true));
        assert_eq!(security.allow_privilege_escalation, Some(false));
        assert_eq!(
            security.capabilities.unwrap().drop,
            Some(vec!["ALL".to_owned()])
        );
    }
}
