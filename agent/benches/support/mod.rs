//! Helpers shared by the benchmarks that compare the agent with a peer: CPU and memory of a
//! process from `/proc`, peer daemons started in their own process group (and stopped by
//! group id, never by name), a loopback listener that counts accepted connections, the local
//! TCP and HTTP servers probes are pointed at, and medians.

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// The value of environment variable `name`, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `vedette-agent` release binary cargo built for this benchmark.
pub fn agent_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vedette-agent"))
}

/// One line about the machine: CPUs, model, and the load average at the start (the machine
/// is shared with other builds, which is why every figure is compared with a peer measured in
/// the same run).
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "{cpus} CPUs ({model}), shared with other builds; load average at start {}",
        load.join(" ")
    )
}

/// Fields of `/proc/<pid>/stat` after the command name (field 3 is index 0).
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    Some(
        after
            .split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

/// User plus system CPU seconds of `pid`; with `children`, also of its reaped children.
pub fn cpu_seconds(pid: u32, children: bool) -> f64 {
    let Some(fields) = stat_fields(pid) else {
        return 0.0;
    };
    // utime 14, stime 15, cutime 16, cstime 17 (1-based) → indices 11..=14.
    let own = fields[11] + fields[12];
    let reaped = if children { fields[13] + fields[14] } else { 0 };
    (own + reaped) as f64 / TICKS_PER_SECOND
}

/// User and system CPU seconds of this process so far, from `/proc/self/stat` (clock ticks).
pub fn own_user_system_seconds() -> (f64, f64) {
    let fields = stat_fields(std::process::id()).unwrap_or_default();
    let field = |i: usize| fields.get(i).copied().unwrap_or(0) as f64 / TICKS_PER_SECOND;
    (field(11), field(12))
}

/// CPU seconds of this process (all threads, children excluded), to the nanosecond: the
/// clock ticks of `/proc` are too coarse for the microseconds one execution costs.
pub fn own_cpu_seconds() -> f64 {
    let time = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    time.tv_sec as f64 + time.tv_nsec as f64 / 1e9
}

/// CPU seconds of `root` and every live descendant, each with its reaped children: what a
/// daemon that forks helpers (Icinga 2) and plugins costs in all.
pub fn tree_cpu_seconds(root: u32) -> f64 {
    let mut parents = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(fields) = stat_fields(pid) {
                parents.push((pid, fields[1] as u32));
            }
        }
    }
    let mut tree = vec![root];
    let mut index = 0;
    while index < tree.len() {
        let parent = tree[index];
        tree.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        index += 1;
    }
    tree.into_iter().map(|pid| cpu_seconds(pid, true)).sum()
}

