//! The check specification shared by CheckTemplates, zone remote checks and agent plans:
//! exactly one probe (built in, or a Nagios plugin run from argv), with the fields each probe
//! needs. Integer and string fields may name a template parameter (`$port$`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::int_or_parameter_schema;

/// The probe names, in the order `CheckSpec` declares them.
pub const PROBE_KINDS: [&str; 19] = [
    "cpu", "memory", "swap", "disk", "load", "network", "tcp", "http", "tls", "dns", "process",
    "file", "log", "icmp", "udp", "snmp", "database", "mail", "exec",
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
    "rule": "[has(self.cpu), has(self.memory), has(self.swap), has(self.disk), has(self.load), has(self.network), has(self.tcp), has(self.http), has(self.tls), has(self.dns), has(self.process), has(self.file), has(self.log), has(self.icmp), has(self.udp), has(self.snmp), has(self.database), has(self.mail), has(self.exec)].filter(x, x).size() == 1",
    "message": "a check needs exactly one probe: one of cpu, memory, swap, disk, load, network, tcp, http, tls, dns, process, file, log, icmp, udp, snmp, database, mail or exec"
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
    /// ICMP echo requests, as `check_ping` sends them (value: average round trip in ms, or
    /// packet loss in percent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp: Option<IcmpProbe>,
    /// A UDP request and its reply (value: response time in seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<UdpProbe>,
    /// SNMP v2c or v3 GET or WALK (value: the number read, or an aggregate of the walk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snmp: Option<SnmpProbe>,
    /// A PostgreSQL or MySQL/MariaDB connection and query (value: the number the query
    /// returns, its row count, or the time taken).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseProbe>,
    /// An SMTP, IMAP or POP3 server's greeting, optionally through STARTTLS (value: seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail: Option<MailProbe>,
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
            self.icmp.is_some(),
            self.udp.is_some(),
            self.snmp.is_some(),
            self.database.is_some(),
            self.mail.is_some(),
            self.exec.is_some(),
        ];
        let mut kinds = PROBE_KINDS.iter().zip(present).filter(|(_, p)| *p);
        match (kinds.next(), kinds.next()) {
            (Some((kind, _)), None) => Some(kind),
            _ => None,
        }
    }

    /// Every Secret this check reads.
    pub fn secrets(&self) -> Vec<&CheckSecret> {
        let http = self.http.as_ref().and_then(|h| h.auth.as_ref());
        let snmp = self.snmp.as_ref();
        let v3 = snmp.and_then(|s| s.v3.as_ref());
        [
            http.and_then(|a| a.password_secret.as_ref()),
            http.and_then(|a| a.bearer_token_secret.as_ref()),
            snmp.and_then(|s| s.community_secret.as_ref()),
            v3.and_then(|v| v.auth_password_secret.as_ref()),
            v3.and_then(|v| v.privacy_password_secret.as_ref()),
            self.database
                .as_ref()
                .and_then(|d| d.password_secret.as_ref()),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Binds every Secret this check reads to `namespace`, whatever the manifest said: a
    /// check reads only the Secrets of the namespace that runs it.
    pub fn bind_secrets(&mut self, namespace: &str) {
        for secret in self.secrets_mut() {
            secret.namespace = Some(namespace.to_owned());
        }
    }

    /// Every Secret this check reads, to bind them to a namespace.
    pub fn secrets_mut(&mut self) -> Vec<&mut CheckSecret> {
        let mut out = Vec::new();
        if let Some(auth) = self.http.as_mut().and_then(|h| h.auth.as_mut()) {
            out.extend(auth.password_secret.as_mut());
            out.extend(auth.bearer_token_secret.as_mut());
        }
        if let Some(snmp) = self.snmp.as_mut() {
            out.extend(snmp.community_secret.as_mut());
            if let Some(v3) = snmp.v3.as_mut() {
                out.extend(v3.auth_password_secret.as_mut());
                out.extend(v3.privacy_password_secret.as_mut());
            }
        }
        if let Some(database) = self.database.as_mut() {
            out.extend(database.password_secret.as_mut());
        }
        out
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
    /// Keep the connection open between runs and reuse it, for checks that run every few
    /// seconds; the perfdata then has only `time`, `firstbyte` and `size`. Off by default:
    /// each run opens a new connection and closes it after, as `check_http` does, with `dns`,
    /// `connect`, `tls` (https) and `firstbyte` timed and included in `time`, so a server that
    /// no longer accepts new connections is seen.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reuse_connection: bool,
    /// Credentials sent as `Authorization`, from a Secret of the rule set's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<HttpAuth>,
}

/// Credentials of an HTTP check.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.bearerTokenSecret) != has(self.passwordSecret)",
    "message": "auth needs exactly one of bearerTokenSecret or username with passwordSecret"
}, {
    "rule": "has(self.passwordSecret) == has(self.username)",
    "message": "passwordSecret needs a username"
}]))]
pub struct HttpAuth {
    /// User name for basic authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub username: Option<String>,
    /// The password for basic authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<CheckSecret>,
    /// A bearer token (`Authorization: Bearer …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_secret: Option<CheckSecret>,
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
    /// Speak this protocol in plain text first and switch to TLS with its STARTTLS command
    /// (ports 25/587, 143, 110); TLS from the first byte when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_tls: Option<MailProtocol>,
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

/// A key of a Secret in the namespace of the rule set that runs the check. The operator reads
/// it and gives its value only to the agents whose plan has the check; it never appears in
/// status, Events, logs, the history store or another machine's plan.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckSecret {
    /// The Secret's name; parameters allowed.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key within it.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
    /// The namespace, set when the check is compiled: always the rule set's own (a check
    /// cannot read another namespace's Secrets). Not part of the resource's schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub namespace: Option<String>,
}

