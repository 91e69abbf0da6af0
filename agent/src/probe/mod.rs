//! Built-in probes: one file per probe family, all run through one [`Prober`] that keeps the
//! state shared between runs (HTTP connection pools, previous CPU and network counters, log
//! read offsets) and where the node's `/` and `/proc` are ([`HostPaths`]). A probe measures a `value`; thresholds are applied elsewhere. A probe only
//! decides a state itself (`failure`) when there is nothing to measure: a refused connection,
//! an unexpected answer, an unreadable `/proc` file.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use vedette_crds::CheckSpec;
use vedette_crds::check::PortOrParameter;
use vedette_crds::template::CheckState;

use crate::host_paths::HostPaths;

mod cpu;
mod database;
mod disk;
mod dns;
pub mod facts;
mod file;
mod http;
mod icmp;
mod load;
mod log;
mod mail;
mod memory;
mod network;
mod process;
mod snmp;
mod starttls;
mod tcp;
mod tls;
mod udp;

/// One performance-data item, as in Nagios plugin output (`label=value[uom]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Perfdata {
    /// Label, such as `time` or `used`.
    pub label: String,
    /// Measured value.
    pub value: f64,
    /// Unit of measure: `s`, `%`, `B`, `c` or empty.
    pub uom: &'static str,
}

impl Perfdata {
    /// A perfdata item.
    pub fn new(label: impl Into<String>, value: f64, uom: &'static str) -> Self {
        Self {
            label: label.into(),
            value,
            uom,
        }
    }
}

impl fmt::Display for Perfdata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.label.contains([' ', '=', '\'']) {
            write!(
                f,
                "'{}'={}{}",
                self.label.replace('\'', "''"),
                self.value,
                self.uom
            )
        } else {
            write!(f, "{}={}{}", self.label, self.value, self.uom)
        }
    }
}

/// What one probe run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeOutput {
    /// The probe that ran, such as `tcp`.
    pub probe: &'static str,
    /// The value thresholds apply to; NaN when the probe could not measure anything.
    pub value: f64,
    /// One human line without the state, such as
    /// `0.001 second response time on 127.0.0.1 port 80`; see [`ProbeOutput::line`].
    pub output: String,
    /// Performance data.
    pub perfdata: Vec<Perfdata>,
    /// A state the probe decided regardless of thresholds, and why.
    pub failure: Option<(CheckState, String)>,
    /// The run did not finish within its timeout (the caller may apply `timeoutState`).
    pub timed_out: bool,
}

impl ProbeOutput {
    /// A measurement without a failure.
    pub fn measured(probe: &'static str, value: f64, output: impl Into<String>) -> Self {
        Self {
            probe,
            value,
            output: output.into(),
            perfdata: Vec::new(),
            failure: None,
            timed_out: false,
        }
    }

    /// A run that measured nothing: `error` decides the state and the output.
    pub fn failed(probe: &'static str, error: &ProbeError) -> Self {
        let message = error.to_string();
        Self {
            probe,
            value: f64::NAN,
            output: message.clone(),
            perfdata: Vec::new(),
            failure: Some((error.state(), message)),
            timed_out: matches!(error, ProbeError::Timeout { .. }),
        }
    }

    /// Adds a perfdata item.
    pub fn with_perf(mut self, label: impl Into<String>, value: f64, uom: &'static str) -> Self {
        self.perfdata.push(Perfdata::new(label, value, uom));
        self
    }

    /// Marks the run as failed with `state` while keeping what it measured.
    pub fn with_failure(mut self, state: CheckState, reason: impl Into<String>) -> Self {
        self.failure = Some((state, reason.into()));
        self
    }

    /// The Nagios-style line for a final state:
    /// `TCP OK - 0.001 second response time on 127.0.0.1 port 80|time=0.001s`.
    pub fn line(&self, state: CheckState) -> String {
        let mut line = format!("{} {state} - {}", self.probe.to_uppercase(), self.output);
        if !self.perfdata.is_empty() {
            let perf: Vec<String> = self.perfdata.iter().map(ToString::to_string).collect();
            line.push('|');
            line.push_str(&perf.join(" "));
        }
        line
    }
}

