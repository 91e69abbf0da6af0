//! Metrics Prometheus users can trust, tried with Debian's promtool and Prometheus. A node
//! agent behind a satellite behind the operator (the masters), all real processes, run one
//! check that is OK with perfdata and two that are CRITICAL: `promtool check metrics` finds
//! nothing to say about the `/metrics` of any of them (nor of standalone mode's three), and a
//! real Prometheus scraping them every second returns each CRITICAL check once for
//! `vedette_check_state == 2` (and once for the satellite's own view), the agent's perfdata,
//! and lower-case label values. Without the tools the tests skip loudly, except under `CI`,
//! where they fail (`make deps` installs them).

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use vedette_e2e::fleet::{self, NodeAgent, Satellite, SatelliteMode, http_get};
use vedette_e2e::process::Managed;
use vedette_e2e::prometheus::{self, Job, Prometheus, Tools};
use vedette_e2e::{operator, wait};

const NAMESPACE: &str = "metrics-sys";
const APP: &str = "metrics-app";
const ZONE: &str = "mz";
const NODE: &str = "mz-node-1";
const CRITICAL: [&str; 2] = ["closed-a", "closed-b"];
const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_is_clean_and_prometheus_sees_each_critical_check_once() -> anyhow::Result<()> {
    let Some(tools) = prometheus::tools()? else {
        return Ok(());
    };
    // `listener` (fleet::fixture's rule) connects to this port: OK, with a `time` perfdata.
    let open = TcpListener::bind("127.0.0.1:0")?;
    let flags = ["--insecure-no-auth"];
    let mut scenario = fleet::scenario(
        NAMESPACE,
        APP,
        ZONE,
        &[NODE],
        open.local_addr()?.port(),
        &flags,
    )
    .await?;
    operator::apply_yaml(
        &scenario.client,
        &critical_rules(closed_port()?, closed_port()?),
    )
    .await?;
    let masters = [scenario.operator.url()];
    let mut satellite = Satellite::start(
        &scenario.plane,
        NAMESPACE,
        ZONE,
        "mz-satellite-0",
        &masters,
        SatelliteMode::KubeInsecure,
    )?;
    satellite.wait_ready().await?;
    let mut agent = NodeAgent::start(&scenario.plane, NODE, &[satellite.url()])?;
    every_check_reported(&agent, &satellite).await?;

    let endpoints = [
        ("the operator", scenario.operator.port(), "/metrics"),
        ("the satellite", satellite.port(), "/metrics"),
        ("the node agent", agent.port, "/metrics"),
    ];
    assert_promtool_clean(&tools, &endpoints).await?;

    let address = |port: u16| format!("127.0.0.1:{port}");
    let jobs = [
        Job {
            name: "vedette-zones".into(),
            targets: vec![address(agent.port), address(satellite.port())],
        },
        Job {
            name: "vedette-operator".into(),
            targets: vec![address(scenario.operator.port())],
        },
    ];
    let mut server =
        Prometheus::start(&tools, &scenario.plane.dir().join("prometheus"), &jobs).await?;
    let up = series_of(&server, "up == 1", 3).await;
    let up = up.with_context(|| format!("prometheus log:\n{}", server.log_tail(20)))?;
    assert_eq!(up.len(), 3, "every target scraped: {up:?}");

    for name in ["vedette_check_state", "vedette_satellite_check_state"] {
        let critical = series_of(&server, &format!("{name} == 2"), CRITICAL.len()).await?;
        let mut checks: Vec<&str> = critical
            .iter()
            .map(|s| s["metric"]["check"].as_str().unwrap_or_default())
            .collect();
        checks.sort_unstable();
        assert_eq!(
            checks, CRITICAL,
            "{name} == 2, each CRITICAL check once: {critical:?}"
        );
        for series in &critical {
            assert_eq!(series["metric"]["host"], NODE, "{series}");
            assert_eq!(series["metric"]["namespace"], APP, "{series}");
        }
    }
    let perfdata = r#"vedette_check_perfdata{check="listener",label="time",uom="s"}"#;
    let perfdata = series_of(&server, perfdata, 1).await?;
    assert_eq!(perfdata.len(), 1, "the agent's perfdata: {perfdata:?}");
    assert_eq!(perfdata[0]["metric"]["host"], NODE, "{perfdata:?}");
    let seconds: f64 = perfdata[0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .context("a perfdata value")?;
    assert!((0.0..1.0).contains(&seconds), "connect time {seconds} s");

    // Cumulative counts are counters (`_total`), label values lower snake case, the backlog
    // and the spools are there.
    for (promql, at_least) in [
        (r#"vedette_upstream_sends_total{result="ok"} > 0"#, 1),
        (
            r#"vedette_satellite_upstream_sends_total{result="ok"} > 0"#,
            1,
        ),
        (
            r#"vedette_satellite_received_entries_total{type="state_change"} > 0"#,
            1,
        ),
        ("vedette_spool_dropped_entries_total", 3),
        ("vedette_upstream_backlog_entries", 1),
        ("vedette_satellite_spool_entries", 1),
        ("vedette_satellite_spool_bytes", 1),
        (
            r#"vedette_operator_satellite_batches_total{result="ok"} > 0"#,
            1,
        ),
    ] {
        series_of(&server, promql, at_least).await?;
    }
    let values = server
        .query(r#"count by (__name__, result, type, priority) ({__name__=~"vedette_.+"})"#)
        .await?;
    for series in &values {
        for label in ["result", "type", "priority"] {
            if let Some(value) = series["metric"][label].as_str() {
                assert!(is_lower_snake(value), "{label}={value:?} in {series}");
            }
        }
    }

    server.ensure_running()?;
    agent.ensure_running()?;
    satellite.ensure_running()?;
    scenario.operator.ensure_running()?;
    drop(open);
    scenario.plane.ensure_running()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_endpoints_are_promtool_clean() -> anyhow::Result<()> {
    let Some(tools) = prometheus::tools()? else {
        return Ok(());
    };
    let open = TcpListener::bind("127.0.0.1:0")?;
    let dir = tempfile::tempdir()?;
    let manifests = dir.path().join("manifests");
    std::fs::create_dir_all(&manifests)?;
    std::fs::write(
        manifests.join("checks.yaml"),
        standalone_manifests(open.local_addr()?.port(), closed_port()?, closed_port()?),
    )?;
    let port = vedette_e2e::control_plane::free_port()?;
    let standalone = start_standalone(dir.path(), port)?;
    wait::until(
        "standalone's agent to report both CRITICAL checks",
        WAIT,
        Duration::from_millis(200),
        || async {
            let (_, text) = http_get(port, "/agent/metrics").await?;
            Ok(CRITICAL
                .iter()
                .all(|check| {
                    let label = format!(r#"check="{check}""#);
                    fleet::metric_in(&text, "vedette_check_state", &[&label]) == Some(2.0)
                })
                .then_some(()))
        },
    )
    .await
    .with_context(|| format!("standalone log:\n{}", standalone.log_tail(30)))?;
    let endpoints = [
        ("standalone's satellite", port, "/metrics"),
        ("standalone's agent", port, "/agent/metrics"),
        ("standalone's masters", port, "/masters/metrics"),
    ];
    assert_promtool_clean(&tools, &endpoints).await?;
    drop(open);
    Ok(())
}

/// Runs `promtool check metrics` on each endpoint's `/metrics` as a plain client gets it (no
/// `Accept`: the classic format) and fails naming every complaint.
async fn assert_promtool_clean(
    tools: &Tools,
    endpoints: &[(&str, u16, &str)],
) -> anyhow::Result<()> {
    let mut complaints = Vec::new();
    for (name, port, path) in endpoints {
        let (status, text) = tokio::time::timeout(Duration::from_secs(10), http_get(*port, path))
            .await
            .with_context(|| format!("GET {path} of {name}"))??;
        anyhow::ensure!(status == 200, "GET {path} of {name}: {status} {text}");
        anyhow::ensure!(text.contains("vedette_"), "{name} serves no series: {text}");
        for complaint in tools.check_metrics(&text)? {
            complaints.push(format!("{name} ({path}): {complaint}"));
        }
    }
    anyhow::ensure!(
        complaints.is_empty(),
        "promtool check metrics:\n{}",
        complaints.join("\n")
    );
    Ok(())
}

/// Waits until the agent shows `listener` OK with its perfdata and both CRITICAL checks, and
/// the satellite shows the CRITICAL ones.
async fn every_check_reported(agent: &NodeAgent, satellite: &Satellite) -> anyhow::Result<()> {
    let check = |name: &str| format!(r#"check="{name}""#);
    wait::until(
        "the agent's /metrics to show every check",
        WAIT,
        Duration::from_millis(200),
        || async {
            let ok = agent
                .metric("vedette_check_state", &[&check("listener")])
                .await?;
            let time = agent
                .metric(
                    "vedette_check_perfdata",
                    &[&check("listener"), r#"label="time""#],
                )
                .await?;
            let mut all = ok == Some(0.0) && time.is_some();
            for name in CRITICAL {
                all &= agent.metric("vedette_check_state", &[&check(name)]).await? == Some(2.0);
            }
            Ok(all.then_some(()))
        },
    )
    .await
    .with_context(|| format!("agent log:\n{}", agent.log_tail(30)))?;
    wait::until(
        "the satellite's /metrics to show both CRITICAL checks",
        WAIT,
        Duration::from_millis(200),
        || async {
            let mut all = true;
            for name in CRITICAL {
                let state = satellite
                    .metric("vedette_satellite_check_state", &[&check(name)])
                    .await?;
                all &= state == Some(2.0);
            }
            Ok(all.then_some(()))
        },
    )
    .await
}

/// Polls `promql` until it returns at least `at_least` series.
async fn series_of(
    server: &Prometheus,
    promql: &str,
    at_least: usize,
) -> anyhow::Result<Vec<serde_json::Value>> {
    wait::until(
        &format!("Prometheus to return {at_least} series for {promql}"),
        WAIT,
        Duration::from_millis(500),
        || async {
            let series = server.query(promql).await?;
            Ok((series.len() >= at_least).then_some(series))
        },
    )
    .await
}

fn is_lower_snake(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A loopback port nothing listens on (connections are refused).
fn closed_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A rule set `down` in the application: two TCP checks of the fixture's template on closed
/// ports, CRITICAL at their first run.
fn critical_rules(port_a: u16, port_b: u16) -> String {
    format!(
        r#"
apiVersion: vedette.dev/v1alpha1
kind: RuleSet
metadata: {{name: down, namespace: {APP}}}
spec:
  machines: {{nodeSelector: {{matchLabels: {{role: web}}}}, zones: [{ZONE}]}}
  rules:
    - {{name: {}, template: {{name: tcp}}, parameters: {{port: {port_a}}}}}
    - {{name: {}, template: {{name: tcp}}, parameters: {{port: {port_b}}}}}
"#,
        CRITICAL[0], CRITICAL[1]
    )
}

/// Standalone's manifests: `listener` on `open` and the two CRITICAL checks.
fn standalone_manifests(open: u16, port_a: u16, port_b: u16) -> String {
    format!(
        r#"
apiVersion: vedette.dev/v1alpha1
kind: MonitorZone
metadata: {{name: local}}
spec:
  nodeSelector: {{}}
---
apiVersion: vedette.dev/v1alpha1
kind: CheckTemplate
metadata: {{name: tcp, namespace: {APP}}}
spec:
  parameters:
    - {{name: port, type: int, minimum: 1, maximum: 65535, required: true}}
  check:
    tcp: {{host: 127.0.0.1, port: $port$}}
  intervalSeconds: 2
  maxAttempts: 1
  timeoutSeconds: 1
---
apiVersion: vedette.dev/v1alpha1
kind: RuleSet
metadata: {{name: local, namespace: {APP}}}
spec:
  machines: {{nodeSelector: {{matchLabels: {{kubernetes.io/os: linux}}}}}}
  rules:
    - {{name: listener, template: {{name: tcp}}, parameters: {{port: {open}}}}}
    - {{name: {}, template: {{name: tcp}}, parameters: {{port: {port_a}}}}}
    - {{name: {}, template: {{name: tcp}}, parameters: {{port: {port_b}}}}}
"#,
        CRITICAL[0], CRITICAL[1]
    )
}

fn start_standalone(dir: &Path, port: u16) -> anyhow::Result<Managed> {
    let mut command = Command::new(operator::binary()?);
    command
        .args(["standalone", "-f"])
        .arg(dir.join("manifests"))
        .args(["--host", "metrics-standalone", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--summary-seconds", "60"]);
    Managed::spawn("standalone", command, &dir.join("standalone.log"))
}
