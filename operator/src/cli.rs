//! Command-line interface of `vedette-operator`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::{manifests, reconcile};

/// Vedette's operator: turns MonitorZones, CheckTemplates, RuleSets and BusinessProcesses into
/// satellites, agents and zone bundles, and writes their status.
#[derive(Parser, Debug)]
#[command(name = "vedette-operator", version, about, long_about = None)]
pub struct Cli {
    /// Log filter, e.g. `info` or `vedette_operator=debug`.
    #[arg(long, global = true, env = "VEDETTE_LOG", default_value = "info")]
    pub log_level: String,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The operator's commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the CustomResourceDefinitions as YAML (what `crds/` holds).
    Crds,
    /// Check Vedette manifests offline: every document of a Vedette kind must parse into its
    /// type (no unknown fields, right types), and the objects must compile (templates,
    /// parameters, thresholds, references; machines are not known here, so selectors are not
    /// judged). Exits non-zero naming each problem, so it can gate a pipeline.
    Validate {
        /// Files or directories (searched for *.yaml, *.yml, not recursively).
        #[arg(short = 'f', long = "filename", required = true)]
        paths: Vec<PathBuf>,
    },
    /// Compile manifests offline and print the plan one machine would get (JSON), with every
    /// diagnostic on stderr; exits non-zero when compile reports an error (the plan printed
    /// then lacks the checks in error). `vedette-agent check --plan` runs such a plan.
    Plan {
        /// Files or directories of manifests.
        #[arg(short = 'f', long = "filename", required = true)]
        paths: Vec<PathBuf>,
        /// The machine's name.
        #[arg(long)]
        host: String,
        /// The machine's labels, `key=value`; repeat for several.
        #[arg(long = "label", value_parser = parse_label)]
        labels: Vec<(String, String)>,
    },
    /// Run the operator: watch, compile, publish zones' objects and write status.
    Run(RunArgs),
    /// Run the manifests on this machine alone, without Kubernetes: compile them with this
    /// machine as the only machine, and run a satellite and this machine's agent in one
    /// process. Prints a summary every few seconds; serves /v1/state and /metrics.
    Standalone(StandaloneArgs),
}

/// Flags of `vedette-operator standalone`.
#[derive(Args, Debug, Clone)]
pub struct StandaloneArgs {
    /// Files or directories of manifests (re-compiled when they change).
    #[arg(short = 'f', long = "filename", required = true)]
    pub paths: Vec<PathBuf>,
    /// This machine's name; the host name when not given.
    #[arg(long)]
    pub host: Option<String>,
    /// More labels of this machine, `key=value`; repeat for several. `kubernetes.io/os=linux`
    /// and `kubernetes.io/hostname=<name>` are set unless given here.
    #[arg(long = "label", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// Address of the state API and /metrics (loopback only: there is no authentication).
    #[arg(long, default_value = "127.0.0.1:9700")]
    pub listen: std::net::SocketAddr,
    /// Directory of the spools, the last good plan and the state snapshot
    /// (default: $XDG_STATE_HOME/vedette/standalone, or ~/.local/state/vedette/standalone).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Seconds between looks at the state; the summary goes to stdout when it changed.
    #[arg(long, default_value_t = 2)]
    pub summary_seconds: u64,
    /// Seconds between looks at the manifest files for changes; 0: never re-compile.
    #[arg(long, default_value_t = 2)]
    pub watch_seconds: u64,
    /// How much history is kept.
    #[command(flatten)]
    pub history: HistoryArgs,
}

/// How much history the masters keep (in the data directory's `history.db`).
#[derive(Args, Debug, Clone)]
pub struct HistoryArgs {
    /// Records older than this many days are removed.
    #[arg(long, env = "VEDETTE_HISTORY_MAX_AGE_DAYS", default_value_t = vedette_history::store::DEFAULT_MAX_AGE_DAYS)]
    pub history_max_age_days: u64,
    /// Past this many bytes of history the oldest records are removed.
    #[arg(long, env = "VEDETTE_HISTORY_MAX_BYTES", default_value_t = vedette_history::store::DEFAULT_MAX_BYTES)]
    pub history_max_bytes: u64,
}

impl HistoryArgs {
    /// The retention these flags ask for.
    pub fn retention(&self) -> vedette_history::Retention {
        vedette_history::Retention {
            max_age_ms: self.history_max_age_days.saturating_mul(86_400_000),
            max_bytes: self.history_max_bytes,
        }
    }
}

