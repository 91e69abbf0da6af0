//! Plugins die with the agent: `node` and `check --once` stopped with SIGTERM kill each running
//! plugin's process group (plugin and children) before they exit, instead of leaving it to
//! init past its timeout.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{closed_port, tcp_plan};
use vedette_crds::CheckSpec;
use vedette_crds::check::ExecProbe;

/// A `sleep` whose argument no other process on the machine has: the plugin to find.
fn sleeper_seconds() -> String {
    format!(
        "{}.{:03}",
        40 + std::process::id() % 50,
        fastrand::u16(..1000)
    )
}

/// A plan for `host` with one exec check running `sh -c "sleep S & sleep S"` (a plugin with a
/// child in its group) that outlives the test unless killed, every `interval` s with a
/// `timeout` of its own.
fn sleeping_plan_every(
    dir: &Path,
    host: &str,
    seconds: &str,
    interval: u32,
    timeout: u32,
) -> std::path::PathBuf {
    // The first run comes at the check's offset within the interval.
    let mut plan = tcp_plan(host, closed_port(), interval);
    let check = &mut plan.checks[0];
    check.id.rule = "sleeper".into();
    check.check = CheckSpec {
        exec: Some(ExecProbe {
            command: "/bin/sh".into(),
            args: vec!["-c".into(), format!("sleep {seconds} & sleep {seconds}")],
        }),
        ..CheckSpec::default()
    };
    check.timeout_seconds = timeout;
    let path = dir.join(format!("{host}.json"));
    std::fs::write(&path, serde_json::to_vec(&plan).unwrap()).unwrap();
    path
}

/// [`sleeping_plan_every`] 30 s with a 29 s timeout: the plugin runs until stopped.
fn sleeping_plan(dir: &Path, host: &str, seconds: &str) -> std::path::PathBuf {
    sleeping_plan_every(dir, host, seconds, 30, 29)
}

/// Pids of the processes running `sleep <seconds>`.
fn sleepers(seconds: &str) -> Vec<i32> {
    let wanted = format!("sleep\0{seconds}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| cmdline.ends_with(wanted.as_bytes()))
        })
        .filter(|pid| alive(*pid))
        .collect()
}

/// Running or stopped, as opposed to gone or a zombie.
fn alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
    !matches!(state.and_then(|s| s.chars().next()), Some('Z' | 'X') | None)
}

fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn agent(args: &[&str], plan: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vedette-agent"))
        .args(args)
        .arg("--plan")
        .arg(plan)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start vedette-agent")
}

#[test]
fn a_stopped_node_agent_kills_its_running_plugins() {
    let dir = tempfile::tempdir().unwrap();
    let seconds = sleeper_seconds();
    let plan = sleeping_plan(dir.path(), "node-stop", &seconds);
    let (spool, state) = (dir.path().join("spool"), dir.path().join("state"));
    let listen = format!("127.0.0.1:{}", closed_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_vedette-agent"))
        .args(["node", "--host", "node-stop", "--listen", &listen])
        .arg("--plan")
        .arg(&plan)
        .arg("--spool-dir")
        .arg(&spool)
        .arg("--state-dir")
        .arg(&state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start vedette-agent node");
    wait_for("the plugin and its child", Duration::from_secs(40), || {
        sleepers(&seconds).len() == 2
    });
    let running = sleepers(&seconds);
    let status = terminate(&mut child);
    assert!(status.success(), "{status:?}");
    wait_for("the plugin's group to die", Duration::from_secs(3), || {
        running.iter().all(|pid| !alive(*pid))
    });
}

#[test]
fn a_stopped_check_once_kills_its_running_plugins_and_exits_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let seconds = sleeper_seconds();
    let plan = sleeping_plan(dir.path(), "check-stop", &seconds);
    let mut child = agent(&["check", "--once"], &plan);
    wait_for("the plugin and its child", Duration::from_secs(30), || {
        sleepers(&seconds).len() == 2
    });
    let running = sleepers(&seconds);
    let status = terminate(&mut child);
    assert_eq!(status.code(), Some(3), "{status:?}");
    wait_for("the plugin's group to die", Duration::from_secs(3), || {
        running.iter().all(|pid| !alive(*pid))
    });
}

#[test]
fn a_killed_agents_plugins_die_at_their_timeout_under_the_watchdog() {
    assert!(
        vedette_agent::nagios::exec::find_watchdog().is_some(),
        "coreutils' timeout is on this machine"
    );
    let dir = tempfile::tempdir().unwrap();
    let seconds = sleeper_seconds();
    let path = sleeping_plan_every(dir.path(), "check-kill", &seconds, 10, 2);
    let mut child = agent(&["check", "--once"], &path);
    wait_for("the plugin and its child", Duration::from_secs(10), || {
        sleepers(&seconds).len() == 2
    });
    let running = sleepers(&seconds);
    let killed_at = Instant::now();
    child.kill().unwrap();
    child.wait().unwrap();
    // Orphaned now: only the watchdog can end them, at the timeout (2 s) plus its grace.
    let deadline = Duration::from_secs(2) + vedette_agent::nagios::exec::WATCHDOG_GRACE;
    wait_for(
        "the orphaned plugin's group to die",
        deadline + Duration::from_secs(2),
        || running.iter().all(|pid| !alive(*pid)),
    );
    assert!(
        killed_at.elapsed() <= deadline + Duration::from_secs(2),
        "{:?}",
        killed_at.elapsed()
    );
}
