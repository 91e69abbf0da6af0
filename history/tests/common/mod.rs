//! What every store must do, as functions over `&dyn Store` that the SQLite and the PostgreSQL
//! tests both run; and a real PostgreSQL server for the latter.

#![allow(dead_code)]

pub mod postgres_server;

use vedette_crds::CheckState;
use vedette_history::query::{AvailabilityQuery, Cursor, HistoryQuery};
use vedette_history::store::{Retention, Write};
use vedette_history::{Kind, LastState, Record, Store};
use vedette_protocol::merge::CheckKey;
use vedette_protocol::plan::CheckId;
use vedette_protocol::report::CheckReport;

pub fn change(
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

pub fn records(records: Vec<Record>) -> Write {
    Write {
        records,
        ..Write::default()
    }
}

/// Every record `query` selects, page by page (3 per page).
pub fn all(store: &dyn Store, query: HistoryQuery) -> Vec<Record> {
    let mut found = Vec::new();
    let mut after: Option<Cursor> = None;
    loop {
        let page = store
            .history(&HistoryQuery {
                limit: 3,
                after,
                ..query.clone()
            })
            .unwrap();
        found.extend(page.records.into_iter().map(|r| r.record));
        match page.next {
            Some(next) => after = Some(Cursor::decode(&next).unwrap()),
            None => return found,
        }
    }
}

pub fn a_record_written_twice_is_stored_once_and_pages_follow_the_agents_order(store: &dyn Store) {
    use CheckState::*;
    // The agent's live change (seq 10) arrives before its replayed backlog (seq 3..=5).
    let live = change("n1", "tcp", 10, 10_000, Critical, Ok);
    let backlog = vec![
        change("n1", "tcp", 3, 3_000, Ok, Critical),
        change("n1", "tcp", 4, 4_000, Critical, Warning),
        change("n1", "tcp", 5, 5_000, Warning, Critical),
    ];
    store.write(&records(vec![live])).unwrap();
    store.write(&records(backlog.clone())).unwrap();
    // A resend after a restart, or the other master: nothing new.
    store.write(&records(backlog.clone())).unwrap();
    assert_eq!(store.count().unwrap(), 4);
    let newest_first = all(store, HistoryQuery::default());
    let sequences: Vec<u64> = newest_first.iter().map(|r| r.sequence).collect();
    assert_eq!(sequences, [10, 5, 4, 3]);
    assert_eq!(newest_first[3], backlog[0], "every field reads back");
}

pub fn filters_narrow_by_every_field_and_unreadable_namespaces_are_hidden(store: &dyn Store) {
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
    store
        .write(&records(vec![
            change("n1", "tcp", 1, 1_000, Ok, Critical),
            change("n1", "http", 2, 1_500, Ok, Warning),
            other,
            agent,
        ]))
        .unwrap();
    let hosts = |query: HistoryQuery| -> Vec<String> {
        all(store, query)
            .into_iter()
            .map(|r| format!("{}/{}", r.host, r.check))
            .collect()
    };
    let query = HistoryQuery::default;
    assert_eq!(
        hosts(HistoryQuery {
            check: Some("tcp".into()),
            ..query()
        }),
        ["n1/tcp"]
    );
    assert_eq!(
        hosts(HistoryQuery {
            state: Some(Warning),
            ..query()
        }),
        ["n2/disk", "n1/http"]
    );
    assert_eq!(
        hosts(HistoryQuery {
            kind: Some(Kind::AgentStale),
            ..query()
        }),
        ["n3/"]
    );
    assert_eq!(
        hosts(HistoryQuery {
            from_ms: Some(1_500),
            to_ms: Some(2_500),
            ..query()
        }),
        ["n2/disk", "n1/http"]
    );
    assert_eq!(
        hosts(HistoryQuery {
            allowed_namespaces: Some(vec!["shop".into()]),
            ..query()
        }),
        ["n1/http", "n1/tcp"],
        "billing and the agent record are not shop's"
    );
    assert_eq!(
        hosts(HistoryQuery {
            namespace: Some("billing".into()),
            ..query()
        }),
        ["n2/disk"]
    );
}

pub fn availability_splits_the_range_by_state(store: &dyn Store) {
    use CheckState::*;
    store
        .write(&records(vec![
            change("n1", "tcp", 1, 0, Ok, Ok),
            change("n1", "tcp", 2, 600, Ok, Critical),
            change("n1", "tcp", 3, 900, Critical, Ok),
            change("n2", "tcp", 1, 500, Ok, Ok),
        ]))
        .unwrap();
    let query = AvailabilityQuery {
        namespace: "shop".into(),
        rule_set: "web".into(),
        from_ms: 100,
        to_ms: 1_100,
        ..Default::default()
    };
    let availability = store.availability(&query).unwrap();
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
            host: Some("n2".into()),
            ..query
        })
        .unwrap();
    assert_eq!(one.checks.len(), 1);
}

