//! The database probe against real servers on loopback: PostgreSQL and MariaDB, each started
//! by this test binary in a temporary directory, with a password-authenticated user.

mod probe_asserts;
use probe_asserts::perf;

#[path = "common/database.rs"]
mod servers;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use servers::{MariaDb, PASSWORD, Postgres};
use vedette_agent::probe::{ProbeOutput, Prober};
use vedette_agent::state::evaluate;
use vedette_crds::CheckSpec;
use vedette_crds::check::{
    CheckSecret, DatabaseEngine, DatabaseMetric, DatabaseProbe, PortOrParameter,
};
use vedette_crds::template::CheckState;
use vedette_protocol::range::Range;

const TIMEOUT: Duration = Duration::from_secs(10);

/// The timeout of the slow-query cases.
const SHORT_TIMEOUT: Duration = Duration::from_secs(2);

fn secret() -> CheckSecret {
    CheckSecret {
        name: "database".into(),
        key: "password".into(),
        namespace: Some("ns".into()),
    }
}

/// A prober that knows `password` as the value of [`secret`].
fn prober_with(password: &str) -> Prober {
    let prober = Prober::new();
    prober.set_secrets(BTreeMap::from([(secret().plan_key(), password.to_owned())]));
    prober
}

/// A check of database `vedette` on 127.0.0.1 as `probe`, with the password Secret.
fn check(engine: DatabaseEngine, port: u16, query: &str, metric: DatabaseMetric) -> CheckSpec {
    CheckSpec {
        database: Some(DatabaseProbe {
            engine,
            host: "127.0.0.1".into(),
            port: Some(PortOrParameter::Int(port.into())),
            database: Some("vedette".into()),
            user: "probe".into(),
            password_secret: Some(secret()),
            query: query.into(),
            metric,
            tls: false,
        }),
        ..Default::default()
    }
}

fn assert_ok(output: &ProbeOutput) {
    assert!(output.failure.is_none(), "expected no failure: {output:?}");
    assert!(output.value.is_finite(), "{output:?}");
    assert_eq!(output.probe, "database");
}

fn assert_failed(output: &ProbeOutput, state: CheckState, reason: &str) {
    let (found, message) = output
        .failure
        .as_ref()
        .unwrap_or_else(|| panic!("expected a failure: {output:?}"));
    assert_eq!(*found, state, "{output:?}");
    assert!(
        message.contains(reason),
        "expected {reason:?} in {message:?}"
    );
}

/// One engine's server, as the cases see it.
struct Server {
    engine: DatabaseEngine,
    port: u16,
    /// The product in the output line, such as `PostgreSQL 15`.
    product: String,
    /// A query that takes 30 seconds.
    slow: &'static str,
    /// A query returning 5 rows.
    five_rows: &'static str,
    /// A query returning more rows than the probe reads.
    many_rows: &'static str,
}

impl Server {
    fn check(&self, query: &str, metric: DatabaseMetric) -> CheckSpec {
        check(self.engine, self.port, query, metric)
    }

    async fn run(&self, query: &str, metric: DatabaseMetric) -> ProbeOutput {
        prober_with(PASSWORD)
            .run(&self.check(query, metric), TIMEOUT)
            .await
    }
}

/// `SELECT 1`: seconds, one row, the engine and address in the line, the perfdata.
async fn select_one_measures_seconds(server: &Server) {
    let output = server.run("SELECT 1", DatabaseMetric::Seconds).await;
    assert_ok(&output);
    assert!(output.value > 0.0 && output.value < TIMEOUT.as_secs_f64());
    assert_eq!(perf(&output, "time"), output.value);
    assert!(perf(&output, "connect") > 0.0 && perf(&output, "query") > 0.0);
    assert_eq!(perf(&output, "rows"), 1.0);
    let line = output.line(CheckState::Ok);
    assert!(line.starts_with("DATABASE OK - "), "{line}");
    assert!(line.contains("second response time, 1 row, "), "{line}");
    assert!(line.contains(&server.product), "{line}");
    assert!(
        line.contains(&format!(" on 127.0.0.1 port {}|", server.port)),
        "{line}"
    );
}

/// Value 42 from integers, decimals, text and a count; thresholds apply to it.
async fn value_is_the_first_column(server: &Server, queries: &[&str]) {
    for query in queries {
        let output = server.run(query, DatabaseMetric::Value).await;
        assert_ok(&output);
        assert_eq!(output.value, 42.0, "{query}: {output:?}");
        assert_eq!(perf(&output, "value"), 42.0);
        assert!(output.output.contains("value 42, 1 row"), "{output:?}");
        let warning = Range::parse("40").unwrap();
        let critical = Range::parse("50").unwrap();
        assert_eq!(
            evaluate(output.value, Some(&warning), Some(&critical)),
            CheckState::Warning
        );
    }
    let output = server.run("SELECT 1 = 1", DatabaseMetric::Value).await;
    assert_ok(&output);
    assert_eq!(output.value, 1.0, "a true boolean is 1: {output:?}");
}

