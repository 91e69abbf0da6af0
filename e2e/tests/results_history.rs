//! The masters remember, on the real control plane:
//! - a check flipped OK → CRITICAL → OK → CRITICAL → OK shows every change in both masters'
//!   `GET /v1/history`, newest first, with the agent's connection;
//! - both masters SIGKILLed and started again (each with its own data directory, like a
//!   StatefulSet pod with its volume) serve the check's last known state, marked so, and the
//!   RuleSet status counts it instead of `pending`; the history is still there;
//! - with authentication on, a history query for a namespace is refused without a token (401)
//!   and for a token that may not read rule sets there (403), an admin sees the records, and a
//!   ServiceAccount allowed `get rulesets` in the application's namespace sees that namespace's
//!   records and no agent records.

use std::net::TcpListener;
use std::time::Duration;

use serde_json::Value;
use vedette_e2e::control_plane::ADMIN_TOKEN;
use vedette_e2e::fleet::{self, NodeAgent, Satellite, SatelliteMode};
use vedette_e2e::http::http_get_with_token;
use vedette_e2e::operator::Operator;
use vedette_e2e::{ControlPlane, wait};

const NAMESPACE: &str = "res-history";
const APP: &str = "res-history-app";
const ZONE: &str = "rh";
const NODE: &str = "rh-node-1";
const WAIT: Duration = Duration::from_secs(30);
const EVERY: Duration = Duration::from_millis(200);

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_default()
}

/// The check on NODE in `master`'s `/v1/masters/state`: its state and when it was last known
/// if it was read from the history.
async fn check(master: &Operator) -> anyhow::Result<Option<(String, Option<u64>)>> {
    let (_, body) = master.get("/v1/masters/state").await?;
    let view: Value = serde_json::from_str(&body)?;
    let name = format!("{APP}/web/listener");
    Ok(view["checks"].as_array().and_then(|checks| {
        checks
            .iter()
            .find(|c| c[0] == NODE && c[1] == name.as_str())
            .map(|c| (c[2].as_str().unwrap_or_default().to_owned(), c[5].as_u64()))
    }))
}

async fn all_show(masters: &[&Operator], state: &str) -> anyhow::Result<()> {
    for master in masters {
        let what = format!("{} to show {state}", master.identity());
        wait::until(&what, WAIT, EVERY, || async {
            Ok((check(master).await?.is_some_and(|(s, _)| s == state)).then_some(()))
        })
        .await?;
    }
    Ok(())
}

