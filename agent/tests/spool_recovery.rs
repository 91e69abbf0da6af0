//! Recovery of a spool whose segments were damaged while it was closed: damage in the middle
//! is counted and skipped, damage nothing intact follows is reported in stats, and a torn
//! tail is cut without losing the records before it.

use std::fs;
use std::path::{Path, PathBuf};

use vedette_agent::spool::{FRAME_OVERHEAD, Priority, Spool, SpoolConfig};

const PAYLOAD: usize = 50;
const FRAME: usize = FRAME_OVERHEAD + PAYLOAD;

fn config(dir: &Path) -> SpoolConfig {
    // Four frames per segment.
    SpoolConfig {
        segment_bytes: 4 * FRAME as u64,
        ..SpoolConfig::new(dir)
    }
}

/// Appends `count` state changes whose payload is their index, then closes the spool.
fn fill(dir: &Path, count: u8) -> Vec<PathBuf> {
    let spool = Spool::open(config(dir)).unwrap();
    for index in 0..count {
        spool
            .append_blocking(Priority::StateChange, vec![index; PAYLOAD])
            .unwrap();
    }
    drop(spool);
    let mut segments: Vec<PathBuf> = fs::read_dir(dir.join("state_change"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segments.sort();
    segments
}

fn damage(path: &Path, offset: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset] ^= 0x55;
    fs::write(path, bytes).unwrap();
}

fn sequences(spool: &Spool) -> Vec<u64> {
    spool
        .peek(usize::MAX, usize::MAX)
        .unwrap()
        .iter()
        .map(|r| r.sequence)
        .collect()
}

#[test]
fn damage_in_the_middle_is_counted_and_later_records_survive() {
    let dir = tempfile::tempdir().unwrap();
    let segments = fill(dir.path(), 12);
    assert_eq!(segments.len(), 3);
    // Second record of the first segment: sequence 2.
    damage(&segments[0], FRAME + FRAME_OVERHEAD + 10);
    let spool = Spool::open(config(dir.path())).unwrap();
    assert_eq!(sequences(&spool), [1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    let recovery = spool.stats().recovery;
    assert_eq!(
        (recovery.corrupt_regions, recovery.corrupt_bytes),
        (1, FRAME as u64)
    );
    assert!(recovery.errors.is_empty(), "{recovery:?}");
    assert_eq!(
        spool.append_blocking(Priority::Result, vec![1]).unwrap(),
        13
    );
}

#[test]
fn damage_nothing_intact_follows_is_reported_with_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let segments = fill(dir.path(), 12);
    // Last record of the middle segment: sequence 8.
    damage(&segments[1], 3 * FRAME + FRAME_OVERHEAD);
    let spool = Spool::open(config(dir.path())).unwrap();
    assert_eq!(sequences(&spool), [1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12]);
    let recovery = spool.stats().recovery;
    assert_eq!(recovery.errors.len(), 1, "{recovery:?}");
    let error = &recovery.errors[0];
    let where_ = format!(
        "{} is unreadable from offset {}",
        segments[1].display(),
        3 * FRAME
    );
    assert!(error.contains(&where_), "{error}");
}

#[test]
fn torn_tail_of_the_last_segment_is_cut_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let segments = fill(dir.path(), 6);
    let last = segments.last().unwrap();
    let length = fs::metadata(last).unwrap().len();
    // Half of the last record (sequence 6) reached the disk.
    fs::OpenOptions::new()
        .write(true)
        .open(last)
        .unwrap()
        .set_len(length - 30)
        .unwrap();
    let spool = Spool::open(config(dir.path())).unwrap();
    assert_eq!(sequences(&spool), [1, 2, 3, 4, 5]);
    let recovery = spool.stats().recovery;
    assert_eq!(
        (recovery.torn_tail_bytes, recovery.corrupt_regions),
        ((FRAME - 30) as u64, 0)
    );
    assert_eq!(fs::metadata(last).unwrap().len(), length - FRAME as u64);
    let next = spool
        .append_blocking(Priority::StateChange, vec![9; PAYLOAD])
        .unwrap();
    assert_eq!(
        next, 6,
        "an unconfirmed sequence number may be reused: it was never durable"
    );
    drop(spool);
    let spool = Spool::open(config(dir.path())).unwrap();
    assert_eq!(sequences(&spool), [1, 2, 3, 4, 5, 6]);
    assert_eq!(spool.stats().recovery.torn_tail_bytes, 0);
}

#[test]
fn acknowledged_segments_are_deleted_and_stay_gone() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 12);
    let spool = Spool::open(config(dir.path())).unwrap();
    spool.ack(9).unwrap();
    let stats = spool.stats();
    assert_eq!((stats.depth, stats.segments), (3, 1), "{stats:?}");
    drop(spool);
    let spool = Spool::open(config(dir.path())).unwrap();
    assert_eq!(sequences(&spool), [10, 11, 12]);
    assert_eq!(spool.stats().acked_through, 9);
}
