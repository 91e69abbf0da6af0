//! The store behind one trait: what the masters write (records and last states, in one
//! transaction) and what they ask. [`crate::sqlite::SqliteStore`] is the embedded one (a file
//! per master replica), [`crate::postgres::PostgresStore`] the shared one (both masters write
//! one database).
//!
//! **Durability rule.** [`Store::write`] returns only when the write is on disk (committed
//! with a sync); the masters acknowledge a satellite's batch only after its write returned
//! (through [`crate::writer::Writer`]), so an acknowledged entry's record survives `kill -9`
//! and power loss. Writing the same record again is a no-op (its natural key).

use crate::last_state::LastState;
use crate::outbox::{OutboxChange, OutboxEntry};
use crate::query::{Availability, AvailabilityQuery, HistoryPage, HistoryQuery};
use crate::record::Record;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database failed.
    #[error("the history store failed: {0}")]
    Database(#[from] rusqlite::Error),
    /// The PostgreSQL server failed or cannot be reached (the message names the database,
    /// never its password).
    #[error("the history database failed: {0}")]
    Postgres(String),
    /// The database file or its directory cannot be created.
    #[error("failed to create the history store's directory {0}")]
    Directory(std::path::PathBuf, #[source] std::io::Error),
    /// The store was written by a newer release; nothing was changed.
    #[error(
        "the history store {path} has schema version {found}, newer than the {supported} this \
         release knows: refusing to open it (run the newer release, or move the file away)"
    )]
    TooNew {
        /// The file.
        path: String,
        /// Its version.
        found: i64,
        /// The newest this release knows.
        supported: i64,
    },
    /// A stored value does not read back.
    #[error("the history store holds a value this release cannot read: {0}")]
    Corrupt(String),
}

/// What one write holds: records to add and last states to replace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Write {
    /// New records (the ones already stored are skipped).
    pub records: Vec<Record>,
    /// Last states, each replacing the one stored for its check.
    pub last_states: Vec<LastState>,
    /// Outbox changes, applied in order.
    pub outbox: Vec<OutboxChange>,
}

impl Write {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.last_states.is_empty() && self.outbox.is_empty()
    }

    /// Appends `other`, keeping the order.
    pub fn extend(&mut self, other: Write) {
        self.records.extend(other.records);
        self.last_states.extend(other.last_states);
        self.outbox.extend(other.outbox);
    }
}

/// How much history is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Records older than this are removed, ms.
    pub max_age_ms: u64,
    /// Past this many bytes of records the oldest are removed.
    pub max_bytes: u64,
}

/// 400 days.
pub const DEFAULT_MAX_AGE_DAYS: u64 = 400;
/// 20 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 20 << 30;

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_age_ms: DEFAULT_MAX_AGE_DAYS * 86_400_000,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// What one pruning step removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Records removed for their age.
    pub by_age: u64,
    /// Records removed for the size limit.
    pub by_size: u64,
}

/// The store; see the module documentation.
pub trait Store: Send + Sync + 'static {
    /// Writes `write` in one transaction, durably (see the module documentation).
    fn write(&self, write: &Write) -> Result<(), Error>;
    /// Every check's last state.
    fn last_states(&self) -> Result<Vec<LastState>, Error>;
    /// A page of records matching `query`, newest first.
    fn history(&self, query: &HistoryQuery) -> Result<HistoryPage, Error>;
    /// Availability over a range.
    fn availability(&self, query: &AvailabilityQuery) -> Result<Availability, Error>;
    /// Removes at most `batch` records that `retention` no longer keeps at `now_ms`.
    fn prune(&self, retention: &Retention, now_ms: u64, batch: usize) -> Result<Pruned, Error>;
    /// The outbox entries not done, oldest first.
    fn outbox(&self) -> Result<Vec<OutboxEntry>, Error>;
    /// Which of `keys` are in the outbox and not done.
    fn outbox_pending(&self, keys: &[String]) -> Result<Vec<String>, Error>;
    /// The outbox's fence: raises the stored Lease generation to `generation` if it is lower,
    /// and tells whether `generation` is (now) the highest, i.e. whether its holder may send.
    /// A holder deposed by a later generation gets `false` ([`crate::outbox`]).
    fn fence(&self, generation: u64) -> Result<bool, Error>;
    /// The namespaces that have checks (what a caller may be allowed to read).
    fn namespaces(&self) -> Result<Vec<String>, Error>;
    /// Records stored.
    fn count(&self) -> Result<u64, Error>;
    /// Bytes the store uses.
    fn used_bytes(&self) -> Result<u64, Error>;
    /// How many writes may commit at once. Only a store whose writes commute may say more than
    /// one: records by their natural key, last states by a newer-wins rule inside the store.
    fn concurrent_writes(&self) -> usize {
        1
    }
}
