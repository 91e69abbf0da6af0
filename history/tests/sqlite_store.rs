//! The embedded store on a real SQLite file: natural keys, pages in the order things happened,
//! availability, last states, schema versions, retention, and the writer's order.

use std::sync::Arc;

use vedette_crds::CheckState;
use vedette_history::query::{AvailabilityQuery, Cursor, HistoryQuery};
use vedette_history::store::{Retention, Write};
use vedette_history::{Kind, LastState, Record, SqliteStore, Store, Writer};
use vedette_protocol::merge::CheckKey;
use vedette_protocol::plan::CheckId;
use vedette_protocol::report::CheckReport;

fn change(
    host: &str,
    rule: &str,
    sequence: u64,
    at_ms: u64,
    previous: CheckState,
    state: CheckState,
) -> Record {
    let report = CheckReport {
        check: CheckId {
            namespace: "shop".into(),
            rule_set: "web".into(),
            rule: rule.into(),
        },
        host: host.into(),
        state,
        hard: true,
        attempt: 1,
        previous_state: previous,
        output: format!("{rule} is {}", state.name()),
        duration_ms: 1,
        at_ms,
    };
    Record::state_change(host, sequence, Some("z"), &report, true).unwrap()
}

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("history").join("vedette.db")).unwrap();
    (dir, store)
}

fn all(store: &SqliteStore, query: HistoryQuery) -> Vec<Record> {
    let mut records = Vec::new();
    let mut after: Option<Cursor> = None;
    loop {
        let page = store
            .history(&HistoryQuery {
                limit: 3,
                after,
                ..query.clone()
            })
            .unwrap();
        records.extend(page.records.into_iter().map(|r| r.record));
        match page.next {
            Some(next) => after = Some(Cursor::decode(&next).unwrap()),
            None => return records,
        }
    }
}

#[test]
fn a_record_written_twice_is_stored_once_and_pages_follow_the_agents_order() {
    let (_dir, store) = open();
    use CheckState::*;
    // The agent's live change (seq 10) arrives before its replayed backlog (seq 3..=5).
    let live = change("n1", "tcp", 10, 10_000, Critical, Ok);
    let backlog = vec![
        change("n1", "tcp", 3, 3_000, Ok, Critical),
        change("n1", "tcp", 4, 4_000, Critical, Warning),
        change("n1", "tcp", 5, 5_000, Warning, Critical),
    ];
    store
        .write(&Write {
            records: vec![live.clone()],
            ..Write::default()
        })
        .unwrap();
    store
        .write(&Write {
            records: backlog.clone(),
            ..Write::default()
        })
        .unwrap();
    // A resend after a restart: nothing new.
    store
        .write(&Write {
            records: backlog.clone(),
            ..Write::default()
        })
        .unwrap();
    assert_eq!(store.count().unwrap(), 4);
    let newest_first = all(&store, HistoryQuery::default());
    let sequences: Vec<u64> = newest_first.iter().map(|r| r.sequence).collect();
    assert_eq!(sequences, [10, 5, 4, 3]);
    assert_eq!(newest_first[3], backlog[0]);
}

#[test]
fn filters_narrow_by_every_field_and_namespaces_the_caller_may_not_read_are_hidden() {
    let (_dir, store) = open();
    use CheckState::*;
    let mut other = change("n2", "disk", 1, 2_000, Ok, Warning);
    other.namespace = "billing".into();
    let agent = Record::agent(
        Kind::AgentStale,
        "n3",
        "z",
        99,
        2_500,
        "missed 3 keepalives".into(),
    );
    let records = vec![
        change("n1", "tcp", 1, 1_000, Ok, Critical),
        change("n1", "http", 2, 1_500, Ok, Warning),
        other,
        agent,
    ];
    store
        .write(&Write {
            records,
            ..Write::default()
        })
        .unwrap();
    let hosts = |query: HistoryQuery| -> Vec<String> {
        all(&store, query)
            .into_iter()
            .map(|r| format!("{}/{}", r.host, r.check))
            .collect()
    };
    assert_eq!(
        hosts(HistoryQuery {
            check: Some("tcp".into()),
            ..Default::default()
        }),
        ["n1/tcp"]
    );
    assert_eq!(
        hosts(HistoryQuery {
            state: Some(Warning),
            ..Default::default()
        }),
        ["n2/disk", "n1/http"]
    );
    assert_eq!(
        hosts(HistoryQuery {
            kind: Some(Kind::AgentStale),
            ..Default::default()
        }),
        ["n3/"]
    );
    assert_eq!(
        hosts(HistoryQuery {
            from_ms: Some(1_500),
            to_ms: Some(2_500),
            ..Default::default()
        }),
        ["n2/disk", "n1/http"]
    );
    assert_eq!(
        hosts(HistoryQuery {
            allowed_namespaces: Some(vec!["shop".into()]),
            ..Default::default()
        }),
        ["n1/http", "n1/tcp"],
        "billing and the agent record are not shop's"
    );
    assert_eq!(
        hosts(HistoryQuery {
            namespace: Some("billing".into()),
            ..Default::default()
        }),
        ["n2/disk"]
    );
}

