//! Built-in TCP and HTTP probes side by side with Prometheus' `blackbox_exporter` (Debian's
//! `prometheus-blackbox-exporter`) probing the same local servers. Prints numbers, never fails.
//!
//! Agent side: `Prober::run` in this process (a 2-worker tokio runtime like the node role),
//! C probes in flight, CPU from `/proc/self/stat`. Peer side: blackbox_exporter on 127.0.0.1
//! with its own config, driven over HTTP (`/probe?target=…&module=tcp_connect|http_2xx`) by a
//! keep-alive client in this process with C requests in flight; blackbox's CPU comes from its
//! `/proc/<pid>/stat`, the load generator's (this process) is shown separately. The servers
//! run in a child process. Each round measures agent then blackbox for `BENCH_SECONDS`.
//!
//! TCP is measured three ways: one target (every connect to the same port, so at these rates
//! the kernel's search for a port not held in TIME_WAIT dominates both sides), `BENCH_TARGETS`
//! targets (the same probes spread over that many listening ports, the shape of an agent
//! checking many services), and one target with `close: Reset`.
//!
//! HTTP is compared like with like: the agent's default (a new connection per probe, closed
//! after it) against blackbox's `http_2xx`, which also opens a new connection per probe. The
//! agent with `reuseConnection: true` (one kept connection per probe in flight) is measured
//! apart, with no blackbox side: blackbox has no such mode.
//!
//! `cargo bench -p vedette-agent --bench probe_vs_blackbox` (env: `BENCH_SECONDS`, default 5;
//! `BENCH_ROUNDS`, default 3; `BENCH_CONCURRENCY`, default 64; `BENCH_TARGETS`, default 64).

mod support;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use support::{Daemon, cpu_seconds, env_or, median, own_cpu_seconds};
use vedette_agent::probe::Prober;
use vedette_crds::CheckSpec;
use vedette_crds::check::{HttpProbe, PortOrParameter, TcpClose, TcpProbe};

const BLACKBOX: &str = "/usr/bin/prometheus-blackbox-exporter";
const TIMEOUT: Duration = Duration::from_secs(5);
const BLACKBOX_CONFIG: &str = "modules:
  tcp_connect:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      valid_status_codes: [200]
";

/// One measurement: probes done, seconds, CPU seconds of the prober and of the load generator.
#[derive(Clone, Copy)]
struct Sample {
    probes: u64,
    failures: u64,
    seconds: f64,
    prober_cpu: f64,
    loadgen_cpu: f64,
    /// Share of this process's CPU time spent in the kernel.
    kernel_share: f64,
}

impl Sample {
    fn kernel_percent(&self) -> f64 {
        self.kernel_share * 100.0
    }
    fn rate(&self) -> f64 {
        self.probes as f64 / self.seconds
    }
    fn cpu_us(&self) -> f64 {
        self.prober_cpu * 1e6 / self.probes as f64
    }
    fn loadgen_us(&self) -> f64 {
        self.loadgen_cpu * 1e6 / self.probes as f64
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("serve") {
        let listeners = args.next().and_then(|n| n.parse().ok()).unwrap_or(1);
        return support::serve(listeners);
    }
    let seconds: f64 = env_or("BENCH_SECONDS", 5.0);
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 64);
    let targets: usize = env_or("BENCH_TARGETS", 64).max(1);
    let window = Duration::from_secs_f64(seconds);

