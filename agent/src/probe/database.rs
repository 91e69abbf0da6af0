//! Database servers: the database probe logs in to PostgreSQL or MySQL/MariaDB over one new
//! connection (no pool: a health check must see the server accept a new login), runs the
//! check's query as one prepared statement in a read-only transaction that it rolls back, and
//! closes the connection. The value is the time, the first column of the first row or the
//! number of rows. Everything is bounded by the check's timeout, on the server too
//! (`statement_timeout`, `max_execution_time`, `max_statement_time`).

use std::future::Future;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use sqlx::mysql::{
    MySqlConnectOptions, MySqlConnection, MySqlDatabaseError, MySqlRow, MySqlSslMode,
};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgRow, PgSslMode};
use sqlx::{AssertSqlSafe, Column, ConnectOptions, Connection, Executor, Row, TypeInfo, ValueRef};
use vedette_crds::check::{DatabaseEngine, DatabaseMetric, DatabaseProbe, PortOrParameter};
use vedette_crds::template::CheckState;

use super::{ProbeError, ProbeOutput, Result, seconds};

/// Most rows read from a result; the rest are not fetched and the count shows `10000+`.
const MAX_ROWS: usize = 10_000;

/// Most characters of a server's error message shown.
const MAX_MESSAGE_CHARS: usize = 200;

/// PostgreSQL's SQLSTATE for a statement cancelled by `statement_timeout`.
const POSTGRES_QUERY_CANCELED: &str = "57014";

/// MySQL's `ER_QUERY_TIMEOUT` (`max_execution_time`) and MariaDB's `ER_STATEMENT_TIMEOUT`
/// (`max_statement_time`).
const MYSQL_STATEMENT_TIMEOUTS: [u16; 2] = [3024, 1969];

/// Where and as whom the probe logs in; never printed whole (it holds the password).
struct Login<'a> {
    host: &'a str,
    port: u16,
    user: &'a str,
    database: Option<&'a str>,
    password: Option<String>,
    tls: bool,
}

impl Login<'_> {
    fn target(&self) -> String {
        format!("{} port {}", self.host, self.port)
    }

    /// `message` without the password, should a server or driver ever echo it.
    fn redact(&self, message: &str) -> String {
        match self.password.as_deref() {
            Some(password) if !password.is_empty() => message.replace(password, "********"),
            _ => message.to_owned(),
        }
    }
}

/// What one run saw once logged in.
struct Answer {
    /// The server's product and version, such as `PostgreSQL 15.10`.
    server: String,
    /// Time to connect and log in.
    connect: Duration,
    /// Time to run the query and read its rows.
    query: Duration,
    /// Rows read, at most `MAX_ROWS`.
    rows: usize,
    /// More than `MAX_ROWS` rows came back.
    truncated: bool,
    /// The first column of the first row as a number, why it is not one, or `None` without
    /// rows.
    first: Option<std::result::Result<f64, String>>,
}

/// The database probe, with the password read from the check's Secret.
pub(crate) async fn probe(
    spec: &DatabaseProbe,
    password: Option<String>,
    timeout: Duration,
) -> Result<ProbeOutput> {
    let login = Login {
        host: super::substituted("host", &spec.host)?,
        port: port(spec)?,
        user: super::substituted("user", &spec.user)?,
        database: spec
            .database
            .as_deref()
            .map(|database| super::substituted("database", database))
            .transpose()?,
        password,
        tls: spec.tls,
    };
    let deadline = Instant::now() + timeout;
    let answer = match spec.engine {
        DatabaseEngine::PostgreSQL => postgres(&login, &spec.query, deadline, timeout).await,
        DatabaseEngine::MySQL => mysql(&login, &spec.query, deadline, timeout).await,
    }?;
    Ok(output(&answer, &login, spec.metric))
}

/// The port of the check, or the engine's usual one.
pub(crate) fn port(spec: &DatabaseProbe) -> Result<u16> {
    let default = match spec.engine {
        DatabaseEngine::PostgreSQL => 5432,
        DatabaseEngine::MySQL => 3306,
    };
    super::port(spec.port.as_ref().unwrap_or(&PortOrParameter::Int(default)))
}

