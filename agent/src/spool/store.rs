//! The spool's in-memory index of durable entries, and what is done to it: recovery on open,
//! publishing committed batches, peek, ack, retention, stats.
//!
//! Entries of each priority live in their own directory of segments (a "stream"), so that
//! every removal (acknowledged, or dropped by retention) is a prefix of one stream: the
//! position file records it as a watermark, and disk space comes back by deleting whole
//! segments.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::Record;
use super::error::{Error, Result};
use super::frame::{self, Decoded, FRAME_OVERHEAD, Priority};
use super::position::Position;
use super::segment;
use super::stats::{PerPriority, RecoveryReport, SpoolStats};

/// Where one durable entry is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexEntry {
    pub sequence: u64,
    pub timestamp_ms: u64,
    pub segment: u64,
    pub offset: u64,
    pub payload_len: u32,
}

impl IndexEntry {
    fn frame_len(&self) -> u64 {
        FRAME_OVERHEAD as u64 + u64::from(self.payload_len)
    }
}

struct SegmentInfo {
    path: PathBuf,
    reader: File,
    disk_bytes: u64,
    /// Highest sequence number in the segment (0 when empty).
    last_sequence: u64,
}

struct Stream {
    priority: Priority,
    segments: BTreeMap<u64, SegmentInfo>,
    live: VecDeque<IndexEntry>,
    /// The segment the writer appends to: never deleted.
    active: Option<u64>,
}

/// Limits retention enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_bytes: u64,
    pub max_age_ms: u64,
}

/// A segment the writer created, handed over with the first commit that used it.
pub(crate) struct NewSegment {
    pub priority: Priority,
    pub id: u64,
    pub path: PathBuf,
    pub reader: File,
}

/// A durable batch, published by the writer after its fsyncs.
pub(crate) struct Commit {
    pub entries: Vec<(Priority, IndexEntry)>,
    pub new_segments: Vec<NewSegment>,
    pub active: [Option<u64>; 3],
    pub fsyncs: u64,
}

/// The writer's view of a stream's last segment after recovery: `(id, path, length)`.
pub(crate) type ActiveSegment = (u64, PathBuf, u64);

/// Index, position and counters of an open spool.
pub(crate) struct State {
    dir: PathBuf,
    streams: [Stream; 3],
    position: Position,
    last_sequence: u64,
    live_bytes: u64,
    limits: Limits,
    commits: u64,
    fsyncs: u64,
    recovery: RecoveryReport,
}

impl State {
    /// Scans every segment under `dir`, truncates torn tails, and builds the index.
    pub fn recover(dir: &Path, limits: Limits) -> Result<State> {
        let position = Position::load(dir)?;
        let mut state = State {
            dir: dir.to_path_buf(),
            streams: Priority::ALL.map(|priority| Stream {
                priority,
                segments: BTreeMap::new(),
                live: VecDeque::new(),
                active: None,
            }),
            last_sequence: position.highest_sequence(),
            position,
            live_bytes: 0,
            limits,
            commits: 0,
            fsyncs: 0,
            recovery: RecoveryReport::default(),
        };
        for priority in Priority::ALL {
            state.recover_stream(priority)?;
        }
        state.delete_dead_segments();
        Ok(state)
    }

