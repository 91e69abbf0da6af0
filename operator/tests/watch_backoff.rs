//! The operator (`vedette-operator run`) against an API server that is down (its kubeconfig
//! names a port nothing listens on): each watch's retries back off, so the errors it logs
//! thin out to a few a minute instead of one per watch every second; and SIGTERM stops it at
//! once though no watch ever synced.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_vedette-operator");
/// How long the errors are counted.
const WINDOW: Duration = Duration::from_secs(12);

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The watched kind of a "watch of K failed" log line.
fn watch_failure(line: &str) -> Option<String> {
    let rest = line.split("watch of ").nth(1)?;
    let (kind, _) = rest.split_once(" failed")?;
    Some(kind.to_owned())
}

#[test]
fn the_watch_failure_lines_name_their_kind() {
    let line = "WARN vedette_operator::metrics: Reconcile step failed. error=watch of RuleSet \
                failed: failed to perform initial object list: connection refused variant=watch";
    assert_eq!(watch_failure(line).as_deref(), Some("RuleSet"));
    assert_eq!(watch_failure("Every watch synced."), None);
}

#[test]
fn watches_back_off_while_the_api_server_is_down_and_sigterm_still_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: down\n  cluster:\n    server: \
             http://127.0.0.1:{}\ncontexts:\n- name: down\n  context: {{cluster: down, user: \
             nobody}}\ncurrent-context: down\nusers:\n- name: nobody\n  user: {{}}\n",
            free_port()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .env("KUBECONFIG", &kubeconfig)
        .env("NO_COLOR", "1")
        .env("VEDETTE_LOG", "warn")
        .args(["run", "--insecure-no-auth", "--identity", "backoff-test"])
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .stdin(Stdio::null())
        // `run` logs to stdout.
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start vedette-operator run");
    let log = child.stdout.take().unwrap();
    let mut operator = Killed(child);
    let (failures, failed) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(log).lines().map_while(Result::ok) {
            if let Some(kind) = watch_failure(&line) {
                let _ = failures.send((Instant::now(), kind));
            }
        }
    });

    // The first failure starts the window.
    let Ok((start, first)) = failed.recv_timeout(Duration::from_secs(30)) else {
        panic!(
            "no watch failed against an API server that is down; the operator: {:?}",
            operator.0.try_wait()
        );
    };
    let mut seen = vec![(Duration::ZERO, first)];
    while let Ok((at, kind)) = failed.recv_timeout(WINDOW.saturating_sub(start.elapsed())) {
        seen.push((at - start, kind));
        if start.elapsed() >= WINDOW {
            break;
        }
    }
    let mut kinds: Vec<&str> = seen.iter().map(|(_, kind)| kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let per_kind = |kind: &str, from: Duration| {
        seen.iter()
            .filter(|(at, k)| k == kind && *at >= from && *at < WINDOW)
            .count()
    };
    let second_half = WINDOW / 2;
    eprintln!(
        "{} watch failures of {} kinds in {WINDOW:?} ({:.1} a second); in the last {second_half:?}: {}",
        seen.len(),
        kinds.len(),
        seen.len() as f64 / WINDOW.as_secs_f64(),
        seen.iter().filter(|(at, _)| *at >= second_half).count()
    );
    assert!(kinds.len() >= 10, "every watch fails: {kinds:?}");
    for kind in &kinds {
        // Retries 0.8 s, 1.6 s, 3.2 s, 6.4 s apart (jittered): at most 5 in 12 s, 2 in the
        // last 6 s; without the backoff, one every 0.8–1.6 s.
        assert!(per_kind(kind, Duration::ZERO) <= 5, "{kind}: {seen:?}");
        assert!(per_kind(kind, second_half) <= 2, "{kind}: {seen:?}");
    }

    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(operator.0.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    let stopped_at = Instant::now();
    let status = loop {
        if let Some(status) = operator.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopped_at.elapsed() < Duration::from_secs(5),
            "the operator did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!("exited {status:?} {:?} after SIGTERM", stopped_at.elapsed());
    assert!(status.success(), "{status:?}");
}
