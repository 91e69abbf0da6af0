//! Standalone mode (F34, `vedette-operator standalone`): the same manifests on one machine,
//! without a cluster, in one process.
//!
//! 1. **Compile** the manifest files with this machine as the only machine (the same pure
//!    [`crate::compile::compile`] the reconciler uses).
//! 2. Run the **satellite** role ([`vedette_satellite::start`]) with a bundle source that
//!    re-compiles when the files change, unauthenticated and therefore on loopback only.
//! 3. Run the **node** role ([`vedette_agent::node::run_with_metrics`]) for this machine,
//!    pointed at that satellite over HTTP like any agent.
//! 4. Run the **masters** ([`crate::masters::Masters`]) with their history in the data
//!    directory, the satellite forwarding to them like to the cluster's: state changes and
//!    agent events are kept, and every check's last state is shown after a restart.
//!
//! One listener serves the satellite's API (`/v1/state`, `/v1/plan`, `/v1/results`,
//! `/metrics`), the masters' (`/v1/satellite`, `/v1/masters/state`, `/v1/history`,
//! `/v1/availability`, their metrics under `/masters/metrics`) and the agent's own metrics
//! under `/agent/metrics`; `/v1/state` adds the
//! business processes (`processes`: each element's state, as the masters evaluate them). A
//! summary of the state table and the processes goes to stdout whenever it changes (a state,
//! soft or hard, a process element; not a measured value in an output), and each hard state
//! change and element transition as it happens.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use vedette_agent::node::NodeConfig;
use vedette_crds::CheckState;
use vedette_protocol::plan::ZoneBundle;
use vedette_satellite::SatelliteConfig;
use vedette_satellite::bundle_source::{BundleSender, BundleSource, publish_if_changed};
use vedette_satellite::http::{Api, StateView, state_view};

use crate::compile::{Machine, Severity};
use crate::manifests;

/// Everything standalone mode needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Manifest files or directories.
    pub paths: Vec<PathBuf>,
    /// This machine, with its labels.
    pub machine: Machine,
    /// Address of the API and metrics; must be a loopback address (no authentication).
    pub listen: SocketAddr,
    /// Where the spools, the last good plan and the satellite's snapshot live.
    pub data_dir: PathBuf,
    /// Seconds between looks at the state; the summary is printed when it changed.
    pub summary_seconds: u64,
    /// Seconds between looks at the manifest files (0: never re-compile).
    pub watch_seconds: u64,
    /// How much history is kept.
    pub retention: vedette_history::Retention,
}

/// The machine standalone mode runs as: `name`, with `labels` over the defaults
/// `kubernetes.io/os=linux` and `kubernetes.io/hostname=<name>`.
pub fn machine(name: &str, labels: Vec<(String, String)>) -> Machine {
    let mut all = BTreeMap::from([
        ("kubernetes.io/os".to_owned(), "linux".to_owned()),
        ("kubernetes.io/hostname".to_owned(), name.to_owned()),
    ]);
    all.extend(labels);
    Machine {
        name: name.to_owned(),
        labels: all,
    }
}

