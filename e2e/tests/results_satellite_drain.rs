//! A satellite stopped (SIGTERM) while the masters are away loses nothing it acknowledged:
//! two agents' batches are acknowledged by a satellite whose masters do not answer; on SIGTERM
//! it refuses new batches (503), tries the masters until its grace runs out and exits 0; a new
//! satellite process on the same spool directory (a replacement pod on the same volume claim)
//! recovers every entry, and once the masters (a real `vedette-operator standalone`, its
//! history on disk) are up, every acknowledged entry is in their history exactly once, within
//! seconds (the satellite probes a master it is behind on every second).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use vedette_crds::CheckState;
use vedette_e2e::control_plane::free_port;
use vedette_e2e::fleet::{self, Satellite};
use vedette_e2e::http::{http_get, http_post};
use vedette_e2e::process::Managed;
use vedette_e2e::wait;
use vedette_protocol::plan::{AgentSettings, CheckId, ZoneBundle};
use vedette_protocol::report::{Ack, Batch, CheckReport, Envelope, Report};

const ZONE: &str = "drain";
const NAMESPACE: &str = "drain-app";
const REPLICA: &str = "drain-satellite-0";
const AGENTS: [&str; 2] = ["drain-agent-0", "drain-agent-1"];
/// An agent whose batch comes as the satellite stops.
const LATE: &str = "drain-agent-late";
/// Entries each agent sends.
const PER_AGENT: u64 = 120;
const PER_BATCH: u64 = 20;
/// The satellite's `--shutdown-grace-seconds`.
const GRACE: Duration = Duration::from_secs(3);
const WAIT: Duration = Duration::from_secs(60);

