//! The embedded store on a real SQLite file: the store contract (natural keys, pages in the
//! order things happened, filters, availability, last states, retention), a reopened file, a
//! schema newer than the binary refused untouched, and the writer's order.

mod common;

use std::sync::Arc;

use common::*;
use vedette_crds::CheckState;
use vedette_history::store::Write;
use vedette_history::{SqliteStore, Store, Writer};

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("history").join("vedette.db")).unwrap();
    (dir, store)
}

#[test]
fn a_record_written_twice_is_stored_once_and_pages_follow_the_agents_order() {
    let (_dir, store) = open();
    common::a_record_written_twice_is_stored_once_and_pages_follow_the_agents_order(&store);
}

#[test]
fn filters_narrow_by_every_field_and_unreadable_namespaces_are_hidden() {
    let (_dir, store) = open();
    common::filters_narrow_by_every_field_and_unreadable_namespaces_are_hidden(&store);
}

#[test]
fn availability_splits_the_range_by_state() {
    let (_dir, store) = open();
    common::availability_splits_the_range_by_state(&store);
}

#[test]
fn last_states_are_replaced_and_read_back() {
    let (_dir, store) = open();
    common::last_states_are_replaced_and_read_back(&store);
}

#[test]
fn the_outbox_keeps_what_is_not_done_and_a_done_key_is_not_added_again() {
    let (_dir, store) = open();
    common::the_outbox_keeps_what_is_not_done_and_a_done_key_is_not_added_again(&store);
}

#[test]
fn retention_removes_old_records_in_batches_then_the_oldest_past_the_size_limit() {
    let (_dir, store) = open();
    common::retention_removes_old_records_in_batches_then_the_oldest_past_the_size_limit(&store);
}

#[test]
fn last_states_survive_reopening_and_a_newer_schema_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vedette.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        let last = last_state("n1", 8, 6_000, CheckState::Ok);
        store
            .write(&Write {
                last_states: vec![last],
                ..Write::default()
            })
            .unwrap();
    }
    assert_eq!(
        SqliteStore::open(&path).unwrap().last_states().unwrap()[0].writer_sequence,
        8
    );
    {
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection.pragma_update(None, "user_version", 99).unwrap();
        connection
            .pragma_update(None, "journal_mode", "DELETE")
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let error = SqliteStore::open(&path)
        .err()
        .expect("a newer schema is refused");
    let message = error.to_string();
    assert!(
        message.contains(&format!(
            "schema version 99, newer than the {}",
            vedette_history::sqlite::MIGRATIONS.len()
        )),
        "{message}"
    );
    assert!(
        std::fs::read(&path).unwrap() == before,
        "the file is not changed"
    );
}

#[test]
fn a_version_1_file_is_migrated_keeping_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vedette.db");
    {
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection
            .execute_batch(vedette_history::sqlite::MIGRATIONS[0])
            .unwrap();
        connection.execute_batch(VERSION_1_ROWS).unwrap();
        connection.pragma_update(None, "user_version", 1).unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    a_version_1_store_reads_back_after_migration(&store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_commits_every_submitted_write_and_reports_durability_in_order() {
    let (_dir, store) = open();
    let store: Arc<dyn Store> = Arc::new(store);
    let writer = Writer::start(store.clone());
    let mut pending = Vec::new();
    for i in 0..500u64 {
        let record = change("n1", "tcp", i, i, CheckState::Ok, CheckState::Critical);
        pending.push(writer.submit(records(vec![record])));
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