/// Why a probe could not measure.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The spec cannot be run as given (unsubstituted parameter, bad regex, …).
    #[error("invalid check: {0}")]
    InvalidSpec(String),
    /// The probe is not built in (`exec` runs elsewhere).
    #[error("probe {0} is not built in")]
    NotBuiltIn(&'static str),
    /// The agent lacks a privilege the probe needs (an ICMP socket, …); says which.
    #[error("{0}")]
    Privilege(String),
    /// A system file could not be read.
    #[error("failed to read {path}: {source}")]
    Read {
        /// What was read.
        path: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A system file had an unexpected format.
    #[error("failed to parse {0}")]
    Parse(String),
    /// Something the check names does not exist (interface, file, mount point).
    #[error("{0}")]
    Missing(String),
    /// A host name did not resolve.
    #[error("failed to resolve {host}: {reason}")]
    Resolve {
        /// The host.
        host: String,
        /// Why.
        reason: String,
    },
    /// A connection failed.
    #[error("failed to connect to {target}: {reason}")]
    Connect {
        /// `host:port` or URL.
        target: String,
        /// Why.
        reason: String,
    },
    /// The answer was not the expected one.
    #[error("{0}")]
    Unexpected(String),
    /// The run took longer than its timeout.
    #[error("{what} timed out after {seconds} seconds")]
    Timeout {
        /// What timed out.
        what: String,
        /// The timeout.
        seconds: f64,
    },
}

impl ProbeError {
    /// The state this error yields: UNKNOWN when the agent cannot tell, CRITICAL when the
    /// monitored thing failed.
    pub fn state(&self) -> CheckState {
        match self {
            Self::InvalidSpec(_)
            | Self::NotBuiltIn(_)
            | Self::Privilege(_)
            | Self::Read { .. }
            | Self::Parse(_) => CheckState::Unknown,
            Self::Missing(_)
            | Self::Resolve { .. }
            | Self::Connect { .. }
            | Self::Unexpected(_)
            | Self::Timeout { .. } => CheckState::Critical,
        }
    }

    /// The variant name, for metric labels.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::InvalidSpec(_) => "invalid_spec",
            Self::NotBuiltIn(_) => "not_built_in",
            Self::Privilege(_) => "privilege",
            Self::Read { .. } => "read",
            Self::Parse(_) => "parse",
            Self::Missing(_) => "missing",
            Self::Resolve { .. } => "resolve",
            Self::Connect { .. } => "connect",
            Self::Unexpected(_) => "unexpected",
            Self::Timeout { .. } => "timeout",
        }
    }

    pub(crate) fn read(path: impl Into<String>, source: std::io::Error) -> Self {
        Self::Read {
            path: path.into(),
            source,
        }
    }
}

/// What a probe family returns.
pub type Result<T, E = ProbeError> = std::result::Result<T, E>;

/// Extra time the outer limit of a run allows past its timeout.
const TIMEOUT_GRACE: Duration = Duration::from_millis(50);

/// Runs built-in probes, keeping what must survive between runs. Share one per agent.
pub struct Prober {
    secrets: CheckSecrets,
    http: http::HttpClients,
    tls: tls::TlsProber,
    cpu: cpu::CpuState,
    network: network::NetworkState,
    logs: log::LogState,
    regexes: RegexCache,
    host: HostPaths,
}

impl Prober {
    /// A prober trusting the machine's root certificates.
    pub fn new() -> Self {
        Self::with_extra_roots(&[])
    }

