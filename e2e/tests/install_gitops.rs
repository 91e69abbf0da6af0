//! Installing for real and living with GitOps: the operator runs with the chart's
//! ServiceAccount credentials (the RBAC is enough, and a write outside it is forbidden);
//! applying the same manifests twice writes nothing; the operator never takes fields another
//! field manager owns; deleting a RuleSet from Git removes its checks from every bundle.

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde::Deserialize;
use vedette_crds::RuleSet;
use vedette_e2e::operator::{self, Operator, bundle, checks_by_machine};
use vedette_e2e::tools::{helm, repository, run_ok};
use vedette_e2e::{ControlPlane, manifests, wait};

const NAMESPACE: &str = "vedette-system";
const WAIT: Duration = Duration::from_secs(40);
const EVERY: Duration = Duration::from_millis(250);

const MANIFESTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: team-git}
---
apiVersion: vedette.dev/v1alpha1
kind: MonitorZone
metadata: {name: git}
spec:
  nodeSelector: {matchLabels: {zone: git}}
  satellites: {replicas: 1}
---
apiVersion: vedette.dev/v1alpha1
kind: CheckTemplate
metadata: {name: tcp, namespace: team-git}
spec:
  parameters:
    - {name: port, type: int, default: 80, minimum: 1, maximum: 65535}
  check:
    tcp: {port: $port$}
---
apiVersion: vedette.dev/v1alpha1
kind: RuleSet
metadata: {name: web, namespace: team-git}
spec:
  machines: {nodeSelector: {matchLabels: {role: web}}}
  rules:
    - {name: http, template: {name: tcp}, parameters: {port: 8080}}
---
apiVersion: vedette.dev/v1alpha1
kind: RuleSet
metadata: {name: db, namespace: team-git}
spec:
  machines: {nodeSelector: {matchLabels: {role: web}}}
  rules:
    - {name: postgres, template: {name: tcp}, parameters: {port: 5432}}
"#;

fn documents() -> Vec<serde_json::Value> {
    serde_yaml::Deserializer::from_str(MANIFESTS)
        .map(|d| serde_json::Value::deserialize(d).expect("fixture parses"))
        .collect()
}

async fn apply_as_git(client: &kube::Client) -> anyhow::Result<()> {
    for document in documents() {
        manifests::apply_as(client, &document, "gitops")
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", document["metadata"]["name"]))?;
    }
    Ok(())
}

/// `kind/namespace/name=resourceVersion` of the fixture's objects and of everything the
/// operator owns in its namespace.
fn versions(plane: &ControlPlane) -> anyhow::Result<String> {
    let template = "jsonpath={range .items[*]}{.kind}/{.metadata.namespace}/{.metadata.name}={.metadata.resourceVersion}{\"\\n\"}{end}";
    let vedette = run_ok(plane.kubectl().args([
        "get",
        "monitorzones,checktemplates,rulesets",
        "-A",
        "-o",
        template,
    ]))?;
    let owned = run_ok(plane.kubectl().args(["get", "configmaps,statefulsets,daemonsets,services,serviceaccounts,roles,rolebindings,poddisruptionbudgets", "-n", NAMESPACE, "-l", "app.kubernetes.io/managed-by=vedette-operator", "-o", template]))?;
    Ok(format!("{vedette}{owned}"))
}