impl StandaloneArgs {
    /// Standalone mode's configuration, with defaults filled in.
    pub fn config(&self) -> crate::standalone::Config {
        let name = self.host.clone().unwrap_or_else(host_name);
        let data_dir = self.data_dir.clone().unwrap_or_else(|| {
            std::env::var_os("XDG_STATE_HOME")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME")
                        .map(|home| PathBuf::from(home).join(".local").join("state"))
                })
                .unwrap_or_else(std::env::temp_dir)
                .join("vedette")
                .join("standalone")
        });
        crate::standalone::Config {
            paths: self.paths.clone(),
            machine: crate::standalone::machine(&name, self.labels.clone()),
            listen: self.listen,
            data_dir,
            summary_seconds: self.summary_seconds,
            watch_seconds: self.watch_seconds,
            retention: self.history.retention(),
        }
    }
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("label {text:?} is not key=value"))
}

/// Flags of `vedette-operator run`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Namespace the zones' objects (and the Lease) live in.
    #[arg(long, env = "VEDETTE_NAMESPACE", default_value = "vedette-system")]
    pub namespace: String,
    /// Image of vedette-agent, for satellites and agents.
    #[arg(
        long,
        env = "VEDETTE_IMAGE",
        default_value = "ghcr.io/vedette-dev/vedette-agent:latest"
    )]
    pub image: String,
    /// URL satellites report to; `http://vedette-operator.<namespace>.svc:8080` when empty.
    #[arg(long, env = "VEDETTE_MASTERS_URL", default_value = "")]
    pub masters_url: String,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "VEDETTE_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: String,
    /// Name of the Lease that elects the writing replica.
    #[arg(long, env = "VEDETTE_LEASE_NAME", default_value = "vedette-operator")]
    pub lease_name: String,
    /// This replica's identity in the election: `POD_NAME`, else the host name.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Accept satellites' batches without a token (tests and standalone only).
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// At most one Event per check per this many seconds.
    #[arg(long, default_value_t = 60)]
    pub event_interval_seconds: u64,
    /// At most this many Events per second overall.
    #[arg(long, default_value_t = 10)]
    pub events_per_second: u32,
    /// Directory of this replica's history (`history.db`: every state change and agent
    /// event, and every check's last state, kept across restarts). Without it the masters
    /// keep nothing on disk: no history, and `pending` for every check after a restart.
    #[arg(long, env = "VEDETTE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep the history in this PostgreSQL database instead, shared by every replica
    /// (`postgres://user:password@host:port/database`; the chart reads it from a Secret).
    #[arg(long, env = "VEDETTE_HISTORY_POSTGRES_URL", hide_env_values = true)]
    pub history_postgres_url: Option<String>,
    /// How much history is kept.
    #[command(flatten)]
    pub history: HistoryArgs,
    /// The cluster's default notification receiver: an Alertmanager (`http://host:9093`)
    /// that gets every alert no route of its namespace takes, and machine-wide ones
    /// (agent lost). Empty: such alerts are only recorded.
    #[arg(long, env = "VEDETTE_DEFAULT_ALERTMANAGER_URL", default_value = "")]
    pub default_alertmanager_url: String,
}

impl RunArgs {
    /// The reconciler's configuration, with defaults filled in.
    pub fn config(&self) -> reconcile::Config {
        let masters_url = if self.masters_url.is_empty() {
            format!("http://vedette-operator.{}.svc:8080", self.namespace)
        } else {
            self.masters_url.clone()
        };
        reconcile::Config {
            namespace: self.namespace.clone(),
            image: self.image.clone(),
            masters_url,
            listen: self.listen.clone(),
            lease_name: self.lease_name.clone(),
            identity: self.identity.clone().unwrap_or_else(host_name),
            insecure_no_auth: self.insecure_no_auth,
            event_interval_seconds: self.event_interval_seconds,
            events_per_second: self.events_per_second,
            data_dir: self.data_dir.clone(),
            postgres_url: self.history_postgres_url.clone().filter(|u| !u.is_empty()),
            retention: self.history.retention(),
            default_alertmanager_url: Some(self.default_alertmanager_url.clone())
                .filter(|u| !u.is_empty()),
        }
    }
}

/// The host name (`/proc/sys/kernel/hostname`, else `$HOSTNAME`, else `vedette-operator`).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "vedette-operator".to_owned())
}

