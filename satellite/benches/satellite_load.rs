//! Satellite ingest under load: N simulated agents against ONE real satellite process, and
//! Icinga 2's passive check-result API under the same generator, side by side in one run.
//!
//! ```text
//! cargo bench -p vedette-satellite --bench satellite_load -- [--agents 10000] [--checks 4]
//!     [--seconds 30] [--connections 32] [--batch 10] [--rounds 3] [--sample-every 100]
//!     [--no-peer]
//! ```
//!
//! * Vedette: `vedette-satellite --bundle-file … --insecure-no-auth` (this build's
//!   binary, release profile under `cargo bench`) serving a bundle of N machines × K checks.
//!   Every simulated agent sends batches of `--batch` entries (state changes of its checks,
//!   a keepalive every 10 s) over HTTP/1.1 keep-alive; `--connections` worker tasks, each
//!   owning a slice of the agents, one request in flight each. Results/s counts acknowledged
//!   entries. One entry in `--sample-every` is timed from just before its POST until
//!   `GET /v1/state?host=H` shows it applied (4 pollers; samples arriving while they are busy
//!   are skipped). RSS is the satellite's VmRSS and VmHWM after the run.
//! * Icinga 2 (Debian's, `e2e/tools/install-bench-peers.sh`): a standalone daemon with its own
//!   config in a temp dir, the API feature with a throw-away CA, N hosts × K passive services;
//!   the same workers POST `/v1/actions/process-check-result` (one result per request: the
//!   action takes one object) with basic auth over TLS keep-alive.
//!
//! The generator runs on the same cores as the server it loads; both servers are started
//! and stopped by pid, and the median of the rounds is printed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::mpsc;
use vedette_crds::template::CheckState;
use vedette_protocol::plan::CheckId;
use vedette_protocol::report::{
    Batch, CheckReport, Envelope, Keepalive, PlanState, Report, StateCounts,
};

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

const SATELLITE_BIN: &str = env!("CARGO_BIN_EXE_vedette-satellite");
const NAMESPACE: &str = "bench";
const RULE_SET: &str = "load";

#[derive(Debug, Clone)]
struct Args {
    agents: usize,
    checks: usize,
    seconds: u64,
    connections: usize,
    batch: usize,
    rounds: usize,
    sample_every: u64,
    peer: bool,
}

