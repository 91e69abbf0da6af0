//! The chart's PodMonitor and ServiceMonitor against the real apiserver with the Prometheus
//! Operator's CRDs installed (from its Go module, `e2e/tools/prometheus-operator-crds.sh`):
//! a server-side dry run (`dryRun=All`, strict field validation) accepts both and drops no
//! field, while a field or a value the CRD does not allow is refused (the dry run validates);
//! and each selects what it should, as the apiserver evaluates its selector: the PodMonitor
//! the pods of the operator's agent DaemonSet and satellite StatefulSet (not the masters), each
//! with a container port of the endpoint's name; the ServiceMonitor the masters Service, with
//! a port of its endpoint's name.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaimVolumeSource, Pod, PodSpec, Service, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::Api;
use kube::api::{ListParams, PostParams};
use vedette_e2e::ControlPlane;
use vedette_e2e::manifests::{self, Document};
use vedette_e2e::tools::{helm, prometheus_operator_crds, repository, run_ok};
use vedette_operator::build::{BuildContext, agent_daemon_set, satellite_stateful_set};

const NAMESPACE: &str = "vedette-system";

/// The chart rendered with both monitors on, as JSON documents.
fn rendered(plane: &ControlPlane) -> anyhow::Result<Vec<serde_json::Value>> {
    let chart = repository().join("charts/vedette");
    let text = run_ok(helm(plane)?.args([
        "template",
        "vedette",
        &chart.display().to_string(),
        "-n",
        NAMESPACE,
        "--kube-version",
        "v1.34.4",
        "--set",
        "prometheus.serviceMonitor.enabled=true",
        "--set",
        "prometheus.podMonitor.enabled=true",
        "--set",
        "prometheus.podMonitor.labels.release=prometheus",
        "--set",
        "prometheus.podMonitor.interval=15s",
    ]))?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, text)?;
    Ok(manifests::documents(&file)?
        .into_iter()
        .map(|Document { value, .. }| value)
        .collect())
}

fn of_kind<'a>(documents: &'a [serde_json::Value], kind: &str) -> &'a serde_json::Value {
    let found: Vec<&serde_json::Value> = documents.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} rendered: {found:#?}");
    found[0]
}

/// The one document of `kind` named `name`.
fn named<'a>(documents: &'a [serde_json::Value], kind: &str, name: &str) -> &'a serde_json::Value {
    let found: Vec<&serde_json::Value> = documents
        .iter()
        .filter(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "one {kind} {name} rendered: {found:#?}");
    found[0]
}

/// A LabelSelector as the query string the apiserver evaluates.
fn selector_query(selector: &LabelSelector) -> String {
    let mut terms: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    for expression in selector.match_expressions.iter().flatten() {
        let values = expression.values.clone().unwrap_or_default().join(",");
        let key = &expression.key;
        terms.push(match expression.operator.as_str() {
            "In" => format!("{key} in ({values})"),
            "NotIn" => format!("{key} notin ({values})"),
            "Exists" => key.clone(),
            "DoesNotExist" => format!("!{key}"),
            other => panic!("operator {other} in {selector:?}"),
        });
    }
    terms.join(",")
}

