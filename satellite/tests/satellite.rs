//! The satellite as a real process (file bundle, `--insecure-no-auth`) over real HTTP:
//! plans with ETag/304/404, refused batches, stale agents, and a SIGKILLed satellite that
//! loses nothing it acknowledged and counts nothing twice while a real node agent sends.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Agent, closed_port, tcp_check};
use serde_json::{Value, json};
use vedette_protocol::plan::{AgentSettings, ZoneBundle};

const WAIT: Duration = Duration::from_secs(30);

struct Satellite {
    child: Child,
    port: u16,
}

impl Satellite {
    fn start(dir: &Path, port: u16) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_vedette-satellite"))
            .args([
                "--zone",
                "test",
                "--insecure-no-auth",
                "--snapshot-seconds",
                "1",
            ])
            .arg("--bundle-file")
            .arg(dir.join("bundle.json"))
            .arg("--spool-dir")
            .arg(dir.join("satellite"))
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--max-body-bytes",
                "65536",
            ])
            .args([
                "--log-level",
                &std::env::var("VEDETTE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the satellite");
        Self { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Satellite {
    fn drop(&mut self) {
        self.kill();
    }
}

fn write_bundle(dir: &Path, port: u16) {
    let bundle = ZoneBundle {
        zone: "test".into(),
        settings: AgentSettings {
            keepalive_interval_seconds: 1,
            ..AgentSettings::default()
        },
        checks: vec![tcp_check("listener", port, 2)],
        machines: [("node-a".to_owned(), vec![0])].into(),
        remote: Vec::new(),
        elements: Vec::new(),
        secrets: Default::default(),
    };
    std::fs::write(
        dir.join("bundle.json"),
        serde_json::to_vec(&bundle).unwrap(),
    )
    .unwrap();
}

/// Polls `/v1/state` until `probe` says yes, failing after a deadline with the last view.
async fn poll_state<T>(
    satellite: &Satellite,
    what: &str,
    probe: impl Fn(&Value) -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + WAIT;
    let mut last = Value::Null;
    while std::time::Instant::now() < deadline {
        if let Some(view) = state(satellite).await {
            if let Some(found) = probe(&view) {
                return found;
            }
            last = view;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}; last state: {last}");
}

async fn state(satellite: &Satellite) -> Option<Value> {
    let response = reqwest::get(format!("{}/v1/state", satellite.url()))
        .await
        .ok()?;
    response.json().await.ok()
}

async fn ready(satellite: &Satellite) {
    let url = format!("{}/readyz", satellite.url());
    for _ in 0..400 {
        if reqwest::get(&url).await.is_ok_and(|r| r.status() == 200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("satellite never became ready");
}

fn keepalive(sequence: u64, interval_seconds: u64) -> Value {
    json!({"sequence": sequence, "report": {"type": "keepalive", "host": "node-x", "zone": "test",
        "atMs": 1, "intervalSeconds": interval_seconds,
        "plan": {"hash": "h", "held": true, "reason": "upstream unreachable", "ageSeconds": 0},
        "counts": {"ok": 0, "warning": 0, "critical": 0, "unknown": 0, "pending": 0},
        "spoolDepth": 0, "spoolDropped": 0, "version": "t"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_batches_and_staleness_over_http() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path(), closed_port());
    let satellite = Satellite::start(dir.path(), closed_port());
    ready(&satellite).await;
    let http = reqwest::Client::new();
    let plan_url = format!("{}/v1/plan", satellite.url());

    let response = http
        .get(&plan_url)
        .query(&[("host", "node-a")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let plan: vedette_protocol::plan::Plan = response.json().await.unwrap();
    assert_eq!(etag, format!("\"{}\"", plan.hash()));
    let again = http
        .get(&plan_url)
        .query(&[("host", "node-a")])
        .header("if-none-match", &etag);
    assert_eq!(again.send().await.unwrap().status(), 304);
    let unknown = http
        .get(&plan_url)
        .query(&[("host", "nobody")])
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert!(
        unknown
            .text()
            .await
            .unwrap()
            .contains("host nobody is not a machine of zone test")
    );

    let results = format!("{}/v1/results", satellite.url());
    let malformed = http
        .post(&results)
        .body("{\"agent\": 1}")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    assert!(
        malformed
            .text()
            .await
            .unwrap()
            .contains("batch does not parse"),
        "names the problem"
    );
    let huge = json!({"agent": "node-x", "floor": 1, "entries": [], "pad": "x".repeat(70_000)});
    assert_eq!(
        http.post(&results)
            .json(&huge)
            .send()
            .await
            .unwrap()
            .status(),
        413
    );

    // An entry relayed too often by child zones is refused, naming it (found by the fuzz
    // target `relayed`: relayed once more it could no longer parse at the masters).
    let mut entry = json!({"kind": "own", "report": keepalive(1, 10)["report"]});
    for level in 0..vedette_protocol::forward::MAX_RELAYS {
        entry = json!({"kind": "relayed", "satellite": format!("s{level}"), "sequence": 1,
            "floor": 0, "entry": entry});
    }
    let deep = http
        .post(format!("{}/v1/satellite", satellite.url()))
        .json(
            &json!({"agent": "child-0", "floor": 0, "entries": [{"sequence": 4, "report": entry}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deep.status(), 400);
    let text = deep.text().await.unwrap();
    assert!(text.contains("entry 4: relayed 16 times already"), "{text}");

    // A keepalive with a 1 s interval: fresh, then stale after three missed ones.
    let batch = json!({"agent": "node-x", "floor": 1, "entries": [keepalive(1, 1)]});
    let ack: Value = http
        .post(&results)
        .json(&batch)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ack["upTo"], 1);
    let resent: Value = http
        .post(&results)
        .json(&batch)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resent["upTo"], 1);
    let view = state(&satellite).await.unwrap();
    let agent = |view: &Value| {
        view["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["host"] == "node-x")
            .cloned()
            .unwrap()
    };
    assert_eq!(agent(&view)["stale"], false);
    assert_eq!(agent(&view)["planHeld"], true);
    assert_eq!(
        view["applied"]["keepalives"], 1,
        "the resend was not applied again"
    );
    assert_eq!(view["duplicates"], 1);
    let metrics_url = format!("{}/metrics", satellite.url());
    poll_state(&satellite, "node-x stale", |view| {
        (agent(view)["stale"] == true).then_some(())
    })
    .await;
    let text = http
        .get(&metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"vedette_satellite_agent_stale{host="node-x"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"vedette_satellite_agent_plan_held{host="node-x"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"vedette_satellite_refused_batches_total{reason="too_large"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"vedette_satellite_check_state{zone="test",host="node-a",namespace="test",ruleset="net",check="listener"} -1"#),
        "pending check: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_satellite_loses_nothing_acknowledged_and_counts_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let check_port = listener.local_addr().unwrap().port();
    write_bundle(dir.path(), check_port);
    let port = closed_port();
    let mut satellite = Satellite::start(dir.path(), port);
    ready(&satellite).await;
    let agent_dir = dir.path().join("agent");
    let mut agent = Agent::start("node-a", &[satellite.url()], &agent_dir);
    let mut listener = Some(listener);
    let mut before = 0;
    for round in 0..3 {
        // Let entries flow, flip the check's state, then SIGKILL the satellite.
        let seen = poll_state(&satellite, "entries acknowledged", |view| {
            let up_to = view["watermarks"]["node-a"].as_u64()?;
            (up_to >= before + 3).then_some(up_to)
        })
        .await;
        before = seen;
        listener = match listener.take() {
            Some(open) => {
                drop(open);
                None
            }
            None => Some(std::net::TcpListener::bind(("127.0.0.1", check_port)).unwrap()),
        };
        tokio::time::sleep(Duration::from_millis(300 + 200 * round)).await;
        satellite.kill();
        satellite = Satellite::start(dir.path(), port);
        ready(&satellite).await;
        let view = state(&satellite).await.unwrap();
        let up_to = view["watermarks"]["node-a"].as_u64().unwrap_or(0);
        assert!(
            up_to >= seen,
            "acknowledged {seen} before the kill, {up_to} after the restart"
        );
    }
    // Let the agent catch up, stop it, and compare.
    tokio::time::sleep(Duration::from_secs(2)).await;
    agent.kill();
    let view = state(&satellite).await.unwrap();
    let applied = &view["applied"];
    let total = applied["stateChanges"].as_u64().unwrap()
        + applied["keepalives"].as_u64().unwrap()
        + applied["results"].as_u64().unwrap();
    let up_to = view["watermarks"]["node-a"].as_u64().unwrap();
    assert!(up_to > before, "{view}");
    let above = view["storedAbove"]["node-a"].as_u64().unwrap();
    assert_eq!(
        total,
        up_to + above,
        "every stored sequence applied exactly once: {view}"
    );
    assert!(applied["stateChanges"].as_u64().unwrap() >= 3, "{view}");
    let text = reqwest::get(format!("{}/metrics", satellite.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"host="node-a",namespace="test",ruleset="net",check="listener"}"#),
        "{text}"
    );
}