/// The masters: `vedette-operator standalone` on `port`, its history under `dir`.
fn start_masters(dir: &Path, port: u16) -> anyhow::Result<Managed> {
    let manifests = dir.join("manifests.yaml");
    std::fs::write(
        &manifests,
        "apiVersion: vedette.dev/v1alpha1\nkind: MonitorZone\nmetadata:\n  name: local\n\
         spec:\n  nodeSelector: {}\n",
    )?;
    let mut command = Command::new(vedette_e2e::operator::binary()?);
    command
        .env_remove("KUBECONFIG")
        .args(["standalone", "-f"])
        .arg(&manifests)
        .args(["--host", "drain-masters", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.join("masters"))
        .args(["--summary-seconds", "60"]);
    Managed::spawn("masters", command, &dir.join("masters.log"))
}

/// Entry `sequence` of `agent`: a hard state change of one of its checks.
fn entry(agent: &str, sequence: u64) -> Envelope {
    let states = [CheckState::Ok, CheckState::Critical];
    Envelope {
        sequence,
        report: Report::StateChange(CheckReport {
            check: CheckId {
                namespace: NAMESPACE.into(),
                rule_set: "drain".into(),
                rule: format!("check-{}", sequence % 5),
            },
            host: agent.to_owned(),
            state: states[(sequence / 5 % 2) as usize],
            hard: true,
            attempt: 1,
            previous_state: states[((sequence / 5 + 1) % 2) as usize],
            output: format!("entry {sequence}"),
            duration_ms: 1,
            at_ms: 1_800_000_000_000 + sequence,
        }),
    }
}

/// POSTs entries `from..to` of `agent` as one batch: the status and, on 200, the answer.
async fn send(
    satellite: &Satellite,
    agent: &str,
    from: u64,
    to: u64,
) -> anyhow::Result<(u16, Option<Ack>)> {
    let batch = Batch {
        agent: agent.to_owned(),
        floor: 1,
        entries: (from..to).map(|sequence| entry(agent, sequence)).collect(),
    };
    let body = serde_json::to_string(&batch)?;
    let (status, answer) = http_post(satellite.port(), "/v1/results", None, &body).await?;
    let ack = (status == 200)
        .then(|| serde_json::from_str::<Ack>(&answer))
        .transpose()?;
    Ok((status, ack))
}

async fn satellite_state(satellite: &Satellite) -> anyhow::Result<Value> {
    let (status, body) = satellite.get("/v1/state").await?;
    anyhow::ensure!(status == 200, "GET /v1/state: {status} {body}");
    Ok(serde_json::from_str(&body)?)
}

/// Every `(agent, sequence)` of the namespace in the masters' history, with how often.
async fn recorded(port: u16) -> anyhow::Result<BTreeMap<(String, u64), u32>> {
    let mut seen = BTreeMap::new();
    let mut cursor = String::new();
    loop {
        let path = format!("/v1/history?namespace={NAMESPACE}&limit=1000{cursor}");
        let (status, body) = http_get(port, &path).await?;
        anyhow::ensure!(status == 200, "GET {path}: {status} {body}");
        let page: Value = serde_json::from_str(&body)?;
        for record in page["records"].as_array().into_iter().flatten() {
            let key = (
                record["source"].as_str().unwrap_or_default().to_owned(),
                record["sequence"].as_u64().unwrap_or(0),
            );
            *seen.entry(key).or_default() += 1;
        }
        match page["next"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return Ok(seen),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_satellite_stopped_while_the_masters_are_away_loses_nothing_it_acknowledged()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let bundle = dir.path().join("bundle.json");
    fleet::write_bundle(
        &bundle,
        &ZoneBundle {
            zone: ZONE.into(),
            settings: AgentSettings::default(),
            checks: Vec::new(),
            machines: BTreeMap::new(),
            remote: Vec::new(),
            elements: Vec::new(),
            secrets: Default::default(),
        },
    )?;
    // Nothing listens there until the masters start.
    let masters_port = free_port()?;
    let masters_url = format!("http://127.0.0.1:{masters_port}");
    let grace = GRACE.as_secs().to_string();
    let flags = ["--shutdown-grace-seconds", grace.as_str()];
    let mut satellite = Satellite::start_without_cluster(
        dir.path(),
        ZONE,
        REPLICA,
        std::slice::from_ref(&masters_url),
        &bundle,
        &flags,
    )?;
    satellite.wait_ready().await?;

    // The agents' entries, each batch acknowledged.
    for agent in AGENTS {
        for from in (1..=PER_AGENT).step_by(PER_BATCH as usize) {
            let (status, ack) = send(&satellite, agent, from, from + PER_BATCH).await?;
            anyhow::ensure!(status == 200, "batch {agent} {from}: {status}");
            let up_to = ack.map_or(0, |a| a.up_to);
            anyhow::ensure!(
                up_to == from + PER_BATCH - 1,
                "{agent} acknowledged {up_to}"
            );
        }
    }

    // SIGTERM: new batches are refused while the satellite tries the masters, then it exits 0.
    satellite.signal("TERM")?;
    let stopped_at = Instant::now();
    // The signal takes a moment to arrive: a batch acknowledged before then must not be lost
    // either; the same batch is refused once the drain began.
    let late_acknowledged = std::cell::Cell::new(false);
    let refused = wait::until(
        "a batch refused during the drain",
        GRACE / 2,
        Duration::from_millis(20),
        || async {
            let (status, ack) = send(&satellite, LATE, 1, 2).await?;
            let acknowledged = ack.is_some_and(|a| a.up_to == 1);
            late_acknowledged.set(late_acknowledged.get() || acknowledged);
            Ok((status != 200).then_some(status))
        },
    )
    .await?;
    assert_eq!(refused, 503, "a batch during the drain is refused");
    let late_acknowledged = late_acknowledged.get();
    let status = tokio::task::block_in_place(|| satellite.exited_within(GRACE * 3));
    let took = stopped_at.elapsed();
    eprintln!("satellite exited {status:?} {took:?} after SIGTERM (grace {GRACE:?})");
    let log = satellite.log_tail(20);
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{log}");
    assert!(
        took >= GRACE - Duration::from_millis(200) && took < GRACE + Duration::from_secs(2),
        "tried the masters for its grace, then exited: {took:?}\n{log}"
    );

    // A replacement on the same spool directory has every entry, applied once.
    satellite.restart()?;
    satellite.wait_ready().await?;
    let view = satellite_state(&satellite).await?;
    for agent in AGENTS {
        assert_eq!(
            view["watermarks"][agent].as_u64(),
            Some(PER_AGENT),
            "{agent}: {view}"
        );
    }
    let late = u64::from(late_acknowledged);
    assert_eq!(
        view["applied"]["stateChanges"].as_u64(),
        Some(PER_AGENT * AGENTS.len() as u64 + late),
        "applied once each: {}",
        view["applied"]
    );
    assert_eq!(
        view["watermarks"][LATE].as_u64().unwrap_or(0),
        late,
        "the late batch stored only if acknowledged"
    );

    // The masters come up: every acknowledged entry reaches their history, once.
    let mut masters = start_masters(dir.path(), masters_port)?;
    let up = Instant::now();
    let mut expected: Vec<(String, u64)> = AGENTS
        .iter()
        .flat_map(|agent| (1..=PER_AGENT).map(move |sequence| ((*agent).to_owned(), sequence)))
        .collect();
    if late_acknowledged {
        expected.push((LATE.to_owned(), 1));
        expected.sort();
    }
    eprintln!("the late batch was acknowledged before the drain began: {late_acknowledged}");
    let seen = wait::until(
        "every acknowledged entry in the masters' history",
        WAIT,
        Duration::from_millis(250),
        || {
            let alive = masters.ensure_running();
            let wanted = expected.len();
            async move {
                alive?;
                let seen = recorded(masters_port).await?;
                Ok((seen.len() >= wanted).then_some(seen))
            }
        },
    )
    .await?;
    eprintln!(
        "{} entries in the masters' history {:?} after they started",
        seen.len(),
        up.elapsed()
    );
    // The satellite asks a master it is behind on whether it is back every second, so the
    // backoff grown during the outage (up to 30 s) does not delay the replay.
    assert!(
        up.elapsed() < Duration::from_secs(10),
        "delivered {:?} after the masters started",
        up.elapsed()
    );
    let keys: Vec<(String, u64)> = seen.keys().cloned().collect();
    assert_eq!(keys, expected, "exactly the acknowledged entries");
    assert!(
        seen.values().all(|count| *count == 1),
        "each once: {seen:?}"
    );
    let (_, state) = http_get(masters_port, "/v1/masters/state").await?;
    let state: Value = serde_json::from_str(&state)?;
    eprintln!(
        "masters: {} entries applied, {} received again, satellites {}",
        state["entries"], state["duplicates"], state["satellites"]
    );
    satellite.ensure_running()?;
    masters.ensure_running()
}
