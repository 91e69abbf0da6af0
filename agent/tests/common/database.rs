//! Real database servers for the database probe's tests, each in a temporary directory on a
//! free loopback port, with a password-authenticated user `probe` owning database `vedette`
//! and its table `items`: PostgreSQL from Debian's `postgresql` (`initdb`, then `postgres`;
//! as root both run as the package's `postgres` user, since `initdb` refuses root) and
//! MariaDB from `mariadb-server` (`mariadb-install-db`, then `mariadbd`). Readiness is a
//! successful login; a dropped server is stopped by its pid. Also used by
//! `benches/database_probe.rs`.

#![allow(dead_code)]

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The password of user `probe` on both servers.
pub const PASSWORD: &str = "Vedette-Probe-Pa55";

/// How long a server may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The uid and gid of `user` from `/etc/passwd`.
fn ids_of(user: &str) -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&user) && fields.len() > 3)
        .map(|fields| (fields[2].parse().unwrap(), fields[3].parse().unwrap()))
        .unwrap_or_else(|| panic!("no user {user} (installed by Debian's postgresql)"))
}

/// Polls `ready` until it succeeds, failing if `child` exits or `START_TIMEOUT` passes.
fn wait_until_ready(process: &mut ServerProcess, log: &Path, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        if let Some(status) = process.child.try_wait().expect("wait for the server") {
            panic!(
                "the server exited with {status}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            started.elapsed() < START_TIMEOUT,
            "the server did not accept a login within {START_TIMEOUT:?}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `command` to completion, panicking with its output when it fails.
fn run(mut command: Command, what: &str) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A server process, stopped by its pid with `signal` (and reaped) when dropped, also when a
/// test panics.
struct ServerProcess {
    child: Child,
    signal: Signal,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), self.signal);
        let _ = self.child.wait();
    }
}

/// A running PostgreSQL server.
pub struct Postgres {
    // Stopped first when the server is dropped, before its directory goes.
    process: ServerProcess,
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    /// `PostgreSQL 15` from the binaries' directory.
    pub major: String,
}

/// The newest `/usr/lib/postgresql/*/bin` with `initdb`, or `$VEDETTE_POSTGRES_BIN`.
fn postgres_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("VEDETTE_POSTGRES_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .expect("PostgreSQL's server (Debian's postgresql) is not installed")
}

impl Postgres {
    /// Initializes and starts a server: superuser `vedette` trusted on the Unix socket only,
    /// TCP logins by scram-sha-256.
    pub fn start() -> Self {
        let bin = postgres_bin();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let owner = is_root().then(|| ids_of("postgres"));
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        }
        let as_owner = |program: &str| {
            let mut command = Command::new(bin.join(program));
            if let Some((uid, gid)) = owner {
                command.uid(uid).gid(gid);
            }
            command
        };
        let data = dir.path().join("data");
        let mut initdb = as_owner("initdb");
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "vedette", "-E", "UTF8", "--no-sync"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"]);
        run(initdb, "initdb");
        let port = free_port();
        let log = dir.path().join("server.log");
        let mut postgres = as_owner("postgres");
        postgres
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("server log"));
        let mut process = ServerProcess {
            child: postgres.spawn().expect("start postgres"),
            // Immediate shutdown: the postmaster ends its backends too.
            signal: Signal::SIGQUIT,
        };
        let major = bin
            .parent()
            .and_then(|p| p.file_name())
            .map(|v| format!("PostgreSQL {}", v.to_string_lossy()))
            .unwrap_or_default();
        wait_until_ready(&mut process, &log, || {
            psql_command(&bin, dir.path(), port, "postgres", "SELECT 1")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        let server = Self {
            process,
            dir,
            bin,
            port,
            major,
        };
        server.psql(&format!("CREATE ROLE probe LOGIN PASSWORD '{PASSWORD}'"));
        server.psql("CREATE DATABASE vedette OWNER probe");
        server.psql_in(
            "vedette",
            "CREATE TABLE items (n integer); ALTER TABLE items OWNER TO probe",
        );
        server
    }

    /// The postmaster's pid (its backends are its children).
    pub fn pid(&self) -> u32 {
        self.process.child.id()
    }

    /// Runs `sql` as the superuser in database `postgres`; its output.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in("postgres", sql)
    }

    /// Runs `sql` as the superuser in `database`; its output.
    pub fn psql_in(&self, database: &str, sql: &str) -> String {
        run(
            psql_command(&self.bin, self.dir.path(), self.port, database, sql),
            "psql",
        )
    }
}

/// `psql` as superuser `vedette` over the Unix socket in `socket_dir`.
fn psql_command(bin: &Path, socket_dir: &Path, port: u16, database: &str, sql: &str) -> Command {
    let psql = bin.join("psql");
    let mut command = Command::new(if psql.exists() {
        psql
    } else {
        PathBuf::from("psql")
    });
    command
        .arg("-h")
        .arg(socket_dir)
        .args(["-p", &port.to_string(), "-U", "vedette", "-d", database])
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-tAc", sql])
        .stdin(Stdio::null());
    command
}

/// A running MariaDB server.
pub struct MariaDb {
    // Stopped first when the server is dropped, before its directory goes.
    process: ServerProcess,
    dir: tempfile::TempDir,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
}

impl MariaDb {
    /// Initializes and starts a server: `root` without a password on the Unix socket only
    /// (no networking for it: `probe` is the only user for 127.0.0.1).
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let data = dir.path().join("data");
        let mut install = Command::new("mariadb-install-db");
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args([
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ]);
        if is_root() {
            install.arg("--user=root");
        }
        run(install, "mariadb-install-db");
        let port = free_port();
        let log = dir.path().join("server.log");
        let mut mariadbd = Command::new("mariadbd");
        mariadbd
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", dir.path().join("socket").display()))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .arg(format!("--port={port}"))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=16M",
                "--innodb-log-file-size=8M",
                "--skip-log-bin",
            ])
            .arg(format!("--log-error={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if is_root() {
            mariadbd.arg("--user=root");
        }
        let mut process = ServerProcess {
            child: mariadbd.spawn().expect("start mariadbd"),
            signal: Signal::SIGKILL,
        };
        wait_until_ready(&mut process, &log, || {
            mariadb_command(dir.path(), "SELECT 1")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        let server = Self { process, dir, port };
        server.sql(&format!(
            "CREATE DATABASE vedette; CREATE TABLE vedette.items (n INT); \
             CREATE USER 'probe'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'; \
             GRANT ALL ON vedette.* TO 'probe'@'127.0.0.1'"
        ));
        server
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.process.child.id()
    }

    /// Runs `sql` as root over the Unix socket; its output.
    pub fn sql(&self, sql: &str) -> String {
        run(mariadb_command(self.dir.path(), sql), "mariadb")
    }
}

/// The `mariadb` client as root over the Unix socket in `dir`.
fn mariadb_command(dir: &Path, sql: &str) -> Command {
    let mut command = Command::new("mariadb");
    command
        .arg("--no-defaults")
        .arg(format!("--socket={}", dir.join("socket").display()))
        .args(["-u", "root", "-N", "-B", "-e", sql])
        .stdin(Stdio::null());
    command
}
