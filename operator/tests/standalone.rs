//! Standalone mode end to end, with the real binary: a TCP check against a listener this test
//! owns turns OK, then CRITICAL once the listener is gone, on the JSON state API and on
//! /metrics, and OK again when the manifest is changed to point at a new listener; an invalid
//! manifest stops it at start with a message naming the problem.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_vedette-operator");
const HOST: &str = "standalone-test-host";
const CHECK: &str = "probes/local/port";

fn manifests(port: u16) -> String {
    format!(
        r#"apiVersion: vedette.dev/v1alpha1
kind: MonitorZone
metadata:
  name: local
spec:
  nodeSelector: {{}}
---
apiVersion: vedette.dev/v1alpha1
kind: CheckTemplate
metadata:
  name: port-open
  namespace: probes
spec:
  check:
    tcp: {{host: 127.0.0.1, port: {port}}}
  intervalSeconds: 2
  maxAttempts: 1
  timeoutSeconds: 1
---
apiVersion: vedette.dev/v1alpha1
kind: RuleSet
metadata:
  name: local
  namespace: probes
spec:
  machines:
    nodeSelector:
      matchLabels:
        kubernetes.io/os: linux
  rules:
    - name: port
      template: {{name: port-open}}
"#
    )
}

/// A listener accepting (and dropping) connections on a thread until stopped.
struct Target {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Target {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the target");
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().expect("address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => drop(stream),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("target thread");
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Kills the child when the test ends early.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `GET path` with HTTP/1.1 and `Connection: close`: status and body.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Some((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// The check's state on /v1/state, if it is there.
fn check_state(port: u16) -> Option<String> {
    let (status, body) = get(port, "/v1/state")?;
    if status != 200 {
        return None;
    }
    let view: serde_json::Value = serde_json::from_str(&body).ok()?;
    view["checks"].as_array()?.iter().find_map(|c| {
        (c["host"] == HOST && c["check"] == CHECK)
            .then(|| c["state"].as_str().unwrap_or("").to_owned())
    })
}

fn wait_for(what: &str, deadline: Duration, mut probe: impl FnMut() -> Option<String>, want: &str) {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < deadline {
        last = probe();
        if last.as_deref() == Some(want) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what}: wanted {want} within {deadline:?}, last seen {last:?}");
}

fn start(dir: &Path, port: u16) -> Running {
    let stdout = std::fs::File::create(dir.join("stdout")).expect("stdout file");
    let stderr = std::fs::File::create(dir.join("stderr")).expect("stderr file");
    let child = Command::new(BIN)
        .args(["standalone", "-f"])
        .arg(dir.join("manifests"))
        .args(["--host", HOST, "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--summary-seconds", "1"])
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("start vedette-operator standalone");
    Running(child)
}

#[test]
fn a_tcp_check_turns_ok_then_critical_on_state_and_metrics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut target = Target::start();
    std::fs::create_dir(dir.path().join("manifests")).expect("manifest dir");
    std::fs::write(
        dir.path().join("manifests").join("local.yaml"),
        manifests(target.port),
    )
    .expect("write manifests");
    let port = free_port();
    let mut running = start(dir.path(), port);
    let logs = || {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            std::fs::read_to_string(dir.path().join("stdout")).unwrap_or_default(),
            std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default()
        )
    };

    let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(
            "check OK",
            Duration::from_secs(60),
            || {
                if let Ok(Some(exit)) = running.0.try_wait() {
                    panic!("vedette-operator standalone exited: {exit}");
                }
                check_state(port)
            },
            "OK",
        );
    }));
    assert!(ok.is_ok(), "{}", logs());

