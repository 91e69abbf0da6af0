//! `vedette-agent spool …`: look into a spool, measure one, and drive one for crash tests.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Subcommand;

use super::{Priority, Spool, SpoolConfig};

/// Tools for the agent's spool.
#[derive(Subcommand, Debug)]
pub enum SpoolCommand {
    /// Open a spool (recovering it, as the agent would) and print its stats.
    Inspect {
        /// Spool directory.
        #[arg(long)]
        dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Measure group-commit appends: appends/s, fsyncs/s, latency percentiles.
    Bench {
        /// Directory to create the scratch spool in (on the disk to measure).
        #[arg(long)]
        dir: PathBuf,
        /// Concurrent appending tasks.
        #[arg(long, default_value_t = 64)]
        tasks: usize,
        /// Records each task submits before waiting for all of them to be durable: 1 is an
        /// append-and-wait loop; a satellite acknowledging a batch, or an agent submitting
        /// results without waiting, has many in flight.
        #[arg(long, default_value_t = 1)]
        in_flight: usize,
        /// How long to append.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Payload size of every record.
        #[arg(long, default_value_t = 200)]
        payload_bytes: usize,
    },
    /// Append records and print `SEQUENCE PAYLOAD` for each as soon as it is durable
    /// (for crash tests).
    #[command(hide = true)]
    Append {
        /// Spool directory.
        #[arg(long)]
        dir: PathBuf,
        /// Records to append in all.
        #[arg(long)]
        count: usize,
        /// Concurrent appending tasks.
        #[arg(long, default_value_t = 8)]
        tasks: usize,
        /// Segment size.
        #[arg(long, default_value_t = super::default_segment_bytes())]
        segment_bytes: u64,
        /// Split writes into pieces of this size (makes torn records likely on a kill).
        #[arg(long)]
        write_chunk_bytes: Option<usize>,
    },
}

/// Why a spool subcommand failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spool failed (opening, appending, waiting for durability).
    #[error(transparent)]
    Spool(#[from] super::Error),
    /// Reading or writing a file, or stdout, failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The stats do not serialize.
    #[error("failed to print the stats as JSON")]
    Json(#[from] serde_json::Error),
    /// An appending task panicked.
    #[error("an appending task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// Runs a spool subcommand.
pub fn run(command: SpoolCommand) -> Result<(), Error> {
    let runtime = tokio::runtime::Runtime::new()?;
    match command {
        SpoolCommand::Inspect { dir, json } => inspect(&dir, json),
        SpoolCommand::Bench {
            dir,
            tasks,
            in_flight,
            seconds,
            payload_bytes,
        } => {
            let scratch = dir.join(format!("spool-bench-{}", std::process::id()));
            let report = runtime.block_on(bench(
                &scratch,
                tasks,
                in_flight,
                Duration::from_secs(seconds),
                payload_bytes,
            ));
            std::fs::remove_dir_all(&scratch)?;
            println!("{}", report?);
            Ok(())
        }
        SpoolCommand::Append {
            dir,
            count,
            tasks,
            segment_bytes,
            write_chunk_bytes,
        } => {
            let config = SpoolConfig {
                segment_bytes,
                write_chunk_bytes,
                ..SpoolConfig::new(dir)
            };
            runtime.block_on(append(config, count, tasks))
        }
    }
}

fn inspect(dir: &Path, json: bool) -> Result<(), Error> {
    let stats = Spool::open(SpoolConfig::new(dir))?.stats();
    if json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
        return Ok(());
    }
    let per = |p: &super::PerPriority| {
        format!(
            "state_change {}, keepalive {}, result {}",
            p.state_change, p.keepalive, p.result
        )
    };
    println!("directory:       {}", dir.display());
    println!(
        "depth:           {} ({})",
        stats.depth,
        per(&stats.depth_by_priority)
    );
    println!(
        "bytes:           {} waiting, {} on disk in {} segments",
        stats.bytes, stats.disk_bytes, stats.segments
    );
    println!(
        "sequence:        last {}, acknowledged through {}",
        stats.last_sequence, stats.acked_through
    );
    println!(
        "oldest age:      {}",
        stats
            .oldest_age_ms
            .map_or("-".into(), |ms| format!("{} s", ms / 1000))
    );
    println!(
        "dropped:         {} ({})",
        stats.dropped.total(),
        per(&stats.dropped)
    );
    let recovery = &stats.recovery;
    println!(
        "recovery:        {} records, {} torn tail bytes cut, {} damaged regions ({} bytes)",
        recovery.records,
        recovery.torn_tail_bytes,
        recovery.corrupt_regions,
        recovery.corrupt_bytes
    );
    for error in &recovery.errors {
        println!("recovery error:  {error}");
    }
    Ok(())
}

/// The payload the `append` subcommand writes for record `index` of `task`: ASCII, no spaces.
fn crash_test_payload(task: usize, index: usize) -> String {
    let head = format!("task{task}-record{index}-");
    let filler = (index % 64) + 16;
    format!("{head}{}", "x".repeat(filler))
}

async fn append(config: SpoolConfig, count: usize, tasks: usize) -> Result<(), Error> {
    let spool = Spool::open(config)?;
    let tasks = tasks.max(1);
    let mut handles = Vec::new();
    for task in 0..tasks {
        let spool = spool.clone();
        let share = count / tasks + usize::from(task < count % tasks);
        handles.push(tokio::spawn(async move {
            for index in 0..share {
                let payload = crash_test_payload(task, index);
                let priority = Priority::ALL[index % 3];
                let sequence = spool.append(priority, payload.clone().into_bytes()).await?;
                writeln!(std::io::stdout().lock(), "{sequence} {payload}")?;
            }
            Ok::<(), Error>(())
        }));
    }
    for handle in handles {
        handle.await??;
    }
    Ok(())
}

/// What [`bench`] measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// Directory measured.
    pub dir: PathBuf,
    /// Concurrent tasks.
    pub tasks: usize,
    /// Records each task had in flight.
    pub in_flight: usize,
    /// Payload size.
    pub payload_bytes: usize,
    /// Appends confirmed durable.
    pub appends: u64,
    /// fdatasync calls.
    pub fsyncs: u64,
    /// Group commits.
    pub commits: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Median append latency.
    pub p50: Duration,
    /// 99th percentile append latency.
    pub p99: Duration,
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seconds = self.elapsed.as_secs_f64();
        writeln!(
            f,
            "spool append bench: {} tasks × {} in flight, {} B payloads, {:.1} s, dir {}",
            self.tasks,
            self.in_flight,
            self.payload_bytes,
            seconds,
            self.dir.display()
        )?;
        writeln!(
            f,
            "appends/s:        {:.0} ({} appends)",
            self.appends as f64 / seconds,
            self.appends
        )?;
        writeln!(
            f,
            "fsyncs/s:         {:.0} ({} commits, {:.1} records per commit)",
            self.fsyncs as f64 / seconds,
            self.commits,
            self.appends as f64 / self.commits.max(1) as f64
        )?;
        write!(
            f,
            "append latency:   p50 {:?}, p99 {:?}",
            self.p50, self.p99
        )
    }
}