/// Resident set size and its peak of `pid`, in KiB (`VmRSS`, `VmHWM`).
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The median (upper median for an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Waits until something accepts on `port`, at most `within`.
pub fn wait_for_port(port: u16, within: Duration) {
    let deadline = Instant::now() + within;
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A process this benchmark started, in its own process group; stopped (SIGTERM, then
/// SIGKILL to the group) when dropped.
pub struct Daemon {
    /// The process.
    pub child: Child,
    name: String,
}

impl Daemon {
    /// Starts `command` in a new process group.
    pub fn start(name: &str, mut command: Command) -> Self {
        let child = command
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {name}: {e}"));
        Daemon {
            child,
            name: name.to_owned(),
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Panics with `context` if the process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited early: {status}", self.name);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let group = Pid::from_raw(self.child.id() as i32);
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// A loopback listener on a thread that accepts and counts connections: the fair meter of how
/// many `check_tcp` runs a scheduler really performed. Like [`serve`], it waits for the
/// client to hang up first.
pub struct AcceptCounter {
    /// Its port.
    pub port: u16,
    count: Arc<AtomicU64>,
}

impl AcceptCounter {
    /// Starts the listener on its own single-threaded runtime.
    pub fn start() -> Self {
        let (sender, receiver) = std::sync::mpsc::channel();
        let count = Arc::new(AtomicU64::new(0));
        let counted = count.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = listen_deep();
                let port = listener.local_addr().expect("listener address").port();
                sender.send(port).expect("port");
                loop {
                    if let Ok((stream, _)) = listener.accept().await {
                        counted.fetch_add(1, Ordering::Relaxed);
                        tokio::spawn(until_closed(stream));
                    }
                }
            });
        });
        let port = receiver.recv().expect("listener port");
        AcceptCounter { port, count }
    }

    /// Connections accepted so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// Reads from an accepted connection until the client hangs up, then closes it. The client
/// closing first keeps the TIME_WAIT state on the client's side, where the kernel may reuse
/// it for new connections (`tcp_tw_reuse`); a server that closes first leaves it on its own
/// side, and once the 28,000 ephemeral ports wrap, new SYNs meet those sockets and wait for a
/// 1 s retransmission, which would measure the kernel instead of the prober.
async fn until_closed(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut buffer = [0u8; 512];
    while let Ok(1..) = stream.read(&mut buffer).await {}
}

/// Runs, in the calling (child) process, the servers probes are pointed at: `tcp_listeners`
/// TCP listeners that accept and wait for the client to close, and a keep-alive HTTP/1.1
/// server answering `ok`; prints `HTTP_PORT TCP_PORT…` on stdout once all listen.
pub fn serve(tcp_listeners: usize) {
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::Response;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let http = listen_deep();
        let mut ports = vec![http.local_addr().expect("addr").port()];
        for _ in 0..tcp_listeners.max(1) {
            let tcp = listen_deep();
            ports.push(tcp.local_addr().expect("addr").port());
            tokio::spawn(async move {
                loop {
                    if let Ok((stream, _)) = tcp.accept().await {
                        tokio::spawn(until_closed(stream));
                    }
                }
            });
        }
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        println!("{}", ports.join(" "));
        loop {
            let Ok((stream, _)) = http.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|_request| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

/// A loopback listener with the deepest accept queue the kernel allows (`somaxconn`): a prober
/// completes handshakes faster than a busy server accepts them, and an overflowing queue drops
/// SYNs, which come back only after a 1 s retransmission.
fn listen_deep() -> tokio::net::TcpListener {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind((Ipv4Addr::LOCALHOST, 0).into()).expect("bind");
    socket.listen(65_535).expect("listen")
}

/// Starts this benchmark binary again with `serve TCP_LISTENERS` and returns it with the
/// ports of its TCP listeners and of its HTTP server.
pub fn start_servers(tcp_listeners: usize) -> (Daemon, Vec<u16>, u16) {
    use std::io::{BufRead, BufReader};
    let mut command = Command::new(std::env::current_exe().expect("own path"));
    command
        .arg("serve")
        .arg(tcp_listeners.to_string())
        .stdout(std::process::Stdio::piped());
    let mut daemon = Daemon::start("servers", command);
    let mut line = String::new();
    BufReader::new(daemon.child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("ports");
    let ports: Vec<u16> = line
        .split_whitespace()
        .map(|p| p.parse().expect("port"))
        .collect();
    (daemon, ports[1..].to_vec(), ports[0])
}

/// A planned check named `rule` in rule set `bench` running `check` every `interval_seconds`.
pub fn planned(
    rule: &str,
    check: vedette_crds::CheckSpec,
    interval_seconds: u32,
) -> vedette_protocol::plan::PlannedCheck {
    use vedette_crds::template::CheckState;
    use vedette_protocol::plan::{CheckId, PlannedCheck};
    PlannedCheck {
        id: CheckId {
            namespace: "bench".into(),
            rule_set: "bench".into(),
            rule: rule.into(),
        },
        template: "bench/bench".into(),
        labels: Default::default(),
        check,
        warning: None,
        critical: None,
        condition: None,
        condition_state: CheckState::Critical,
        interval_seconds,
        every_cycles: None,
        retry_interval_seconds: interval_seconds,
        max_attempts: 1,
        timeout_seconds: 1,
        timeout_state: CheckState::Critical,
        spool_every_result: false,
    }
}

/// Writes a plan of `checks` for host `bench` to `dir/plan.json` and returns its path.
pub fn write_plan(
    dir: &std::path::Path,
    checks: Vec<vedette_protocol::plan::PlannedCheck>,
) -> PathBuf {
    let plan = vedette_protocol::plan::Plan {
        host: "bench".into(),
        zone: "bench".into(),
        settings: vedette_protocol::plan::AgentSettings::default(),
        checks,
        elements: Vec::new(),
        secrets: Default::default(),
    };
    let path = dir.join("plan.json");
    std::fs::write(&path, serde_json::to_vec(&plan).expect("plan JSON")).expect("write plan");
    path
}

/// Starts the release node agent (`vedette-agent node --plan`) with its spool and state in
/// `dir`, serving /metrics on `metrics_port`, logging warnings only.
pub fn start_node_agent(
    dir: &std::path::Path,
    plan: &std::path::Path,
    metrics_port: u16,
    extra: &[&str],
) -> Daemon {
    let mut command = Command::new(agent_binary());
    command
        .env("VEDETTE_LOG", "warn")
        .args(["node", "--host", "bench", "--plan"])
        .arg(plan)
        .arg("--spool-dir")
        .arg(dir.join("spool"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{metrics_port}"))
        .args(extra);
    let daemon = Daemon::start("vedette-agent node", command);
    wait_for_port(metrics_port, Duration::from_secs(20));
    daemon
}