    /// A prober trusting the machine's root certificates and `extra_roots` (an internal CA).
    pub fn with_extra_roots(extra_roots: &[CertificateDer<'static>]) -> Self {
        let verifier = tls::Verifier::new(extra_roots);
        Self {
            secrets: CheckSecrets::default(),
            http: http::HttpClients::new(&verifier),
            tls: tls::TlsProber::new(verifier),
            cpu: cpu::CpuState::default(),
            network: network::NetworkState::default(),
            logs: log::LogState::default(),
            regexes: RegexCache::default(),
            host: HostPaths::default(),
        }
    }

    /// This prober reading the node's files and processes through `host` (the node's `/` and
    /// `/proc` mounted into a pod) instead of this machine's own `/` and `/proc`.
    pub fn with_host_paths(mut self, host: HostPaths) -> Self {
        self.host = host;
        self
    }

    /// Replaces the Secret values this agent's checks may read (the current plan's `secrets`,
    /// by `namespace/name/key`).
    pub fn set_secrets(&self, values: BTreeMap<String, String>) {
        self.secrets.replace("", values);
    }

    /// Replaces the Secret values of the plan of `host` (empty: forgets them), for a prober
    /// shared by the plans of several targets.
    pub fn set_plan_secrets(&self, host: &str, values: BTreeMap<String, String>) {
        self.secrets.replace(host, values);
    }

    /// Runs the probe of `spec`, taking at most `timeout`.
    pub async fn run(&self, spec: &CheckSpec, timeout: Duration) -> ProbeOutput {
        let probe = spec.probe_kind().unwrap_or("none");
        // Probes bound their own network waits by `timeout` and report what they saw; this
        // outer limit (with a little grace) only catches what has no limit of its own.
        let result =
            tokio::time::timeout(timeout + TIMEOUT_GRACE, self.dispatch(spec, timeout)).await;
        match result {
            Ok(Ok(output)) => output,
            Ok(Err(error)) => ProbeOutput::failed(probe, &error),
            Err(_) => ProbeOutput::failed(
                probe,
                &ProbeError::Timeout {
                    what: format!("{probe} probe"),
                    seconds: timeout.as_secs_f64(),
                },
            ),
        }
    }

    async fn dispatch(&self, spec: &CheckSpec, timeout: Duration) -> Result<ProbeOutput> {
        if spec.probe_kind().is_none() {
            return Err(ProbeError::InvalidSpec(
                "a check needs exactly one probe".to_owned(),
            ));
        }
        if let Some(cpu) = &spec.cpu {
            return self.cpu.probe(cpu, &self.host).await;
        }
        if let Some(memory) = &spec.memory {
            return memory::memory(memory, &self.host);
        }
        if spec.swap.is_some() {
            return memory::swap(&self.host);
        }
        if let Some(disk) = &spec.disk {
            return disk::probe(disk, &self.host).await;
        }
        if let Some(load) = &spec.load {
            return load::probe(load, &self.host);
        }
        if let Some(network) = &spec.network {
            return self.network.probe(network, &self.host).await;
        }
        if let Some(tcp) = &spec.tcp {
            return tcp::probe(tcp, timeout).await;
        }
        if let Some(http) = &spec.http {
            let body_match = http
                .body_match
                .as_deref()
                .map(|p| self.regexes.get(p))
                .transpose()?;
            return self
                .http
                .probe(http, body_match.as_deref(), &self.secrets, timeout)
                .await;
        }
        if let Some(tls) = &spec.tls {
            return self.tls.probe(tls, timeout).await;
        }
        if let Some(dns) = &spec.dns {
            return dns::probe(dns, timeout).await;
        }
        if let Some(process) = &spec.process {
            let pattern = process
                .command_line
                .as_deref()
                .map(|p| self.regexes.get(p))
                .transpose()?;
            return process::probe(process, pattern, &self.host).await;
        }
        if let Some(file) = &spec.file {
            return file::probe(file, &self.host).await;
        }
        if let Some(log) = &spec.log {
            let pattern = self.regexes.get(&log.pattern)?;
            return self.logs.probe(log, pattern, &self.host).await;
        }
        if let Some(icmp) = &spec.icmp {
            return icmp::probe(icmp, timeout).await;
        }
        if let Some(udp) = &spec.udp {
            return udp::probe(udp, timeout).await;
        }
        if let Some(snmp) = &spec.snmp {
            let expect = snmp
                .expect
                .as_deref()
                .map(|p| self.regexes.get(p))
                .transpose()?;
            return snmp::probe(snmp, &self.secrets, expect.as_deref(), timeout).await;
        }
        if let Some(database) = &spec.database {
            let password = database
                .password_secret
                .as_ref()
                .map(|secret| self.secrets.get(secret))
                .transpose()?;
            return database::probe(database, password, timeout).await;
        }
        if let Some(mail) = &spec.mail {
            return mail::probe(mail, &self.tls, timeout).await;
        }
        if spec.exec.is_some() {
            return Err(ProbeError::NotBuiltIn("exec"));
        }
        Err(ProbeError::InvalidSpec(
            "the check names no probe".to_owned(),
        ))
    }
}

impl Default for Prober {
    fn default() -> Self {
        Self::new()
    }
}

/// Finds, without running anything, what would make a probe fail on every run: a pattern that
/// does not compile, a URL, method or header that does not parse, a port out of range, a load
/// period other than 1, 5 or 15, an OID that is not numeric. A plan is checked with it before
/// it replaces the running one.
pub fn validate(spec: &CheckSpec) -> Result<()> {
    let pattern = |pattern: &str| compile_pattern(pattern).map(drop);
    if let Some(tcp) = &spec.tcp {
        port(&tcp.port)?;
    }
    if let Some(tls) = &spec.tls {
        port(&tls.port)?;
    }
    if let Some(mail) = &spec.mail {
        mail::validate(mail)?;
    }
    if let Some(http) = &spec.http {
        http::request(http)?;
        http.body_match.as_deref().map(pattern).transpose()?;
    }
    if let Some(process) = &spec.process {
        process.command_line.as_deref().map(pattern).transpose()?;
    }
    if let Some(log) = &spec.log {
        pattern(&log.pattern)?;
    }
    if let Some(load) = &spec.load {
        load::period_index(load.period_minutes)?;
    }
    if let Some(snmp) = &spec.snmp {
        snmp::validate(snmp)?;
        snmp.expect.as_deref().map(pattern).transpose()?;
    }
    if let Some(database) = &spec.database {
        database::port(database)?;
        substituted("host", &database.host)?;
        substituted("user", &database.user)?;
        database
            .database
            .as_deref()
            .map(|name| substituted("database", name))
            .transpose()?;
    }
    if let Some(icmp) = &spec.icmp {
        substituted("host", &icmp.host)?;
    }
    if let Some(udp) = &spec.udp {
        substituted("host", &udp.host)?;
        port(&udp.port)?;
        udp::request(udp)?;
        udp::expected(udp)?;
    }
    Ok(())
}

/// Finds what [`validate`] cannot see without the check's `timeout`: ICMP echo requests
/// whose schedule leaves no time for the last reply.
pub fn validate_within(spec: &CheckSpec, timeout: Duration) -> Result<()> {
    if let Some(icmp) = &spec.icmp {
        icmp::check_schedule(icmp, timeout)?;
    }
    Ok(())
}

/// The Secret values the current plans give this agent, per plan (a node agent has one; a
/// satellite running remote checks has one per target), by `namespace/name/key`. Never
/// logged: a probe takes a value with [`CheckSecrets::get`] and puts it only on the wire.
#[derive(Default)]
struct CheckSecrets(std::sync::RwLock<BTreeMap<String, Arc<BTreeMap<String, String>>>>);

impl CheckSecrets {
    fn replace(&self, plan: &str, values: BTreeMap<String, String>) {
        let mut plans = self.0.write().unwrap_or_else(|p| p.into_inner());
        if values.is_empty() {
            plans.remove(plan);
        } else {
            plans.insert(plan.to_owned(), Arc::new(values));
        }
    }

