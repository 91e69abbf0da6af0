//! Notification delivery, side by side with Alertmanager (Debian's `prometheus-alertmanager`)
//! on this machine. Hard state changes go into the notifier's event stream at `RATE` per second
//! (one alert per host, so one group each), with the embedded history and its outbox on; HTTP
//! receivers on loopback note when each alert arrives.
//!
//! 1. **Vedette → webhook**: arrival − change − `groupWaitSeconds` (1 s), p50 / p99, and the
//!    outbox's pending entries sampled every second (no growth: the rate is sustained).
//! 2. **Vedette → Alertmanager API**: arrival of the `POST /api/v2/alerts` − change (no group
//!    wait: Alertmanager groups).
//! 3. **Alertmanager → webhook** (the peer): alerts posted to a real Alertmanager at the same
//!    rate, `group_wait: 1s`, `group_by: [host]`; arrival − post − 1 s.
//! 4. **A receiver down**: a second webhook receiver answers 503 for `DOWN_SECONDS` while the
//!    changes go on; the first receiver's p50 / p99 meanwhile, and how long after the second
//!    comes back every one of its notifications has arrived.
//!
//! `cargo bench -p vedette-operator --bench notify_delivery` (`RATE`, `SECONDS`, `DOWN_SECONDS`
//! override 1000, 20 and 60). Prints numbers; asserts nothing.

use std::collections::HashMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use vedette_crds::CheckState;
use vedette_crds::notification::{Receiver, WebhookReceiver};
use vedette_operator::compile::notify::{NamespaceRouting, RouteModel, Routing};
use vedette_operator::masters::History;
use vedette_operator::masters::stream::{BusBuilder, CheckEvent, MasterEvent};
use vedette_protocol::clock::unix_ms;
use vedette_protocol::plan::CheckId;

const NAMESPACE: &str = "shop";
const GROUP_WAIT: Duration = Duration::from_secs(1);

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// When each host's alert arrived, per sink path.
#[derive(Default)]
struct Arrivals {
    by_path: HashMap<String, HashMap<String, Instant>>,
    /// Until when `/hook/down` answers 503.
    down_until: Option<Instant>,
}

type Shared = Arc<Mutex<Arrivals>>;

fn hosts_of(body: &serde_json::Value) -> Vec<String> {
    let alerts = body
        .get("alerts")
        .and_then(|a| a.as_array())
        .or_else(|| body.as_array());
    alerts
        .into_iter()
        .flatten()
        .filter_map(|a| a["labels"]["host"].as_str().map(str::to_owned))
        .collect()
}

async fn receive(path: String, state: Shared, body: axum::body::Bytes) -> StatusCode {
    let now = Instant::now();
    let mut arrivals = state.lock().unwrap();
    if path == "hook/down" && arrivals.down_until.is_some_and(|until| now < until) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let seen = arrivals.by_path.entry(path).or_default();
    for host in hosts_of(&body) {
        seen.entry(host).or_insert(now);
    }
    StatusCode::OK
}

async fn sink(state: Shared) -> u16 {
    let app = Router::new()
        .route(
            "/hook/{name}",
            post(
                |Path(name): Path<String>, State(state): State<Shared>, body| async move {
                    receive(format!("hook/{name}"), state, body).await
                },
            ),
        )
        .route(
            "/api/v2/alerts",
            post(|State(state): State<Shared>, body| async move {
                receive("alertmanager-api".into(), state, body).await
            }),
        )
        .route(
            "/from-alertmanager",
            post(|State(state): State<Shared>, body| async move {
                receive("from-alertmanager".into(), state, body).await
            }),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

fn webhook(name: &str, port: u16) -> Receiver {
    Receiver {
        name: name.into(),
        alertmanager: None,
        webhook: Some(WebhookReceiver {
            url: format!("http://127.0.0.1:{port}/hook/{name}"),
            hmac_secret: None,
            max_attempts: Some(1_000),
        }),
        email: None,
    }
}

fn route(receiver: &str) -> RouteModel {
    RouteModel {
        receiver: receiver.into(),
        matchers: Vec::new(),
        group_by: vec!["host".into()],
        group_wait_seconds: GROUP_WAIT.as_secs() as u32,
        group_interval_seconds: 1,
        repeat_interval_seconds: 14_400,
        continue_: true,
    }
}

fn routing(port: u16, receivers: &[&str], alertmanager: bool) -> Routing {
    let mut namespace = NamespaceRouting::default();
    for name in receivers {
        namespace
            .receivers
            .insert((*name).into(), webhook(name, port));
        namespace.routes.push(route(name));
    }
    if alertmanager {
        namespace.receivers.insert(
            "am".into(),
            Receiver {
                name: "am".into(),
                alertmanager: Some(vedette_crds::notification::AlertmanagerReceiver::at(
                    &format!("http://127.0.0.1:{port}"),
                )),
                webhook: None,
                email: None,
            },
        );
        namespace.routes.push(route("am"));
    }
    let mut routing = Routing::default();
    routing.namespaces.insert(NAMESPACE.into(), namespace);
    routing
}

fn change(host: &str) -> MasterEvent {
    MasterEvent::Check(CheckEvent {
        host: host.into(),
        check: CheckId {
            namespace: NAMESPACE.into(),
            rule_set: "web".into(),
            rule: "port".into(),
        },
        zone: Some("local".into()),
        state: CheckState::Critical,
        previous: Some(CheckState::Ok),
        hard: true,
        last_hard: CheckState::Ok,
        output: "TCP CRITICAL - Connection refused".into(),
        at_ms: unix_ms(),
    })
}

/// p50 and p99 of `values`, ms.
fn percentiles(mut values: Vec<f64>) -> (f64, f64, usize) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN, 0);
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() as f64 - 1.0) * q).round() as usize];
    (at(0.50), at(0.99), values.len())
}

