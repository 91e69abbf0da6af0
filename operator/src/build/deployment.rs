//! The satellite Deployment: `vedette-satellite` replicas of a zone, active-active.
//!
//! **Bundle changes do not touch the Deployment.** Satellites watch their zone's bundle
//! ConfigMaps and switch to a new bundle in place (the bundle hash is on the ConfigMaps), so
//! a bundle change writes the ConfigMaps only: no Deployment write, no restart. A rollout
//! happens only when
//! something the pods are started with changes (image, arguments, resources); a new replica
//! count scales without one. Should a future bundle format need a restart, put a format
//! version into the pod template then, not the hash.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, EmptyDirVolumeSource, HTTPGetAction, PodAffinityTerm,
    PodAntiAffinity, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, TopologySpreadConstraint,
    Volume, VolumeMount, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use vedette_crds::MonitorZone;

use super::BuildContext;
use super::common::{AGENT_TOKEN_DIR, field_env, vedette_token_volume};
use super::common::{
    Component, SATELLITE_PORT, SATELLITE_PORT_NAME, object_meta,
    restricted_container_security_context, runtime_default_seccomp, satellite_name,
    selector_labels, zone_name,
};

/// Where the satellite keeps its spool (an emptyDir).
pub const SATELLITE_SPOOL_DIR: &str = "/var/lib/vedette/spool";
/// The unprivileged user and group the satellite runs as.
pub const SATELLITE_USER: i64 = 65532;

/// The zone's satellite Deployment.
pub fn satellite_deployment(zone: &MonitorZone, ctx: &BuildContext) -> Deployment {
    let name = zone_name(zone);
    let selector = selector_labels(&name, Component::Satellite);
    let metadata = object_meta(zone, ctx, satellite_name(&name), Component::Satellite);
    Deployment {
        metadata,
        spec: Some(DeploymentSpec {
            replicas: Some(zone.spec.satellites.replicas),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                match_expressions: None,
            },
            // Add a replica before removing one, so a rollout never lowers capacity.
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(super::common::labels(&name, Component::Satellite)),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec(zone, ctx, &selector)),
            },
            ..DeploymentSpec::default()
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
        containers: vec![container(zone, ctx)],
        volumes: Some(vec![
            empty_dir("spool"),
            empty_dir("tmp"),
            vedette_token_volume(),
        ]),
        ..PodSpec::default()
    }
}

fn container(zone: &MonitorZone, ctx: &BuildContext) -> Container {
    // The satellite presents the same kind of token to the masters as agents present to it.
    let token_file = format!("{AGENT_TOKEN_DIR}/token");
    let args = [
        "--zone",
        &zone_name(zone),
        "--listen",
        &format!("0.0.0.0:{SATELLITE_PORT}"),
        "--masters",
        &ctx.masters_url,
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
            mount("spool", SATELLITE_SPOOL_DIR),
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
        match_label_keys: Some(vec!["pod-template-hash".to_owned()]),
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
    fn satellite_deployment_snapshot() {
        insta::assert_yaml_snapshot!(satellite_deployment(&dmz(), &context()));
    }

    #[test]
    fn a_bundle_change_does_not_change_the_deployment() {
        let before = satellite_deployment(&dmz(), &context());
        let mut ctx = context();
        ctx.bundle_hash = "0".repeat(64);
        assert_eq!(before, satellite_deployment(&dmz(), &ctx));
    }

    #[test]
    fn the_satellite_reads_its_arguments_as_meant() {
        let deployment = satellite_deployment(&dmz(), &context());
        let container = &deployment.spec.unwrap().template.spec.unwrap().containers[0];
        assert_eq!(
            container.command,
            Some(vec!["vedette-satellite".to_owned()])
        );
        let argv = ["vedette-satellite".to_owned()]
            .into_iter()
            .chain(container.args.clone().unwrap());
        let cli = <vedette_satellite::cli::Cli as clap::Parser>::try_parse_from(argv).unwrap();
        assert_eq!(cli.args.zone, "dmz");
        assert_eq!(
            cli.args.spool_dir,
            std::path::Path::new(SATELLITE_SPOOL_DIR)
        );
        assert_eq!(cli.args.masters, [context().masters_url]);
    }

    #[test]
    fn the_pod_runs_unprivileged() {
        let deployment = satellite_deployment(&dmz(), &context());
        let pod = deployment.spec.unwrap().template.spec.unwrap();
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