    /// The value of `secret`, or an UNKNOWN error naming it (never its value).
    fn get(&self, secret: &vedette_crds::check::CheckSecret) -> Result<String> {
        let key = secret.plan_key();
        let plans = self.0.read().unwrap_or_else(|p| p.into_inner());
        plans
            .values()
            .find_map(|values| values.get(&key).cloned())
            .ok_or_else(|| {
                ProbeError::InvalidSpec(format!(
                    "secret {} key {} of namespace {} is not in this agent's plan",
                    secret.name,
                    secret.key,
                    secret.namespace.as_deref().unwrap_or("(unbound)")
                ))
            })
    }
}

/// Compiled regular expressions by pattern, so that a check does not recompile its pattern on
/// every run. Bounded: cleared when it grows past `MAX_REGEXES` (plans change rarely).
#[derive(Default)]
struct RegexCache(Mutex<HashMap<String, Arc<regex::Regex>>>);

const MAX_REGEXES: usize = 4096;

impl RegexCache {
    fn get(&self, pattern: &str) -> Result<Arc<regex::Regex>> {
        let mut cache = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(regex) = cache.get(pattern) {
            return Ok(Arc::clone(regex));
        }
        let regex = compile_pattern(pattern)?;
        if cache.len() >= MAX_REGEXES {
            cache.clear();
        }
        let regex = Arc::new(regex);
        cache.insert(pattern.to_owned(), Arc::clone(&regex));
        Ok(regex)
    }
}

/// A check's regular expression, or why it is not one.
fn compile_pattern(pattern: &str) -> Result<regex::Regex> {
    regex::Regex::new(pattern)
        .map_err(|error| ProbeError::InvalidSpec(format!("bad pattern {pattern:?}: {error}")))
}

/// The port of a probe, which must be a number by the time it runs.
fn port(port: &PortOrParameter) -> Result<u16> {
    match port {
        PortOrParameter::Int(number) => u16::try_from(*number)
            .ok()
            .filter(|port| *port != 0)
            .ok_or_else(|| ProbeError::InvalidSpec(format!("port {number} is not in 1-65535"))),
        PortOrParameter::Parameter(name) => Err(ProbeError::InvalidSpec(format!(
            "port parameter {name} was not substituted"
        ))),
    }
}

/// A text field (`what`: host, path, …) that must not be a parameter by the time it runs.
fn substituted<'a>(what: &str, value: &'a str) -> Result<&'a str> {
    if value.starts_with('$') && value.len() > 1 && value.ends_with('$') {
        return Err(ProbeError::InvalidSpec(format!(
            "{what} parameter {value} was not substituted"
        )));
    }
    Ok(value)
}