/// Rows of a multi-row query, and the cap on a larger one.
async fn rows_are_counted_up_to_the_cap(server: &Server) {
    let output = server.run(server.five_rows, DatabaseMetric::Rows).await;
    assert_ok(&output);
    assert_eq!(output.value, 5.0, "{output:?}");
    assert!(output.output.contains("5 rows"), "{output:?}");
    let output = server.run(server.many_rows, DatabaseMetric::Rows).await;
    assert_ok(&output);
    assert_eq!(output.value, 10_000.0, "{output:?}");
    assert!(output.output.contains("10000+ rows"), "{output:?}");
}

/// A write is refused by the read-only transaction, with the server's message, and the
/// table stays empty.
async fn writes_are_refused(server: &Server, writes: &[(&str, &str)]) {
    for (write, message) in writes {
        let output = server.run(write, DatabaseMetric::Seconds).await;
        assert_failed(&output, CheckState::Critical, "query failed on 127.0.0.1");
        assert_failed(&output, CheckState::Critical, message);
    }
    let count = server
        .run("SELECT count(*) FROM items", DatabaseMetric::Value)
        .await;
    assert_ok(&count);
    assert_eq!(count.value, 0.0, "nothing was written: {count:?}");
}

/// A wrong password is CRITICAL naming the user, never showing the password.
async fn wrong_password_is_critical_without_the_password(server: &Server) {
    let wrong = "Wrong-Secret-9731";
    let output = prober_with(wrong)
        .run(&server.check("SELECT 1", DatabaseMetric::Seconds), TIMEOUT)
        .await;
    assert_failed(
        &output,
        CheckState::Critical,
        "authentication failed for user probe",
    );
    let everything = format!("{} {output:?}", output.line(CheckState::Critical));
    assert!(!everything.contains(wrong), "{everything}");
    assert!(!everything.contains(PASSWORD), "{everything}");
}

/// `tls: true` against a server without TLS is CRITICAL: no fallback to plain text.
async fn required_tls_is_not_skipped(server: &Server) {
    let mut spec = server.check("SELECT 1", DatabaseMetric::Seconds);
    spec.database.as_mut().unwrap().tls = true;
    let output = prober_with(PASSWORD).run(&spec, TIMEOUT).await;
    assert_failed(
        &output,
        CheckState::Critical,
        "failed to connect to 127.0.0.1",
    );
    assert_failed(&output, CheckState::Critical, "tls");
}

/// A query that outlasts the timeout ends as a timeout, within it.
async fn slow_query_times_out(server: &Server) {
    let started = Instant::now();
    let output = prober_with(PASSWORD)
        .run(
            &server.check(server.slow, DatabaseMetric::Seconds),
            SHORT_TIMEOUT,
        )
        .await;
    let elapsed = started.elapsed();
    assert!(output.timed_out, "{output:?}");
    assert_failed(&output, CheckState::Critical, "timed out after 2 seconds");
    assert!(
        elapsed < SHORT_TIMEOUT + Duration::from_secs(1),
        "{elapsed:?}"
    );
    // The server is still usable (the abandoned session does not hold anything).
    assert_ok(&server.run("SELECT 1", DatabaseMetric::Seconds).await);
}

