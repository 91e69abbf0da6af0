//! The node role (`vedette-agent node`): wires the plan keeper, the check engine, the
//! keepalive, the sender and the metrics endpoint together, each a task joined by channels.
//!
//! Stopping (SIGTERM, SIGINT) is a drain within `shutdown_grace_seconds`: the engine starts
//! no check and kills the running ones' process groups, the check states are written, the
//! spool is closed (what was queued is committed), and the sender goes on until the upstream
//! acknowledged everything or the grace ran out; then `run` returns. A second signal exits
//! at once ([`crate::signal::graceful`]).

pub mod defaults;
pub mod engine;
pub mod error;
pub mod plan_keeper;
pub mod processes;
pub mod retention;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::host_paths::HostPaths;
use crate::metrics::{self, Metrics};
use crate::nagios::exec::PluginRunner;
use crate::probe::Prober;
use crate::runner::CheckRunner;
use crate::spool::{Priority, Spool, SpoolConfig};
use crate::transport::{Transport, Upstreams};
use vedette_protocol::plan::Plan;
use vedette_protocol::report::{Keepalive, Report};

use crate::sender::{self, AckGate, Cursors, SenderConfig};
use engine::{Reporter, SpoolSink};
pub use error::Error;
use plan_keeper::{ActivePlan, PlanKeeper, PlanStatus, SharedPlanStatus};
use retention::Retention;
use vedette_protocol::clock::unix_ms;

/// Everything the node role needs.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This machine's name (`NODE_NAME` in a cluster); also the agent id.
    pub host: String,
    /// Upstream satellites, primary first. Empty: standalone, with `plan_file`.
    pub upstreams: Vec<String>,
    /// A plan to run from a file instead of fetching one.
    pub plan_file: Option<PathBuf>,
    /// Directory of the spool.
    pub spool_dir: PathBuf,
    /// Directory of the last good plan.
    pub state_dir: PathBuf,
    /// Bearer token file for the upstream.
    pub token_file: Option<PathBuf>,
    /// Where `/metrics` and `/healthz` are served.
    pub listen: SocketAddr,
    /// Checks running at once at most.
    pub concurrency: usize,
    /// Seconds between plan fetches.
    pub plan_poll_seconds: u64,
    /// Seconds between keepalives until the plan says otherwise.
    pub keepalive_seconds: u64,
    /// How long a plan is held without confirmation.
    pub plan_hold_seconds: u64,
    /// Backlog entries replayed per second.
    pub replay_per_second: u32,
    /// Largest spool, bytes.
    pub spool_max_bytes: u64,
    /// Oldest spool entry, seconds.
    pub spool_max_age_seconds: u64,
    /// Directories searched for plugins given by name.
    pub plugin_dirs: Vec<PathBuf>,
    /// Where the machine probes find the node's `/` and `/proc`.
    pub host_paths: HostPaths,
    /// Seconds a stop (SIGTERM) may take to send what is left before the process exits.
    pub shutdown_grace_seconds: u64,
}

