//! The group-commit writer: one thread takes every queued append, writes the batch, fdatasyncs
//! each touched segment once, publishes the batch to the index, and only then answers the
//! callers. It commits as soon as it has work (no timer), so a caller waits at most for the
//! commit in progress plus its own, and batches grow by themselves under load. A flush
//! ([`Job::Flush`]) is answered once everything queued before it is committed.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::error::{Error, Result};
use super::frame::{self, FRAME_OVERHEAD, Priority};
use super::position::sync_dir;
use super::segment;
use super::store::{Commit, IndexEntry, NewSegment, State};

/// How often the writer applies the age limit by itself.
const AGE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// One append waiting for the writer.
pub(crate) struct Request {
    pub priority: Priority,
    pub timestamp_ms: u64,
    pub payload: Vec<u8>,
    pub reply: oneshot::Sender<Result<u64>>,
}

/// What the writer is asked to do, in order.
pub(crate) enum Job {
    /// Append a record.
    Append(Request),
    /// Answer once every append queued before is committed (or failed).
    Flush(oneshot::Sender<()>),
}

/// Batch and segment sizes the writer works with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriterConfig {
    pub segment_bytes: u64,
    pub max_batch_records: usize,
    pub max_batch_bytes: usize,
    pub write_chunk_bytes: Option<usize>,
}

/// The segment a stream appends to.
struct Active {
    id: u64,
    path: PathBuf,
    file: File,
    /// Length known durable.
    committed_len: u64,
    /// Length including this batch's writes.
    len: u64,
    /// Read handle, until the index has been given it.
    unpublished_reader: Option<File>,
}

/// Owns the append handles and the next sequence number.
pub(crate) struct Writer {
    state: Arc<Mutex<State>>,
    config: WriterConfig,
    stream_dirs: [PathBuf; 3],
    next_sequence: u64,
    active: [Option<Active>; 3],
    buffers: [Vec<u8>; 3],
    last_age_check: Instant,
}

impl Writer {
    /// Continues the segments recovery left behind.
    pub fn new(state: Arc<Mutex<State>>, config: WriterConfig) -> Result<Writer> {
        let guard = state.lock().unwrap_or_else(PoisonError::into_inner);
        let stream_dirs = Priority::ALL.map(|p| guard.dir().join(p.name()));
        let mut active = [None, None, None];
        for priority in Priority::ALL {
            if let Some((id, path, len)) = guard.active_segment(priority) {
                let file = open_append(&path)?;
                active[priority.index()] = Some(Active {
                    id,
                    path,
                    file,
                    committed_len: len,
                    len,
                    unpublished_reader: None,
                });
            }
        }
        let next_sequence = guard.last_sequence() + 1;
        drop(guard);
        Ok(Writer {
            state,
            config,
            stream_dirs,
            next_sequence,
            active,
            buffers: Default::default(),
            last_age_check: Instant::now(),
        })
    }

