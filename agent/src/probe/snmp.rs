//! SNMP v2c and v3 (user-based security) GET and WALK of numeric OIDs, in check_snmp's style:
//! `SNMP OK - 123|1.3.6.1.2.1.1.3.0=123s time=0.001s`. A GET's value is the number it reads
//! (TimeTicks as seconds); a WALK's is the count, sum, minimum or maximum of its subtree.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use regex::Regex;
use snmp2::v3::{Auth, AuthErrorKind, AuthProtocol, Cipher, KeyExtension, Security};
use snmp2::{AsyncSession, Oid, Value};
use vedette_crds::check::{
    SnmpAggregate, SnmpAuthProtocol, SnmpOperation, SnmpPrivacyProtocol, SnmpProbe,
    SnmpSecurityLevel, SnmpV3Security, SnmpVersion,
};
use vedette_crds::template::CheckState;

use super::{CheckSecrets, ProbeError, ProbeOutput, Result, seconds};

/// Requests sent for one exchange before giving up (the agent drops what it will not answer:
/// a wrong community looks like a lost datagram).
const ATTEMPTS: u32 = 3;

/// Most varbinds one walk reads.
const MAX_WALK_VARBINDS: usize = 10_000;

/// Varbinds asked for per GETBULK request.
const BULK_REPETITIONS: u32 = 25;

/// Walks with at most this many numeric rows get one perfdata item per row.
const MAX_ROW_PERFDATA: usize = 64;

/// Most arcs of an OID (RFC 2578: 128 sub-identifiers).
const MAX_OID_ARCS: usize = 128;

/// The arcs of a numeric OID such as `1.3.6.1.2.1.1.3.0` (a leading dot is allowed).
pub(crate) fn parse_oid(text: &str) -> Result<Vec<u64>> {
    let bad = |why: &str| ProbeError::InvalidSpec(format!("bad OID {text:?}: {why}"));
    let arcs = text
        .strip_prefix('.')
        .unwrap_or(text)
        .split('.')
        .map(|arc| {
            arc.parse::<u32>()
                .map(u64::from)
                .map_err(|_| bad("arcs are numbers of 0 to 4294967295"))
        })
        .collect::<Result<Vec<u64>>>()?;
    if arcs.len() < 2 || arcs.len() > MAX_OID_ARCS {
        return Err(bad("an OID has 2 to 128 arcs"));
    }
    if arcs[0] > 2 || (arcs[0] < 2 && arcs[1] >= 40) {
        return Err(bad("it starts with 0, 1 or 2, then a second arc below 40"));
    }
    Ok(arcs)
}

/// Finds what would make every run fail: a bad OID, missing v3 settings or pass phrases.
pub(crate) fn validate(spec: &SnmpProbe) -> Result<()> {
    super::substituted("host", &spec.host)?;
    super::port(&spec.port)?;
    parse_oid(&spec.oid)?;
    match (spec.version, &spec.v3) {
        (SnmpVersion::V3, None) => Err(ProbeError::InvalidSpec(
            "SNMP version V3 needs v3 settings".into(),
        )),
        (SnmpVersion::V2c, Some(_)) => Err(ProbeError::InvalidSpec(
            "v3 settings are only for SNMP version V3".into(),
        )),
        (SnmpVersion::V3, Some(v3)) => needed_secrets(v3).map(drop),
        (SnmpVersion::V2c, None) => Ok(()),
    }
}

/// The auth and privacy pass phrase Secrets the security level needs.
fn needed_secrets(
    v3: &SnmpV3Security,
) -> Result<(
    Option<&vedette_crds::check::CheckSecret>,
    Option<&vedette_crds::check::CheckSecret>,
)> {
    let missing = |what: &str| {
        ProbeError::InvalidSpec(format!(
            "SNMPv3 level {} needs {what}",
            level_name(v3.level)
        ))
    };
    let auth = match v3.level {
        SnmpSecurityLevel::NoAuthNoPriv => None,
        _ => Some(
            v3.auth_password_secret
                .as_ref()
                .ok_or_else(|| missing("authPasswordSecret"))?,
        ),
    };
    let privacy = match v3.level {
        SnmpSecurityLevel::AuthPriv => Some(
            v3.privacy_password_secret
                .as_ref()
                .ok_or_else(|| missing("privacyPasswordSecret"))?,
        ),
        _ => None,
    };
    Ok((auth, privacy))
}

fn level_name(level: SnmpSecurityLevel) -> &'static str {
    match level {
        SnmpSecurityLevel::NoAuthNoPriv => "noAuthNoPriv",
        SnmpSecurityLevel::AuthNoPriv => "authNoPriv",
        SnmpSecurityLevel::AuthPriv => "authPriv",
    }
}

