//! Segment files: naming, and the recovery scan that finds every intact record in one.
//!
//! A segment is named after the first sequence number it was created for
//! (`00000000000000000042.seg`) and holds frames back to back. The scan is pure (bytes in,
//! findings out) so torn tails and damaged regions can be tested without a filesystem.

use std::path::{Path, PathBuf};

use super::frame::{self, Decoded, FrameHeader, Priority};

/// File name extension of segment files.
const EXTENSION: &str = "seg";

/// Path of the segment `id` in a priority's directory.
pub fn path(stream_dir: &Path, id: u64) -> PathBuf {
    stream_dir.join(format!("{id:020}.{EXTENSION}"))
}

/// The segment id encoded in a file name, if the name is a segment's.
pub fn parse_id(file_name: &str) -> Option<u64> {
    let stem = file_name.strip_suffix(EXTENSION)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// An intact record found by [`scan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// Offset of the frame in the segment.
    pub offset: u64,
    /// The frame's header.
    pub header: FrameHeader,
}

/// What [`scan`] found in a segment's bytes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Intact records, in file order (sequence numbers strictly increase).
    pub records: Vec<Found>,
    /// Damaged regions that intact records follow: `(offset, length)`.
    pub corrupt: Vec<(u64, u64)>,
    /// Offset where bytes start that no intact record follows (a torn tail in the last
    /// segment, unrecoverable damage elsewhere); `None` when the file ends cleanly.
    pub unreadable_from: Option<u64>,
}

/// Finds the intact records of `priority` in `bytes`, all with sequence numbers above
/// `after_sequence` and strictly increasing; skips damaged regions when an intact record
/// follows them.
pub fn scan(bytes: &[u8], priority: Priority, after_sequence: u64) -> Scan {
    let mut scan = Scan::default();
    let mut last = after_sequence;
    let mut at = 0;
    while at < bytes.len() {
        if let Some(header) = intact(&bytes[at..], priority, last) {
            scan.records.push(Found {
                offset: at as u64,
                header,
            });
            last = header.sequence;
            at += header.frame_len();
            continue;
        }
        match resync(bytes, at + 1, priority, last) {
            Some(next) => {
                scan.corrupt.push((at as u64, (next - at) as u64));
                at = next;
            }
            None => {
                scan.unreadable_from = Some(at as u64);
                break;
            }
        }
    }
    scan
}

fn intact(buf: &[u8], priority: Priority, after_sequence: u64) -> Option<FrameHeader> {
    match frame::decode(buf) {
        Decoded::Frame(header)
            if header.priority == priority && header.sequence > after_sequence =>
        {
            Some(header)
        }
        _ => None,
    }
}

/// The first offset at or after `from` where an intact record starts.
fn resync(bytes: &[u8], from: usize, priority: Priority, after_sequence: u64) -> Option<usize> {
    let mut at = from;
    while at + frame::FRAME_OVERHEAD <= bytes.len() {
        let found = bytes[at..]
            .windows(4)
            .position(|w| w == frame::FRAME_MAGIC)?;
        at += found;
        if intact(&bytes[at..], priority, after_sequence).is_some() {
            return Some(at);
        }
        at += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::frame::{FRAME_OVERHEAD, encode};

    fn segment(sequences: &[u64]) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = Vec::new();
        let mut offsets = Vec::new();
        for &sequence in sequences {
            offsets.push(bytes.len());
            let payload = format!("payload of record {sequence}");
            encode(
                &mut bytes,
                sequence,
                1000 + sequence,
                Priority::Result,
                payload.as_bytes(),
            );
        }
        (bytes, offsets)
    }

    fn sequences(scan: &Scan) -> Vec<u64> {
        scan.records
            .iter()
            .map(|found| found.header.sequence)
            .collect()
    }

    #[test]
    fn names_round_trip_and_strangers_are_ignored() {
        let path = path(Path::new("/spool/result"), 42);
        assert_eq!(path, Path::new("/spool/result/00000000000000000042.seg"));
        assert_eq!(parse_id("00000000000000000042.seg"), Some(42));
        for stranger in [
            "42.seg",
            "00000000000000000042.tmp",
            "0000000000000000004x.seg",
            "lock",
        ] {
            assert_eq!(parse_id(stranger), None, "{stranger}");
        }
    }

    #[test]
    fn clean_segment_yields_every_record() {
        let (bytes, offsets) = segment(&[1, 2, 5]);
        let scan = scan(&bytes, Priority::Result, 0);
        assert_eq!(sequences(&scan), [1, 2, 5]);
        assert_eq!(scan.records[2].offset, offsets[2] as u64);
        assert!(scan.corrupt.is_empty() && scan.unreadable_from.is_none());
    }

    #[test]
    fn torn_tail_at_every_cut_keeps_the_complete_records() {
        let (bytes, offsets) = segment(&[1, 2, 3]);
        for cut in offsets[2] + 1..bytes.len() {
            let scan = scan(&bytes[..cut], Priority::Result, 0);
            assert_eq!(sequences(&scan), [1, 2], "cut at {cut}");
            assert_eq!(
                scan.unreadable_from,
                Some(offsets[2] as u64),
                "cut at {cut}"
            );
            assert!(scan.corrupt.is_empty());
        }
        let scan = scan(&bytes[..offsets[2]], Priority::Result, 0);
        assert_eq!((sequences(&scan), scan.unreadable_from), (vec![1, 2], None));
    }

    #[test]
    fn zero_filled_tail_is_unreadable_not_records() {
        let (mut bytes, _) = segment(&[1, 2]);
        let clean_len = bytes.len() as u64;
        bytes.extend_from_slice(&[0; 4096]);
        let scan = scan(&bytes, Priority::Result, 0);
        assert_eq!(sequences(&scan), [1, 2]);
        assert_eq!(scan.unreadable_from, Some(clean_len));
    }

    #[test]
    fn damage_in_the_middle_is_skipped_and_later_records_kept() {
        let (mut bytes, offsets) = segment(&[1, 2, 3, 4]);
        bytes[offsets[1] + FRAME_OVERHEAD + 3] ^= 0xff;
        let scan = scan(&bytes, Priority::Result, 0);
        assert_eq!(sequences(&scan), [1, 3, 4]);
        assert_eq!(
            scan.corrupt,
            [(offsets[1] as u64, (offsets[2] - offsets[1]) as u64)]
        );
        assert_eq!(scan.unreadable_from, None);
    }

    #[test]
    fn damaged_magic_and_length_still_resync() {
        let (mut bytes, offsets) = segment(&[1, 2, 3]);
        bytes[offsets[1]] = 0;
        bytes[offsets[1] + 8..offsets[1] + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        let scan = scan(&bytes, Priority::Result, 0);
        assert_eq!(sequences(&scan), [1, 3]);
        assert_eq!(scan.corrupt.len(), 1);
    }

    #[test]
    fn stale_or_foreign_records_are_not_resync_points() {
        let (bytes, _) = segment(&[5, 6]);
        assert_eq!(sequences(&scan(&bytes, Priority::Result, 5)), [6]);
        assert_eq!(
            scan(&bytes, Priority::Keepalive, 0).unreadable_from,
            Some(0)
        );
    }
}