/// Why standalone mode cannot start, or stopped. Each message names the file, address or
/// directory concerned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A manifest file or directory cannot be read.
    #[error(transparent)]
    Load(#[from] manifests::Error),
    /// Documents that do not parse.
    #[error("invalid manifests:\n  {}", problems.join("\n  "))]
    InvalidManifests {
        /// One line per problem, with its file and document.
        problems: Vec<String>,
    },
    /// No zone selects this machine.
    #[error(
        "no MonitorZone in {paths} selects machine {machine} (labels {labels}){}",
        indented(diagnostics)
    )]
    NoZone {
        /// The manifest paths.
        paths: String,
        /// This machine.
        machine: String,
        /// Its labels, `k=v,…`.
        labels: String,
        /// What compile said.
        diagnostics: Vec<String>,
    },
    /// The manifests have compile errors (printed before).
    #[error("{errors} compile error(s) in {paths} (see above)")]
    CompileErrors {
        /// How many.
        errors: usize,
        /// The manifest paths.
        paths: String,
    },
    /// The API would be served to more than this machine.
    #[error(
        "standalone mode serves its API without authentication: --listen must be a loopback \
         address, not {0}"
    )]
    NotLoopback(SocketAddr),
    /// The data directory cannot be created.
    #[error("failed to create {}", dir.display())]
    DataDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The API address cannot be bound.
    #[error("failed to listen on {address}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The satellite role cannot start.
    #[error(transparent)]
    Satellite(#[from] vedette_satellite::Error),
    /// The API server stopped.
    #[error("the API stopped")]
    Serve(#[source] std::io::Error),
    /// The node role stopped.
    #[error("the agent stopped")]
    Agent(#[source] vedette_agent::node::Error),
    /// The history cannot be opened (or is newer than this release).
    #[error("failed to open the history in {}", dir.display())]
    History {
        /// Its directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: vedette_history::Error,
    },
}

fn indented(lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!("\n  {}", lines.join("\n  "))
    }
}

/// What compiling the manifest files gave for this machine.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The bundle of the zone that selects the machine.
    pub bundle: ZoneBundle,
    /// Every diagnostic, one line each, prefixed with the file and document of its object.
    pub diagnostics: Vec<String>,
    /// How many of them are errors.
    pub errors: usize,
    /// The business processes, as the masters run them.
    pub processes: Vec<crate::compile::process::ProcessModel>,
    /// How notifications are routed.
    pub routing: crate::compile::notify::Routing,
    /// The Secret documents of the files.
    pub secrets: crate::notify::send::StaticSecrets,
}

/// The values, among the files' Secret documents, of the Secrets the bundle's checks read; a
/// missing one is left out (the check is UNKNOWN, naming it).
fn check_secret_values(
    secrets: &crate::notify::send::StaticSecrets,
    bundle: &ZoneBundle,
) -> vedette_protocol::plan::SecretValues {
    let values = crate::reconcile::check_secrets::references(bundle)
        .into_iter()
        .filter_map(|(namespace, name, key)| {
            let bytes = secrets
                .secrets
                .get(&(namespace.clone(), name.clone()))?
                .get(&key)?;
            let value = String::from_utf8(bytes.clone()).ok()?;
            Some((format!("{namespace}/{name}/{key}"), value))
        })
        .collect();
    vedette_protocol::plan::SecretValues(values)
}

/// Loads and compiles `paths` for `machine`. Documents that do not parse, and a machine no
/// zone selects, are errors naming the file, the document and the field.
pub fn compile_files(paths: &[PathBuf], machine: &Machine) -> Result<Compiled, Error> {
    let loaded = manifests::load_paths(paths)?;
    if !loaded.problems.is_empty() {
        return Err(Error::InvalidManifests {
            problems: loaded.problems,
        });
    }
    let origins: BTreeMap<_, _> = loaded
        .objects
        .iter()
        .map(|object| object.reference())
        .zip(loaded.origins.iter().cloned())
        .collect();
    let secrets = loaded.secrets.clone();
    let output = crate::compile::compile(&manifests::input(loaded.objects, vec![machine.clone()]));
    let diagnostics: Vec<String> = output
        .diagnostics
        .iter()
        .map(|d| match origins.get(&d.object) {
            Some(origin) => format!("{origin}: {d}"),
            None => d.to_string(),
        })
        .collect();
    let errors = output
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let processes: Vec<_> = output.processes.into_values().collect();
    let routing = output.notifications;
    let Some(mut bundle) = output
        .bundles
        .into_values()
        .find(|bundle| bundle.machines.contains_key(&machine.name))
    else {
        let labels: Vec<String> = machine
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        return Err(Error::NoZone {
            paths: describe(paths),
            machine: machine.name.clone(),
            labels: labels.join(","),
            diagnostics,
        });
    };
    bundle.secrets = check_secret_values(&secrets, &bundle);
    Ok(Compiled {
        bundle,
        diagnostics,
        errors,
        processes,
        routing,
        secrets,
    })
}

