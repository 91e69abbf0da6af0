//! Plugin execution overhead: N runs of the real `check_tcp` against a loopback listener through
//! `PluginRunner` (own process group, timeout, captured and parsed output) with concurrency C,
//! side by side with a bare `std::process::Command` spawn + wait of the same argv, in the same
//! environment (`LC_ALL=C`, as the runner sets it), on C threads.
//! Prints numbers; never fails on them.
//!
//! Two overheads are shown: wall time per execution (latency at C = 1, which on a shared
//! machine drifts with everyone else's load) and this process's own CPU time per execution
//! (what spawning, waiting and capturing cost the agent, children excluded), which is steady
//! under load.
//!
//! `cargo bench -p vedette-agent --bench exec_overhead` (env: `BENCH_RUNS` = N, default 1000;
//! `BENCH_CONCURRENCY` = comma-separated C values, default `1,4`; `BENCH_ROUNDS`, default 5;
//! `BENCH_SIDE` = `runner` or `bare` to run one side only, e.g. under `strace -c`;
//! `BENCH_PLUGIN=check_dummy` runs `check_dummy 0 ok` instead, which takes the TCP listener in
//! this process out of the CPU figures; `BENCH_RUNTIME=current` runs the runner on a
//! current-thread runtime instead of the node role's 2 workers).

mod support;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{env_or, own_cpu_seconds};
use vedette_agent::nagios::exec::{ExecRequest, PluginRunner};
use vedette_crds::template::CheckState;

const CHECK_TCP: &str = "/usr/lib/nagios/plugins/check_tcp";
const CHECK_DUMMY: &str = "/usr/lib/nagios/plugins/check_dummy";

fn main() {
    let runs: usize = env_or("BENCH_RUNS", 1000);
    let rounds: usize = env_or("BENCH_ROUNDS", 5);
    let side = std::env::var("BENCH_SIDE").unwrap_or_default();
    let concurrencies: Vec<usize> = std::env::var("BENCH_CONCURRENCY")
        .unwrap_or_else(|_| "1,4".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();

    let listener = support::AcceptCounter::start();
    let port = listener.port;
    let (plugin, argv): (&str, Vec<String>) =
        if std::env::var("BENCH_PLUGIN").as_deref() == Ok("check_dummy") {
            (CHECK_DUMMY, vec!["0".into(), "ok".into()])
        } else {
            let port = port.to_string();
            (
                CHECK_TCP,
                ["-H", "127.0.0.1", "-p", &port].map(String::from).to_vec(),
            )
        };

    let runtime = if std::env::var("BENCH_RUNTIME").as_deref() == Ok("current") {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    };
    println!("exec_overhead: {plugin} {}", argv.join(" "));
    println!("machine: {}", support::machine());
    println!(
        "inputs: runs per measurement N={runs}; rounds={rounds} (runner, then bare, alternating); medians"
    );
    println!(
        "{:>3} {:>13} {:>11} {:>7} {:>10} {:>8} {:>12} {:>14} {:>12} {:>16}",
        "C",
        "runner exec/s",
        "bare exec/s",
        "ratio",
        "runner µs",
        "bare µs",
        "overhead µs",
        "runner CPU µs",
        "bare CPU µs",
        "CPU overhead µs"
    );
    for &concurrency in &concurrencies {
        let mut runner_times = Vec::new();
        let mut bare_times = Vec::new();
        let mut runner_cpu = Vec::new();
        let mut bare_cpu = Vec::new();
        for _ in 0..rounds {
            // Alternate so that drift on a shared machine hits both sides alike.
            if side != "bare" {
                let cpu = own_cpu_seconds();
                runner_times.push(runtime.block_on(runner_batch(plugin, &argv, runs, concurrency)));
                runner_cpu.push((own_cpu_seconds() - cpu) * 1e6 / runs as f64);
            }
            if side != "runner" {
                let cpu = own_cpu_seconds();
                bare_times.push(bare_batch(plugin, &argv, runs, concurrency));
                bare_cpu.push((own_cpu_seconds() - cpu) * 1e6 / runs as f64);
            }
        }
        if !side.is_empty() {
            continue;
        }
        let runner = median(runner_times);
        let bare = median(bare_times);
        let (runner_cpu, bare_cpu) = (support::median(runner_cpu), support::median(bare_cpu));
        // Mean latency of one execution = wall time × concurrency / runs.
        let per_exec = |wall: Duration| wall.as_secs_f64() * 1e6 * concurrency as f64 / runs as f64;
        let rate = |wall: Duration| runs as f64 / wall.as_secs_f64();
        println!(
            "{:>3} {:>13.0} {:>11.0} {:>7.2} {:>10.0} {:>8.0} {:>12.0} {:>14.0} {:>12.0} {:>16.0}",
            concurrency,
            rate(runner),
            rate(bare),
            rate(runner) / rate(bare),
            per_exec(runner),
            per_exec(bare),
            per_exec(runner) - per_exec(bare),
            runner_cpu,
            bare_cpu,
            runner_cpu - bare_cpu,
        );
    }
}

async fn runner_batch(plugin: &str, argv: &[String], runs: usize, concurrency: usize) -> Duration {
    let runner = Arc::new(PluginRunner::default());
    let request = Arc::new(ExecRequest::new(plugin, argv.to_vec()));
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

fn bare_batch(plugin: &str, argv: &[String], runs: usize, concurrency: usize) -> Duration {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for worker in 0..concurrency {
            let share = runs / concurrency + usize::from(worker < runs % concurrency);
            scope.spawn(move || {
                for _ in 0..share {
                    // The same environment as the runner gives plugins: `LC_ALL=C` spares
                    // the plugin its locale loading, which would otherwise count against the
                    // bare side.
                    let status = Command::new(plugin)
                        .args(argv)
                        .env("LC_ALL", "C")
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .expect("spawn the plugin")
                        .wait()
                        .expect("wait for the plugin");
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
