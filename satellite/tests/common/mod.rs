//! Test helpers: a real node agent (`vedette-agent`, another package's binary, so found or
//! built like e2e finds it) and a TCP check for it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use vedette_crds::CheckSpec;
use vedette_crds::check::{PortOrParameter, TcpProbe};
use vedette_crds::template::CheckState;
use vedette_protocol::plan::{CheckId, PlannedCheck};

/// `vedette-agent`: `VEDETTE_AGENT_BIN`, else built with the `cargo` running the tests into
/// the same target directory (instant when `cargo test --workspace` built it already).
pub fn agent_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(build_agent).clone()
}

fn build_agent() -> PathBuf {
    if let Ok(path) = std::env::var("VEDETTE_AGENT_BIN") {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/<test binary>
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let target_dir = profile_dir.parent().expect("target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args([
            "build",
            "-q",
            "-p",
            "vedette-agent",
            "--bin",
            "vedette-agent",
        ])
        .env("CARGO_TARGET_DIR", target_dir);
    if profile_dir
        .file_name()
        .is_some_and(|name| name == "release")
    {
        command.arg("--release");
    }
    let status = command.status().expect("run cargo build");
    assert!(status.success(), "cargo build -p vedette-agent failed");
    profile_dir.join("vedette-agent")
}

pub fn tcp_check(rule: &str, port: u16, interval_seconds: u32) -> PlannedCheck {
    PlannedCheck {
        id: CheckId {
            namespace: "test".into(),
            rule_set: "net".into(),
            rule: rule.into(),
        },
        template: "test/tcp".into(),
        labels: BTreeMap::new(),
        check: CheckSpec {
            tcp: Some(TcpProbe {
                host: "127.0.0.1".into(),
                port: PortOrParameter::Int(i64::from(port)),
                send: None,
                expect: None,
                close: Default::default(),
            }),
            ..CheckSpec::default()
        },
        warning: None,
        critical: None,
        condition: None,
        condition_state: CheckState::Critical,
        interval_seconds,
        every_cycles: None,
        retry_interval_seconds: 1,
        max_attempts: 1,
        timeout_seconds: 1,
        timeout_state: CheckState::Critical,
        spool_every_result: false,
    }
}

/// A port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The node agent as a child process, killed on drop.
pub struct Agent {
    pub child: Child,
}

impl Agent {
    pub fn start(host: &str, upstreams: &[String], dir: &Path) -> Self {
        let mut command = Command::new(agent_binary());
        command
            .args([
                "node",
                "--host",
                host,
                "--plan-poll-seconds",
                "1",
                "--keepalive-seconds",
                "1",
            ])
            .arg("--spool-dir")
            .arg(dir.join("spool"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .args(["--listen", &format!("127.0.0.1:{}", closed_port())])
            .args([
                "--log-level",
                &std::env::var("VEDETTE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for upstream in upstreams {
            command.args(["--upstream", upstream]);
        }
        let child = command.spawn().expect("start vedette-agent");
        Self { child }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}
