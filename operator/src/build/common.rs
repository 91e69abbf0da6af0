//! What every zone object shares: names, labels, the owner reference to the zone, and the
//! container security context.
//!
//! Names and label values are at most 63 characters (a DNS-1035 label, which Services
//! need). A zone name that does not fit, or that has characters a label does not allow
//! (dots), is shortened and made unique again with a hash suffix of the full zone name.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector, Probe,
    ProjectedVolumeSource, SeccompProfile, SecurityContext, ServiceAccountTokenProjection, Volume,
    VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use vedette_crds::MonitorZone;

use super::BuildContext;
pub use vedette_protocol::names::{
    LABEL_COMPONENT, LABEL_ZONE, MAX_NAME_LENGTH, object_name, short_hash, zone_label_value,
};

/// Port of the satellite's HTTP server: plans, results, `/metrics`, probes.
pub const SATELLITE_PORT: i32 = 7080;
/// Name of the satellite's port.
pub const SATELLITE_PORT_NAME: &str = "http";
/// Port of the node agent's admin server: `/metrics`, `/healthz`, `/readyz` (the agent's
/// default `--listen`, given explicitly so that port and flag cannot drift apart).
pub const AGENT_PORT: i32 = 9710;
/// Name of the agent's port; the chart's PodMonitor scrapes the port of this name on
/// satellites and agents alike.
pub const AGENT_PORT_NAME: &str = "http";

/// `app.kubernetes.io/name`.
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
/// `app.kubernetes.io/managed-by`.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`LABEL_NAME`].
pub const APP_NAME: &str = "vedette";
/// Value of [`LABEL_MANAGED_BY`].
pub const MANAGER: &str = "vedette-operator";

/// The part of a zone a component label names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    /// The zone's satellites and what serves them.
    Satellite,
    /// The zone's node agents.
    Agent,
    /// The zone's compiled bundle.
    Bundle,
}

impl Component {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Satellite => "satellite",
            Component::Agent => "agent",
            Component::Bundle => "bundle",
        }
    }
}

/// The zone's name as written in its metadata.
pub fn zone_name(zone: &MonitorZone) -> String {
    zone.name_any()
}

/// Name of the satellite StatefulSet, Service, PodDisruptionBudget, ServiceAccount and Role.
pub fn satellite_name(zone: &str) -> String {
    object_name(zone, "satellite")
}

/// Name of the satellites' headless Service: the StatefulSet's governing Service, which
/// gives each replica its DNS name, and the agents' standby path to their own satellites.
pub fn satellite_peers_name(zone: &str) -> String {
    object_name(zone, "satellite-peers")
}

/// Name of the agent DaemonSet and ServiceAccount.
pub fn agent_name(zone: &str) -> String {
    object_name(zone, "agent")
}

/// Name of the ClusterRole and ClusterRoleBinding that let satellites review tokens.
pub fn token_review_name(zone: &str) -> String {
    object_name(zone, "satellite-tokenreview")
}

/// Name of bundle shard `index`.
pub fn bundle_shard_name(zone: &str, index: usize) -> String {
    object_name(zone, &format!("bundle-{index}"))
}

/// The labels that select a component's pods; they never change for the life of a zone,
/// because a StatefulSet's or DaemonSet's selector cannot.
pub fn selector_labels(zone: &str, component: Component) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_owned(), APP_NAME.to_owned()),
        (LABEL_COMPONENT.to_owned(), component.as_str().to_owned()),
        (LABEL_ZONE.to_owned(), zone_label_value(zone)),
    ])
}

/// Every label of a component's objects: the selector labels and `managed-by`.
pub fn labels(zone: &str, component: Component) -> BTreeMap<String, String> {
    let mut labels = selector_labels(zone, component);
    labels.insert(LABEL_MANAGED_BY.to_owned(), MANAGER.to_owned());
    labels
}

/// The zone as the controlling owner. The zone is cluster-scoped, which may own both
/// namespaced and cluster-scoped objects.
pub fn owner_reference(zone: &MonitorZone) -> OwnerReference {
    OwnerReference {
        api_version: MonitorZone::api_version(&()).into_owned(),
        kind: MonitorZone::kind(&()).into_owned(),
        name: zone.name_any(),
        uid: zone.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Metadata of a namespaced object of the zone.
pub fn object_meta(
    zone: &MonitorZone,
    ctx: &BuildContext,
    name: String,
    component: Component,
) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(ctx.namespace.clone()),
        ..cluster_object_meta(zone, name, component)
    }
}

