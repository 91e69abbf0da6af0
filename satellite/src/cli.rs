//! Command-line interface of `vedette-satellite`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser};

use crate::{SatelliteConfig, defaults};

/// Vedette's satellite: serves a zone's plans to its agents, stores their results durably
/// before acknowledging them, keeps the zone's state table, runs its remote checks, and
/// forwards state changes and summaries to the masters.
#[derive(Parser, Debug)]
#[command(name = "vedette-satellite", version, about, long_about = None)]
pub struct Cli {
    /// Log filter, e.g. `info` or `vedette_satellite=debug`.
    #[arg(long, env = "VEDETTE_LOG", default_value = "info")]
    pub log_level: String,
    /// What to serve.
    #[command(flatten)]
    pub args: SatelliteArgs,
}

/// Flags of `vedette-satellite`.
#[derive(Args, Debug)]
pub struct SatelliteArgs {
    /// The zone served.
    #[arg(long)]
    pub zone: String,
    /// Address of the API (plans, results, state, /metrics).
    #[arg(long, default_value = defaults::LISTEN)]
    pub listen: SocketAddr,
    /// Master base URL; repeat for several. None (and no --parent-zone-url): nothing is
    /// forwarded.
    #[arg(long = "masters", env = "VEDETTE_MASTERS", value_delimiter = ',')]
    pub masters: Vec<String>,
    /// Forward to the parent zone's satellites at this URL (their Service) instead of the
    /// masters: the zone has a `parentZone`.
    #[arg(
        long = "parent-zone-url",
        env = "VEDETTE_PARENT_ZONE_URL",
        conflicts_with = "masters"
    )]
    pub parent_zone_url: Option<String>,
    /// Bearer token file presented to the masters.
    #[arg(long, env = "VEDETTE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Directory of the spool and the state snapshot.
    #[arg(long, default_value = defaults::SPOOL_DIR)]
    pub spool_dir: PathBuf,
    /// Read the zone bundle (JSON) from this file instead of the zone's ConfigMaps.
    #[arg(long)]
    pub bundle_file: Option<PathBuf>,
    /// Accept plan and result requests without a token (standalone only).
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// This replica's id.
    #[arg(long, env = "POD_NAME", default_value = defaults::REPLICA)]
    pub replica: String,
    /// Namespace of the bundle ConfigMaps and Leases.
    #[arg(long, env = "POD_NAMESPACE", default_value = defaults::NAMESPACE)]
    pub namespace: String,
    /// Largest result batch accepted, bytes.
    #[arg(long, default_value_t = defaults::MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Seconds between summaries sent to the masters.
    #[arg(long, default_value_t = defaults::SUMMARY_SECONDS)]
    pub summary_seconds: u64,
    /// Seconds between snapshots of the state table and watermarks.
    #[arg(long, default_value_t = defaults::SNAPSHOT_SECONDS)]
    pub snapshot_seconds: u64,
    /// Seconds between renewals of this replica's Lease.
    #[arg(long, default_value_t = defaults::LEASE_RENEW_SECONDS)]
    pub lease_renew_seconds: u64,
    /// Seconds a replica's Lease lasts without renewal.
    #[arg(long, default_value_t = defaults::LEASE_DURATION_SECONDS)]
    pub lease_duration_seconds: u64,
    /// Remote checks running at once at most.
    #[arg(long, default_value_t = defaults::CONCURRENCY)]
    pub concurrency: usize,
    /// Backlog entries replayed to the masters per second.
    #[arg(long, default_value_t = defaults::REPLAY_PER_SECOND)]
    pub replay_per_second: u32,
    /// Seconds a stop (SIGTERM, SIGINT) may take: new batches are refused (503) at once, the
    /// remote checks stop, the snapshot is written, then what the masters have not
    /// acknowledged is sent until they have everything or this runs out; keep it below the
    /// pod's terminationGracePeriodSeconds. A second signal exits at once.
    #[arg(long, default_value_t = defaults::SHUTDOWN_GRACE_SECONDS)]
    pub shutdown_grace_seconds: u64,
}

impl From<SatelliteArgs> for SatelliteConfig {
    fn from(args: SatelliteArgs) -> Self {
        SatelliteConfig {
            zone: args.zone,
            replica: args.replica,
            namespace: args.namespace,
            listen: args.listen,
            masters: args.parent_zone_url.map_or(args.masters, |url| vec![url]),
            token_file: args.token_file,
            spool_dir: args.spool_dir,
            bundle_file: args.bundle_file,
            insecure_no_auth: args.insecure_no_auth,
            max_body_bytes: args.max_body_bytes,
            summary_seconds: args.summary_seconds,
            snapshot_seconds: args.snapshot_seconds,
            lease_renew_seconds: args.lease_renew_seconds,
            lease_duration_seconds: args.lease_duration_seconds,
            concurrency: args.concurrency,
            replay_per_second: args.replay_per_second,
            shutdown_grace_seconds: args.shutdown_grace_seconds,
        }
    }
}

/// Why the satellite stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The async runtime cannot start.
    #[error("failed to start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// The satellite role stopped.
    #[error(transparent)]
    Satellite(#[from] crate::Error),
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<(), Error> {
    vedette_agent::cli::init_logging(&cli.log_level);
    let runtime = vedette_agent::cli::runtime().map_err(Error::Runtime)?;
    let result = runtime.block_on(crate::run(cli.args.into()));
    // What is left (the HTTP server, the send loops) is dropped; a blocking task gets 2 s.
    runtime.shutdown_timeout(Duration::from_secs(2));
    Ok(result?)
}
