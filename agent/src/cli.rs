//! Command-line interface of `vedette-agent`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::host_paths::HostPaths;
use crate::node::{NodeConfig, defaults};

/// Vedette's agent: runs checks on this machine and reports state changes upstream.
#[derive(Parser, Debug)]
#[command(name = "vedette-agent", version, about, long_about = None)]
pub struct Cli {
    /// Log filter, e.g. `info` or `vedette_agent=debug`.
    #[arg(long, global = true, env = "VEDETTE_LOG", default_value = "info")]
    pub log_level: String,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The agent's roles and tools.
// Parsed once at start: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the checks of this machine: fetch the plan from the satellites (or read it from
    /// --plan), run it, spool and send state changes and keepalives, serve /metrics.
    Node(NodeArgs),
    /// Run every check of a plan once and print a table (troubleshooting); exits 0 when all
    /// are OK, else with the worst state's Nagios code (1 WARNING, 2 CRITICAL, 3 UNKNOWN).
    Check(CheckArgs),
    /// Print the Vedette API version this agent speaks.
    ApiVersion,
    /// Inspect or measure the agent's durable spool.
    Spool {
        /// What to do with the spool.
        #[command(subcommand)]
        command: crate::spool::command::SpoolCommand,
    },
}

/// Flags of `vedette-agent node`.
#[derive(Args, Debug)]
pub struct NodeArgs {
    /// This machine's name; the plan is fetched for it and reports carry it.
    #[arg(long, env = "NODE_NAME")]
    pub host: String,
    /// Upstream satellite base URL; repeat for standbys (primary first).
    #[arg(long = "upstream", env = "VEDETTE_UPSTREAMS", value_delimiter = ',')]
    pub upstreams: Vec<String>,
    /// Run this plan (JSON) instead of fetching one; with no --upstream, nothing is sent.
    #[arg(long)]
    pub plan: Option<PathBuf>,
    /// Directory of the durable spool.
    #[arg(long, default_value = defaults::SPOOL_DIR)]
    pub spool_dir: PathBuf,
    /// Directory where the last good plan is kept.
    #[arg(long, default_value = defaults::STATE_DIR)]
    pub state_dir: PathBuf,
    /// File holding the bearer token presented to upstreams (re-read at every request).
    #[arg(long, env = "VEDETTE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Address of /metrics and /healthz.
    #[arg(long, default_value = defaults::LISTEN)]
    pub listen: SocketAddr,
    /// Checks running at once at most.
    #[arg(long, default_value_t = defaults::CONCURRENCY)]
    pub concurrency: usize,
    /// Seconds between plan fetches.
    #[arg(long, default_value_t = defaults::PLAN_POLL_SECONDS)]
    pub plan_poll_seconds: u64,
    /// Seconds between keepalives until a plan says otherwise.
    #[arg(long, default_value_t = defaults::KEEPALIVE_SECONDS)]
    pub keepalive_seconds: u64,
    /// Seconds the last good plan keeps running without confirmation (72 h) when its zone
    /// sets no `planHoldSeconds`.
    #[arg(long, default_value_t = defaults::PLAN_HOLD_SECONDS)]
    pub plan_hold_seconds: u64,
    /// Backlog entries replayed per second after an outage.
    #[arg(long, default_value_t = defaults::REPLAY_PER_SECOND)]
    pub replay_per_second: u32,
    /// Largest spool, bytes, when the zone sets no `spoolMaxBytes`.
    #[arg(long, default_value_t = defaults::SPOOL_MAX_BYTES)]
    pub spool_max_bytes: u64,
    /// Oldest spool entry kept, seconds, when the zone sets no `spoolMaxAgeSeconds`.
    #[arg(long, default_value_t = defaults::SPOOL_MAX_AGE_SECONDS)]
    pub spool_max_age_seconds: u64,
    /// Directory searched for plugins given by name; repeat for several.
    #[arg(long = "plugin-dir")]
    pub plugin_dirs: Vec<PathBuf>,
    /// Where the machine probes find the node.
    #[command(flatten)]
    pub host_paths: HostPathArgs,
    /// Seconds a stop (SIGTERM, SIGINT) may take: running plugins are killed at once, then
    /// what the upstream has not acknowledged is sent until it has everything or this runs
    /// out; keep it below the pod's terminationGracePeriodSeconds. A second signal exits at
    /// once.
    #[arg(long, default_value_t = defaults::SHUTDOWN_GRACE_SECONDS)]
    pub shutdown_grace_seconds: u64,
}

/// Where the built-in machine probes find the node's `/` and `/proc`: this machine's own by
/// default, the node's mounted read-only into the pod (`/host/root`, `/host/proc`) in a
/// cluster.
#[derive(Args, Debug, Clone)]
pub struct HostPathArgs {
    /// Where the node's `/` is mounted: file, log and disk probes resolve their absolute paths
    /// under it (outputs still show the path as configured), and the process probe looks user
    /// names up in its `/etc/passwd`.
    #[arg(long, value_name = "PATH", default_value = "/")]
    pub host_root: PathBuf,
    /// Where the node's `/proc` is mounted: cpu, memory, swap, load and process probes read it;
    /// when it is not `/proc`, the network probe reads `<PATH>/1/net/dev` (the node's network
    /// namespace).
    #[arg(long, value_name = "PATH", default_value = "/proc")]
    pub host_proc: PathBuf,
}

impl From<HostPathArgs> for HostPaths {
    fn from(args: HostPathArgs) -> Self {
        HostPaths::new(args.host_root, args.host_proc)
    }
}

