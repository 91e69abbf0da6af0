//! The built-in database probe side by side with Debian's `check_pgsql`, `check_mysql` and
//! `check_mysql_query` (monitoring-plugins-standard), all logging in to the same local
//! servers (PostgreSQL with scram-sha-256, MariaDB with mysql_native_password) as the same
//! user and running `SELECT 1`. Prints numbers, never fails.
//!
//! One probe at a time on each side, as a scheduler runs one check: the agent's `Prober::run`
//! in this process (a 2-worker tokio runtime like the node role; CPU from
//! `CLOCK_PROCESS_CPUTIME_ID`), the plugins started by this process one after another (their
//! CPU from this process's reaped children, `/proc/self/stat`; the cost of starting them is
//! this process's own CPU, shown apart). The server's CPU per probe is shown too (a login
//! forks a PostgreSQL backend whoever asks). Each round runs every side `BENCH_PROBES` times.
//!
//! `cargo bench -p vedette-agent --bench database_probe` (env: `BENCH_PROBES`, default 300;
//! `BENCH_ROUNDS`, default 3).

#[path = "../tests/common/database.rs"]
mod servers;
mod support;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use servers::{MariaDb, PASSWORD, Postgres};
use support::{cpu_seconds, env_or, median, own_cpu_seconds, tree_cpu_seconds};
use vedette_agent::probe::Prober;
use vedette_crds::CheckSpec;
use vedette_crds::check::{
    CheckSecret, DatabaseEngine, DatabaseMetric, DatabaseProbe, PortOrParameter,
};

const PLUGINS: &str = "/usr/lib/nagios/plugins";
const TIMEOUT: Duration = Duration::from_secs(10);

/// One side's run of `probes` probes.
#[derive(Clone, Copy)]
struct Sample {
    probes: usize,
    failures: usize,
    wall: f64,
    /// CPU of the checker: the agent's process, or the plugins.
    checker_cpu: f64,
    /// CPU this process spent starting plugins (zero for the agent).
    launcher_cpu: f64,
    server_cpu: f64,
}

impl Sample {
    fn per_probe_us(&self, seconds: f64) -> f64 {
        seconds * 1e6 / self.probes as f64
    }
}

/// A side: the agent's probe or a plugin's command line.
enum Side {
    Agent(Box<CheckSpec>),
    Plugin(Vec<String>),
}

struct Case {
    name: String,
    side: Side,
    server_cpu: Box<dyn Fn() -> f64>,
}

/// Seconds of CPU of this process's reaped children.
fn children_cpu() -> f64 {
    let own = std::process::id();
    cpu_seconds(own, true) - cpu_seconds(own, false)
}

fn database_check(engine: DatabaseEngine, port: u16, secret: &CheckSecret) -> CheckSpec {
    CheckSpec {
        database: Some(DatabaseProbe {
            engine,
            host: "127.0.0.1".into(),
            port: Some(PortOrParameter::Int(port.into())),
            database: Some("vedette".into()),
            user: "probe".into(),
            password_secret: Some(secret.clone()),
            query: "SELECT 1".into(),
            metric: DatabaseMetric::Seconds,
            tls: false,
        }),
        ..Default::default()
    }
}

fn plugin(name: &str, args: &[&str]) -> Side {
    let mut argv = vec![format!("{PLUGINS}/{name}")];
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    Side::Plugin(argv)
}

fn measure(
    case: &Case,
    probes: usize,
    prober: &Prober,
    runtime: &tokio::runtime::Runtime,
) -> Sample {
    let server_before = (case.server_cpu)();
    let own_before = own_cpu_seconds();
    let children_before = children_cpu();
    let started = Instant::now();
    let mut failures = 0;
    for _ in 0..probes {
        let ok = match &case.side {
            Side::Agent(spec) => runtime
                .block_on(prober.run(spec, TIMEOUT))
                .failure
                .is_none(),
            Side::Plugin(argv) => Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
        };
        failures += usize::from(!ok);
    }
    let wall = started.elapsed().as_secs_f64();
    let own = own_cpu_seconds() - own_before;
    let children = children_cpu() - children_before;
    let server_cpu = (case.server_cpu)() - server_before;
    let (checker_cpu, launcher_cpu) = match case.side {
        Side::Agent(_) => (own, 0.0),
        Side::Plugin(_) => (children, own),
    };
    Sample {
        probes,
        failures,
        wall,
        checker_cpu,
        launcher_cpu,
        server_cpu,
    }
}