/// Runs the node role until SIGTERM or SIGINT, then drains (see the module), serving
/// `/metrics` on `config.listen`.
pub async fn run(config: NodeConfig) -> Result<(), Error> {
    // Before any plugin starts: a signal before the handlers exist would kill the process
    // with its plugins still running.
    let stop = crate::signal::graceful();
    let metrics = Arc::new(Metrics::default());
    let registry = Arc::new(metrics::registry(&metrics));
    let listen = |source| Error::Listen {
        address: config.listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(listen)?;
    info!(message = "Serving metrics.", address = %listener.local_addr().map_err(listen)?);
    let status = SharedPlanStatus::default();
    let ready = {
        let status = status.clone();
        move || {
            status
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .readiness()
        }
    };
    let router = crate::http::admin_router(move || metrics::encode(&registry), ready);
    tokio::spawn(crate::http::serve(listener, router));
    run_sharing(config, metrics, stop, status).await
}

/// Runs the node role until the process ends, recording into `metrics` (serve them with
/// [`crate::metrics::registry`] and [`crate::http::metrics_router`]); `config.listen` is not
/// bound here.
pub async fn run_with_metrics(config: NodeConfig, metrics: Arc<Metrics>) -> Result<(), Error> {
    run_until(config, metrics, std::future::pending()).await
}

/// [`run_with_metrics`] until `stop` resolves, then drains (see the module) and returns.
pub async fn run_until(
    config: NodeConfig,
    metrics: Arc<Metrics>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    run_sharing(config, metrics, stop, SharedPlanStatus::default()).await
}

/// [`run_until`] keeping the plan status in `status` (which `/readyz` reads).
async fn run_sharing(
    config: NodeConfig,
    metrics: Arc<Metrics>,
    stop: impl std::future::Future<Output = ()>,
    status: SharedPlanStatus,
) -> Result<(), Error> {
    let spool = open_spool(&config)?;
    let hold = Duration::from_secs(config.plan_hold_seconds);
    let (mut keeper, plans, status) =
        PlanKeeper::open_sharing(&config.host, &config.state_dir, hold, status);
    let (live_tx, live_rx) = mpsc::channel(10_000);
    let sink = Arc::new(SpoolSink::new(spool.clone(), live_tx));
    let reporter = Arc::new(Reporter::new(&config.host, sink, metrics.clone()));
    let runner = Arc::new(runner(&config));

    if let Some(path) = &config.plan_file {
        let plan = read_plan_file(path, &config.host)?;
        keeper
            .use_plan(plan, unix_ms())
            .map_err(|problems| Error::InvalidPlan {
                path: path.clone(),
                problems,
            })?;
    }
    // Tasks that simply end when the node stops; the sender is not one of them.
    let mut tasks = Vec::new();
    let sending = !config.upstreams.is_empty();
    if sending {
        let transport = transport(&config);
        tasks.push(tokio::spawn(fetch_plans(
            keeper,
            transport.clone(),
            config.plan_poll_seconds,
        )));
        let sender_config: SenderConfig<Report> = SenderConfig::new(
            &config.host,
            config.replay_per_second,
            metrics.send_metrics(),
        );
        let cursor = Cursors::single(spool.clone(), AckGate::open())
            .each()
            .remove(0);
        tokio::spawn(sender::run(sender_config, cursor, transport, live_rx));
    } else {
        // Standalone: keep the keeper (and its channel) alive; nothing is sent.
        tasks.push(tokio::spawn(async move {
            let _keeper = keeper;
            let _live = live_rx;
            std::future::pending::<()>().await;
        }));
    }
    let keepalive = Keepalives {
        host: config.host.clone(),
        default_seconds: config.keepalive_seconds,
        default_spool_limits: (config.spool_max_bytes, config.spool_max_age_seconds),
    };
    tasks.push(tokio::spawn(keepalive.run(
        plans.clone(),
        status,
        reporter.clone(),
        spool.clone(),
        metrics,
    )));
    tasks.push(tokio::spawn(processes::run(
        config.host.clone(),
        config.host_paths.clone(),
        plans.clone(),
        reporter.clone(),
        config.state_dir.join("element-states.json"),
    )));
    let stopping = CancellationToken::new();
    let engine = engine::run_until(
        config.host.clone(),
        plans,
        runner,
        reporter,
        config.concurrency,
        Some(Retention::open(config.state_dir.join(CHECK_STATES_FILE))),
        stopping.clone(),
    );
    let mut engine = std::pin::pin!(engine);
    tokio::select! {
        () = &mut engine => return Ok(()),
        () = stop => {}
    }
    let grace = Duration::from_secs(config.shutdown_grace_seconds);
    let deadline = tokio::time::Instant::now() + grace;
    info!(
        message = "Stopping: no new checks, running plugins killed, then sending what is left.",
        grace_seconds = grace.as_secs()
    );
    stopping.cancel();
    engine.await;
    for task in &tasks {
        task.abort();
    }
    if let Err(error) = spool.close().await {
        warn!(message = "Failed to flush the spool.", %error);
    }
    if sending {
        crate::shutdown::drain(&spool, deadline).await;
    }
    Ok(())
}

/// The check states kept across restarts, in the state directory.
pub const CHECK_STATES_FILE: &str = "check-states.json";

fn open_spool(config: &NodeConfig) -> Result<Spool, Error> {
    let mut spool_config = SpoolConfig::new(&config.spool_dir);
    spool_config.max_bytes = config.spool_max_bytes;
    spool_config.max_age_seconds = config.spool_max_age_seconds;
    Spool::open(spool_config).map_err(|source| Error::Spool {
        dir: config.spool_dir.clone(),
        source,
    })
}

fn runner(config: &NodeConfig) -> CheckRunner {
    let mut plugins = PluginRunner::default();
    if !config.plugin_dirs.is_empty() {
        plugins.plugin_dirs = config.plugin_dirs.clone();
    }
    if plugins.watchdog.is_none() {
        warn!(
            message = "No watchdog for plugins: should this agent be killed with SIGKILL, a running plugin may outlive its timeout.",
            looked_for = ?crate::nagios::exec::WATCHDOGS
        );
    }
    CheckRunner::new(
        Prober::new().with_host_paths(config.host_paths.clone()),
        plugins,
    )
}

fn transport(config: &NodeConfig) -> Transport {
    Transport::new(
        Upstreams::new(config.upstreams.clone()),
        config.token_file.clone(),
        Duration::from_secs(10),
    )
}

/// Reads a plan file (JSON) for `host`; a plan for another host is refused.
pub fn read_plan_file(path: &std::path::Path, host: &str) -> Result<Plan, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::ReadPlan {
        path: path.to_owned(),
        source,
    })?;
    let plan: Plan = serde_json::from_slice(&bytes).map_err(|source| Error::ParsePlan {
        path: path.to_owned(),
        source,
    })?;
    if plan.host != host && !host.is_empty() {
        return Err(Error::OtherHost {
            path: path.to_owned(),
            plan_host: plan.host,
            host: host.to_owned(),
        });
    }
    Ok(plan)
}