impl CheckSecret {
    /// `namespace/name/key`, the key under which plans carry the value.
    pub fn plan_key(&self) -> String {
        format!(
            "{}/{}/{}",
            self.namespace.as_deref().unwrap_or_default(),
            self.name,
            self.key
        )
    }
}

/// What the icmp probe's value is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum IcmpMetric {
    /// Average round-trip time in milliseconds of the replies received.
    #[default]
    RoundTripMilliseconds,
    /// Percent of requests without a reply.
    LossPercent,
}

/// ICMP echo requests. Unprivileged ICMP sockets where the kernel allows them
/// (`net.ipv4.ping_group_range`), raw sockets otherwise. All requests lost is CRITICAL.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IcmpProbe {
    /// Host name or address; `$host$` by default.
    #[serde(default = "default_host")]
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// Echo requests per run; 5 by default, as `check_ping`.
    #[serde(default = "default_icmp_packets")]
    #[schemars(range(min = 1, max = 100))]
    pub packets: u32,
    /// Milliseconds between requests; 200 by default.
    #[serde(default = "default_icmp_interval")]
    #[schemars(range(min = 10, max = 10000))]
    pub interval_milliseconds: u32,
    /// Payload bytes per request; 56 by default.
    #[serde(default = "default_icmp_size")]
    #[schemars(range(min = 0, max = 65000))]
    pub payload_bytes: u32,
    /// The value thresholds apply to; both are always perfdata (`rta`, `pl`).
    #[serde(default)]
    pub metric: IcmpMetric,
}

fn default_icmp_packets() -> u32 {
    5
}

fn default_icmp_interval() -> u32 {
    200
}

fn default_icmp_size() -> u32 {
    56
}

/// A UDP request and the reply it must get.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!(has(self.send) && has(self.sendHex))",
    "message": "udp takes send or sendHex, not both"
}, {
    "rule": "!(has(self.expect) && has(self.expectHex))",
    "message": "udp takes expect or expectHex, not both"
}]))]
pub struct UdpProbe {
    /// Host name or address; `$host$` by default.
    #[serde(default = "default_host")]
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// Port, 1–65535, or a parameter such as `$port$`.
    pub port: PortOrParameter,
    /// The request as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8192))]
    pub send: Option<String>,
    /// The request as hexadecimal bytes (`0a1b…`, spaces allowed), for binary protocols.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16384))]
    pub send_hex: Option<String>,
    /// Text the reply must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8192))]
    pub expect: Option<String>,
    /// Bytes the reply must contain, as hexadecimal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16384))]
    pub expect_hex: Option<String>,
}

/// The SNMP version.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SnmpVersion {
    /// SNMPv2c with a community string.
    #[default]
    V2c,
    /// SNMPv3 with the user-based security model.
    V3,
}

/// What an SNMP check reads.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SnmpOperation {
    /// One OID.
    #[default]
    Get,
    /// Every OID below `oid` (GETBULK), aggregated as `aggregate` says.
    Walk,
}

/// How a walk's values become one value.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SnmpAggregate {
    /// How many OIDs the walk returned.
    #[default]
    Count,
    /// The sum of the numeric values.
    Sum,
    /// The smallest numeric value.
    Min,
    /// The largest numeric value.
    Max,
}

/// SNMPv3 security level.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SnmpSecurityLevel {
    /// Neither authentication nor privacy.
    NoAuthNoPriv,
    /// Authenticated, not encrypted.
    AuthNoPriv,
    /// Authenticated and encrypted.
    #[default]
    AuthPriv,
}

/// SNMPv3 authentication protocol.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SnmpAuthProtocol {
    /// HMAC-MD5-96.
    MD5,
    /// HMAC-SHA-96.
    SHA,
    /// HMAC-SHA-224.
    SHA224,
    /// HMAC-SHA-256.
    #[default]
    SHA256,
    /// HMAC-SHA-384.
    SHA384,
    /// HMAC-SHA-512.
    SHA512,
}

