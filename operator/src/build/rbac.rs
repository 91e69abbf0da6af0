//! Least-privilege RBAC of a zone's satellites. Agents get none: they never talk to the API
//! server.
//!
//! In the zone namespace (Role `vedette-zone-<zone>-satellite`):
//! - ConfigMaps get/list/watch, to follow the zone's bundle. RBAC cannot filter by label and
//!   the number of shards varies, so this covers every ConfigMap of the namespace; keep the
//!   namespace to Vedette's own objects.
//! - Leases get/list/watch/create/update, for ownership of remote checks among replicas.
//!
//! Cluster-wide (ClusterRole `vedette-zone-<zone>-satellite-tokenreview`):
//! - TokenReviews create, to authenticate agents by their projected token.
//! - Nodes get/list/watch, for node metadata (which nodes, hence machines, the zone has).

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use vedette_crds::MonitorZone;
use vedette_protocol::names::check_secrets_name;

use super::BuildContext;
use super::common::{
    Component, cluster_object_meta, object_meta, satellite_name, token_review_name, zone_name,
};

const READ: [&str; 3] = ["get", "list", "watch"];

/// The satellites' Role in the zone namespace: bundle ConfigMaps and leases.
pub fn satellite_role(zone: &MonitorZone, ctx: &BuildContext) -> Role {
    Role {
        metadata: object_meta(
            zone,
            ctx,
            satellite_name(&zone_name(zone)),
            Component::Satellite,
        ),
        rules: Some(vec![
            rule("", "configmaps", &READ),
            // The zone's check secrets, and no other Secret.
            PolicyRule {
                resource_names: Some(vec![check_secrets_name(&zone_name(zone))]),
                ..rule("", "secrets", &READ)
            },
            rule(
                "coordination.k8s.io",
                "leases",
                &["get", "list", "watch", "create", "update"],
            ),
        ]),
    }
}

/// Binds [`satellite_role`] to the satellites' ServiceAccount.
pub fn satellite_role_binding(zone: &MonitorZone, ctx: &BuildContext) -> RoleBinding {
    let name = satellite_name(&zone_name(zone));
    RoleBinding {
        metadata: object_meta(zone, ctx, name.clone(), Component::Satellite),
        role_ref: role_ref("Role", &name),
        subjects: Some(vec![satellite_subject(zone, ctx)]),
    }
}

/// The satellites' ClusterRole: review agents' tokens, read node metadata.
pub fn satellite_cluster_role(zone: &MonitorZone) -> ClusterRole {
    ClusterRole {
        metadata: cluster_object_meta(
            zone,
            token_review_name(&zone_name(zone)),
            Component::Satellite,
        ),
        rules: Some(vec![
            rule("authentication.k8s.io", "tokenreviews", &["create"]),
            rule("", "nodes", &READ),
        ]),
        aggregation_rule: None,
    }
}

/// Binds [`satellite_cluster_role`] to the satellites' ServiceAccount.
pub fn satellite_cluster_role_binding(
    zone: &MonitorZone,
    ctx: &BuildContext,
) -> ClusterRoleBinding {
    let name = token_review_name(&zone_name(zone));
    ClusterRoleBinding {
        metadata: cluster_object_meta(zone, name.clone(), Component::Satellite),
        role_ref: role_ref("ClusterRole", &name),
        subjects: Some(vec![satellite_subject(zone, ctx)]),
    }
}

fn rule(api_group: &str, resource: &str, verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![api_group.to_owned()]),
        resources: Some(vec![resource.to_owned()]),
        verbs: verbs.iter().map(|verb| (*verb).to_owned()).collect(),
        ..PolicyRule::default()
    }
}

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef {
        api_group: "rbac.authorization.k8s.io".to_owned(),
        kind: kind.to_owned(),
        name: name.to_owned(),
    }
}

fn satellite_subject(zone: &MonitorZone, ctx: &BuildContext) -> Subject {
    Subject {
        kind: "ServiceAccount".to_owned(),
        name: satellite_name(&zone_name(zone)),
        namespace: Some(ctx.namespace.clone()),
        api_group: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures::{context, dmz};

    #[test]
    fn satellite_role_snapshot() {
        insta::assert_yaml_snapshot!(satellite_role(&dmz(), &context()));
    }

    #[test]
    fn satellite_role_binding_snapshot() {
        insta::assert_yaml_snapshot!(satellite_role_binding(&dmz(), &context()));
    }

    #[test]
    fn satellite_cluster_role_snapshot() {
        insta::assert_yaml_snapshot!(satellite_cluster_role(&dmz()));
    }

    #[test]
    fn satellite_cluster_role_binding_snapshot() {
        insta::assert_yaml_snapshot!(satellite_cluster_role_binding(&dmz(), &context()));
    }

    #[test]
    fn no_rule_grants_writes_beyond_leases_and_token_reviews() {
        let writes = [
            "create",
            "update",
            "patch",
            "delete",
            "deletecollection",
            "*",
        ];
        let role = satellite_role(&dmz(), &context()).rules.unwrap();
        let cluster_role = satellite_cluster_role(&dmz()).rules.unwrap();
        for rule in role.iter().chain(&cluster_role) {
            let resource = rule.resources.clone().unwrap()[0].clone();
            let writes_here: Vec<&String> = rule
                .verbs
                .iter()
                .filter(|verb| writes.contains(&verb.as_str()))
                .collect();
            match resource.as_str() {
                "leases" => assert_eq!(writes_here, ["create", "update"]),
                "tokenreviews" => assert_eq!(writes_here, ["create"]),
                other => assert!(writes_here.is_empty(), "{other}: {writes_here:?}"),
            }
        }
    }
}