#[test]
fn availability_splits_the_range_by_state_per_check_and_for_the_rule_set() {
    let (_dir, store) = open();
    use CheckState::*;
    let records = vec![
        change("n1", "tcp", 1, 0, Ok, Ok),
        change("n1", "tcp", 2, 600, Ok, Critical),
        change("n1", "tcp", 3, 900, Critical, Ok),
        change("n2", "tcp", 1, 500, Ok, Ok),
    ];
    store
        .write(&Write {
            records,
            ..Write::default()
        })
        .unwrap();
    let availability = store
        .availability(&AvailabilityQuery {
            namespace: "shop".into(),
            rule_set: "web".into(),
            from_ms: 100,
            to_ms: 1_100,
            ..Default::default()
        })
        .unwrap();
    let n1 = &availability.checks[0];
    assert_eq!(
        (n1.host.as_str(), n1.times.ok_ms, n1.times.critical_ms),
        ("n1", 700, 300)
    );
    let n2 = &availability.checks[1];
    assert_eq!((n2.times.pending_ms, n2.times.ok_ms), (400, 600));
    assert_eq!(availability.total.total_ms(), 2_000);
    assert!((availability.ok_share - 0.65).abs() < 1e-9);
    let one = store
        .availability(&AvailabilityQuery {
            namespace: "shop".into(),
            rule_set: "web".into(),
            host: Some("n2".into()),
            from_ms: 100,
            to_ms: 1_100,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(one.checks.len(), 1);
}

#[test]
fn last_states_survive_reopening_and_a_newer_schema_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vedette.db");
    let last = LastState {
        key: CheckKey::new(
            "n1",
            &CheckId {
                namespace: "shop".into(),
                rule_set: "web".into(),
                rule: "tcp".into(),
            },
        ),
        zone: Some("z".into()),
        state: CheckState::Critical,
        hard: true,
        last_hard: CheckState::Critical,
        output: "refused".into(),
        at_ms: 5_000,
        since_ms: 4_000,
        writer: "n1".into(),
        writer_sequence: 7,
    };
    {
        let store = SqliteStore::open(&path).unwrap();
        store
            .write(&Write {
                last_states: vec![last.clone()],
                ..Write::default()
            })
            .unwrap();
        let newer = LastState {
            state: CheckState::Ok,
            writer_sequence: 8,
            ..last.clone()
        };
        store
            .write(&Write {
                last_states: vec![newer.clone()],
                ..Write::default()
            })
            .unwrap();
        assert_eq!(store.last_states().unwrap(), [newer]);
    }
    assert_eq!(
        SqliteStore::open(&path).unwrap().last_states().unwrap()[0].writer_sequence,
        8
    );
    {
        let connection = rusqlite_version_bump(&path);
        drop(connection);
    }
    let before = std::fs::read(&path).unwrap();
    let error = SqliteStore::open(&path)
        .err()
        .expect("a newer schema is refused");
    let message = error.to_string();
    assert!(
        message.contains("schema version 99, newer than the 1"),
        "{message}"
    );
    assert!(
        std::fs::read(&path).unwrap() == before,
        "the file is not changed"
    );
}

/// Marks the file at `path` as written by a far newer release.
fn rusqlite_version_bump(path: &std::path::Path) -> rusqlite::Connection {
    let connection = rusqlite::Connection::open(path).unwrap();
    connection.pragma_update(None, "user_version", 99).unwrap();
    connection
        .pragma_update(None, "journal_mode", "DELETE")
        .unwrap();
    connection
}

#[test]
fn retention_removes_old_records_in_batches_and_then_the_oldest_past_the_size_limit() {
    let (_dir, store) = open();
    use CheckState::*;
    let records: Vec<Record> = (0..1_000)
        .map(|i| change("n1", "tcp", i, i * 1_000, Ok, Critical))
        .collect();
    store
        .write(&Write {
            records,
            ..Write::default()
        })
        .unwrap();
    let by_age = Retention {
        max_age_ms: 500_000,
        max_bytes: u64::MAX,
    };
    let pruned = store.prune(&by_age, 1_000_000, 200).unwrap();
    assert_eq!(
        (pruned.by_age, pruned.by_size),
        (200, 0),
        "one batch at a time"
    );
    while store.prune(&by_age, 1_000_000, 200).unwrap().by_age > 0 {}
    assert_eq!(
        store.count().unwrap(),
        500,
        "everything from 500 s on stays"
    );
    let oldest = all(&store, HistoryQuery::default()).last().unwrap().at_ms;
    assert_eq!(oldest, 500_000);
    let by_size = Retention {
        max_age_ms: u64::MAX,
        max_bytes: 1,
    };
    let pruned = store.prune(&by_size, 1_000_000, 100).unwrap();
    assert_eq!(pruned.by_size, 100);
    assert_eq!(
        all(&store, HistoryQuery::default()).last().unwrap().at_ms,
        600_000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_commits_every_submitted_write_and_reports_durability_in_order() {
    let (_dir, store) = open();
    let store: Arc<dyn Store> = Arc::new(store);
    let writer = Writer::start(store.clone());
    let mut pending = Vec::new();
    for i in 0..500u64 {
        let record = change("n1", "tcp", i, i, CheckState::Ok, CheckState::Critical);
        pending.push(writer.submit(Write {
            records: vec![record],
            ..Write::default()
        }));
    }
    let last = pending.pop().unwrap();
    last.durable().await.unwrap();
    // Everything submitted before the last one is durable once the last one is.
    assert_eq!(store.count().unwrap(), 500);
    let commits = writer
        .stats()
        .commits
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(commits < 500, "grouped: {commits} commits for 500 writes");
}