/// Metadata of a cluster-scoped object of the zone.
pub fn cluster_object_meta(zone: &MonitorZone, name: String, component: Component) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        labels: Some(labels(&zone_name(zone), component)),
        owner_references: Some(vec![owner_reference(zone)]),
        ..ObjectMeta::default()
    }
}

/// A container that cannot gain privileges: no capabilities, read-only root, the runtime's
/// seccomp profile. The pod decides the user.
pub fn restricted_container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            add: None,
        }),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..SecurityContext::default()
    }
}

/// The container runtime's default seccomp profile.
pub fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_owned(),
        localhost_profile: None,
    }
}

/// A projected ServiceAccount token with audience `vedette`, valid for an hour and renewed by
/// the kubelet: what agents present to satellites and satellites to the masters.
pub fn vedette_token_volume() -> Volume {
    Volume {
        name: "token".to_owned(),
        projected: Some(ProjectedVolumeSource {
            default_mode: None,
            sources: Some(vec![VolumeProjection {
                service_account_token: Some(ServiceAccountTokenProjection {
                    audience: Some(AGENT_TOKEN_AUDIENCE.to_owned()),
                    expiration_seconds: Some(AGENT_TOKEN_EXPIRATION_SECONDS),
                    path: "token".to_owned(),
                }),
                ..VolumeProjection::default()
            }]),
        }),
        ..Volume::default()
    }
}

/// Directory of the projected token the agent presents to satellites.
pub const AGENT_TOKEN_DIR: &str = "/var/run/secrets/vedette";
/// Audience of the agent's token; satellites accept no other.
pub const AGENT_TOKEN_AUDIENCE: &str = "vedette";
/// Lifetime of the agent's token; the kubelet renews it before it ends.
pub const AGENT_TOKEN_EXPIRATION_SECONDS: i64 = 3600;

/// An environment variable from the pod's own fields (the downward API).
pub fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path: field_path.to_owned(),
            }),
            ..EnvVarSource::default()
        }),
    }
}

/// An HTTP GET probe of `path` on the container port named `port`, every `period_seconds`,
/// failing after `failure_threshold` misses of `timeout_seconds` each.
pub fn http_probe(
    path: &str,
    port: &str,
    period_seconds: i32,
    failure_threshold: i32,
    timeout_seconds: i32,
) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String(port.to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        failure_threshold: Some(failure_threshold),
        timeout_seconds: Some(timeout_seconds),
        ..Probe::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_zone_names_are_kept_whole() {
        assert_eq!(satellite_name("dmz"), "vedette-zone-dmz-satellite");
        assert_eq!(zone_label_value("dmz"), "dmz");
    }

    #[test]
    fn long_zone_names_are_shortened_with_a_hash_and_stay_distinct() {
        let a = "a".repeat(200);
        let b = format!("{}b", "a".repeat(199));
        for zone in [&a, &b] {
            for name in [
                satellite_name(zone),
                agent_name(zone),
                token_review_name(zone),
                bundle_shard_name(zone, 999),
                zone_label_value(zone),
            ] {
                assert!(name.len() <= MAX_NAME_LENGTH, "{name} is {}", name.len());
                assert!(!name.ends_with('-') && !name.starts_with('-'), "{name}");
            }
        }
        assert_ne!(satellite_name(&a), satellite_name(&b));
        assert_ne!(zone_label_value(&a), zone_label_value(&b));
        assert!(token_review_name(&a).ends_with("-satellite-tokenreview"));
    }

    #[test]
    fn dotted_zone_names_become_valid_dns_labels_without_colliding() {
        let dotted = satellite_name("eu.west");
        let dashed = satellite_name("eu-west");
        assert!(!dotted.contains('.'), "{dotted}");
        assert_ne!(dotted, dashed);
        assert_eq!(dashed, "vedette-zone-eu-west-satellite");
    }
}
