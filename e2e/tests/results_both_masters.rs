//! Two operator replicas (the masters) and a satellite given both: every state change reaches
//! BOTH masters' live state, whichever holds the Lease. SIGKILL the Lease holder: the
//! satellite keeps forwarding to the survivor at once (the dead master holds back only its
//! own cursor, visible in the satellite's per-master metrics), the survivor takes the Lease
//! and writes the RuleSet status from what it received itself. No other process exits.

use std::net::TcpListener;
use std::time::Duration;

use serde_json::Value;
use vedette_e2e::fleet::{self, NodeAgent, Satellite, SatelliteMode};
use vedette_e2e::operator::{self, Operator};
use vedette_e2e::wait;

const NAMESPACE: &str = "res-masters";
const APP: &str = "res-masters-app";
const ZONE: &str = "rm";
const NODE: &str = "rm-node-1";
const WAIT: Duration = Duration::from_secs(30);
const EVERY: Duration = Duration::from_millis(200);

/// The state of the check on NODE in `master`'s `/v1/masters/state` (`OK`, `CRITICAL`, …).
async fn check_state(master: &Operator) -> anyhow::Result<Option<String>> {
    let (_, body) = master.get("/v1/masters/state").await?;
    let view: Value = serde_json::from_str(&body)?;
    let checks = view["checks"].as_array().cloned().unwrap_or_default();
    let check = format!("{APP}/web/listener");
    Ok(checks
        .iter()
        .find(|c| c[0] == NODE && c[1] == check.as_str())
        .and_then(|c| c[2].as_str().map(str::to_owned)))
}

/// Waits until every one of `masters` shows the check in `state`.
async fn all_show(masters: &[&Operator], state: &str) -> anyhow::Result<()> {
    for master in masters {
        let what = format!("{} to show {state}", master.identity());
        wait::until(&what, WAIT, EVERY, || async {
            Ok((check_state(master).await?.as_deref() == Some(state)).then_some(()))
        })
        .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_masters_receive_every_state_change() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let flags = ["--insecure-no-auth"];
    let mut scenario = fleet::scenario(NAMESPACE, APP, ZONE, &[NODE], port, &flags).await?;
    let client = scenario.client.clone();
    let mut second = Operator::start_with(
        &scenario.plane,
        scenario.plane.kubeconfig(),
        NAMESPACE,
        "master-1",
        &flags,
    )?;
    second.wait_ready().await?;
    let masters = [scenario.operator.url(), second.url()];
    let mut satellite = Satellite::start(
        &scenario.plane,
        NAMESPACE,
        ZONE,
        "rm-satellite-0",
        &masters,
        SatelliteMode::KubeInsecure,
    )?;
    satellite.wait_ready().await?;
    let mut agent = NodeAgent::start(&scenario.plane, NODE, &[satellite.url()])?;

    all_show(&[&scenario.operator, &second], "OK").await?;
    drop(listener);
    all_show(&[&scenario.operator, &second], "CRITICAL").await?;
    fleet::rule_set_status(&client, APP, "web", WAIT, |s| {
        (s.checks_by_state.critical == 1).then_some(())
    })
    .await?;

    // Kill whichever holds the Lease; the other has everything and takes over.
    let leader = wait::until("a Lease holder", WAIT, EVERY, || {
        operator::lease_holder(&client, NAMESPACE)
    })
    .await?;
    let (killed, survivor) = if leader == second.identity() {
        (&mut second, &mut scenario.operator)
    } else {
        (&mut scenario.operator, &mut second)
    };
    let killed_url = killed.url();
    killed.kill();
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    all_show(&[survivor], "OK").await?;
    operator::wait_for_lease(&client, NAMESPACE, survivor.identity()).await?;
    fleet::rule_set_status(&client, APP, "web", WAIT, |s| {
        (s.checks_by_state.ok == 1 && s.checks_by_state.critical == 0).then_some(())
    })
    .await?;

    // The satellite's per-master metrics: the dead master fails and holds a backlog.
    let upstream = format!(r#"upstream="{killed_url}""#);
    let failed = satellite
        .metric(
            "vedette_satellite_upstream_sends_total",
            &[&upstream, r#"result="failed""#],
        )
        .await?;
    assert!(failed.is_some_and(|f| f >= 1.0), "failed sends: {failed:?}");
    let backlog = satellite
        .metric("vedette_satellite_upstream_backlog_entries", &[&upstream])
        .await?;
    assert!(backlog.is_some_and(|b| b >= 1.0), "backlog: {backlog:?}");
    drop(listener);

    survivor.ensure_running()?;
    satellite.ensure_running()?;
    agent.ensure_running()?;
    scenario.plane.ensure_running()
}
