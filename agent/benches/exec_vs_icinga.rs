//! Nagios plugin executions per second: the real node agent (`vedette-agent node --plan`, a
//! plan of N `exec` checks of `check_tcp`) side by side with Icinga 2 (Debian's `icinga2`,
//! standalone: its own config and directories in a temporary dir, only the checker feature)
//! running the same N services with the same argv and interval. Both point `check_tcp` at one
//! loopback listener in this process that counts accepted connections, which is how the
//! executions are counted for both. Prints numbers, never fails.
//!
//! Each round starts the agent, waits `BENCH_WARMUP_SECONDS`, counts for `BENCH_SECONDS`,
//! stops it; then the same for Icinga 2. CPU is the daemon's process tree, plugins included
//! (utime+stime+cutime+cstime).
//!
//! `cargo bench -p vedette-agent --bench exec_vs_icinga` (env: `BENCH_CHECKS`, comma-separated
//! N values, default `400,6000` (demand 200/s, which both meet, and 3,000/s, which neither does); `BENCH_INTERVAL_SECONDS`, default 2, a plan's shortest since a
//! check's 1 s timeout must be shorter than its interval; `BENCH_SECONDS`, default 10;
//! `BENCH_WARMUP_SECONDS`, default 5; `BENCH_ROUNDS`, default 3).

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{AcceptCounter, Daemon, env_or, median, tree_cpu_seconds};
use vedette_crds::CheckSpec;
use vedette_crds::check::ExecProbe;

const CHECK_TCP: &str = "/usr/lib/nagios/plugins/check_tcp";
const ICINGA2: &str = "/usr/lib/x86_64-linux-gnu/icinga2/sbin/icinga2";

struct Sample {
    executions: u64,
    seconds: f64,
    cpu: f64,
}

impl Sample {
    fn rate(&self) -> f64 {
        self.executions as f64 / self.seconds
    }
    fn cpu_us(&self) -> f64 {
        self.cpu * 1e6 / self.executions as f64
    }
}

