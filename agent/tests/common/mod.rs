//! Test helpers: a small real HTTP upstream (what a satellite does for agents: serves plans
//! with ETags, stores result batches, acknowledges with a watermark), plan builders, and the
//! agent process.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use vedette_crds::CheckSpec;
use vedette_crds::check::{PortOrParameter, TcpProbe};
use vedette_crds::template::CheckState;
use vedette_protocol::plan::{AgentSettings, CheckId, Plan, PlannedCheck};
use vedette_protocol::report::{Ack, Batch, Envelope};
use vedette_protocol::watermark::Watermark;

/// What the upstream received and what it serves.
#[derive(Default)]
pub struct UpstreamState {
    /// Plan bodies by host.
    pub plans: HashMap<String, Vec<u8>>,
    /// Stored entries, in arrival order, without duplicates.
    pub entries: Vec<(String, Envelope)>,
    /// Duplicates received (resends).
    pub duplicates: usize,
    /// Per agent watermark.
    pub watermarks: HashMap<String, Watermark>,
    /// Answer 503 to everything while true.
    pub failing: bool,
    /// Batches received.
    pub batches: usize,
}

/// A running upstream.
#[derive(Clone)]
pub struct Upstream {
    pub address: SocketAddr,
    pub state: Arc<Mutex<UpstreamState>>,
}

impl Upstream {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(UpstreamState::default()));
        let app = Router::new()
            .route("/v1/plan", get(serve_plan))
            .route("/v1/results", post(receive))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { address, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn set_plan(&self, plan: &Plan) {
        self.set_plan_body(&plan.host, serde_json::to_vec(plan).unwrap());
    }

    pub fn set_plan_body(&self, host: &str, body: Vec<u8>) {
        self.state
            .lock()
            .unwrap()
            .plans
            .insert(host.to_owned(), body);
    }

    pub fn set_failing(&self, failing: bool) {
        self.state.lock().unwrap().failing = failing;
    }

    pub fn entries(&self) -> Vec<Envelope> {
        self.state
            .lock()
            .unwrap()
            .entries
            .iter()
            .map(|(_, e)| e.clone())
            .collect()
    }
}

async fn serve_plan(
    State(state): State<Arc<Mutex<UpstreamState>>>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let state = state.lock().unwrap();
    if state.failing {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let host = query.get("host").cloned().unwrap_or_default();
    let Some(body) = state.plans.get(&host) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let etag = format!(
        "\"{}\"",
        body.len() as u64 * 31 + body.iter().map(|b| u64::from(*b)).sum::<u64>()
    );
    if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    ([("etag", etag)], body.clone()).into_response()
}

async fn receive(
    State(state): State<Arc<Mutex<UpstreamState>>>,
    Json(batch): Json<Batch>,
) -> Response {
    let mut state = state.lock().unwrap();
    if state.failing {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    state.batches += 1;
    let mut watermark = state.watermarks.remove(&batch.agent).unwrap_or_default();
    watermark.advance_floor(batch.floor);
    for entry in batch.entries {
        if watermark.record(entry.sequence) {
            state.entries.push((batch.agent.clone(), entry));
        } else {
            state.duplicates += 1;
        }
    }
    let up_to = watermark.contiguous();
    state.watermarks.insert(batch.agent, watermark);
    Json(Ack { up_to }).into_response()
}

/// A plan with one TCP check against `port` on 127.0.0.1.
pub fn tcp_plan(host: &str, port: u16, interval_seconds: u32) -> Plan {
    Plan {
        host: host.to_owned(),
        zone: "test".to_owned(),
        settings: AgentSettings {
            keepalive_interval_seconds: 1,
            ..AgentSettings::default()
        },
        checks: vec![tcp_check("listener", port, interval_seconds)],
        elements: Vec::new(),
        secrets: Default::default(),
    }
}

pub fn tcp_check(rule: &str, port: u16, interval_seconds: u32) -> PlannedCheck {
    PlannedCheck {
        id: CheckId {
            namespace: "test".into(),
            rule_set: "net".into(),
            rule: rule.into(),
        },
        template: "test/tcp".into(),
        labels: BTreeMap::new(),
        check: CheckSpec {
            tcp: Some(TcpProbe {
                host: "127.0.0.1".into(),
                port: PortOrParameter::Int(i64::from(port)),
                send: None,
                expect: None,
                close: Default::default(),
            }),
            ..CheckSpec::default()
        },
        warning: None,
        critical: None,
        condition: None,
        condition_state: CheckState::Critical,
        interval_seconds,
        every_cycles: None,
        retry_interval_seconds: 1,
        max_attempts: 1,
        timeout_seconds: 1,
        timeout_state: CheckState::Critical,
        spool_every_result: false,
    }
}

/// A port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The agent as a child process, killed on drop.
pub struct Agent {
    pub child: Child,
    pub metrics: SocketAddr,
}

impl Agent {
    pub fn start(host: &str, upstreams: &[String], dir: &Path) -> Self {
        Self::start_with(host, upstreams, dir, &[])
    }

    /// Starts it with `extra` flags for `node` added.
    pub fn start_with(host: &str, upstreams: &[String], dir: &Path, extra: &[&str]) -> Self {
        let metrics_port = closed_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_vedette-agent"));
        command
            .args([
                "node",
                "--host",
                host,
                "--plan-poll-seconds",
                "1",
                "--keepalive-seconds",
                "1",
            ])
            .arg("--spool-dir")
            .arg(dir.join("spool"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .args(["--listen", &format!("127.0.0.1:{metrics_port}")])
            .args([
                "--log-level",
                &std::env::var("VEDETTE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for upstream in upstreams {
            command.args(["--upstream", upstream]);
        }
        command.args(extra);
        let child = command.spawn().expect("start vedette-agent");
        Self {
            child,
            metrics: ([127, 0, 0, 1], metrics_port).into(),
        }
    }

    pub async fn metrics_text(&self) -> String {
        let url = format!("http://{}/metrics", self.metrics);
        match reqwest::get(url).await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `probe` until it returns `Some`, failing after `timeout` with `what`.
pub async fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
