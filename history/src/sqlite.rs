//! The embedded store: one SQLite file per master replica (WAL, synced commits), bundled into
//! the binary, nothing to install.
//!
//! **Schema.** Versioned with `PRAGMA user_version`; [`MIGRATIONS`] run at open, each in a
//! transaction, and a file whose version is newer than this release's is refused untouched.
//! Records carry the columns every kind has and the number of their series (what they are
//! about, [`crate::series`]), with indexes for the queries the API serves: a check's timeline
//! and a rule set's availability (`records_series`, in the order the API returns them, so no
//! query sorts), an application's history (`records_namespace`), everything by time
//! (`records_time`), and the natural key (`records_key`, which makes a second write of a record
//! a no-op). Version 2 moved (namespace, rule set, check, host) into `series`.
//!
//! **Connections.** One for writes, one for reads (WAL lets a reader run beside the writer).
//! The write-ahead log is copied into the file every [`WAL_PAGES`] pages, not SQLite's default
//! 1,000 (measured in docs/benchmarks.md: the writer's inserts went from ~37,000/s to ~52,000/s).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use vedette_crds::CheckState;
use vedette_protocol::merge::CheckKey;
use vedette_protocol::plan::CheckId;

use crate::availability::state_times;
use crate::filter::{
    LAST_STATE_CHECKS, NEWEST_FIRST, Param, RANGE_CHECKS, RECORD_COLUMNS, RECORDS_FROM,
    availability_sql, history_filter,
};
use crate::last_state::LastState;
use crate::outbox::{DONE_KEPT_MS, OutboxChange, OutboxEntry};
use crate::query::{
    Availability, AvailabilityQuery, CheckAvailability, HistoryPage, HistoryQuery, MAX_PAGE,
    StoredRecord,
};
use crate::record::{Kind, Record};
use crate::series::{SeriesCache, SeriesKey, numbers_of};
use crate::store::{Error, Pruned, Retention, Store, Write};

/// The schema, one migration per version (version = index + 1). Append, never edit.
pub const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE records (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    source TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    namespace TEXT NOT NULL,
    zone TEXT NOT NULL,
    host TEXT NOT NULL,
    rule_set TEXT NOT NULL,
    check_name TEXT NOT NULL,
    state INTEGER,
    previous INTEGER,
    hard INTEGER,
    message TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE UNIQUE INDEX records_key ON records (kind, source, sequence);
CREATE INDEX records_check ON records (namespace, rule_set, check_name, host, at_ms, sequence);
CREATE INDEX records_namespace ON records (namespace, at_ms);
CREATE INDEX records_time ON records (at_ms);
CREATE TABLE last_states (
    host TEXT NOT NULL,
    namespace TEXT NOT NULL,
    rule_set TEXT NOT NULL,
    check_name TEXT NOT NULL,
    zone TEXT,
    state INTEGER NOT NULL,
    hard INTEGER NOT NULL,
    last_hard INTEGER NOT NULL,
    output TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    since_ms INTEGER NOT NULL,
    writer TEXT NOT NULL,
    writer_sequence INTEGER NOT NULL,
    PRIMARY KEY (host, namespace, rule_set, check_name)
) WITHOUT ROWID;
",
    r"
CREATE TABLE series (
    id INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL,
    rule_set TEXT NOT NULL,
    check_name TEXT NOT NULL,
    host TEXT NOT NULL
);
CREATE UNIQUE INDEX series_key ON series (namespace, rule_set, check_name, host);
INSERT INTO series (namespace, rule_set, check_name, host)
    SELECT DISTINCT namespace, rule_set, check_name, host FROM records;
CREATE TABLE records_v2 (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    source TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    series INTEGER NOT NULL REFERENCES series (id),
    namespace TEXT NOT NULL,
    zone TEXT NOT NULL,
    state INTEGER,
    previous INTEGER,
    hard INTEGER,
    message TEXT NOT NULL,
    detail TEXT NOT NULL
);
INSERT INTO records_v2 (id, kind, at_ms, source, sequence, series, namespace, zone, state,
                        previous, hard, message, detail)
    SELECT r.id, r.kind, r.at_ms, r.source, r.sequence, s.id, r.namespace, r.zone, r.state,
           r.previous, r.hard, r.message, r.detail
    FROM records r JOIN series s ON s.namespace = r.namespace AND s.rule_set = r.rule_set
        AND s.check_name = r.check_name AND s.host = r.host;
DROP TABLE records;
ALTER TABLE records_v2 RENAME TO records;
CREATE UNIQUE INDEX records_key ON records (kind, source, sequence);
CREATE INDEX records_series ON records (series, at_ms, sequence);
CREATE INDEX records_namespace ON records (namespace, at_ms);
CREATE INDEX records_time ON records (at_ms);
",
    r"
CREATE TABLE outbox (
    key TEXT PRIMARY KEY,
    receiver TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    payload TEXT NOT NULL,
    done_ms INTEGER
);
CREATE INDEX outbox_pending ON outbox (created_ms) WHERE done_ms IS NULL;
",
    r"
CREATE TABLE outbox_fence (id INTEGER PRIMARY KEY CHECK (id = 1), generation INTEGER NOT NULL);
INSERT INTO outbox_fence (id, generation) VALUES (1, 0);
",
];