/// One value read, owned.
#[derive(Clone, Debug, PartialEq)]
enum Reading {
    /// A number, and its unit (`s` for TimeTicks, `c` for counters).
    Number(f64, &'static str),
    /// Text (an OCTET STRING, an OID, an address).
    Text(String),
    /// noSuchObject, noSuchInstance or endOfMibView.
    Absent(&'static str),
}

impl Reading {
    fn from_value(value: &Value<'_>) -> Self {
        match value {
            Value::Integer(n) => Self::Number(*n as f64, ""),
            Value::Counter32(n) => Self::Number(f64::from(*n), "c"),
            Value::Unsigned32(n) => Self::Number(f64::from(*n), ""),
            Value::Timeticks(n) => Self::Number(f64::from(*n) / 100.0, "s"),
            Value::Counter64(n) => Self::Number(*n as f64, "c"),
            Value::OctetString(bytes) | Value::Opaque(bytes) => {
                Self::Text(String::from_utf8_lossy(bytes).into_owned())
            }
            Value::ObjectIdentifier(oid) => Self::Text(oid.to_id_string()),
            Value::IpAddress([a, b, c, d]) => Self::Text(format!("{a}.{b}.{c}.{d}")),
            Value::Boolean(b) => Self::Text(b.to_string()),
            Value::Null => Self::Text(String::new()),
            Value::NoSuchObject => Self::Absent("noSuchObject"),
            Value::NoSuchInstance => Self::Absent("noSuchInstance"),
            Value::EndOfMibView => Self::Absent("endOfMibView"),
            other => Self::Text(format!("{other:?}")),
        }
    }

    /// The number this reading stands for: numeric types, and text that is a number (the
    /// UCD MIB's load averages are strings such as `0.15`).
    fn number(&self) -> Option<f64> {
        match self {
            Self::Number(n, _) => Some(*n),
            Self::Text(text) => text.trim().parse().ok().filter(|n: &f64| n.is_finite()),
            Self::Absent(_) => None,
        }
    }
}

impl fmt::Display for Reading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n, _) => write!(f, "{n}"),
            Self::Text(text) => write!(f, "{text:?}"),
            Self::Absent(what) => f.write_str(what),
        }
    }
}

/// Where the probe asks, and who it says it is (for messages, never with secrets).
struct Target {
    address: SocketAddr,
    shown: String,
    /// What silence most likely means at this stage, for the no-answer message.
    silence: &'static str,
}

/// The snmp probe.
pub(crate) async fn probe(
    spec: &SnmpProbe,
    secrets: &CheckSecrets,
    expect: Option<&Regex>,
    timeout: Duration,
) -> Result<ProbeOutput> {
    validate(spec)?;
    let host = &spec.host;
    let port = super::port(&spec.port)?;
    let arcs = parse_oid(&spec.oid)?;
    let credentials = session_settings(spec, secrets)?;
    let started = Instant::now();
    let deadline = started + timeout;
    let address = super::tcp::resolve(host, port).await?[0];
    let mut target = Target {
        address,
        shown: format!("{host} port {port}"),
        silence: match spec.v3 {
            None => "wrong community or host down?",
            Some(_) => "host down or no SNMPv3 agent?",
        },
    };
    let request = Request {
        spec,
        arcs: &arcs,
        expect,
        started,
        deadline,
        timeout,
    };
    match (request.run(&mut target, credentials).await, &spec.v3) {
        (Ok(output), _) => Ok(output),
        (Err(Failure::Refused(error)), Some(v3)) => {
            Err(refusal(&target, v3, deadline, error).await)
        }
        (Err(Failure::Refused(error) | Failure::Probe(error)), _) => Err(error),
    }
}

/// One run's request and its time limits.
struct Request<'a> {
    spec: &'a SnmpProbe,
    arcs: &'a [u64],
    expect: Option<&'a Regex>,
    started: Instant,
    deadline: Instant,
    timeout: Duration,
}

impl Request<'_> {
    /// Opens the session (v3: engine discovery) and runs the GET or WALK.
    async fn run(
        &self,
        target: &mut Target,
        credentials: Credentials,
    ) -> Result<ProbeOutput, Failure> {
        let (deadline, timeout) = (self.deadline, self.timeout);
        let mut session = open(target, credentials, deadline, timeout).await?;
        if let Some(v3) = &self.spec.v3 {
            // The engine answered discovery: an encrypted request it ignores could not be
            // decrypted (net-snmp drops those without a report).
            target.silence = match v3.level {
                SnmpSecurityLevel::AuthPriv => {
                    "the agent answered discovery: wrong privacy pass phrase or protocol?"
                }
                _ => "the agent answered discovery, then stopped answering",
            };
        }
        let spec = self.spec;
        let output = match spec.operation {
            SnmpOperation::Get => {
                let oid = oid(self.arcs)?;
                let reading = get(&mut session, target, &oid, deadline, timeout).await?;
                get_output(&spec.oid, &reading, self.expect, self.elapsed())
            }
            SnmpOperation::Walk => {
                let walk = walk(&mut session, target, self.arcs, deadline, timeout).await?;
                walk_output(&spec.oid, spec.aggregate, &walk, self.elapsed())?
            }
        };
        Ok(output)
    }

    fn elapsed(&self) -> f64 {
        seconds(self.started.elapsed())
    }
}

