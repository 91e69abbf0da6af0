//! Lines of a log file matching a pattern since the last run. Each path and pattern keeps a
//! cursor: the open file, its inode and the offset after the last complete line read. A new
//! inode at the path (rotation) finishes the old file through the kept handle, then reads the
//! new one from its start; a file shorter than the offset, or whose bytes before the offset are
//! no longer the last line read (truncated in place, then grown past the offset before the
//! next run), is read from its start.
//! The first run starts at the end of the file: lines written before the agent watched are not
//! counted. A file that appears later is read from its start. The path is the node's, resolved
//! under its root at every run (see [`HostPaths::on_node`]); the output names it as configured.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use regex::Regex;
use vedette_crds::check::LogProbe;

use super::{HostPaths, ProbeError, ProbeOutput, Result, blocking};

/// Where reading a log file stands.
enum Cursor {
    /// The file did not exist at the last run.
    Missing,
    /// The file read so far.
    Open {
        file: File,
        inode: Inode,
        offset: u64,
        /// Up to [`TAIL_BYTES`] bytes ending at `offset`, as read.
        tail: Vec<u8>,
    },
}

/// How much of what was read last is kept to recognise the file at the next run.
const TAIL_BYTES: u64 = 64;

/// The bytes of `file` ending at `offset`, up to [`TAIL_BYTES`]; empty if unreadable.
fn tail_at(file: &File, offset: u64) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let start = offset.saturating_sub(TAIL_BYTES);
    let mut tail = vec![0; (offset - start) as usize];
    match file.read_exact_at(&mut tail, start) {
        Ok(()) => tail,
        Err(_) => Vec::new(),
    }
}

/// Whether the file still holds `tail` just before `offset` (it was not rewritten).
fn still_holds(file: &File, offset: u64, tail: &[u8]) -> bool {
    tail.is_empty() || tail_at(file, offset) == tail
}

type Key = (String, String);

/// Cursors by path and pattern.
#[derive(Default)]
pub(crate) struct LogState {
    cursors: Mutex<HashMap<Key, Arc<Mutex<Option<Cursor>>>>>,
}

impl LogState {
    /// The log probe.
    pub(crate) async fn probe(
        &self,
        spec: &LogProbe,
        pattern: Arc<Regex>,
        host: &HostPaths,
    ) -> Result<ProbeOutput> {
        let path = super::substituted("path", &spec.path)?.to_owned();
        let cursor = {
            let mut cursors = self
                .cursors
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let key = (path.clone(), spec.pattern.clone());
            Arc::clone(cursors.entry(key).or_default())
        };
        let read = blocking({
            let path = path.clone();
            let pattern = Arc::clone(&pattern);
            let host = host.clone();
            move || {
                let mut cursor = cursor
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                advance(&mut cursor, &host.on_node(&path), &path, &pattern)
            }
        })
        .await?;
        let plural = if read.matches == 1 { "line" } else { "lines" };
        let mut text = format!(
            "{} {plural} matching '{}' in {path} since the last read",
            read.matches,
            pattern.as_str()
        );
        if !read.notes.is_empty() {
            text.push_str(&format!(" ({})", read.notes.join(", ")));
        }
        Ok(ProbeOutput::measured("log", read.matches as f64, text)
            .with_perf("matches", read.matches as f64, "")
            .with_perf("bytes_read", read.bytes as f64, "B"))
    }
}

/// What one run read.
#[derive(Debug, Default)]
struct Read {
    matches: u64,
    bytes: u64,
    notes: Vec<&'static str>,
}

/// Where a business process's `logMatch` stands in its file (see the module documentation
/// for how rotation and truncation are followed).
#[derive(Default)]
pub(crate) struct LogCursor(Option<Cursor>);

impl LogCursor {
    /// Lines matching `pattern` since the last call (none at the first: it starts at the end).
    pub(crate) fn new_matches(&mut self, at: &Path, path: &str, pattern: &Regex) -> Result<u64> {
        advance(&mut self.0, at, path, pattern).map(|read| read.matches)
    }
}