fn main() {
    let checks: Vec<usize> = std::env::var("BENCH_CHECKS")
        .unwrap_or_else(|_| "400,6000".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let interval: u32 = env_or("BENCH_INTERVAL_SECONDS", 2);
    let seconds: f64 = env_or("BENCH_SECONDS", 10.0);
    let warmup: f64 = env_or("BENCH_WARMUP_SECONDS", 5.0);
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let listener = AcceptCounter::start();
    println!(
        "exec_vs_icinga: {CHECK_TCP} -H 127.0.0.1 -p {} through the node agent vs Icinga 2",
        listener.port
    );
    println!("machine: {}", support::machine());
    println!(
        "inputs: N checks every {interval} s; warm-up {warmup} s, then executions counted for {seconds} s at the listener; {rounds} rounds (agent, then Icinga 2); medians; agent at its default --concurrency 64, Icinga 2 at its default MaxConcurrentChecks 512"
    );
    let measure = |daemon: &mut Daemon| {
        // The warm-up starts with the first execution, once the daemon has loaded its config.
        let (first, deadline) = (listener.count(), Instant::now() + Duration::from_secs(120));
        while listener.count() == first {
            daemon.assert_running();
            assert!(Instant::now() < deadline, "no check ran within 120 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_secs_f64(warmup));
        daemon.assert_running();
        let (count, cpu, started) = (
            listener.count(),
            tree_cpu_seconds(daemon.pid()),
            Instant::now(),
        );
        std::thread::sleep(Duration::from_secs_f64(seconds));
        daemon.assert_running();
        Sample {
            executions: listener.count() - count,
            seconds: started.elapsed().as_secs_f64(),
            cpu: tree_cpu_seconds(daemon.pid()) - cpu,
        }
    };
    for &n in &checks {
        let mut agent_samples = Vec::new();
        let mut icinga_samples = Vec::new();
        for round in 1..=rounds {
            let scratch = tempfile::tempdir().expect("scratch dir");
            let agent = {
                let mut daemon = start_agent(scratch.path(), n, interval, listener.port);
                measure(&mut daemon)
            };
            let icinga = {
                let mut daemon = start_icinga(scratch.path(), n, interval, listener.port);
                measure(&mut daemon)
            };
            println!(
                "N={n:<5} round {round}: agent {:>6.0} exec/s {:>6.0} µs CPU/exec | Icinga 2 {:>6.0} exec/s {:>6.0} µs CPU/exec",
                agent.rate(),
                agent.cpu_us(),
                icinga.rate(),
                icinga.cpu_us()
            );
            agent_samples.push(agent);
            icinga_samples.push(icinga);
        }
        let med = |s: &[Sample], f: fn(&Sample) -> f64| median(s.iter().map(f).collect());
        let (agent_rate, icinga_rate) = (
            med(&agent_samples, Sample::rate),
            med(&icinga_samples, Sample::rate),
        );
        let (agent_cpu, icinga_cpu) = (
            med(&agent_samples, Sample::cpu_us),
            med(&icinga_samples, Sample::cpu_us),
        );
        println!(
            "N={n:<5} median: agent {agent_rate:.0} exec/s, {agent_cpu:.0} µs CPU/exec | Icinga 2 {icinga_rate:.0} exec/s, {icinga_cpu:.0} µs CPU/exec | demand {:.0}/s | ratio agent/Icinga 2: throughput {:.2}x, CPU per execution {:.2}x less",
            n as f64 / f64::from(interval),
            agent_rate / icinga_rate,
            icinga_cpu / agent_cpu
        );
    }
}

fn start_agent(dir: &Path, n: usize, interval: u32, port: u16) -> Daemon {
    let checks = (0..n)
        .map(|i| {
            let check = CheckSpec {
                exec: Some(ExecProbe {
                    command: CHECK_TCP.into(),
                    args: ["-H", "127.0.0.1", "-p", &port.to_string()]
                        .map(String::from)
                        .to_vec(),
                }),
                ..Default::default()
            };
            support::planned(&format!("tcp{i}"), check, interval)
        })
        .collect();
    let plan = support::write_plan(dir, checks);
    support::start_node_agent(dir, &plan, support::free_port(), &[])
}

fn start_icinga(dir: &Path, n: usize, interval: u32, port: u16) -> Daemon {
    let root = dir.join("icinga2");
    for sub in ["data", "run/icinga2", "cache", "log", "spool"] {
        std::fs::create_dir_all(root.join(sub)).expect("icinga2 dirs");
    }
    let config = root.join("icinga2.conf");
    std::fs::write(
        &config,
        format!(
            r#"include <itl>
object CheckerComponent "checker" {{ }}
object Host "bench" {{
  check_command = "dummy"
  enable_active_checks = false
}}
object CheckCommand "bench_tcp" {{
  command = [ "{CHECK_TCP}", "-H", "127.0.0.1", "-p", "{port}" ]
}}
for (i in range({n})) {{
  object Service "tcp" + i {{
    host_name = "bench"
    check_command = "bench_tcp"
    check_interval = {interval}s
    retry_interval = {interval}s
  }}
}}
"#
        ),
    )
    .expect("write icinga2.conf");
    let mut command = Command::new(ICINGA2);
    command.arg("daemon").arg("-c").arg(&config);
    for (name, sub) in [
        ("DataDir", "data"),
        ("InitRunDir", "run"),
        ("CacheDir", "cache"),
        ("LogDir", "log"),
        ("SpoolDir", "spool"),
    ] {
        command.arg(format!("-D{name}={}", root.join(sub).display()));
    }
    // As root, Icinga 2 would switch to its `nagios` user; keep the benchmark's user.
    if rustix::process::geteuid().is_root() {
        command.args(["-DRunAsUser=root", "-DRunAsGroup=root"]);
    }
    command.stdout(Stdio::null()).stderr(Stdio::null());
    Daemon::start("icinga2", command)
}
