//! A history that cannot write does not grow the masters' memory: once
//! `MAX_QUEUED_HISTORY_WRITES` writes wait, a new batch is refused before it is applied (the
//! satellite keeps it spooled and resends), and once the store writes again every waiting
//! batch is acknowledged and the refused one is taken on its resend. The store is a gate in
//! front of a real SQLite file: writes wait until the test opens it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use vedette_crds::CheckState;
use vedette_history::query::{Availability, AvailabilityQuery, HistoryPage, HistoryQuery};
use vedette_history::store::{Pruned, Retention};
use vedette_history::{Error, LastState, SqliteStore, Store, Write};
use vedette_operator::masters::stream::BusBuilder;
use vedette_operator::masters::{History, MAX_QUEUED_HISTORY_WRITES, Masters, ReceiveError};
use vedette_protocol::forward::Forwarded;
use vedette_protocol::plan::CheckId;
use vedette_protocol::report::{Batch, CheckReport, Envelope, Report};

/// SQLite behind a gate: `write` waits while it is closed.
struct Gated {
    inner: SqliteStore,
    open: Mutex<bool>,
    opened: Condvar,
}

impl Store for Gated {
    fn write(&self, write: &Write) -> Result<(), Error> {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
        drop(open);
        self.inner.write(write)
    }
    fn last_states(&self) -> Result<Vec<LastState>, Error> {
        self.inner.last_states()
    }
    fn history(&self, query: &HistoryQuery) -> Result<HistoryPage, Error> {
        self.inner.history(query)
    }
    fn availability(&self, query: &AvailabilityQuery) -> Result<Availability, Error> {
        self.inner.availability(query)
    }
    fn prune(&self, retention: &Retention, now_ms: u64, batch: usize) -> Result<Pruned, Error> {
        self.inner.prune(retention, now_ms, batch)
    }
    fn outbox(&self) -> Result<Vec<vedette_history::OutboxEntry>, Error> {
        self.inner.outbox()
    }
    fn outbox_pending(&self, keys: &[String]) -> Result<Vec<String>, Error> {
        self.inner.outbox_pending(keys)
    }
    fn fence(&self, generation: u64) -> Result<bool, Error> {
        self.inner.fence(generation)
    }
    fn namespaces(&self) -> Result<Vec<String>, Error> {
        self.inner.namespaces()
    }
    fn count(&self) -> Result<u64, Error> {
        self.inner.count()
    }
    fn used_bytes(&self) -> Result<u64, Error> {
        self.inner.used_bytes()
    }
}

/// Satellite `satellite`'s batch holding one state change of agent `node-<satellite>`.
fn batch(satellite: u64) -> Batch<Forwarded> {
    let agent = format!("node-{satellite}");
    Batch {
        agent: format!("satellite-{satellite}"),
        floor: 1,
        entries: vec![Envelope {
            sequence: 1,
            report: Forwarded::Agent {
                agent: agent.clone(),
                sequence: 1,
                report: Report::StateChange(CheckReport {
                    check: CheckId {
                        namespace: "shop".into(),
                        rule_set: "web".into(),
                        rule: "tcp".into(),
                    },
                    host: agent,
                    state: CheckState::Critical,
                    hard: true,
                    attempt: 1,
                    previous_state: CheckState::Ok,
                    output: "refused".into(),
                    duration_ms: 1,
                    at_ms: 1_800_000_000_000,
                }),
            },
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_that_cannot_write_refuses_new_batches_and_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let gated = Arc::new(Gated {
        inner: SqliteStore::open(&dir.path().join("history.db")).unwrap(),
        open: Mutex::new(false),
        opened: Condvar::new(),
    });
    let history = History::over(gated.clone());
    let writer = history.writer.clone();
    let metrics = Arc::new(vedette_operator::metrics::Metrics::new(
        &mut prometheus_client::registry::Registry::default(),
    ));
    let mut topology = BusBuilder::default();
    let mut events = topology.subscribe("test", 65_536);
    let bus = topology.build(metrics.clone()).unwrap();
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    let masters = Arc::new(
        Masters::new(
            vedette_satellite::auth::Auth::Disabled,
            "",
            bus,
            metrics,
            Some(history),
        )
        .unwrap(),
    );

    let mut waiting = Vec::new();
    for satellite in 0..MAX_QUEUED_HISTORY_WRITES {
        let masters = masters.clone();
        waiting.push(tokio::spawn(async move {
            masters.receive(batch(satellite)).await
        }));
    }
    let began = Instant::now();
    while writer.stats().queued.load(Ordering::Relaxed) < MAX_QUEUED_HISTORY_WRITES {
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "the batches were not submitted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let applied = masters.state().applied().entries;

    let refused = masters.receive(batch(MAX_QUEUED_HISTORY_WRITES)).await;
    assert!(
        matches!(refused, Err(ReceiveError::Behind { queued }) if queued == MAX_QUEUED_HISTORY_WRITES),
        "{refused:?}"
    );
    assert_eq!(
        masters.state().applied().entries,
        applied,
        "a refused batch is not applied"
    );

    *gated.open.lock().unwrap() = true;
    gated.opened.notify_all();
    for task in waiting {
        task.await
            .unwrap()
            .expect("every waiting batch is acknowledged");
    }
    masters
        .receive(batch(MAX_QUEUED_HISTORY_WRITES))
        .await
        .expect("the resend is taken");
    assert_eq!(
        gated.count().unwrap(),
        MAX_QUEUED_HISTORY_WRITES + 1,
        "every state change is in the history, once"
    );
}
