//! The operator as a real process against a real control plane: zones, templates and rule
//! sets become bundle ConfigMaps with the right checks per machine; Nodes join and leave;
//! a template change rewrites only the zone it affects; unchanged input causes no write; an
//! invalid parameter shows in status with the precise message while the last good bundle
//! stays. At the end the operator must never have exited.

use std::time::Duration;

use kube::Api;
use kube::api::DeleteParams;
use serde_json::json;
use vedette_crds::{CheckTemplate, MonitorZone, RuleSet};
use vedette_e2e::operator::{self, Operator, bundle, checks_by_machine};
use vedette_e2e::{ControlPlane, fleet, wait};

const NAMESPACE: &str = "op-publish";
const APP: &str = "op-publish-app";
const WAIT: Duration = Duration::from_secs(30);
const EVERY: Duration = Duration::from_millis(200);

fn fixture(alpha_default_port: u32, alpha_rule_parameters: &str) -> String {
    format!(
        r#"
apiVersion: vedette.dev/v1alpha1
kind: MonitorZone
metadata: {{name: alpha}}
spec:
  nodeSelector: {{matchLabels: {{zone: alpha}}}}
  satellites: {{replicas: 1}}
---
apiVersion: vedette.dev/v1alpha1
kind: MonitorZone
metadata: {{name: beta}}
spec:
  nodeSelector: {{matchLabels: {{zone: beta}}}}
  satellites: {{replicas: 1}}
---
apiVersion: vedette.dev/v1alpha1
kind: CheckTemplate
metadata: {{name: tcp-alpha, namespace: {APP}}}
spec:
  parameters:
    - {{name: port, type: int, default: {alpha_default_port}, minimum: 1, maximum: 65535}}
  check:
    tcp: {{port: $port$}}
---
apiVersion: vedette.dev/v1alpha1
kind: CheckTemplate
metadata: {{name: tcp-beta, namespace: {APP}}}
spec:
  parameters:
    - {{name: port, type: int, default: 80, minimum: 1, maximum: 65535}}
  check:
    tcp: {{port: $port$}}
---
apiVersion: vedette.dev/v1alpha1
kind: RuleSet
metadata: {{name: alpha-web, namespace: {APP}}}
spec:
  machines: {{nodeSelector: {{matchLabels: {{role: web}}}}, zones: [alpha]}}
  rules:
    - {{name: web, template: {{name: tcp-alpha}}{alpha_rule_parameters}}}
---
apiVersion: vedette.dev/v1alpha1
kind: RuleSet
metadata: {{name: beta-web, namespace: {APP}}}
spec:
  machines: {{nodeSelector: {{matchLabels: {{role: web}}}}, zones: [beta]}}
  rules:
    - {{name: web, template: {{name: tcp-beta}}, parameters: {{port: 9090}}}}
"#
    )
}

