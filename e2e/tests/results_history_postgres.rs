//! The shared history on the real control plane: two masters with `--history-postgres-url`
//! write one PostgreSQL database (Debian's server, started by the test). A check's first
//! report is one record although both masters wrote it. The database server stops at once
//! (like a crash) while the check turns CRITICAL: the masters still merge it (their live state
//! shows it) but acknowledge nothing, so the satellite keeps the entries spooled for both; the
//! server starts again, the masters reconnect by themselves, the satellite's backlog drains,
//! and the history holds the change once.

use std::net::TcpListener;
use std::time::Duration;

use serde_json::Value;
use vedette_e2e::fleet::{self, NodeAgent, Satellite, SatelliteMode};
use vedette_e2e::http::http_get;
use vedette_e2e::operator::Operator;
use vedette_e2e::postgres::PostgresServer;
use vedette_e2e::wait;

const NAMESPACE: &str = "res-pg";
const APP: &str = "res-pg-app";
const ZONE: &str = "rp";
const NODE: &str = "rp-node-1";
const WAIT: Duration = Duration::from_secs(60);
const EVERY: Duration = Duration::from_millis(250);

async fn state_of(master: &Operator) -> anyhow::Result<Option<String>> {
    let (_, body) = master.get("/v1/masters/state").await?;
    let view: Value = serde_json::from_str(&body)?;
    let name = format!("{APP}/web/listener");
    Ok(view["checks"].as_array().and_then(|checks| {
        checks
            .iter()
            .find(|c| c[0] == NODE && c[1] == name.as_str())
            .and_then(|c| c[2].as_str().map(str::to_owned))
    }))
}

async fn states(master: &Operator) -> anyhow::Result<Vec<String>> {
    let port: u16 = master
        .url()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .parse()?;
    let path = format!("/v1/history?namespace={APP}&kind=state_change");
    let (status, body) = http_get(port, &path).await?;
    anyhow::ensure!(status == 200, "history: {status} {body}");
    let page: Value = serde_json::from_str(&body)?;
    Ok(page["records"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|r| r["state"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default())
}

async fn backlog(satellite: &Satellite, master: &Operator) -> anyhow::Result<f64> {
    let upstream = format!(r#"upstream="{}""#, master.url());
    Ok(satellite
        .metric("vedette_satellite_upstream_backlog_entries", &[&upstream])
        .await?
        .unwrap_or(0.0))
}

/// Waits until the satellite holds nothing for each of `masters`.
async fn drained(satellite: &Satellite, masters: [&Operator; 2]) -> anyhow::Result<()> {
    for master in masters {
        let what = format!("the satellite's backlog for {} drained", master.identity());
        wait::until(&what, WAIT, EVERY, || async {
            Ok((backlog(satellite, master).await? == 0.0).then_some(()))
        })
        .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_masters_share_one_database_and_wait_out_its_restart() -> anyhow::Result<()> {
    let database = PostgresServer::start();
    let url = database.database("vedette");
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let flags = ["--insecure-no-auth", "--history-postgres-url", url.as_str()];
    let mut scenario = fleet::scenario(NAMESPACE, APP, ZONE, &[NODE], port, &flags).await?;
    let kubeconfig = scenario.plane.kubeconfig().to_path_buf();
    let mut second =
        Operator::start_with(&scenario.plane, &kubeconfig, NAMESPACE, "master-1", &flags)?;
    second.wait_ready().await?;
    let masters = [scenario.operator.url(), second.url()];
    let mut satellite = Satellite::start(
        &scenario.plane,
        NAMESPACE,
        ZONE,
        "rp-satellite-0",
        &masters,
        SatelliteMode::KubeInsecure,
    )?;
    satellite.wait_ready().await?;
    let mut agent = NodeAgent::start(&scenario.plane, NODE, &[satellite.url()])?;

    let first = &scenario.operator;
    for master in [first, &second] {
        wait::until("the check OK at both masters", WAIT, EVERY, || async {
            Ok((state_of(master).await?.as_deref() == Some("OK")).then_some(()))
        })
        .await?;
    }
    drained(&satellite, [first, &second]).await?;
    assert_eq!(
        states(first).await?,
        ["OK"],
        "one record although both masters wrote it"
    );
    assert_eq!(states(&second).await?, ["OK"]);

    // The database goes away; the check changes meanwhile.
    database.stop_immediately();
    drop(listener);
    for master in [first, &second] {
        wait::until(
            "the change merged while the database is down",
            WAIT,
            EVERY,
            || async { Ok((state_of(master).await?.as_deref() == Some("CRITICAL")).then_some(())) },
        )
        .await?;
    }
    for master in [first, &second] {
        wait::until(
            "the satellite holds what the masters did not acknowledge",
            WAIT,
            EVERY,
            || async { Ok((backlog(&satellite, master).await? >= 1.0).then_some(())) },
        )
        .await?;
    }

    database.start_again();
    drained(&satellite, [first, &second]).await?;
    assert_eq!(
        states(first).await?,
        ["CRITICAL", "OK"],
        "the change once, newest first"
    );

    scenario.operator.ensure_running()?;
    second.ensure_running()?;
    satellite.ensure_running()?;
    agent.ensure_running()?;
    scenario.plane.ensure_running()
}