pub fn last_state(writer: &str, writer_sequence: u64, at_ms: u64, state: CheckState) -> LastState {
    LastState {
        key: CheckKey::new(
            "n1",
            &CheckId {
                namespace: "shop".into(),
                rule_set: "web".into(),
                rule: "tcp".into(),
            },
        ),
        zone: Some("z".into()),
        state,
        hard: true,
        last_hard: state,
        output: state.name().to_owned(),
        at_ms,
        since_ms: at_ms - 1_000,
        writer: writer.into(),
        writer_sequence,
    }
}

pub fn last_states_are_replaced_and_read_back(store: &dyn Store) {
    let first = last_state("n1", 7, 5_000, CheckState::Critical);
    store
        .write(&Write {
            last_states: vec![first],
            ..Write::default()
        })
        .unwrap();
    let newer = last_state("n1", 8, 6_000, CheckState::Ok);
    store
        .write(&Write {
            last_states: vec![newer.clone()],
            ..Write::default()
        })
        .unwrap();
    assert_eq!(store.last_states().unwrap(), [newer]);
    assert_eq!(store.namespaces().unwrap(), ["shop"]);
}

pub fn retention_removes_old_records_in_batches_then_the_oldest_past_the_size_limit(
    store: &dyn Store,
) {
    use CheckState::*;
    let many: Vec<Record> = (0..1_000)
        .map(|i| change("n1", "tcp", i, i * 1_000, Ok, Critical))
        .collect();
    store.write(&records(many)).unwrap();
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
    let oldest = all(store, HistoryQuery::default()).last().unwrap().at_ms;
    assert_eq!(oldest, 500_000);
    let by_size = Retention {
        max_age_ms: u64::MAX,
        max_bytes: 1,
    };
    let pruned = store.prune(&by_size, 1_000_000, 100).unwrap();
    assert_eq!(pruned.by_size, 100);
    assert_eq!(
        all(store, HistoryQuery::default()).last().unwrap().at_ms,
        600_000
    );
}

/// A version-1 store's rows (before series): two checks of one host and an agent record, as
/// SQL both stores run after their version-1 migration.
pub const VERSION_1_ROWS: &str = "INSERT INTO records (kind, at_ms, source, sequence, namespace, \
     zone, host, rule_set, check_name, state, previous, hard, message, detail) VALUES \
     ('state_change', 1000, 'n1', 1, 'shop', 'z', 'n1', 'web', 'tcp', 2, 0, 1, 'tcp is CRITICAL', '{\"attempt\":1}'), \
     ('state_change', 2000, 'n1', 2, 'shop', 'z', 'n1', 'web', 'tcp', 0, 2, 1, 'tcp is OK', '{\"attempt\":1}'), \
     ('state_change', 1500, 'n1', 3, 'shop', 'z', 'n1', 'web', 'http', 1, 0, 1, 'http is WARNING', '{\"attempt\":1}'), \
     ('agent_fresh', 500, 'n1', 9, '', 'z', 'n1', '', '', NULL, NULL, NULL, 'connected', 'null')";