/// Log pages past which a commit copies the write-ahead log into the database file (64 MiB of
/// 4 KiB pages; SQLite's default of 1,000 made every satellite-sized group commit also a
/// checkpoint, and a page that many commits touch was copied once per commit).
const WAL_PAGES: i64 = 16_384;

/// The embedded store; see the module documentation.
pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
    series: SeriesCache,
}

impl SqliteStore {
    /// Opens (creating it and its directory if needed) the store at `path` and migrates it.
    pub fn open(path: &Path) -> Result<SqliteStore, Error> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::Directory(dir.to_path_buf(), e))?;
        }
        let mut writer = Connection::open(path)?;
        refuse_newer(&writer, path)?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        writer.pragma_update(None, "synchronous", "FULL")?;
        writer.pragma_update(None, "cache_size", -65_536)?;
        writer.pragma_update(None, "wal_autocheckpoint", WAL_PAGES)?;
        writer.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut writer, path)?;
        let reader = Connection::open(path)?;
        reader.busy_timeout(std::time::Duration::from_secs(5))?;
        reader.pragma_update(None, "cache_size", -65_536)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
            series: SeriesCache::default(),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Refuses a store written by a newer release, before anything is written to it.
fn refuse_newer(connection: &Connection, path: &Path) -> Result<i64, Error> {
    let found: i64 = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let supported = MIGRATIONS.len() as i64;
    if found > supported {
        return Err(Error::TooNew {
            path: path.display().to_string(),
            found,
            supported,
        });
    }
    Ok(found)
}

/// Brings the schema of `connection` to the newest version.
fn migrate(connection: &mut Connection, path: &Path) -> Result<(), Error> {
    let found = refuse_newer(connection, path)?;
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let transaction = connection.transaction()?;
        transaction.execute_batch(migration)?;
        transaction.pragma_update(None, "user_version", index as i64 + 1)?;
        transaction.commit()?;
        tracing::info!(message = "History store migrated.", version = index + 1, path = %path.display());
    }
    Ok(())
}

fn state_code(state: Option<CheckState>) -> Option<i64> {
    state.map(|s| i64::from(s.exit_code()))
}

fn state_from(code: Option<i64>) -> Option<CheckState> {
    code.map(|c| CheckState::from_exit_code(c as i32))
}

fn ms(value: i64) -> u64 {
    value.max(0) as u64
}

fn read_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, String, Record)> {
    let kind: String = row.get(1)?;
    let detail: String = row.get(14)?;
    let record = Record {
        kind: Kind::StateChange,
        at_ms: ms(row.get(2)?),
        source: row.get(3)?,
        sequence: ms(row.get(4)?),
        namespace: row.get(5)?,
        zone: row.get(6)?,
        host: row.get(7)?,
        rule_set: row.get(8)?,
        check: row.get(9)?,
        state: state_from(row.get(10)?),
        previous: state_from(row.get(11)?),
        hard: row.get::<_, Option<i64>>(12)?.map(|h| h != 0),
        message: row.get(13)?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
    };
    Ok((row.get(0)?, kind, record))
}

