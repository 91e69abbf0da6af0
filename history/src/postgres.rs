//! The shared store: PostgreSQL (through `sqlx`), for sites that outgrow one node. Both
//! masters write to one database.
//!
//! **Two writers.** Every record has its natural key, so the second master's insert of a
//! record is a no-op (`ON CONFLICT DO NOTHING`). A last state is replaced only by a newer one,
//! by the merge's rule ([`vedette_protocol::merge::Stamp`]: the same writer's higher sequence,
//! else a time at least as late), which the upsert states in SQL because it decides between
//! two masters' writes inside the database.
//!
//! **Schema.** Versioned in `vedette_schema`; migrations run at start under an advisory lock
//! (two masters starting together migrate once), and a database whose version is newer than
//! this release's is refused untouched.
//!
//! **Outages.** A write that fails (the server restarted, the network broke) returns the error;
//! [`crate::writer::Writer`] retries it until it succeeds, and the pool opens new connections,
//! so the masters resume by themselves while the satellites keep spooling.
//!
//! The store's methods are synchronous like the trait: each runs its query on the store's own
//! small runtime and waits for it, from any thread.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Row, postgres::PgArguments, query::Query};
use vedette_crds::CheckState;
use vedette_protocol::merge::CheckKey;
use vedette_protocol::plan::CheckId;

use crate::availability::state_times;
use crate::filter::{
    LAST_STATE_CHECKS, Param, RANGE_CHECKS, availability_sql, history_filter, numbered,
};
use crate::last_state::LastState;
use crate::query::{
    Availability, AvailabilityQuery, CheckAvailability, HistoryPage, HistoryQuery, MAX_PAGE,
    StoredRecord,
};
use crate::record::{Kind, Record};
use crate::store::{Error, Pruned, Retention, Store, Write};

/// The schema, one migration per version (version = index + 1). Append, never edit.
pub const MIGRATIONS: &[&str] = &[r"
CREATE TABLE records (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    source TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    namespace TEXT NOT NULL,
    zone TEXT NOT NULL,
    host TEXT NOT NULL,
    rule_set TEXT NOT NULL,
    check_name TEXT NOT NULL,
    state SMALLINT,
    previous SMALLINT,
    hard SMALLINT,
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
    state SMALLINT NOT NULL,
    hard SMALLINT NOT NULL,
    last_hard SMALLINT NOT NULL,
    output TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    since_ms BIGINT NOT NULL,
    writer TEXT NOT NULL,
    writer_sequence BIGINT NOT NULL,
    PRIMARY KEY (host, namespace, rule_set, check_name)
);
"];

/// Key of the advisory lock migrations hold.
const MIGRATION_LOCK: i64 = 0x0076_6564_6574_7465; // "vedette"

/// How long a connection attempt or a query may take before it counts as failed.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The shared store; see the module documentation.
pub struct PostgresStore {
    pool: PgPool,
    runtime: Option<tokio::runtime::Runtime>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and migrates.
    pub fn open(url: &str) -> Result<PostgresStore, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("history-postgres")
            .enable_all()
            .build()
            .map_err(|e| Error::Postgres(format!("failed to start the runtime: {e}")))?;
        let display = without_password(url);
        let options = url
            .parse::<sqlx::postgres::PgConnectOptions>()
            .map_err(|e| Error::Postgres(format!("{display} is not a connection string: {e}")))?;
        let connect = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(TIMEOUT)
            .connect_with(options);
        let failed = format!("failed to connect to {display}");
        let pool = on(&runtime, async move {
            connect
                .await
                .map_err(|e| Error::Postgres(format!("{failed}: {e}")))
        })?;
        let store = PostgresStore {
            pool,
            runtime: Some(runtime),
        };
        store.run({
            let pool = store.pool.clone();
            async move { migrate(&pool, &display).await }
        })?;
        Ok(store)
    }

    /// Runs `work` on the store's runtime and waits for it.
    fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, Error>> + Send + 'static,
    ) -> Result<T, Error> {
        let runtime = self
            .runtime
            .as_ref()
            .expect("the runtime lives as long as the store");
        on(runtime, work)
    }
}