    target.stop();
    let started = Instant::now();
    let critical = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(
            "check CRITICAL",
            Duration::from_secs(15),
            || check_state(port),
            "CRITICAL",
        );
    }));
    assert!(critical.is_ok(), "{}", logs());
    eprintln!("CRITICAL after {:?}", started.elapsed());

    let (status, metrics) = get(port, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200);
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("vedette_satellite_check_state{")
                && l.contains(&format!("host=\"{HOST}\""))
                && l.contains("check=\"port\"")
        })
        .unwrap_or_else(|| panic!("no vedette_satellite_check_state for the check:\n{metrics}"));
    assert!(line.ends_with(" 2"), "not CRITICAL (2) on /metrics: {line}");
    let (status, agent) = get(port, "/agent/metrics").expect("GET /agent/metrics");
    assert_eq!(status, 200);
    assert!(agent.contains("vedette_"), "agent metrics: {agent}");

    // The summary on stdout names the failing check.
    let summary = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(
            "a summary line for the CRITICAL check",
            Duration::from_secs(10),
            || {
                let stdout = std::fs::read_to_string(dir.path().join("stdout")).ok()?;
                stdout
                    .lines()
                    .any(|l| l.contains("CRITICAL ") && l.contains(HOST) && l.contains(CHECK))
                    .then(|| "seen".to_owned())
            },
            "seen",
        );
    }));
    assert!(summary.is_ok(), "{}", logs());

    // A changed manifest is re-compiled: pointed at a new listener, the check is OK again.
    let again = Target::start();
    std::fs::write(
        dir.path().join("manifests").join("local.yaml"),
        manifests(again.port),
    )
    .expect("rewrite manifests");
    let recompiled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(
            "check OK after the change",
            Duration::from_secs(30),
            || check_state(port),
            "OK",
        );
    }));
    assert!(recompiled.is_ok(), "{}", logs());

    // SIGTERM stops it cleanly.
    let status = Command::new("kill")
        .args(["-TERM", &running.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = running.0.try_wait().expect("wait") {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "did not stop on SIGTERM\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "exit {exit:?}\n{}", logs());
    let stdout = std::fs::read_to_string(dir.path().join("stdout")).expect("stdout");
    assert!(
        stdout.contains("re-compiled"),
        "no re-compile reported:\n{stdout}"
    );
    assert!(stdout.trim_end().ends_with("stopped"), "{stdout}");
}

#[test]
fn an_invalid_manifest_stops_it_naming_file_document_and_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("manifests")).expect("manifest dir");
    let bad = manifests(9).replace("intervalSeconds: 2", "intervalSeconds: often");
    std::fs::write(dir.path().join("manifests").join("broken.yaml"), bad).expect("write");
    let output = Command::new(BIN)
        .args(["standalone", "-f"])
        .arg(dir.path().join("manifests"))
        .args(["--host", HOST, "--listen"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stdin(Stdio::null())
        .output()
        .expect("run vedette-operator standalone");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "exited successfully:\n{stderr}");
    assert!(
        stderr.contains("broken.yaml: document 2")
            && stderr.contains("CheckTemplate")
            && stderr.contains("spec.intervalSeconds"),
        "the message does not name file, document and field:\n{stderr}"
    );
}

/// A process whose element follows a real process and a real file.
fn process_manifests(work: &Path) -> String {
    let work = work.display();
    format!(
        r#"apiVersion: vedette.dev/v1alpha1
kind: MonitorZone
metadata: {{name: local}}
spec: {{nodeSelector: {{}}}}
---
apiVersion: vedette.dev/v1alpha1
kind: BusinessProcess
metadata: {{name: nightly, namespace: batch}}
spec:
  elements:
    - name: job
      runsOn: {{hostNames: [{HOST}]}}
      standby: {{when: {{fileExists: {work}/reset}}, message: waiting}}
      running: {{when: {{processRunning: vd-sa-job}}, message: the job started}}
      completed: {{when: {{fileExists: {work}/done}}, message: the job finished}}
      failed: [{{when: {{fileExists: {work}/fail}}, message: the job failed}}]
"#
    )
}

/// The state of element `element` of process `process` on standalone's /v1/state.
fn element_state(port: u16, process: &str, element: &str) -> Option<String> {
    let (_, body) = get(port, "/v1/state")?;
    let view: serde_json::Value = serde_json::from_str(&body).ok()?;
    let process = view["processes"]
        .as_array()?
        .iter()
        .find(|p| p["process"] == process)?;
    process["elements"]
        .as_array()?
        .iter()
        .find_map(|e| (e["name"] == element).then(|| e["state"].as_str().unwrap_or("").to_owned()))
}

#[test]
fn a_process_element_follows_real_facts_and_resumes_after_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("work dir");
    std::fs::create_dir(dir.path().join("manifests")).expect("manifest dir");
    std::fs::write(
        dir.path().join("manifests").join("process.yaml"),
        process_manifests(&work),
    )
    .expect("write manifests");
    let job = work.join("vd-sa-job");
    std::fs::copy("/bin/sleep", &job).expect("a process named vd-sa-job");
    let port = free_port();
    let running = start(dir.path(), port);
    let logs = || std::fs::read_to_string(dir.path().join("stdout")).unwrap_or_default();
    let seen = std::panic::catch_unwind(|| {
        wait_for(
            "the element in Standby",
            Duration::from_secs(60),
            || element_state(port, "batch/nightly", "job"),
            "Standby",
        )
    });
    assert!(seen.is_ok(), "{}", logs());
    let mut process = Command::new(&job)
        .arg("120")
        .spawn()
        .expect("start the job");
    wait_for(
        "the element Running",
        Duration::from_secs(20),
        || element_state(port, "batch/nightly", "job"),
        "Running",
    );
    wait_for(
        "the transition printed",
        Duration::from_secs(10),
        || {
            logs()
                .lines()
                .any(|l| {
                    l.contains("process batch/nightly: job Standby → Running")
                        && l.contains("the job started")
                })
                .then(|| "printed".to_owned())
        },
        "printed",
    );
    // Stopped while running; the job finishes meanwhile; started again, both the agent and
    // the masters resume in Running and take the completion.
    drop(running);
    std::fs::write(work.join("done"), b"").expect("done");
    let running = start(dir.path(), port);
    wait_for(
        "the element Completed after the restart",
        Duration::from_secs(60),
        || element_state(port, "batch/nightly", "job"),
        "Completed",
    );
    let (_, body) = get(port, "/v1/history?kind=process_transition").expect("history");
    let page: serde_json::Value = serde_json::from_str(&body).expect("history JSON");
    let steps: Vec<(String, String)> = page["records"]
        .as_array()
        .expect("records")
        .iter()
        .rev()
        .map(|r| {
            (
                r["detail"]["to"].as_str().unwrap_or("").to_owned(),
                r["message"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("Running".to_owned(), "the job started".to_owned()),
            ("Completed".to_owned(), "the job finished".to_owned()),
        ],
        "{}",
        logs()
    );
    let _ = process.kill();
    let _ = process.wait();
    drop(running);
}