fn describe(paths: &[PathBuf]) -> String {
    let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    list.join(", ")
}

/// Runs standalone mode until Ctrl-C (or SIGTERM).
pub async fn run(config: Config) -> Result<(), Error> {
    // Before any plugin starts: a signal before the handlers exist would kill the process
    // with its plugins still running.
    let stopped = vedette_agent::signal::stopped();
    if !config.listen.ip().is_loopback() {
        return Err(Error::NotLoopback(config.listen));
    }
    let compiled = compile_files(&config.paths, &config.machine)?;
    for line in &compiled.diagnostics {
        eprintln!("{line}");
    }
    if compiled.errors > 0 {
        return Err(Error::CompileErrors {
            errors: compiled.errors,
            paths: describe(&config.paths),
        });
    }
    let zone = compiled.bundle.zone.clone();
    let checks = compiled
        .bundle
        .machines
        .get(&config.machine.name)
        .map_or(0, Vec::len);
    std::fs::create_dir_all(&config.data_dir).map_err(|source| Error::DataDir {
        dir: config.data_dir.clone(),
        source,
    })?;

    let listen = |source| Error::Listen {
        address: config.listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(listen)?;
    let address = listener.local_addr().map_err(listen)?;
    let (routing, routing_updates) =
        tokio::sync::watch::channel(Arc::new(compiled.routing.clone()));
    let (masters, masters_routes, pruner) =
        start_masters(&config, routing_updates, Arc::new(compiled.secrets.clone()))?;
    masters.state().set_processes(compiled.processes.clone());
    masters.set_catalog(crate::dashboard::catalog::Catalog::new(
        [&compiled.bundle],
        &[],
    ));
    let processes = compiled.processes.len();
    let source = ManifestSource {
        paths: config.paths.clone(),
        machine: config.machine.clone(),
        first: compiled,
        every: (config.watch_seconds > 0).then(|| Duration::from_secs(config.watch_seconds)),
        masters: masters.clone(),
        routing,
    };
    let api = vedette_satellite::start(
        satellite_config(&zone, address, &config.data_dir),
        Some(Box::new(source)),
    )
    .await?;
    let agent_metrics = Arc::new(vedette_agent::metrics::Metrics::default());
    let agent_registry = Arc::new(vedette_agent::metrics::registry(&agent_metrics));
    let satellite_routes = vedette_satellite::http::router(api.clone()).nest(
        "/agent",
        vedette_agent::http::metrics_router(agent_registry),
    );
    let state_routes = axum::Router::new()
        .route("/v1/state", axum::routing::get(standalone_state))
        .with_state((api.clone(), masters.clone()));
    let router = state_routes
        .merge(masters_routes)
        .fallback_service(satellite_routes);
    let server = axum::serve(listener, router);
    let node = vedette_agent::node::run_with_metrics(
        node_config(&config.machine.name, address, &config.data_dir),
        agent_metrics,
    );

    println!(
        "Vedette standalone: machine {} in zone {zone}, {checks} checks and {processes} business \
         process(es) from {}",
        config.machine.name,
        describe(&config.paths)
    );
    println!(
        "  dashboard  http://{address}/ui/\n  state  http://{address}/v1/state\n  metrics  http://{address}/metrics (satellite), \
         http://{address}/agent/metrics (agent), \
         http://{address}/masters/metrics (masters)\n  data  {}\nCtrl-C stops.",
        config.data_dir.display()
    );
    let summaries = print_summaries(
        api.clone(),
        masters.clone(),
        config.summary_seconds.max(1),
        address,
    );
    let outcome = tokio::select! {
        result = server => result.map_err(Error::Serve),
        result = node => result.map_err(Error::Agent),
        () = summaries => Ok(()),
        () = stopped => Ok(()),
    };
    pruner.abort();
    if let Err(error) = api.ingest.snapshot().await {
        eprintln!("failed to write the final snapshot: {error}");
    }
    print!(
        "{}",
        summary(&state_view(&api), &process_views(&masters), &now_hms())
    );
    println!("stopped");
    outcome
}

/// The masters, their routes and the task that prunes their history (in `config.data_dir`,
/// `masters/history.db`). Hard state changes and element transitions are printed as they
/// happen; agents' staleness and the processes' clocks are swept every second.
type StartedMasters = (
    Arc<crate::masters::Masters>,
    axum::Router,
    tokio::task::JoinHandle<()>,
);

fn start_masters(
    config: &Config,
    routing: tokio::sync::watch::Receiver<Arc<crate::compile::notify::Routing>>,
    secrets: crate::notify::send::Secrets,
) -> Result<StartedMasters, Error> {
    let dir = config.data_dir.join("masters");
    let history = crate::masters::History::open(&dir).map_err(|source| Error::History {
        dir: dir.clone(),
        source,
    })?;
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(crate::metrics::Metrics::new(&mut registry));
    let history_for_notify = history.clone();
    let mut topology = crate::masters::stream::BusBuilder::default();
    let changes = topology.subscribe("changes", 1024);
    let notifications = topology.subscribe("notify", crate::notify::MAX_QUEUED);
    let dashboard_stream = topology.subscribe("dashboard", crate::dashboard::live::CAPACITY);
    let bus = topology
        .build(metrics.clone())
        .expect("one subscriber with a capacity makes a valid topology");
    let masters = crate::masters::Masters::new(
        vedette_satellite::auth::Auth::Disabled,
        "",
        bus,
        metrics.clone(),
        Some(history.clone()),
    )
    .map_err(|source| Error::History { dir, source })?;
    let (_always, leader) = tokio::sync::watch::channel(true);
    tokio::spawn(async move {
        let _always = _always; // standalone mode is its own Lease holder
        crate::notify::run(
            crate::notify::Settings {
                default_alertmanager: None,
                secrets,
                history: Some(history_for_notify),
                metrics,
                generation: None,
            },
            notifications,
            routing,
            leader,
        )
        .await;
    });
    tokio::spawn(print_hard_changes(changes));
    let api = crate::masters::history_api::HistoryApi {
        store: history.store.clone(),
        access: crate::masters::history_api::ReadAccess::Open,
    };
    let masters = Arc::new(masters);
    let sweeping = masters.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            sweeping.sweep();
        }
    });
    let dashboard = crate::dashboard::Dashboard::start(
        masters.clone(),
        crate::masters::access::ReadAccess::Open,
        dashboard_stream,
    );
    let routes = crate::masters::router(masters.clone())
        .merge(crate::dashboard::router(dashboard))
        .merge(crate::masters::history_api::router(Arc::new(api)))
        .nest(
            "/masters",
            vedette_agent::http::metrics_router(Arc::new(registry)),
        );
    let pruner = tokio::spawn(vedette_history::retention::run(
        history.store,
        config.retention,
        vedette_protocol::clock::unix_ms,
    ));
    Ok((masters, routes, pruner))
}