/// Runs `work` on `runtime` and waits for it from this thread, whatever runtime (if any) this
/// thread belongs to.
fn on<T: Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    work: impl Future<Output = Result<T, Error>> + Send + 'static,
) -> Result<T, Error> {
    let (done, wait) = std::sync::mpsc::channel();
    runtime.spawn(async move {
        let _ = done.send(work.await);
    });
    wait.recv()
        .map_err(|_| Error::Postgres("the store's runtime stopped".into()))?
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// `url` with the password replaced by `***`.
fn without_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// SQL built at run time. Audited: every such statement is assembled from this module's and
/// [`crate::filter`]'s constant fragments only, and every value is a bound parameter.
fn audited(sql: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(sql.to_owned())
}

fn database(error: sqlx::Error) -> Error {
    Error::Postgres(error.to_string())
}

async fn migrate(pool: &PgPool, name: &str) -> Result<(), Error> {
    let mut transaction = pool.begin().await.map_err(database)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *transaction)
        .await
        .map_err(database)?;
    sqlx::query("CREATE TABLE IF NOT EXISTS vedette_schema (version BIGINT NOT NULL)")
        .execute(&mut *transaction)
        .await
        .map_err(database)?;
    let found: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM vedette_schema")
        .fetch_one(&mut *transaction)
        .await
        .map_err(database)?;
    let found = found.unwrap_or(0);
    let supported = MIGRATIONS.len() as i64;
    if found > supported {
        return Err(Error::TooNew {
            path: name.to_owned(),
            found,
            supported,
        });
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        sqlx::raw_sql(*migration)
            .execute(&mut *transaction)
            .await
            .map_err(database)?;
        sqlx::query("DELETE FROM vedette_schema")
            .execute(&mut *transaction)
            .await
            .map_err(database)?;
        sqlx::query("INSERT INTO vedette_schema (version) VALUES ($1)")
            .bind(index as i64 + 1)
            .execute(&mut *transaction)
            .await
            .map_err(database)?;
        tracing::info!(
            message = "History database migrated.",
            version = index + 1,
            database = name
        );
    }
    transaction.commit().await.map_err(database)
}

fn code(state: CheckState) -> i16 {
    state.exit_code() as i16
}

fn state_from(code: Option<i16>) -> Option<CheckState> {
    code.map(|c| CheckState::from_exit_code(i32::from(c)))
}

fn ms(value: i64) -> u64 {
    value.max(0) as u64
}

fn bind_all<'q>(
    mut query: Query<'q, sqlx::Postgres, PgArguments>,
    params: Vec<Param>,
) -> Query<'q, sqlx::Postgres, PgArguments> {
    for param in params {
        query = match param {
            Param::Text(text) => query.bind(text),
            Param::Int(int) => query.bind(int),
        };
    }
    query
}

fn read_record(row: &PgRow) -> Result<StoredRecord, Error> {
    let kind: String = row.try_get("kind").map_err(database)?;
    let detail: String = row.try_get("detail").map_err(database)?;
    let get_text = |name: &str| row.try_get::<String, _>(name).map_err(database);
    let record = Record {
        kind: Kind::from_name(&kind)
            .ok_or_else(|| Error::Corrupt(format!("record kind {kind:?}")))?,
        at_ms: ms(row.try_get("at_ms").map_err(database)?),
        source: get_text("source")?,
        sequence: ms(row.try_get("sequence").map_err(database)?),
        namespace: get_text("namespace")?,
        zone: get_text("zone")?,
        host: get_text("host")?,
        rule_set: get_text("rule_set")?,
        check: get_text("check_name")?,
        state: state_from(row.try_get("state").map_err(database)?),
        previous: state_from(row.try_get("previous").map_err(database)?),
        hard: row
            .try_get::<Option<i16>, _>("hard")
            .map_err(database)?
            .map(|h| h != 0),
        message: get_text("message")?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
    };
    Ok(StoredRecord {
        id: row.try_get("id").map_err(database)?,
        record,
    })
}

/// Column arrays of `records`, for one `INSERT … SELECT FROM UNNEST(…)`.
#[derive(Default)]
struct RecordColumns {
    kind: Vec<String>,
    at_ms: Vec<i64>,
    source: Vec<String>,
    sequence: Vec<i64>,
    namespace: Vec<String>,
    zone: Vec<String>,
    host: Vec<String>,
    rule_set: Vec<String>,
    check: Vec<String>,
    state: Vec<Option<i16>>,
    previous: Vec<Option<i16>>,
    hard: Vec<Option<i16>>,
    message: Vec<String>,
    detail: Vec<String>,
}

