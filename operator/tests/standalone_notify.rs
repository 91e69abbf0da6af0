//! Notifications end to end with the real binary in standalone mode and real receivers: a
//! TCP check turns CRITICAL and then OK again, and each transition reaches a webhook (signed
//! with the Secret's HMAC key, the first try refused so it is retried with the same key), a
//! real SMTP server (Debian's python3-aiosmtpd, read back from its maildir) and a real
//! Alertmanager (Debian's prometheus-alertmanager, delivering to a webhook of this test), and
//! each delivery is recorded in the history.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

const BIN: &str = env!("CARGO_BIN_EXE_vedette-operator");
const HOST: &str = "notify-test-host";
const HMAC_KEY: &str = "a-shared-webhook-key";

struct Killed(Child);

impl Drop for Killed {
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

/// One request a [`Hook`] received.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: Vec<(String, String)>,
    body: String,
    answered: u16,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

/// An HTTP server recording every request; the first `refuse` requests to `/hook` get 503.
struct Hook {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    refuse: Arc<AtomicUsize>,
}

impl Hook {
    fn start(refuse: usize) -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the hook");
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().expect("address").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicUsize::new(0));
        let refuse = Arc::new(AtomicUsize::new(refuse));
        let (log, flag, limit) = (received.clone(), stop.clone(), refuse.clone());
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = answer(stream, &log, &refused, limit.load(Ordering::Relaxed));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Hook {
            port,
            received,
            stop,
            refuse,
        }
    }

    /// Every request from now on is answered 200.
    fn accept_all(&self) {
        self.refuse.store(0, Ordering::Relaxed);
    }

    fn on(&self, path: &str) -> Vec<Received> {
        let all = self.received.lock().unwrap();
        all.iter().filter(|r| r.path == path).cloned().collect()
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn answer(
    stream: TcpStream,
    log: &Mutex<Vec<Received>>,
    refused: &AtomicUsize,
    refuse: usize,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let status = if path == "/hook" && refused.fetch_add(1, Ordering::Relaxed) < refuse {
        503
    } else {
        200
    };
    log.lock().unwrap().push(Received {
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        answered: status,
    });
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
}

/// A listener accepting connections while it lives (the check's target).
struct Target {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Target {
    fn start(port: u16) -> Target {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the target");
        listener.set_nonblocking(true).expect("non-blocking");
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
        Target {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn manifests(target: u16, hook: u16, smtp: u16, alertmanager: u16) -> String {
    format!(
        r#"apiVersion: vedette.dev/v1alpha1
kind: MonitorZone
metadata: {{name: local}}
spec: {{nodeSelector: {{}}}}
---
apiVersion: vedette.dev/v1alpha1
kind: CheckTemplate
metadata: {{name: port-open, namespace: shop}}
spec:
  check:
    tcp: {{host: 127.0.0.1, port: {target}}}
  intervalSeconds: 2
  maxAttempts: 1
  timeoutSeconds: 1
---
apiVersion: vedette.dev/v1alpha1
kind: RuleSet
metadata: {{name: frontend, namespace: shop}}
spec:
  labels: {{team: web}}
  machines: {{nodeSelector: {{}}}}
  rules:
    - name: port
      template: {{name: port-open}}
      notify: [mail]
---
apiVersion: v1
kind: Secret
metadata: {{name: hook-key, namespace: shop}}
stringData: {{key: {HMAC_KEY}}}
---
apiVersion: vedette.dev/v1alpha1
kind: NotificationConfig
metadata: {{name: shop, namespace: shop}}
spec:
  receivers:
    - name: hook
      webhook:
        url: http://127.0.0.1:{hook}/hook
        hmacSecret: {{name: hook-key, key: key}}
    - name: mail
      email:
        to: [oncall@shop.example]
        from: vedette@shop.example
        smarthost: 127.0.0.1:{smtp}
        tls: None
    - name: am
      alertmanager: {{url: "http://127.0.0.1:{alertmanager}"}}
  routes:
    - receiver: hook
      matchers: [{{name: team, value: web}}, {{name: severity, value: "critical|warning", matchType: "=~"}}]
      groupWaitSeconds: 1
      groupIntervalSeconds: 1
      continue: true
    - receiver: mail
      groupWaitSeconds: 1
      groupIntervalSeconds: 1
      continue: true
    - receiver: am
"#
    )
}

fn start_alertmanager(dir: &Path, port: u16, hook: u16) -> Killed {
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route:\n  receiver: test\n  group_by: [alertname, host]\n  group_wait: 1s\n  \
             group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: test\n    \
             webhook_configs:\n      - url: http://127.0.0.1:{hook}/alertmanager\n        \
             send_resolved: true\n"
        ),
    )
    .expect("write the Alertmanager config");
    let log = std::fs::File::create(dir.join("alertmanager.log")).expect("log file");
    let child = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.join("am-data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start prometheus-alertmanager (make deps installs it)");
    Killed(child)
}

fn start_smtp(maildir: &Path, port: u16) -> Killed {
    let child = Command::new("/usr/bin/python3")
        .args(["-m", "aiosmtpd", "-n", "-l"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start aiosmtpd (make deps installs python3-aiosmtpd)");
    Killed(child)
}

fn mails(maildir: &Path) -> Vec<String> {
    let mut found: Vec<PathBuf> = ["new", "cur"]
        .iter()
        .filter_map(|d| std::fs::read_dir(maildir.join(d)).ok())
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    found.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    found
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect()
}

fn wait_until<T>(what: &str, deadline: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if let Some(found) = probe() {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what}: not seen within {deadline:?}");
}

fn wait_port(port: u16) {
    wait_until("a listening port", Duration::from_secs(20), || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
}

fn get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())
}

fn statuses(hooks: &[Received]) -> Vec<String> {
    hooks
        .iter()
        .filter(|r| r.answered == 200)
        .map(|r| r.json()["status"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn a_problem_and_its_recovery_reach_webhook_mail_and_alertmanager() {
    let dir = tempfile::tempdir().expect("temp dir");
    let hook = Hook::start(1);
    let (target_port, smtp_port, am_port, port) =
        (free_port(), free_port(), free_port(), free_port());
    let maildir = dir.path().join("maildir");
    let _smtp = start_smtp(&maildir, smtp_port);
    let _am = start_alertmanager(dir.path(), am_port, hook.port);
    wait_port(smtp_port);
    wait_port(am_port);
    let target = Target::start(target_port);
    std::fs::create_dir_all(dir.path().join("manifests")).unwrap();
    std::fs::write(
        dir.path().join("manifests/all.yaml"),
        manifests(target_port, hook.port, smtp_port, am_port),
    )
    .unwrap();
    let stdout = std::fs::File::create(dir.path().join("stdout")).unwrap();
    let stderr = std::fs::File::create(dir.path().join("stderr")).unwrap();
    let _vedette = Killed(
        Command::new(BIN)
            .args(["standalone", "-f"])
            .arg(dir.path().join("manifests"))
            .args(["--host", HOST, "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("start vedette-operator standalone"),
    );
    wait_port(port);
    std::thread::sleep(Duration::from_secs(3)); // a few OK results first: no notification
    assert!(hook.on("/hook").is_empty(), "an OK check notifies nobody");

    drop(target);
    let firing = wait_until("the firing webhook", Duration::from_secs(30), || {
        let got = hook.on("/hook");
        (statuses(&got) == ["firing"]).then_some(got)
    });
    // The first try was refused with 503 and retried with the same key.
    assert_eq!(firing[0].answered, 503, "{firing:?}");
    let delivered = &firing[1];
    let body = delivered.json();
    assert_eq!(
        firing[0].header("Idempotency-Key"),
        delivered.header("Idempotency-Key")
    );
    assert_eq!(delivered.header("Idempotency-Key"), body["key"].as_str());
    assert_eq!(body["version"], "1");
    let mut mac = Hmac::<Sha256>::new_from_slice(HMAC_KEY.as_bytes()).unwrap();
    mac.update(delivered.body.as_bytes());
    let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(delivered.header("X-Vedette-Signature"), Some(want.as_str()));
    let alert = &body["alerts"][0];
    for (label, value) in [
        ("namespace", "shop"),
        ("ruleSet", "frontend"),
        ("check", "port"),
        ("host", HOST),
        ("team", "web"),
        ("severity", "critical"),
    ] {
        assert_eq!(alert["labels"][label], value, "label {label} of {alert}");
    }
    assert!(
        alert["annotations"]["output"]
            .as_str()
            .is_some_and(|o| !o.is_empty())
    );

    let _target = Target::start(target_port);
    let resolved = wait_until("the resolved webhook", Duration::from_secs(30), || {
        let got = hook.on("/hook");
        (statuses(&got) == ["firing", "resolved"]).then_some(got)
    });
    let last = resolved.last().unwrap().json();
    assert_eq!(last["alerts"][0]["status"], "resolved");
    assert!(last["alerts"][0]["endsAt"].is_string());
    assert_ne!(
        last["key"], body["key"],
        "a recovery is a notification of its own"
    );

    // Mail: the rule's `notify: [mail]`, one per transition, with its key as Message-ID.
    let received = wait_until("two mails", Duration::from_secs(60), || {
        let found = mails(&maildir);
        (found.len() >= 2).then_some(found)
    });
    assert!(
        received[0].contains("Subject: [FIRING] port on notify-test-host is CRITICAL"),
        "{}",
        received[0]
    );
    assert!(received[1].contains("[RESOLVED]"), "{}", received[1]);
    for mail in &received {
        assert!(
            mail.contains("Message-ID: <") && mail.contains("@vedette>"),
            "{mail}"
        );
        assert!(
            mail.contains("text/plain") && mail.contains("text/html"),
            "{mail}"
        );
    }
    assert_eq!(received.len(), 2, "one mail per transition");

    // Alertmanager delivered what Vedette posted, firing then resolved.
    let am = wait_until(
        "Alertmanager's resolved delivery",
        Duration::from_secs(60),
        || {
            let got = hook.on("/alertmanager");
            got.iter()
                .any(|r| r.json()["status"] == "resolved")
                .then_some(got)
        },
    );
    let first = am[0].json();
    assert_eq!(first["status"], "firing", "{first}");
    let labels = &first["alerts"][0]["labels"];
    assert_eq!(labels["alertname"], "VedetteCheck");
    assert_eq!(labels["rule_set"], "frontend");
    assert_eq!(labels["namespace"], "shop");

    // Every delivery is in the history.
    let history = wait_until("the notification records", Duration::from_secs(10), || {
        let body = get(port, "/v1/history?kind=notification_sent")?;
        let page: serde_json::Value = serde_json::from_str(&body).ok()?;
        let records = page["records"].as_array()?.clone();
        (records.len() >= 4).then_some(records)
    });
    let sources: std::collections::BTreeSet<&str> = history
        .iter()
        .filter_map(|r| r["source"].as_str())
        .collect();
    assert_eq!(
        sources,
        ["shop/hook", "shop/mail"].into_iter().collect(),
        "{history:?}"
    );
}

/// One webhook receiver that is tried many times, on one TCP check.
fn webhook_only(target: u16, hook: u16) -> String {
    format!(
        r#"apiVersion: vedette.dev/v1alpha1
kind: MonitorZone
metadata: {{name: local}}
spec: {{nodeSelector: {{}}}}
---
apiVersion: vedette.dev/v1alpha1
kind: CheckTemplate
metadata: {{name: port-open, namespace: shop}}
spec:
  check:
    tcp: {{host: 127.0.0.1, port: {target}}}
  intervalSeconds: 2
  maxAttempts: 1
  timeoutSeconds: 1
---
apiVersion: vedette.dev/v1alpha1
kind: RuleSet
metadata: {{name: frontend, namespace: shop}}
spec:
  machines: {{nodeSelector: {{}}}}
  rules:
    - name: port
      template: {{name: port-open}}
---
apiVersion: vedette.dev/v1alpha1
kind: NotificationConfig
metadata: {{name: shop, namespace: shop}}
spec:
  receivers:
    - name: hook
      webhook:
        url: http://127.0.0.1:{hook}/hook
        maxAttempts: 50
  routes:
    - receiver: hook
      groupWaitSeconds: 1
      groupIntervalSeconds: 1
"#
    )
}

fn standalone(dir: &Path, port: u16, run: usize) -> Killed {
    let stdout = std::fs::File::create(dir.join(format!("stdout.{run}"))).unwrap();
    let stderr = std::fs::File::create(dir.join(format!("stderr.{run}"))).unwrap();
    let child = Command::new(BIN)
        .args(["standalone", "-f"])
        .arg(dir.join("manifests"))
        .args(["--host", HOST, "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("start vedette-operator standalone");
    wait_port(port);
    Killed(child)
}

fn delivered(hook: &Hook) -> Vec<Received> {
    hook.on("/hook")
        .into_iter()
        .filter(|r| r.answered == 200)
        .collect()
}

/// The outbox's rule: a notification decided before a `kill -9` is delivered after the
/// restart, under the same key, and one delivered before a kill is not delivered again.
#[test]
fn a_notification_decided_before_a_kill_is_delivered_after_it_and_only_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let hook = Hook::start(usize::MAX);
    let (target_port, port) = (free_port(), free_port());
    let target = Target::start(target_port);
    std::fs::create_dir_all(dir.path().join("manifests")).unwrap();
    std::fs::write(
        dir.path().join("manifests/all.yaml"),
        webhook_only(target_port, hook.port),
    )
    .unwrap();
    let vedette = standalone(dir.path(), port, 1);
    std::thread::sleep(Duration::from_secs(3));
    drop(target);
    let refused = wait_until("a refused try", Duration::from_secs(30), || {
        hook.on("/hook").into_iter().next()
    });
    let key = refused.header("Idempotency-Key").unwrap().to_owned();
    drop(vedette); // SIGKILL: the notification is in the outbox only
    hook.accept_all();
    let vedette = standalone(dir.path(), port, 2);
    let sent = wait_until(
        "the delivery after the restart",
        Duration::from_secs(30),
        || {
            let sent = delivered(&hook);
            (!sent.is_empty()).then_some(sent)
        },
    );
    assert_eq!(sent[0].header("Idempotency-Key"), Some(key.as_str()));
    assert_eq!(sent[0].json()["status"], "firing");
    // Recorded, and so marked done in the same write.
    wait_until("the sent record", Duration::from_secs(10), || {
        let body = get(port, "/v1/history?kind=notification_sent")?;
        body.contains(&key).then_some(())
    });
    drop(vedette);
    let _vedette = standalone(dir.path(), port, 3);
    std::thread::sleep(Duration::from_secs(4));
    let sent = delivered(&hook);
    assert_eq!(
        sent.len(),
        1,
        "a delivered notification is not sent again after a restart: {sent:?}"
    );
}
