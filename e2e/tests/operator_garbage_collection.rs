//! What a zone owns follows the zone: disabling its agents deletes the DaemonSet (the
//! operator deletes what is no longer wanted), and deleting the zone lets the real
//! kube-controller-manager's garbage collector remove everything else through the owner
//! references. The satellite Deployment an earlier release ran is deleted once the zone's
//! StatefulSet replaces it, and the StatefulSet's controller makes a spool claim per replica.
//! The operator must never have exited.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{DeleteParams, ListParams};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use vedette_crds::MonitorZone;
use vedette_e2e::operator::{self, Operator};
use vedette_e2e::{ControlPlane, wait};

const NAMESPACE: &str = "op-gc";
const WAIT: Duration = Duration::from_secs(60);
const EVERY: Duration = Duration::from_millis(250);
const SELECTOR: &str = "vedette.dev/zone=gamma";

fn zone(agents: bool) -> String {
    format!(
        "apiVersion: vedette.dev/v1alpha1\nkind: MonitorZone\nmetadata: {{name: gamma}}\n\
         spec:\n  nodeSelector: {{}}\n  satellites: {{replicas: 2}}\n  agents: {{enabled: {agents}}}\n"
    )
}

/// How many objects of each owned kind carry the zone's label.
async fn owned(client: &Client) -> anyhow::Result<Vec<(&'static str, usize)>> {
    async fn count<K>(api: Api<K>) -> anyhow::Result<usize>
    where
        K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
    {
        Ok(api
            .list(&ListParams::default().labels(SELECTOR))
            .await?
            .items
            .len())
    }
    Ok(vec![
        (
            "ConfigMap",
            count(Api::<ConfigMap>::namespaced(client.clone(), NAMESPACE)).await?,
        ),
        (
            "StatefulSet",
            count(Api::<StatefulSet>::namespaced(client.clone(), NAMESPACE)).await?,
        ),
        (
            "Deployment",
            count(Api::<Deployment>::namespaced(client.clone(), NAMESPACE)).await?,
        ),
        (
            "Service",
            count(Api::<Service>::namespaced(client.clone(), NAMESPACE)).await?,
        ),
        (
            "PodDisruptionBudget",
            count(Api::<PodDisruptionBudget>::namespaced(
                client.clone(),
                NAMESPACE,
            ))
            .await?,
        ),
        (
            "DaemonSet",
            count(Api::<DaemonSet>::namespaced(client.clone(), NAMESPACE)).await?,
        ),
        (
            "ServiceAccount",
            count(Api::<ServiceAccount>::namespaced(client.clone(), NAMESPACE)).await?,
        ),
        (
            "Role",
            count(Api::<Role>::namespaced(client.clone(), NAMESPACE)).await?,
        ),
        (
            "RoleBinding",
            count(Api::<RoleBinding>::namespaced(client.clone(), NAMESPACE)).await?,
        ),
        (
            "ClusterRole",
            count(Api::<ClusterRole>::all(client.clone())).await?,
        ),
        (
            "ClusterRoleBinding",
            count(Api::<ClusterRoleBinding>::all(client.clone())).await?,
        ),
    ])
}

/// The satellites of zone gamma as a release before StatefulSets rendered them.
const EARLIER_RELEASE_SATELLITE: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: vedette-zone-gamma-satellite
  namespace: op-gc
  labels: {app.kubernetes.io/managed-by: vedette-operator, vedette.dev/zone: gamma}
spec:
  replicas: 1
  selector: {matchLabels: {app: earlier-satellite}}
  template:
    metadata: {labels: {app: earlier-satellite}}
    spec:
      containers: [{name: satellite, image: vedette-agent:earlier}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_objects_follow_their_zone() -> anyhow::Result<()> {
    let mut plane = ControlPlane::start().await?;
    operator::install_crds(&plane).await?;
    let client = plane.client().await?;
    operator::create_namespace(&client, NAMESPACE).await?;
    operator::create_node(&client, "node-1", &[("role", "web")]).await?;
    operator::apply_yaml(&client, &zone(true)).await?;
    operator::apply_yaml(&client, EARLIER_RELEASE_SATELLITE).await?;
    let mut operator = Operator::start(&plane, NAMESPACE, "replica-0")?;
    operator.wait_ready().await?;

    let everything = [
        ("ConfigMap", 1),
        ("StatefulSet", 1),
        ("Deployment", 0),
        ("Service", 2),
        ("PodDisruptionBudget", 1),
        ("DaemonSet", 1),
        ("ServiceAccount", 2),
        ("Role", 1),
        ("RoleBinding", 1),
        ("ClusterRole", 1),
        ("ClusterRoleBinding", 1),
    ];
    let expect = |wanted: Vec<(&'static str, usize)>| {
        let client = client.clone();
        async move {
            let found = owned(&client).await?;
            Ok((found == wanted).then_some(()))
        }
    };
    wait::until("every object of zone gamma", WAIT, EVERY, || {
        expect(everything.to_vec())
    })
    .await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NAMESPACE);
    wait::until(
        "a spool claim per satellite replica",
        WAIT,
        EVERY,
        || async {
            let mut names: Vec<String> = claims
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .filter_map(|c| c.metadata.name)
                .collect();
            names.sort();
            Ok((names
                == [
                    "spool-vedette-zone-gamma-satellite-0",
                    "spool-vedette-zone-gamma-satellite-1",
                ])
            .then_some(()))
        },
    )
    .await?;

    // Agents disabled: the operator deletes the DaemonSet, nothing else.
    operator::apply_yaml(&client, &zone(false)).await?;
    let without_agents: Vec<_> = everything
        .iter()
        .map(|(kind, n)| (*kind, if *kind == "DaemonSet" { 0 } else { *n }))
        .collect();
    wait::until("the DaemonSet deleted", WAIT, EVERY, || {
        expect(without_agents.clone())
    })
    .await?;

    // The zone deleted: the garbage collector removes all it owned.
    let zones: Api<MonitorZone> = Api::all(client.clone());
    zones.delete("gamma", &DeleteParams::foreground()).await?;
    let nothing: Vec<_> = everything.iter().map(|(kind, _)| (*kind, 0)).collect();
    wait::until("everything of zone gamma collected", WAIT, EVERY, || {
        expect(nothing.clone())
    })
    .await?;
    wait::until("zone gamma gone", WAIT, EVERY, || async {
        Ok(zones.get_opt("gamma").await?.is_none().then_some(()))
    })
    .await?;

    operator.ensure_running()?;
    plane.ensure_running()
}
