//! The shared store on a real PostgreSQL server (Debian's, started by the test): the store
//! contract, two masters writing one database (a record stored once, an older last state never
//! replacing a newer one, migrations once), a schema newer than the binary refused, and a
//! server restart in the middle of writes: the writer retries until the server is back and
//! loses nothing.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::postgres_server::PostgresServer;
use common::*;
use vedette_crds::CheckState;
use vedette_history::store::Write;
use vedette_history::{PostgresStore, Store, Writer};

#[test]
fn the_store_contract_holds_on_postgres() {
    let server = PostgresServer::start();
    type Contract = fn(&dyn Store);
    let contracts: [(&str, Contract); 6] = [
        (
            "natural_key",
            a_record_written_twice_is_stored_once_and_pages_follow_the_agents_order,
        ),
        (
            "filters",
            filters_narrow_by_every_field_and_unreadable_namespaces_are_hidden,
        ),
        ("availability", availability_splits_the_range_by_state),
        ("last_states", last_states_are_replaced_and_read_back),
        (
            "retention",
            retention_removes_old_records_in_batches_then_the_oldest_past_the_size_limit,
        ),
        (
            "outbox",
            the_outbox_keeps_what_is_not_done_and_a_done_key_is_not_added_again,
        ),
    ];
    for (name, contract) in contracts {
        let store = PostgresStore::open(&server.database(name)).unwrap();
        contract(&store);
    }
}

#[test]
fn two_masters_share_one_database_and_the_older_last_state_loses() {
    let server = PostgresServer::start();
    let url = server.database("shared");
    let (first, second) = std::thread::scope(|scope| {
        let a = scope.spawn(|| PostgresStore::open(&url).unwrap());
        let b = scope.spawn(|| PostgresStore::open(&url).unwrap());
        (a.join().unwrap(), b.join().unwrap())
    });
    let record = change("n1", "tcp", 1, 1_000, CheckState::Ok, CheckState::Critical);
    for store in [&first, &second] {
        store.write(&records(vec![record.clone()])).unwrap();
    }
    assert_eq!(
        first.count().unwrap(),
        1,
        "the second writer's record is a no-op"
    );
    let newer = last_state("n1", 9, 9_000, CheckState::Ok);
    let older = last_state("n1", 8, 8_000, CheckState::Critical);
    let by_time = last_state("n2", 1, 7_000, CheckState::Warning);
    let write = |store: &PostgresStore, last| {
        store
            .write(&Write {
                last_states: vec![last],
                ..Write::default()
            })
            .unwrap()
    };
    write(&first, newer.clone());
    write(&second, older);
    assert_eq!(
        second.last_states().unwrap(),
        std::slice::from_ref(&newer),
        "the same writer's lower sequence loses"
    );
    write(&second, by_time);
    assert_eq!(
        first.last_states().unwrap(),
        [newer],
        "another writer's earlier time loses"
    );
}

#[test]
fn a_version_1_database_is_migrated_keeping_every_record() {
    let server = PostgresServer::start();
    let url = server.database("version1");
    let sql = format!(
        "BEGIN; {} {VERSION_1_ROWS}; \
         CREATE TABLE vedette_schema (version BIGINT NOT NULL); \
         INSERT INTO vedette_schema VALUES (1); COMMIT;",
        vedette_history::postgres::MIGRATIONS[0]
    );
    let status = std::process::Command::new("psql")
        .args([&url, "-q", "-v", "ON_ERROR_STOP=1", "-c", &sql])
        .status()
        .unwrap();
    assert!(status.success());
    let store = PostgresStore::open(&url).unwrap();
    a_version_1_store_reads_back_after_migration(&store);
}

#[test]
fn a_newer_schema_is_refused_and_a_bad_url_is_named_without_its_password() {
    let server = PostgresServer::start();
    let url = server.database("future");
    drop(PostgresStore::open(&url).unwrap());
    let status = std::process::Command::new("psql")
        .args([&url, "-qc", "UPDATE vedette_schema SET version = 99"])
        .status()
        .unwrap();
    assert!(status.success());
    let message = PostgresStore::open(&url).err().unwrap().to_string();
    assert!(
        message.contains(&format!(
            "schema version 99, newer than the {}",
            vedette_history::postgres::MIGRATIONS.len()
        )),
        "{message}"
    );
    let unreachable = "postgres://vedette:s3cret@127.0.0.1:1/none";
    let message = PostgresStore::open(unreachable).err().unwrap().to_string();
    assert!(
        message.contains("postgres://vedette:***@127.0.0.1:1/none"),
        "{message}"
    );
    assert!(!message.contains("s3cret"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_waits_out_a_server_restart_and_loses_nothing() {
    let server = PostgresServer::start();
    let store: Arc<dyn Store> = Arc::new(PostgresStore::open(&server.database("restart")).unwrap());
    let writer = Writer::start(store.clone());
    let before = (0..100).map(|i| change("n1", "tcp", i, i, CheckState::Ok, CheckState::Critical));
    writer
        .submit(records(before.collect()))
        .durable()
        .await
        .unwrap();

    server.stop_immediately();
    let during =
        (100..200).map(|i| change("n1", "tcp", i, i, CheckState::Ok, CheckState::Critical));
    let pending = writer.submit(records(during.collect()));
    let waiting = tokio::spawn(pending.durable());
    let began = Instant::now();
    while writer
        .stats()
        .failures
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
    {
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "the failed commit is counted"
        );
        assert!(
            !waiting.is_finished(),
            "not durable while the server is down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !waiting.is_finished(),
        "not durable while the server is down"
    );

    server.start_again();
    let began = Instant::now();
    waiting.await.unwrap().unwrap();
    eprintln!("durable {:?} after the server was back", began.elapsed());
    assert_eq!(store.count().unwrap(), 200);
}
