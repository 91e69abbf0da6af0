//! Vedette's history: what the masters remember across restarts.
//!
//! | module | concept |
//! | --- | --- |
//! | [`record`] | one thing that happened, with its natural key |
//! | [`last_state`] | a check's last known state |
//! | [`query`] | filters, pages and cursors, availability questions and answers |
//! | [`availability`] | time per state over a range (pure) |
//! | [`series`] | what records are about, interned as a number |
//! | [`filter`] | what a history query selects, as SQL for both stores |
//! | [`outbox`] | notifications decided and not yet delivered, their durability rule |
//! | [`store`] | the store's trait, its durability rule, retention settings |
//! | [`sqlite`] | the embedded store (one SQLite file per master replica) |
//! | [`postgres`] | the shared store (PostgreSQL, both masters write one database) |
//! | [`writer`] | group commits in submission order, callers told when durable |
//! | [`retention`] | pruning in small batches beside ingest |

pub mod availability;
pub mod filter;
pub mod last_state;
pub mod outbox;
pub mod postgres;
pub mod query;
pub mod record;
pub mod retention;
pub mod series;
pub mod sqlite;
pub mod store;
pub mod writer;

pub use last_state::LastState;
pub use outbox::{OutboxChange, OutboxEntry};
pub use postgres::PostgresStore;
pub use record::{Kind, Record};
pub use sqlite::SqliteStore;
pub use store::{Error, Retention, Store, Write};
pub use writer::Writer;