impl RecordColumns {
    fn of(records: &[Record]) -> RecordColumns {
        let mut columns = RecordColumns::default();
        for r in records {
            columns.kind.push(r.kind.name().to_owned());
            columns.at_ms.push(r.at_ms as i64);
            columns.source.push(r.source.clone());
            columns.sequence.push(r.sequence as i64);
            columns.namespace.push(r.namespace.clone());
            columns.zone.push(r.zone.clone());
            columns.host.push(r.host.clone());
            columns.rule_set.push(r.rule_set.clone());
            columns.check.push(r.check.clone());
            columns.state.push(r.state.map(code));
            columns.previous.push(r.previous.map(code));
            columns.hard.push(r.hard.map(i16::from));
            columns.message.push(r.message.clone());
            columns.detail.push(r.detail.to_string());
        }
        columns
    }
}

const INSERT_RECORDS: &str = "INSERT INTO records (kind, at_ms, source, sequence, namespace, \
     zone, host, rule_set, check_name, state, previous, hard, message, detail) \
     SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::text[], \
     $6::text[], $7::text[], $8::text[], $9::text[], $10::smallint[], $11::smallint[], \
     $12::smallint[], $13::text[], $14::text[]) \
     ON CONFLICT (kind, source, sequence) DO NOTHING";

/// The merge's "which report is newer" rule, between two masters' writes (see the module
/// documentation).
const UPSERT_LAST_STATES: &str = "INSERT INTO last_states AS stored (host, namespace, rule_set, \
     check_name, zone, state, hard, last_hard, output, at_ms, since_ms, writer, writer_sequence) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
     $6::smallint[], $7::smallint[], $8::smallint[], $9::text[], $10::bigint[], $11::bigint[], \
     $12::text[], $13::bigint[]) \
     ON CONFLICT (host, namespace, rule_set, check_name) DO UPDATE SET zone = EXCLUDED.zone, \
     state = EXCLUDED.state, hard = EXCLUDED.hard, last_hard = EXCLUDED.last_hard, \
     output = EXCLUDED.output, at_ms = EXCLUDED.at_ms, since_ms = EXCLUDED.since_ms, \
     writer = EXCLUDED.writer, writer_sequence = EXCLUDED.writer_sequence \
     WHERE (stored.writer = EXCLUDED.writer AND EXCLUDED.writer_sequence > stored.writer_sequence) \
     OR (stored.writer <> EXCLUDED.writer AND EXCLUDED.at_ms >= stored.at_ms)";

async fn write(pool: PgPool, write: Write) -> Result<(), Error> {
    let mut transaction = pool.begin().await.map_err(database)?;
    if !write.records.is_empty() {
        let c = RecordColumns::of(&write.records);
        sqlx::query(INSERT_RECORDS)
            .bind(c.kind)
            .bind(c.at_ms)
            .bind(c.source)
            .bind(c.sequence)
            .bind(c.namespace)
            .bind(c.zone)
            .bind(c.host)
            .bind(c.rule_set)
            .bind(c.check)
            .bind(c.state)
            .bind(c.previous)
            .bind(c.hard)
            .bind(c.message)
            .bind(c.detail)
            .execute(&mut *transaction)
            .await
            .map_err(database)?;
    }
    // One row per check: a group holds the newest last. (One statement may not update a row
    // twice.)
    let newest: BTreeMap<&CheckKey, &LastState> =
        write.last_states.iter().map(|l| (&l.key, l)).collect();
    if !newest.is_empty() {
        let rows: Vec<&LastState> = newest.into_values().collect();
        let text = |f: fn(&LastState) -> String| rows.iter().map(|l| f(l)).collect::<Vec<_>>();
        sqlx::query(UPSERT_LAST_STATES)
            .bind(text(|l| l.key.host.clone()))
            .bind(text(|l| l.key.check.namespace.clone()))
            .bind(text(|l| l.key.check.rule_set.clone()))
            .bind(text(|l| l.key.check.rule.clone()))
            .bind(rows.iter().map(|l| l.zone.clone()).collect::<Vec<_>>())
            .bind(rows.iter().map(|l| code(l.state)).collect::<Vec<_>>())
            .bind(rows.iter().map(|l| i16::from(l.hard)).collect::<Vec<_>>())
            .bind(rows.iter().map(|l| code(l.last_hard)).collect::<Vec<_>>())
            .bind(text(|l| l.output.clone()))
            .bind(rows.iter().map(|l| l.at_ms as i64).collect::<Vec<_>>())
            .bind(rows.iter().map(|l| l.since_ms as i64).collect::<Vec<_>>())
            .bind(text(|l| l.writer.clone()))
            .bind(
                rows.iter()
                    .map(|l| l.writer_sequence as i64)
                    .collect::<Vec<_>>(),
            )
            .execute(&mut *transaction)
            .await
            .map_err(database)?;
    }
    transaction.commit().await.map_err(database)
}

