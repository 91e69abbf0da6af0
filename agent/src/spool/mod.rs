//! The agent's durable spool: state changes, keepalives and result batches wait here, on disk,
//! until the upstream acknowledges them.
//!
//! * **Append** ([`Spool::append`]) returns a sequence number only after the record is
//!   fdatasynced: one writer thread group-commits whatever is queued (see `writer`).
//! * **Send** with [`Spool::peek`] (oldest first, nothing removed) and [`Spool::ack`] once the
//!   upstream has them; acknowledged segments are deleted.
//! * **Retention** ([`Spool::enforce_retention`], and after every commit for the byte limit)
//!   drops the oldest entries, lowest [`Priority`] first, and counts every drop.
//! * **Recovery** on [`Spool::open`] checks every frame's CRC, cuts torn tails, skips damaged
//!   regions it can resynchronise past, and continues the sequence numbers.
//! * **Closing** ([`Spool::close`], a process shutting down) refuses further appends and
//!   waits until everything queued is committed; readers still read and acknowledge, and a
//!   send loop seeing [`Spool::is_closed`] drains what is left without its replay limit.
//!
//! * **Readers** that each need every entry (a satellite's masters) keep their own cursor with
//!   [`Spool::peek_after`] and [`cursors::CursorStore`]; the spool itself only knows what all
//!   of them acknowledged ([`Spool::ack`]).
//!
//! Layout of the directory: `lock`, `position` (acknowledged and dropped watermarks), one
//! directory of segments per priority (`result/`, `keepalive/`, `state_change/`), and
//! `cursors/` (one file per reader, when there are readers with their own cursor).

pub mod command;
pub mod cursors;
mod error;
pub mod frame;
mod position;
pub mod segment;
mod stats;
mod store;
mod writer;

use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{oneshot, watch};

pub use error::{Error, Result};
pub use frame::{FRAME_OVERHEAD, Priority};
pub use stats::{PerPriority, RecoveryReport, SpoolStats};

use store::{Limits, State};
use writer::{Job, Request, Writer, WriterConfig};

/// Where a spool lives and the limits it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    /// Directory holding the spool (created if missing).
    pub dir: PathBuf,
    /// Retention: most bytes of waiting entries (frames included) before the oldest are dropped.
    pub max_bytes: u64,
    /// Retention: entries older than this are dropped.
    pub max_age_seconds: u64,
    /// A segment file is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// Largest payload accepted by [`Spool::append`] (at most 16 MiB, the format's limit).
    pub max_record_bytes: usize,
    /// Most records in one group commit.
    pub max_batch_records: usize,
    /// Most payload bytes in one group commit (one record may exceed it).
    pub max_batch_bytes: usize,
    /// Testing aid: split every write into pieces of this size, so a kill is likely to leave
    /// a torn record behind. `None` writes each batch at once.
    pub write_chunk_bytes: Option<usize>,
}

impl SpoolConfig {
    /// Defaults for a spool in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> SpoolConfig {
        SpoolConfig {
            dir: dir.into(),
            max_bytes: default_max_bytes(),
            max_age_seconds: default_max_age_seconds(),
            segment_bytes: default_segment_bytes(),
            max_record_bytes: default_max_record_bytes(),
            max_batch_records: 4096,
            max_batch_bytes: 4 * 1024 * 1024,
            write_chunk_bytes: None,
        }
    }
}

/// Default byte limit: the zone's default `spoolMaxBytes` (256 MiB).
pub fn default_max_bytes() -> u64 {
    vedette_crds::zone::DEFAULT_SPOOL_MAX_BYTES
}

/// Default age limit: the zone's default `spoolMaxAgeSeconds` (7 days).
pub fn default_max_age_seconds() -> u64 {
    vedette_crds::zone::DEFAULT_SPOOL_MAX_AGE_SECONDS
}

/// Default segment size: 8 MiB (disk space comes back a segment at a time).
pub fn default_segment_bytes() -> u64 {
    8 * 1024 * 1024
}

/// Default largest payload: 1 MiB.
pub fn default_max_record_bytes() -> usize {
    1024 * 1024
}

/// A spooled entry, as [`Spool::peek`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Sequence number: unique and increasing for the lifetime of the spool directory.
    pub sequence: u64,
    /// Priority given at append.
    pub priority: Priority,
    /// Unix time (ms) of the append.
    pub timestamp_ms: u64,
    /// The caller's bytes.
    pub payload: Vec<u8>,
}