/// Appends `payload_bytes` records from `tasks` concurrent tasks for `duration` in a fresh
/// spool at `dir`. Each task submits `in_flight` records, waits until all of them are durable,
/// and starts again; a record's latency runs from its submission to its durability.
pub async fn bench(
    dir: &Path,
    tasks: usize,
    in_flight: usize,
    duration: Duration,
    payload_bytes: usize,
) -> Result<BenchReport, Error> {
    let spool = Spool::open(SpoolConfig {
        max_bytes: u64::MAX,
        ..SpoolConfig::new(dir)
    })?;
    let start = Instant::now();
    let deadline = start + duration;
    let mut handles = Vec::new();
    for _ in 0..tasks.max(1) {
        let spool = spool.clone();
        handles.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let began = Instant::now();
                let pending = (0..in_flight.max(1))
                    .map(|_| spool.submit(Priority::Result, vec![b'r'; payload_bytes]))
                    .collect::<Result<Vec<_>, _>>()?;
                for append in pending {
                    append.durable().await?;
                    latencies.push(began.elapsed());
                }
            }
            Ok::<_, Error>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for handle in handles {
        latencies.extend(handle.await??);
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or_default()
    };
    let stats = spool.stats();
    Ok(BenchReport {
        dir: dir.to_path_buf(),
        tasks,
        in_flight: in_flight.max(1),
        payload_bytes,
        appends: latencies.len() as u64,
        fsyncs: stats.fsyncs,
        commits: stats.commits,
        elapsed,
        p50: percentile(0.50),
        p99: percentile(0.99),
    })
}
