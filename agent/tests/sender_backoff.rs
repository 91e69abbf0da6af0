//! The sender's backoff ends when the upstream answers again: an upstream that fails long
//! enough for the sender to wait 15 s or more between tries comes back, the agent's next plan
//! fetch (every second) succeeds, and that answer ends the sender's wait, so the backlog
//! starts draining within a couple of seconds of the return instead of after the grown wait.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Upstream, closed_port, eventually, tcp_plan};

/// The longest wait a return may cost: the plan poll (1 s), its request, and the batch.
const BOUND: Duration = Duration::from_secs(3);

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `retry_in_ms` of a "Failed to send batch." log line.
fn retry_in_ms(line: &str) -> Option<u64> {
    if !line.contains("Failed to send batch.") {
        return None;
    }
    let value = line.split("retry_in_ms=").nth(1)?;
    value
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn retry_delays_are_read_from_the_log() {
    let line = "2026-01-01T00:00:00Z  WARN vedette_agent::sender: Failed to send batch. \
                error=upstream answered 503 upstream=http://127.0.0.1:1 retry_in_ms=15321";
    assert_eq!(retry_in_ms(line), Some(15321));
    assert_eq!(retry_in_ms("Failed to fetch the plan."), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_upstream_gets_the_backlog_within_seconds_not_after_the_backoff() {
    let host = "node-backoff";
    let upstream = Upstream::start().await;
    upstream.set_plan(&tcp_plan(host, closed_port(), 2));
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vedette-agent"))
        .args(["node", "--host", host, "--plan-poll-seconds", "1"])
        .args(["--upstream", &upstream.url()])
        .arg("--spool-dir")
        .arg(dir.path().join("spool"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .args(["--listen", &format!("127.0.0.1:{}", closed_port())])
        .args(["--log-level", "warn"])
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vedette-agent");
    let stderr = child.stderr.take().unwrap();
    let _agent = Killed(child);
    let (delays, retries) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(delay) = retry_in_ms(&line) {
                let _ = delays.send(Duration::from_millis(delay));
            }
        }
    });
    eventually(
        "the first entries upstream",
        Duration::from_secs(20),
        || (!upstream.entries().is_empty()).then_some(()),
    )
    .await;

    upstream.set_failing(true);
    let down = Instant::now();
    let grown = tokio::task::block_in_place(|| {
        loop {
            let delay = retries
                .recv_timeout(Duration::from_secs(60))
                .expect("the sender retries while the upstream fails");
            if delay >= Duration::from_secs(15) {
                break delay;
            }
        }
    });
    let before = upstream.entries().len();
    upstream.set_failing(false);
    let back = Instant::now();
    eventually(
        "the backlog after the return",
        Duration::from_secs(40),
        || (upstream.entries().len() > before).then_some(()),
    )
    .await;
    let took = back.elapsed();
    eprintln!(
        "down {:?}, the sender's wait had grown to {grown:?}; the backlog started draining \
         {took:?} after the upstream was back",
        back - down
    );
    assert!(took <= BOUND, "{took:?} > {BOUND:?}");
    let spooled = upstream.entries().len() - before;
    assert!(spooled >= 5, "a backlog was sent: {spooled} entries");
}