/// Why a command of the operator failed; each message names what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The async runtime cannot start.
    #[error("failed to start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// `run` stopped.
    #[error(transparent)]
    Reconcile(#[from] reconcile::Error),
    /// `standalone` cannot start, or stopped.
    #[error(transparent)]
    Standalone(#[from] crate::standalone::Error),
    /// A manifest file or directory cannot be read.
    #[error(transparent)]
    Load(#[from] manifests::Error),
    /// `validate` found problems (printed before).
    #[error("invalid manifests: {0} problems")]
    Problems(usize),
    /// `plan`: documents that do not parse.
    #[error("invalid manifests: {}", .0.join("; "))]
    InvalidManifests(Vec<String>),
    /// `plan`: no zone selects the host.
    #[error("no zone selects machine {0}")]
    NoZone(String),
    /// `plan`: the plan does not serialize.
    #[error("failed to print the plan")]
    Json(#[from] serde_json::Error),
    /// `plan`: compile errors (printed before); the plan lacks their checks.
    #[error("compile reported {0} error(s); the plan above lacks the checks they concern")]
    CompileErrors(usize),
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Run(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log_level))
                .init();
            let runtime = tokio::runtime::Runtime::new().map_err(Error::Runtime)?;
            runtime.block_on(reconcile::run(args.config()))?;
            Ok(())
        }
        Command::Standalone(args) => {
            // The summary on stdout is the interface; logs only say what goes wrong unless
            // asked for (`--log-level info`).
            let explicit = std::env::var_os("VEDETTE_LOG").is_some()
                || std::env::args().any(|a| a.starts_with("--log-level"));
            let filter = if explicit {
                cli.log_level.as_str()
            } else {
                "warn"
            };
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_writer(std::io::stderr)
                .init();
            let runtime = tokio::runtime::Runtime::new().map_err(Error::Runtime)?;
            let result = runtime.block_on(crate::standalone::run(args.config()));
            // The spool's blocking writers must not hold the exit up.
            runtime.shutdown_timeout(std::time::Duration::from_secs(2));
            Ok(result?)
        }
        Command::Crds => {
            for (_, crd) in vedette_crds::generate::all() {
                print!("---\n{}", vedette_crds::generate::to_yaml(&crd));
            }
            Ok(())
        }
        Command::Validate { paths } => validate(&paths),
        Command::Plan {
            paths,
            host,
            labels,
        } => print_plan(&paths, &host, labels),
    }
}

/// `validate`: every document parses, and what parses compiles without an error.
fn validate(paths: &[PathBuf]) -> Result<(), Error> {
    let loaded = manifests::load_paths(paths)?;
    for problem in &loaded.problems {
        eprintln!("{problem}");
    }
    let objects = loaded.objects.len();
    let output = crate::compile::compile(&manifests::input(loaded.objects, Vec::new()));
    let errors = report_errors(&output.diagnostics);
    let problems = loaded.problems.len() + errors;
    println!("{objects} Vedette objects read, {problems} problems");
    if problems > 0 {
        return Err(Error::Problems(problems));
    }
    Ok(())
}

/// Prints every compile error on stderr; how many there are.
fn report_errors(diagnostics: &[crate::compile::Diagnostic]) -> usize {
    let errors: Vec<_> = diagnostics
        .iter()
        .filter(|d| d.severity == crate::compile::Severity::Error)
        .collect();
    for error in &errors {
        eprintln!("{error}");
    }
    errors.len()
}

fn print_plan(paths: &[PathBuf], host: &str, labels: Vec<(String, String)>) -> Result<(), Error> {
    let loaded = manifests::load_paths(paths)?;
    if !loaded.problems.is_empty() {
        return Err(Error::InvalidManifests(loaded.problems));
    }
    let machine = crate::compile::Machine {
        name: host.to_owned(),
        labels: labels.into_iter().collect(),
    };
    let output = crate::compile::compile(&manifests::input(loaded.objects, vec![machine]));
    for diagnostic in &output.diagnostics {
        eprintln!("{diagnostic}");
    }
    let plan = output
        .bundles
        .values()
        .find_map(|bundle| vedette_protocol::plan::plan_for(bundle, host))
        .ok_or_else(|| Error::NoZone(host.to_owned()))?;
    println!("{}", serde_json::to_string_pretty(&plan)?);
    let errors = output
        .diagnostics
        .iter()
        .filter(|d| d.severity == crate::compile::Severity::Error)
        .count();
    if errors > 0 {
        return Err(Error::CompileErrors(errors));
    }
    Ok(())
}