/// Prints each hard state change and business-process event the masters make, as it happens.
async fn print_hard_changes(mut changes: crate::masters::stream::Subscription) {
    use crate::masters::stream::MasterEvent;
    while let Some(event) = changes.recv().await {
        match event.as_ref() {
            MasterEvent::Check(check) => {
                if let Some(change) = check.hard_change() {
                    println!(
                        "[{}] {} on {}: {} -> {}: {}",
                        now_hms(),
                        change.check,
                        change.host,
                        change.previous.name(),
                        change.state.name(),
                        change.output
                    );
                }
            }
            MasterEvent::Process(event) => {
                if let Some((process, _, _, note)) = crate::masters::events::process_event(event) {
                    println!("[{}] process {process}: {note}", now_hms());
                }
            }
            _ => {}
        }
    }
}

use crate::masters::process_view::ProcessView;

/// The processes the masters run, as shown.
pub fn process_views(masters: &crate::masters::Masters) -> Vec<ProcessView> {
    crate::masters::process_view::views(&masters.state(), vedette_protocol::clock::unix_ms())
}

/// `/v1/state` in standalone mode: the satellite's view and the processes.
#[derive(serde::Serialize)]
struct StandaloneState {
    #[serde(flatten)]
    satellite: StateView,
    processes: Vec<ProcessView>,
}

