//! Two operator replicas: only the Lease holder writes. Killing the holder with SIGKILL
//! (no release) hands the Lease to the other replica once it expires, and the next change
//! still lands. The surviving replica must never have exited; stopped with SIGTERM at the
//! end, it stops taking batches, drains its event stream and exits 0.

use std::time::Duration;

use serde_json::json;
use vedette_e2e::operator::{self, Operator, bundle, checks_by_machine};
use vedette_e2e::{ControlPlane, wait};

const NAMESPACE: &str = "op-failover";
const APP: &str = "op-failover-app";
const WAIT: Duration = Duration::from_secs(30);
const EVERY: Duration = Duration::from_millis(250);

fn fixture(port: u32) -> String {
    format!(
        r#"
apiVersion: vedette.dev/v1alpha1
kind: MonitorZone
metadata: {{name: delta}}
spec: {{nodeSelector: {{}}, satellites: {{replicas: 1}}}}
---
apiVersion: vedette.dev/v1alpha1
kind: CheckTemplate
metadata: {{name: tcp, namespace: {APP}}}
spec:
  parameters: [{{name: port, type: int, default: {port}, minimum: 1, maximum: 65535}}]
  check: {{tcp: {{port: $port$}}}}
---
apiVersion: vedette.dev/v1alpha1
kind: RuleSet
metadata: {{name: web, namespace: {APP}}}
spec:
  machines: {{nodeSelector: {{}}}}
  rules: [{{name: web, template: {{name: tcp}}}}]
"#
    )
}

async fn port_published(client: &kube::Client, port: u16) -> anyhow::Result<Option<()>> {
    let (bundle, _) = bundle(client, NAMESPACE, "delta").await?;
    let expected = [(
        "node-1".to_owned(),
        vec![(format!("{APP}/web/web"), json!(port))],
    )]
    .into();
    Ok((checks_by_machine(&bundle) == expected).then_some(()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_failover_on_kill() -> anyhow::Result<()> {
    let mut plane = ControlPlane::start().await?;
    operator::install_crds(&plane).await?;
    let client = plane.client().await?;
    operator::create_namespace(&client, NAMESPACE).await?;
    operator::create_namespace(&client, APP).await?;
    operator::create_node(&client, "node-1", &[("role", "web")]).await?;
    operator::apply_yaml(&client, &fixture(80)).await?;
    let mut replicas = [
        Operator::start(&plane, NAMESPACE, "replica-0")?,
        Operator::start(&plane, NAMESPACE, "replica-1")?,
    ];
    for replica in &mut replicas {
        replica.wait_ready().await?;
    }
    let first = wait::until("a Lease holder", WAIT, EVERY, || {
        operator::lease_holder(&client, NAMESPACE)
    })
    .await?;
    wait::until("bundle with port 80", WAIT, EVERY, || {
        port_published(&client, 80)
    })
    .await?;
    let (held, other): (Vec<_>, Vec<_>) = replicas.iter_mut().partition(|r| r.identity() == first);
    let (killed, survivor) = (
        held.into_iter().next().unwrap(),
        other.into_iter().next().unwrap(),
    );
    assert_eq!(killed.metric("vedette_operator_leader").await?, 1.0);
    assert_eq!(survivor.metric("vedette_operator_leader").await?, 0.0);
    assert_eq!(
        survivor.metric("vedette_operator_api_writes_total").await?,
        0.0,
        "a replica without the Lease wrote"
    );

    killed.kill();
    operator::apply_yaml(&client, &fixture(81)).await?;
    operator::wait_for_lease(&client, NAMESPACE, survivor.identity()).await?;
    wait::until("bundle with port 81", WAIT, EVERY, || {
        port_published(&client, 81)
    })
    .await?;
    assert_eq!(survivor.metric("vedette_operator_leader").await?, 1.0);
    let (code, _) = survivor.get("/healthz").await?;
    assert_eq!(code, 200);

    survivor.ensure_running()?;
    let exit = survivor.terminate(Duration::from_secs(10));
    assert!(
        exit.is_some_and(|status| status.success()),
        "SIGTERM: {exit:?}\n{}",
        survivor.log_tail(20)
    );
    assert!(
        survivor.log_tail(50).contains("draining the event stream"),
        "{}",
        survivor.log_tail(20)
    );
    plane.ensure_running()
}