async fn availability(pool: PgPool, query: AvailabilityQuery) -> Result<Availability, Error> {
    let mut pairs = std::collections::BTreeSet::new();
    let last = sqlx::query(audited(&numbered(LAST_STATE_CHECKS)))
        .bind(&query.namespace)
        .bind(&query.rule_set)
        .fetch_all(&pool)
        .await
        .map_err(database)?;
    let seen = sqlx::query(audited(&numbered(RANGE_CHECKS)))
        .bind(&query.namespace)
        .bind(&query.rule_set)
        .bind(query.from_ms as i64)
        .bind(query.to_ms as i64)
        .fetch_all(&pool)
        .await
        .map_err(database)?;
    for row in last.iter().chain(&seen) {
        let host: String = row.try_get(0).map_err(database)?;
        let check: String = row.try_get(1).map_err(database)?;
        if query.host.as_ref().is_none_or(|h| *h == host)
            && query.check.as_ref().is_none_or(|c| *c == check)
        {
            pairs.insert((host, check));
        }
    }
    let (before_sql, within_sql) = availability_sql(query.hard_only);
    let (before_sql, within_sql) = (numbered(&before_sql), numbered(&within_sql));
    let mut result = Availability {
        from_ms: query.from_ms,
        to_ms: query.to_ms,
        total: Default::default(),
        ok_share: 0.0,
        checks: Vec::new(),
    };
    for (host, check) in pairs {
        let key = |sql: &str| {
            sqlx::query(audited(sql))
                .bind(query.namespace.clone())
                .bind(query.rule_set.clone())
                .bind(check.clone())
                .bind(host.clone())
        };
        let initial = key(&before_sql)
            .bind(query.from_ms as i64)
            .fetch_optional(&pool)
            .await
            .map_err(database)?
            .map(|row| row.try_get::<Option<i16>, _>(0))
            .transpose()
            .map_err(database)?
            .flatten();
        let rows = key(&within_sql)
            .bind(query.from_ms as i64)
            .bind(query.to_ms as i64)
            .fetch_all(&pool)
            .await
            .map_err(database)?;
        let mut changes = Vec::with_capacity(rows.len());
        for row in rows {
            let at: i64 = row.try_get(0).map_err(database)?;
            let state: i16 = row.try_get(1).map_err(database)?;
            changes.push((ms(at), CheckState::from_exit_code(i32::from(state))));
        }
        let times = state_times(state_from(initial), &changes, query.from_ms, query.to_ms);
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

impl Store for PostgresStore {
    fn write(&self, batch: &Write) -> Result<(), Error> {
        if batch.is_empty() {
            return Ok(());
        }
        self.run(write(self.pool.clone(), batch.clone()))
    }

    fn last_states(&self) -> Result<Vec<LastState>, Error> {
        let pool = self.pool.clone();
        self.run(async move {
            let rows = sqlx::query(
                "SELECT host, namespace, rule_set, check_name, zone, state, hard, last_hard, \
                 output, at_ms, since_ms, writer, writer_sequence FROM last_states",
            )
            .fetch_all(&pool)
            .await
            .map_err(database)?;
            rows.iter()
                .map(|row| {
                    let state: i16 = row.try_get(5)?;
                    let hard: i16 = row.try_get(6)?;
                    let last_hard: i16 = row.try_get(7)?;
                    Ok(LastState {
                        key: CheckKey {
                            host: row.try_get(0)?,
                            check: CheckId {
                                namespace: row.try_get(1)?,
                                rule_set: row.try_get(2)?,
                                rule: row.try_get(3)?,
                            },
                        },
                        zone: row.try_get(4)?,
                        state: CheckState::from_exit_code(i32::from(state)),
                        hard: hard != 0,
                        last_hard: CheckState::from_exit_code(i32::from(last_hard)),
                        output: row.try_get(8)?,
                        at_ms: ms(row.try_get(9)?),
                        since_ms: ms(row.try_get(10)?),
                        writer: row.try_get(11)?,
                        writer_sequence: ms(row.try_get(12)?),
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(database)
        })
    }

    fn history(&self, query: &HistoryQuery) -> Result<HistoryPage, Error> {
        let limit = query.limit.clamp(1, MAX_PAGE);
        let (clause, mut params) = history_filter(query);
        params.push(Param::Int(limit as i64 + 1));
        let sql = numbered(&format!(
            "SELECT id, kind, at_ms, source, sequence, namespace, zone, host, rule_set, \
             check_name, state, previous, hard, message, detail FROM records {clause} \
             ORDER BY at_ms DESC, sequence DESC, id DESC LIMIT ?"
        ));
        let pool = self.pool.clone();
        self.run(async move {
            let rows = bind_all(sqlx::query(audited(&sql)), params)
                .fetch_all(&pool)
                .await
                .map_err(database)?;
            let mut records = rows
                .iter()
                .map(read_record)
                .collect::<Result<Vec<_>, _>>()?;
            let more = records.len() > limit;
            records.truncate(limit);
            let next = more
                .then(|| records.last().map(|r| r.cursor().encode()))
                .flatten();
            Ok(HistoryPage { records, next })
        })
    }

    fn availability(&self, query: &AvailabilityQuery) -> Result<Availability, Error> {
        self.run(availability(self.pool.clone(), query.clone()))
    }

    fn prune(&self, retention: &Retention, now_ms: u64, batch: usize) -> Result<Pruned, Error> {
        let pool = self.pool.clone();
        let retention = *retention;
        self.run(async move {
            let cutoff = now_ms.saturating_sub(retention.max_age_ms) as i64;
            let by_age = sqlx::query(
                "DELETE FROM records WHERE id IN \
                 (SELECT id FROM records WHERE at_ms < $1 ORDER BY at_ms LIMIT $2)",
            )
            .bind(cutoff)
            .bind(batch as i64)
            .execute(&pool)
            .await
            .map_err(database)?
            .rows_affected();
            let mut by_size = 0;
            if by_age < batch as u64 && used_bytes(&pool).await? > retention.max_bytes {
                by_size = sqlx::query(
                    "DELETE FROM records WHERE id IN \
                     (SELECT id FROM records ORDER BY at_ms LIMIT $1)",
                )
                .bind((batch as u64 - by_age) as i64)
                .execute(&pool)
                .await
                .map_err(database)?
                .rows_affected();
            }
            Ok(Pruned { by_age, by_size })
        })
    }

    fn namespaces(&self) -> Result<Vec<String>, Error> {
        let pool = self.pool.clone();
        self.run(async move {
            sqlx::query_scalar("SELECT DISTINCT namespace FROM last_states ORDER BY namespace")
                .fetch_all(&pool)
                .await
                .map_err(database)
        })
    }

    fn count(&self) -> Result<u64, Error> {
        let pool = self.pool.clone();
        self.run(async move {
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM records")
                .fetch_one(&pool)
                .await
                .map_err(database)?;
            Ok(ms(count))
        })
    }

    fn used_bytes(&self) -> Result<u64, Error> {
        let pool = self.pool.clone();
        self.run(async move { used_bytes(&pool).await })
    }
}

/// Bytes of both tables with their indexes.
async fn used_bytes(pool: &PgPool) -> Result<u64, Error> {
    let bytes: i64 = sqlx::query_scalar(
        "SELECT pg_total_relation_size('records') + pg_total_relation_size('last_states')",
    )
    .fetch_one(pool)
    .await
    .map_err(database)?;
    Ok(ms(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_appears_in_messages() {
        assert_eq!(
            without_password("postgres://vedette:s3cret@db:5432/vedette"),
            "postgres://vedette:***@db:5432/vedette"
        );
        assert_eq!(
            without_password("postgres://db/vedette"),
            "postgres://db/vedette"
        );
    }
}
