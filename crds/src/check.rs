//! The check specification shared by CheckTemplates, zone remote checks and agent plans:
//! exactly one probe (built in, or a Nagios plugin run from argv), with the fields each probe
//! needs. Integer and string fields may name a template parameter (`$port$`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::int_or_parameter_schema;

/// The probe names, in the order `CheckSpec` declares them.
pub const PROBE_KINDS: [&str; 14] = [
    "cpu", "memory", "swap", "disk", "load", "network", "tcp", "http", "tls", "dns", "process",
    "file", "log", "exec",
];

/// A value given to a template parameter: written in YAML as a string, integer, number or
/// boolean and checked against the parameter's declared type when rule sets are compiled.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(untagged)]
#[schemars(schema_with = "crate::common::any_scalar_schema")]
pub enum ParameterValue {
    /// `true` or `false`.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A number with a fraction.
    Float(f64),
    /// Text, including durations such as `5m`.
    String(String),
}

/// A port number that may instead name a template parameter (`$port$`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(untagged)]
#[schemars(schema_with = "int_or_parameter_schema")]
pub enum PortOrParameter {
    /// A literal number.
    Int(i64),
    /// A parameter reference such as `$port$`, substituted when the rule set is compiled.
    Parameter(String),
}

/// What a check runs: exactly one probe.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "[has(self.cpu), has(self.memory), has(self.swap), has(self.disk), has(self.load), has(self.network), has(self.tcp), has(self.http), has(self.tls), has(self.dns), has(self.process), has(self.file), has(self.log), has(self.exec)].filter(x, x).size() == 1",
    "message": "a check needs exactly one probe: one of cpu, memory, swap, disk, load, network, tcp, http, tls, dns, process, file, log or exec"
}]))]
pub struct CheckSpec {
    /// CPU utilisation of the machine, in percent of all cores (value: `usage_percent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuProbe>,
    /// Memory use (value: `used_percent`, or available bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryProbe>,
    /// Swap use in percent (value: `used_percent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap: Option<SwapProbe>,
    /// Use of one mounted file system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<DiskProbe>,
    /// Load average.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadProbe>,
    /// Counters of one network interface, as rates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkProbe>,
    /// A TCP connection (value: connect time in seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpProbe>,
    /// An HTTP(S) request (value: response time in seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpProbe>,
    /// Days until a TLS certificate expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsProbe>,
    /// A DNS lookup (value: resolve time in seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsProbe>,
    /// How many processes match (value: count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessProbe>,
    /// A file's existence, age or size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileProbe>,
    /// Lines of a log file matching a pattern since the last run (value: match count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogProbe>,
    /// A Nagios plugin, run from argv without a shell; its exit code is the state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecProbe>,
}

impl CheckSpec {
    /// The name of the probe this spec runs, or `None` when it names none or several.
    pub fn probe_kind(&self) -> Option<&'static str> {
        let present = [
            self.cpu.is_some(),
            self.memory.is_some(),
            self.swap.is_some(),
            self.disk.is_some(),
            self.load.is_some(),
            self.network.is_some(),
            self.tcp.is_some(),
            self.http.is_some(),
            self.tls.is_some(),
            self.dns.is_some(),
            self.process.is_some(),
            self.file.is_some(),
            self.log.is_some(),
            self.exec.is_some(),
        ];
        let mut kinds = PROBE_KINDS.iter().zip(present).filter(|(_, p)| *p);
        match (kinds.next(), kinds.next()) {
            (Some((kind, _)), None) => Some(kind),
            _ => None,
        }
    }
}

/// CPU utilisation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CpuProbe {
    /// Report the busiest core instead of the average of all cores.
    #[serde(default)]
    pub busiest_core: bool,
}

/// What the memory probe measures.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum MemoryMetric {
    /// Percent of memory in use (total minus available).
    #[default]
    UsedPercent,
    /// Bytes available to new processes.
    AvailableBytes,
}

/// Memory use.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemoryProbe {
    /// What to measure; `usedPercent` by default.
    #[serde(default)]
    pub metric: MemoryMetric,
}

/// Swap use in percent; a machine without swap reports 0. Takes no settings (`swap: {}`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SwapProbe {}

/// What the disk probe measures.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DiskMetric {
    /// Percent of blocks in use.
    #[default]
    UsedPercent,
    /// Bytes free for unprivileged users.
    FreeBytes,
    /// Percent of inodes in use.
    InodesUsedPercent,
}

/// Use of one mounted file system.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiskProbe {
    /// Mount point, such as `/` or `/var`; may be a parameter such as `$mount$`.
    #[schemars(length(min = 1, max = 4096))]
    pub mount_point: String,
    /// What to measure; `usedPercent` by default.
    #[serde(default)]
    pub metric: DiskMetric,
}

/// Load average.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadProbe {
    /// Averaging period in minutes: 1, 5 or 15.
    #[serde(default = "default_load_period")]
    #[schemars(extend("enum" = [1, 5, 15]))]
    pub period_minutes: u8,
    /// Divide by the number of CPUs, so that thresholds hold on any machine size.
    #[serde(default)]
    pub per_cpu: bool,
}

fn default_load_period() -> u8 {
    5
}

