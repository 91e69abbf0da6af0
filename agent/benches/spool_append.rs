//! Group-commit throughput of the spool: 64 tasks append 200-byte records, each waiting for
//! durability before its next append, on a scratch spool under the target directory (the
//! disk the project builds on). Prints numbers; never passes or fails.
//!
//! `cargo bench -p vedette-agent --bench spool_append` (or `vedette-agent spool bench --dir D`).

use std::time::Duration;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("machine: {cpus} CPUs; 3 runs of 5 s each");
    let mut rates = Vec::new();
    for run in 1..=3 {
        let scratch = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
        let report = runtime.block_on(vedette_agent::spool::command::bench(
            scratch.path(),
            64,
            Duration::from_secs(5),
            200,
        ))?;
        println!("run {run}:\n{report}");
        rates.push(report.appends as f64 / report.elapsed.as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    println!("median appends/s: {:.0}", rates[1]);
    Ok(())
}
