//! The writer: the threads that own the store's writes (one, or [`Store::concurrent_writes`])
//! and commit them in groups, in the order they were submitted, each caller told when its
//! write is durable.
//!
//! **Why a group.** A synced commit costs one fsync whatever it holds; writes submitted while
//! one commit runs go into the next, so throughput grows with load while each write waits for
//! at most two commits.
//!
//! **Order and retries.** Writes are grouped in submission order. A commit that fails is
//! retried (with a growing pause, up to [`MAX_RETRY_PAUSE`]) until it succeeds, never
//! skipped. A store that takes concurrent writes ([`Store::concurrent_writes`], PostgreSQL)
//! commits that many groups at once, and callers are still told in submission order: so when a
//! caller is told its write is durable, every write submitted before it is durable too. The masters rely on this: they submit a batch's write while holding their
//! merge lock, and acknowledge the batch only when the write is durable — a resent batch that
//! the merge deduplicates still waits behind the write of its first delivery.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::store::{Store, Write};

/// Most records one commit holds.
pub const MAX_GROUP_RECORDS: usize = 20_000;
/// Longest pause between retries of a failed commit.
pub const MAX_RETRY_PAUSE: Duration = Duration::from_secs(30);

struct Request {
    write: Write,
    done: oneshot::Sender<()>,
}

/// What the writer did, for `/metrics`.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Commits that succeeded.
    pub commits: AtomicU64,
    /// Records written (including ones already stored).
    pub records: AtomicU64,
    /// Commits that failed (and were retried).
    pub failures: AtomicU64,
    /// Writes submitted and not yet durable.
    pub queued: AtomicU64,
}

/// The submitting side; cheap to clone. The threads end when every clone is dropped, after
/// committing what was submitted.
#[derive(Clone)]
pub struct Writer {
    requests: mpsc::Sender<Request>,
    stats: Arc<WriterStats>,
}

/// A submitted write; await it for its durability.
pub struct Pending(oneshot::Receiver<()>);

/// The writer's thread stopped (it panicked): the write may not be durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the history writer stopped")]
pub struct WriterStopped;

impl Pending {
    /// Waits until the write is durable.
    pub async fn durable(self) -> Result<(), WriterStopped> {
        self.0.await.map_err(|_| WriterStopped)
    }

    /// Waits, blocking the thread, until the write is durable.
    pub fn blocking_durable(self) -> Result<(), WriterStopped> {
        self.0.blocking_recv().map_err(|_| WriterStopped)
    }
}

impl Writer {
    /// Starts the writer's thread over `store`.
    pub fn start(store: Arc<dyn Store>) -> Writer {
        let (requests, receiver) = mpsc::channel::<Request>();
        let stats = Arc::new(WriterStats::default());
        let intake = Arc::new(Mutex::new(Intake {
            requests: receiver,
            next_group: 0,
        }));
        let released = Arc::new(Mutex::new(Release::default()));
        for index in 0..store.concurrent_writes().max(1) {
            let (store, intake, released, stats) = (
                store.clone(),
                intake.clone(),
                released.clone(),
                stats.clone(),
            );
            std::thread::Builder::new()
                .name(format!("history-writer-{index}"))
                .spawn(move || run(store.as_ref(), &intake, &released, &stats))
                .expect("spawn a history writer thread");
        }
        Writer { requests, stats }
    }

    /// Submits `write`; it is committed after everything submitted before it.
    pub fn submit(&self, write: Write) -> Pending {
        let (done, receiver) = oneshot::channel();
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        // A send fails only when the thread is gone; `done` is dropped with the request and the
        // caller learns it from `durable`.
        let _ = self.requests.send(Request { write, done });
        Pending(receiver)
    }

    /// What the writer did.
    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }
}

/// The submitted writes and the number of the next group; a committer holds it while it
/// forms a group (so writes submitted while others commit go into the next group).
struct Intake {
    requests: mpsc::Receiver<Request>,
    next_group: u64,
}

impl Intake {
    /// The next group and its number; `None` when every `Writer` is gone.
    fn next(&mut self) -> Option<(u64, Write, Vec<oneshot::Sender<()>>)> {
        let first = self.requests.recv().ok()?;
        let mut group = Write::default();
        let mut waiting = Vec::new();
        let mut next = Some(first);
        while let Some(request) = next.take() {
            group.extend(request.write);
            waiting.push(request.done);
            if group.records.len() < MAX_GROUP_RECORDS {
                next = self.requests.try_recv().ok();
            }
        }
        let number = self.next_group;
        self.next_group += 1;
        Some((number, group, waiting))
    }
}