    /// Commits batches until every sender is gone; answers each flush after the batch that
    /// holds what was queued before it.
    pub fn run(mut self, jobs: Receiver<Job>) {
        while let Ok(first) = jobs.recv() {
            let mut batch = Vec::new();
            let mut flushes = Vec::new();
            let mut bytes = 0;
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Append(request) => {
                        bytes += request.payload.len();
                        batch.push(request);
                    }
                    Job::Flush(reply) => flushes.push(reply),
                }
                if batch.len() < self.config.max_batch_records
                    && bytes < self.config.max_batch_bytes
                {
                    next = jobs.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                self.commit(batch);
            }
            for reply in flushes {
                let _ = reply.send(());
            }
        }
    }

    fn commit(&mut self, batch: Vec<Request>) {
        let mut sealed = Vec::new();
        match self.write_batch(&batch, &mut sealed) {
            Ok((entries, fsyncs)) => {
                let sequences: Vec<u64> = entries.iter().map(|(_, entry)| entry.sequence).collect();
                self.publish(entries, &mut sealed, fsyncs);
                for (request, sequence) in batch.into_iter().zip(sequences) {
                    let _ = request.reply.send(Ok(sequence));
                }
            }
            Err(error) => {
                tracing::warn!(message = "Failed to commit spool batch.", %error, records = batch.len());
                self.roll_back(&mut sealed);
                for request in batch {
                    let _ = request.reply.send(Err(error.clone()));
                }
            }
        }
    }

    /// Writes and fdatasyncs the batch; returns its index entries and the fsync count.
    fn write_batch(
        &mut self,
        batch: &[Request],
        sealed: &mut Vec<Active>,
    ) -> Result<(Vec<(Priority, IndexEntry)>, u64)> {
        let mut entries = Vec::with_capacity(batch.len());
        for request in batch {
            let index = request.priority.index();
            let frame_len = (FRAME_OVERHEAD + request.payload.len()) as u64;
            let pending = self.buffers[index].len() as u64;
            let full = self.active[index].as_ref().is_none_or(|active| {
                active.len + pending > 0
                    && active.len + pending + frame_len > self.config.segment_bytes
            });
            if full {
                if let Some(mut old) = self.active[index].take() {
                    let flushed = self.flush(&mut old, index);
                    // Sealed even on failure, so that the roll-back cuts it too.
                    sealed.push(old);
                    flushed?;
                }
                self.active[index] = Some(self.create_segment(request.priority)?);
            }
            let active = self.active[index].as_ref().expect("created above");
            let sequence = self.next_sequence;
            self.next_sequence += 1;
            let buffer = &mut self.buffers[index];
            let offset = active.len + buffer.len() as u64;
            frame::encode(
                buffer,
                sequence,
                request.timestamp_ms,
                request.priority,
                &request.payload,
            );
            entries.push((
                request.priority,
                IndexEntry {
                    sequence,
                    timestamp_ms: request.timestamp_ms,
                    segment: active.id,
                    offset,
                    payload_len: request.payload.len() as u32,
                },
            ));
        }
        let mut fsyncs = 0;
        for index in 0..3 {
            if let Some(mut active) = self.active[index].take() {
                let flushed = self.flush(&mut active, index);
                self.active[index] = Some(active);
                flushed?;
            }
        }
        for active in sealed.iter().chain(self.active.iter().flatten()) {
            if active.len > active.committed_len {
                active
                    .file
                    .sync_data()
                    .map_err(|e| Error::io("fdatasync segment", &active.path, e))?;
                fsyncs += 1;
            }
        }
        Ok((entries, fsyncs))
    }

    /// Appends the stream's buffered frames to `active`'s file.
    fn flush(&mut self, active: &mut Active, index: usize) -> Result<()> {
        let buffer = &mut self.buffers[index];
        if buffer.is_empty() {
            return Ok(());
        }
        let chunk = self.config.write_chunk_bytes.unwrap_or(buffer.len()).max(1);
        let written = buffer
            .chunks(chunk)
            .try_for_each(|part| active.file.write_all(part));
        active.len += buffer.len() as u64;
        buffer.clear();
        written.map_err(|e| Error::io("write segment", &active.path, e))
    }

    fn create_segment(&self, priority: Priority) -> Result<Active> {
        let dir = &self.stream_dirs[priority.index()];
        let id = self.next_sequence;
        let path = segment::path(dir, id);
        let file = open_append(&path)?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat segment", &path, e))?
            .len();
        let reader = File::open(&path).map_err(|e| Error::io("open segment", &path, e))?;
        sync_dir(dir)?;
        Ok(Active {
            id,
            path,
            file,
            committed_len: len,
            len,
            unpublished_reader: Some(reader),
        })
    }

    fn publish(
        &mut self,
        entries: Vec<(Priority, IndexEntry)>,
        sealed: &mut [Active],
        fsyncs: u64,
    ) {
        let mut new_segments = Vec::new();
        for (index, slot) in self.active.iter_mut().enumerate() {
            let priority = Priority::ALL[index];
            let actives = sealed
                .iter_mut()
                .filter(|a| a.path.starts_with(&self.stream_dirs[index]));
            for active in actives.chain(slot.as_mut()) {
                active.committed_len = active.len;
                if let Some(reader) = active.unpublished_reader.take() {
                    let (id, path) = (active.id, active.path.clone());
                    new_segments.push(NewSegment {
                        priority,
                        id,
                        path,
                        reader,
                    });
                }
            }
        }
        let active = [0, 1, 2].map(|index| self.active[index].as_ref().map(|a| a.id));
        let commit = Commit {
            entries,
            new_segments,
            active,
            fsyncs,
        };
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.publish(commit);
        let now = (self.last_age_check.elapsed() >= AGE_CHECK_INTERVAL).then(super::now_ms);
        if state.over_bytes() || now.is_some() {
            if now.is_some() {
                self.last_age_check = Instant::now();
            }
            if let Err(error) = state.enforce(now) {
                tracing::warn!(message = "Failed to enforce spool retention.", %error);
            }
        }
    }

    /// Cuts every segment back to its durable length after a failed batch.
    fn roll_back(&mut self, sealed: &mut [Active]) {
        for buffer in &mut self.buffers {
            buffer.clear();
        }
        for active in sealed.iter_mut() {
            // Sealed segments get no more appends: a failed cut only leaves a damaged region
            // that recovery skips.
            let _ = cut_back(active);
        }
        for slot in &mut self.active {
            if slot
                .as_mut()
                .is_some_and(|active| cut_back(active).is_err())
            {
                // The length is unknown now: start a fresh segment with the next append.
                *slot = None;
            }
        }
    }
}

/// Truncates `active` to its durable length.
fn cut_back(active: &mut Active) -> std::io::Result<()> {
    if active.len > active.committed_len {
        active.file.set_len(active.committed_len).inspect_err(|error| {
            tracing::warn!(message = "Failed to cut a failed batch off a spool segment.", %error, path = %active.path.display());
        })?;
        active.len = active.committed_len;
    }
    Ok(())
}

fn open_append(path: &std::path::Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io("open segment for append", path, e))
}
