//! The plugin runner against shell-script plugins that misbehave: hang, fork children that
//! hold the output pipe, exit with odd codes, die by signal, flood their output, or cannot be
//! executed at all.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;
use vedette_agent::nagios::exec::{
    DEFAULT_MAX_OUTPUT_BYTES, ExecRequest, ExecResult, PluginRunner, Termination,
};
use vedette_crds::template::CheckState;

/// Slack allowed on top of a timeout before the run must have returned.
const SLACK: Duration = Duration::from_millis(1500);

/// Writes an executable `#!/bin/sh` plugin.
///
/// The file is written by `install`, not by this process: a file this multi-threaded test
/// process held open for writing could leak into a concurrent fork and make `exec` fail with
/// "text file busy".
fn script(dir: &TempDir, name: &str, body: &str) -> PathBuf {
    let source = dir.path().join(format!("{name}.src"));
    std::fs::write(&source, format!("#!/bin/sh\n{body}\n")).unwrap();
    let target = dir.path().join(name);
    let status = Command::new("install")
        .args(["-m", "0755"])
        .arg(&source)
        .arg(&target)
        .status()
        .unwrap();
    assert!(status.success());
    target
}

async fn run(program: &Path, timeout: Duration) -> ExecResult {
    let mut request = ExecRequest::new(program.to_str().unwrap(), Vec::<String>::new());
    request.timeout = timeout;
    PluginRunner::default().run(&request).await
}

/// Running or stopped, as opposed to gone or a zombie waiting for init to reap it.
fn is_alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
    !matches!(
        state.and_then(|rest| rest.chars().next()),
        Some('Z' | 'X') | None
    )
}

/// Polls until `pid` is dead; fails with what was last seen.
async fn assert_dies(pid: i32, within: Duration) {
    let deadline = Instant::now() + within;
    while is_alive(pid) {
        if Instant::now() > deadline {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            panic!("process {pid} still alive after {within:?}: {stat}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The number after `word ` in `text`.
fn pid_after(text: &str, word: &str) -> i32 {
    let rest = text
        .split(&format!("{word} "))
        .nth(1)
        .unwrap_or_else(|| panic!("no {word} in {text:?}"));
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn hanging_plugin_is_killed_with_its_children_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = script(&dir, "check_hang", "sleep 100 &\necho \"child $!\"\nwait");
    let started = Instant::now();
    let result = run(&plugin, Duration::from_secs(1)).await;
    let elapsed = started.elapsed();
    assert_eq!(result.state, CheckState::Critical, "{result:?}");
    assert_eq!(result.termination, Termination::TimedOut);
    assert_eq!(result.output, "plugin timed out after 1s");
    assert!(
        elapsed >= Duration::from_secs(1),
        "returned early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(1) + SLACK,
        "returned late: {elapsed:?}"
    );
    // The output printed before the timeout is kept.
    let child = pid_after(&result.long_output, "child");
    assert_dies(child, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn timeout_yields_the_configured_state() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = script(&dir, "check_sleep", "exec sleep 100");
    let mut request = ExecRequest::new(plugin.to_str().unwrap(), Vec::<String>::new());
    request.timeout = Duration::from_millis(300);
    request.timeout_state = CheckState::Unknown;
    let started = Instant::now();
    let result = PluginRunner::default().run(&request).await;
    assert!(started.elapsed() < Duration::from_millis(300) + SLACK);
    assert_eq!(result.state, CheckState::Unknown);
    assert_eq!(result.output, "plugin timed out after 0.3s");
    assert_eq!(result.termination, Termination::TimedOut);
}

#[tokio::test]
async fn grandchild_holding_the_output_does_not_hang_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = script(
        &dir,
        "check_fork",
        "sleep 100 &\necho \"OK - forked $!\"\nexit 0",
    );
    let started = Instant::now();
    let result = run(&plugin, Duration::from_secs(5)).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited for the grandchild"
    );
    assert_eq!(result.state, CheckState::Ok, "{result:?}");
    assert_eq!(result.termination, Termination::Exited(0));
    let grandchild = pid_after(&result.output, "forked");
    assert_dies(grandchild, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn grandchild_that_left_the_group_does_not_hang_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = script(
        &dir,
        "check_escape",
        "setsid sleep 100 &\necho \"OK - escaped $!\"",
    );
    let started = Instant::now();
    let result = run(&plugin, Duration::from_secs(5)).await;
    let elapsed = started.elapsed();
    let escaped = pid_after(&result.output, "escaped");
    // It left our process group, so the runner cannot kill it; the test cleans up.
    let _ = kill(Pid::from_raw(escaped), Signal::SIGKILL);
    assert!(
        elapsed < Duration::from_secs(2),
        "waited for the escaped process: {elapsed:?}"
    );
    assert_eq!(result.state, CheckState::Ok, "{result:?}");
}

#[tokio::test]
async fn cancelled_run_kills_the_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("child.pid");
    let body = format!("sleep 100 &\necho $! > {}\nwait", pid_file.display());
    let plugin = script(&dir, "check_cancel", &body);
    let run = run(&plugin, Duration::from_secs(60));
    let cancelled = tokio::time::timeout(Duration::from_millis(500), run).await;
    assert!(
        cancelled.is_err(),
        "the plugin should still have been running"
    );
    let child: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_dies(child, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn exit_code_outside_0_to_3_is_unknown_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = script(&dir, "check_seven", "echo 'WEIRD - seven | x=7'\nexit 7");
    let result = run(&plugin, Duration::from_secs(5)).await;
    assert_eq!(result.state, CheckState::Unknown);
    assert_eq!(result.termination, Termination::Exited(7));
    assert_eq!(result.output, "plugin exited with code 7");
    assert_eq!(result.long_output, "WEIRD - seven");
    assert_eq!(result.perfdata.len(), 1);
}

#[tokio::test]
async fn death_by_signal_is_unknown_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = script(&dir, "check_suicide", "echo dying\nkill -TERM $$");
    let result = run(&plugin, Duration::from_secs(5)).await;
    assert_eq!(result.state, CheckState::Unknown, "{result:?}");
    assert_eq!(result.termination, Termination::Signaled(15));
    assert_eq!(result.output, "plugin was killed by signal 15 (SIGTERM)");
    assert_eq!(result.long_output, "dying");
}

#[tokio::test]
async fn stderr_is_captured_with_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = script(
        &dir,
        "check_stderr",
        "echo 'CRITICAL - broken'\necho 'detail on stderr' >&2\nexit 2",
    );
    let result = run(&plugin, Duration::from_secs(5)).await;
    assert_eq!(result.state, CheckState::Critical);
    assert_eq!(result.output, "CRITICAL - broken");
    assert_eq!(result.long_output, "detail on stderr");
}

#[tokio::test]
async fn non_executable_plugin_is_unknown_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("check_noexec");
    std::fs::write(&plugin, "#!/bin/sh\necho OK\n").unwrap();
    let result = run(&plugin, Duration::from_secs(5)).await;
    assert_eq!(result.state, CheckState::Unknown);
    assert_eq!(result.termination, Termination::NotStarted);
    assert_eq!(
        result.output,
        format!("plugin {} is not executable", plugin.display())
    );
}

#[tokio::test]
async fn missing_plugin_is_unknown_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("check_foo");
    let result = run(&plugin, Duration::from_secs(5)).await;
    assert_eq!(result.state, CheckState::Unknown);
    assert_eq!(
        result.output,
        format!("plugin {} not found", plugin.display())
    );

    let runner = PluginRunner {
        plugin_dirs: vec![dir.path().to_owned()],
        ..PluginRunner::default()
    };
    let result = runner
        .run(&ExecRequest::new("check_foo", ["-H", "x"]))
        .await;
    assert_eq!(result.state, CheckState::Unknown);
    assert_eq!(
        result.output,
        format!("plugin check_foo not found in {}", dir.path().display())
    );
}

