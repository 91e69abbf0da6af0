//! The history's durability rule, with the real binary and `kill -9`: a satellite (this test)
//! sends batches of state changes to the masters (standalone mode's, with their history in a
//! data directory) as fast as they are acknowledged; the process is killed in the middle of
//! the burst and started again on the same directory. Every record the masters acknowledged
//! before the kill is in the history before anything is resent; after the satellite resends
//! what was not acknowledged, every record is there exactly once.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vedette_crds::CheckState;
use vedette_protocol::forward::Forwarded;
use vedette_protocol::plan::CheckId;
use vedette_protocol::report::{Ack, Batch, CheckReport, Envelope, Report};

const BIN: &str = env!("CARGO_BIN_EXE_vedette-operator");
const SATELLITE: &str = "kill-test-satellite";
const NAMESPACE: &str = "kill";
const BATCHES: u64 = 60;
const PER_BATCH: u64 = 100;

const MANIFESTS: &str = r#"apiVersion: vedette.dev/v1alpha1
kind: MonitorZone
metadata:
  name: local
spec:
  nodeSelector: {}
"#;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path, port: u16, run: usize) -> Running {
    let log = |name: &str| std::fs::File::create(dir.join(format!("{name}-{run}"))).unwrap();
    let child = Command::new(BIN)
        .args(["standalone", "-f"])
        .arg(dir.join("manifests.yaml"))
        .args(["--host", "kill-test-host", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--summary-seconds", "60"])
        .stdin(Stdio::null())
        .stdout(log("stdout"))
        .stderr(log("stderr"))
        .spawn()
        .expect("start vedette-operator standalone");
    Running(child)
}

/// One HTTP/1.1 request (`Connection: close`): status and body.
fn request(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no head"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    Ok((status, body.to_owned()))
}

/// Entry `sequence` of the satellite: a state change of agent `kill-agent-{0,1}`.
fn entry(sequence: u64) -> Envelope<Forwarded> {
    let agent = format!("kill-agent-{}", sequence % 2);
    let states = [CheckState::Ok, CheckState::Critical];
    Envelope {
        sequence,
        report: Forwarded::Agent {
            agent: agent.clone(),
            sequence,
            report: Report::StateChange(CheckReport {
                check: CheckId {
                    namespace: NAMESPACE.into(),
                    rule_set: "burst".into(),
                    rule: format!("check-{}", sequence % 10),
                },
                host: agent,
                state: states[(sequence / 10 % 2) as usize],
                hard: true,
                attempt: 1,
                previous_state: states[((sequence / 10 + 1) % 2) as usize],
                output: format!("entry {sequence}"),
                duration_ms: 1,
                at_ms: 1_800_000_000_000 + sequence,
            }),
        },
    }
}

/// Every `(host, sequence)` of the namespace in the history, with how often it appears.
fn recorded(port: u16) -> BTreeMap<(String, u64), u32> {
    let mut seen = BTreeMap::new();
    let mut cursor = String::new();
    loop {
        let path = format!("/v1/history?namespace={NAMESPACE}&limit=1000{cursor}");
        let (status, body) = request(port, "GET", &path, "").expect("query the history");
        assert_eq!(status, 200, "{body}");
        let page: serde_json::Value = serde_json::from_str(&body).unwrap();
        for record in page["records"].as_array().unwrap() {
            let key = (
                record["source"].as_str().unwrap().to_owned(),
                record["sequence"].as_u64().unwrap(),
            );
            *seen.entry(key).or_default() += 1;
        }
        match page["next"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return seen,
        }
    }
}

fn wait_serving(port: u16) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if matches!(request(port, "GET", "/v1/masters/state", ""), Ok((200, _))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the masters did not serve within 30 s");
}

/// Sends every batch like a satellite: the next one after an acknowledgement, and after a
/// failure everything above the last acknowledgement again, once `resume` is set.
fn satellite(
    port: u16,
    acked: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
    resume: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<String>>>,
) {
    let last = BATCHES * PER_BATCH;
    while acked.load(Ordering::SeqCst) < last {
        let from = acked.load(Ordering::SeqCst) + 1;
        let batch = Batch {
            agent: SATELLITE.into(),
            floor: from,
            entries: (from..(from + PER_BATCH).min(last + 1))
                .map(entry)
                .collect(),
        };
        let body = serde_json::to_string(&batch).unwrap();
        match request(port, "POST", "/v1/satellite", &body) {
            Ok((200, answer)) => {
                let ack: Ack = serde_json::from_str(&answer).unwrap();
                acked.fetch_max(ack.up_to, Ordering::SeqCst);
            }
            outcome => {
                log.lock().unwrap().push(format!("{outcome:?}"));
                failed.store(true, Ordering::SeqCst);
                while !resume.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
}

#[test]
fn nothing_acknowledged_is_lost_to_kill_9_and_nothing_is_stored_twice() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("manifests.yaml"), MANIFESTS).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut masters = start(dir.path(), port, 1);
    wait_serving(port);

    let acked = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let resume = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::new()));
    let sender = {
        let (acked, failed, resume, log) =
            (acked.clone(), failed.clone(), resume.clone(), log.clone());
        std::thread::spawn(move || satellite(port, acked, failed, resume, log))
    };
    // Kill in the middle of the burst.
    let started = Instant::now();
    while acked.load(Ordering::SeqCst) < 20 * PER_BATCH {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the burst is too slow"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    masters.0.kill().unwrap();
    masters.0.wait().unwrap();
    let acked_before = acked.load(Ordering::SeqCst);
    let started = Instant::now();
    while !failed.load(Ordering::SeqCst) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the sender never noticed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    let _masters = start(dir.path(), port, 2);
    wait_serving(port);
    let after_restart = recorded(port);
    let missing: Vec<u64> = (1..=acked_before)
        .filter(|s| !after_restart.contains_key(&(format!("kill-agent-{}", s % 2), *s)))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {acked_before} acknowledged records are missing after kill -9, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );

    resume.store(true, Ordering::SeqCst);
    sender.join().unwrap();
    let all = recorded(port);
    let total = BATCHES * PER_BATCH;
    assert_eq!(
        all.len() as u64,
        total,
        "every record once acknowledged end to end"
    );
    let twice: Vec<_> = all.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "stored twice: {twice:?}");
    eprintln!(
        "acknowledged {acked_before} of {total} before kill -9 (failed request: {:?}); all {total} stored once",
        log.lock().unwrap().first()
    );
}