/// The output of a run: value, line and perfdata.
fn output(answer: &Answer, login: &Login<'_>, metric: DatabaseMetric) -> ProbeOutput {
    let total = seconds(answer.connect + answer.query);
    let rows = if answer.truncated {
        format!("{MAX_ROWS}+ rows")
    } else if answer.rows == 1 {
        "1 row".to_owned()
    } else {
        format!("{} rows", answer.rows)
    };
    let place = format!("{} on {}", answer.server, login.target());
    let value = match metric {
        DatabaseMetric::Seconds => Ok(total),
        DatabaseMetric::Rows => Ok(answer.rows as f64),
        DatabaseMetric::Value => match &answer.first {
            Some(Ok(value)) => Ok(*value),
            Some(Err(why)) => Err((CheckState::Unknown, why.clone())),
            None => Err((CheckState::Warning, "the query returned no rows".to_owned())),
        },
    };
    let measured = match &value {
        Ok(value) if metric == DatabaseMetric::Value => {
            format!("{total:.3} second response time, value {value}, {rows}, {place}")
        }
        _ => format!("{total:.3} second response time, {rows}, {place}"),
    };
    let mut out = ProbeOutput::measured("database", *value.as_ref().unwrap_or(&f64::NAN), "")
        .with_perf("time", total, "s")
        .with_perf("connect", seconds(answer.connect), "s")
        .with_perf("query", seconds(answer.query), "s")
        .with_perf("rows", answer.rows as f64, "");
    match value {
        Ok(value) => {
            out.output = measured;
            if metric == DatabaseMetric::Value {
                out = out.with_perf("value", value, "");
            }
        }
        Err((state, why)) => {
            out.output = format!("{why}; {measured}");
            out = out.with_failure(state, why);
        }
    }
    out
}

/// Runs `work` until `deadline`, or fails with a timeout naming `what`.
async fn until<T>(
    deadline: Instant,
    timeout: Duration,
    what: impl FnOnce() -> String,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    tokio::time::timeout(remaining, work)
        .await
        .map_err(|_| ProbeError::Timeout {
            what: what(),
            seconds: seconds(timeout),
        })?
}

/// Reads up to `MAX_ROWS` rows (and one more to tell whether there were more), keeping the
/// first: `(first, rows, truncated)`.
async fn read_rows<R>(
    rows: impl Stream<Item = std::result::Result<R, sqlx::Error>>,
) -> std::result::Result<(Option<R>, usize, bool), sqlx::Error> {
    let mut rows = std::pin::pin!(rows);
    let mut first = None;
    let mut count = 0;
    while let Some(row) = rows.next().await {
        let row = row?;
        if count == MAX_ROWS {
            return Ok((first, count, true));
        }
        if first.is_none() {
            first = Some(row);
        }
        count += 1;
    }
    Ok((first, count, false))
}

/// A number from text: `42`, ` 3.5 `, `-1e3`; not `NaN` or `inf`.
fn number_from_text(text: &str) -> Option<f64> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|value| value.is_finite())
}

/// `message` cut to `MAX_MESSAGE_CHARS` characters.
fn bounded(message: &str) -> String {
    let message = message.trim();
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((end, _)) => format!("{}...", &message[..end]),
        None => message.to_owned(),
    }
}

/// Why a value is not a number, naming its column and type.
fn not_a_number(column: &str, type_name: &str) -> String {
    format!("the first column ({column}, {type_name}) is not a number")
}

/// A failure to connect or log in: refused, unreachable, TLS, authentication.
fn login_error(error: &sqlx::Error, login: &Login<'_>) -> ProbeError {
    let reason = match error {
        sqlx::Error::Database(database) if database.code().is_some_and(|c| c.starts_with("28")) => {
            format!("authentication failed for user {}", login.user)
        }
        sqlx::Error::Database(database) => bounded(database.message()),
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::Tls(tls) => format!("tls: {tls}"),
        other => bounded(&other.to_string()),
    };
    ProbeError::Connect {
        target: login.target(),
        reason: login.redact(&reason),
    }
}

/// A failure once logged in: the server's message, or a timeout when the server cancelled
/// the statement for running too long.
fn query_error(
    error: &sqlx::Error,
    login: &Login<'_>,
    timeout: Duration,
    timed_out: impl FnOnce(&dyn sqlx::error::DatabaseError) -> bool,
) -> ProbeError {
    match error {
        sqlx::Error::Database(database) if timed_out(database.as_ref()) => ProbeError::Timeout {
            what: format!("query on {}", login.target()),
            seconds: seconds(timeout),
        },
        sqlx::Error::Database(database) => ProbeError::Unexpected(format!(
            "query failed on {}: {}",
            login.target(),
            login.redact(&bounded(database.message()))
        )),
        other => ProbeError::Unexpected(format!(
            "query failed on {}: {}",
            login.target(),
            login.redact(&bounded(&other.to_string()))
        )),
    }
}

