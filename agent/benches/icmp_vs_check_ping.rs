//! The built-in icmp probe side by side with `check_ping` (monitoring-plugins, which runs
//! `ping`) and `fping`, each pinging 127.0.0.1 in turn, one run after another. Prints CPU
//! (user + system) and wall time per run; never fails on the numbers.
//!
//! Probe: `Prober::run` in this process (a 2-worker tokio runtime like the node role), CPU from
//! `CLOCK_PROCESS_CPUTIME_ID`. Peers: one process per run, CPU from the reaped children's
//! times in `/proc/self/stat` (clock ticks, summed over all runs; check_ping's includes the
//! `ping` it runs). Two cases: one echo request, and five `BENCH_INTERVAL_MS` apart (fping
//! `-p`; check_ping has no interval option and its `ping` waits its default second between
//! requests, so it gets `BENCH_CHECK_PING_SLOW_RUNS` runs there).
//!
//! `cargo bench -p vedette-agent --bench icmp_vs_check_ping` (env: `BENCH_RUNS`, default 200;
//! `BENCH_INTERVAL_MS`, default 20; `BENCH_CHECK_PING_SLOW_RUNS`, default 10).

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{cpu_seconds, env_or, median, own_cpu_seconds};
use vedette_agent::probe::Prober;
use vedette_crds::CheckSpec;
use vedette_crds::check::{IcmpMetric, IcmpProbe};

const CHECK_PING: &str = "/usr/lib/nagios/plugins/check_ping";
const FPING: &str = "/usr/bin/fping";
const TARGET: &str = "127.0.0.1";
const TIMEOUT: Duration = Duration::from_secs(10);

/// Runs of one tool: failures, CPU seconds in all, wall time of each run.
struct Sample {
    runs: usize,
    failures: usize,
    cpu: f64,
    walls: Vec<f64>,
}

impl Sample {
    fn print(&self, name: &str) {
        let mean = self.walls.iter().sum::<f64>() / self.walls.len().max(1) as f64;
        println!(
            "  {name:<40} runs {:>4}  failed {:>3}  CPU {:>8.1} µs/run  wall median {:>7.2} ms  mean {:>7.2} ms",
            self.runs,
            self.failures,
            self.cpu * 1e6 / self.runs.max(1) as f64,
            median(self.walls.clone()) * 1e3,
            mean * 1e3,
        );
    }
}

fn probe(runtime: &tokio::runtime::Runtime, packets: u32, interval: u32, runs: usize) -> Sample {
    let prober = Prober::new();
    let spec = CheckSpec {
        icmp: Some(IcmpProbe {
            host: TARGET.into(),
            packets,
            interval_milliseconds: interval,
            payload_bytes: 56,
            metric: IcmpMetric::RoundTripMilliseconds,
        }),
        ..Default::default()
    };
    // One run first, so that the socket path and the runtime are warm.
    runtime.block_on(prober.run(&spec, TIMEOUT));
    let cpu_before = own_cpu_seconds();
    let mut sample = Sample {
        runs,
        failures: 0,
        cpu: 0.0,
        walls: Vec::with_capacity(runs),
    };
    for _ in 0..runs {
        let started = Instant::now();
        let output = runtime.block_on(prober.run(&spec, TIMEOUT));
        sample.walls.push(started.elapsed().as_secs_f64());
        sample.failures += usize::from(output.failure.is_some());
    }
    sample.cpu = own_cpu_seconds() - cpu_before;
    sample
}

/// CPU seconds of this process's reaped children.
fn children_cpu() -> f64 {
    let pid = std::process::id();
    cpu_seconds(pid, true) - cpu_seconds(pid, false)
}

fn external(program: &str, args: &[&str], runs: usize) -> Sample {
    let cpu_before = children_cpu();
    let mut sample = Sample {
        runs,
        failures: 0,
        cpu: 0.0,
        walls: Vec::with_capacity(runs),
    };
    for _ in 0..runs {
        let started = Instant::now();
        let status = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|error| panic!("cannot run {program}: {error}"));
        sample.walls.push(started.elapsed().as_secs_f64());
        sample.failures += usize::from(!status.success());
    }
    sample.cpu = children_cpu() - cpu_before;
    sample
}

fn main() {
    let runs: usize = env_or("BENCH_RUNS", 200);
    let interval: u32 = env_or("BENCH_INTERVAL_MS", 20);
    let slow_runs: usize = env_or("BENCH_CHECK_PING_SLOW_RUNS", 10);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let interval_arg = interval.to_string();
    println!("icmp_vs_check_ping: built-in icmp probe vs {CHECK_PING} and {FPING}, {TARGET}");
    println!("machine: {}", support::machine());
    println!(
        "inputs: {runs} runs per tool one after another, 56-byte payloads, 5-packet interval {interval} ms (check_ping: ping's 1 s, {slow_runs} runs)"
    );
    println!("1 echo request:");
    probe(&runtime, 1, interval, runs).print("vedette icmp probe");
    let check_ping_1 = ["-H", TARGET, "-w", "100,20%", "-c", "200,50%", "-p", "1"];
    external(CHECK_PING, &check_ping_1, runs).print("check_ping -p 1");
    external(FPING, &["-c1", "-q", TARGET], runs).print("fping -c1 -q");
    println!("5 echo requests:");
    probe(&runtime, 5, interval, runs).print(&format!("vedette icmp probe, {interval} ms apart"));
    let check_ping_5 = ["-H", TARGET, "-w", "100,20%", "-c", "200,50%", "-p", "5"];
    external(CHECK_PING, &check_ping_5, slow_runs).print("check_ping -p 5 (1 s apart)");
    let fping_5 = ["-c5", "-p", interval_arg.as_str(), "-q", TARGET];
    external(FPING, &fping_5, runs).print(&format!("fping -c5 -p {interval} -q"));
}
