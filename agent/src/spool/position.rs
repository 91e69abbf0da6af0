//! The position file: how far the upstream acknowledged and how far retention dropped.
//!
//! It is tiny and rewritten whole, atomically: write `position.tmp`, fsync it, rename it over
//! `position`, fsync the directory. A reader therefore sees the old or the new content, never
//! a mix; a CRC guards against anything else.

use std::fs;
use std::path::Path;

use super::error::{Error, Result};
use super::frame::Priority;
use crate::atomic_file;

const MAGIC: [u8; 8] = *b"VSPOS1\0\0";
const LEN: usize = 8 + 8 + 3 * 8 + 3 * 8 + 4;
const FILE_NAME: &str = "position";
const TEMP_NAME: &str = "position.tmp";

/// Persisted progress of the spool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    /// Every sequence number up to and including this one was acknowledged upstream.
    pub acked_through: u64,
    /// Per priority ([`Priority::index`]): every entry of that priority up to and including
    /// this sequence number was dropped by retention.
    pub dropped_through: [u64; 3],
    /// Per priority: how many entries retention dropped, ever.
    pub dropped: [u64; 3],
}

impl Position {
    /// Whether the entry `sequence` of `priority` is gone (acknowledged or dropped).
    pub fn is_dead(&self, sequence: u64, priority: Priority) -> bool {
        sequence <= self.acked_through || sequence <= self.dropped_through[priority.index()]
    }

    /// Highest sequence number this position mentions (a floor for the next one).
    pub fn highest_sequence(&self) -> u64 {
        self.dropped_through
            .iter()
            .copied()
            .fold(self.acked_through, u64::max)
    }

    /// Reads the position file in `dir`; a missing file is a fresh spool.
    pub fn load(dir: &Path) -> Result<Position> {
        let path = dir.join(FILE_NAME);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Position::default());
            }
            Err(error) => return Err(Error::io("read position file", path, error)),
        };
        Position::decode(&bytes).map_err(|reason| Error::CorruptPosition { path, reason })
    }

    /// Atomically replaces the position file in `dir`.
    pub fn store(&self, dir: &Path) -> Result<()> {
        replace_file(dir, FILE_NAME, TEMP_NAME, &self.encode())
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(LEN);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.acked_through.to_le_bytes());
        for value in self.dropped_through.iter().chain(&self.dropped) {
            out.extend_from_slice(&value.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> std::result::Result<Position, &'static str> {
        if bytes.len() != LEN {
            return Err("wrong length");
        }
        if bytes[..8] != MAGIC {
            return Err("bad magic");
        }
        let stored = u32::from_le_bytes(bytes[LEN - 4..].try_into().expect("four bytes"));
        if crc32fast::hash(&bytes[..LEN - 4]) != stored {
            return Err("checksum mismatch");
        }
        let word = |index: usize| {
            let at = 8 + index * 8;
            u64::from_le_bytes(bytes[at..at + 8].try_into().expect("eight bytes"))
        };
        Ok(Position {
            acked_through: word(0),
            dropped_through: [word(1), word(2), word(3)],
            dropped: [word(4), word(5), word(6)],
        })
    }
}

/// Atomically replaces `dir/name` with `bytes`: write `dir/temp_name`, fsync it, rename it
/// over `name`, fsync the directory. A reader sees the old or the new content, never a mix.
pub fn replace_file(dir: &Path, name: &str, temp_name: &str, bytes: &[u8]) -> Result<()> {
    atomic_file::replace_through(&dir.join(temp_name), &dir.join(name), bytes).map_err(spool_error)
}

/// Makes a directory's entries (created, renamed, removed files) durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    atomic_file::sync_dir(dir).map_err(spool_error)
}

fn spool_error(error: atomic_file::ReplaceError) -> Error {
    Error::io(error.step, &error.path, error.source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_and_loads_and_detects_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Position::load(dir.path()).unwrap(), Position::default());
        let position = Position {
            acked_through: 9,
            dropped_through: [3, 4, 0],
            dropped: [2, 1, 0],
        };
        position.store(dir.path()).unwrap();
        assert_eq!(Position::load(dir.path()).unwrap(), position);
        assert_eq!(position.highest_sequence(), 9);
        assert!(
            position.is_dead(4, Priority::Keepalive) && !position.is_dead(10, Priority::Result)
        );

        let path = dir.path().join(FILE_NAME);
        let mut bytes = fs::read(&path).unwrap();
        bytes[10] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let error = Position::load(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("position") && error.contains("checksum"),
            "{error}"
        );
    }
}