/// Logs in to PostgreSQL, runs the query in a read-only transaction, rolls it back.
async fn postgres(
    login: &Login<'_>,
    query: &str,
    deadline: Instant,
    timeout: Duration,
) -> Result<Answer> {
    let started = Instant::now();
    let mut options = PgConnectOptions::new_without_pgpass()
        .host(login.host)
        .port(login.port)
        .username(login.user)
        .application_name("vedette")
        .ssl_mode(if login.tls {
            PgSslMode::VerifyFull
        } else {
            PgSslMode::Prefer
        })
        .options([
            ("statement_timeout", timeout.as_millis().max(1).to_string()),
            ("default_transaction_read_only", "on".to_owned()),
        ])
        .disable_statement_logging();
    if let Some(password) = &login.password {
        options = options.password(password);
    }
    if let Some(database) = login.database {
        options = options.database(database);
    }
    let connect = async {
        PgConnection::connect_with(&options)
            .await
            .map_err(|error| login_error(&error, login))
    };
    let mut connection = until(
        deadline,
        timeout,
        || format!("connect to {}", login.target()),
        connect,
    )
    .await?;
    let connected = started.elapsed();
    let server = postgres_version(connection.server_version_num());
    let timed_out =
        |e: &dyn sqlx::error::DatabaseError| e.code().as_deref() == Some(POSTGRES_QUERY_CANCELED);
    let run = async {
        let read_only = async {
            connection.execute("BEGIN READ ONLY").await?;
            let statement = sqlx::query(AssertSqlSafe(query)).persistent(false);
            let (first, rows, truncated) = read_rows(statement.fetch(&mut connection)).await?;
            let first = first.map(|row| postgres_first_value(&row));
            Ok((first, rows, truncated))
        };
        read_only
            .await
            .map_err(|error: sqlx::Error| query_error(&error, login, timeout, timed_out))
    };
    let (first, rows, truncated) = until(
        deadline,
        timeout,
        || format!("query on {}", login.target()),
        run,
    )
    .await?;
    let query_time = started.elapsed() - connected;
    if !truncated {
        // A truncated result still has rows on the wire: the connection is dropped instead,
        // which rolls back on the server.
        let finish = async {
            let _ = connection.execute("ROLLBACK").await;
            let _ = connection.close().await;
            Ok(())
        };
        let _ = until(deadline, timeout, String::new, finish).await;
    }
    Ok(Answer {
        server,
        connect: connected,
        query: query_time,
        rows,
        truncated,
        first,
    })
}

/// `PostgreSQL 15.10` from `server_version_num` (150010; 90624 for 9.6.24).
fn postgres_version(number: Option<u32>) -> String {
    match number {
        Some(n) if n >= 100_000 => format!("PostgreSQL {}.{}", n / 10_000, n % 10_000),
        Some(n) => format!("PostgreSQL {}.{}.{}", n / 10_000, n / 100 % 100, n % 100),
        None => "PostgreSQL".to_owned(),
    }
}

/// The first column of a PostgreSQL row as a number.
fn postgres_first_value(row: &PgRow) -> std::result::Result<f64, String> {
    let column = row
        .columns()
        .first()
        .ok_or("the query returns no columns")?;
    let name = column.name();
    let raw = row.try_get_raw(0).map_err(|e| e.to_string())?;
    let type_name = raw.type_info().name().to_owned();
    if raw.is_null() {
        return Err(format!("the first column ({name}, {type_name}) is NULL"));
    }
    let decoded = match type_name.as_str() {
        "BOOL" => row
            .try_get::<bool, _>(0)
            .map(|b| Some(f64::from(u8::from(b)))),
        "INT2" => row.try_get::<i16, _>(0).map(|n| Some(f64::from(n))),
        "INT4" => row.try_get::<i32, _>(0).map(|n| Some(f64::from(n))),
        "INT8" => row.try_get::<i64, _>(0).map(|n| Some(n as f64)),
        "OID" => row
            .try_get::<sqlx::postgres::types::Oid, _>(0)
            .map(|n| Some(f64::from(n.0))),
        "FLOAT4" => row.try_get::<f32, _>(0).map(|n| Some(f64::from(n))),
        "FLOAT8" => row.try_get::<f64, _>(0).map(Some),
        "NUMERIC" => Ok(raw.as_bytes().ok().and_then(numeric_from_binary)),
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" | "UNKNOWN" => {
            row.try_get_unchecked::<&str, _>(0).map(number_from_text)
        }
        _ => Ok(None),
    };
    match decoded {
        Ok(Some(value)) if value.is_finite() => Ok(value),
        _ => Err(not_a_number(name, &type_name)),
    }
}

