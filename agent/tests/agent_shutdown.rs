//! Plugins die with the agent: `node` and `check --once` stopped with SIGTERM kill each running
//! plugin's process group (plugin and children) before they exit, instead of leaving it to
//! init past its timeout.
//!
//! And `node` drains: stopped while a slow plugin runs and a backlog waits (replayed at 1 entry
//! a second), it kills the plugin's group, writes its check states, sends the whole backlog to
//! the upstream that is up and exits 0 well within its grace; with the upstream down it exits
//! 0 when the grace runs out, the backlog kept in the spool; a second SIGTERM ends the drain at
//! once.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Agent, Upstream, closed_port, eventually, tcp_check, tcp_plan};
use vedette_agent::spool::{Spool, SpoolConfig};
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

fn sigterm(child: &Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    sigterm(child);
    exited(child, Duration::from_secs(10))
}

/// How `child` exited, waiting at most `within`.
fn exited(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
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

/// The sleeping plan of `seconds` on `host` with twenty TCP checks beside it that run every
/// 2 s against a closed port and spool every result: a backlog grows by ten entries a second
/// while the upstream fails.
fn busy_plan(dir: &Path, host: &str, seconds: &str) -> vedette_protocol::plan::Plan {
    let path = sleeping_plan(dir, host, seconds);
    let mut plan: vedette_protocol::plan::Plan =
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let port = closed_port();
    for index in 0..20 {
        let mut check = tcp_check(&format!("busy-{index}"), port, 2);
        check.spool_every_result = true;
        plan.checks.push(check);
    }
    plan
}

/// Sequences the upstream holds of `host`, ascending.
fn delivered(upstream: &Upstream) -> Vec<u64> {
    let mut sequences: Vec<u64> = upstream.entries().iter().map(|e| e.sequence).collect();
    sequences.sort_unstable();
    sequences
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_agent_kills_its_plugins_saves_its_states_and_delivers_its_backlog() {
    let host = "node-drain";
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let seconds = sleeper_seconds();
    let plan = busy_plan(dir.path(), host, &seconds);
    upstream.set_plan(&plan);
    let flags = ["--replay-per-second", "1", "--shutdown-grace-seconds", "10"];
    let mut agent = Agent::start_with(host, &[upstream.url()], dir.path(), &flags);
    eventually(
        "the first results upstream",
        Duration::from_secs(20),
        || (upstream.entries().len() >= 10).then_some(()),
    )
    .await;

    // The upstream fails while the plugin starts: a backlog of ten results a second grows.
    upstream.set_failing(true);
    let failing_since = Instant::now();
    eventually("the plugin and its child", Duration::from_secs(40), || {
        (sleepers(&seconds).len() == 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(failing_since.elapsed())).await;
    let backlog = delivered(&upstream).len();
    let running = sleepers(&seconds);
    assert_eq!(running.len(), 2, "the plugin still runs");

    // Back, and stopped at once: at 1 entry a second the backlog would take half a minute.
    upstream.set_failing(false);
    let stopped_at = Instant::now();
    sigterm(&agent.child);
    let status = tokio::task::block_in_place(|| exited(&mut agent.child, Duration::from_secs(15)));
    let took = stopped_at.elapsed();
    eprintln!("exited {status:?} {took:?} after SIGTERM (grace 10 s)");
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(10), "within the grace: {took:?}");
    wait_for("the plugin's group to die", Duration::from_secs(3), || {
        running.iter().all(|pid| !alive(*pid))
    });

    // Everything spooled reached the upstream, once each; nothing waits in the spool.
    let spool = Spool::open(SpoolConfig::new(dir.path().join("spool"))).unwrap();
    let stats = spool.stats();
    assert_eq!(stats.depth, 0, "{stats:?}");
    let sequences = delivered(&upstream);
    assert_eq!(
        sequences,
        (1..=stats.last_sequence).collect::<Vec<u64>>(),
        "every spooled entry delivered once"
    );
    eprintln!(
        "{} entries spooled, {} of them delivered during the drain",
        stats.last_sequence,
        stats.last_sequence as usize - backlog
    );
    assert!(
        stats.last_sequence as usize >= backlog + 20,
        "a backlog the replay rate could not have sent in time: {} after {backlog}",
        stats.last_sequence
    );

    // The check states were written, the sleeper's among them.
    let states: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("state").join("check-states.json")).unwrap(),
    )
    .unwrap();
    let checks: Vec<&String> = states.as_object().unwrap().keys().collect();
    assert_eq!(checks.len(), 21, "{checks:?}");
    assert!(checks.iter().any(|c| c.ends_with("/sleeper")), "{checks:?}");
}

/// Starts `node` on `plan` with an upstream nothing listens on, waits until it spooled some
/// entries, and sends SIGTERM.
async fn stop_with_the_upstream_down(dir: &Path, host: &str, grace: &str) -> (Agent, Instant) {
    let plan = dir.join("plan.json");
    std::fs::write(
        &plan,
        serde_json::to_vec(&tcp_plan(host, closed_port(), 1)).unwrap(),
    )
    .unwrap();
    let upstream = format!("http://127.0.0.1:{}", closed_port());
    let flags = [
        "--plan",
        plan.to_str().unwrap(),
        "--shutdown-grace-seconds",
        grace,
    ];
    let agent = Agent::start_with(host, &[upstream], dir, &flags);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = agent.metrics_text().await;
        let depth = text
            .lines()
            .find_map(|line| line.strip_prefix("vedette_spool_entries "))
            .and_then(|value| value.trim().parse::<f64>().ok());
        if depth.is_some_and(|depth| depth >= 2.0) {
            break;
        }
        assert!(Instant::now() < deadline, "no entries spooled: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sigterm(&agent.child);
    (agent, Instant::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_its_upstream_down_a_stopped_node_agent_exits_0_at_its_grace_and_keeps_its_spool() {
    let dir = tempfile::tempdir().unwrap();
    let (mut agent, stopped_at) = stop_with_the_upstream_down(dir.path(), "node-down", "2").await;
    let status = tokio::task::block_in_place(|| exited(&mut agent.child, Duration::from_secs(10)));
    let took = stopped_at.elapsed();
    eprintln!("exited {status:?} {took:?} after SIGTERM (grace 2 s)");
    assert!(status.success(), "{status:?}");
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
        "tried until the grace ran out: {took:?}"
    );
    let spool = Spool::open(SpoolConfig::new(dir.path().join("spool"))).unwrap();
    assert!(
        spool.stats().depth >= 2,
        "kept for the next start: {:?}",
        spool.stats()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_ends_the_drain_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut agent, _) = stop_with_the_upstream_down(dir.path(), "node-twice", "20").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(agent.child.try_wait().unwrap().is_none(), "still draining");
    sigterm(&agent.child);
    let second = Instant::now();
    let status = tokio::task::block_in_place(|| exited(&mut agent.child, Duration::from_secs(10)));
    let took = second.elapsed();
    eprintln!("exited {status:?} {took:?} after the second SIGTERM");
    assert_eq!(
        status.code(),
        Some(vedette_agent::signal::EXIT_SECOND_SIGTERM)
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
}
