//! Keepalive freshness at the masters: a node agent stopped with SIGSTOP shows as stale in
//! the MonitorZone status (and its checks as stale in the RuleSet) within 30 s, with
//! keepalives every 2 s; after SIGCONT it is connected again. No process exits.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use vedette_e2e::fleet::{self, NodeAgent, Satellite, SatelliteMode};

const NAMESPACE: &str = "res-stale";
const APP: &str = "res-stale-app";
const ZONE: &str = "rs";
const NODE: &str = "rs-node-1";
const STATUS_WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_agent_turns_stale_and_fresh_again() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let flags = ["--insecure-no-auth"];
    let mut scenario = fleet::scenario(NAMESPACE, APP, ZONE, &[NODE], port, &flags).await?;
    let client = scenario.client.clone();
    let mut satellite = Satellite::start(
        &scenario.plane,
        NAMESPACE,
        ZONE,
        "rs-satellite-0",
        &[scenario.operator.url()],
        SatelliteMode::KubeInsecure,
    )?;
    satellite.wait_ready().await?;
    let mut agent = NodeAgent::start(&scenario.plane, NODE, &[satellite.url()])?;

    fleet::zone_status(&client, ZONE, STATUS_WAIT, |s| {
        (s.agents_connected == 1 && s.agents_stale == 0).then_some(())
    })
    .await?;

    agent.signal("STOP")?;
    let stopped = Instant::now();
    fleet::zone_status(&client, ZONE, STATUS_WAIT, |s| {
        (s.agents_stale == 1 && s.agents_connected == 0).then_some(())
    })
    .await?;
    eprintln!("stale in zone status {:?} after SIGSTOP", stopped.elapsed());
    fleet::rule_set_status(&client, APP, "web", STATUS_WAIT, |s| {
        (s.stale == 1).then_some(())
    })
    .await?;

    agent.signal("CONT")?;
    let continued = Instant::now();
    fleet::zone_status(&client, ZONE, STATUS_WAIT, |s| {
        (s.agents_connected == 1 && s.agents_stale == 0).then_some(())
    })
    .await?;
    eprintln!(
        "fresh in zone status {:?} after SIGCONT",
        continued.elapsed()
    );
    drop(listener);

    scenario.operator.ensure_running()?;
    satellite.ensure_running()?;
    agent.ensure_running()?;
    scenario.plane.ensure_running()
}