    fn recover_stream(&mut self, priority: Priority) -> Result<()> {
        let stream_dir = self.dir.join(priority.name());
        fs::create_dir_all(&stream_dir)
            .map_err(|e| Error::io("create spool directory", &stream_dir, e))?;
        let ids = list_segments(&stream_dir)?;
        let mut last_in_stream = 0;
        for (index, &id) in ids.iter().enumerate() {
            let path = segment::path(&stream_dir, id);
            let is_last = index + 1 == ids.len();
            let bytes = fs::read(&path).map_err(|e| Error::io("read segment", &path, e))?;
            let scan = segment::scan(&bytes, priority, last_in_stream);
            let mut disk_bytes = bytes.len() as u64;
            for &(_, length) in &scan.corrupt {
                self.recovery.corrupt_regions += 1;
                self.recovery.corrupt_bytes += length;
            }
            if let Some(offset) = scan.unreadable_from {
                let lost = disk_bytes - offset;
                if is_last {
                    truncate(&path, offset)?;
                    self.recovery.torn_tail_bytes += lost;
                    disk_bytes = offset;
                } else {
                    self.recovery.corrupt_regions += 1;
                    self.recovery.corrupt_bytes += lost;
                    self.recovery.errors.push(format!(
                        "segment {} is unreadable from offset {offset} ({lost} bytes): \
                         records after it in this segment are lost",
                        path.display()
                    ));
                }
            }
            let stream = &mut self.streams[priority.index()];
            for found in &scan.records {
                let header = found.header;
                last_in_stream = header.sequence;
                self.last_sequence = self.last_sequence.max(header.sequence);
                self.recovery.records += 1;
                if self.position.is_dead(header.sequence, priority) {
                    continue;
                }
                let entry = IndexEntry {
                    sequence: header.sequence,
                    timestamp_ms: header.timestamp_ms,
                    segment: id,
                    offset: found.offset,
                    payload_len: header.payload_len as u32,
                };
                self.live_bytes += entry.frame_len();
                stream.live.push_back(entry);
            }
            let reader = File::open(&path).map_err(|e| Error::io("open segment", &path, e))?;
            let last_sequence = scan.records.last().map_or(0, |found| found.header.sequence);
            stream.segments.insert(
                id,
                SegmentInfo {
                    path,
                    reader,
                    disk_bytes,
                    last_sequence,
                },
            );
            stream.active = Some(id);
        }
        Ok(())
    }

    /// The last segment of `priority`, which the writer continues.
    pub fn active_segment(&self, priority: Priority) -> Option<ActiveSegment> {
        let stream = &self.streams[priority.index()];
        let id = stream.active?;
        let info = &stream.segments[&id];
        Some((id, info.path.clone(), info.disk_bytes))
    }

    /// Highest sequence number ever used (durable, acknowledged or dropped).
    pub fn last_sequence(&self) -> u64 {
        self.last_sequence
    }

    /// Directory of the spool.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Adds a durable batch to the index.
    pub fn publish(&mut self, commit: Commit) {
        for new in commit.new_segments {
            let info = SegmentInfo {
                path: new.path,
                reader: new.reader,
                disk_bytes: 0,
                last_sequence: 0,
            };
            self.streams[new.priority.index()]
                .segments
                .insert(new.id, info);
        }
        for (priority, entry) in commit.entries {
            let stream = &mut self.streams[priority.index()];
            if let Some(info) = stream.segments.get_mut(&entry.segment) {
                info.disk_bytes += entry.frame_len();
                info.last_sequence = entry.sequence;
            }
            self.live_bytes += entry.frame_len();
            self.last_sequence = self.last_sequence.max(entry.sequence);
            stream.live.push_back(entry);
        }
        for (stream, active) in self.streams.iter_mut().zip(commit.active) {
            stream.active = active;
        }
        self.commits += 1;
        self.fsyncs += commit.fsyncs;
        self.delete_dead_segments();
    }

    /// Whether live entries exceed the byte limit.
    pub fn over_bytes(&self) -> bool {
        self.live_bytes > self.limits.max_bytes
    }

