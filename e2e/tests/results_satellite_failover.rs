//! Two satellite replicas of a zone, both forwarding to the masters; the node agent lists
//! both, and the zone has remote (agentless) checks on six targets, each run by exactly one
//! replica. SIGKILL the one the agent uses: the agent fails over to the other, state changes
//! keep reaching the RuleSet status, and the killed replica's remote checks move to the
//! survivor. The operator and the surviving satellite never exit.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use vedette_e2e::fleet::{self, NodeAgent, Satellite, SatelliteMode};
use vedette_e2e::wait;

const NAMESPACE: &str = "res-failover";
const APP: &str = "res-failover-app";
const ZONE: &str = "rf";
const NODE: &str = "rf-node-1";
const STATUS_WAIT: Duration = Duration::from_secs(30);
const REMOTE_TARGETS: [&str; 6] = [
    "remote-a", "remote-b", "remote-c", "remote-d", "remote-e", "remote-f",
];
const OWNED: &str = "vedette_satellite_remote_checks_owned";

/// The zone of [`fleet::fixture`] with two satellite replicas and a remote TCP check on
/// [`REMOTE_TARGETS`] (the template probes the same local listener as the agent's rule).
fn zone_with_remote_checks(port: u16) -> String {
    let targets = REMOTE_TARGETS.join(", ");
    format!(
        r#"
apiVersion: vedette.dev/v1alpha1
kind: MonitorZone
metadata: {{name: {ZONE}}}
spec:
  nodeSelector: {{matchLabels: {{zone: {ZONE}}}}}
  satellites:
    replicas: 2
    remoteChecks:
      - name: listener-remote
        targets: [{targets}]
        template: {{name: tcp, namespace: {APP}}}
        parameters: {{port: {port}}}
  agents: {{keepaliveIntervalSeconds: 2, planHoldSeconds: 60}}
"#
    )
}

/// Remote checks each satellite runs, once every one of them sees `replicas` live replicas.
async fn remote_checks_owned(
    satellites: &[&Satellite],
    replicas: usize,
) -> anyhow::Result<Vec<usize>> {
    let mut owned = Vec::new();
    for satellite in satellites {
        let (_, text) = satellite.get("/metrics").await?;
        let live = fleet::metric_in(&text, "vedette_satellite_replicas", &[]);
        if live != Some(replicas as f64) {
            anyhow::bail!("replica sees {live:?} live replicas, not {replicas}");
        }
        owned.push(fleet::metric_in(&text, OWNED, &[]).unwrap_or(0.0) as usize);
    }
    Ok(owned)
}

/// Waits until the satellites together run every remote check exactly once.
async fn wait_for_remote_checks(
    satellites: &[&Satellite],
    replicas: usize,
) -> anyhow::Result<Vec<usize>> {
    wait::until(
        "each remote check run by exactly one satellite replica",
        STATUS_WAIT,
        Duration::from_millis(250),
        || async {
            Ok(remote_checks_owned(satellites, replicas)
                .await
                .ok()
                .filter(|owned| owned.iter().sum::<usize>() == REMOTE_TARGETS.len()))
        },
    )
    .await
}

/// Waits until `satellite` holds a state for every remote target (it runs them).
async fn wait_for_remote_states(satellite: &Satellite) -> anyhow::Result<()> {
    wait::until(
        "a state for every remote target on the surviving replica",
        STATUS_WAIT,
        Duration::from_millis(250),
        || async {
            let (_, text) = satellite.get("/metrics").await?;
            Ok(REMOTE_TARGETS
                .iter()
                .all(|target| {
                    let host = format!("host=\"{target}\"");
                    let check = "check=\"listener-remote\"";
                    fleet::metric_in(&text, "vedette_satellite_check_state", &[&host, check])
                        .is_some_and(|state| state >= 0.0)
                })
                .then_some(()))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changes_keep_arriving_after_a_satellite_is_killed() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let flags = ["--insecure-no-auth"];
    let mut scenario = fleet::scenario(NAMESPACE, APP, ZONE, &[NODE], port, &flags).await?;
    let client = scenario.client.clone();
    vedette_e2e::operator::apply_yaml(&client, &zone_with_remote_checks(port)).await?;
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
    let shares = wait_for_remote_checks(&[&satellites[0], &satellites[1]], 2).await?;
    eprintln!("remote checks owned by the two replicas: {shares:?}");

    satellites[0].kill();
    drop(listener);
    let killed = Instant::now();
    let shares = wait_for_remote_checks(&[&satellites[1]], 1).await?;
    assert_eq!(shares, [REMOTE_TARGETS.len()]);
    wait_for_remote_states(&satellites[1]).await?;
    eprintln!(
        "every remote check running on the survivor {:?} after the kill",
        killed.elapsed()
    );
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