/// What the network probe measures.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum NetworkMetric {
    /// Received bytes per second.
    #[default]
    ReceiveBytesPerSecond,
    /// Transmitted bytes per second.
    TransmitBytesPerSecond,
    /// Receive and transmit errors per second.
    ErrorsPerSecond,
    /// Dropped packets per second.
    DropsPerSecond,
}

/// Counters of one network interface.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkProbe {
    /// Interface name, such as `eth0`.
    #[schemars(length(min = 1, max = 64))]
    pub interface: String,
    /// What to measure; received bytes per second by default.
    #[serde(default)]
    pub metric: NetworkMetric,
}

/// A TCP connection.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpProbe {
    /// Host name or address to connect to; `$host$` by default, the machine running the check.
    #[serde(default = "default_host")]
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// Port, 1–65535, or a parameter such as `$port$`.
    pub port: PortOrParameter,
    /// Text to send after connecting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<String>,
    /// Text the first bytes received must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
    /// How the connection ends once the check is done.
    #[serde(default, skip_serializing_if = "TcpClose::is_graceful")]
    pub close: TcpClose,
}

/// How a TCP check closes its connection.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum TcpClose {
    /// A normal close (FIN), as `check_tcp` does: the checking machine keeps the connection in
    /// TIME_WAIT for a minute afterwards.
    #[default]
    Graceful,
    /// A reset (`SO_LINGER` 0), as HAProxy closes its health checks: no TIME_WAIT and about
    /// half the packets, for checks that probe many targets often; the server may log a reset.
    Reset,
}

impl TcpClose {
    /// Whether this is the default, graceful close.
    pub fn is_graceful(&self) -> bool {
        *self == TcpClose::Graceful
    }
}

fn default_host() -> String {
    "$host$".to_owned()
}

/// An HTTP(S) request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpProbe {
    /// URL to request, `http://` or `https://`; parameters allowed (`https://$host$:$port$/`).
    #[schemars(length(min = 1, max = 2048))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.startsWith('http://') || self.startsWith('https://') || self.startsWith('$')",
        "message": "url must start with http://, https:// or a template parameter such as $url$"
    }]))]
    pub url: String,
    /// Request method.
    #[serde(default = "default_method")]
    #[schemars(extend("enum" = ["GET", "HEAD", "POST", "PUT", "OPTIONS"]))]
    pub method: String,
    /// Status codes that count as success; 200–399 when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(range(min = 100, max = 599)))]
    pub expect_status: Vec<u16>,
    /// A regular expression the response body must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_match: Option<String>,
    /// Verify the server certificate chain and name (https only).
    #[serde(default = "default_true")]
    pub verify_certificate: bool,
    /// Request headers; values may come from parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

fn default_method() -> String {
    "GET".to_owned()
}

fn default_true() -> bool {
    true
}

/// Days until the TLS certificate a server presents expires.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsProbe {
    /// Host to connect to.
    #[serde(default = "default_host")]
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// Port; 443 by default.
    #[serde(default = "default_tls_port")]
    pub port: PortOrParameter,
    /// Server name to send (SNI) and verify; the host by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

fn default_tls_port() -> PortOrParameter {
    PortOrParameter::Int(443)
}

/// DNS record types the dns probe can ask for.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DnsRecordType {
    /// IPv4 address.
    #[default]
    A,
    /// IPv6 address.
    AAAA,
    /// Canonical name.
    CNAME,
    /// Mail exchanger.
    MX,
    /// Text.
    TXT,
}

/// A DNS lookup.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DnsProbe {
    /// Name to resolve.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Server to ask, `address[:port]`; the machine's resolver by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Record type; `A` by default.
    #[serde(default)]
    pub record_type: DnsRecordType,
    /// Answers that must all be present; any answer will do when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect: Vec<String>,
}

/// Processes matching a name or command line.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.name) != has(self.commandLine)",
    "message": "process needs exactly one of name or commandLine"
}]))]
pub struct ProcessProbe {
    /// Exact process name (`comm`), such as `nginx`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub name: Option<String>,
    /// A regular expression over the full command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub command_line: Option<String>,
    /// Only processes of this user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// What the file probe measures.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum FileMetric {
    /// 1 when the file exists, 0 when it does not.
    #[default]
    Exists,
    /// Seconds since the file was last modified.
    AgeSeconds,
    /// Size in bytes.
    SizeBytes,
}

/// A file's existence, age or size.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileProbe {
    /// Absolute path; parameters allowed.
    #[schemars(length(min = 1, max = 4096))]
    pub path: String,
    /// What to measure; existence by default.
    #[serde(default)]
    pub metric: FileMetric,
}

/// Lines of a log file matching a pattern since the last run. Survives rotation and
/// truncation: a new inode or a shorter file is read from its start.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogProbe {
    /// Absolute path of the log file.
    #[schemars(length(min = 1, max = 4096))]
    pub path: String,
    /// A regular expression a line must match to count.
    #[schemars(length(min = 1, max = 1024))]
    pub pattern: String,
}

/// A Nagios plugin, run from argv (never through a shell). Exit codes 0–3 are OK, WARNING,
/// CRITICAL and UNKNOWN; anything else is UNKNOWN. Perfdata is parsed from the output.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecProbe {
    /// The program: an absolute path, or a name found in the agent's plugin directories.
    #[schemars(length(min = 1, max = 4096))]
    pub command: String,
    /// Arguments, one per item; `$param$` is substituted, never interpreted by a shell.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    pub args: Vec<String>,
}
