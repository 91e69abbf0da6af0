//! A satellite's spool forwarded to two masters (two real HTTP receivers): each gets every
//! entry. While one is down the other keeps receiving live entries at once; the one that was
//! down gets everything it missed, in sequence order, when it is back; an entry leaves the
//! spool only once both acknowledged it; and the cursors survive a restart.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use vedette_agent::sender::fan_out::{self, Upstream};
use vedette_agent::sender::{AckGate, Cursors, LiveEntry, SendMetrics};
use vedette_agent::spool::{Priority, Spool, SpoolConfig};
use vedette_agent::transport::{RESULTS_PATH, Transport, Upstreams};
use vedette_protocol::report::{Ack, Batch};
use vedette_protocol::watermark::Watermark;

/// What a receiver stored: spool sequences in the order they first arrived.
#[derive(Default)]
struct Received {
    arrivals: Vec<u64>,
    watermark: Watermark,
}

/// A master stand-in that can be taken down (nothing listens) and brought back on its port.
struct Receiver {
    address: SocketAddr,
    received: Arc<Mutex<Received>>,
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Receiver {
    async fn start() -> Self {
        let mut receiver = Self {
            address: ([127, 0, 0, 1], 0).into(),
            received: Arc::default(),
            running: None,
        };
        receiver.serve().await;
        receiver
    }

    async fn serve(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.address).await.unwrap();
        self.address = listener.local_addr().unwrap();
        let app = Router::new()
            .route(RESULTS_PATH, post(receive))
            .with_state(self.received.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        self.running = Some((stop, task));
    }

    async fn stop(&mut self) {
        let (stop, task) = self.running.take().expect("running");
        stop.send(()).unwrap();
        task.await.unwrap();
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn arrivals(&self) -> Vec<u64> {
        self.received.lock().unwrap().arrivals.clone()
    }
}

async fn receive(
    State(received): State<Arc<Mutex<Received>>>,
    Json(batch): Json<Batch<Value>>,
) -> Json<Ack> {
    let mut received = received.lock().unwrap();
    received.watermark.advance_floor(batch.floor);
    for envelope in batch.entries {
        assert_eq!(envelope.report["n"], json!(envelope.sequence));
        if received.watermark.record(envelope.sequence) {
            received.arrivals.push(envelope.sequence);
        }
    }
    Json(Ack {
        up_to: received.watermark.contiguous(),
    })
}

async fn append(spool: &Spool, live: &mpsc::Sender<LiveEntry>, n: u64) {
    let payload = serde_json::to_vec(&json!({ "n": n })).unwrap();
    let sequence = spool
        .append(Priority::StateChange, payload.clone())
        .await
        .unwrap();
    assert_eq!(sequence, n);
    live.send((sequence, payload)).await.unwrap();
}

async fn until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn start(
    spool: &Spool,
    urls: &[String],
    metrics: &[SendMetrics],
) -> (mpsc::Sender<LiveEntry>, Arc<Cursors>, Vec<JoinHandle<()>>) {
    let cursors = Cursors::open(spool.clone(), AckGate::open(), urls).unwrap();
    let upstreams = urls
        .iter()
        .zip(metrics)
        .map(|(url, metrics)| Upstream {
            transport: Transport::new(
                Upstreams::new(vec![url.clone()]),
                None,
                Duration::from_secs(2),
            ),
            metrics: metrics.clone(),
        })
        .collect();
    let (live, receiver) = mpsc::channel(1000);
    let handles = fan_out::spawn::<Value>("satellite-0", 1000, &cursors, upstreams, receiver);
    (live, cursors, handles)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_master_gets_every_entry_and_a_down_master_holds_back_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let spool_config = SpoolConfig::new(dir.path().join("spool"));
    let spool = Spool::open(spool_config.clone()).unwrap();
    let mut first = Receiver::start().await;
    let mut second = Receiver::start().await;
    let urls = [first.url(), second.url()];
    let metrics = [SendMetrics::default(), SendMetrics::default()];
    let (live, cursors, handles) = start(&spool, &urls, &metrics);

    for n in 1..=10 {
        append(&spool, &live, n).await;
    }
    let both_have_ten = || first.arrivals().len() == 10 && second.arrivals().len() == 10;
    until(
        "both masters have 1..=10",
        Duration::from_secs(5),
        both_have_ten,
    )
    .await;
    until("the spool deletes 1..=10", Duration::from_secs(5), || {
        spool.stats().acked_through == 10
    })
    .await;

    // The second master goes away; the first keeps getting every live entry at once.
    second.stop().await;
    for n in 11..=40 {
        append(&spool, &live, n).await;
        let first_has_it = || first.arrivals().last() == Some(&n);
        until(
            "the first master gets the live entry",
            Duration::from_secs(1),
            first_has_it,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(second.arrivals(), (1..=10).collect::<Vec<u64>>());
    assert!(metrics[1].failed.get() > 0, "the second loop never failed");
    assert_eq!(cursors.positions(), [40, 10]);
    let stats = spool.stats();
    assert_eq!(
        (stats.acked_through, stats.depth),
        (10, 30),
        "entries left the spool before the second master had them"
    );
    until(
        "the second loop reports its backlog",
        Duration::from_secs(10),
        || metrics[1].backlog.get() == 30,
    )
    .await;

    // Back: it gets everything it missed, in sequence order, and only then does the spool
    // let go.
    second.serve().await;
    until(
        "the second master catches up",
        Duration::from_secs(30),
        || second.arrivals().len() == 40,
    )
    .await;
    assert_eq!(second.arrivals(), (1..=40).collect::<Vec<u64>>());
    assert_eq!(first.arrivals(), (1..=40).collect::<Vec<u64>>());
    until(
        "the spool deletes everything",
        Duration::from_secs(5),
        || {
            let stats = spool.stats();
            (stats.acked_through, stats.depth) == (40, 0)
        },
    )
    .await;
    assert_eq!(metrics.each_ref().map(|m| m.skipped.get()), [0, 0]);

    // A restart resumes each master where it was: nothing is sent again.
    drop(live);
    for handle in handles {
        handle.abort();
        let _ = handle.await;
    }
    drop((cursors, spool));
    let spool = Spool::open(spool_config).unwrap();
    let (live, cursors, _handles) = start(&spool, &urls, &metrics);
    assert_eq!(cursors.positions(), [40, 40]);
    append(&spool, &live, 41).await;
    until("both get the next entry", Duration::from_secs(5), || {
        first.arrivals().len() == 41 && second.arrivals().len() == 41
    })
    .await;
    first.stop().await;
    second.stop().await;
}
