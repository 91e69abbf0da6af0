//! The history store's figures: sustained inserts (one writer, and the group-committing
//! writer under concurrent submitters), one check's 30-day timeline and one rule set's 30-day
//! availability from a store of `VEDETTE_BENCH_RECORDS` records (default 10 million), reading
//! 100,000 last states at start, and the size per million records. Prints numbers; asserts
//! nothing.
//!
//! `cargo bench -p vedette-history --bench history_store` (set `VEDETTE_BENCH_DIR` to measure
//! another disk; the default is the system's temporary directory).

#[path = "../tests/common/postgres_server.rs"]
#[allow(dead_code)]
mod postgres_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use vedette_crds::CheckState;
use vedette_history::query::{AvailabilityQuery, HistoryQuery};
use vedette_history::{LastState, Record, SqliteStore, Store, Write, Writer};
use vedette_protocol::merge::CheckKey;
use vedette_protocol::plan::CheckId;

const HOSTS: u64 = 100;
const RULE_SETS: u64 = 100;
const RULES: u64 = 10;
const DAY_MS: u64 = 86_400_000;
const SPAN_DAYS: u64 = 400;
const NOW_MS: u64 = 1_800_000_000_000;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Record `i` of a store spread over `HOSTS × RULE_SETS × RULES` checks and `SPAN_DAYS`.
fn record(i: u64, total: u64) -> Record {
    let checks = HOSTS * RULE_SETS * RULES;
    let check = i % checks;
    let (host, rest) = (check % HOSTS, check / HOSTS);
    let (rule_set, rule) = (rest % RULE_SETS, rest / RULE_SETS);
    let at_ms = NOW_MS - SPAN_DAYS * DAY_MS + (i * SPAN_DAYS * DAY_MS) / total.max(1);
    let states = [
        CheckState::Ok,
        CheckState::Critical,
        CheckState::Ok,
        CheckState::Warning,
    ];
    let round = (i / checks) as usize;
    Record {
        kind: vedette_history::Kind::StateChange,
        at_ms,
        source: format!("node-{host:03}"),
        sequence: i,
        namespace: format!("app-{}", rule_set % 10),
        zone: "zone-a".into(),
        host: format!("node-{host:03}"),
        rule_set: format!("rules-{rule_set:03}"),
        check: format!("check-{rule}"),
        state: Some(states[round % 4]),
        previous: Some(states[(round + 3) % 4]),
        hard: Some(true),
        message: "TCP OK - 0.001 second response time on 10.0.0.1 port 443".into(),
        detail: serde_json::json!({ "attempt": 1 }),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 - 1.0) * p) as usize)
        .copied()
        .unwrap_or_default()
}

fn fill(store: &SqliteStore, total: u64) -> Duration {
    let start = Instant::now();
    let mut next = 0;
    while next < total {
        let end = (next + 20_000).min(total);
        let records = (next..end).map(|i| record(i, total)).collect();
        store
            .write(&Write {
                records,
                ..Write::default()
            })
            .unwrap();
        if end / 1_000_000 > next / 1_000_000 {
            println!(
                "  fill: {end} records after {:.1} s",
                start.elapsed().as_secs_f64()
            );
        }
        next = end;
    }
    let last_states: Vec<LastState> = (0..HOSTS * RULE_SETS * RULES)
        .map(|check| {
            let newest = record(
                total.saturating_sub(1) - (total.saturating_sub(1) % (HOSTS * RULE_SETS * RULES))
                    + check,
                total,
            );
            LastState {
                key: CheckKey::new(&newest.host, &newest.check_id().unwrap()),
                zone: Some(newest.zone.clone()),
                state: newest.state.unwrap(),
                hard: true,
                last_hard: newest.state.unwrap(),
                output: newest.message.clone(),
                at_ms: newest.at_ms,
                since_ms: newest.at_ms,
                writer: newest.source.clone(),
                writer_sequence: newest.sequence,
            }
        })
        .collect();
    store
        .write(&Write {
            last_states,
            ..Write::default()
        })
        .unwrap();
    start.elapsed()
}

/// 8 submitters each writing 500 records per write (a satellite batch) and waiting for its
/// durability before the next: records/s and the write latency.
fn writer_inserts(label: &str, store: Arc<dyn Store>) {
    let writer = Writer::start(store);
    let per_task = 100_000u64;
    let start = Instant::now();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for task in 0..8u64 {
            let writer = writer.clone();
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                for chunk in 0..per_task / 500 {
                    let first = task * per_task + chunk * 500;
                    let records = (first..first + 500)
                        .map(|i| record(i, 8 * per_task))
                        .collect();
                    let began = Instant::now();
                    writer
                        .submit(Write {
                            records,
                            ..Write::default()
                        })
                        .durable()
                        .await
                        .unwrap();
                    latencies.push(began.elapsed());
                }
                latencies
            }));
        }
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await.unwrap());
        }
        latencies.sort();
        let elapsed = start.elapsed();
        let commits = writer
            .stats()
            .commits
            .load(std::sync::atomic::Ordering::Relaxed);
        println!(
            "inserts via the writer, {label}: {:.0} records/s ({} records, 8 submitters × 500 per write, {} commits, {:.1} s); write latency p50 {:?} p99 {:?}",
            (8 * per_task) as f64 / elapsed.as_secs_f64(),
            8 * per_task,
            commits,
            elapsed.as_secs_f64(),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
        );
    });
}