/// A Pod named `name` with the labels and spec of a workload's pod template (Pending: the
/// control plane has no scheduler or kubelet).
fn pod(name: &str, labels: BTreeMap<String, String>, spec: PodSpec) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(NAMESPACE.to_owned()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// The pods of the operator's own workloads for the samples' `core` zone, as the operator
/// running from this chart (`--namespace` the release namespace) builds them, and a pod with
/// the masters' labels.
fn zone_pods(documents: &[serde_json::Value]) -> anyhow::Result<Vec<Pod>> {
    let zones = manifests::documents(&repository().join("config/samples/00-zones.yaml"))?;
    let core = zones
        .into_iter()
        .find(|d| d.value["metadata"]["name"] == "core")
        .expect("the samples' core zone");
    let mut zone: vedette_crds::MonitorZone = serde_json::from_value(core.value)?;
    zone.metadata.uid = Some("00000000-0000-0000-0000-000000000001".to_owned());
    let ctx = BuildContext {
        namespace: NAMESPACE.to_owned(),
        image: "ghcr.io/vedette-dev/vedette-agent:0.1.0".to_owned(),
        masters_url: "http://vedette-operator-0.vedette-masters.vedette-system.svc:8080".to_owned(),
        bundle_hash: String::new(),
    };
    let agents = agent_daemon_set(&zone, &ctx).expect("the core zone runs agents");
    let agents = agents.spec.expect("spec").template;
    let satellites = satellite_stateful_set(&zone, &ctx).spec.expect("spec");
    let mut satellite_pod = satellites.template;
    // Each claim template becomes a volume of the pod, as the StatefulSet controller adds it.
    let claims = satellites.volume_claim_templates.unwrap_or_default();
    if let Some(spec) = satellite_pod.spec.as_mut() {
        let volumes = spec.volumes.get_or_insert_with(Vec::new);
        for claim in claims {
            let name = claim.metadata.name.expect("a claim name");
            volumes.push(Volume {
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: format!("{name}-core-satellite-0"),
                    read_only: None,
                }),
                name,
                ..Volume::default()
            });
        }
    }
    let mut pods: Vec<Pod> = [
        ("core-agent-x1", agents),
        ("core-satellite-0", satellite_pod),
    ]
    .into_iter()
    .map(|(name, template)| {
        let labels = template.metadata.and_then(|m| m.labels).unwrap_or_default();
        pod(name, labels, template.spec.expect("a pod spec"))
    })
    .collect();
    // A master: the chart's pod labels, and a container with its port (its volumes come from
    // the StatefulSet's claims, which a bare Pod cannot have).
    let masters = &of_kind(documents, "StatefulSet")["spec"]["template"];
    let labels: BTreeMap<String, String> =
        serde_json::from_value(masters["metadata"]["labels"].clone())?;
    let container: Container = serde_json::from_value(masters["spec"]["containers"][0].clone())?;
    let container = Container {
        volume_mounts: None,
        ..container
    };
    pods.push(pod(
        "vedette-operator-0",
        labels,
        PodSpec {
            containers: vec![container],
            ..PodSpec::default()
        },
    ));
    Ok(pods)
}

/// Applies the Prometheus Operator's two monitor CRDs and waits until they are Established.
async fn install_monitor_crds(plane: &ControlPlane) -> anyhow::Result<()> {
    let client = plane.client().await?;
    let dir = prometheus_operator_crds()?;
    for kind in ["podmonitors", "servicemonitors"] {
        let file = dir.join(format!("monitoring.coreos.com_{kind}.yaml"));
        for document in manifests::documents(&file)? {
            manifests::apply(&client, &document.value).await?;
        }
        run_ok(plane.kubectl().args([
            "wait",
            "--for=condition=Established",
            &format!("crd/{kind}.monitoring.coreos.com"),
            "--timeout=60s",
        ]))?;
    }
    Ok(())
}

/// A dry run of `document` must be accepted and give back every field as rendered.
async fn assert_dry_run_accepts(
    client: &kube::Client,
    document: &serde_json::Value,
) -> anyhow::Result<()> {
    let kind = document["kind"].as_str().unwrap_or("?");
    let answer = manifests::dry_run_apply(client, document)
        .await
        .unwrap_or_else(|error| panic!("the dry run refused the {kind}: {error}"));
    let answer = serde_json::to_value(answer)?;
    let lost = manifests::differences(document, &answer);
    assert!(lost.is_empty(), "{kind}: the server changed {lost:?}");
    Ok(())
}