/// A file just opened, with its device and inode and its length.
struct Opened {
    file: File,
    inode: Inode,
    length: u64,
}

/// Device and inode numbers: what stays the same while a path names the same file.
type Inode = (u64, u64);

/// Opens `at`, the file the check names `path`.
fn open(at: &Path, path: &str) -> Result<Option<Opened>> {
    match File::open(at) {
        Ok(file) => {
            let metadata = file
                .metadata()
                .map_err(|error| ProbeError::read(path, error))?;
            let inode = (metadata.dev(), metadata.ino());
            Ok(Some(Opened {
                file,
                inode,
                length: metadata.len(),
            }))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(ProbeError::read(path, error)),
    }
}

/// The inode now at `at` (the file the check names `path`), and its length.
fn inode_at(at: &Path, path: &str) -> Result<Option<(Inode, u64)>> {
    match std::fs::metadata(at) {
        Ok(metadata) => Ok(Some(((metadata.dev(), metadata.ino()), metadata.len()))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(ProbeError::read(path, error)),
    }
}

/// Reads on from `cursor` in `at`, the file the check names `path`.
fn advance(cursor: &mut Option<Cursor>, at: &Path, path: &str, pattern: &Regex) -> Result<Read> {
    let mut read = Read::default();
    match cursor.take() {
        None => {
            *cursor = Some(match open(at, path)? {
                Some(Opened {
                    file,
                    inode,
                    length,
                }) => {
                    read.notes.push("first read starts at the end");
                    Cursor::Open {
                        tail: tail_at(&file, length),
                        file,
                        inode,
                        offset: length,
                    }
                }
                None => {
                    read.notes.push("file does not exist yet");
                    Cursor::Missing
                }
            });
        }
        Some(Cursor::Missing) => *cursor = Some(read_new(at, path, pattern, &mut read)?),
        Some(Cursor::Open {
            mut file,
            inode,
            mut offset,
            tail,
        }) => match inode_at(at, path)? {
            Some((now, length)) if now == inode => {
                if length < offset || !still_holds(&file, offset, &tail) {
                    read.notes.push("truncated");
                    offset = 0;
                }
                offset = count_lines(&mut file, offset, pattern, &mut read, path)?;
                *cursor = Some(Cursor::Open {
                    tail: tail_at(&file, offset),
                    file,
                    inode,
                    offset,
                });
            }
            _ => {
                read.notes.push("rotated");
                // The rest of the old file, through the handle kept since the last run.
                count_lines(&mut file, offset, pattern, &mut read, path)?;
                *cursor = Some(read_new(at, path, pattern, &mut read)?);
            }
        },
    }
    Ok(read)
}

/// Opens the file now at `at` (named `path`) and reads it from its start.
fn read_new(at: &Path, path: &str, pattern: &Regex, read: &mut Read) -> Result<Cursor> {
    Ok(match open(at, path)? {
        Some(Opened {
            mut file, inode, ..
        }) => {
            let offset = count_lines(&mut file, 0, pattern, read, path)?;
            Cursor::Open {
                tail: tail_at(&file, offset),
                file,
                inode,
                offset,
            }
        }
        None => Cursor::Missing,
    })
}

/// Counts matching complete lines from `offset`; returns the offset after the last complete
/// line, so a line still being written is read whole next time.
fn count_lines(
    file: &mut File,
    offset: u64,
    pattern: &Regex,
    read: &mut Read,
    path: &str,
) -> Result<u64> {
    let failed = |error| ProbeError::read(path, error);
    file.seek(SeekFrom::Start(offset)).map_err(failed)?;
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let mut line = Vec::new();
    let mut offset = offset;
    loop {
        line.clear();
        let length = reader.read_until(b'\n', &mut line).map_err(failed)?;
        if length == 0 || line.last() != Some(&b'\n') {
            return Ok(offset);
        }
        offset += length as u64;
        read.bytes += length as u64;
        let text = String::from_utf8_lossy(&line);
        if pattern.is_match(text.trim_end_matches(['\n', '\r'])) {
            read.matches += 1;
        }
    }
}