async fn standalone_state(
    axum::extract::State((api, masters)): axum::extract::State<(
        Arc<Api>,
        Arc<crate::masters::Masters>,
    )>,
    axum::extract::Query(query): axum::extract::Query<BTreeMap<String, String>>,
) -> axum::Json<serde_json::Value> {
    let host = query.get("host").map(String::as_str);
    let view = StandaloneState {
        satellite: vedette_satellite::http::state_view_for(&api, host),
        processes: process_views(&masters),
    };
    axum::Json(serde_json::to_value(view).unwrap_or_default())
}

fn satellite_config(zone: &str, listen: SocketAddr, data_dir: &Path) -> SatelliteConfig {
    SatelliteConfig {
        zone: zone.to_owned(),
        replica: "standalone".to_owned(),
        namespace: String::new(),
        listen,
        masters: vec![format!("http://{listen}")],
        spool_dir: data_dir.join("satellite"),
        insecure_no_auth: true,
        ..SatelliteConfig::default()
    }
}

fn node_config(host: &str, satellite: SocketAddr, data_dir: &Path) -> NodeConfig {
    NodeConfig {
        host: host.to_owned(),
        upstreams: vec![format!("http://{satellite}")],
        spool_dir: data_dir.join("agent").join("spool"),
        state_dir: data_dir.join("agent").join("state"),
        // Not bound: the agent's metrics are served under /agent on the shared listener.
        listen: satellite,
        plan_poll_seconds: 2,
        // The operator's own machine (the default host paths).
        ..NodeConfig::default()
    }
}

/// Bundles compiled from the manifest files, re-compiled when they change. A change that
/// does not compile is reported and the last good bundle stays.
struct ManifestSource {
    paths: Vec<PathBuf>,
    machine: Machine,
    first: Compiled,
    every: Option<Duration>,
    masters: Arc<crate::masters::Masters>,
    routing: tokio::sync::watch::Sender<Arc<crate::compile::notify::Routing>>,
}

impl BundleSource for ManifestSource {
    fn run(self: Box<Self>, publish: BundleSender) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let zone = self.first.bundle.zone.clone();
            let mut seen = fingerprint(&self.paths);
            let mut last_report = self.first.diagnostics.clone();
            publish_if_changed(&publish, self.first.bundle);
            let Some(every) = self.every else {
                publish.closed().await;
                return;
            };
            while !publish.is_closed() {
                tokio::time::sleep(every).await;
                let now = fingerprint(&self.paths);
                if now == seen {
                    continue;
                }
                seen = now;
                match compile_files(&self.paths, &self.machine) {
                    Ok(compiled) if compiled.errors == 0 => {
                        if compiled.diagnostics != last_report {
                            for line in &compiled.diagnostics {
                                eprintln!("{line}");
                            }
                            last_report = compiled.diagnostics.clone();
                        }
                        if compiled.bundle.zone != zone {
                            eprintln!(
                                "manifests changed: machine {} moved to zone {}; the zone \
                                 name shown stays {zone} until a restart",
                                self.machine.name, compiled.bundle.zone
                            );
                        }
                        println!("manifests changed: re-compiled");
                        self.masters.state().set_processes(compiled.processes);
                        self.masters
                            .set_catalog(crate::dashboard::catalog::Catalog::new(
                                [&compiled.bundle],
                                &[],
                            ));
                        self.routing.send_replace(Arc::new(compiled.routing));
                        publish_if_changed(&publish, compiled.bundle);
                    }
                    Ok(compiled) => {
                        for line in &compiled.diagnostics {
                            eprintln!("{line}");
                        }
                        eprintln!(
                            "manifests changed but have {} compile error(s): keeping the last \
                             good configuration",
                            compiled.errors
                        );
                        last_report = compiled.diagnostics;
                    }
                    Err(error) => {
                        eprintln!(
                            "{}\nkeeping the last good configuration",
                            vedette_agent::error_chain::error_chain(&error)
                        );
                        last_report.clear();
                    }
                }
            }
        })
    }
}