#[tokio::test]
async fn huge_output_is_capped_and_marked() {
    let dir = tempfile::tempdir().unwrap();
    // 2 MiB of output, then a normal exit: the plugin must not block on a full pipe.
    let plugin = script(
        &dir,
        "check_flood",
        "echo 'OK - flood | size=2097152B'\nhead -c 2097152 /dev/zero | tr '\\0' 'a'\nexit 0",
    );
    let started = Instant::now();
    let result = run(&plugin, Duration::from_secs(10)).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the plugin blocked"
    );
    assert_eq!(result.state, CheckState::Ok, "{}", result.output);
    assert_eq!(result.termination, Termination::Exited(0));
    assert!(result.truncated);
    assert_eq!(result.output, "OK - flood");
    let marker = format!("\n[output truncated after {DEFAULT_MAX_OUTPUT_BYTES} bytes]");
    let flood = result
        .long_output
        .strip_suffix(&marker)
        .expect("the truncation marker");
    let first_line = "OK - flood | size=2097152B\n";
    assert_eq!(flood.len(), DEFAULT_MAX_OUTPUT_BYTES - first_line.len());
    assert!(flood.bytes().all(|byte| byte == b'a'));
    assert_eq!(result.perfdata[0].value, Some(2_097_152.0));

    let small = PluginRunner {
        max_output_bytes: 5,
        ..PluginRunner::default()
    };
    let request = ExecRequest::new(plugin.to_str().unwrap(), Vec::<String>::new());
    let result = small.run(&request).await;
    assert_eq!(result.output, "OK -");
    assert_eq!(result.long_output, "[output truncated after 5 bytes]");
    assert!(!result.perfdata_cut);
}

#[tokio::test]
async fn a_perfdata_item_cut_by_the_cap_is_dropped_not_shortened() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = script(
        &dir,
        "check_big",
        "echo 'OK - big | small=1 big=1234567890'\nexit 0",
    );
    let request = ExecRequest::new(plugin.to_str().unwrap(), Vec::<String>::new());
    let cut_inside = PluginRunner {
        max_output_bytes: "OK - big | small=1 big=12345".len(),
        ..PluginRunner::default()
    };
    let result = cut_inside.run(&request).await;
    assert!(result.truncated && result.perfdata_cut);
    let labels: Vec<&str> = result.perfdata.iter().map(|p| p.label.as_str()).collect();
    assert_eq!(labels, ["small"], "the cut item is dropped");
    assert!(result.problems.is_empty(), "{:?}", result.problems);

    // Cut right after the item: it is whole, and kept.
    let cut_after = PluginRunner {
        max_output_bytes: "OK - big | small=1 big=1234567890".len(),
        ..PluginRunner::default()
    };
    let result = cut_after.run(&request).await;
    assert!(result.truncated && !result.perfdata_cut);
    assert_eq!(result.perfdata[1].value, Some(1_234_567_890.0));
}