/// After the migration from version 1: every row reads back with its fields, filters and
/// availability see them, a resent record is still a no-op and a new one follows.
pub fn a_version_1_store_reads_back_after_migration(store: &dyn Store) {
    let everything = all(store, HistoryQuery::default());
    let summary: Vec<(u64, &str, &str, &str)> = everything
        .iter()
        .map(|r| {
            (
                r.at_ms,
                r.host.as_str(),
                r.check.as_str(),
                r.message.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (2000, "n1", "tcp", "tcp is OK"),
            (1500, "n1", "http", "http is WARNING"),
            (1000, "n1", "tcp", "tcp is CRITICAL"),
            (500, "n1", "", "connected"),
        ]
    );
    assert_eq!(everything[0].detail, serde_json::json!({ "attempt": 1 }));
    assert_eq!(everything[3].kind, Kind::AgentFresh);
    let tcp = all(
        store,
        HistoryQuery {
            namespace: Some("shop".into()),
            rule_set: Some("web".into()),
            check: Some("tcp".into()),
            host: Some("n1".into()),
            ..HistoryQuery::default()
        },
    );
    assert_eq!(tcp.len(), 2);
    let availability = store
        .availability(&AvailabilityQuery {
            namespace: "shop".into(),
            rule_set: "web".into(),
            check: Some("tcp".into()),
            from_ms: 1000,
            to_ms: 3000,
            ..AvailabilityQuery::default()
        })
        .unwrap();
    assert_eq!(availability.ok_share, 0.5);
    let resent = change("n1", "tcp", 2, 2000, CheckState::Critical, CheckState::Ok);
    let next = change("n1", "tcp", 4, 4000, CheckState::Ok, CheckState::Critical);
    store.write(&records(vec![resent, next])).unwrap();
    let everything = store
        .history(&HistoryQuery {
            limit: 100,
            ..HistoryQuery::default()
        })
        .unwrap()
        .records;
    assert_eq!(everything.len(), 5, "the resent record is stored once");
    assert!(
        everything[0].id > everything[1..].iter().map(|r| r.id).max().unwrap(),
        "a new record's id follows the migrated ones"
    );
}

fn outbox_entry(key: &str, created_ms: u64) -> vedette_history::OutboxEntry {
    vedette_history::OutboxEntry {
        key: key.into(),
        receiver: "shop/on-call".into(),
        created_ms,
        payload: format!("{{\"key\":\"{key}\"}}"),
    }
}

pub fn the_outbox_keeps_what_is_not_done_and_a_done_key_is_not_added_again(store: &dyn Store) {
    use vedette_history::OutboxChange::{Add, Done};
    let (a, b) = (outbox_entry("a", 1_000), outbox_entry("b", 2_000));
    store
        .write(&Write {
            outbox: vec![Add(b.clone()), Add(a.clone())],
            ..Write::default()
        })
        .unwrap();
    assert_eq!(
        store.outbox().unwrap(),
        [a.clone(), b.clone()],
        "oldest first"
    );
    store
        .write(&Write {
            records: vec![change(
                "n1",
                "tcp",
                1,
                3_000,
                CheckState::Ok,
                CheckState::Critical,
            )],
            outbox: vec![Done {
                key: "a".into(),
                at_ms: 3_000,
            }],
            ..Write::default()
        })
        .unwrap();
    assert_eq!(store.outbox().unwrap(), std::slice::from_ref(&b));
    let asked = ["a".to_owned(), "b".to_owned(), "c".to_owned()];
    assert_eq!(store.outbox_pending(&asked).unwrap(), ["b"]);
    store
        .write(&Write {
            outbox: vec![Add(outbox_entry("a", 4_000))],
            ..Write::default()
        })
        .unwrap();
    assert_eq!(
        store.outbox().unwrap(),
        std::slice::from_ref(&b),
        "a key already done is not sent again"
    );
    assert!(
        store.fence(2).unwrap(),
        "a first holder claims generation 2"
    );
    assert!(store.fence(2).unwrap(), "and keeps it");
    assert!(store.fence(3).unwrap(), "a later holder takes over");
    assert!(!store.fence(2).unwrap(), "the deposed holder is fenced off");
    assert!(store.fence(3).unwrap());
    let retention = vedette_history::Retention::default();
    let week = vedette_history::outbox::DONE_KEPT_MS;
    store.prune(&retention, 3_000 + week - 1, 100).unwrap();
    store
        .write(&Write {
            outbox: vec![Add(outbox_entry("a", 5_000))],
            ..Write::default()
        })
        .unwrap();
    assert_eq!(
        store.outbox().unwrap().len(),
        1,
        "the tombstone is kept a week"
    );
    store.prune(&retention, 3_000 + week + 1, 100).unwrap();
    store
        .write(&Write {
            outbox: vec![Add(outbox_entry("a", 6_000))],
            ..Write::default()
        })
        .unwrap();
    assert_eq!(
        store.outbox().unwrap(),
        [b, outbox_entry("a", 6_000)],
        "after a week the key is free again"
    );
}