/// A value that is not a number is UNKNOWN naming the column's type; no rows is WARNING.
async fn non_numbers_are_unknown(server: &Server, cases: &[(&str, &str)]) {
    for (query, type_name) in cases {
        let output = server.run(query, DatabaseMetric::Value).await;
        assert_failed(&output, CheckState::Unknown, "is not a number");
        assert_failed(&output, CheckState::Unknown, type_name);
        assert!(output.value.is_nan(), "{output:?}");
    }
    let output = server
        .run("SELECT n FROM items", DatabaseMetric::Value)
        .await;
    assert_failed(&output, CheckState::Warning, "no rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_logs_in_queries_read_only_and_reports() {
    let postgres = Postgres::start();
    let server = Server {
        engine: DatabaseEngine::PostgreSQL,
        port: postgres.port,
        product: postgres.major.clone(),
        slow: "SELECT pg_sleep(30)",
        five_rows: "SELECT generate_series(1, 5)",
        many_rows: "SELECT generate_series(1, 20000)",
    };
    select_one_measures_seconds(&server).await;
    value_is_the_first_column(
        &server,
        &[
            "SELECT 42",
            "SELECT 41.5 + 0.5",
            "SELECT 42::float8",
            "SELECT '42'::text",
            "SELECT count(*) + 42 FROM items",
        ],
    )
    .await;
    rows_are_counted_up_to_the_cap(&server).await;
    writes_are_refused(
        &server,
        &[
            ("INSERT INTO items VALUES (1)", "read-only transaction"),
            ("CREATE TABLE more (n integer)", "read-only transaction"),
        ],
    )
    .await;
    wrong_password_is_critical_without_the_password(&server).await;
    required_tls_is_not_skipped(&server).await;
    slow_query_times_out(&server).await;
    non_numbers_are_unknown(
        &server,
        &[
            ("SELECT 'forty-two'::text", "TEXT"),
            ("SELECT current_date", "DATE"),
        ],
    )
    .await;
    let output = server
        .run("SELECT * FROM missing", DatabaseMetric::Seconds)
        .await;
    assert_failed(
        &output,
        CheckState::Critical,
        "relation \"missing\" does not exist",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_logs_in_queries_read_only_and_reports() {
    let mariadb = MariaDb::start();
    let server = Server {
        engine: DatabaseEngine::MySQL,
        port: mariadb.port,
        product: "MariaDB ".into(),
        slow: "SELECT SLEEP(30)",
        five_rows: "SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 \
                    UNION ALL SELECT 5",
        many_rows: "SELECT seq FROM seq_1_to_20000",
    };
    select_one_measures_seconds(&server).await;
    value_is_the_first_column(
        &server,
        &[
            "SELECT 42",
            "SELECT 41.5 + 0.5",
            "SELECT CAST(42 AS DOUBLE)",
            "SELECT '42'",
            "SELECT CAST(42 AS UNSIGNED)",
            "SELECT count(*) + 42 FROM items",
        ],
    )
    .await;
    rows_are_counted_up_to_the_cap(&server).await;
    writes_are_refused(
        &server,
        &[
            ("INSERT INTO items VALUES (1)", "READ ONLY transaction"),
            // DDL commits implicitly: the session's read-only default still refuses it.
            ("CREATE TABLE more (n INT)", "READ ONLY transaction"),
        ],
    )
    .await;
    wrong_password_is_critical_without_the_password(&server).await;
    required_tls_is_not_skipped(&server).await;
    slow_query_times_out(&server).await;
    non_numbers_are_unknown(
        &server,
        &[
            ("SELECT 'forty-two'", "VARCHAR"),
            ("SELECT CURRENT_DATE", "DATE"),
        ],
    )
    .await;
    let output = server
        .run("SELECT * FROM missing", DatabaseMetric::Seconds)
        .await;
    assert_failed(&output, CheckState::Critical, "missing' doesn't exist");
}

/// A port nothing listens on: bound, then closed.
fn closed_port() -> u16 {
    servers::free_port()
}

#[tokio::test]
async fn closed_port_is_critical_for_both_engines() {
    for engine in [DatabaseEngine::PostgreSQL, DatabaseEngine::MySQL] {
        let port = closed_port();
        let output = prober_with(PASSWORD)
            .run(
                &check(engine, port, "SELECT 1", DatabaseMetric::Seconds),
                TIMEOUT,
            )
            .await;
        assert_failed(
            &output,
            CheckState::Critical,
            &format!("failed to connect to 127.0.0.1 port {port}"),
        );
        assert!(!output.timed_out, "{output:?}");
    }
}

#[tokio::test]
async fn missing_secret_is_unknown_before_connecting() {
    // Nothing listens on the port: a connection attempt would be CRITICAL, not UNKNOWN.
    let port = closed_port();
    let output = Prober::new()
        .run(
            &check(
                DatabaseEngine::PostgreSQL,
                port,
                "SELECT 1",
                DatabaseMetric::Seconds,
            ),
            TIMEOUT,
        )
        .await;
    assert_failed(&output, CheckState::Unknown, "secret database key password");
}

#[test]
fn validation_finds_unsubstituted_parameters_and_bad_ports() {
    let with = |change: fn(&mut DatabaseProbe)| {
        let mut spec = check(
            DatabaseEngine::MySQL,
            3306,
            "SELECT 1",
            DatabaseMetric::Rows,
        );
        change(spec.database.as_mut().unwrap());
        vedette_agent::probe::validate(&spec)
    };
    assert!(with(|_| ()).is_ok());
    assert!(with(|d| d.port = None).is_ok());
    let error = with(|d| d.port = Some(PortOrParameter::Int(0))).unwrap_err();
    assert!(error.to_string().contains("port 0"), "{error}");
    let error = with(|d| d.host = "$host$".into()).unwrap_err();
    assert!(error.to_string().contains("$host$"), "{error}");
    let error = with(|d| d.user = "$user$".into()).unwrap_err();
    assert!(error.to_string().contains("$user$"), "{error}");
}