/// A PostgreSQL `numeric` in binary format: digit count, weight, sign and scale (16 bits
/// each, big-endian), then base-10000 digits; `None` for NaN, infinities or bad bytes.
fn numeric_from_binary(bytes: &[u8]) -> Option<f64> {
    let word = |i: usize| {
        bytes
            .get(2 * i..2 * i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let digits = usize::from(word(0)?);
    let weight = i32::from(word(1)? as i16);
    let sign = word(2)?;
    let mut value = 0.0;
    for i in 0..digits {
        let digit = f64::from(word(4 + i)?);
        value += digit * 10_000f64.powi(weight - i as i32);
    }
    match sign {
        0x0000 => Some(value),
        0x4000 => Some(-value),
        _ => None,
    }
}

/// Logs in to MySQL or MariaDB, sets the server-side statement limit, runs the query in a
/// read-only transaction, rolls it back.
async fn mysql(
    login: &Login<'_>,
    query: &str,
    deadline: Instant,
    timeout: Duration,
) -> Result<Answer> {
    let started = Instant::now();
    // No `SET NAMES`, `time_zone` or `sql_mode` after login: the handshake already asks for
    // utf8mb4, and the probe only reads numbers and text.
    let mut options = MySqlConnectOptions::new()
        .host(login.host)
        .port(login.port)
        .username(login.user)
        .ssl_mode(if login.tls {
            MySqlSslMode::VerifyIdentity
        } else {
            MySqlSslMode::Preferred
        })
        .pipes_as_concat(false)
        .no_engine_substitution(false)
        .timezone(None)
        .set_names(false)
        .disable_statement_logging();
    if let Some(password) = &login.password {
        options = options.password(password);
    }
    if let Some(database) = login.database {
        options = options.database(database);
    }
    let connect = async {
        MySqlConnection::connect_with(&options)
            .await
            .map_err(|error| login_error(&error, login))
    };
    let mut connection = until(
        deadline,
        timeout,
        || format!("connect to {}", login.target()),
        connect,
    )
    .await?;
    let connected = started.elapsed();
    let timed_out = |e: &dyn sqlx::error::DatabaseError| {
        e.try_downcast_ref::<MySqlDatabaseError>()
            .is_some_and(|e| MYSQL_STATEMENT_TIMEOUTS.contains(&e.number()))
    };
    let run = async {
        let read_only = async {
            // Text protocol for the probe's own statements; the check's query is prepared
            // (one statement only) and left to the connection's cache: closing it would be
            // a reply-less packet, which Nagle's algorithm and a delayed ACK hold for 40 ms
            // before the next one.
            let version: String = connection.fetch_one("SELECT VERSION()").await?.try_get(0)?;
            connection
                .execute(AssertSqlSafe(mysql_statement_limit(&version, timeout)))
                .await?;
            // The session default too: DDL commits the transaction implicitly, and the
            // statement after it would otherwise run in a read-write one.
            connection
                .execute("SET SESSION TRANSACTION READ ONLY")
                .await?;
            connection.execute("START TRANSACTION READ ONLY").await?;
            let statement = sqlx::query(AssertSqlSafe(query));
            let (first, rows, truncated) = read_rows(statement.fetch(&mut connection)).await?;
            let first = first.map(|row| mysql_first_value(&row));
            Ok((mysql_version(&version), first, rows, truncated))
        };
        read_only
            .await
            .map_err(|error: sqlx::Error| query_error(&error, login, timeout, timed_out))
    };
    let (server, first, rows, truncated) = until(
        deadline,
        timeout,
        || format!("query on {}", login.target()),
        run,
    )
    .await?;
    let query_time = started.elapsed() - connected;
    if !truncated {
        let finish = async {
            let _ = connection.execute("ROLLBACK").await;
            let _ = connection.close().await;
            Ok(())
        };
        let _ = until(deadline, timeout, String::new, finish).await;
    }
    Ok(Answer {
        server,
        connect: connected,
        query: query_time,
        rows,
        truncated,
        first,
    })
}

/// The statement that limits this session's statements to `timeout`: MariaDB's
/// `max_statement_time` (seconds), MySQL's `max_execution_time` (milliseconds, SELECT only).
fn mysql_statement_limit(version: &str, timeout: Duration) -> String {
    if version.contains("MariaDB") {
        format!(
            "SET SESSION max_statement_time = {:.3}",
            timeout.as_secs_f64()
        )
    } else {
        format!(
            "SET SESSION max_execution_time = {}",
            timeout.as_millis().max(1)
        )
    }
}

/// `MariaDB 10.11.19` or `MySQL 8.0.36` from `VERSION()`
/// (`10.11.19-MariaDB-0+deb12u1`, `8.0.36-0ubuntu0.22.04.1`).
fn mysql_version(version: &str) -> String {
    let number = version.split('-').next().unwrap_or(version);
    if version.contains("MariaDB") {
        format!("MariaDB {number}")
    } else {
        format!("MySQL {number}")
    }
}

/// The first column of a MySQL row as a number.
fn mysql_first_value(row: &MySqlRow) -> std::result::Result<f64, String> {
    let column = row
        .columns()
        .first()
        .ok_or("the query returns no columns")?;
    let name = column.name();
    let raw = row.try_get_raw(0).map_err(|e| e.to_string())?;
    let type_name = raw.type_info().name().to_owned();
    if raw.is_null() {
        return Err(format!("the first column ({name}, {type_name}) is NULL"));
    }
    // Integers (BOOLEAN is TINYINT(1)), unsigned ones, floats, then text and DECIMAL, which
    // the server sends as text.
    let value = row
        .try_get::<i64, _>(0)
        .map(|n| n as f64)
        .or_else(|_| row.try_get::<u64, _>(0).map(|n| n as f64))
        .or_else(|_| row.try_get::<f64, _>(0))
        .ok()
        .or_else(|| {
            let text = if type_name == "DECIMAL" {
                row.try_get_unchecked::<&str, _>(0).ok()
            } else {
                row.try_get::<&str, _>(0).ok()
            };
            text.and_then(number_from_text)
        });
    match value {
        Some(value) if value.is_finite() => Ok(value),
        _ => Err(not_a_number(name, &type_name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_binary_decodes_integers_fractions_and_signs() {
        // 42: one digit, weight 0.
        assert_eq!(
            numeric_from_binary(&[0, 1, 0, 0, 0, 0, 0, 0, 0, 42]),
            Some(42.0)
        );
        // -12345.5: digits 1, 2345, 5000; weight 1.
        let bytes = [0, 3, 0, 1, 0x40, 0, 0, 1, 0, 1, 0x09, 0x29, 0x13, 0x88];
        assert_eq!(numeric_from_binary(&bytes), Some(-12345.5));
        // 0: no digits.
        assert_eq!(numeric_from_binary(&[0, 0, 0, 0, 0, 0, 0, 0]), Some(0.0));
        // NaN and truncated bytes.
        assert_eq!(numeric_from_binary(&[0, 0, 0, 0, 0xC0, 0, 0, 0]), None);
        assert_eq!(numeric_from_binary(&[0, 2, 0, 0, 0, 0, 0, 0, 0, 1]), None);
    }

    #[test]
    fn text_numbers_are_finite_only() {
        assert_eq!(number_from_text(" 42 "), Some(42.0));
        assert_eq!(number_from_text("-1e3"), Some(-1000.0));
        assert_eq!(number_from_text("NaN"), None);
        assert_eq!(number_from_text("inf"), None);
        assert_eq!(number_from_text("forty-two"), None);
    }

    #[test]
    fn versions_name_the_product() {
        assert_eq!(postgres_version(Some(150010)), "PostgreSQL 15.10");
        assert_eq!(postgres_version(Some(90624)), "PostgreSQL 9.6.24");
        assert_eq!(
            mysql_version("10.11.19-MariaDB-0+deb12u1"),
            "MariaDB 10.11.19"
        );
        assert_eq!(mysql_version("8.0.36-0ubuntu0.22.04.1"), "MySQL 8.0.36");
        assert!(
            mysql_statement_limit("10.11.19-MariaDB", Duration::from_secs(5))
                .contains("max_statement_time = 5.000")
        );
        assert!(
            mysql_statement_limit("8.0.36", Duration::from_secs(5))
                .contains("max_execution_time = 5000")
        );
    }

    #[test]
    fn messages_are_bounded_and_passwords_redacted() {
        let long = "x".repeat(500);
        assert_eq!(bounded(&long).chars().count(), MAX_MESSAGE_CHARS + 3);
        let login = Login {
            host: "db",
            port: 5432,
            user: "probe",
            database: None,
            password: Some("s3cret".into()),
            tls: false,
        };
        assert_eq!(login.redact("bad s3cret"), "bad ********");
    }
}