fn run(store: &dyn Store, intake: &Mutex<Intake>, released: &Mutex<Release>, stats: &WriterStats) {
    loop {
        let next = intake.lock().unwrap_or_else(PoisonError::into_inner).next();
        let Some((number, group, waiting)) = next else {
            return;
        };
        commit(store, &group, stats);
        stats
            .records
            .fetch_add(group.records.len() as u64, Ordering::Relaxed);
        released
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .committed(number, waiting, stats);
    }
}

/// Tells callers their writes are durable in submission order, whichever committer finished
/// first: group `n`'s callers only once every group before `n` has committed.
#[derive(Default)]
struct Release {
    next: u64,
    committed: BTreeMap<u64, Vec<oneshot::Sender<()>>>,
}

impl Release {
    fn committed(&mut self, number: u64, waiting: Vec<oneshot::Sender<()>>, stats: &WriterStats) {
        self.committed.insert(number, waiting);
        while let Some(waiting) = self.committed.remove(&self.next) {
            stats
                .queued
                .fetch_sub(waiting.len() as u64, Ordering::Relaxed);
            for done in waiting {
                let _ = done.send(());
            }
            self.next += 1;
        }
    }
}

/// Commits `group`, retrying until it succeeds.
fn commit(store: &dyn Store, group: &Write, stats: &WriterStats) {
    let mut pause = Duration::from_millis(100);
    loop {
        match store.write(group) {
            Ok(()) => {
                stats.commits.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(error) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    message = "A history commit failed; retrying. Batches are not acknowledged meanwhile.",
                    error = %error,
                    retry_in_ms = pause.as_millis() as u64,
                );
                std::thread::sleep(pause);
                pause = (pause * 2).min(MAX_RETRY_PAUSE);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::last_state::LastState;
    use crate::query::{Availability, AvailabilityQuery, HistoryPage, HistoryQuery};
    use crate::store::{Error, Pruned, Retention};

    /// A store taking two writes at once whose first write is slow.
    #[derive(Default)]
    struct SlowFirst {
        writes: AtomicU64,
        first_done: AtomicBool,
    }

    impl Store for SlowFirst {
        fn write(&self, _: &Write) -> Result<(), Error> {
            if self.writes.fetch_add(1, Ordering::SeqCst) == 0 {
                std::thread::sleep(Duration::from_millis(300));
                self.first_done.store(true, Ordering::SeqCst);
            }
            Ok(())
        }
        fn last_states(&self) -> Result<Vec<LastState>, Error> {
            Ok(Vec::new())
        }
        fn history(&self, _: &HistoryQuery) -> Result<HistoryPage, Error> {
            unreachable!()
        }
        fn availability(&self, _: &AvailabilityQuery) -> Result<Availability, Error> {
            unreachable!()
        }
        fn prune(&self, _: &Retention, _: u64, _: usize) -> Result<Pruned, Error> {
            Ok(Pruned::default())
        }
        fn outbox(&self) -> Result<Vec<crate::OutboxEntry>, Error> {
            Ok(Vec::new())
        }
        fn outbox_pending(&self, _: &[String]) -> Result<Vec<String>, Error> {
            Ok(Vec::new())
        }
        fn fence(&self, _: u64) -> Result<bool, Error> {
            Ok(true)
        }
        fn namespaces(&self) -> Result<Vec<String>, Error> {
            Ok(Vec::new())
        }
        fn count(&self) -> Result<u64, Error> {
            Ok(0)
        }
        fn used_bytes(&self) -> Result<u64, Error> {
            Ok(0)
        }
        fn concurrent_writes(&self) -> usize {
            2
        }
    }

    fn one_state() -> Write {
        Write {
            last_states: vec![LastState {
                key: vedette_protocol::merge::CheckKey {
                    host: "n1".into(),
                    check: vedette_protocol::plan::CheckId {
                        namespace: "shop".into(),
                        rule_set: "web".into(),
                        rule: "tcp".into(),
                    },
                },
                zone: None,
                state: vedette_crds::CheckState::Ok,
                hard: true,
                last_hard: vedette_crds::CheckState::Ok,
                output: String::new(),
                at_ms: 1,
                since_ms: 1,
                writer: "n1".into(),
                writer_sequence: 1,
            }],
            ..Write::default()
        }
    }

    #[test]
    fn a_write_committed_beside_a_slower_earlier_one_is_durable_only_after_it() {
        let store = Arc::new(SlowFirst::default());
        let writer = Writer::start(store.clone());
        let first = writer.submit(one_state());
        // Let a committer take the first write alone, then submit the second.
        while store.writes.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let second = writer.submit(one_state());
        second.blocking_durable().unwrap();
        assert_eq!(
            store.writes.load(Ordering::SeqCst),
            2,
            "both were committed"
        );
        assert!(
            store.first_done.load(Ordering::SeqCst),
            "the second write was reported durable before the first"
        );
        first.blocking_durable().unwrap();
    }
}
