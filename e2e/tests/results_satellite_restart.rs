//! A satellite SIGKILLed while its agent sends, and started again on the same spool (as a
//! restarted pod): nothing it acknowledged is lost and nothing is counted twice. Then the
//! agent is cut off from its satellite (the satellite is down) while its check changes state
//! three times: the agent spools the changes, and once the satellite is back they arrive, in
//! order, and the RuleSet status ends on the last one. The satellite's recent history
//! (`/v1/state` `recentChanges`, in arrival order) is the witness: the agent's state changes
//! alternate OK / CRITICAL with rising sequence numbers, none missing, none twice.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use serde_json::Value;
use vedette_e2e::fleet::{self, NodeAgent, Satellite, SatelliteMode};
use vedette_e2e::wait;

const NAMESPACE: &str = "res-restart";
const APP: &str = "res-restart-app";
const ZONE: &str = "rr";
const NODE: &str = "rr-node-1";
const CHECK: &str = "res-restart-app/web/listener";
const STATUS_WAIT: Duration = Duration::from_secs(30);
/// Longer than the check's interval (2 s) with room for jitter: every state the listener is
/// held in is seen by at least one run.
const HOLD: Duration = Duration::from_secs(5);

/// The local port the check probes, opened and closed on demand.
struct Listener {
    port: u16,
    open: Option<TcpListener>,
}

impl Listener {
    fn new() -> anyhow::Result<Self> {
        let open = TcpListener::bind("127.0.0.1:0")?;
        Ok(Self {
            port: open.local_addr()?.port(),
            open: Some(open),
        })
    }

    /// Opens a closed listener, closes an open one; returns the state the check will see.
    fn flip(&mut self) -> anyhow::Result<&'static str> {
        Ok(match self.open.take() {
            Some(_) => "CRITICAL",
            None => {
                self.open = Some(TcpListener::bind(("127.0.0.1", self.port))?);
                "OK"
            }
        })
    }
}

async fn state(satellite: &Satellite) -> anyhow::Result<Value> {
    let (status, body) = satellite.get("/v1/state").await?;
    anyhow::ensure!(status == 200, "GET /v1/state: {status} {body}");
    Ok(serde_json::from_str(&body)?)
}

/// Every sequence of the agent up to this one is stored on the satellite.
fn watermark(view: &Value) -> u64 {
    view["watermarks"][NODE].as_u64().unwrap_or(0)
}

