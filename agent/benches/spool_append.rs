//! Group-commit throughput of the spool on a scratch spool under the target directory (the
//! disk the project builds on). A load `TxF` is T tasks, each submitting F 200-byte records
//! and waiting until all F are durable before the next F: `64x1` and `256x1` are
//! append-and-wait loops; `4x256` is how the agent and the satellite use the spool (results
//! submitted without waiting; a satellite acknowledging a whole batch at once). Side by side,
//! in the same rounds, the bare disk: one writer appending 200 bytes and calling `fdatasync`
//! after each, which is what one append per fsync would reach. Prints numbers; never passes
//! or fails.
//!
//! `cargo bench -p vedette-agent --bench spool_append` (env: `BENCH_LOADS`, default
//! `64x1,256x1,4x256`; `BENCH_SECONDS`, default 5; `BENCH_ROUNDS`, default 3). The same
//! measurement from the release binary: `vedette-agent spool bench --dir D --tasks T
//! --in-flight F`.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use support::{env_or, median};

fn main() -> anyhow::Result<()> {
    let loads: Vec<(usize, usize)> = std::env::var("BENCH_LOADS")
        .unwrap_or_else(|_| "64x1,256x1,4x256".into())
        .split(',')
        .filter_map(|load| {
            let (tasks, in_flight) = load.trim().split_once('x')?;
            Some((tasks.parse().ok()?, in_flight.parse().ok()?))
        })
        .collect();
    let seconds: u64 = env_or("BENCH_SECONDS", 5);
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let duration = Duration::from_secs(seconds);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    println!("spool_append: group commit vs one fdatasync per record");
    println!("machine: {}", support::machine());
    println!(
        "inputs: 200 B records, {seconds} s per measurement, loads (tasks, in flight) {loads:?}, {rounds} rounds (spool per load, then the bare fdatasync loop); medians; dir {}",
        env!("CARGO_TARGET_TMPDIR")
    );
    let mut spool_rates = vec![Vec::new(); loads.len()];
    let mut records_per_commit = vec![Vec::new(); loads.len()];
    let mut bare_rates = Vec::new();
    for round in 1..=rounds {
        for (index, &(task_count, in_flight)) in loads.iter().enumerate() {
            let scratch = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
            let report = runtime.block_on(vedette_agent::spool::command::bench(
                scratch.path(),
                task_count,
                in_flight,
                duration,
                200,
            ))?;
            let rate = report.appends as f64 / report.elapsed.as_secs_f64();
            let per_commit = report.appends as f64 / report.commits.max(1) as f64;
            println!(
                "round {round}: spool {task_count:>3}x{in_flight:<3} {rate:>8.0} appends/s, {:>5.0} fsyncs/s, {per_commit:>5.1} records per commit, p50 {:?}, p99 {:?}",
                report.fsyncs as f64 / report.elapsed.as_secs_f64(),
                report.p50,
                report.p99
            );
            spool_rates[index].push(rate);
            records_per_commit[index].push(per_commit);
        }
        let bare = bare_fdatasync(duration)?;
        println!("round {round}: bare write+fdatasync loop {bare:>8.0} records/s (= fsyncs/s)");
        bare_rates.push(bare);
    }
    let bare = median(bare_rates);
    for (index, &(task_count, in_flight)) in loads.iter().enumerate() {
        let rate = median(spool_rates[index].clone());
        println!(
            "median: spool {task_count}x{in_flight} {rate:.0} appends/s ({:.1} records per commit) | bare fdatasync {bare:.0} records/s | ratio {:.1}x",
            median(records_per_commit[index].clone()),
            rate / bare
        );
    }
    Ok(())
}

/// Records per second of one writer that makes every 200-byte record durable on its own.
fn bare_fdatasync(duration: Duration) -> anyhow::Result<f64> {
    let scratch = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let mut file = std::fs::File::create(scratch.path().join("records"))?;
    let record = [b'r'; 200];
    let started = Instant::now();
    let mut records = 0u64;
    while started.elapsed() < duration {
        file.write_all(&record)?;
        file.sync_data()?;
        records += 1;
    }
    Ok(records as f64 / started.elapsed().as_secs_f64())
}