/// Names, sizes and modification times of the manifest files: changes when one does.
fn fingerprint(paths: &[PathBuf]) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut files = Vec::new();
    for path in paths {
        let entries: Vec<PathBuf> = if path.is_dir() {
            std::fs::read_dir(path)
                .map(|dir| dir.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default()
        } else {
            vec![path.clone()]
        };
        for file in entries {
            let meta = std::fs::metadata(&file).ok();
            files.push((
                file,
                meta.as_ref().map_or(0, |m| m.len()),
                meta.and_then(|m| m.modified().ok()),
            ));
        }
    }
    files.sort();
    files
}

/// Looks at the state every `every_seconds` and prints the summary when it changed; once every
/// check has run, says where the state is served.
async fn print_summaries(
    api: Arc<Api>,
    masters: Arc<crate::masters::Masters>,
    every_seconds: u64,
    address: SocketAddr,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(every_seconds));
    tick.tick().await;
    let mut shown: Option<String> = None;
    let mut all_ran = false;
    loop {
        tick.tick().await;
        let (view, processes) = (state_view(&api), process_views(&masters));
        let key = summary_key(&view, &processes);
        if shown.as_ref() == Some(&key) {
            continue;
        }
        print!("{}", summary(&view, &processes, &now_hms()));
        shown = Some(key);
        if !all_ran && !view.checks.is_empty() && view.checks.iter().all(|c| c.state != "PENDING") {
            all_ran = true;
            println!(
                "Every check has run. The dashboard: http://{address}/ui/, the state as JSON: \
                 http://{address}/v1/state, what happened: http://{address}/v1/history (the summary is printed again when it \
                 changes)."
            );
        }
    }
}

fn now_hms() -> String {
    jiff::Zoned::now().strftime("%H:%M:%S").to_string()
}

/// The summary: counts by state on one line, then one line per check that is not OK, then
/// one line per business-process element.
pub fn summary(view: &StateView, processes: &[ProcessView], time: &str) -> String {
    render_summary(view, processes, Some(time))
}

/// What the summary shows, without the time and the checks' outputs: the summary is printed
/// again when this changes, not when only a measured value in an output does (a WARNING
/// load average whose number moves at every run).
pub fn summary_key(view: &StateView, processes: &[ProcessView]) -> String {
    render_summary(view, processes, None)
}