/// A dry run of `document` must be refused, naming `field`.
async fn assert_dry_run_refuses(client: &kube::Client, document: &serde_json::Value, field: &str) {
    match manifests::dry_run_apply(client, document).await {
        Ok(_) => panic!("the dry run accepted a wrong {field}: {document:#}"),
        Err(error) => assert!(
            error.to_string().contains(field),
            "the refusal does not name {field}: {error}"
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_monitors_are_valid_and_select_the_agents_satellites_and_masters()
-> anyhow::Result<()> {
    let mut plane = ControlPlane::start().await?;
    let client = plane.client().await?;
    install_monitor_crds(&plane).await?;
    vedette_e2e::operator::create_namespace(&client, NAMESPACE).await?;
    let documents = rendered(&plane)?;
    let pod_monitor = of_kind(&documents, "PodMonitor");
    let service_monitor = of_kind(&documents, "ServiceMonitor");
    assert_eq!(pod_monitor["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(
        pod_monitor["spec"]["podMetricsEndpoints"][0]["interval"],
        "15s"
    );

    // Dry runs: both accepted whole and nothing persisted; wrong fields and values refused.
    for monitor in [pod_monitor, service_monitor] {
        assert_dry_run_accepts(&client, monitor).await?;
        let api = manifests::api_for(&client, monitor).await?;
        let name = monitor["metadata"]["name"].as_str().unwrap_or_default();
        assert!(
            api.get_opt(name).await?.is_none(),
            "the dry run stored {name}"
        );
    }
    let mut unknown = pod_monitor.clone();
    unknown["spec"]["podMetricsEndpoints"][0]["scrapeEvery"] = "30s".into();
    assert_dry_run_refuses(&client, &unknown, "scrapeEvery").await;
    let mut badly_typed = service_monitor.clone();
    badly_typed["spec"]["endpoints"][0]["interval"] = "every 30 seconds".into();
    assert_dry_run_refuses(&client, &badly_typed, "interval").await;

    // The PodMonitor selects the zone's agent and satellite pods in its namespace, by a port
    // their containers declare, and not the masters.
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    for pod in zone_pods(&documents)? {
        pods.create(&PostParams::default(), &pod).await?;
    }
    let selector: LabelSelector = serde_json::from_value(pod_monitor["spec"]["selector"].clone())?;
    let selected = pods
        .list(&ListParams::default().labels(&selector_query(&selector)))
        .await?;
    let mut names: Vec<String> = selected
        .items
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["core-agent-x1", "core-satellite-0"]);
    assert_eq!(pod_monitor["metadata"]["namespace"], NAMESPACE);
    let port = pod_monitor["spec"]["podMetricsEndpoints"][0]["port"]
        .as_str()
        .expect("the endpoint names a port");
    assert_eq!(
        pod_monitor["spec"]["podMetricsEndpoints"][0]["path"],
        "/metrics"
    );
    for pod in &selected.items {
        let declared: Vec<String> = pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| p.name.clone())
            .collect();
        assert!(
            declared.iter().any(|name| name == port),
            "{:?} declares no port {port}: {declared:?}",
            pod.metadata.name
        );
    }

    // The ServiceMonitor selects the masters Service, by one of its ports.
    manifests::apply(&client, named(&documents, "Service", "vedette-masters")).await?;
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let selector: LabelSelector =
        serde_json::from_value(service_monitor["spec"]["selector"].clone())?;
    let selected = services
        .list(&ListParams::default().labels(&selector_query(&selector)))
        .await?;
    let [masters] = selected.items.as_slice() else {
        panic!("not one Service selected: {:#?}", selected.items);
    };
    assert_eq!(masters.metadata.name.as_deref(), Some("vedette-masters"));
    let port = service_monitor["spec"]["endpoints"][0]["port"]
        .as_str()
        .expect("the endpoint names a port");
    let ports: Vec<String> = masters
        .spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .filter_map(|p| p.name.clone())
        .collect();
    assert!(ports.iter().any(|p| p == port), "no port {port}: {ports:?}");
    plane.ensure_running()
}
