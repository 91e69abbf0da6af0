//! Two satellite replicas of a zone, both forwarding to the masters; the node agent lists
//! both. SIGKILL the one it uses: it fails over to the other, and state changes keep reaching
//! the RuleSet status. The operator and the surviving satellite never exit.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use vedette_e2e::fleet::{self, NodeAgent, Satellite, SatelliteMode};

const NAMESPACE: &str = "res-failover";
const APP: &str = "res-failover-app";
const ZONE: &str = "rf";
const NODE: &str = "rf-node-1";
const STATUS_WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changes_keep_arriving_after_a_satellite_is_killed() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let flags = ["--insecure-no-auth"];
    let mut scenario = fleet::scenario(NAMESPACE, APP, ZONE, &[NODE], port, &flags).await?;
    let client = scenario.client.clone();
    let masters = [scenario.operator.url()];
    let mut satellites = Vec::new();
    for replica in ["rf-satellite-0", "rf-satellite-1"] {
        let mut satellite = Satellite::start(
            &scenario.plane,
            NAMESPACE,
            ZONE,
            replica,
            &masters,
            SatelliteMode::KubeInsecure,
        )?;
        satellite.wait_ready().await?;
        satellites.push(satellite);
    }
    let upstreams: Vec<String> = satellites.iter().map(Satellite::url).collect();
    let mut agent = NodeAgent::start(&scenario.plane, NODE, &upstreams)?;
    fleet::rule_set_status(&client, APP, "web", STATUS_WAIT, |s| {
        (s.checks_by_state.ok == 1).then_some(())
    })
    .await?;

    satellites[0].kill();
    drop(listener);
    let killed = Instant::now();
    fleet::rule_set_status(&client, APP, "web", STATUS_WAIT, |s| {
        (s.checks_by_state.critical == 1).then_some(())
    })
    .await?;
    eprintln!("CRITICAL in status {:?} after the kill", killed.elapsed());

    let listener = TcpListener::bind(("127.0.0.1", port))?;
    fleet::rule_set_status(&client, APP, "web", STATUS_WAIT, |s| {
        (s.checks_by_state.ok == 1 && s.checks_by_state.critical == 0).then_some(())
    })
    .await?;
    fleet::zone_status(&client, ZONE, STATUS_WAIT, |s| {
        (s.agents_connected == 1).then_some(())
    })
    .await?;
    drop(listener);

    scenario.operator.ensure_running()?;
    satellites[1].ensure_running()?;
    agent.ensure_running()?;
    scenario.plane.ensure_running()
}