/// Arrival − sent − `minus` for every host of `sent` that arrived on `path`, ms.
fn latencies(
    arrivals: &Shared,
    path: &str,
    sent: &HashMap<String, Instant>,
    minus: Duration,
) -> Vec<f64> {
    let arrivals = arrivals.lock().unwrap();
    let Some(seen) = arrivals.by_path.get(path) else {
        return Vec::new();
    };
    sent.iter()
        .filter_map(|(host, at)| {
            let arrived = seen.get(host)?;
            Some(arrived.duration_since(*at).as_secs_f64() * 1000.0 - minus.as_secs_f64() * 1000.0)
        })
        .collect()
}

fn arrived(arrivals: &Shared, path: &str, sent: &HashMap<String, Instant>) -> usize {
    let arrivals = arrivals.lock().unwrap();
    arrivals.by_path.get(path).map_or(0, |seen| {
        sent.keys().filter(|h| seen.contains_key(*h)).count()
    })
}

/// Publishes one change per host at `rate` per second for `seconds`, sampling the outbox's
/// pending entries every second; returns when each host's change was published.
async fn drive(
    bus: &vedette_operator::masters::stream::Bus,
    prefix: &str,
    rate: u64,
    seconds: u64,
    history: &History,
    backlog: &mut Vec<usize>,
) -> HashMap<String, Instant> {
    let mut sent = HashMap::new();
    let per_tick = (rate / 100).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let started = Instant::now();
    let mut next_sample = started + Duration::from_secs(1);
    let mut index = 0u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        let mut events = Vec::new();
        for _ in 0..per_tick {
            let host = format!("{prefix}-{index}");
            index += 1;
            events.push(change(&host));
            sent.insert(host, Instant::now());
        }
        bus.publish(events);
        if Instant::now() >= next_sample {
            next_sample += Duration::from_secs(1);
            let store = history.store.clone();
            let pending = tokio::task::spawn_blocking(move || store.outbox().map(|o| o.len()))
                .await
                .unwrap()
                .unwrap_or(0);
            backlog.push(pending);
        }
    }
    sent
}

async fn wait_for(arrivals: &Shared, path: &str, sent: &HashMap<String, Instant>, limit: Duration) {
    let started = Instant::now();
    while arrived(arrivals, path, sent) < sent.len() && started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_alertmanager(dir: &std::path::Path, port: u16, sink: u16) -> Option<Killed> {
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route:\n  receiver: sink\n  group_by: [host]\n  group_wait: 1s\n  \
             group_interval: 1s\n  repeat_interval: 4h\nreceivers:\n  - name: sink\n    \
             webhook_configs:\n      - url: http://127.0.0.1:{sink}/from-alertmanager\n"
        ),
    )
    .ok()?;
    let child = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.join("am-data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    Some(Killed(child))
}

/// Posts one alert per host to Alertmanager at `rate` per second for `seconds`.
async fn drive_alertmanager(port: u16, rate: u64, seconds: u64) -> HashMap<String, Instant> {
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/v2/alerts");
    let mut sent = HashMap::new();
    let per_tick = (rate / 100).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let started = Instant::now();
    let mut index = 0u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        let mut alerts = Vec::new();
        let now = Instant::now();
        for _ in 0..per_tick {
            let host = format!("am-{index}");
            index += 1;
            alerts.push(serde_json::json!({
                "labels": {"alertname": "VedetteCheck", "host": host, "namespace": NAMESPACE},
                "annotations": {"summary": "port is CRITICAL"},
            }));
            sent.insert(host, now);
        }
        let _ = client.post(&url).json(&alerts).send().await;
    }
    sent
}

fn print(label: &str, (p50, p99, n): (f64, f64, usize), of: usize) {
    println!("{label:<58} p50 {p50:>8.1} ms   p99 {p99:>8.1} ms   ({n} of {of} arrived)");
}

