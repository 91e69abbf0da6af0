//! The masters' ingest path with the history on and off: satellite batches of 500 agent state
//! changes go through `Masters::receive` (merge, history write, acknowledgement) in process,
//! from 1 and from 4 concurrent satellites, without and with the embedded store; prints
//! batches/s, records/s and the acknowledgement latency (p50, p99) of each. The extra p99 the
//! store adds is the difference. Then a master's start over a history holding 100,000 checks'
//! last states: opening the store, reading them and restoring them into the merge, after which
//! it serves. Prints numbers; asserts nothing.
//!
//! `cargo bench -p vedette-operator --bench masters_ingest` (`VEDETTE_BENCH_DIR` for the disk).

use std::sync::Arc;
use std::time::{Duration, Instant};

use vedette_crds::CheckState;
use vedette_operator::masters::stream::BusBuilder;
use vedette_operator::masters::{History, Masters};
use vedette_protocol::forward::Forwarded;
use vedette_protocol::plan::CheckId;
use vedette_protocol::report::{Batch, CheckReport, Envelope, Report};

const PER_BATCH: u64 = 500;
const BATCHES_PER_SATELLITE: u64 = 200;

fn batch(satellite: usize, index: u64) -> Batch<Forwarded> {
    let first = index * PER_BATCH + 1;
    let entries = (first..first + PER_BATCH)
        .map(|sequence| {
            let agent = format!("node-{:04}", (sequence % 1000) + 1000 * satellite as u64);
            let state = if (sequence / 1000) % 2 == 0 {
                CheckState::Critical
            } else {
                CheckState::Ok
            };
            Envelope {
                sequence,
                report: Forwarded::Agent {
                    agent: agent.clone(),
                    sequence,
                    report: Report::StateChange(CheckReport {
                        check: CheckId {
                            namespace: format!("app-{}", sequence % 10),
                            rule_set: "web".into(),
                            rule: format!("check-{}", sequence % 7),
                        },
                        host: agent,
                        state,
                        hard: true,
                        attempt: 1,
                        previous_state: CheckState::Ok,
                        output: "TCP OK - 0.001 second response time".into(),
                        duration_ms: 1,
                        at_ms: 1_800_000_000_000 + sequence,
                    }),
                },
            }
        })
        .collect();
    Batch {
        agent: format!("satellite-{satellite}"),
        floor: first,
        entries,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 - 1.0) * p) as usize)
        .copied()
        .unwrap_or_default()
}

async fn run(label: &str, history: Option<History>, satellites: usize) {
    let metrics = Arc::new(vedette_operator::metrics::Metrics::new(
        &mut prometheus_client::registry::Registry::default(),
    ));
    let mut topology = BusBuilder::default();
    let mut events = topology.subscribe("bench", 65_536);
    let bus = topology.build(metrics.clone()).unwrap();
    let masters = Arc::new(
        Masters::new(
            vedette_satellite::auth::Auth::Disabled,
            "",
            bus,
            metrics,
            history,
        )
        .unwrap(),
    );
    let drain = tokio::spawn(async move { while events.recv().await.is_some() {} });
    let batches: Vec<Vec<Batch<Forwarded>>> = (0..satellites)
        .map(|s| (0..BATCHES_PER_SATELLITE).map(|i| batch(s, i)).collect())
        .collect();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for list in batches {
        let masters = masters.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for batch in list {
                let began = Instant::now();
                masters.receive(batch).await.unwrap();
                latencies.push(began.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort();
    let batches = latencies.len() as f64;
    println!(
        "{label:<28} {satellites} satellite(s): {:>6.0} batches/s {:>8.0} records/s; ack latency p50 {:>9.3?} p99 {:>9.3?}",
        batches / elapsed,
        batches * PER_BATCH as f64 / elapsed,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
    );
    drop(masters);
    drain.abort();
}

/// Writes 100,000 checks' last states through a master, then times a new master's start on
/// the same directory until its state holds them all.
async fn start_with_last_states(base: &std::path::Path) {
    let dir = tempfile::tempdir_in(base).unwrap();
    {
        let history = History::open(dir.path()).unwrap();
        let last_states: Vec<vedette_history::LastState> = (0..100_000u64)
            .map(|i| vedette_history::LastState {
                key: vedette_protocol::merge::CheckKey::new(
                    &format!("node-{:05}", i % 10_000),
                    &CheckId {
                        namespace: format!("app-{}", i % 10),
                        rule_set: "web".into(),
                        rule: format!("check-{}", i / 10_000),
                    },
                ),
                zone: Some("zone-a".into()),
                state: CheckState::Ok,
                hard: true,
                last_hard: CheckState::Ok,
                output: "TCP OK - 0.001 second response time".into(),
                at_ms: 1_800_000_000_000,
                since_ms: 1_799_000_000_000,
                writer: format!("node-{:05}", i % 10_000),
                writer_sequence: i,
            })
            .collect();
        history
            .writer
            .submit(vedette_history::Write {
                last_states,
                ..Default::default()
            })
            .durable()
            .await
            .unwrap();
    }
    let metrics = Arc::new(vedette_operator::metrics::Metrics::new(
        &mut prometheus_client::registry::Registry::default(),
    ));
    let mut topology = BusBuilder::default();
    let _events = topology.subscribe("bench", 16);
    let bus = topology.build(metrics.clone()).unwrap();
    let began = Instant::now();
    let history = History::open(dir.path()).unwrap();
    let masters = Masters::new(
        vedette_satellite::auth::Auth::Disabled,
        "",
        bus,
        metrics,
        Some(history),
    )
    .unwrap();
    let restored = masters.state().checks().len();
    println!(
        "master start over 100,000 last states: {restored} restored and serving after {:?}",
        began.elapsed()
    );
}

fn main() {
    let base = std::env::var_os("VEDETTE_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "masters ingest: batches of {PER_BATCH} state changes, {BATCHES_PER_SATELLITE} per satellite, in process"
    );
    runtime.block_on(async {
        start_with_last_states(&base).await;
        for satellites in [1, 4] {
            run("history off", None, satellites).await;
            let dir = tempfile::tempdir_in(&base).unwrap();
            let history = History::open(dir.path()).unwrap();
            run("history on (SQLite)", Some(history), satellites).await;
        }
    });
}
