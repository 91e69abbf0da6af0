//! A replica that takes the Lease sends what fell due while it did not hold it: a check's
//! problem reaches the masters while this replica follows (the holder died before sending),
//! and once it holds the Lease the webhook gets the notification and the Alertmanager
//! receiver the firing alert, each once, through the outbox of a real embedded store.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use vedette_crds::CheckState;
use vedette_crds::notification::{AlertmanagerReceiver, Receiver, WebhookReceiver};
use vedette_operator::compile::notify::{NamespaceRouting, RouteModel, Routing};
use vedette_operator::masters::History;
use vedette_operator::masters::stream::{BusBuilder, CheckEvent, MasterEvent};
use vedette_protocol::plan::CheckId;

type Seen = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

async fn sink(seen: Seen) -> u16 {
    async fn record(path: &str, seen: &Seen, body: &[u8]) {
        let body = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
        seen.lock().unwrap().push((path.to_owned(), body));
    }
    let app = Router::new()
        .route(
            "/hook",
            post(
                |State(seen): State<Seen>, body: axum::body::Bytes| async move {
                    record("/hook", &seen, &body).await;
                },
            ),
        )
        .route(
            "/api/v2/alerts",
            post(
                |State(seen): State<Seen>, body: axum::body::Bytes| async move {
                    record("/api/v2/alerts", &seen, &body).await;
                },
            ),
        )
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

fn route(receiver: &str) -> RouteModel {
    RouteModel {
        receiver: receiver.into(),
        matchers: Vec::new(),
        group_by: vec!["host".into()],
        group_wait_seconds: 1,
        group_interval_seconds: 1,
        repeat_interval_seconds: 14_400,
        continue_: true,
    }
}

fn routing(port: u16) -> Routing {
    let mut namespace = NamespaceRouting::default();
    namespace.receivers.insert(
        "hook".into(),
        Receiver {
            name: "hook".into(),
            alertmanager: None,
            webhook: Some(WebhookReceiver {
                url: format!("http://127.0.0.1:{port}/hook"),
                hmac_secret: None,
                max_attempts: None,
            }),
            email: None,
        },
    );
    namespace.receivers.insert(
        "am".into(),
        Receiver {
            name: "am".into(),
            alertmanager: Some(AlertmanagerReceiver::at(&format!(
                "http://127.0.0.1:{port}"
            ))),
            webhook: None,
            email: None,
        },
    );
    namespace.routes = vec![route("hook"), route("am")];
    let mut routing = Routing::default();
    routing.namespaces.insert("shop".into(), namespace);
    routing
}

fn problem() -> MasterEvent {
    MasterEvent::Check(CheckEvent {
        host: "node-1".into(),
        check: CheckId {
            namespace: "shop".into(),
            rule_set: "web".into(),
            rule: "port".into(),
        },
        zone: Some("local".into()),
        state: CheckState::Critical,
        previous: Some(CheckState::Ok),
        hard: true,
        last_hard: CheckState::Ok,
        output: "TCP CRITICAL".into(),
        at_ms: vedette_protocol::clock::unix_ms(),
    })
}

fn count(seen: &Seen, path: &str) -> usize {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p == path)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_fell_due_while_following_is_sent_on_taking_the_lease() {
    let dir = tempfile::tempdir().unwrap();
    let seen: Seen = Arc::default();
    let port = sink(seen.clone()).await;
    let metrics = Arc::new(vedette_operator::metrics::Metrics::new(
        &mut prometheus_client::registry::Registry::default(),
    ));
    let mut topology = BusBuilder::default();
    let stream = topology.subscribe("notify", 64);
    let bus = topology.build(metrics.clone()).unwrap();
    let (_routing, routing_updates) = tokio::sync::watch::channel(Arc::new(routing(port)));
    let (leader, leading) = tokio::sync::watch::channel(false);
    tokio::spawn(vedette_operator::notify::run(
        vedette_operator::notify::Settings {
            default_alertmanager: None,
            secrets: Arc::new(vedette_operator::notify::send::StaticSecrets::default()),
            history: Some(History::open(dir.path()).unwrap()),
            metrics,
            generation: None,
        },
        stream,
        routing_updates,
        leading,
    ));
    bus.publish(vec![problem()]);
    tokio::time::sleep(Duration::from_millis(1_600)).await; // past the group wait
    assert_eq!(count(&seen, "/hook"), 0, "a follower sends nothing");
    assert_eq!(
        count(&seen, "/api/v2/alerts"),
        0,
        "a follower posts nothing"
    );

    leader.send_replace(true);
    let started = Instant::now();
    while (count(&seen, "/hook") == 0 || count(&seen, "/api/v2/alerts") == 0)
        && started.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = seen.lock().unwrap().clone();
    let hooks: Vec<&serde_json::Value> = seen
        .iter()
        .filter(|(p, _)| p == "/hook")
        .map(|(_, b)| b)
        .collect();
    assert_eq!(hooks.len(), 1, "{seen:?}");
    assert_eq!(hooks[0]["status"], "firing");
    assert_eq!(hooks[0]["alerts"][0]["labels"]["host"], "node-1");
    let posts: Vec<&serde_json::Value> = seen
        .iter()
        .filter(|(p, _)| p == "/api/v2/alerts")
        .map(|(_, b)| b)
        .collect();
    assert_eq!(posts.len(), 1, "{seen:?}");
    assert_eq!(posts[0][0]["labels"]["host"], "node-1");
}

/// Starts a notifier over `history` as the Lease holder of `generation`; returns its bus.
fn notifier(
    port: u16,
    history: &History,
    generation: u64,
) -> (
    vedette_operator::masters::stream::Bus,
    tokio::sync::watch::Sender<bool>,
) {
    let metrics = Arc::new(vedette_operator::metrics::Metrics::new(
        &mut prometheus_client::registry::Registry::default(),
    ));
    let mut topology = BusBuilder::default();
    let stream = topology.subscribe("notify", 64);
    let bus = topology.build(metrics.clone()).unwrap();
    let (routing_tx, routing_updates) = tokio::sync::watch::channel(Arc::new(routing(port)));
    std::mem::forget(routing_tx); // the routing stays for the test's length
    let (leader, leading) = tokio::sync::watch::channel(true);
    let (generation_tx, generation) = tokio::sync::watch::channel(generation);
    std::mem::forget(generation_tx);
    tokio::spawn(vedette_operator::notify::run(
        vedette_operator::notify::Settings {
            default_alertmanager: None,
            secrets: Arc::new(vedette_operator::notify::send::StaticSecrets::default()),
            history: Some(history.clone()),
            metrics,
            generation: Some(generation),
        },
        stream,
        routing_updates,
        leading,
    ));
    (bus, leader)
}

/// The outbox's fence: a holder that still believes it holds the Lease after a later holder
/// claimed a higher generation sends nothing; the later holder sends what it left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_holder_is_fenced_off_and_the_next_one_sends() {
    let dir = tempfile::tempdir().unwrap();
    let seen: Seen = Arc::default();
    let port = sink(seen.clone()).await;
    let history = History::open(dir.path()).unwrap();
    let (deposed, _deposed_leads) = notifier(port, &history, 1);
    history.store.fence(2).unwrap(); // the next holder's term began
    deposed.publish(vec![problem()]);
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert_eq!(
        count(&seen, "/hook"),
        0,
        "a fenced-off holder sends nothing"
    );
    assert_eq!(
        history.store.outbox().unwrap().len(),
        1,
        "what it decided waits in the outbox"
    );

    let (_next, _next_leads) = notifier(port, &history, 2);
    let started = Instant::now();
    while count(&seen, "/hook") == 0 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&seen, "/hook"), 1, "the next holder sends it, once");
    assert!(history.store.outbox().unwrap().is_empty());
}