    let (_servers, tcp_ports, http_port) = support::start_servers(targets);
    let scratch = tempfile::tempdir().expect("scratch dir");
    let config = scratch.path().join("blackbox.yml");
    std::fs::write(&config, BLACKBOX_CONFIG).expect("write blackbox config");
    let blackbox_port = support::free_port();
    let mut command = Command::new(BLACKBOX);
    command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{blackbox_port}"))
        .arg("--log.level=warn")
        .stdout(Stdio::null());
    let mut blackbox = Daemon::start("blackbox_exporter", command);
    support::wait_for_port(blackbox_port, Duration::from_secs(20));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!("probe_vs_blackbox: built-in probes vs {BLACKBOX}");
    println!("machine: {}", support::machine());
    println!(
        "inputs: {seconds} s per measurement, {concurrency} in flight, {rounds} rounds (agent, then blackbox, alternating), {targets} TCP targets in the spread case; medians"
    );
    let tcp_to = |port: u16, close: TcpClose| CheckSpec {
        tcp: Some(TcpProbe {
            host: "127.0.0.1".into(),
            port: PortOrParameter::Int(port.into()),
            send: None,
            expect: None,
            close,
        }),
        ..Default::default()
    };
    let tcp_port = tcp_ports[0];
    let http = |reuse_connection: bool| CheckSpec {
        http: Some(HttpProbe {
            url: format!("http://127.0.0.1:{http_port}/"),
            method: "GET".into(),
            expect_status: Vec::new(),
            body_match: Some("ok".into()),
            verify_certificate: true,
            headers: Default::default(),
            reuse_connection,
            auth: None,
        }),
        ..Default::default()
    };
    // The close with a reset (`close: Reset`) runs against the same blackbox module:
    // blackbox has no such setting and always closes gracefully.
    let cases = [
        Case {
            name: "tcp, 1 target".into(),
            specs: vec![tcp_to(tcp_port, TcpClose::Graceful)],
            module: Some("tcp_connect"),
            targets: vec![format!("127.0.0.1:{tcp_port}")],
        },
        Case {
            name: format!("tcp, {targets} targets"),
            specs: tcp_ports
                .iter()
                .map(|&port| tcp_to(port, TcpClose::Graceful))
                .collect(),
            module: Some("tcp_connect"),
            targets: tcp_ports
                .iter()
                .map(|port| format!("127.0.0.1:{port}"))
                .collect(),
        },
        Case {
            name: "tcp, 1 target, close: Reset".into(),
            specs: vec![tcp_to(tcp_port, TcpClose::Reset)],
            module: Some("tcp_connect"),
            targets: vec![format!("127.0.0.1:{tcp_port}")],
        },
        Case {
            name: "http, new connection per probe".into(),
            specs: vec![http(false)],
            module: Some("http_2xx"),
            targets: vec![format!("http://127.0.0.1:{http_port}/")],
        },
        Case {
            name: "http, reuseConnection (agent only)".into(),
            specs: vec![http(true)],
            module: None,
            targets: Vec::new(),
        },
    ];
    let prober = Arc::new(Prober::new());
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    for Case {
        name,
        specs,
        module,
        targets,
    } in &cases
    {
        // Warm-up (connection pools).
        runtime.block_on(agent(&prober, specs, concurrency, Duration::from_secs(1)));
        let Some(module) = module else {
            agent_only(&runtime, &prober, name, specs, concurrency, window, rounds);
            continue;
        };
        let uris: Vec<hyper::Uri> = targets
            .iter()
            .map(|target| {
                format!("http://127.0.0.1:{blackbox_port}/probe?module={module}&target={target}")
                    .parse()
                    .expect("probe uri")
            })
            .collect();
        // Warm-up of blackbox (its goroutines).
        runtime.block_on(peer(
            &client,
            &uris,
            blackbox.pid(),
            concurrency,
            Duration::from_secs(1),
        ));
        let mut agent_samples = Vec::new();
        let mut peer_samples = Vec::new();
        for round in 1..=rounds {
            let a = runtime.block_on(agent(&prober, specs, concurrency, window));
            let p = runtime.block_on(peer(&client, &uris, blackbox.pid(), concurrency, window));
            blackbox.assert_running();
            println!(
                "{name:>4} round {round}: agent {:>7.0} probes/s {:>6.1} µs CPU/probe ({:.0} % in the kernel, {} failed) | blackbox {:>7.0} probes/s {:>6.1} µs CPU/probe ({} failed), load generator {:>6.1} µs CPU/probe",
                a.rate(),
                a.cpu_us(),
                a.kernel_percent(),
                a.failures,
                p.rate(),
                p.cpu_us(),
                p.failures,
                p.loadgen_us()
            );
            agent_samples.push(a);
            peer_samples.push(p);
        }
        let med =
            |samples: &[Sample], f: fn(&Sample) -> f64| median(samples.iter().map(f).collect());
        let (agent_rate, peer_rate) = (
            med(&agent_samples, Sample::rate),
            med(&peer_samples, Sample::rate),
        );
        let (agent_cpu, peer_cpu) = (
            med(&agent_samples, Sample::cpu_us),
            med(&peer_samples, Sample::cpu_us),
        );
        let loadgen = med(&peer_samples, Sample::loadgen_us);
        println!(
            "{name:>4} median: agent {agent_rate:.0} probes/s, {agent_cpu:.1} µs CPU/probe ({:.0} probes per CPU-second) | blackbox {peer_rate:.0} probes/s, {peer_cpu:.1} µs CPU/probe ({:.0} probes per CPU-second; load generator {loadgen:.1} µs/probe more)",
            1e6 / agent_cpu,
            1e6 / peer_cpu
        );
        println!(
            "{name:>4} ratio agent/blackbox: throughput {:.2}x, CPU efficiency {:.2}x (blackbox with its load generator: {:.2}x)",
            agent_rate / peer_rate,
            peer_cpu / agent_cpu,
            (peer_cpu + loadgen) / agent_cpu
        );
    }
}