fn args() -> Args {
    let mut args = Args {
        agents: 10_000,
        checks: 4,
        seconds: 30,
        connections: 32,
        batch: 10,
        rounds: 3,
        sample_every: 100,
        peer: true,
    };
    let given: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < given.len() {
        let value = || -> u64 {
            given
                .get(i + 1)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{} needs a number", given[i]))
        };
        match given[i].as_str() {
            "--agents" => args.agents = value() as usize,
            "--checks" => args.checks = value() as usize,
            "--seconds" => args.seconds = value(),
            "--connections" => args.connections = value() as usize,
            "--batch" => args.batch = value() as usize,
            "--rounds" => args.rounds = value() as usize,
            "--sample-every" => args.sample_every = value(),
            "--no-peer" => {
                args.peer = false;
                i += 1;
                continue;
            }
            _ => {
                // `cargo bench` passes `--bench`; ignore what is not ours.
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    args
}

fn host(index: usize) -> String {
    format!("h{index:05}")
}

fn rule(index: usize) -> String {
    format!("c{index}")
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A bundle of `agents` machines running the same `checks` TCP checks.
fn bundle(args: &Args) -> serde_json::Value {
    let checks: Vec<serde_json::Value> = (0..args.checks)
        .map(|c| {
            serde_json::json!({
                "id": {"namespace": NAMESPACE, "ruleSet": RULE_SET, "rule": rule(c)},
                "template": "tcp-port",
                "check": {"tcp": {"host": "$host$", "port": 1000 + c}},
                "conditionState": "CRITICAL",
                "intervalSeconds": 60,
                "retryIntervalSeconds": 60,
                "maxAttempts": 1,
                "timeoutSeconds": 10,
                "timeoutState": "CRITICAL",
            })
        })
        .collect();
    let all: Vec<u32> = (0..args.checks as u32).collect();
    let machines: BTreeMap<String, Vec<u32>> =
        (0..args.agents).map(|a| (host(a), all.clone())).collect();
    serde_json::json!({
        "zone": "load",
        "settings": {
            "keepaliveIntervalSeconds": 10,
            "planHoldSeconds": 259200,
            "spoolMaxBytes": 268435456,
            "spoolMaxAgeSeconds": 604800,
        },
        "checks": checks,
        "machines": machines,
    })
}

/// A started server, stopped by pid on drop.
struct Server {
    child: Child,
    name: &'static str,
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// VmRSS and VmHWM in KiB of the process and its children (Icinga forks a worker).
    fn memory_kib(&self) -> (u64, u64) {
        let mut pids = vec![self.pid()];
        let mut i = 0;
        while i < pids.len() {
            let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", pids[i]))
                .unwrap_or_default();
            pids.extend(
                children
                    .split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
            i += 1;
        }
        let mut rss = 0;
        let mut hwm = 0;
        for pid in pids {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            for line in status.lines() {
                let kib = || {
                    line.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                if line.starts_with("VmRSS:") {
                    rss += kib();
                } else if line.starts_with("VmHWM:") {
                    hwm += kib();
                }
            }
        }
        (rss, hwm)
    }

    fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} did not stop on SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn client(ca: Option<&Path>) -> HttpsClient {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = ca {
        for cert in CertificateDer::pem_file_iter(ca).expect("read the CA") {
            roots
                .add(cert.expect("a CA certificate"))
                .expect("add the CA");
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(https)
}

async fn send(
    client: &HttpsClient,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<(u16, Bytes), String> {
    let mut request = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = client.request(request).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

/// Waits until `GET url` answers `want`.
async fn wait_ready(
    client: &HttpsClient,
    url: &str,
    headers: &[(&str, &str)],
    server: &mut Server,
) {
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("{} exited while starting: {status}", server.name);
        }
        match send(client, "GET", url, headers, Vec::new()).await {
            Ok((200, _)) => return,
            Ok((status, body)) => last = format!("{status} {}", String::from_utf8_lossy(&body)),
            Err(error) => last = error,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{} not ready: {last}", server.name);
}

/// What one load run measured.
#[derive(Debug, Clone, Default)]
struct Run {
    results: u64,
    requests: u64,
    errors: u64,
    seconds: f64,
    latencies_ms: Vec<f64>,
    rss_kib: u64,
    hwm_kib: u64,
    first_error: Option<String>,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.results as f64 / self.seconds
    }

    fn percentile(&self, p: f64) -> Option<f64> {
        if self.latencies_ms.is_empty() {
            return None;
        }
        let mut sorted = self.latencies_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
        Some(sorted[index])
    }
}

struct Sample {
    host: String,
    rule: String,
    at_ms: u64,
    sent: Instant,
}

struct SimAgent {
    name: String,
    sequence: u64,
    last_at_ms: u64,
    critical: Vec<bool>,
    next_keepalive: Instant,
}

struct Counters {
    results: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
    entries: AtomicU64,
}

/// What every worker of one run shares.
#[derive(Clone)]
struct Shared {
    client: HttpsClient,
    url: String,
    args: Args,
    until: Instant,
    counters: Arc<Counters>,
    first_error: Arc<std::sync::Mutex<Option<String>>>,
}

async fn vedette_worker(shared: Shared, mut agents: Vec<SimAgent>, samples: mpsc::Sender<Sample>) {
    let Shared {
        client,
        url,
        args,
        until,
        counters,
        first_error,
    } = shared;
    let mut next = 0;
    while Instant::now() < until {
        let count = agents.len();
        let agent = &mut agents[next];
        next = (next + 1) % count;
        let mut entries = Vec::with_capacity(args.batch);
        let mut batch_samples = Vec::new();
        let floor = agent.sequence + 1;
        let now = Instant::now();
        for slot in 0..args.batch {
            agent.sequence += 1;
            agent.last_at_ms = unix_ms().max(agent.last_at_ms + 1);
            let report = if slot == 0 && now >= agent.next_keepalive {
                agent.next_keepalive = now + Duration::from_secs(10);
                Report::Keepalive(Keepalive {
                    host: agent.name.clone(),
                    zone: "load".to_owned(),
                    at_ms: agent.last_at_ms,
                    interval_seconds: 10,
                    plan: PlanState::default(),
                    counts: StateCounts::default(),
                    spool_depth: 0,
                    spool_dropped: 0,
                    version: "bench".to_owned(),
                })
            } else {
                let c = fastrand::usize(..agent.critical.len());
                let was = agent.critical[c];
                agent.critical[c] = !was;
                let state = |critical| {
                    if critical {
                        CheckState::Critical
                    } else {
                        CheckState::Ok
                    }
                };
                let n = counters.entries.fetch_add(1, Ordering::Relaxed);
                if n % args.sample_every == 0 {
                    batch_samples.push((rule(c), agent.last_at_ms));
                }
                Report::StateChange(CheckReport {
                    check: CheckId {
                        namespace: NAMESPACE.to_owned(),
                        rule_set: RULE_SET.to_owned(),
                        rule: rule(c),
                    },
                    host: agent.name.clone(),
                    state: state(!was),
                    hard: true,
                    attempt: 1,
                    previous_state: state(was),
                    output: if was {
                        "TCP OK - 0.001 s"
                    } else {
                        "connection refused"
                    }
                    .to_owned(),
                    duration_ms: 1,
                    at_ms: agent.last_at_ms,
                })
            };
            entries.push(Envelope {
                sequence: agent.sequence,
                report,
            });
        }
        let batch = Batch {
            agent: agent.name.clone(),
            floor,
            entries,
        };
        let body = serde_json::to_vec(&batch).expect("batches serialize");
        let sent = Instant::now();
        let answer = send(
            &client,
            "POST",
            &url,
            &[("content-type", "application/json")],
            body,
        )
        .await;
        counters.requests.fetch_add(1, Ordering::Relaxed);
        match answer {
            Ok((200, _)) => {
                counters
                    .results
                    .fetch_add(args.batch as u64, Ordering::Relaxed);
                for (rule, at_ms) in batch_samples {
                    let _ = samples.try_send(Sample {
                        host: agent.name.clone(),
                        rule,
                        at_ms,
                        sent,
                    });
                }
            }
            other => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                first_error
                    .lock()
                    .expect("lock")
                    .get_or_insert_with(|| format!("{other:?}"));
            }
        }
    }
}

/// Polls `/v1/state?host=H` until the sampled entry (or a later one) is applied.
async fn poller(
    client: HttpsClient,
    base: String,
    samples: Arc<tokio::sync::Mutex<mpsc::Receiver<Sample>>>,
    latencies: Arc<std::sync::Mutex<Vec<f64>>>,
) {
    loop {
        let Some(sample) = samples.lock().await.recv().await else {
            return;
        };
        let url = format!("{base}/v1/state?host={}", sample.host);
        let give_up = sample.sent + Duration::from_secs(30);
        while Instant::now() < give_up {
            if let Ok((200, body)) = send(&client, "GET", &url, &[], Vec::new()).await {
                let view: serde_json::Value =
                    serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                let applied = view["checks"].as_array().is_some_and(|checks| {
                    checks.iter().any(|c| {
                        c["check"]
                            .as_str()
                            .is_some_and(|id| id.ends_with(&sample.rule))
                            && c["atMs"].as_u64().unwrap_or(0) >= sample.at_ms
                    })
                });
                if applied {
                    let ms = sample.sent.elapsed().as_secs_f64() * 1000.0;
                    latencies.lock().expect("lock").push(ms);
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

async fn run_vedette(args: &Args, dir: &Path) -> Run {
    std::fs::create_dir_all(dir).expect("bench dir");
    let bundle_file = dir.join("bundle.json");
    std::fs::write(
        &bundle_file,
        serde_json::to_vec(&bundle(args)).expect("json"),
    )
    .expect("bundle");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let child = Command::new(SATELLITE_BIN)
        .args(["--log-level", "warn", "--zone", "load", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--spool-dir")
        .arg(dir.join("satellite"))
        .arg("--bundle-file")
        .arg(&bundle_file)
        .arg("--insecure-no-auth")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("satellite.log")).expect("log"))
        .spawn()
        .expect("start the satellite");
    let mut server = Server {
        child,
        name: "vedette-satellite",
    };
    let client = client(None);
    wait_ready(&client, &format!("{base}/readyz"), &[], &mut server).await;

    let counters = Arc::new(Counters {
        results: AtomicU64::new(0),
        requests: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        entries: AtomicU64::new(0),
    });
    let first_error = Arc::new(std::sync::Mutex::new(None));
    let (sample_tx, sample_rx) = mpsc::channel(4);
    let sample_rx = Arc::new(tokio::sync::Mutex::new(sample_rx));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let pollers: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(poller(
                client.clone(),
                base.clone(),
                sample_rx.clone(),
                latencies.clone(),
            ))
        })
        .collect();
    let start = Instant::now();
    let until = start + Duration::from_secs(args.seconds);
    let mut slices: Vec<Vec<SimAgent>> = (0..args.connections).map(|_| Vec::new()).collect();
    for a in 0..args.agents {
        slices[a % args.connections].push(SimAgent {
            name: host(a),
            sequence: 0,
            last_at_ms: 0,
            critical: vec![false; args.checks],
            next_keepalive: Instant::now(),
        });
    }
    let shared = Shared {
        client: client.clone(),
        url: format!("{base}/v1/results"),
        args: args.clone(),
        until,
        counters: counters.clone(),
        first_error: first_error.clone(),
    };
    let workers: Vec<_> = slices
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(|agents| tokio::spawn(vedette_worker(shared.clone(), agents, sample_tx.clone())))
        .collect();
    drop(sample_tx);
    for worker in workers {
        worker.await.expect("worker");
    }
    let seconds = start.elapsed().as_secs_f64();
    for poller in pollers {
        let _ = tokio::time::timeout(Duration::from_secs(35), poller).await;
    }
    let (rss_kib, hwm_kib) = server.memory_kib();
    server.stop();
    let latencies_ms = latencies.lock().expect("lock").clone();
    let first_error = first_error.lock().expect("lock").clone();
    Run {
        results: counters.results.load(Ordering::Relaxed),
        requests: counters.requests.load(Ordering::Relaxed),
        errors: counters.errors.load(Ordering::Relaxed),
        seconds,
        latencies_ms,
        rss_kib,
        hwm_kib,
        first_error,
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run openssl (bash e2e/tools/install-bench-peers.sh)");
    assert!(status.success(), "openssl {args:?} failed");
}

/// Icinga 2 in `dir` with its own config: API on `port`, N hosts × K passive services.
fn start_icinga(args: &Args, dir: &Path, port: u16) -> Server {
    for sub in ["data/certs", "log", "cache", "spool", "run/icinga2/cmd"] {
        std::fs::create_dir_all(dir.join(sub)).expect("icinga dirs");
    }
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "data/certs/ca.crt",
            "-days",
            "7",
            "-subj",
            "/CN=Vedette bench CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "data/certs/bench.key",
            "-out",
            "bench.csr",
            "-subj",
            "/CN=bench",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:bench,IP:127.0.0.1\n",
    )
    .expect("ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "bench.csr",
            "-CA",
            "data/certs/ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "data/certs/bench.crt",
            "-days",
            "7",
            "-extfile",
            "san.ext",
        ],
    );
    let mut config = format!(
        r#"const NodeName = "bench"
const ZoneName = "bench"
object Endpoint NodeName {{ }}
object Zone ZoneName {{ endpoints = [ NodeName ] }}
object ApiListener "api" {{
  bind_host = "127.0.0.1"
  bind_port = {port}
  accept_config = false
  accept_commands = false
}}
object ApiUser "bench" {{ password = "bench"; permissions = [ "*" ] }}
object CheckCommand "passive" {{ command = [ "/bin/true" ] }}
template Host "passive-host" {{ check_command = "passive"; enable_active_checks = false }}
template Service "passive-service" {{ check_command = "passive"; enable_active_checks = false }}
"#
    );
    for a in 0..args.agents {
        config.push_str(&format!(
            "object Host \"{}\" {{ import \"passive-host\" }}\n",
            host(a)
        ));
    }
    for c in 0..args.checks {
        config.push_str(&format!(
            "apply Service \"{}\" {{ import \"passive-service\"; assign where true }}\n",
            rule(c)
        ));
    }
    std::fs::write(dir.join("icinga2.conf"), config).expect("icinga config");
    let d = dir.display();
    let defines = [
        format!("Configuration.DataDir={d}/data"),
        format!("Configuration.LogDir={d}/log"),
        format!("Configuration.CacheDir={d}/cache"),
        format!("Configuration.SpoolDir={d}/spool"),
        format!("Configuration.InitRunDir={d}/run"),
        format!("Configuration.RunDir={d}/run"),
        format!("Configuration.StatePath={d}/data/icinga2.state"),
        format!("Configuration.ObjectsPath={d}/cache/icinga2.debug"),
        format!("Configuration.PidPath={d}/run/icinga2.pid"),
        format!("Configuration.VarsPath={d}/cache/icinga2.vars"),
        "Configuration.RunAsUser=root".to_owned(),
        "Configuration.RunAsGroup=root".to_owned(),
    ];
    let mut command = Command::new("icinga2");
    command
        .args(["daemon", "-x", "warning", "-c"])
        .arg(dir.join("icinga2.conf"));
    for define in &defines {
        command.arg("-D").arg(define);
    }
    let child = command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("icinga2.log")).expect("log"))
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start icinga2 (bash e2e/tools/install-bench-peers.sh)");
    Server {
        child,
        name: "icinga2",
    }
}

async fn icinga_worker(shared: Shared, agents: Vec<usize>) {
    let Shared {
        client,
        url,
        args,
        until,
        counters,
        first_error,
    } = shared;
    let auth = "Basic YmVuY2g6YmVuY2g="; // bench:bench
    let mut critical = vec![vec![false; args.checks]; agents.len()];
    let mut next = 0;
    while Instant::now() < until {
        let a = next;
        next = (next + 1) % agents.len();
        let c = fastrand::usize(..args.checks);
        critical[a][c] = !critical[a][c];
        let (status, output) = if critical[a][c] {
            (2, "connection refused")
        } else {
            (0, "TCP OK - 0.001 s")
        };
        let body = serde_json::json!({
            "type": "Service",
            "service": format!("{}!{}", host(agents[a]), rule(c)),
            "exit_status": status,
            "plugin_output": output,
        });
        let answer = send(
            &client,
            "POST",
            &url,
            &[
                ("authorization", auth),
                ("accept", "application/json"),
                ("content-type", "application/json"),
            ],
            serde_json::to_vec(&body).expect("json"),
        )
        .await;
        counters.requests.fetch_add(1, Ordering::Relaxed);
        match answer {
            Ok((200, _)) => {
                counters.results.fetch_add(1, Ordering::Relaxed);
            }
            other => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                first_error
                    .lock()
                    .expect("lock")
                    .get_or_insert_with(|| format!("{other:?}"));
            }
        }
    }
}

async fn run_icinga(args: &Args, dir: &Path) -> Run {
    let port = free_port();
    let mut server = start_icinga(args, dir, port);
    let base = format!("https://127.0.0.1:{port}");
    let client = client(Some(&dir.join("data/certs/ca.crt")));
    let started = Instant::now();
    wait_ready(
        &client,
        &format!("{base}/v1/status/IcingaApplication"),
        &[
            ("authorization", "Basic YmVuY2g6YmVuY2g="),
            ("accept", "application/json"),
        ],
        &mut server,
    )
    .await;
    eprintln!(
        "  icinga2 ready with {} hosts × {} services after {:.1} s",
        args.agents,
        args.checks,
        started.elapsed().as_secs_f64()
    );
    let counters = Arc::new(Counters {
        results: AtomicU64::new(0),
        requests: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        entries: AtomicU64::new(0),
    });
    let first_error = Arc::new(std::sync::Mutex::new(None));
    let start = Instant::now();
    let until = start + Duration::from_secs(args.seconds);
    let mut slices: Vec<Vec<usize>> = (0..args.connections).map(|_| Vec::new()).collect();
    for a in 0..args.agents {
        slices[a % args.connections].push(a);
    }
    let shared = Shared {
        client: client.clone(),
        url: format!("{base}/v1/actions/process-check-result"),
        args: args.clone(),
        until,
        counters: counters.clone(),
        first_error: first_error.clone(),
    };
    let workers: Vec<_> = slices
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(|agents| tokio::spawn(icinga_worker(shared.clone(), agents)))
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    let seconds = start.elapsed().as_secs_f64();
    let (rss_kib, hwm_kib) = server.memory_kib();
    server.stop();
    let first_error = first_error.lock().expect("lock").clone();
    Run {
        results: counters.results.load(Ordering::Relaxed),
        requests: counters.requests.load(Ordering::Relaxed),
        errors: counters.errors.load(Ordering::Relaxed),
        seconds,
        latencies_ms: Vec::new(),
        rss_kib,
        hwm_kib,
        first_error,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return f64::NAN;
    }
    values[values.len() / 2]
}

fn report(name: &str, run: &Run) {
    let p = |q| {
        run.percentile(q)
            .map_or("-".to_owned(), |v| format!("{v:.1} ms"))
    };
    println!(
        "  {name:<8} {:>10.0} results/s  {:>8.0} req/s  errors {:>5}  latency p50 {} p99 {} (n={})  RSS {:.0} MiB  HWM {:.0} MiB",
        run.per_second(),
        run.requests as f64 / run.seconds,
        run.errors,
        p(0.5),
        p(0.99),
        run.latencies_ms.len(),
        run.rss_kib as f64 / 1024.0,
        run.hwm_kib as f64 / 1024.0,
    );
    if let Some(error) = &run.first_error {
        println!("           first error: {error}");
    }
}

fn icinga_available() -> bool {
    Command::new("icinga2")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn main() {
    let args = args();
    let peer = args.peer && icinga_available();
    if args.peer && !peer {
        println!("icinga2 not found: run `bash e2e/tools/install-bench-peers.sh` for the peer");
    }
    println!(
        "satellite_load: {} agents × {} checks, {} s per run, {} connections, batches of {}, {} rounds, 1 in {} entries timed; {} cores shared with the generator",
        args.agents,
        args.checks,
        args.seconds,
        args.connections,
        args.batch,
        args.rounds,
        args.sample_every,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut vedette_runs = Vec::new();
    let mut icinga_runs = Vec::new();
    for round in 1..=args.rounds {
        println!("round {round}");
        let dir = tempfile::tempdir().expect("temp dir");
        let run = runtime.block_on(run_vedette(&args, &dir.path().join("vedette")));
        report("vedette", &run);
        vedette_runs.push(run);
        if peer {
            let icinga_dir: PathBuf = dir.path().join("icinga2");
            std::fs::create_dir_all(&icinga_dir).expect("icinga dir");
            let run = runtime.block_on(run_icinga(&args, &icinga_dir));
            report("icinga2", &run);
            icinga_runs.push(run);
        }
    }
    let vedette_rate = median(vedette_runs.iter().map(Run::per_second).collect());
    let p99 = median(
        vedette_runs
            .iter()
            .filter_map(|r| r.percentile(0.99))
            .collect(),
    );
    let p50 = median(
        vedette_runs
            .iter()
            .filter_map(|r| r.percentile(0.5))
            .collect(),
    );
    let hwm = median(
        vedette_runs
            .iter()
            .map(|r| r.hwm_kib as f64 / 1024.0)
            .collect(),
    );
    let rss = median(
        vedette_runs
            .iter()
            .map(|r| r.rss_kib as f64 / 1024.0)
            .collect(),
    );
    println!("median of {} rounds:", args.rounds);
    println!(
        "  vedette  {vedette_rate:.0} results/s, ingest→state p50 {p50:.1} ms p99 {p99:.1} ms, RSS {rss:.0} MiB (HWM {hwm:.0} MiB) with {} agents",
        args.agents
    );
    if peer {
        let icinga_rate = median(icinga_runs.iter().map(Run::per_second).collect());
        let icinga_hwm = median(
            icinga_runs
                .iter()
                .map(|r| r.hwm_kib as f64 / 1024.0)
                .collect(),
        );
        println!(
            "  icinga2  {icinga_rate:.0} results/s, RSS HWM {icinga_hwm:.0} MiB with {} hosts × {} services",
            args.agents, args.checks
        );
        println!(
            "  ratio    vedette / icinga2 = {:.1}×",
            vedette_rate / icinga_rate
        );
    }
}