/// The library's OID for `arcs`.
fn oid(arcs: &[u64]) -> Result<Oid<'static>> {
    Oid::from(arcs).map_err(|e| ProbeError::InvalidSpec(format!("bad OID {}: {e:?}", dotted(arcs))))
}

/// Why a run failed: an error to report as it is, or a v3 request the agent refused with an
/// unauthenticated report, whose reason the library does not pass on.
enum Failure {
    Probe(ProbeError),
    Refused(ProbeError),
}

impl From<ProbeError> for Failure {
    fn from(error: ProbeError) -> Self {
        Self::Probe(error)
    }
}

/// The probe's error for a v3 refusal, with its reason when a second look finds it.
async fn refusal(
    target: &Target,
    v3: &SnmpV3Security,
    deadline: Instant,
    error: ProbeError,
) -> ProbeError {
    match usm_report::refusal_reason(target.address, v3, deadline).await {
        Some(reason) => ProbeError::Unexpected(format!(
            "SNMPv3 authentication failed at {}: {reason}",
            target.shown
        )),
        None => error,
    }
}

/// The session's credentials: a community, or a v3 user with its keys' pass phrases.
enum Credentials {
    Community(Vec<u8>),
    User(Box<Security>),
}

fn session_settings(spec: &SnmpProbe, secrets: &CheckSecrets) -> Result<Credentials> {
    let Some(v3) = &spec.v3 else {
        let community = match &spec.community_secret {
            Some(secret) => secrets.get(secret)?,
            None => spec.community.clone().unwrap_or_else(|| "public".into()),
        };
        return Ok(Credentials::Community(community.into_bytes()));
    };
    let (auth_secret, privacy_secret) = needed_secrets(v3)?;
    let auth_password = auth_secret.map(|s| secrets.get(s)).transpose()?;
    let privacy_password = privacy_secret.map(|s| secrets.get(s)).transpose()?;
    let auth = match (v3.level, privacy_password) {
        (SnmpSecurityLevel::NoAuthNoPriv, _) => Auth::NoAuthNoPriv,
        (SnmpSecurityLevel::AuthNoPriv, _) => Auth::AuthNoPriv,
        (SnmpSecurityLevel::AuthPriv, password) => Auth::AuthPriv {
            cipher: cipher(v3.privacy_protocol),
            privacy_password: password.unwrap_or_default().into_bytes(),
        },
    };
    let mut security = Security::new(
        v3.user.as_bytes(),
        auth_password.unwrap_or_default().as_bytes(),
    )
    .with_auth(auth)
    .with_auth_protocol(auth_protocol(v3.auth_protocol))
    // AES-192/256 keys longer than the hash: net-snmp's AES192/AES256 extend them this way.
    .with_key_extension_method(KeyExtension::Blumenthal);
    if let Some(context) = &v3.context {
        security = security.with_context_name(context);
    }
    Ok(Credentials::User(Box::new(security)))
}

fn auth_protocol(protocol: SnmpAuthProtocol) -> AuthProtocol {
    match protocol {
        SnmpAuthProtocol::MD5 => AuthProtocol::Md5,
        SnmpAuthProtocol::SHA => AuthProtocol::Sha1,
        SnmpAuthProtocol::SHA224 => AuthProtocol::Sha224,
        SnmpAuthProtocol::SHA256 => AuthProtocol::Sha256,
        SnmpAuthProtocol::SHA384 => AuthProtocol::Sha384,
        SnmpAuthProtocol::SHA512 => AuthProtocol::Sha512,
    }
}

fn cipher(protocol: SnmpPrivacyProtocol) -> Cipher {
    match protocol {
        SnmpPrivacyProtocol::DES => Cipher::Des,
        SnmpPrivacyProtocol::AES => Cipher::Aes128,
        SnmpPrivacyProtocol::AES192 => Cipher::Aes192,
        SnmpPrivacyProtocol::AES256 => Cipher::Aes256,
    }
}

/// A session to `target`; for v3, after engine discovery (one exchange, repeated like any
/// other when unanswered).
async fn open(
    target: &Target,
    credentials: Credentials,
    deadline: Instant,
    timeout: Duration,
) -> Result<AsyncSession, Failure> {
    let request_id = fastrand::i32(1..i32::MAX / 2);
    let created = match credentials {
        Credentials::Community(community) => {
            AsyncSession::new_v2c(target.address, &community, request_id).await
        }
        Credentials::User(security) => {
            AsyncSession::new_v3(target.address, request_id, *security).await
        }
    };
    let mut session = created.map_err(|error| ProbeError::Connect {
        target: target.shown.clone(),
        reason: error.to_string(),
    })?;
    if session.version() == snmp2::Version::V3 {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let wait = attempt_wait(deadline, timeout, attempt);
            match tokio::time::timeout(wait, session.init()).await {
                Ok(Ok(())) => break,
                Ok(Err(error)) if !retryable(&error) || attempt >= ATTEMPTS => {
                    return Err(snmp_error(target, &error));
                }
                Ok(Err(_)) => {}
                Err(_) if attempt >= ATTEMPTS || Instant::now() >= deadline => {
                    return Err(no_answer(target, timeout).into());
                }
                Err(_) => {}
            }
        }
    }
    Ok(session)
}