fn main() {
    let probes: usize = env_or("BENCH_PROBES", 300);
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let postgres = Postgres::start();
    let mariadb = MariaDb::start();
    let (pg_port, my_port) = (postgres.port.to_string(), mariadb.port.to_string());
    let (pg_pid, my_pid) = (postgres.pid(), mariadb.pid());
    let secret = CheckSecret {
        name: "database".into(),
        key: "password".into(),
        namespace: Some("bench".into()),
    };
    let prober = Prober::new();
    prober.set_secrets(BTreeMap::from([(secret.plan_key(), PASSWORD.to_owned())]));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let pg_cpu = move || tree_cpu_seconds(pg_pid);
    let my_cpu = move || cpu_seconds(my_pid, false);
    let login = ["-H", "127.0.0.1", "-d", "vedette"];
    let cases = [
        Case {
            name: "PostgreSQL: agent".into(),
            side: Side::Agent(Box::new(database_check(
                DatabaseEngine::PostgreSQL,
                postgres.port,
                &secret,
            ))),
            server_cpu: Box::new(pg_cpu),
        },
        Case {
            name: "PostgreSQL: check_pgsql -q 'SELECT 1'".into(),
            side: plugin(
                "check_pgsql",
                &[
                    &login[..],
                    &["-P", &pg_port, "-l", "probe", "-p", PASSWORD],
                    &["-q", "SELECT 1"],
                ]
                .concat(),
            ),
            server_cpu: Box::new(pg_cpu),
        },
        Case {
            name: "MariaDB: agent".into(),
            side: Side::Agent(Box::new(database_check(
                DatabaseEngine::MySQL,
                mariadb.port,
                &secret,
            ))),
            server_cpu: Box::new(my_cpu),
        },
        Case {
            name: "MariaDB: check_mysql".into(),
            side: plugin(
                "check_mysql",
                &[&login[..], &["-P", &my_port, "-u", "probe", "-p", PASSWORD]].concat(),
            ),
            server_cpu: Box::new(my_cpu),
        },
        Case {
            name: "MariaDB: check_mysql_query -q 'SELECT 1'".into(),
            side: plugin(
                "check_mysql_query",
                &[
                    &login[..],
                    &["-P", &my_port, "-u", "probe", "-p", PASSWORD],
                    &["-q", "SELECT 1"],
                ]
                .concat(),
            ),
            server_cpu: Box::new(my_cpu),
        },
    ];
    println!("database_probe: the database probe vs check_pgsql, check_mysql, check_mysql_query");
    println!("machine: {}", support::machine());
    println!(
        "servers: {} (scram-sha-256), MariaDB {} (mysql_native_password), on 127.0.0.1",
        postgres.major,
        mariadb.sql("SELECT VERSION()").trim()
    );
    println!(
        "inputs: SELECT 1, {probes} probes one at a time per side per round, {rounds} rounds (sides in turn); medians"
    );
    // Warm-up: caches of both servers and of the plugins' libraries.
    for case in &cases {
        measure(case, 10, &prober, &runtime);
    }
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); cases.len()];
    for round in 1..=rounds {
        for (case, samples) in cases.iter().zip(&mut samples) {
            let sample = measure(case, probes, &prober, &runtime);
            println!(
                "round {round} {:<42} {:>7.2} ms wall/probe, {:>7.1} µs checker CPU/probe, {:>6.1} µs launcher CPU/probe, {:>7.1} µs server CPU/probe, {} failed",
                case.name,
                sample.wall * 1e3 / probes as f64,
                sample.per_probe_us(sample.checker_cpu),
                sample.per_probe_us(sample.launcher_cpu),
                sample.per_probe_us(sample.server_cpu),
                sample.failures
            );
            samples.push(sample);
        }
    }
    for (case, samples) in cases.iter().zip(&samples) {
        let pick = |f: fn(&Sample) -> f64| median(samples.iter().map(f).collect());
        println!(
            "median {:<42} {:>7.2} ms wall/probe, {:>7.1} µs checker CPU/probe, {:>6.1} µs launcher CPU/probe, {:>7.1} µs server CPU/probe, {} failed in all",
            case.name,
            pick(|s| s.wall * 1e3 / s.probes as f64),
            pick(|s| s.per_probe_us(s.checker_cpu)),
            pick(|s| s.per_probe_us(s.launcher_cpu)),
            pick(|s| s.per_probe_us(s.server_cpu)),
            samples.iter().map(|s| s.failures).sum::<usize>()
        );
    }
}