/// The summary at `time`, or (`None`) its key.
fn render_summary(view: &StateView, processes: &[ProcessView], time: Option<&str>) -> String {
    let order = ["OK", "WARNING", "CRITICAL", "UNKNOWN", "PENDING"];
    let mut counts: BTreeMap<&str, usize> = order.iter().map(|s| (*s, 0)).collect();
    for check in &view.checks {
        *counts.entry(check.state.as_str()).or_default() += 1;
    }
    let mut out = format!(
        "{}zone {}: {} check(s)",
        time.map(|time| format!("[{time}] ")).unwrap_or_default(),
        view.zone,
        view.checks.len()
    );
    for state in order {
        let _ = write!(out, ", {} {state}", counts[state]);
    }
    let stale = view.agents.iter().filter(|a| a.stale).count();
    if stale > 0 {
        let _ = write!(out, ", {stale} agent(s) stale");
    }
    out.push('\n');
    // Worst first; a state that is none of the four (PENDING) after them.
    let rank = |state: &str| CheckState::from_name(state).map(|s| s.worst_first());
    let mut problems: Vec<_> = view.checks.iter().filter(|c| c.state != "OK").collect();
    problems.sort_by_key(|c| (rank(&c.state).is_none(), rank(&c.state), &c.host, &c.check));
    for check in problems {
        let output: String = check
            .output
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let pending = check.state == "PENDING";
        let _ = writeln!(
            out,
            "  {:<8} {}{} {} {}",
            check.state,
            if check.hard || pending { "" } else { "(soft) " },
            check.host,
            check.check,
            if pending {
                "(not run yet)".to_owned()
            } else if time.is_none() {
                String::new()
            } else {
                truncate(&output, 110)
            }
        );
    }
    for process in processes {
        let live = &process.live;
        let _ = write!(
            out,
            "  process {}: {} running, {} completed, {} failed, {} violation(s)",
            process.process, live.running, live.completed, live.failed, live.violations
        );
        if let Some(why) = &live.not_evaluating {
            let _ = write!(out, " (not evaluated: {})", truncate(&why.message, 80));
        }
        out.push('\n');
        for element in &live.elements {
            let since = element
                .since
                .as_deref()
                .map(|s| format!(" since {s}"))
                .unwrap_or_default();
            let message = element
                .message
                .as_deref()
                .map(|m| format!(": {}", truncate(m, 80)))
                .unwrap_or_default();
            let blocked = element
                .blocked_by
                .as_deref()
                .map(|b| format!(" (blocked by {b})"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "    {:<10} {}{since}{message}{blocked}",
                element.state.as_str(),
                element.name
            );
        }
    }
    out
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_has_the_default_labels_unless_given() {
        let m = machine("web-1", vec![("kubernetes.io/os".into(), "plan9".into())]);
        assert_eq!(m.labels["kubernetes.io/os"], "plan9");
        assert_eq!(m.labels["kubernetes.io/hostname"], "web-1");
    }

    fn view(checks: &[(&str, &str, bool, &str)]) -> StateView {
        StateView {
            zone: "core".into(),
            replica: "standalone".into(),
            bundle_hash: String::new(),
            applied: Default::default(),
            duplicates: 0,
            watermarks: BTreeMap::new(),
            stored_above: BTreeMap::new(),
            agents: Vec::new(),
            checks: checks
                .iter()
                .map(
                    |(check, state, hard, output)| vedette_satellite::http::CheckView {
                        host: "web-1".into(),
                        check: (*check).into(),
                        state: (*state).into(),
                        hard: *hard,
                        output: (*output).into(),
                        at_ms: 0,
                        writer: None,
                    },
                )
                .collect(),
            recent_changes: Vec::new(),
        }
    }

    #[test]
    fn the_summary_changes_with_states_not_with_measured_values() {
        let load = |state, hard, output| view(&[("infra/base/load", state, hard, output)]);
        let first = load("WARNING", false, "LOAD WARNING - 2.31");
        let text = summary(&first, &[], "12:00:00");
        assert!(text.contains("[12:00:00] zone core: 1 check(s)"), "{text}");
        assert!(text.contains("WARNING  (soft) web-1 infra/base/load LOAD WARNING - 2.31"));
        let key = summary_key(&first, &[]);
        assert!(!key.contains("12:00") && !key.contains("2.31"), "{key}");
        assert_eq!(
            key,
            summary_key(&load("WARNING", false, "LOAD WARNING - 2.47"), &[]),
            "only the value moved"
        );
        for (state, hard) in [("WARNING", true), ("CRITICAL", false), ("OK", true)] {
            assert_ne!(
                key,
                summary_key(&load(state, hard, "LOAD WARNING - 2.31"), &[]),
                "{state} hard={hard}"
            );
        }
        assert_ne!(key, summary_key(&view(&[]), &[]), "a check fewer");
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("äöü", 3), "äöü");
    }
}