#[tokio::main]
async fn main() {
    let rate = env_u64("RATE", 1_000);
    let seconds = env_u64("SECONDS", 20);
    let down_seconds = env_u64("DOWN_SECONDS", 60);
    let dir = std::env::var("VEDETTE_BENCH_DIR").map_or_else(
        |_| tempfile::tempdir().unwrap(),
        |d| tempfile::tempdir_in(d).unwrap(),
    );
    let arrivals: Shared = Arc::default();
    let port = sink(arrivals.clone()).await;
    let history = History::open(dir.path()).expect("open the history");
    let metrics = Arc::new(vedette_operator::metrics::Metrics::new(
        &mut prometheus_client::registry::Registry::default(),
    ));
    let mut topology = BusBuilder::default();
    let stream = topology.subscribe("notify", vedette_operator::notify::MAX_QUEUED);
    let bus = topology.build(metrics.clone()).unwrap();
    let (routing_tx, routing_rx) =
        tokio::sync::watch::channel(Arc::new(routing(port, &["up"], true)));
    let (_leader_tx, leader) = tokio::sync::watch::channel(true);
    tokio::spawn(vedette_operator::notify::run(
        vedette_operator::notify::Settings {
            default_alertmanager: None,
            secrets: Arc::new(vedette_operator::notify::send::StaticSecrets::default()),
            history: Some(history.clone()),
            metrics,
            generation: None,
        },
        stream,
        routing_rx,
        leader,
    ));
    println!(
        "# {rate} hard changes/s for {seconds} s, one alert per host (one group each), \
         groupWait {} s, embedded history with its outbox",
        GROUP_WAIT.as_secs()
    );

    let mut backlog = Vec::new();
    let sent = drive(&bus, "a", rate, seconds, &history, &mut backlog).await;
    wait_for(&arrivals, "hook/up", &sent, Duration::from_secs(30)).await;
    wait_for(
        &arrivals,
        "alertmanager-api",
        &sent,
        Duration::from_secs(10),
    )
    .await;
    print(
        "vedette: change -> webhook, beyond groupWait",
        percentiles(latencies(&arrivals, "hook/up", &sent, GROUP_WAIT)),
        sent.len(),
    );
    print(
        "vedette: change -> Alertmanager POST /api/v2/alerts",
        percentiles(latencies(
            &arrivals,
            "alertmanager-api",
            &sent,
            Duration::ZERO,
        )),
        sent.len(),
    );
    println!("vedette: outbox pending entries, sampled each second: {backlog:?}");

    let am_port = free_port();
    match start_alertmanager(dir.path(), am_port, port) {
        Some(_am) => {
            let started = Instant::now();
            while reqwest::get(format!("http://127.0.0.1:{am_port}/-/ready"))
                .await
                .map_or(true, |r| !r.status().is_success())
                && started.elapsed() < Duration::from_secs(20)
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let sent = drive_alertmanager(am_port, rate, seconds).await;
            wait_for(
                &arrivals,
                "from-alertmanager",
                &sent,
                Duration::from_secs(30),
            )
            .await;
            print(
                "alertmanager: POST -> webhook, beyond group_wait",
                percentiles(latencies(&arrivals, "from-alertmanager", &sent, GROUP_WAIT)),
                sent.len(),
            );
        }
        None => println!("alertmanager: prometheus-alertmanager is not installed (make deps)"),
    }

    routing_tx.send_replace(Arc::new(routing(port, &["up", "down"], false)));
    let down_until = Instant::now() + Duration::from_secs(down_seconds);
    arrivals.lock().unwrap().down_until = Some(down_until);
    let mut backlog = Vec::new();
    let sent = drive(&bus, "b", rate, seconds, &history, &mut backlog).await;
    wait_for(&arrivals, "hook/up", &sent, Duration::from_secs(30)).await;
    print(
        &format!("vedette: change -> webhook while another is down ({down_seconds} s)"),
        percentiles(latencies(&arrivals, "hook/up", &sent, GROUP_WAIT)),
        sent.len(),
    );
    tokio::time::sleep_until(down_until.into()).await;
    let limit = Duration::from_secs(900);
    wait_for(&arrivals, "hook/down", &sent, limit).await;
    let last = {
        let arrivals = arrivals.lock().unwrap();
        arrivals
            .by_path
            .get("hook/down")
            .and_then(|seen| sent.keys().filter_map(|h| seen.get(h)).max().copied())
    };
    println!(
        "vedette: the down receiver's {} notifications: {} arrived, the last {:.1} s after it came back",
        sent.len(),
        arrived(&arrivals, "hook/down", &sent),
        last.map_or(f64::NAN, |l| l
            .saturating_duration_since(down_until)
            .as_secs_f64())
    );
    println!("vedette: outbox pending entries while it was down, each second: {backlog:?}");
}