fn main() {
    let base = std::env::var_os("VEDETTE_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base).unwrap();
    println!("history store bench, directory {}", dir.path().display());

    // Sustained inserts through the writer, embedded and PostgreSQL side by side.
    let sqlite: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("ingest.db")).unwrap());
    writer_inserts("SQLite", sqlite);
    let server = postgres_server::PostgresServer::start();
    let postgres: Arc<dyn Store> =
        Arc::new(vedette_history::PostgresStore::open(&server.database("bench")).unwrap());
    writer_inserts("PostgreSQL", postgres);
    drop(server);

    // A large store, filled in 20,000-record transactions.
    let total = env("VEDETTE_BENCH_RECORDS", 10_000_000);
    let path = dir.path().join("large.db");
    let store = SqliteStore::open(&path).unwrap();
    let filled = fill(&store, total);
    println!(
        "fill: {total} records in {:.1} s = {:.0} records/s (one writer, 20,000 per transaction)",
        filled.as_secs_f64(),
        total as f64 / filled.as_secs_f64()
    );
    let bytes = store.used_bytes().unwrap();
    let file = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "size: {:.1} MiB used ({:.1} MiB file) = {:.1} MiB per million records",
        bytes as f64 / 1048576.0,
        file as f64 / 1048576.0,
        bytes as f64 / 1048576.0 / (total as f64 / 1e6)
    );

    // One check's 30-day timeline.
    let mut latencies = Vec::new();
    let mut rows = 0;
    for i in 0..300u64 {
        let host = (i * 37) % HOSTS;
        let rule_set = (i * 11) % RULE_SETS;
        let query = HistoryQuery {
            namespace: Some(format!("app-{}", rule_set % 10)),
            rule_set: Some(format!("rules-{rule_set:03}")),
            check: Some(format!("check-{}", i % RULES)),
            host: Some(format!("node-{host:03}")),
            from_ms: Some(NOW_MS - 30 * DAY_MS),
            to_ms: Some(NOW_MS),
            limit: 1000,
            ..HistoryQuery::default()
        };
        let began = Instant::now();
        rows += store.history(&query).unwrap().records.len();
        latencies.push(began.elapsed());
    }
    latencies.sort();
    println!(
        "timeline (one check, 30 days, {:.0} records each): p50 {:?} p99 {:?} over {} queries",
        rows as f64 / latencies.len() as f64,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.len()
    );

    // One rule set's 30-day availability.
    let mut latencies = Vec::new();
    let mut checks = 0;
    for rule_set in 0..50u64 {
        let query = AvailabilityQuery {
            namespace: format!("app-{}", rule_set % 10),
            rule_set: format!("rules-{rule_set:03}"),
            from_ms: NOW_MS - 30 * DAY_MS,
            to_ms: NOW_MS,
            ..AvailabilityQuery::default()
        };
        let began = Instant::now();
        checks += store.availability(&query).unwrap().checks.len();
        latencies.push(began.elapsed());
    }
    latencies.sort();
    println!(
        "availability (one rule set of {} checks, 30 days): p50 {:?} p99 {:?} over {} queries",
        checks / latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.len()
    );
    drop(store);

    // Start: open a store holding 100,000 checks' last states and read them all.
    let path = dir.path().join("start.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        let last_states = (0..100_000u64)
            .map(|i| LastState {
                key: CheckKey::new(
                    &format!("node-{:04}", i % 1000),
                    &CheckId {
                        namespace: format!("app-{}", i % 10),
                        rule_set: format!("rules-{:03}", (i / 1000) % 100),
                        rule: format!("check-{}", i / 100_000),
                    },
                ),
                zone: Some("zone-a".into()),
                state: CheckState::Ok,
                hard: true,
                last_hard: CheckState::Ok,
                output: "OK - 12% used".into(),
                at_ms: NOW_MS,
                since_ms: NOW_MS - DAY_MS,
                writer: format!("node-{:04}", i % 1000),
                writer_sequence: i,
            })
            .collect();
        store
            .write(&Write {
                last_states,
                ..Write::default()
            })
            .unwrap();
    }
    let began = Instant::now();
    let store = SqliteStore::open(&path).unwrap();
    let read = store.last_states().unwrap().len();
    println!(
        "start: opened and read {read} last states in {:?}",
        began.elapsed()
    );
}