/// `GET path` on `master` with `token`: status and JSON body.
async fn history(
    master: &Operator,
    path: &str,
    token: Option<&str>,
) -> anyhow::Result<(u16, Value)> {
    let (status, body) = http_get_with_token(port_of(&master.url()), path, token).await?;
    Ok((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
}

fn states(page: &Value) -> Vec<String> {
    page["records"]
        .as_array()
        .map(|records| {
            records
                .iter()
                .map(|r| r["state"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A token (for the API server's audience) of ServiceAccount `name` in the application's
/// namespace, created first.
fn token(plane: &ControlPlane, name: &str) -> anyhow::Result<String> {
    let run = |args: &[&str]| -> anyhow::Result<String> {
        let output = plane.kubectl().args(args).output()?;
        anyhow::ensure!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8(output.stdout)?.trim().to_owned())
    };
    run(&["-n", APP, "create", "serviceaccount", name])?;
    run(&["-n", APP, "create", "token", name])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_masters_remember_changes_and_last_states_across_restarts() -> anyhow::Result<()> {
    let mut listener = Some(TcpListener::bind("127.0.0.1:0")?);
    let port = listener.as_ref().unwrap().local_addr()?.port();
    let flags = ["--insecure-no-auth"];
    let mut scenario = fleet::scenario(NAMESPACE, APP, ZONE, &[NODE], port, &flags).await?;
    let client = scenario.client.clone();
    let kubeconfig = scenario.plane.kubeconfig().to_path_buf();
    let mut second =
        Operator::start_with(&scenario.plane, &kubeconfig, NAMESPACE, "master-1", &flags)?;
    second.wait_ready().await?;
    let masters = [scenario.operator.url(), second.url()];
    let mut satellite = Satellite::start(
        &scenario.plane,
        NAMESPACE,
        ZONE,
        "rh-satellite-0",
        &masters,
        SatelliteMode::KubeInsecure,
    )?;
    satellite.wait_ready().await?;
    let mut agent = NodeAgent::start(&scenario.plane, NODE, &[satellite.url()])?;

    // OK → CRITICAL → OK → CRITICAL → OK.
    all_show(&[&scenario.operator, &second], "OK").await?;
    for state in ["CRITICAL", "OK", "CRITICAL", "OK"] {
        listener = match listener {
            Some(open) => {
                drop(open);
                None
            }
            None => Some(TcpListener::bind(("127.0.0.1", port))?),
        };
        all_show(&[&scenario.operator, &second], state).await?;
    }
    let path = format!("/v1/history?namespace={APP}&kind=state_change");
    for master in [&scenario.operator, &second] {
        let (status, page) = history(master, &path, None).await?;
        assert_eq!(status, 200, "{page}");
        assert_eq!(
            states(&page),
            ["OK", "CRITICAL", "OK", "CRITICAL", "OK"],
            "newest first: {page}"
        );
        let times: Vec<u64> = page["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["atMs"].as_u64().unwrap_or_default())
            .collect();
        assert!(
            times.windows(2).all(|w| w[0] >= w[1]),
            "newest first: {times:?}"
        );
        let (_, agents) = history(master, "/v1/history?kind=agent_fresh", None).await?;
        assert!(
            agents["records"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r["host"] == NODE)),
            "the agent's connection is recorded: {agents}"
        );
    }

    // Both masters die and come back with their volumes.
    scenario.operator.kill();
    second.kill();
    let mut first =
        Operator::start_with(&scenario.plane, &kubeconfig, NAMESPACE, "master-0", &flags)?;
    let mut second =
        Operator::start_with(&scenario.plane, &kubeconfig, NAMESPACE, "master-1", &flags)?;
    first.wait_ready().await?;
    second.wait_ready().await?;
    for master in [&first, &second] {
        let (state, last_known) = check(master).await?.expect("the check is known at once");
        assert_eq!(state, "OK");
        assert!(last_known.is_some(), "marked as the last known state");
        let (_, page) = history(master, &path, None).await?;
        assert_eq!(states(&page).len(), 5, "the history survived: {page}");
    }
    fleet::rule_set_status(&client, APP, "web", WAIT, |s| {
        (s.checks_by_state.ok == 1 && s.checks_by_state.pending == 0).then_some(())
    })
    .await?;

    // Authentication on: master-0 again, with its history, without --insecure-no-auth.
    first.kill();
    let mut first = Operator::start_with(&scenario.plane, &kubeconfig, NAMESPACE, "master-0", &[])?;
    first.wait_ready().await?;
    let nobody = token(&scenario.plane, "history-nobody")?;
    let (status, _) = history(&first, &path, None).await?;
    assert_eq!(status, 401, "no token");
    let (status, refused) = history(&first, &path, Some(&nobody)).await?;
    assert_eq!(status, 403, "{refused}");
    let message = refused["error"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!(
            "may not get rulesets.vedette.dev in namespace {APP}"
        )),
        "{message}"
    );
    let (status, all) = history(&first, "/v1/history", Some(&nobody)).await?;
    assert_eq!(
        (status, all["records"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{all}"
    );
    let (status, page) = history(&first, &path, Some(ADMIN_TOKEN)).await?;
    assert_eq!((status, states(&page).len()), (200, 5), "{page}");

    let run = |args: &[&str]| -> anyhow::Result<()> {
        let output = scenario.plane.kubectl().args(args).output()?;
        anyhow::ensure!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(())
    };
    run(&[
        "-n",
        APP,
        "create",
        "role",
        "history-reader",
        "--verb=get",
        "--resource=rulesets.vedette.dev",
    ])?;
    run(&[
        "-n",
        APP,
        "create",
        "rolebinding",
        "history-reader",
        "--role=history-reader",
        &format!("--serviceaccount={APP}:history-reader"),
    ])?;
    let reader = token(&scenario.plane, "history-reader")?;
    let (status, mine) = history(&first, "/v1/history", Some(&reader)).await?;
    assert_eq!(status, 200, "{mine}");
    let records = mine["records"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        records.len(),
        5,
        "the application's changes only, no agent records: {mine}"
    );
    assert!(records.iter().all(|r| r["namespace"] == APP));

    drop(listener);
    first.ensure_running()?;
    second.ensure_running()?;
    satellite.ensure_running()?;
    agent.ensure_running()?;
    scenario.plane.ensure_running()
}
