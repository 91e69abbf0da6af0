//! Authentication with real TokenReview against the test apiserver, at both tiers:
//! - the satellite refuses a batch with a garbage token (401) and it changes nothing, and
//!   accepts the same batch with a ServiceAccount token of audience `vedette`;
//! - the operator (masters, without `--insecure-no-auth`) refuses a garbage token (401) and
//!   accepts the satellite, which presents a token of a ServiceAccount of its namespace: the
//!   accepted batch reaches the masters' state.
//!
//! No process exits.

use std::time::Duration;

use serde_json::Value;
use vedette_e2e::fleet::{self, Satellite, SatelliteMode, http_get, http_post};
use vedette_e2e::{ControlPlane, wait};
use vedette_protocol::report::{Batch, Envelope, Keepalive, PlanState, Report, StateCounts};

const NAMESPACE: &str = "res-auth";
const APP: &str = "res-auth-app";
const ZONE: &str = "ra";
const NODE: &str = "ra-node-1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_and_change_nothing() -> anyhow::Result<()> {
    let mut scenario = fleet::scenario(NAMESPACE, APP, ZONE, &[NODE], 9, &[]).await?;
    let agent_token = token(&scenario.plane, "vedette-agent")?;
    let satellite_token = token(&scenario.plane, "vedette-satellite")?;
    let token_file = scenario.plane.dir().join("satellite-token");
    std::fs::write(&token_file, &satellite_token)?;
    let master_port = port_of(&scenario.operator.url());

    // The masters refuse a garbage token.
    let (status, _) = http_post(
        master_port,
        "/v1/satellite",
        Some("garbage"),
        r#"{"agent":"intruder","floor":1,"entries":[]}"#,
    )
    .await?;
    assert_eq!(status, 401);

    let mut satellite = Satellite::start(
        &scenario.plane,
        NAMESPACE,
        ZONE,
        "ra-satellite-0",
        &[scenario.operator.url()],
        SatelliteMode::KubeTokenReview(token_file),
    )?;
    satellite.wait_ready().await?;
    let satellite_port = port_of(&satellite.url());
    let body = serde_json::to_string(&keepalive_batch())?;

    let before = state(satellite_port).await?;
    let (status, answer) = http_post(satellite_port, "/v1/results", Some("garbage"), &body).await?;
    assert_eq!(status, 401, "{answer}");
    let (status, _) = http_post(satellite_port, "/v1/results", None, &body).await?;
    assert_eq!(status, 401, "no token at all");
    let after = state(satellite_port).await?;
    assert_eq!(
        before["applied"], after["applied"],
        "a refused batch changed the state"
    );
    assert_eq!(after["watermarks"].get(NODE), None);
    let refused = satellite
        .metric(
            "vedette_satellite_refused_batches_total",
            &["unauthenticated"],
        )
        .await?;
    assert_eq!(refused, Some(2.0));

    let (status, answer) =
        http_post(satellite_port, "/v1/results", Some(&agent_token), &body).await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(serde_json::from_str::<Value>(&answer)?["upTo"], 1);
    let after = state(satellite_port).await?;
    assert_eq!(after["applied"]["keepalives"], 1);

    // The satellite forwards it to the masters with its own token.
    let master = scenario.operator.url();
    wait::until(
        "the keepalive at the masters",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            let (_, body) = http_get(port_of(&master), "/v1/masters/state").await?;
            let view: Value = serde_json::from_str(&body)?;
            let agents = view["agents"].as_array().cloned().unwrap_or_default();
            Ok(agents.iter().any(|a| a[0] == NODE).then_some(()))
        },
    )
    .await?;
    let ok_batches = scenario
        .operator
        .metric("vedette_operator_satellite_batches_total{result=\"ok\"}")
        .await?;
    assert!(ok_batches >= 1.0);
    let refused = scenario
        .operator
        .metric("vedette_operator_satellite_batches_total{result=\"unauthenticated\"}")
        .await?;
    assert_eq!(refused, 1.0);

    scenario.operator.ensure_running()?;
    satellite.ensure_running()?;
    scenario.plane.ensure_running()
}

/// A token of ServiceAccount `name` (created in the zone namespace) for audience `vedette`.
fn token(plane: &ControlPlane, name: &str) -> anyhow::Result<String> {
    let created = plane
        .kubectl()
        .args(["-n", NAMESPACE, "create", "serviceaccount", name])
        .output()?;
    anyhow::ensure!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let output = plane
        .kubectl()
        .args([
            "-n",
            NAMESPACE,
            "create",
            "token",
            name,
            "--audience",
            "vedette",
        ])
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_default()
}

async fn state(port: u16) -> anyhow::Result<Value> {
    let (_, body) = http_get(port, "/v1/state").await?;
    Ok(serde_json::from_str(&body)?)
}

fn keepalive_batch() -> Batch {
    Batch {
        agent: NODE.to_owned(),
        floor: 1,
        entries: vec![Envelope {
            sequence: 1,
            report: Report::Keepalive(Keepalive {
                host: NODE.to_owned(),
                zone: ZONE.to_owned(),
                at_ms: vedette_protocol::clock::unix_ms(),
                interval_seconds: 2,
                plan: PlanState::default(),
                counts: StateCounts::default(),
                spool_depth: 0,
                spool_dropped: 0,
                version: "e2e".to_owned(),
            }),
        }],
    }
}