async fn fetch_plans(mut keeper: PlanKeeper, mut transport: Transport, every_seconds: u64) {
    let mut tick = tokio::time::interval(Duration::from_secs(every_seconds.max(1)));
    loop {
        tick.tick().await;
        keeper.poll(&mut transport, unix_ms()).await;
    }
}

/// The periodic keepalive, which also refreshes spool and plan metrics and applies retention.
struct Keepalives {
    host: String,
    default_seconds: u64,
    /// Spool bytes and age (seconds) from the command line, for a zone that sets none.
    default_spool_limits: (u64, u64),
}

/// The spool limits of the plan's zone; each one the zone leaves unset (0) is the default.
fn spool_limits(plan: Option<&ActivePlan>, (max_bytes, max_age_seconds): (u64, u64)) -> (u64, u64) {
    let positive = |value: i64| u64::try_from(value).ok().filter(|&v| v > 0);
    let settings = plan.map(|p| &p.plan.settings);
    (
        settings
            .and_then(|s| positive(s.spool_max_bytes))
            .unwrap_or(max_bytes),
        settings
            .and_then(|s| positive(s.spool_max_age_seconds))
            .unwrap_or(max_age_seconds),
    )
}

impl Keepalives {
    async fn run(
        self,
        mut plans: watch::Receiver<Option<Arc<ActivePlan>>>,
        status: Arc<Mutex<PlanStatus>>,
        reporter: Arc<Reporter>,
        spool: Spool,
        metrics: Arc<Metrics>,
    ) {
        loop {
            let plan = plans.borrow_and_update().clone();
            let interval = plan.as_ref().map_or(self.default_seconds, |p| {
                p.plan.settings.keepalive_interval_seconds.max(1) as u64
            });
            let now = unix_ms();
            let plan_status = status.lock().expect("plan status lock").clone();
            let (max_bytes, max_age_seconds) =
                spool_limits(plan.as_deref(), self.default_spool_limits);
            spool.set_limits(max_bytes, max_age_seconds);
            let retention_spool = spool.clone();
            if let Ok(Err(error)) =
                tokio::task::spawn_blocking(move || retention_spool.enforce_retention()).await
            {
                warn!(message = "Failed to apply spool retention.", %error);
            }
            let stats = spool.stats();
            metrics.spool.observe(&stats);
            let report = plan_status.to_report(now);
            metrics.plan_age_seconds.set(report.age_seconds as i64);
            metrics.set_plan(
                &report.hash,
                report.held,
                plan.as_ref().map_or(0, |p| p.checks.len()),
            );
            let keepalive = Keepalive {
                host: self.host.clone(),
                zone: plan
                    .as_ref()
                    .map(|p| p.plan.zone.clone())
                    .unwrap_or_default(),
                at_ms: now,
                interval_seconds: interval,
                plan: report,
                counts: reporter.counts(plan.as_deref()),
                spool_depth: stats.depth,
                spool_dropped: stats.dropped.total(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
            };
            reporter.spool(Priority::Keepalive, &Report::Keepalive(keepalive));
            tokio::time::sleep(Duration::from_secs(interval)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vedette_protocol::plan::AgentSettings;

    fn plan_with(spool_max_bytes: i64, spool_max_age_seconds: i64) -> ActivePlan {
        ActivePlan::new(Plan {
            host: "node-a".into(),
            zone: "z".into(),
            settings: AgentSettings {
                spool_max_bytes,
                spool_max_age_seconds,
                ..AgentSettings::default()
            },
            checks: Vec::new(),
            elements: Vec::new(),
            secrets: Default::default(),
        })
        .expect("valid plan")
    }

    #[test]
    fn the_zones_spool_limits_win_over_the_defaults() {
        let defaults = (1_000, 60);
        assert_eq!(spool_limits(None, defaults), defaults);
        assert_eq!(
            spool_limits(Some(&plan_with(2_000_000, 3_600)), defaults),
            (2_000_000, 3_600)
        );
        assert_eq!(
            spool_limits(Some(&plan_with(0, 3_600)), defaults),
            (1_000, 3_600)
        );
        assert_eq!(
            spool_limits(Some(&plan_with(5_000, -1)), defaults),
            (5_000, 60)
        );
    }
}