/// Reads a small system file such as `/proc/stat`.
fn read_system_file(path: impl AsRef<std::path::Path>) -> Result<String> {
    let path = path.as_ref();
    std::fs::read_to_string(path)
        .map_err(|error| ProbeError::read(path.display().to_string(), error))
}

/// Runs blocking file-system work (stat, statvfs, directory scans) off the runtime threads,
/// so a hung mount cannot stall other probes.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| ProbeError::Parse(format!("probe task failed: {error}")))?
}

/// Seconds with three decimals, as Nagios plugins print them.
fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_has_state_and_perfdata() {
        let output = ProbeOutput::measured("tcp", 0.001, "0.001 second response time")
            .with_perf("time", 0.001, "s");
        assert_eq!(
            output.line(CheckState::Ok),
            "TCP OK - 0.001 second response time|time=0.001s"
        );
    }

    #[test]
    fn perfdata_label_with_space_is_quoted() {
        assert_eq!(
            Perfdata::new("used space", 1.0, "B").to_string(),
            "'used space'=1B"
        );
    }

    #[test]
    fn ports_must_be_substituted_and_in_range() {
        assert_eq!(port(&PortOrParameter::Int(80)).unwrap(), 80);
        assert!(port(&PortOrParameter::Int(0)).is_err());
        assert!(port(&PortOrParameter::Int(70000)).is_err());
        let error = port(&PortOrParameter::Parameter("$port$".into())).unwrap_err();
        assert_eq!(error.state(), CheckState::Unknown);
        assert!(error.to_string().contains("$port$"), "{error}");
    }

    #[test]
    fn failures_of_the_target_are_critical_and_of_the_agent_unknown() {
        let refused = ProbeError::Connect {
            target: "x:1".into(),
            reason: "refused".into(),
        };
        assert_eq!(
            ProbeOutput::failed("tcp", &refused).failure.unwrap().0,
            CheckState::Critical
        );
        let unreadable = ProbeError::read("/proc/stat", std::io::ErrorKind::NotFound.into());
        assert_eq!(
            ProbeOutput::failed("cpu", &unreadable).failure.unwrap().0,
            CheckState::Unknown
        );
    }
}
