//! Cursor files: how far each reader of a spool (each master a satellite forwards to) has
//! acknowledged, so that a restart resumes every reader where it was.
//!
//! One small file per reader in `cursors/` beside the segments, named after a hash of the
//! reader's name (its URL) and holding the name itself, the cursor and a CRC. A file is
//! rewritten whole and atomically (the position file's `replace_file`), so a crash leaves the
//! old or the new cursor. A cursor is only ever a lower bound of what the reader has: an old
//! one means some entries are sent again, which the `(sender, sequence)` rules make harmless.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::error::{Error, Result};
use super::position::{replace_file, sync_dir};

const MAGIC: [u8; 8] = *b"VSCUR1\0\0";
const DIR_NAME: &str = "cursors";
const TEMP_SUFFIX: &str = ".tmp";
/// Magic, cursor, name length, and the CRC after the name.
const FIXED_LEN: usize = 8 + 8 + 4 + 4;

/// What [`CursorStore::open`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LoadedCursors {
    /// Per reader given to `open`, in that order: its stored cursor, if it has one.
    pub cursors: Vec<Option<u64>>,
    /// Readers whose files were removed because they are no longer configured.
    pub removed: Vec<String>,
    /// Files that could not be read or trusted (removed; their reader starts over).
    pub damaged: Vec<PathBuf>,
}

/// The cursor files of one spool directory.
#[derive(Debug, Clone)]
pub struct CursorStore {
    dir: PathBuf,
}

impl CursorStore {
    /// Opens `spool_dir/cursors` for `readers`, loading their cursors; files of other readers
    /// (and unreadable files) are removed, so a reader taken out of the configuration no
    /// longer holds entries back.
    pub fn open(spool_dir: &Path, readers: &[String]) -> Result<(CursorStore, LoadedCursors)> {
        let dir = spool_dir.join(DIR_NAME);
        fs::create_dir_all(&dir).map_err(|e| Error::io("create cursor directory", &dir, e))?;
        let mut loaded = LoadedCursors {
            cursors: vec![None; readers.len()],
            ..LoadedCursors::default()
        };
        let entries = fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))?;
        let mut removals = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| Error::io("list", &dir, e))?.path();
            let bytes = fs::read(&path).map_err(|e| Error::io("read cursor file", &path, e))?;
            let is_temporary = path.to_string_lossy().ends_with(TEMP_SUFFIX);
            match decode(&bytes) {
                _ if is_temporary => removals.push(path),
                Ok((name, cursor)) => match readers.iter().position(|r| *r == name) {
                    Some(index) if path.file_name() == Some(file_name(&name).as_ref()) => {
                        loaded.cursors[index] = Some(cursor);
                    }
                    _ => {
                        loaded.removed.push(name);
                        removals.push(path);
                    }
                },
                Err(_) => {
                    loaded.damaged.push(path.clone());
                    removals.push(path);
                }
            }
        }
        for path in &removals {
            fs::remove_file(path).map_err(|e| Error::io("remove cursor file", path, e))?;
        }
        if !removals.is_empty() {
            sync_dir(&dir)?;
        }
        Ok((CursorStore { dir }, loaded))
    }

    /// Durably records that `reader` has every entry up to and including `cursor`.
    pub fn store(&self, reader: &str, cursor: u64) -> Result<()> {
        let name = file_name(reader);
        let temp = format!("{name}{TEMP_SUFFIX}");
        replace_file(&self.dir, &name, &temp, &encode(reader, cursor))
    }
}

/// The file of `reader`: 16 hex digits of the SHA-256 of its name (URLs are not file names).
fn file_name(reader: &str) -> String {
    let digest = Sha256::digest(reader.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn encode(reader: &str, cursor: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(FIXED_LEN + reader.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&cursor.to_le_bytes());
    out.extend_from_slice(&(reader.len() as u32).to_le_bytes());
    out.extend_from_slice(reader.as_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn decode(bytes: &[u8]) -> std::result::Result<(String, u64), &'static str> {
    if bytes.len() < FIXED_LEN || bytes[..8] != MAGIC {
        return Err("bad magic or length");
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().expect("four bytes")) {
        return Err("checksum mismatch");
    }
    let cursor = u64::from_le_bytes(body[8..16].try_into().expect("eight bytes"));
    let name_len = u32::from_le_bytes(body[16..20].try_into().expect("four bytes")) as usize;
    if body.len() != 20 + name_len {
        return Err("wrong length");
    }
    let name = String::from_utf8(body[20..].to_vec()).map_err(|_| "name is not UTF-8")?;
    Ok((name, cursor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readers(urls: &[&str]) -> Vec<String> {
        urls.iter().map(|u| (*u).to_owned()).collect()
    }

    #[test]
    fn stores_loads_and_removes_cursors_of_readers_no_longer_configured() {
        let dir = tempfile::tempdir().unwrap();
        let both = readers(&["http://m-0:8080", "http://m-1:8080"]);
        let (store, loaded) = CursorStore::open(dir.path(), &both).unwrap();
        assert_eq!(loaded.cursors, [None, None]);
        store.store(&both[0], 7).unwrap();
        store.store(&both[1], 3).unwrap();
        store.store(&both[1], 5).unwrap();
        let (_, loaded) = CursorStore::open(dir.path(), &both).unwrap();
        assert_eq!(loaded.cursors, [Some(7), Some(5)]);

        let second_only = readers(&["http://m-1:8080"]);
        let (_, loaded) = CursorStore::open(dir.path(), &second_only).unwrap();
        assert_eq!(loaded.cursors, [Some(5)]);
        assert_eq!(loaded.removed, ["http://m-0:8080"]);
        let (_, loaded) = CursorStore::open(dir.path(), &both).unwrap();
        assert_eq!(loaded.cursors, [None, Some(5)]);
        assert_eq!(fs::read_dir(dir.path().join(DIR_NAME)).unwrap().count(), 1);
    }

    #[test]
    fn damaged_and_temporary_files_are_removed_and_their_reader_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let one = readers(&["http://m-0:8080"]);
        let (store, _) = CursorStore::open(dir.path(), &one).unwrap();
        store.store(&one[0], 9).unwrap();
        let path = dir.path().join(DIR_NAME).join(file_name(&one[0]));
        let mut bytes = fs::read(&path).unwrap();
        bytes[9] ^= 1;
        fs::write(&path, &bytes).unwrap();
        fs::write(path.with_extension("tmp"), b"half written").unwrap();
        let (_, loaded) = CursorStore::open(dir.path(), &one).unwrap();
        assert_eq!(loaded.cursors, [None]);
        assert_eq!(loaded.damaged, [path]);
        assert_eq!(fs::read_dir(dir.path().join(DIR_NAME)).unwrap().count(), 0);
    }

    #[test]
    fn decoding_rejects_every_truncation() {
        let bytes = encode("http://m-0:8080", 42);
        assert_eq!(decode(&bytes), Ok(("http://m-0:8080".to_owned(), 42)));
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "accepted {len} bytes");
        }
    }
}