/// How long one attempt of an exchange may wait: an equal share of the timeout, never past
/// the deadline.
fn attempt_wait(deadline: Instant, timeout: Duration, attempt: u32) -> Duration {
    let share = timeout / ATTEMPTS;
    let left = deadline.saturating_duration_since(Instant::now());
    if attempt >= ATTEMPTS {
        left
    } else {
        share.min(left)
    }
}

/// Errors after which sending the request again may work: a late answer to an earlier
/// attempt, or a v3 engine that resynchronised its boots and time.
fn retryable(error: &snmp2::Error) -> bool {
    matches!(
        error,
        snmp2::Error::RequestIdMismatch | snmp2::Error::AuthUpdated
    )
}

/// The varbinds of one answered request, owned: `(arcs, reading)`.
type Varbinds = Vec<(Vec<u64>, Reading)>;

/// One request with its retries; `bulk` says whether it is a GETBULK.
async fn exchange(
    session: &mut AsyncSession,
    target: &Target,
    oid: &Oid<'_>,
    bulk: bool,
    deadline: Instant,
    timeout: Duration,
) -> Result<Varbinds, Failure> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let wait = attempt_wait(deadline, timeout, attempt);
        let answer = tokio::time::timeout(wait, async {
            let pdu = if bulk {
                session.getbulk(&[oid], 0, BULK_REPETITIONS).await?
            } else {
                session.get(oid).await?
            };
            if pdu.error_status != 0 {
                return Ok(Err(pdu.error_status));
            }
            Ok(Ok(pdu
                .varbinds
                .map(|(name, value)| {
                    let arcs = name.iter().map(Iterator::collect).unwrap_or_default();
                    (arcs, Reading::from_value(&value))
                })
                .collect::<Varbinds>()))
        })
        .await;
        match answer {
            Ok(Ok(Ok(varbinds))) => return Ok(varbinds),
            Ok(Ok(Err(status))) => {
                return Err(ProbeError::Unexpected(format!(
                    "{} answered error {} for {oid}",
                    target.shown,
                    error_status_name(status)
                ))
                .into());
            }
            Ok(Err(error)) if !retryable(&error) || attempt >= ATTEMPTS => {
                return Err(snmp_error(target, &error));
            }
            Ok(Err(_)) => {}
            Err(_) if attempt >= ATTEMPTS || Instant::now() >= deadline => {
                return Err(no_answer(target, timeout).into());
            }
            Err(_) => {}
        }
    }
}

/// A GET of one OID.
async fn get(
    session: &mut AsyncSession,
    target: &Target,
    oid: &Oid<'_>,
    deadline: Instant,
    timeout: Duration,
) -> Result<Reading, Failure> {
    let varbinds = exchange(session, target, oid, false, deadline, timeout).await?;
    let Some((_, reading)) = varbinds.into_iter().next() else {
        return Err(ProbeError::Unexpected(format!(
            "{} answered without a value for {oid}",
            target.shown
        ))
        .into());
    };
    if let Reading::Absent(what) = reading {
        return Err(ProbeError::Missing(format!(
            "{what}: {} has no value for OID {oid}",
            target.shown
        ))
        .into());
    }
    Ok(reading)
}

/// What a walk read: the rows below the OID (arcs below it, reading) and whether it stopped at
/// `MAX_WALK_VARBINDS`.
#[derive(Debug, Default)]
struct Walk {
    rows: Vec<(Vec<u64>, Reading)>,
    truncated: bool,
}

/// GETBULK requests from `root` until the answers leave its subtree, the agent's MIB ends, or
/// `MAX_WALK_VARBINDS` rows were read.
async fn walk(
    session: &mut AsyncSession,
    target: &Target,
    root: &[u64],
    deadline: Instant,
    timeout: Duration,
) -> Result<Walk, Failure> {
    let mut walk = Walk::default();
    let mut next = root.to_vec();
    loop {
        let oid = oid(&next)?;
        let varbinds = exchange(session, target, &oid, true, deadline, timeout).await?;
        match walk_step(&mut walk, root, &next, varbinds) {
            WalkStep::Continue(last) => next = last,
            WalkStep::Done => return Ok(walk),
            WalkStep::NotIncreasing(oid) => {
                return Err(ProbeError::Unexpected(format!(
                    "{} answered OID {} out of order during the walk",
                    target.shown,
                    dotted(&oid)
                ))
                .into());
            }
        }
    }
}

/// What to do after one GETBULK answer.
#[derive(Debug, PartialEq)]
enum WalkStep {
    /// Ask again from this OID.
    Continue(Vec<u64>),
    /// The subtree ended, or the bound was reached.
    Done,
    /// The agent answered an OID not after the one asked for (a broken agent would loop).
    NotIncreasing(Vec<u64>),
}