fn stored(row: (i64, String, Record)) -> Result<StoredRecord, Error> {
    let (id, kind, mut record) = row;
    record.kind =
        Kind::from_name(&kind).ok_or_else(|| Error::Corrupt(format!("record kind {kind:?}")))?;
    Ok(StoredRecord { id, record })
}

fn sqlite_value(param: Param) -> Value {
    match param {
        Param::Text(text) => Value::Text(text),
        Param::Int(int) => Value::Integer(int),
    }
}

impl Store for SqliteStore {
    fn write(&self, write: &Write) -> Result<(), Error> {
        if write.is_empty() {
            return Ok(());
        }
        let mut connection = self.writer();
        let transaction = connection.transaction()?;
        let fresh = add_series(&transaction, self.series.unknown(&write.records))?;
        {
            let series = numbers_of(&write.records, &self.series, &fresh)
                .ok_or_else(|| Error::Corrupt("a record's series was not looked up".into()))?;
            let mut insert = transaction.prepare_cached(
                "INSERT OR IGNORE INTO records (kind, at_ms, source, sequence, series, \
                 namespace, zone, state, previous, hard, message, detail) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )?;
            for (record, series) in write.records.iter().zip(series) {
                insert.execute(params![
                    record.kind.name(),
                    record.at_ms as i64,
                    record.source,
                    record.sequence as i64,
                    series,
                    record.namespace,
                    record.zone,
                    state_code(record.state),
                    state_code(record.previous),
                    record.hard.map(i64::from),
                    record.message,
                    record.detail.to_string(),
                ])?;
            }
            // The masters' merge already decided each state is the newest: replace.
            let mut replace = transaction.prepare_cached(
                "INSERT OR REPLACE INTO last_states (host, namespace, rule_set, check_name, zone, \
                 state, hard, last_hard, output, at_ms, since_ms, writer, writer_sequence) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )?;
            for last in &write.last_states {
                replace.execute(params![
                    last.key.host,
                    last.key.check.namespace,
                    last.key.check.rule_set,
                    last.key.check.rule,
                    last.zone,
                    state_code(Some(last.state)),
                    i64::from(last.hard),
                    state_code(Some(last.last_hard)),
                    last.output,
                    last.at_ms as i64,
                    last.since_ms as i64,
                    last.writer,
                    last.writer_sequence as i64,
                ])?;
            }
            apply_outbox(&transaction, &write.outbox)?;
        }
        transaction.commit()?;
        self.series.learn(fresh);
        Ok(())
    }

    fn last_states(&self) -> Result<Vec<LastState>, Error> {
        let connection = self.reader();
        let mut select = connection.prepare(
            "SELECT host, namespace, rule_set, check_name, zone, state, hard, last_hard, output, \
             at_ms, since_ms, writer, writer_sequence FROM last_states",
        )?;
        let rows = select.query_map([], |row| {
            Ok(LastState {
                key: CheckKey {
                    host: row.get(0)?,
                    check: CheckId {
                        namespace: row.get(1)?,
                        rule_set: row.get(2)?,
                        rule: row.get(3)?,
                    },
                },
                zone: row.get(4)?,
                state: CheckState::from_exit_code(row.get::<_, i64>(5)? as i32),
                hard: row.get::<_, i64>(6)? != 0,
                last_hard: CheckState::from_exit_code(row.get::<_, i64>(7)? as i32),
                output: row.get(8)?,
                at_ms: ms(row.get(9)?),
                since_ms: ms(row.get(10)?),
                writer: row.get(11)?,
                writer_sequence: ms(row.get(12)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn history(&self, query: &HistoryQuery) -> Result<HistoryPage, Error> {
        let limit = query.limit.clamp(1, MAX_PAGE);
        let (clause, params) = history_filter(query);
        let mut values: Vec<Value> = params.into_iter().map(sqlite_value).collect();
        values.push(Value::Integer(limit as i64 + 1));
        let sql =
            format!("SELECT {RECORD_COLUMNS} FROM {RECORDS_FROM} {clause} {NEWEST_FIRST} LIMIT ?");
        let connection = self.reader();
        let mut select = connection.prepare_cached(&sql)?;
        let mut records = select
            .query_map(params_from_iter(values), read_record)?
            .map(|row| stored(row?))
            .collect::<Result<Vec<_>, _>>()?;
        let more = records.len() > limit;
        records.truncate(limit);
        let next = more
            .then(|| records.last().map(|r| r.cursor().encode()))
            .flatten();
        Ok(HistoryPage { records, next })
    }

    fn availability(&self, query: &AvailabilityQuery) -> Result<Availability, Error> {
        let connection = self.reader();
        let checks = availability_checks(&connection, query)?;
        let (before_sql, within_sql) = availability_sql(query.hard_only);
        let mut before = connection.prepare_cached(&before_sql)?;
        let mut within = connection.prepare_cached(&within_sql)?;
        let mut result = Availability {
            from_ms: query.from_ms,
            to_ms: query.to_ms,
            total: Default::default(),
            ok_share: 0.0,
            checks: Vec::new(),
        };
        for (host, check) in checks {
            let (namespace, rule_set) = (&query.namespace, &query.rule_set);
            let (from, to) = (query.from_ms as i64, query.to_ms as i64);
            let initial: Option<Option<i64>> = before
                .query_row(params![namespace, rule_set, check, host, from], |row| {
                    row.get(0)
                })
                .optional()?;
            let changes = within
                .query_map(params![namespace, rule_set, check, host, from, to], |row| {
                    Ok((ms(row.get(0)?), row.get::<_, i64>(1)?))
                })?
                .map(|row| row.map(|(at, code)| (at, CheckState::from_exit_code(code as i32))))
                .collect::<Result<Vec<_>, _>>()?;
            let times = state_times(
                state_from(initial.flatten()),
                &changes,
                query.from_ms,
                query.to_ms,
            );
            result.total = result.total.plus(times);
            result.checks.push(CheckAvailability {
                host,
                check,
                ok_share: times.ok_share(),
                times,
            });
        }
        result.ok_share = result.total.ok_share();
        Ok(result)
    }

    fn prune(&self, retention: &Retention, now_ms: u64, batch: usize) -> Result<Pruned, Error> {
        let connection = self.writer();
        let cutoff = now_ms.saturating_sub(retention.max_age_ms) as i64;
        let by_age = connection.execute(
            "DELETE FROM records WHERE id IN \
             (SELECT id FROM records WHERE at_ms < ? ORDER BY at_ms LIMIT ?)",
            params![cutoff, batch as i64],
        )? as u64;
        let mut by_size = 0;
        if by_age < batch as u64 && used_bytes(&connection)? > retention.max_bytes {
            by_size = connection.execute(
                "DELETE FROM records WHERE id IN (SELECT id FROM records ORDER BY at_ms LIMIT ?)",
                params![(batch as u64 - by_age) as i64],
            )? as u64;
        }
        connection.execute(
            "DELETE FROM outbox WHERE done_ms < ?",
            params![now_ms.saturating_sub(DONE_KEPT_MS) as i64],
        )?;
        Ok(Pruned { by_age, by_size })
    }

    fn outbox(&self) -> Result<Vec<OutboxEntry>, Error> {
        let connection = self.reader();
        let mut select = connection.prepare_cached(
            "SELECT key, receiver, created_ms, payload FROM outbox WHERE done_ms IS NULL \
             ORDER BY created_ms, key",
        )?;
        let rows = select.query_map([], |row| {
            Ok(OutboxEntry {
                key: row.get(0)?,
                receiver: row.get(1)?,
                created_ms: ms(row.get(2)?),
                payload: row.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn outbox_pending(&self, keys: &[String]) -> Result<Vec<String>, Error> {
        let connection = self.reader();
        let mut select =
            connection.prepare_cached("SELECT 1 FROM outbox WHERE key = ? AND done_ms IS NULL")?;
        let mut pending = Vec::new();
        for key in keys {
            if select.exists(params![key])? {
                pending.push(key.clone());
            }
        }
        Ok(pending)
    }

    fn fence(&self, generation: u64) -> Result<bool, Error> {
        let connection = self.writer();
        connection.execute(
            "UPDATE outbox_fence SET generation = ?1 WHERE id = 1 AND generation < ?1",
            params![generation as i64],
        )?;
        let stored: i64 = connection.query_row(
            "SELECT generation FROM outbox_fence WHERE id = 1",
            [],
            |row| row.get(0),
        )?;
        Ok(stored as u64 == generation)
    }

    fn namespaces(&self) -> Result<Vec<String>, Error> {
        let connection = self.reader();
        let mut select = connection
            .prepare_cached("SELECT DISTINCT namespace FROM last_states ORDER BY namespace")?;
        let rows = select.query_map([], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn count(&self) -> Result<u64, Error> {
        let connection = self.reader();
        Ok(ms(connection.query_row(
            "SELECT COUNT(*) FROM records",
            [],
            |row| row.get(0),
        )?))
    }

    fn used_bytes(&self) -> Result<u64, Error> {
        used_bytes(&self.reader())
    }
}

/// Applies outbox changes in order (a second add of a key, or a done of an unknown one, is a
/// no-op).
fn apply_outbox(transaction: &Connection, changes: &[OutboxChange]) -> Result<(), Error> {
    for change in changes {
        match change {
            OutboxChange::Add(entry) => {
                transaction
                    .prepare_cached(
                        "INSERT OR IGNORE INTO outbox (key, receiver, created_ms, payload) \
                         VALUES (?, ?, ?, ?)",
                    )?
                    .execute(params![
                        entry.key,
                        entry.receiver,
                        entry.created_ms as i64,
                        entry.payload
                    ])?;
            }
            OutboxChange::Done { key, at_ms } => {
                transaction
                    .prepare_cached(
                        "UPDATE outbox SET done_ms = ? WHERE key = ? AND done_ms IS NULL",
                    )?
                    .execute(params![*at_ms as i64, key])?;
            }
        }
    }
    Ok(())
}

/// Adds the series in `keys` (those already stored are kept) and reads their numbers.
fn add_series(
    transaction: &rusqlite::Transaction<'_>,
    keys: Vec<SeriesKey>,
) -> Result<std::collections::HashMap<SeriesKey, i64>, Error> {
    let mut numbers = std::collections::HashMap::with_capacity(keys.len());
    if keys.is_empty() {
        return Ok(numbers);
    }
    let mut insert = transaction.prepare_cached(
        "INSERT OR IGNORE INTO series (namespace, rule_set, check_name, host) VALUES (?, ?, ?, ?)",
    )?;
    let mut select = transaction.prepare_cached(
        "SELECT id FROM series WHERE namespace = ? AND rule_set = ? AND check_name = ? AND host = ?",
    )?;
    for key in keys {
        let fields = params![key.namespace, key.rule_set, key.check, key.host];
        insert.execute(fields)?;
        let id: i64 = select.query_row(fields, |row| row.get(0))?;
        numbers.insert(key, id);
    }
    Ok(numbers)
}

/// Bytes in pages that hold data (free pages are reused before the file grows).
fn used_bytes(connection: &Connection) -> Result<u64, Error> {
    let pragma = |name: &str| -> Result<i64, Error> {
        Ok(connection.pragma_query_value(None, name, |row| row.get(0))?)
    };
    let used = pragma("page_count")? - pragma("freelist_count")?;
    Ok(ms(used * pragma("page_size")?))
}

/// The `(host, check)` pairs of `query`: every check of the rule set that has a last state or
/// a record in the range, narrowed by its host and check filters.
fn availability_checks(
    connection: &Connection,
    query: &AvailabilityQuery,
) -> Result<Vec<(String, String)>, Error> {
    let mut pairs = std::collections::BTreeSet::new();
    let mut last = connection.prepare_cached(LAST_STATE_CHECKS)?;
    for row in last.query_map(params![query.namespace, query.rule_set], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })? {
        pairs.insert(row?);
    }
    let mut seen = connection.prepare_cached(RANGE_CHECKS)?;
    for row in seen.query_map(
        params![
            query.namespace,
            query.rule_set,
            query.from_ms as i64,
            query.to_ms as i64
        ],
        |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)),
    )? {
        pairs.insert(row?);
    }
    Ok(pairs
        .into_iter()
        .filter(|(host, check)| {
            query.host.as_ref().is_none_or(|h| h == host)
                && query.check.as_ref().is_none_or(|c| c == check)
        })
        .collect())
}