/// SNMPv3 privacy protocol.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SnmpPrivacyProtocol {
    /// DES-CBC.
    DES,
    /// AES-128-CFB.
    #[default]
    AES,
    /// AES-192-CFB (Blumenthal key extension).
    AES192,
    /// AES-256-CFB (Blumenthal key extension).
    AES256,
}

/// SNMPv3 user-based security.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SnmpV3Security {
    /// The user (security name).
    #[schemars(length(min = 1, max = 64))]
    pub user: String,
    /// The security level; `authPriv` by default.
    #[serde(default)]
    pub level: SnmpSecurityLevel,
    /// Authentication protocol; SHA256 by default.
    #[serde(default)]
    pub auth_protocol: SnmpAuthProtocol,
    /// The authentication pass phrase (levels `authNoPriv` and `authPriv`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_password_secret: Option<CheckSecret>,
    /// Privacy protocol; AES by default.
    #[serde(default)]
    pub privacy_protocol: SnmpPrivacyProtocol,
    /// The privacy pass phrase (level `authPriv`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy_password_secret: Option<CheckSecret>,
    /// Context name; empty by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

/// An SNMP GET or WALK.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.version == 'V3' ? has(self.v3) : !has(self.v3)",
    "message": "v3 settings are needed with version V3 and only then"
}]))]
pub struct SnmpProbe {
    /// Host name or address; `$host$` by default.
    #[serde(default = "default_host")]
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// UDP port; 161 by default.
    #[serde(default = "default_snmp_port")]
    pub port: PortOrParameter,
    /// SNMP version; V2c by default.
    #[serde(default)]
    pub version: SnmpVersion,
    /// The v2c community; `public` by default. Use `communitySecret` for anything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub community: Option<String>,
    /// The v2c community, from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub community_secret: Option<CheckSecret>,
    /// The v3 user and keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v3: Option<SnmpV3Security>,
    /// The OID, numeric (`1.3.6.1.2.1.1.3.0`).
    #[schemars(length(min = 1, max = 512))]
    pub oid: String,
    /// GET (default) or WALK.
    #[serde(default)]
    pub operation: SnmpOperation,
    /// How a walk becomes one value; `count` by default.
    #[serde(default)]
    pub aggregate: SnmpAggregate,
    /// A regular expression a GET's value (as text) must match, for string OIDs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub expect: Option<String>,
}

fn default_snmp_port() -> PortOrParameter {
    PortOrParameter::Int(161)
}

/// The database server.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DatabaseEngine {
    /// PostgreSQL (port 5432 by default).
    PostgreSQL,
    /// MySQL or MariaDB (port 3306 by default).
    MySQL,
}

/// What a database check's value is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DatabaseMetric {
    /// Seconds to connect, authenticate and run the query.
    #[default]
    Seconds,
    /// The first column of the first row, which must be a number.
    Value,
    /// The number of rows the query returns.
    Rows,
}

/// A database connection and query.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DatabaseProbe {
    /// PostgreSQL or MySQL.
    pub engine: DatabaseEngine,
    /// Host name or address; `$host$` by default.
    #[serde(default = "default_host")]
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// Port; the engine's usual one by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortOrParameter>,
    /// Database to connect to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub database: Option<String>,
    /// User to log in as.
    #[schemars(length(min = 1, max = 128))]
    pub user: String,
    /// The user's password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<CheckSecret>,
    /// The query; `SELECT 1` by default. Run in a read-only transaction where the engine
    /// has one.
    #[serde(default = "default_query")]
    #[schemars(length(min = 1, max = 8192))]
    pub query: String,
    /// The value thresholds apply to; seconds by default.
    #[serde(default)]
    pub metric: DatabaseMetric,
    /// Require TLS to the server (verified against the machine's roots).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tls: bool,
}

fn default_query() -> String {
    "SELECT 1".to_owned()
}

/// A mail protocol.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MailProtocol {
    /// SMTP (`220` greeting, `EHLO`, `STARTTLS`); port 25 by default.
    SMTP,
    /// IMAP (`* OK` greeting, `STARTTLS`); port 143 by default.
    IMAP,
    /// POP3 (`+OK` greeting, `STLS`); port 110 by default.
    POP3,
}

/// A mail server's greeting, optionally followed by STARTTLS and a verified handshake.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MailProbe {
    /// SMTP, IMAP or POP3.
    pub protocol: MailProtocol,
    /// Host name or address; `$host$` by default.
    #[serde(default = "default_host")]
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// Port; the protocol's usual plain-text one by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortOrParameter>,
    /// Text the greeting must contain besides the protocol's OK code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub expect: Option<String>,
    /// Switch to TLS with STARTTLS and verify the certificate (days left as perfdata).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub start_tls: bool,
    /// The name sent in SMTP's `EHLO`; the agent's host name by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub helo_name: Option<String>,
}