    /// The oldest live entries above sequence `after`, in sequence order, without removing
    /// them: at most `max_records`, and at most `max_bytes` of payload unless the first entry
    /// alone is larger.
    pub fn peek_after(
        &self,
        after: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<Record>> {
        let mut cursors = self
            .streams
            .each_ref()
            .map(|stream| stream.live.partition_point(|entry| entry.sequence <= after));
        let mut records = Vec::new();
        let mut bytes = 0usize;
        while records.len() < max_records {
            let next = (0..3)
                .filter_map(|i| {
                    self.streams[i]
                        .live
                        .get(cursors[i])
                        .map(|entry| (i, *entry))
                })
                .min_by_key(|(_, entry)| entry.sequence);
            let Some((index, entry)) = next else { break };
            let payload_len = entry.payload_len as usize;
            if !records.is_empty() && bytes + payload_len > max_bytes {
                break;
            }
            records.push(self.read(&self.streams[index], &entry)?);
            bytes += payload_len;
            cursors[index] += 1;
        }
        Ok(records)
    }

    /// The lowest live sequence above `after`, or the next sequence to be used when there is
    /// none: every sequence between `after` and it is gone (acknowledged, dropped by
    /// retention, or lost to a failed commit).
    pub fn next_live_after(&self, after: u64) -> u64 {
        self.streams
            .iter()
            .filter_map(|stream| {
                let index = stream.live.partition_point(|entry| entry.sequence <= after);
                stream.live.get(index).map(|entry| entry.sequence)
            })
            .min()
            .unwrap_or(self.last_sequence + 1)
    }

    /// How many live entries have a sequence above `after`.
    pub fn count_live_after(&self, after: u64) -> u64 {
        self.streams
            .iter()
            .map(|stream| {
                let index = stream.live.partition_point(|entry| entry.sequence <= after);
                (stream.live.len() - index) as u64
            })
            .sum()
    }

    fn read(&self, stream: &Stream, entry: &IndexEntry) -> Result<Record> {
        let info = &stream.segments[&entry.segment];
        let mut buf = vec![0; entry.frame_len() as usize];
        let corrupt = || Error::CorruptRead {
            path: info.path.clone(),
            offset: entry.offset,
            sequence: entry.sequence,
        };
        info.reader
            .read_exact_at(&mut buf, entry.offset)
            .map_err(|e| Error::io("read segment", &info.path, e))?;
        match frame::decode(&buf) {
            Decoded::Frame(header) if header.sequence == entry.sequence => Ok(Record {
                sequence: entry.sequence,
                priority: stream.priority,
                timestamp_ms: entry.timestamp_ms,
                payload: buf.split_off(FRAME_OVERHEAD),
            }),
            _ => Err(corrupt()),
        }
    }

    /// Removes every entry up to and including `up_to` once the position file says so.
    pub fn ack(&mut self, up_to: u64) -> Result<()> {
        if up_to <= self.position.acked_through {
            return Ok(());
        }
        if up_to > self.last_sequence {
            return Err(Error::AckBeyondEnd {
                requested: up_to,
                last: self.last_sequence,
            });
        }
        let mut position = self.position;
        position.acked_through = up_to;
        position.store(&self.dir)?;
        self.position = position;
        for stream in &mut self.streams {
            while let Some(entry) = stream.live.front().filter(|entry| entry.sequence <= up_to) {
                self.live_bytes -= entry.frame_len();
                stream.live.pop_front();
            }
        }
        self.delete_dead_segments();
        Ok(())
    }

    /// Replaces the limits; they apply from the next enforcement.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Drops entries older than the age limit (when `now_ms` is given), then the oldest entries
    /// of the lowest priority until live bytes fit the byte limit. Returns drops per priority.
    pub fn enforce(&mut self, now_ms: Option<u64>) -> Result<[u64; 3]> {
        let mut plan = self.position;
        let mut drops = [0usize; 3];
        let mut live_bytes = self.live_bytes;
        if let Some(now) = now_ms {
            for index in 0..3 {
                while let Some(entry) = self.streams[index].live.get(drops[index])
                    && now.saturating_sub(entry.timestamp_ms) > self.limits.max_age_ms
                {
                    live_bytes -= plan_drop(&self.streams, &mut drops, &mut plan, index);
                }
            }
        }
        while live_bytes > self.limits.max_bytes {
            let Some(index) = (0..3).find(|&i| drops[i] < self.streams[i].live.len()) else {
                break;
            };
            live_bytes -= plan_drop(&self.streams, &mut drops, &mut plan, index);
        }
        let dropped = drops.map(|count| count as u64);
        if plan == self.position {
            return Ok(dropped);
        }
        plan.store(&self.dir)?;
        self.position = plan;
        self.live_bytes = live_bytes;
        for (stream, count) in self.streams.iter_mut().zip(drops) {
            stream.live.drain(..count);
        }
        self.delete_dead_segments();
        Ok(dropped)
    }

    fn delete_dead_segments(&mut self) {
        for stream in &mut self.streams {
            let index = stream.priority.index();
            let watermark = self
                .position
                .acked_through
                .max(self.position.dropped_through[index]);
            let dead: Vec<u64> = stream
                .segments
                .iter()
                .filter(|(id, info)| Some(**id) != stream.active && info.last_sequence <= watermark)
                .map(|(id, _)| *id)
                .collect();
            for id in dead {
                let path = &stream.segments[&id].path;
                match fs::remove_file(path) {
                    Ok(()) => {}
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                    Err(error) => {
                        tracing::warn!(message = "Failed to delete spool segment.", %error, path = %path.display());
                        continue;
                    }
                }
                stream.segments.remove(&id);
            }
        }
    }

    /// Current numbers; `now_ms` dates the oldest entry.
    pub fn stats(&self, now_ms: u64) -> SpoolStats {
        let count = |stream: &Stream| stream.live.len() as u64;
        // The first entry of each stream is its oldest by sequence number; appends are stamped
        // with the wall clock, so that is the oldest by time too unless the clock stepped back.
        let oldest_timestamp_ms = self
            .streams
            .iter()
            .filter_map(|s| s.live.front().map(|e| e.timestamp_ms))
            .min();
        SpoolStats {
            depth: self.streams.iter().map(count).sum(),
            depth_by_priority: PerPriority::from_fn(|p| count(&self.streams[p.index()])),
            bytes: self.live_bytes,
            disk_bytes: self
                .streams
                .iter()
                .flat_map(|s| s.segments.values())
                .map(|i| i.disk_bytes)
                .sum(),
            segments: self.streams.iter().map(|s| s.segments.len() as u64).sum(),
            dropped: PerPriority::from_fn(|p| self.position.dropped[p.index()]),
            oldest_timestamp_ms,
            oldest_age_ms: oldest_timestamp_ms.map(|oldest| now_ms.saturating_sub(oldest)),
            acked_through: self.position.acked_through,
            last_sequence: self.last_sequence,
            commits: self.commits,
            fsyncs: self.fsyncs,
            recovery: self.recovery.clone(),
        }
    }
}

/// Marks the next live entry of stream `index` as dropped in `plan`; returns its frame length.
fn plan_drop(
    streams: &[Stream; 3],
    drops: &mut [usize; 3],
    plan: &mut Position,
    index: usize,
) -> u64 {
    let entry = streams[index].live[drops[index]];
    plan.dropped_through[index] = entry.sequence;
    plan.dropped[index] += 1;
    drops[index] += 1;
    entry.frame_len()
}

fn list_segments(stream_dir: &Path) -> Result<Vec<u64>> {
    let entries =
        fs::read_dir(stream_dir).map_err(|e| Error::io("list spool directory", stream_dir, e))?;
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list spool directory", stream_dir, e))?;
        if let Some(id) = entry.file_name().to_str().and_then(segment::parse_id) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

fn truncate(path: &Path, length: u64) -> Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io("open segment to truncate its torn tail", path, e))?;
    file.set_len(length)
        .map_err(|e| Error::io("truncate torn tail of segment", path, e))?;
    file.sync_all()
        .map_err(|e| Error::io("fsync segment", path, e))
}