/// A kubeconfig with a token of the chart's ServiceAccount `vedette`.
fn service_account_kubeconfig(plane: &ControlPlane) -> anyhow::Result<std::path::PathBuf> {
    let token = run_ok(plane.kubectl().args([
        "create",
        "token",
        "vedette",
        "-n",
        NAMESPACE,
        "--duration=1h",
    ]))?;
    let path = plane.dir().join("operator-sa.kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: {}\n    insecure-skip-tls-verify: true\nusers:\n- name: operator\n  user:\n    token: {}\ncontexts:\n- name: e2e\n  context: {{cluster: e2e, user: operator, namespace: {NAMESPACE}}}\ncurrent-context: e2e\n",
            plane.server(),
            token.trim()
        ),
    )?;
    Ok(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_runs_on_the_charts_permissions_and_nothing_more() -> anyhow::Result<()> {
    let mut plane = ControlPlane::start().await?;
    let chart = repository().join("charts/vedette");
    run_ok(helm(&plane)?.args([
        "install",
        "vedette",
        &chart.display().to_string(),
        "-n",
        NAMESPACE,
        "--create-namespace",
    ]))?;
    run_ok(plane.kubectl().args([
        "wait",
        "--for=condition=Established",
        "crd",
        "--all",
        "--timeout=60s",
    ]))?;
    let client = plane.client().await?;
    operator::create_node(&client, "git-1", &[("zone", "git"), ("role", "web")]).await?;
    apply_as_git(&client).await?;

    let kubeconfig = service_account_kubeconfig(&plane)?;
    let mut replica = Operator::start_as(&plane, &kubeconfig, NAMESPACE, "sa-replica")?;
    replica.wait_ready().await?;
    let expected = [(
        "git-1".to_owned(),
        vec![
            ("team-git/db/postgres".to_owned(), serde_json::json!(5432)),
            ("team-git/web/http".to_owned(), serde_json::json!(8080)),
        ],
    )]
    .into();
    wait::until(
        "bundle published with the chart's permissions",
        WAIT,
        EVERY,
        || async {
            let (bundle, _) = bundle(&client, NAMESPACE, "git").await?;
            Ok((checks_by_machine(&bundle) == expected).then_some(()))
        },
    )
    .await?;
    let stateful_sets: Api<StatefulSet> = Api::namespaced(client.clone(), NAMESPACE);
    wait::until("satellite StatefulSet", WAIT, EVERY, || async {
        Ok(stateful_sets
            .get_opt("vedette-zone-git-satellite")
            .await?
            .map(|_| ()))
    })
    .await?;
    let rule_sets: Api<RuleSet> = Api::namespaced(client.clone(), "team-git");
    wait::until("RuleSet status written", WAIT, EVERY, || async {
        let status = rule_sets.get("web").await?.status.unwrap_or_default();
        Ok(status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
            .then_some(()))
    })
    .await?;
    let log = replica.log_tail(400);
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "the operator hit a permission it lacks:\n{log}"
    );

    // The same credentials cannot write outside the chart's rules: Secrets only in the
    // operator's own namespace (the zones' check secrets), never in an application's.
    let mut sa_kubectl = Command::new(plane.bin_dir().join("kubectl"));
    sa_kubectl.arg("--kubeconfig").arg(&kubeconfig);
    let secret = sa_kubectl
        .args([
            "create",
            "secret",
            "generic",
            "stolen",
            "-n",
            "team-git",
            "--from-literal=a=b",
        ])
        .output()?;
    assert!(
        !secret.status.success(),
        "the operator's credentials could create a Secret in an application's namespace"
    );
    assert!(
        String::from_utf8_lossy(&secret.stderr).contains("forbidden"),
        "{}",
        String::from_utf8_lossy(&secret.stderr)
    );
    let mut sa_kubectl = Command::new(plane.bin_dir().join("kubectl"));
    sa_kubectl.arg("--kubeconfig").arg(&kubeconfig);
    let elsewhere = sa_kubectl
        .args(["create", "configmap", "x", "-n", "default"])
        .output()?;
    assert!(
        !elsewhere.status.success(),
        "the operator's credentials could write outside its namespace"
    );
    replica.ensure_running()?;
    plane.ensure_running()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitops_reapply_is_silent_fields_stay_with_their_owner_and_deletion_propagates()
-> anyhow::Result<()> {
    let mut plane = ControlPlane::start().await?;
    operator::install_crds(&plane).await?;
    let client = plane.client().await?;
    operator::create_namespace(&client, NAMESPACE).await?;
    operator::create_node(&client, "git-1", &[("zone", "git"), ("role", "web")]).await?;
    apply_as_git(&client).await?;
    let mut replica = Operator::start(&plane, NAMESPACE, "gitops-replica")?;
    replica.wait_ready().await?;
    let both = [(
        "git-1".to_owned(),
        vec![
            ("team-git/db/postgres".to_owned(), serde_json::json!(5432)),
            ("team-git/web/http".to_owned(), serde_json::json!(8080)),
        ],
    )]
    .into();
    wait::until("bundle with both rule sets", WAIT, EVERY, || async {
        let (bundle, _) = bundle(&client, NAMESPACE, "git").await?;
        Ok((checks_by_machine(&bundle) == both).then_some(()))
    })
    .await?;
    // Let status writes settle (they are coalesced to one per object per 10 s).
    let plane_ref = &plane;
    let settled = wait::until(
        "no more writes for 12 s",
        Duration::from_secs(90),
        Duration::from_secs(1),
        || async move {
            let before = versions(plane_ref)?;
            tokio::time::sleep(Duration::from_secs(12)).await;
            Ok((versions(plane_ref)? == before).then_some(before))
        },
    )
    .await?;

    // Applying the same manifests again writes nothing, and the operator writes nothing either.
    let writes_before = replica.metric("vedette_operator_api_writes").await?;
    apply_as_git(&client).await?;
    tokio::time::sleep(Duration::from_secs(3)).await; // give a wrongly triggered pass time to write
    assert_eq!(
        settled,
        versions(&plane)?,
        "re-applying the same manifests changed objects"
    );
    assert_eq!(
        writes_before,
        replica.metric("vedette_operator_api_writes").await?,
        "the operator wrote after a no-op apply"
    );

    // Another manager's label on an operator-owned object survives the operator's next write,
    // and the operator never takes it over.
    let stateful_sets: Api<StatefulSet> = Api::namespaced(client.clone(), NAMESPACE);
    let label = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "vedette-zone-git-satellite", "labels": {"cost-center": "platform"}}
    });
    stateful_sets
        .patch(
            "vedette-zone-git-satellite",
            &PatchParams::apply("platform-team"),
            &Patch::Apply(&label),
        )
        .await?;
    let mut changed = documents()
        .into_iter()
        .find(|d| d["metadata"]["name"] == "tcp")
        .expect("template");
    changed["spec"]["parameters"][0]["default"] = serde_json::json!(81);
    manifests::apply_as(&client, &changed, "gitops").await?;
    wait::until(
        "operator reconciled the template change",
        WAIT,
        EVERY,
        || async {
            let writes = replica.metric("vedette_operator_api_writes").await?;
            Ok((writes > writes_before).then_some(()))
        },
    )
    .await?;
    let set = stateful_sets.get("vedette-zone-git-satellite").await?;
    let labels = set.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("cost-center").map(String::as_str),
        Some("platform"),
        "the operator removed another manager's label"
    );
    for entry in set.metadata.managed_fields.unwrap_or_default() {
        let fields = serde_json::to_string(&entry.fields_v1).unwrap_or_default();
        if entry.manager.as_deref() == Some("vedette-operator") {
            assert!(
                !fields.contains("cost-center"),
                "the operator took ownership of cost-center"
            );
        }
    }
    let rule_set = Api::<RuleSet>::namespaced(client.clone(), "team-git")
        .get("web")
        .await?;
    for entry in rule_set.metadata.managed_fields.unwrap_or_default() {
        if entry.manager.as_deref() == Some("vedette-operator") {
            assert_eq!(
                entry.subresource.as_deref(),
                Some("status"),
                "the operator owns spec fields of a RuleSet: {entry:?}"
            );
        }
    }

    // Deleting a RuleSet from Git removes its checks from every bundle.
    Api::<RuleSet>::namespaced(client.clone(), "team-git")
        .delete("db", &DeleteParams::default())
        .await?;
    let only_web = [(
        "git-1".to_owned(),
        vec![("team-git/web/http".to_owned(), serde_json::json!(8080))],
    )]
    .into();
    wait::until("db's checks gone from the bundle", WAIT, EVERY, || async {
        let (bundle, _) = bundle(&client, NAMESPACE, "git").await?;
        Ok((checks_by_machine(&bundle) == only_web).then_some(()))
    })
    .await?;
    replica.ensure_running()?;
    plane.ensure_running()
}