/// An append handed to the writer; resolve it to learn when it is durable.
#[derive(Debug)]
pub struct PendingAppend {
    reply: oneshot::Receiver<Result<u64>>,
    dir: Arc<PathBuf>,
}

impl PendingAppend {
    /// Waits until the record is durable and returns its sequence number.
    pub async fn durable(self) -> Result<u64> {
        self.reply
            .await
            .unwrap_or_else(|_| Err(Error::WriterStopped(self.dir.to_path_buf())))
    }

    /// Blocks the thread until the record is durable (not from inside an async runtime).
    pub fn wait(self) -> Result<u64> {
        self.reply
            .blocking_recv()
            .unwrap_or_else(|_| Err(Error::WriterStopped(self.dir.to_path_buf())))
    }
}

/// An open spool; clones share it. Dropping the last clone stops the writer after it has
/// committed what was queued.
#[derive(Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

struct Inner {
    dir: Arc<PathBuf>,
    max_record_bytes: usize,
    state: Arc<Mutex<State>>,
    requests: Option<Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    /// Set once by [`Spool::close`].
    closed: watch::Sender<bool>,
    _lock: File,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Spool {
    /// Opens (or creates) the spool in `config.dir`, recovering what a crash left behind.
    pub fn open(config: SpoolConfig) -> Result<Spool> {
        let dir = config.dir.clone();
        fs::create_dir_all(&dir).map_err(|e| Error::io("create spool directory", &dir, e))?;
        let lock = lock_dir(&dir)?;
        let limits = Limits {
            max_bytes: config.max_bytes,
            max_age_ms: config.max_age_seconds.saturating_mul(1000),
        };
        let state = Arc::new(Mutex::new(State::recover(&dir, limits)?));
        let writer = Writer::new(
            state.clone(),
            WriterConfig {
                segment_bytes: config.segment_bytes,
                max_batch_records: config.max_batch_records.max(1),
                max_batch_bytes: config.max_batch_bytes,
                write_chunk_bytes: config.write_chunk_bytes,
            },
        )?;
        let (requests, receiver) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("spool-writer".into())
            .spawn(move || writer.run(receiver))
            .map_err(|e| Error::io("start spool writer for", &dir, e))?;
        Ok(Spool {
            inner: Arc::new(Inner {
                dir: Arc::new(dir),
                // Recovery treats longer frames as damage, so never write one.
                max_record_bytes: config.max_record_bytes.min(frame::MAX_PAYLOAD_BYTES),
                state,
                requests: Some(requests),
                writer: Some(writer),
                closed: watch::Sender::new(false),
                _lock: lock,
            }),
        })
    }

    /// Directory of the spool.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Appends a record stamped with the current time; resolves once it is durable.
    pub async fn append(&self, priority: Priority, payload: Vec<u8>) -> Result<u64> {
        self.submit(priority, payload)?.durable().await
    }

    /// Appends a record and blocks the thread until it is durable (not from async code).
    pub fn append_blocking(&self, priority: Priority, payload: Vec<u8>) -> Result<u64> {
        self.submit(priority, payload)?.wait()
    }

    /// Queues a record stamped with the current time, without waiting.
    pub fn submit(&self, priority: Priority, payload: Vec<u8>) -> Result<PendingAppend> {
        self.submit_at(priority, now_ms(), payload)
    }

    /// Queues a record with an explicit timestamp (Unix ms), without waiting.
    pub fn submit_at(
        &self,
        priority: Priority,
        timestamp_ms: u64,
        payload: Vec<u8>,
    ) -> Result<PendingAppend> {
        if payload.len() > self.inner.max_record_bytes {
            return Err(Error::RecordTooLarge {
                size: payload.len(),
                max: self.inner.max_record_bytes,
            });
        }
        let (reply, receiver) = oneshot::channel();
        let request = Request {
            priority,
            timestamp_ms,
            payload,
            reply,
        };
        if self.is_closed() {
            return Err(Error::Closed(self.inner.dir.to_path_buf()));
        }
        self.send(Job::Append(request))?;
        Ok(PendingAppend {
            reply: receiver,
            dir: self.inner.dir.clone(),
        })
    }

    fn send(&self, job: Job) -> Result<()> {
        let stopped = || Error::WriterStopped(self.inner.dir.to_path_buf());
        self.inner
            .requests
            .as_ref()
            .ok_or_else(stopped)?
            .send(job)
            .map_err(|_| stopped())
    }

    /// Waits until every append queued so far is committed (durable, or failed).
    pub async fn flush(&self) -> Result<()> {
        let (reply, done) = oneshot::channel();
        self.send(Job::Flush(reply))?;
        done.await
            .map_err(|_| Error::WriterStopped(self.inner.dir.to_path_buf()))
    }

    /// Refuses every append from now on ([`Error::Closed`]) and waits until what was queued
    /// before is committed. Reading and acknowledging go on: what is left can still be sent.
    pub async fn close(&self) -> Result<()> {
        self.inner.closed.send_replace(true);
        self.flush().await
    }

    /// Whether [`Spool::close`] was called.
    pub fn is_closed(&self) -> bool {
        *self.inner.closed.borrow()
    }

    /// Resolves once [`Spool::close`] is called (at once if it was).
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut closed = self.inner.closed.subscribe();
        async move {
            // The sender lives as long as the spool; if it went, nothing can close it.
            if closed.wait_for(|closed| *closed).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// The oldest waiting records in sequence order, without removing them: at most
    /// `max_records`, and at most `max_bytes` of payload unless the first record alone is larger.
    pub fn peek(&self, max_records: usize, max_bytes: usize) -> Result<Vec<Record>> {
        self.state().peek_after(0, max_records, max_bytes)
    }

    /// Like [`Spool::peek`], from the first waiting record above sequence `after` (a reader's
    /// cursor: everything up to it was delivered).
    pub fn peek_after(
        &self,
        after: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<Record>> {
        self.state().peek_after(after, max_records, max_bytes)
    }

    /// The lowest waiting sequence above `after`, or the next sequence to be used when none
    /// waits: a reader at cursor `after` may skip to just below it, because everything in
    /// between is gone (acknowledged, dropped by retention, or lost to a failed commit).
    pub fn next_live_after(&self, after: u64) -> u64 {
        self.state().next_live_after(after)
    }

    /// How many waiting records have a sequence above `after` (a reader's backlog).
    pub fn count_after(&self, after: u64) -> u64 {
        self.state().count_live_after(after)
    }

    /// Records that the upstream has every sequence number up to and including `up_to`:
    /// persists that (fsync) and deletes segments holding nothing else. Acknowledging less
    /// than before is a no-op; more than was ever durable is an error.
    pub fn ack(&self, up_to: u64) -> Result<()> {
        self.state().ack(up_to)
    }

    /// Sets the byte and age limits (a zone's `spoolMaxBytes`, `spoolMaxAgeSeconds`); they
    /// apply from the next commit or [`Spool::enforce_retention`].
    pub fn set_limits(&self, max_bytes: u64, max_age_seconds: u64) {
        self.state().set_limits(Limits {
            max_bytes,
            max_age_ms: max_age_seconds.saturating_mul(1000),
        });
    }

    /// Applies the age and byte limits now; returns what was dropped.
    pub fn enforce_retention(&self) -> Result<PerPriority> {
        self.enforce_retention_at(now_ms())
    }

    /// Applies the age and byte limits as if the time were `now_ms` (Unix ms).
    pub fn enforce_retention_at(&self, now_ms: u64) -> Result<PerPriority> {
        let dropped = self.state().enforce(Some(now_ms))?;
        Ok(PerPriority::from_fn(|priority| dropped[priority.index()]))
    }

    /// Depth, bytes, drops, age of the oldest entry, and what recovery found.
    pub fn stats(&self) -> SpoolStats {
        self.state().stats(now_ms())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join("lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("create lock file", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(Error::Locked(dir.to_path_buf())),
        Err(TryLockError::Error(e)) => Err(Error::io("lock", &path, e)),
    }
}

/// The current Unix time in milliseconds.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_appends_share_group_commits_and_get_increasing_sequences() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(SpoolConfig::new(dir.path())).unwrap();
        let pending: Vec<PendingAppend> = (0..200u8)
            .map(|i| spool.submit(Priority::Result, vec![i; 10]).unwrap())
            .collect();
        let sequences: Vec<u64> = pending.into_iter().map(|p| p.wait().unwrap()).collect();
        assert_eq!(sequences, (1..=200).collect::<Vec<u64>>());
        let stats = spool.stats();
        assert_eq!(stats.depth, 200);
        // 200 appends queued faster than one fdatasync: far fewer commits than appends.
        assert!(
            stats.commits < 50 && stats.fsyncs == stats.commits,
            "{stats:?}"
        );
    }

    #[tokio::test]
    async fn a_closed_spool_commits_what_was_queued_and_refuses_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(SpoolConfig::new(dir.path())).unwrap();
        let queued: Vec<PendingAppend> = (0..50u8)
            .map(|i| spool.submit(Priority::Result, vec![i; 10]).unwrap())
            .collect();
        let closed = spool.closed();
        assert!(!spool.is_closed());
        spool.close().await.unwrap();
        assert!(spool.is_closed());
        closed.await;
        // Everything queued before the close is durable by the time it returns.
        assert_eq!(spool.stats().last_sequence, 50);
        for (i, pending) in queued.into_iter().enumerate() {
            assert_eq!(pending.durable().await.unwrap(), i as u64 + 1);
        }
        let refused = spool.submit(Priority::Result, vec![1]).unwrap_err();
        assert_eq!(refused.metric_label(), "closed");
        assert!(refused.to_string().contains("closed"), "{refused}");
        // Reading and acknowledging go on.
        assert_eq!(spool.peek(100, usize::MAX).unwrap().len(), 50);
        spool.ack(50).unwrap();
        assert_eq!(spool.stats().depth, 0);
    }

    #[test]
    fn new_limits_apply_at_the_next_enforcement() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(SpoolConfig::new(dir.path())).unwrap();
        let now = now_ms();
        for age_seconds in [3_600, 60, 0] {
            spool
                .submit_at(
                    Priority::StateChange,
                    now - age_seconds * 1000,
                    vec![7; 100],
                )
                .unwrap()
                .wait()
                .unwrap();
        }
        spool.enforce_retention_at(now).unwrap();
        assert_eq!(spool.stats().depth, 3, "the defaults keep all three");

        spool.set_limits(u64::MAX, 120);
        let dropped = spool.enforce_retention_at(now).unwrap();
        assert_eq!(
            dropped.get(Priority::StateChange),
            1,
            "the hour-old entry goes"
        );
        let one_frame = spool.stats().bytes / 2;
        spool.set_limits(one_frame, 120);
        spool.enforce_retention_at(now).unwrap();
        let left: Vec<u64> = spool
            .peek(10, usize::MAX)
            .unwrap()
            .iter()
            .map(|r| r.sequence)
            .collect();
        assert_eq!(left, [3], "the oldest goes first");
    }

