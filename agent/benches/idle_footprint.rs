//! The node agent's footprint at rest: the release `vedette-agent node --plan` running 50
//! built-in checks every 10 s (cpu, memory, disk, load, tcp, file) side by side with Debian's
//! `prometheus-node-exporter` (default collectors), both on 127.0.0.1 at the same time and
//! both scraped every 10 s by this process. Prints RSS and CPU per window; never fails.
//!
//! `cargo bench -p vedette-agent --bench idle_footprint` (env: `BENCH_SECONDS` per window,
//! default 60; `BENCH_ROUNDS` windows, default 3; `BENCH_WARMUP_SECONDS`, default 15).

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::{AcceptCounter, Daemon, cpu_seconds, env_or, median, rss_kib};
use vedette_crds::CheckSpec;
use vedette_crds::check::{
    CpuProbe, DiskMetric, DiskProbe, FileMetric, FileProbe, LoadProbe, MemoryMetric, MemoryProbe,
    PortOrParameter, TcpProbe,
};

const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";
const SCRAPE_EVERY: Duration = Duration::from_secs(10);
const CHECKS: usize = 50;
const INTERVAL_SECONDS: u32 = 10;

fn main() {
    let seconds: u64 = env_or("BENCH_SECONDS", 60);
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let warmup: u64 = env_or("BENCH_WARMUP_SECONDS", 15);
    let listener = AcceptCounter::start();
    let scratch = tempfile::tempdir().expect("scratch dir");
    let plan = support::write_plan(scratch.path(), plan_checks(listener.port, scratch.path()));
    let agent_port = support::free_port();
    let mut agent = support::start_node_agent(scratch.path(), &plan, agent_port, &[]);
    let exporter_port = support::free_port();
    let textfiles = scratch.path().join("textfile");
    std::fs::create_dir_all(&textfiles).expect("textfile dir");
    let mut command = Command::new(NODE_EXPORTER);
    command
        .arg(format!("--web.listen-address=127.0.0.1:{exporter_port}"))
        .arg(format!(
            "--collector.textfile.directory={}",
            textfiles.display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut exporter = Daemon::start("node_exporter", command);
    support::wait_for_port(exporter_port, Duration::from_secs(20));

    let stop = Arc::new(AtomicBool::new(false));
    let scraper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let next = Instant::now() + SCRAPE_EVERY;
                scrape(agent_port);
                scrape(exporter_port);
                while Instant::now() < next && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })
    };

    println!(
        "idle_footprint: vedette-agent node ({CHECKS} built-in checks every {INTERVAL_SECONDS} s) vs {NODE_EXPORTER}"
    );
    println!("machine: {}", support::machine());
    println!(
        "inputs: both running at once, both scraped every {} s; warm-up {warmup} s, then {rounds} windows of {seconds} s; medians",
        SCRAPE_EVERY.as_secs()
    );
    std::thread::sleep(Duration::from_secs(warmup));
    let mut rows = Vec::new();
    for round in 1..=rounds {
        let (a0, e0, t0) = (
            cpu_seconds(agent.pid(), true),
            cpu_seconds(exporter.pid(), true),
            Instant::now(),
        );
        let accepted = listener.count();
        std::thread::sleep(Duration::from_secs(seconds));
        agent.assert_running();
        exporter.assert_running();
        let wall = t0.elapsed().as_secs_f64();
        let agent_cpu = (cpu_seconds(agent.pid(), true) - a0) / wall * 100.0;
        let exporter_cpu = (cpu_seconds(exporter.pid(), true) - e0) / wall * 100.0;
        let (agent_rss, agent_peak) = rss_kib(agent.pid());
        let (exporter_rss, exporter_peak) = rss_kib(exporter.pid());
        println!(
            "window {round}: agent RSS {:.1} MB (peak {:.1}), CPU {agent_cpu:.3} % of a core, {} tcp checks seen | node_exporter RSS {:.1} MB (peak {:.1}), CPU {exporter_cpu:.3} % of a core",
            mb(agent_rss),
            mb(agent_peak),
            listener.count() - accepted,
            mb(exporter_rss),
            mb(exporter_peak),
        );
        rows.push([mb(agent_rss), agent_cpu, mb(exporter_rss), exporter_cpu]);
    }
    stop.store(true, Ordering::Relaxed);
    let _ = scraper.join();
    let column = |i: usize| median(rows.iter().map(|r| r[i]).collect());
    println!(
        "median: agent RSS {:.1} MB, CPU {:.3} % of a core, {} threads | node_exporter RSS {:.1} MB, CPU {:.3} % of a core | ratio agent/node_exporter: RSS {:.2}x, CPU {:.2}x",
        column(0),
        column(1),
        threads(agent.pid()),
        column(2),
        column(3),
        column(0) / column(2),
        column(1) / column(3)
    );
}

/// 50 checks: 9 tcp, 9 file, 8 each of cpu, memory, disk and load.
fn plan_checks(port: u16, dir: &std::path::Path) -> Vec<vedette_protocol::plan::PlannedCheck> {
    let spec = |i: usize| -> (&'static str, CheckSpec) {
        match i % 6 {
            0 => (
                "tcp",
                CheckSpec {
                    tcp: Some(TcpProbe {
                        host: "127.0.0.1".into(),
                        port: PortOrParameter::Int(port.into()),
                        send: None,
                        expect: None,
                        close: Default::default(),
                    }),
                    ..Default::default()
                },
            ),
            1 => (
                "file",
                CheckSpec {
                    file: Some(FileProbe {
                        path: dir.join("plan.json").display().to_string(),
                        metric: FileMetric::AgeSeconds,
                    }),
                    ..Default::default()
                },
            ),
            2 => (
                "cpu",
                CheckSpec {
                    cpu: Some(CpuProbe {
                        busiest_core: i.is_multiple_of(4),
                    }),
                    ..Default::default()
                },
            ),
            3 => (
                "memory",
                CheckSpec {
                    memory: Some(MemoryProbe {
                        metric: MemoryMetric::UsedPercent,
                    }),
                    ..Default::default()
                },
            ),
            4 => (
                "disk",
                CheckSpec {
                    disk: Some(DiskProbe {
                        mount_point: "/".into(),
                        metric: DiskMetric::UsedPercent,
                    }),
                    ..Default::default()
                },
            ),
            _ => (
                "load",
                CheckSpec {
                    load: Some(LoadProbe {
                        period_minutes: 1,
                        per_cpu: true,
                    }),
                    ..Default::default()
                },
            ),
        }
    };
    (0..CHECKS)
        .map(|i| {
            let (kind, check) = spec(i);
            support::planned(&format!("{kind}{i}"), check, INTERVAL_SECONDS)
        })
        .collect()
}

/// One `GET /metrics`, read to the end.
fn scrape(port: u16) {
    if let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n");
        let mut body = Vec::new();
        let _ = stream.read_to_end(&mut body);
    }
}

fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

fn threads(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Threads:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
