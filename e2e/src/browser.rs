//! A real browser for the dashboard's tests: Debian's chromium driven by playwright-core from
//! npm (`e2e/tools/install-browser.sh`, installed once and cached), running a script of
//! `e2e/browser/`. A script talks to its test over stdio: it prints `step <name>` when the test
//! must change something (a check's port, a process), and goes on once the test answers a
//! line; it prints `ok` lines as it goes, exits 0 when every assertion held and non-zero with
//! the failure otherwise. Screenshots go to the directory the test names.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// The directory whose `node_modules` holds playwright-core (chromium installed too).
pub fn install() -> anyhow::Result<PathBuf> {
    crate::tools::script_dir("install-browser.sh")
}

/// Where a test's screenshots go: `target/dashboard-screenshots/<test>`, emptied first.
pub fn screenshots(test: &str) -> anyhow::Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the e2e crate lives in the repository")?
        .join("target/dashboard-screenshots")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Runs `e2e/browser/<script>` with `env`; each `step <name>` it prints is handed to
/// `on_step`, and its answer line is written back. Fails when the script fails or runs longer
/// than `limit` (it is killed then).
pub fn run(
    script: &str,
    env: &[(&str, String)],
    limit: Duration,
    mut on_step: impl FnMut(&str) -> anyhow::Result<String>,
) -> anyhow::Result<Vec<String>> {
    let modules = install()?.join("node_modules");
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("browser")
        .join(script);
    let mut command = Command::new("node");
    command
        .arg(&path)
        .env("NODE_PATH", &modules)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("start node {script}"))?;
    let pid = child.id();
    let started = Instant::now();
    // The watchdog kills a script that hangs, so the test ends by itself.
    let watchdog = std::thread::spawn(move || {
        while started.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(200));
            if !Path::new(&format!("/proc/{pid}")).exists() {
                return;
            }
        }
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    });
    let mut stdin = child.stdin.take().context("stdin")?;
    let stdout = BufReader::new(child.stdout.take().context("stdout")?);
    let mut lines = Vec::new();
    for line in stdout.lines() {
        let line = line?;
        eprintln!("[{script} {:.1}s] {line}", started.elapsed().as_secs_f64());
        if let Some(step) = line.strip_prefix("step ") {
            let answer = on_step(step.trim())?;
            writeln!(stdin, "{answer}")?;
            stdin.flush()?;
        }
        lines.push(line);
    }
    let status = child.wait()?;
    let _ = watchdog.join();
    anyhow::ensure!(
        status.success(),
        "{script} failed ({status}) after {:.1}s; its last lines: {:?}",
        started.elapsed().as_secs_f64(),
        lines.iter().rev().take(5).collect::<Vec<_>>()
    );
    Ok(lines)
}