/// Adds one answer's rows to `walk` (pure logic).
fn walk_step(walk: &mut Walk, root: &[u64], asked: &[u64], varbinds: Varbinds) -> WalkStep {
    let mut previous = asked.to_vec();
    if varbinds.is_empty() {
        return WalkStep::Done;
    }
    for (arcs, reading) in varbinds {
        if matches!(reading, Reading::Absent(_)) || !arcs.starts_with(root) {
            return WalkStep::Done;
        }
        if arcs <= previous {
            return WalkStep::NotIncreasing(arcs);
        }
        if walk.rows.len() >= MAX_WALK_VARBINDS {
            walk.truncated = true;
            return WalkStep::Done;
        }
        previous.clone_from(&arcs);
        walk.rows.push((arcs[root.len()..].to_vec(), reading));
    }
    WalkStep::Continue(previous)
}

fn dotted(arcs: &[u64]) -> String {
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// A GET's output: the number, or the text checked against `expect`.
fn get_output(oid: &str, reading: &Reading, expect: Option<&Regex>, time: f64) -> ProbeOutput {
    let text = match reading {
        Reading::Text(text) => text.clone(),
        other => other.to_string(),
    };
    let number = reading.number();
    // A text value has no number for thresholds; with `expect` it is measured by its time.
    let value = match (number, expect) {
        (Some(n), _) => n,
        (None, Some(_)) => time,
        (None, None) => f64::NAN,
    };
    let mut output = ProbeOutput::measured("snmp", value, reading.to_string());
    if let Some(n) = number {
        let uom = match reading {
            Reading::Number(_, uom) => uom,
            _ => "",
        };
        output = output.with_perf(oid.trim_start_matches('.'), n, uom);
    }
    output = output.with_perf("time", time, "s");
    if let Some(expect) = expect.filter(|e| !e.is_match(&text)) {
        let reason = format!(
            "{} does not match {:?} for OID {oid}",
            reading,
            expect.as_str()
        );
        output.output = reason.clone();
        output = output.with_failure(CheckState::Critical, reason);
    }
    output
}

/// A walk's output: the aggregate, and one perfdata item per row for small numeric tables.
fn walk_output(oid: &str, aggregate: SnmpAggregate, walk: &Walk, time: f64) -> Result<ProbeOutput> {
    let numbers: Vec<(String, f64)> = walk
        .rows
        .iter()
        .filter_map(|(suffix, reading)| reading.number().map(|n| (dotted(suffix), n)))
        .collect();
    let (name, value) = match aggregate {
        SnmpAggregate::Count => ("count", walk.rows.len() as f64),
        SnmpAggregate::Sum => ("sum", numbers.iter().map(|(_, n)| n).sum()),
        SnmpAggregate::Min => (
            "min",
            numbers.iter().map(|(_, n)| *n).fold(f64::NAN, f64::min),
        ),
        SnmpAggregate::Max => (
            "max",
            numbers.iter().map(|(_, n)| *n).fold(f64::NAN, f64::max),
        ),
    };
    if value.is_nan() {
        return Err(ProbeError::Missing(format!(
            "no numeric value below OID {oid} ({} varbinds) for {name}",
            walk.rows.len()
        )));
    }
    let stopped = if walk.truncated {
        format!(", stopped at {MAX_WALK_VARBINDS}")
    } else {
        String::new()
    };
    let mut output = ProbeOutput::measured(
        "snmp",
        value,
        format!(
            "{name} {value} below {oid} ({} varbinds, {} numeric{stopped})",
            walk.rows.len(),
            numbers.len()
        ),
    )
    .with_perf(name, value, "");
    if numbers.len() <= MAX_ROW_PERFDATA {
        for (suffix, n) in &numbers {
            output = output.with_perf(suffix.clone(), *n, "");
        }
    }
    Ok(output.with_perf("time", time, "s"))
}

/// The message for an exchange that got no answer at all.
fn no_answer(target: &Target, timeout: Duration) -> ProbeError {
    ProbeError::Unexpected(format!(
        "no answer from {} within {} s ({})",
        target.shown,
        seconds(timeout),
        target.silence
    ))
}

/// A library error as a probe error; never carries a pass phrase or community (the library's
/// errors hold none).
fn snmp_error(target: &Target, error: &snmp2::Error) -> Failure {
    let shown = &target.shown;
    let error = match error {
        snmp2::Error::Send | snmp2::Error::Receive => ProbeError::Connect {
            target: shown.clone(),
            reason: "no SNMP agent (port unreachable)".into(),
        },
        snmp2::Error::AuthFailure(AuthErrorKind::NotAuthenticated) => {
            return Failure::Refused(ProbeError::Unexpected(format!(
                "SNMPv3 authentication failed at {shown}: the agent refused the request with an \
                 unauthenticated report (wrong pass phrase, unknown user or unsupported security \
                 level)"
            )));
        }
        snmp2::Error::AuthFailure(AuthErrorKind::SignatureMismatch) => {
            ProbeError::Unexpected(format!(
                "SNMPv3 authentication failed at {shown}: the answer's digest does not match \
                 (wrong authentication pass phrase or protocol)"
            ))
        }
        snmp2::Error::AuthFailure(kind) => {
            ProbeError::Unexpected(format!("SNMPv3 security failure at {shown}: {kind}"))
        }
        snmp2::Error::Crypto(reason) => ProbeError::Unexpected(format!(
            "SNMPv3 decryption failed at {shown} (wrong privacy pass phrase or protocol?): {reason}"
        )),
        other => ProbeError::Unexpected(format!("bad SNMP answer from {shown}: {other}")),
    };
    Failure::Probe(error)
}

/// RFC 3416 error-status names.
fn error_status_name(status: u32) -> String {
    const NAMES: [&str; 19] = [
        "noError",
        "tooBig",
        "noSuchName",
        "badValue",
        "readOnly",
        "genErr",
        "noAccess",
        "wrongType",
        "wrongLength",
        "wrongEncoding",
        "wrongValue",
        "noCreation",
        "inconsistentValue",
        "resourceUnavailable",
        "commitFailed",
        "undoFailed",
        "authorizationError",
        "notWritable",
        "inconsistentName",
    ];
    NAMES
        .get(status as usize)
        .map_or_else(|| format!("status {status}"), |n| (*n).to_owned())
}

/// Reads why an agent refused a v3 request with an unauthenticated report, which the library
/// does not pass on. RFC 3414 3.2 checks the user, then its security level, then the digest:
/// the same request with a blank digest draws the same report as the refused one did, and
/// this module builds that request and reads its report (plain BER, nothing secret in it).
mod usm_report {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    use std::time::Instant;

    use snmp2::AsnReader;
    use tokio::net::UdpSocket;
    use vedette_crds::check::{SnmpAuthProtocol, SnmpSecurityLevel, SnmpV3Security};

    /// usmStats (1.3.6.1.6.3.15.1.1): the counters whose OIDs reports carry.
    const USM_STATS: [u64; 9] = [1, 3, 6, 1, 6, 3, 15, 1, 1];

    /// The reason for the report whose first varbind is `arcs`.
    pub(super) fn reason(arcs: &[u64]) -> Option<&'static str> {
        let counter = arcs.strip_prefix(&USM_STATS[..])?.first()?;
        Some(match counter {
            1 => "the user does not support this security level (usmStatsUnsupportedSecLevels)",
            2 => "the engine's time window was missed (usmStatsNotInTimeWindows)",
            3 => "unknown user (usmStatsUnknownUserNames)",
            4 => "unknown engine ID (usmStatsUnknownEngineIDs)",
            5 => "wrong authentication pass phrase or protocol (usmStatsWrongDigests)",
            6 => "wrong privacy pass phrase or protocol (usmStatsDecryptionErrors)",
            _ => return None,
        })
    }

    /// Discovers the engine, sends the blank-digest request and names the report's reason;
    /// `None` when any step gets no usable answer before `deadline`.
    pub(crate) async fn refusal_reason(
        address: SocketAddr,
        v3: &SnmpV3Security,
        deadline: Instant,
    ) -> Option<&'static str> {
        let local = match address.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let socket = UdpSocket::bind((local, 0)).await.ok()?;
        socket.connect(address).await.ok()?;
        let id = fastrand::i32(1..i32::MAX);
        let discovery = message(id, REPORTABLE, &Usm::default(), b"");
        let engine = Usm::of_report(&exchange(&socket, &discovery, deadline).await?)?;
        let (flags, digest) = match v3.level {
            SnmpSecurityLevel::NoAuthNoPriv => (REPORTABLE, 0),
            SnmpSecurityLevel::AuthNoPriv => (REPORTABLE | AUTH, digest_length(v3.auth_protocol)),
            SnmpSecurityLevel::AuthPriv => {
                (REPORTABLE | AUTH | PRIVACY, digest_length(v3.auth_protocol))
            }
        };
        let usm = Usm {
            user: v3.user.as_bytes().to_vec(),
            auth: vec![0; digest],
            privacy: if flags & PRIVACY != 0 {
                vec![0; 8]
            } else {
                Vec::new()
            },
            ..engine
        };
        let context = v3.context.as_deref().unwrap_or_default().as_bytes();
        let request = message(id.wrapping_add(1), flags, &usm, context);
        let report = exchange(&socket, &request, deadline).await?;
        reason(&report_oid(&report)?)
    }

    const REPORTABLE: u8 = 0x04;
    const AUTH: u8 = 0x01;
    const PRIVACY: u8 = 0x02;

    fn digest_length(protocol: SnmpAuthProtocol) -> usize {
        match protocol {
            SnmpAuthProtocol::MD5 | SnmpAuthProtocol::SHA => 12,
            SnmpAuthProtocol::SHA224 => 16,
            SnmpAuthProtocol::SHA256 => 24,
            SnmpAuthProtocol::SHA384 => 32,
            SnmpAuthProtocol::SHA512 => 48,
        }
    }

    async fn exchange(socket: &UdpSocket, request: &[u8], deadline: Instant) -> Option<Vec<u8>> {
        socket.send(request).await.ok()?;
        let mut buffer = vec![0; 65_536];
        let wait = deadline.saturating_duration_since(Instant::now());
        let length = tokio::time::timeout(wait, socket.recv(&mut buffer))
            .await
            .ok()?
            .ok()?;
        buffer.truncate(length);
        Some(buffer)
    }

    /// The user-based security parameters of a message.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub(super) struct Usm {
        pub(super) engine: Vec<u8>,
        pub(super) boots: i64,
        pub(super) time: i64,
        pub(super) user: Vec<u8>,
        pub(super) auth: Vec<u8>,
        pub(super) privacy: Vec<u8>,
    }

    impl Usm {
        /// The engine ID, boots and time of a discovery report.
        pub(super) fn of_report(message: &[u8]) -> Option<Self> {
            let mut outer = AsnReader::from_bytes(message);
            let mut rdr = AsnReader::from_bytes(outer.read_raw(SEQUENCE).ok()?);
            (rdr.read_asn_integer().ok()? == 3).then_some(())?;
            rdr.read_raw(SEQUENCE).ok()?;
            let params = rdr.read_asn_octetstring().ok()?;
            let mut usm =
                AsnReader::from_bytes(AsnReader::from_bytes(params).read_raw(SEQUENCE).ok()?);
            Some(Self {
                engine: usm.read_asn_octetstring().ok()?.to_vec(),
                boots: usm.read_asn_integer().ok()?,
                time: usm.read_asn_integer().ok()?,
                ..Self::default()
            })
        }
    }

    const SEQUENCE: u8 = 0x30;
    const REPORT: u8 = 0xa8;

    /// The first varbind's OID of a plaintext report.
    pub(super) fn report_oid(message: &[u8]) -> Option<Vec<u64>> {
        let mut outer = AsnReader::from_bytes(message);
        let mut rdr = AsnReader::from_bytes(outer.read_raw(SEQUENCE).ok()?);
        rdr.read_asn_integer().ok()?;
        rdr.read_raw(SEQUENCE).ok()?;
        rdr.read_asn_octetstring().ok()?;
        let mut scoped = AsnReader::from_bytes(rdr.read_raw(SEQUENCE).ok()?);
        scoped.read_asn_octetstring().ok()?;
        scoped.read_asn_octetstring().ok()?;
        let mut pdu = AsnReader::from_bytes(scoped.read_raw(REPORT).ok()?);
        for _ in 0..3 {
            pdu.read_asn_integer().ok()?;
        }
        let mut varbinds = AsnReader::from_bytes(pdu.read_raw(SEQUENCE).ok()?);
        let mut varbind = AsnReader::from_bytes(varbinds.read_raw(SEQUENCE).ok()?);
        let oid = varbind.read_asn_objectidentifier().ok()?;
        Some(oid.iter()?.collect())
    }

    /// A v3 message with a GET of sysUpTime.0 (of nothing for discovery); with the privacy flag
    /// its scoped PDU is a blank encrypted block (the digest check comes first and fails).
    pub(super) fn message(id: i32, flags: u8, usm: &Usm, context: &[u8]) -> Vec<u8> {
        let header = tlv(
            SEQUENCE,
            &[
                integer(i64::from(id)),
                integer(65_507),
                tlv(0x04, &[flags]),
                integer(3),
            ]
            .concat(),
        );
        let params = tlv(
            SEQUENCE,
            &[
                tlv(0x04, &usm.engine),
                integer(usm.boots),
                integer(usm.time),
                tlv(0x04, &usm.user),
                tlv(0x04, &usm.auth),
                tlv(0x04, &usm.privacy),
            ]
            .concat(),
        );
        let varbinds = if usm.user.is_empty() {
            Vec::new()
        } else {
            let sys_uptime = [0x2b, 6, 1, 2, 1, 1, 3, 0];
            tlv(SEQUENCE, &[tlv(0x06, &sys_uptime), tlv(0x05, &[])].concat())
        };
        let pdu = tlv(
            0xa0,
            &[
                integer(i64::from(id)),
                integer(0),
                integer(0),
                tlv(SEQUENCE, &varbinds),
            ]
            .concat(),
        );
        let data = if flags & PRIVACY != 0 {
            tlv(0x04, &[0; 16])
        } else {
            tlv(
                SEQUENCE,
                &[tlv(0x04, &usm.engine), tlv(0x04, context), pdu].concat(),
            )
        };
        tlv(
            SEQUENCE,
            &[integer(3), header, tlv(0x04, &params), data].concat(),
        )
    }

    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let length = content.len();
        if length < 0x80 {
            out.push(length as u8);
        } else {
            let bytes = length.to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
        out.extend_from_slice(content);
        out
    }

    /// A BER INTEGER in the fewest two's complement bytes.
    fn integer(n: i64) -> Vec<u8> {
        let bytes = n.to_be_bytes();
        let mut start = 0;
        while start < 7 {
            let (first, next) = (bytes[start], bytes[start + 1]);
            if (first == 0 && next & 0x80 == 0) || (first == 0xff && next & 0x80 != 0) {
                start += 1;
            } else {
                break;
            }
        }
        tlv(0x02, &bytes[start..])
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn integers_are_minimal() {
            assert_eq!(integer(0), vec![2, 1, 0]);
            assert_eq!(integer(127), vec![2, 1, 0x7f]);
            assert_eq!(integer(128), vec![2, 2, 0, 0x80]);
            assert_eq!(integer(-1), vec![2, 1, 0xff]);
            assert_eq!(integer(65_507), vec![2, 3, 0, 0xff, 0xe3]);
        }

        #[test]
        fn report_oids_name_their_reason() {
            let wrong_digest = [1, 3, 6, 1, 6, 3, 15, 1, 1, 5, 0];
            assert!(
                reason(&wrong_digest)
                    .unwrap()
                    .contains("usmStatsWrongDigests")
            );
            assert_eq!(reason(&[1, 3, 6, 1, 2, 1, 1, 3, 0]), None);
        }

        #[test]
        fn a_discovery_message_parses_back() {
            let usm = Usm {
                engine: vec![0x80, 0, 0x1f, 0x88],
                boots: 3,
                time: 300,
                ..Usm::default()
            };
            let bytes = message(7, REPORTABLE, &usm, b"");
            assert_eq!(Usm::of_report(&bytes), Some(usm));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_are_numeric_with_a_valid_start() {
        assert_eq!(parse_oid("1.3.6.1.2.1.1.3.0").unwrap().len(), 9);
        assert_eq!(parse_oid(".1.3.6").unwrap(), vec![1, 3, 6]);
        for bad in [
            "1.3.x",
            "",
            "1",
            "1..3",
            "3.1",
            "1.40.1",
            "1.3.4294967296",
            "sysUpTime.0",
        ] {
            let error = parse_oid(bad).unwrap_err();
            assert_eq!(error.state(), CheckState::Unknown, "{bad}");
        }
    }

    #[test]
    fn timeticks_are_seconds_and_numeric_text_is_a_number() {
        assert_eq!(
            Reading::from_value(&Value::Timeticks(12345)),
            Reading::Number(123.45, "s")
        );
        assert_eq!(Reading::Text(" 0.15".into()).number(), Some(0.15));
        assert_eq!(Reading::Text("Linux".into()).number(), None);
    }

    #[test]
    fn a_walk_stops_at_the_end_of_its_subtree() {
        let root = [1, 3, 6, 1, 2, 1, 1];
        let mut walk = Walk::default();
        let rows = vec![
            (vec![1, 3, 6, 1, 2, 1, 1, 1, 0], Reading::Text("x".into())),
            (vec![1, 3, 6, 1, 2, 1, 1, 3, 0], Reading::Number(5.0, "s")),
        ];
        assert_eq!(
            walk_step(&mut walk, &root, &root, rows),
            WalkStep::Continue(vec![1, 3, 6, 1, 2, 1, 1, 3, 0])
        );
        let past = vec![(vec![1, 3, 6, 1, 2, 1, 2, 1, 0], Reading::Number(1.0, ""))];
        assert_eq!(
            walk_step(&mut walk, &root, &[1, 3, 6, 1, 2, 1, 1, 3, 0], past),
            WalkStep::Done
        );
        assert_eq!(walk.rows.len(), 2);
        assert_eq!(walk.rows[1].0, vec![3, 0]);
        let output = walk_output("1.3.6.1.2.1.1", SnmpAggregate::Sum, &walk, 0.001).unwrap();
        assert_eq!(output.value, 5.0);
        assert!(
            output.perfdata.iter().any(|p| p.label == "3.0"),
            "{output:?}"
        );
    }

    #[test]
    fn a_walk_refuses_answers_that_do_not_advance() {
        let root = [1, 3, 6];
        let mut walk = Walk::default();
        let rows = vec![(vec![1, 3, 6, 1], Reading::Number(1.0, ""))];
        assert_eq!(
            walk_step(&mut walk, &root, &[1, 3, 6, 2], rows),
            WalkStep::NotIncreasing(vec![1, 3, 6, 1])
        );
    }

    #[test]
    fn text_without_expect_has_no_value_and_with_a_mismatch_is_critical() {
        let reading = Reading::Text("Linux vm".into());
        let output = get_output("1.3.6.1.2.1.1.1.0", &reading, None, 0.001);
        assert!(output.value.is_nan() && output.failure.is_none());
        let expect = Regex::new("^BSD").unwrap();
        let output = get_output("1.3.6.1.2.1.1.1.0", &reading, Some(&expect), 0.001);
        assert_eq!(output.failure.unwrap().0, CheckState::Critical);
    }
}
