//! The writer: one thread that owns the store's writes and commits them in groups, in the
//! order they were submitted, each caller told when its write is durable.
//!
//! **Why a group.** A synced commit costs one fsync whatever it holds; writes submitted while
//! one commit runs go into the next, so throughput grows with load while each write waits for
//! at most two commits.
//!
//! **Order and retries.** Writes are committed in submission order. A commit that fails is
//! retried (with a growing pause, up to [`MAX_RETRY_PAUSE`]) until it succeeds, never
//! skipped: so when a caller is told its write is durable, every write submitted before it is
//! durable too. The masters rely on this: they submit a batch's write while holding their
//! merge lock, and acknowledge the batch only when the write is durable — a resent batch that
//! the merge deduplicates still waits behind the write of its first delivery.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
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

/// The submitting side; cheap to clone. The thread ends when every clone is dropped, after
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
        let thread_stats = stats.clone();
        std::thread::Builder::new()
            .name("history-writer".into())
            .spawn(move || run(store.as_ref(), &receiver, &thread_stats))
            .expect("spawn the history writer thread");
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

fn run(store: &dyn Store, requests: &mpsc::Receiver<Request>, stats: &WriterStats) {
    while let Ok(first) = requests.recv() {
        let mut group = Write::default();
        let mut waiting = Vec::new();
        let mut next = Some(first);
        while let Some(request) = next.take() {
            group.extend(request.write);
            waiting.push(request.done);
            if group.records.len() < MAX_GROUP_RECORDS {
                next = requests.try_recv().ok();
            }
        }
        commit(store, &group, stats);
        stats
            .records
            .fetch_add(group.records.len() as u64, Ordering::Relaxed);
        stats
            .queued
            .fetch_sub(waiting.len() as u64, Ordering::Relaxed);
        for done in waiting {
            let _ = done.send(());
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