/// The agent's state changes of the check in the satellite's history, in arrival order:
/// (sequence, state).
fn changes(view: &Value) -> Vec<(u64, String)> {
    view["recentChanges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["host"] == NODE && c["check"] == CHECK)
        .map(|c| {
            (
                c["writer"][1].as_u64().unwrap_or(0),
                c["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

async fn wait_for_watermark(satellite: &Satellite, above: u64) -> anyhow::Result<u64> {
    wait::until(
        &format!("agent entries stored above sequence {above}"),
        STATUS_WAIT,
        Duration::from_millis(200),
        || async {
            let up_to = watermark(&state(satellite).await?);
            Ok((up_to > above).then_some(up_to))
        },
    )
    .await
}

/// Asserts the agent's state changes alternate, start with OK and have rising sequences: a
/// lost change would repeat a state, one counted twice would repeat a sequence.
fn assert_alternating(changes: &[(u64, String)]) {
    assert_eq!(
        changes.first().map(|c| c.1.as_str()),
        Some("OK"),
        "{changes:?}"
    );
    for pair in changes.windows(2) {
        assert!(pair[0].0 < pair[1].0, "sequences not rising: {changes:?}");
        assert_ne!(pair[0].1, pair[1].1, "a state repeated: {changes:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_satellite_loses_nothing_and_spooled_changes_arrive_in_order()
-> anyhow::Result<()> {
    let mut listener = Listener::new()?;
    let flags = ["--insecure-no-auth"];
    let mut scenario =
        fleet::scenario(NAMESPACE, APP, ZONE, &[NODE], listener.port, &flags).await?;
    let client = scenario.client.clone();
    let mut satellite = Satellite::start(
        &scenario.plane,
        NAMESPACE,
        ZONE,
        "rr-satellite-0",
        &[scenario.operator.url()],
        SatelliteMode::KubeInsecure,
    )?;
    satellite.wait_ready().await?;
    let mut agent = NodeAgent::start(&scenario.plane, NODE, &[satellite.url()])?;
    fleet::rule_set_status(&client, APP, "web", STATUS_WAIT, |s| {
        (s.checks_by_state.ok == 1).then_some(())
    })
    .await?;

    // SIGKILL the satellite while the agent sends, three times, the check changing state
    // shortly before each kill.
    let mut expected = "OK";
    let mut seen = watermark(&state(&satellite).await?);
    for round in 0..3u64 {
        wait_for_watermark(&satellite, seen + 2).await?;
        expected = listener.flip()?;
        tokio::time::sleep(Duration::from_millis(300 + 400 * round)).await;
        seen = watermark(&state(&satellite).await?);
        satellite.kill();
        satellite.restart()?;
        satellite.wait_ready().await?;
        let after = watermark(&state(&satellite).await?);
        assert!(
            after >= seen,
            "acknowledged up to {seen} before the kill, {after} after the restart"
        );
        eprintln!("round {round}: acknowledged {seen} before the kill, {after} after it");
    }
    fleet::rule_set_status(&client, APP, "web", STATUS_WAIT, |s| {
        let count = match expected {
            "OK" => s.checks_by_state.ok,
            _ => s.checks_by_state.critical,
        };
        (count == 1).then_some(())
    })
    .await?;

    // Cut the agent off: the satellite is down while the check changes state three times.
    let before = changes(&state(&satellite).await?);
    satellite.kill();
    let cut_off = Instant::now();
    let mut spooled = Vec::new();
    for _ in 0..3 {
        tokio::time::sleep(HOLD).await;
        spooled.push(listener.flip()?);
    }
    tokio::time::sleep(HOLD).await;
    satellite.restart()?;
    satellite.wait_ready().await?;
    let back = Instant::now();
    let arrived = wait::until(
        "the state changes spooled while cut off",
        STATUS_WAIT,
        Duration::from_millis(200),
        || async {
            let all = changes(&state(&satellite).await?);
            Ok((all.len() >= before.len() + spooled.len()).then_some(all))
        },
    )
    .await?;
    eprintln!(
        "cut off {:?}; the {} spooled changes arrived {:?} after the satellite was back",
        back - cut_off,
        spooled.len(),
        back.elapsed()
    );
    assert_alternating(&arrived);
    let states: Vec<&str> = arrived[before.len()..]
        .iter()
        .map(|c| c.1.as_str())
        .collect();
    assert_eq!(
        states, spooled,
        "changes spooled while cut off: {arrived:?}"
    );
    let last = *spooled.last().unwrap_or(&expected);
    fleet::rule_set_status(&client, APP, "web", STATUS_WAIT, |s| {
        let count = match last {
            "OK" => s.checks_by_state.ok,
            _ => s.checks_by_state.critical,
        };
        (count == 1).then_some(())
    })
    .await?;

    // Every entry the satellite stored was applied exactly once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    agent.signal("STOP")?;
    let view = state(&satellite).await?;
    agent.signal("CONT")?;
    let applied = &view["applied"];
    let total: u64 = ["stateChanges", "keepalives", "results"]
        .iter()
        .map(|field| applied[field].as_u64().unwrap_or(0))
        .sum();
    let stored = watermark(&view) + view["storedAbove"][NODE].as_u64().unwrap_or(0);
    assert_eq!(total, stored, "every stored entry applied once: {view}");
    assert_alternating(&changes(&view));

    scenario.operator.ensure_running()?;
    satellite.ensure_running()?;
    agent.ensure_running()?;
    scenario.plane.ensure_running()
}