fn check(rule_set: &str, port: u16) -> (String, serde_json::Value) {
    (format!("{APP}/{rule_set}/web"), json!(port))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_publishes_bundles_and_status() -> anyhow::Result<()> {
    let mut plane = ControlPlane::start().await?;
    operator::install_crds(&plane).await?;
    let client = plane.client().await?;
    operator::create_namespace(&client, NAMESPACE).await?;
    operator::create_namespace(&client, APP).await?;
    operator::create_node(&client, "node-a1", &[("zone", "alpha"), ("role", "web")]).await?;
    operator::create_node(&client, "node-b1", &[("zone", "beta"), ("role", "web")]).await?;
    operator::apply_yaml(&client, &fixture(80, "")).await?;
    let mut operator = Operator::start(&plane, NAMESPACE, "replica-0")?;
    operator.wait_ready().await?;

    // The join: each zone's bundle holds its machines and their checks.
    let expected_alpha = [("node-a1".to_owned(), vec![check("alpha-web", 80)])].into();
    let published = wait::until("alpha bundle", WAIT, EVERY, || async {
        let (bundle, _) = bundle(&client, NAMESPACE, "alpha").await?;
        let found = checks_by_machine(&bundle);
        Ok((found == expected_alpha).then_some(found))
    });
    published.await?;
    // Zones are published one after the other: wait for beta too.
    let expected_beta = [("node-b1".to_owned(), vec![check("beta-web", 9090)])].into();
    let (beta, beta_maps) = wait::until("beta bundle", WAIT, EVERY, || async {
        let (bundle, maps) = bundle(&client, NAMESPACE, "beta").await?;
        Ok((checks_by_machine(&bundle) == expected_beta).then_some((bundle, maps)))
    })
    .await?;
    assert_eq!(checks_by_machine(&beta), expected_beta);

    // Status of every kind, from the compile output.
    let rule_sets: Api<RuleSet> = Api::namespaced(client.clone(), APP);
    let status = wait::until("RuleSet alpha-web status", WAIT, EVERY, || async {
        let status = rule_sets.get("alpha-web").await?.status.unwrap_or_default();
        let ready = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        Ok((ready && status.machines == 1 && status.checks == 1).then_some(status))
    })
    .await?;
    assert_eq!(status.observed_generation, Some(1));
    let templates: Api<CheckTemplate> = Api::namespaced(client.clone(), APP);
    let template = wait::until("CheckTemplate tcp-alpha status", WAIT, EVERY, || async {
        let status = templates.get("tcp-alpha").await?.status.unwrap_or_default();
        Ok((status.rule_sets == 1).then_some(status))
    })
    .await?;
    assert_eq!(template.probe.as_deref(), Some("tcp"));
    let zones: Api<MonitorZone> = Api::all(client.clone());
    let zone = wait::until("MonitorZone alpha status", WAIT, EVERY, || async {
        let status = zones.get("alpha").await?.status.unwrap_or_default();
        Ok((status.machines == 1 && status.checks == 1).then_some(status))
    })
    .await?;
    assert_eq!(
        zone.satellites.as_deref(),
        Some("0/1"),
        "no kubelet, no ready satellite"
    );
    let degraded = zone
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .expect("Degraded");
    // One replica is a warning of its own, before the satellites that are not ready.
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "SingleSatellite")
    );
    assert!(
        degraded.message.contains("satellites.replicas is 1")
            && degraded.message.contains("0 of 1 satellites ready"),
        "{degraded:?}"
    );

    // Unchanged input: a pass runs (an irrelevant annotation) and writes nothing.
    let writes = settled_writes(&operator).await?;
    let passes = operator.metric("vedette_operator_reconciles_total").await?;
    let annotate = json!({"metadata": {"annotations": {"touched": "yes"}}});
    templates
        .patch(
            "tcp-beta",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&annotate),
        )
        .await?;
    wait::until("a pass after the no-op change", WAIT, EVERY, || async {
        let now = operator.metric("vedette_operator_reconciles_total").await?;
        Ok((now > passes).then_some(()))
    })
    .await?;
    assert_eq!(
        operator.metric("vedette_operator_api_writes_total").await?,
        writes
    );

    // A Node with matching labels joins the bundle, and leaves it when deleted.
    operator::create_node(&client, "node-a2", &[("zone", "alpha"), ("role", "web")]).await?;
    let machines = |present: bool| {
        let client = client.clone();
        async move {
            let (bundle, _) = bundle(&client, NAMESPACE, "alpha").await?;
            Ok((bundle.machines.contains_key("node-a2") == present).then_some(()))
        }
    };
    wait::until("node-a2 in the alpha bundle", WAIT, EVERY, || {
        machines(true)
    })
    .await?;
    let (alpha, _) = bundle(&client, NAMESPACE, "alpha").await?;
    assert_eq!(
        checks_by_machine(&alpha)["node-a2"],
        vec![check("alpha-web", 80)]
    );
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    nodes.delete("node-a2", &DeleteParams::default()).await?;
    wait::until("node-a2 out of the alpha bundle", WAIT, EVERY, || {
        machines(false)
    })
    .await?;

    // A template change rewrites only the zone it reaches.
    let beta_versions = versions(&beta_maps);
    operator::apply_yaml(&client, &fixture(81, "")).await?;
    let expected_alpha = [("node-a1".to_owned(), vec![check("alpha-web", 81)])].into();
    let alpha = wait::until("alpha bundle with port 81", WAIT, EVERY, || async {
        let (bundle, _) = bundle(&client, NAMESPACE, "alpha").await?;
        Ok((checks_by_machine(&bundle) == expected_alpha).then_some(bundle))
    })
    .await?;
    let (_, beta_maps_after) = bundle(&client, NAMESPACE, "beta").await?;
    assert_eq!(
        versions(&beta_maps_after),
        beta_versions,
        "beta's ConfigMaps were written"
    );

    // An invalid parameter: InvalidSpec with the precise message; the last good bundle stays.
    operator::apply_yaml(&client, &fixture(81, ", parameters: {port: abc}")).await?;
    let expected = format!(
        "rule web: template {APP}/tcp-alpha: parameter port: expected int 1–65535, got \"abc\""
    );
    let condition = wait::until("RuleSet alpha-web InvalidSpec", WAIT, EVERY, || async {
        let status = rule_sets.get("alpha-web").await?.status.unwrap_or_default();
        let invalid = status
            .conditions
            .into_iter()
            .find(|c| c.type_ == "InvalidSpec" && c.status == "True");
        Ok(invalid.filter(|_| status.observed_generation == Some(2)))
    })
    .await?;
    assert_eq!(condition.reason, "InvalidParameter");
    assert_eq!(condition.message, expected);
    // The problem is also an Event on the RuleSet, sent once.
    let event = fleet::event(&client, APP, "InvalidParameter", &expected, WAIT).await?;
    let regarding = event.regarding.clone().unwrap_or_default();
    assert_eq!(
        (regarding.kind.as_deref(), regarding.name.as_deref()),
        (Some("RuleSet"), Some("alpha-web"))
    );
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert!(regarding.uid.is_some(), "the Event names the RuleSet's uid");
    tokio::time::sleep(Duration::from_secs(12)).await;
    let events: kube::Api<k8s_openapi::api::events::v1::Event> =
        kube::Api::namespaced(client.clone(), APP);
    let sent = events
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("InvalidParameter"))
        .map(|e| e.series.map_or(1, |s| s.count))
        .sum::<i32>();
    assert_eq!(sent, 1, "an unchanged problem is not sent again");
    let (held, _) = bundle(&client, NAMESPACE, "alpha").await?;
    assert_eq!(
        held, alpha,
        "the invalid spec replaced the last good bundle"
    );

    operator.ensure_running()?;
    plane.ensure_running()
}

/// The write counter once it stopped moving for two consecutive reads a pass apart.
async fn settled_writes(operator: &Operator) -> anyhow::Result<f64> {
    let last = std::cell::Cell::new(-1.0);
    wait::until("writes to settle", WAIT, Duration::from_secs(1), || async {
        let now = operator.metric("vedette_operator_api_writes_total").await?;
        Ok((now == last.replace(now)).then_some(now))
    })
    .await
}

fn versions(maps: &[k8s_openapi::api::core::v1::ConfigMap]) -> Vec<Option<String>> {
    maps.iter()
        .map(|m| m.metadata.resource_version.clone())
        .collect()
}
