//! Errors of the spool; each names the file (and offset) at fault.

use std::path::PathBuf;
use std::sync::Arc;

/// Result alias for spool operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in the spool.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A filesystem operation failed.
    #[error("failed to {action} {path}: {source}")]
    Io {
        /// What was being done ("create spool directory", "fsync segment", …).
        action: &'static str,
        /// The file or directory at fault.
        path: PathBuf,
        /// The underlying error (shared: one failed batch fails many appends).
        #[source]
        source: Arc<std::io::Error>,
    },
    /// Another process holds the spool directory's lock.
    #[error("spool directory {0} is in use by another process")]
    Locked(PathBuf),
    /// The position file exists but cannot be trusted.
    #[error("position file {path} is corrupt: {reason}")]
    CorruptPosition {
        /// The position file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A segment changed under the spool: a record is not where the index says.
    #[error("record {sequence} in {path} at offset {offset} failed its checksum on read")]
    CorruptRead {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the record's frame.
        offset: u64,
        /// Sequence number the index expected there.
        sequence: u64,
    },
    /// The payload is larger than the configured maximum.
    #[error("record of {size} bytes exceeds the maximum of {max} bytes")]
    RecordTooLarge {
        /// Payload size.
        size: usize,
        /// Configured maximum.
        max: usize,
    },
    /// An acknowledgement names a sequence number that was never made durable.
    #[error("cannot acknowledge up to sequence {requested}: the last durable sequence is {last}")]
    AckBeyondEnd {
        /// Sequence number the upstream acknowledged.
        requested: u64,
        /// Highest durable sequence number.
        last: u64,
    },
    /// The writer thread stopped (after a panic or a shutdown).
    #[error("spool writer for {0} has stopped")]
    WriterStopped(PathBuf),
    /// The spool was closed: the process is shutting down and takes no new entries.
    #[error("spool {0} is closed: shutting down, no new entries are taken")]
    Closed(PathBuf),
}

impl Error {
    /// Builds an [`Error::Io`].
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            action,
            path: path.into(),
            source: Arc::new(source),
        }
    }

    /// Short variant name, for metric labels.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::Locked(_) => "locked",
            Error::CorruptPosition { .. } => "corrupt_position",
            Error::CorruptRead { .. } => "corrupt_read",
            Error::RecordTooLarge { .. } => "record_too_large",
            Error::AckBeyondEnd { .. } => "ack_beyond_end",
            Error::WriterStopped(_) => "writer_stopped",
            Error::Closed(_) => "closed",
        }
    }
}