    #[test]
    fn peeks_from_a_cursor_past_acknowledged_and_dropped_entries() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(SpoolConfig::new(dir.path())).unwrap();
        let now = now_ms();
        // Keepalives stamped at the epoch are past the age limit.
        let appends = [
            (Priority::Result, now),
            (Priority::Keepalive, 0),
            (Priority::StateChange, now),
            (Priority::Keepalive, 0),
            (Priority::Result, now),
        ];
        for (priority, at) in appends {
            spool
                .submit_at(priority, at, vec![1; 4])
                .unwrap()
                .wait()
                .unwrap();
        }
        spool.enforce_retention().unwrap();
        let sequences = |after, max| -> Vec<u64> {
            let records = spool.peek_after(after, max, usize::MAX).unwrap();
            records.iter().map(|r| r.sequence).collect()
        };
        assert_eq!(sequences(0, 10), [1, 3, 5]);
        assert_eq!(sequences(1, 10), [3, 5]);
        assert_eq!(sequences(2, 1), [3]);
        assert_eq!(sequences(5, 10), Vec::<u64>::new());
        assert_eq!(
            [0, 1, 3, 5].map(|after| spool.next_live_after(after)),
            [1, 3, 5, 6]
        );
        spool.ack(3).unwrap();
        assert_eq!(sequences(0, 10), [5]);
        assert_eq!(spool.next_live_after(0), 5);
        assert_eq!([0, 4, 5].map(|after| spool.count_after(after)), [1, 1, 0]);
    }

    #[test]
    fn refuses_oversized_records_and_acks_past_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let config = SpoolConfig {
            max_record_bytes: 8,
            ..SpoolConfig::new(dir.path())
        };
        let spool = Spool::open(config).unwrap();
        let error = spool
            .append_blocking(Priority::Keepalive, vec![0; 9])
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "record of 9 bytes exceeds the maximum of 8 bytes"
        );
        assert_eq!(
            spool
                .append_blocking(Priority::Keepalive, vec![0; 8])
                .unwrap(),
            1
        );
        let error = spool.ack(2).unwrap_err();
        assert_eq!(error.metric_label(), "ack_beyond_end");
        spool.ack(1).unwrap();
        spool.ack(1).unwrap();
        assert!(spool.peek(10, 1000).unwrap().is_empty());
    }
}