/// Flags of `vedette-agent check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The plan to run (JSON).
    #[arg(long)]
    pub plan: PathBuf,
    /// Run every check once and exit (the only mode for now; kept explicit for scripts).
    #[arg(long)]
    pub once: bool,
    /// Only validate the plan, run nothing (a dry run).
    #[arg(long, conflicts_with = "once")]
    pub dry_run: bool,
    /// Directory searched for plugins given by name; repeat for several.
    #[arg(long = "plugin-dir")]
    pub plugin_dirs: Vec<PathBuf>,
    /// Where the machine probes find the node.
    #[command(flatten)]
    pub host_paths: HostPathArgs,
}

impl From<CheckArgs> for crate::check_once::CheckOnceConfig {
    fn from(args: CheckArgs) -> Self {
        crate::check_once::CheckOnceConfig {
            plan: args.plan,
            dry_run: args.dry_run,
            plugin_dirs: args.plugin_dirs,
            host_paths: args.host_paths.into(),
        }
    }
}

impl From<NodeArgs> for NodeConfig {
    fn from(args: NodeArgs) -> Self {
        NodeConfig {
            host: args.host,
            upstreams: args.upstreams,
            plan_file: args.plan,
            spool_dir: args.spool_dir,
            state_dir: args.state_dir,
            token_file: args.token_file,
            listen: args.listen,
            concurrency: args.concurrency.max(1),
            plan_poll_seconds: args.plan_poll_seconds,
            keepalive_seconds: args.keepalive_seconds,
            plan_hold_seconds: args.plan_hold_seconds,
            replay_per_second: args.replay_per_second,
            spool_max_bytes: args.spool_max_bytes,
            spool_max_age_seconds: args.spool_max_age_seconds,
            plugin_dirs: args.plugin_dirs,
            host_paths: args.host_paths.into(),
            shutdown_grace_seconds: args.shutdown_grace_seconds,
        }
    }
}

/// Runs the parsed command; the process's exit code (`check` exits with the worst state's
/// Nagios code). `node` and `check` stop on SIGTERM or SIGINT, and their running plugins
/// (each in its own process group) are killed with their groups before the process exits;
/// `node` then drains (see [`crate::node`]) and exits 0.
pub fn run(cli: Cli) -> Result<ExitCode, Error> {
    init_logging(&cli.log_level);
    match cli.command {
        Command::Node(args) => {
            let runtime = runtime().map_err(Error::Runtime)?;
            runtime.block_on(crate::node::run(args.into()))?;
            stop(runtime);
        }
        Command::Check(args) => {
            let runtime = runtime().map_err(Error::Runtime)?;
            let worst = runtime.block_on(until_stopped(crate::check_once::run(args.into())));
            stop(runtime);
            return match worst? {
                Some(worst) => Ok(ExitCode::from(worst.exit_code() as u8)),
                None => Ok(ExitCode::from(STOPPED_EXIT_CODE)),
            };
        }
        Command::ApiVersion => {
            println!("{}/{}", vedette_crds::GROUP, vedette_crds::VERSION);
        }
        Command::Spool { command } => crate::spool::command::run(command)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Why a command of the agent failed; each variant's message is the command's own.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The async runtime cannot start.
    #[error("failed to start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// `node` stopped.
    #[error(transparent)]
    Node(#[from] crate::node::Error),
    /// `check` could not run its plan.
    #[error(transparent)]
    Check(#[from] crate::check_once::Error),
    /// A `spool` tool failed.
    #[error(transparent)]
    Spool(#[from] crate::spool::command::Error),
}

/// The exit code of `check` stopped by a signal before it finished: UNKNOWN.
const STOPPED_EXIT_CODE: u8 = 3;
/// How long stopping waits for tasks (and the spool's writers) to finish.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs `work` until it ends (`Some`) or SIGTERM or SIGINT arrives (`None`).
async fn until_stopped<T, E>(work: impl Future<Output = Result<T, E>>) -> Result<Option<T>, E> {
    // The handlers are in place before `work` is first polled (which starts plugins).
    let stopped = crate::signal::stopped();
    tokio::select! {
        result = work => result.map(Some),
        () = stopped => {
            tracing::info!(message = "Stopping: killing running plugins.");
            Ok(None)
        }
    }
}

/// Drops every task, which kills each running plugin's process group (its guard), and waits
/// a bounded time for them.
fn stop(runtime: tokio::runtime::Runtime) {
    runtime.shutdown_timeout(STOP_GRACE);
}

/// The runtime every command of the agent (and the satellite) runs on: two worker threads.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// Logs to stderr with `filter` (an `EnvFilter`; `info` when it does not parse).
pub fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_paths(args: &[&str]) -> HostPaths {
        let cli = Cli::try_parse_from(args).unwrap();
        match cli.command {
            Command::Node(args) => NodeConfig::from(args).host_paths,
            Command::Check(args) => args.host_paths.into(),
            other => panic!("unexpected command {other:?}"),
        }
    }

    #[test]
    fn host_paths_default_to_this_machine() {
        let default = HostPaths::default();
        assert_eq!(
            host_paths(&["vedette-agent", "node", "--host", "n1"]),
            default
        );
        assert_eq!(
            host_paths(&["vedette-agent", "check", "--plan", "p.json"]),
            default
        );
    }

    #[test]
    fn node_and_check_take_the_node_mounts() {
        let mounted = HostPaths::new("/host/root", "/host/proc");
        let flags = ["--host-root", "/host/root", "--host-proc", "/host/proc"];
        let node = [&["vedette-agent", "node", "--host", "n1"][..], &flags].concat();
        assert_eq!(host_paths(&node), mounted);
        let check = [&["vedette-agent", "check", "--plan", "p.json"][..], &flags].concat();
        assert_eq!(host_paths(&check), mounted);
    }
}