/// One way of probing, the same on both sides: the agent cycles through `specs`, blackbox
/// through `targets` with `module`; with no module the agent runs alone.
struct Case {
    name: String,
    specs: Vec<CheckSpec>,
    module: Option<&'static str>,
    targets: Vec<String>,
}

/// Measures a case blackbox has no equivalent of: the agent alone, `rounds` times.
fn agent_only(
    runtime: &tokio::runtime::Runtime,
    prober: &Arc<Prober>,
    name: &str,
    specs: &[CheckSpec],
    concurrency: usize,
    window: Duration,
    rounds: usize,
) {
    let mut samples = Vec::new();
    for round in 1..=rounds {
        let a = runtime.block_on(agent(prober, specs, concurrency, window));
        println!(
            "{name:>4} round {round}: agent {:>7.0} probes/s {:>6.1} µs CPU/probe ({:.0} % in the kernel, {} failed) | no blackbox equivalent",
            a.rate(),
            a.cpu_us(),
            a.kernel_percent(),
            a.failures
        );
        samples.push(a);
    }
    let rate = median(samples.iter().map(Sample::rate).collect());
    let cpu = median(samples.iter().map(Sample::cpu_us).collect());
    println!(
        "{name:>4} median: agent {rate:.0} probes/s, {cpu:.1} µs CPU/probe ({:.0} probes per CPU-second) | no blackbox equivalent (it opens a new connection per probe: compare with the row above)",
        1e6 / cpu
    );
}

/// The share of system time in this process's CPU time since `user`, `system`.
fn kernel_share(user: f64, system: f64) -> f64 {
    let (user_now, system_now) = support::own_user_system_seconds();
    let (user, system) = (user_now - user, system_now - system);
    system / (user + system).max(f64::MIN_POSITIVE)
}

/// Runs the built-in probes with `concurrency` in flight for `window`, each task cycling
/// through `specs` from its own starting point.
async fn agent(
    prober: &Arc<Prober>,
    specs: &[CheckSpec],
    concurrency: usize,
    window: Duration,
) -> Sample {
    let done = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let cpu = own_cpu_seconds();
    let (user, system) = support::own_user_system_seconds();
    let started = Instant::now();
    let deadline = started + window;
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..concurrency {
        let (prober, specs, done, failures) = (
            prober.clone(),
            specs.to_vec(),
            done.clone(),
            failures.clone(),
        );
        tasks.spawn(async move {
            let mut next = task;
            while Instant::now() < deadline {
                let output = prober.run(&specs[next % specs.len()], TIMEOUT).await;
                next += 1;
                if output.failure.is_some() {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let seconds = started.elapsed().as_secs_f64();
    Sample {
        probes: done.load(Ordering::Relaxed),
        failures: failures.load(Ordering::Relaxed),
        seconds,
        prober_cpu: own_cpu_seconds() - cpu,
        loadgen_cpu: 0.0,
        kernel_share: kernel_share(user, system),
    }
}

/// Drives blackbox_exporter's `/probe` with `concurrency` requests in flight for `window`,
/// each task cycling through `uris` from its own starting point.
async fn peer(
    client: &Client<HttpConnector, Empty<Bytes>>,
    uris: &[hyper::Uri],
    pid: u32,
    concurrency: usize,
    window: Duration,
) -> Sample {
    let done = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let peer_cpu = cpu_seconds(pid, true);
    let own_cpu = own_cpu_seconds();
    let started = Instant::now();
    let deadline = started + window;
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..concurrency {
        let (client, uris, done, failures) = (
            client.clone(),
            uris.to_vec(),
            done.clone(),
            failures.clone(),
        );
        tasks.spawn(async move {
            let mut next = task;
            while Instant::now() < deadline {
                let uri = uris[next % uris.len()].clone();
                next += 1;
                let ok = match client.get(uri).await {
                    Ok(response) => match response.into_body().collect().await {
                        Ok(body) => body.to_bytes().windows(15).any(|w| w == b"probe_success 1"),
                        Err(_) => false,
                    },
                    Err(_) => false,
                };
                if !ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let seconds = started.elapsed().as_secs_f64();
    Sample {
        probes: done.load(Ordering::Relaxed),
        failures: failures.load(Ordering::Relaxed),
        seconds,
        prober_cpu: cpu_seconds(pid, true) - peer_cpu,
        loadgen_cpu: own_cpu_seconds() - own_cpu,
        kernel_share: f64::NAN,
    }
}
