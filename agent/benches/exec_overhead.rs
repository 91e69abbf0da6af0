//! Plugin execution overhead: N runs of the real `check_tcp` against a loopback listener through
//! `PluginRunner` (own process group, timeout, captured and parsed output) with concurrency C,
//! side by side with a bare `std::process::Command` spawn + wait of the same argv on C threads.
//! Prints numbers; never fails on them.
//!
//! `cargo bench -p vedette-agent --bench exec_overhead` (env: `BENCH_RUNS` = N, default 400;
//! `BENCH_CONCURRENCY` = comma-separated C values, default `1,4`; `BENCH_ROUNDS`, default 3).

use std::net::{Ipv4Addr, TcpListener};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vedette_agent::nagios::exec::{ExecRequest, PluginRunner};
use vedette_crds::template::CheckState;

const CHECK_TCP: &str = "/usr/lib/nagios/plugins/check_tcp";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let runs: usize = env_or("BENCH_RUNS", 400);
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let concurrencies: Vec<usize> = std::env::var("BENCH_CONCURRENCY")
        .unwrap_or_else(|_| "1,4".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();

    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback listener");
    let port = listener.local_addr().expect("listener address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            drop(stream);
        }
    });
    let argv: Vec<String> = ["-H", "127.0.0.1", "-p", &port.to_string()]
        .map(String::from)
        .to_vec();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    println!("exec_overhead: {CHECK_TCP} -H 127.0.0.1 -p {port}");
    println!(
        "machine: {cpus} CPUs available; runs per measurement N={runs}; rounds={rounds}; median shown"
    );
    println!(
        "{:>3} {:>14} {:>14} {:>10} {:>12} {:>12} {:>14}",
        "C", "runner exec/s", "bare exec/s", "ratio", "runner µs", "bare µs", "overhead µs"
    );
    for &concurrency in &concurrencies {
        let mut runner_times = Vec::new();
        let mut bare_times = Vec::new();
        for _ in 0..rounds {
            // Alternate so that drift on a shared machine hits both sides alike.
            runner_times.push(runtime.block_on(runner_batch(&argv, runs, concurrency)));
            bare_times.push(bare_batch(&argv, runs, concurrency));
        }
        let runner = median(runner_times);
        let bare = median(bare_times);
        // Mean latency of one execution = wall time × concurrency / runs.
        let per_exec = |wall: Duration| wall.as_secs_f64() * 1e6 * concurrency as f64 / runs as f64;
        let rate = |wall: Duration| runs as f64 / wall.as_secs_f64();
        println!(
            "{:>3} {:>14.0} {:>14.0} {:>10.2} {:>12.0} {:>12.0} {:>14.0}",
            concurrency,
            rate(runner),
            rate(bare),
            rate(runner) / rate(bare),
            per_exec(runner),
            per_exec(bare),
            per_exec(runner) - per_exec(bare),
        );
    }
}

async fn runner_batch(argv: &[String], runs: usize, concurrency: usize) -> Duration {
    let runner = Arc::new(PluginRunner::default());
    let request = Arc::new(ExecRequest::new(CHECK_TCP, argv.to_vec()));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let (runner, request) = (runner.clone(), request.clone());
        let share = runs / concurrency + usize::from(worker < runs % concurrency);
        tasks.spawn(async move {
            for _ in 0..share {
                let result = runner.run(&request).await;
                assert_eq!(result.state, CheckState::Ok, "{}", result.output);
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("runner task");
    }
    started.elapsed()
}

fn bare_batch(argv: &[String], runs: usize, concurrency: usize) -> Duration {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for worker in 0..concurrency {
            let share = runs / concurrency + usize::from(worker < runs % concurrency);
            scope.spawn(move || {
                for _ in 0..share {
                    let status = Command::new(CHECK_TCP)
                        .args(argv)
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .expect("spawn check_tcp")
                        .wait()
                        .expect("wait for check_tcp");
                    assert!(status.success());
                }
            });
        }
    });
    started.elapsed()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}
