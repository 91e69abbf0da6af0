//! Plans and zone bundles: what an agent runs, as data. The operator compiles a `ZoneBundle`
//! per zone (checks resolved, `$host$` left in); a satellite turns it into one `Plan` per
//! machine (`plan_for`), which the agent validates before it replaces the plan it runs.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use vedette_crds::CheckSpec;
use vedette_crds::template::CheckState;

use crate::process::PlannedElement;

/// The parameter every check may use for the machine it runs on (or the remote target).
pub const HOST_PARAMETER: &str = "$host$";

/// Identifies one check of one application: `namespace/ruleSet/rule`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "camelCase")]
pub struct CheckId {
    /// Namespace (application) of the rule set.
    pub namespace: String,
    /// Name of the rule set (or `zone/<zone>` for a zone's remote checks).
    pub rule_set: String,
    /// Name of the rule.
    pub rule: String,
}

/// What a zone's remote checks have for a rule set name: `zone/<zone>` (no namespace).
const REMOTE_RULE_SET_PREFIX: &str = "zone/";

impl CheckId {
    /// The id of zone `zone`'s remote check `rule`.
    pub fn remote(zone: &str, rule: &str) -> CheckId {
        CheckId {
            namespace: String::new(),
            rule_set: format!("{REMOTE_RULE_SET_PREFIX}{zone}"),
            rule: rule.to_owned(),
        }
    }

    /// The zone whose remote check this is, if it is one.
    pub fn remote_zone(&self) -> Option<&str> {
        self.namespace
            .is_empty()
            .then(|| self.rule_set.strip_prefix(REMOTE_RULE_SET_PREFIX))
            .flatten()
    }
}

impl fmt::Display for CheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.namespace, self.rule_set, self.rule)
    }
}

/// One check with every template parameter resolved (only `$host$` may remain).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlannedCheck {
    /// Which check this is.
    pub id: CheckId,
    /// The template it was made from, `namespace/name`.
    pub template: String,
    /// Labels of the rule set, carried by notifications and metrics.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The probe to run.
    pub check: CheckSpec,
    /// Warning range, Nagios syntax.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// Critical range, Nagios syntax.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<String>,
    /// CEL condition over the probe output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// The state a false condition yields.
    pub condition_state: CheckState,
    /// Seconds between runs while steady; for a check on cycles, `everyCycles` × the zone's
    /// `cycleSeconds`.
    pub interval_seconds: u32,
    /// Run on every N-th cycle of the zone (`AgentSettings::cycle_seconds`) instead of every
    /// `interval_seconds` from a per-host offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_cycles: Option<u32>,
    /// Seconds between runs while a non-OK state is soft.
    pub retry_interval_seconds: u32,
    /// Non-OK results before the state is hard.
    pub max_attempts: u32,
    /// Seconds a run may take.
    pub timeout_seconds: u32,
    /// The state a timeout yields.
    pub timeout_state: CheckState,
    /// Spool every result, not only state changes.
    #[serde(default)]
    pub spool_every_result: bool,
}

/// Agent settings of a zone.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AgentSettings {
    /// Seconds between keepalives.
    pub keepalive_interval_seconds: i64,
    /// Seconds the last good plan is kept while no valid new one arrives.
    pub plan_hold_seconds: i64,
    /// Largest spool size.
    pub spool_max_bytes: i64,
    /// Oldest spool entry kept, seconds.
    pub spool_max_age_seconds: i64,
    /// Length of the zone's poll cycle, for checks that run every N cycles; cycles start at
    /// Unix-time multiples of it.
    #[serde(default = "default_cycle_seconds")]
    pub cycle_seconds: u32,
}

fn default_cycle_seconds() -> u32 {
    vedette_crds::zone::AgentSpec::default().cycle_seconds
}

impl Default for AgentSettings {
    fn default() -> Self {
        let zone = vedette_crds::zone::AgentSpec::default();
        Self {
            keepalive_interval_seconds: zone.keepalive_interval_seconds,
            plan_hold_seconds: zone.plan_hold_seconds,
            spool_max_bytes: zone.spool_max_bytes,
            spool_max_age_seconds: zone.spool_max_age_seconds,
            cycle_seconds: zone.cycle_seconds,
        }
    }
}

/// An agentless check a zone's satellites run against one target.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct RemoteAssignment {
    /// Index into `ZoneBundle::checks`.
    pub check: u32,
    /// The host or endpoint, substituted for `$host$`.
    pub target: String,
}

/// Everything a zone's satellites need: the checks and which machine runs which.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ZoneBundle {
    /// The zone's name.
    pub zone: String,
    /// Agent settings of the zone.
    pub settings: AgentSettings,
    /// Every distinct check of the zone, sorted by id.
    pub checks: Vec<PlannedCheck>,
    /// For each machine (by name), the indices into `checks` it runs, ascending.
    pub machines: BTreeMap<String, Vec<u32>>,
    /// Remote checks and their targets, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote: Vec<RemoteAssignment>,
    /// Business-process elements the zone's machines evaluate, each with its `hosts`, sorted
    /// by process and element.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elements: Vec<PlannedElement>,
    /// The values of the Secrets the checks read, by `namespace/name/key`: never part of the
    /// bundle's JSON (its ConfigMaps, its hash); the satellite takes them from the zone's
    /// check-secrets Secret and [`plan_for`] gives each machine only its own.
    #[serde(skip)]
    pub secrets: SecretValues,
}

/// The checks one machine runs, as served to its agent.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The machine this plan is for.
    pub host: String,
    /// Its zone.
    pub zone: String,
    /// Agent settings.
    pub settings: AgentSettings,
    /// The checks, sorted by id, with `$host$` replaced by `host`.
    pub checks: Vec<PlannedCheck>,
    /// The business-process elements this machine evaluates (`hosts` left empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elements: Vec<PlannedElement>,
    /// The values of the Secrets this plan's checks read, and no others.
    #[serde(default, skip_serializing_if = "SecretValues::is_empty")]
    pub secrets: SecretValues,
}

/// Secret values by `namespace/name/key` ([`vedette_crds::check::CheckSecret::plan_key`]).
/// Its `Debug` shows only the keys, so that a logged plan never shows a value.
#[derive(Serialize, Deserialize, Clone, Default, PartialEq, Eq)]
#[serde(transparent)]
pub struct SecretValues(pub BTreeMap<String, String>);

impl SecretValues {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The values `checks` read, and no others; a reference without a value is left out
    /// (the agent reports that check UNKNOWN, naming the Secret).
    pub fn for_checks(&self, checks: &[PlannedCheck]) -> SecretValues {
        let picked = checks
            .iter()
            .flat_map(|check| check.check.secrets())
            .filter_map(|secret| {
                let key = secret.plan_key();
                let value = self.0.get(&key)?;
                Some((key, value.clone()))
            })
            .collect();
        SecretValues(picked)
    }
}

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Why a plan cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Two checks share an id.
    #[error("check {0} appears twice")]
    DuplicateCheck(String),
    /// A check does not name exactly one probe.
    #[error("check {0}: needs exactly one probe")]
    Probe(String),
    /// A check has an impossible timing.
    #[error("check {id}: {problem}")]
    Timing {
        /// The check.
        id: String,
        /// What is wrong.
        problem: String,
    },
    /// A probe that would fail on every run (a bad pattern, URL, port, …).
    #[error("check {id}: {problem}")]
    Spec {
        /// The check.
        id: String,
        /// What is wrong.
        problem: String,
    },
    /// A parameter was never substituted.
    #[error("check {id}: unresolved parameter in {field}: {value:?}")]
    Unresolved {
        /// The check.
        id: String,
        /// The field holding it.
        field: String,
        /// The text.
        value: String,
    },
    /// The plan is not for this machine.
    #[error("plan is for host {found:?}, this agent is {expected:?}")]
    WrongHost {
        /// Host in the plan.
        found: String,
        /// This agent's host.
        expected: String,
    },
    /// The bytes are not a plan.
    #[error("plan does not parse: {0}")]
    Parse(String),
}

impl Plan {
    /// Parses a plan for `host`, refusing it only when it cannot be read as a whole (see
    /// [`Plan::whole_plan_problems`]; a check with a problem is the agent's to refuse alone).
    pub fn from_json(bytes: &[u8], host: &str) -> Result<Self, Vec<PlanError>> {
        let plan: Plan =
            serde_json::from_slice(bytes).map_err(|e| vec![PlanError::Parse(e.to_string())])?;
        if plan.host != host {
            return Err(vec![PlanError::WrongHost {
                found: plan.host,
                expected: host.to_owned(),
            }]);
        }
        let problems = plan.whole_plan_problems();
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(plan)
    }

    /// Every problem of the plan: what compile must never publish. An agent refuses the whole
    /// plan only for [`Plan::whole_plan_problems`] and a check alone for
    /// [`Plan::check_problems`].
    pub fn validate(&self) -> Result<(), Vec<PlanError>> {
        let mut problems = self.whole_plan_problems();
        for check in &self.checks {
            problems.extend(self.check_problems(check));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// What makes the plan unreadable as a whole: two checks with one id (whose results could
    /// not be told apart).
    pub fn whole_plan_problems(&self) -> Vec<PlanError> {
        let mut seen = std::collections::BTreeSet::new();
        self.checks
            .iter()
            .map(|check| check.id.to_string())
            .filter(|id| !seen.insert(id.clone()))
            .map(PlanError::DuplicateCheck)
            .collect()
    }

    /// What stops `check` alone from running: no probe this release knows (a newer plan
    /// format), an impossible timing, a parameter never substituted.
    pub fn check_problems(&self, check: &PlannedCheck) -> Vec<PlanError> {
        check_problems(check, self.settings.cycle_seconds)
    }
}

/// What stops `check` alone from running in a zone whose cycles last `cycle_seconds`; see
/// [`Plan::check_problems`].
pub fn check_problems(check: &PlannedCheck, cycle_seconds: u32) -> Vec<PlanError> {
    let id = check.id.to_string();
    let mut problems = Vec::new();
    if check.check.probe_kind().is_none() {
        problems.push(PlanError::Probe(id.clone()));
    }
    problems.extend(timing_problems(check, cycle_seconds));
    if let Some(field) = unresolved_parameter(check) {
        problems.push(PlanError::Unresolved {
            id,
            field: field.0,
            value: field.1,
        });
    }
    problems
}

impl Plan {
    /// This plan with the values, among `all`, of the Secrets its checks read.
    pub fn with_secrets(mut self, all: &SecretValues) -> Plan {
        self.secrets = all.for_checks(&self.checks);
        self
    }

    /// A stable hash of the plan's content (hex SHA-256 of its JSON), used as its ETag.
    pub fn hash(&self) -> String {
        content_hash(self)
    }
}

/// Hex SHA-256 of a value's JSON; serde keeps struct field order and maps are sorted, so
/// equal values hash equally.
pub fn content_hash<T: Serialize>(value: &T) -> String {
    let bytes = serde_json::to_vec(value).expect("plan types always serialize");
    let digest = Sha256::digest(&bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn timing_problems(check: &PlannedCheck, cycle_seconds: u32) -> Vec<PlanError> {
    let id = check.id.to_string();
    let mut problems = Vec::new();
    let mut problem = |text: String| {
        problems.push(PlanError::Timing {
            id: id.clone(),
            problem: text,
        })
    };
    if check.interval_seconds == 0 || check.retry_interval_seconds == 0 {
        problem("intervals must be at least 1 second".to_owned());
    }
    if let Some(every) = check.every_cycles {
        let period = u64::from(every) * u64::from(cycle_seconds);
        if every == 0 || cycle_seconds == 0 || u64::from(check.interval_seconds) != period {
            problem(format!(
                "intervalSeconds {} must be everyCycles {every} × cycleSeconds {cycle_seconds}, \
                 both at least 1",
                check.interval_seconds
            ));
        }
    }
    if check.max_attempts == 0 {
        problem("maxAttempts must be at least 1".to_owned());
    }
    if check.timeout_seconds == 0 || check.timeout_seconds >= check.interval_seconds {
        problem(format!(
            "timeoutSeconds {} must be at least 1 and shorter than intervalSeconds {}",
            check.timeout_seconds, check.interval_seconds
        ));
    }
    problems
}

/// The first field of a check that still holds a `$name$` other than `$host$`.
fn unresolved_parameter(check: &PlannedCheck) -> Option<(String, String)> {
    let json = serde_json::to_value(&check.check).ok()?;
    let mut fields = vec![
        (
            "warning".to_owned(),
            check.warning.clone().unwrap_or_default(),
        ),
        (
            "critical".to_owned(),
            check.critical.clone().unwrap_or_default(),
        ),
    ];
    collect_strings("check", &json, &mut fields);
    fields.into_iter().find(|(_, value)| has_parameter(value))
}

fn collect_strings(path: &str, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::String(s) => out.push((path.to_owned(), s.clone())),
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_strings(&format!("{path}[{i}]"), item, out);
            }
        }
        serde_json::Value::Object(map) => {
            for (key, item) in map {
                collect_strings(&format!("{path}.{key}"), item, out);
            }
        }
        _ => {}
    }
}

/// Whether text holds a `$name$` parameter reference.
pub fn has_parameter(text: &str) -> bool {
    parameter_names(text).next().is_some()
}

/// The `name`s of every `$name$` in text, in order.
pub fn parameter_names(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        loop {
            let start = rest.find('$')?;
            let after = &rest[start + 1..];
            let end = after.find('$')?;
            let name = &after[..end];
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if valid {
                rest = &after[end + 1..];
                return Some(name);
            }
            rest = &after[end..];
        }
    })
}

/// The plan of one machine of a bundle, `$host$` replaced by its name; `None` when the
/// bundle does not know the machine.
pub fn plan_for(bundle: &ZoneBundle, host: &str) -> Option<Plan> {
    let indices = bundle.machines.get(host)?;
    let checks = indices
        .iter()
        .filter_map(|&i| bundle.checks.get(i as usize))
        .map(|check| with_host(check, host))
        .collect::<Vec<_>>();
    let elements = bundle
        .elements
        .iter()
        .filter(|element| element.hosts.iter().any(|h| h == host))
        .map(|element| PlannedElement {
            hosts: Vec::new(),
            ..element.clone()
        })
        .collect();
    Some(Plan {
        host: host.to_owned(),
        zone: bundle.zone.clone(),
        settings: bundle.settings.clone(),
        secrets: bundle.secrets.for_checks(&checks),
        checks,
        elements,
    })
}

/// A check with `$host$` replaced by `host` in every string of its probe and thresholds.
pub fn with_host(check: &PlannedCheck, host: &str) -> PlannedCheck {
    let mut json = serde_json::to_value(check).expect("plan types always serialize");
    replace_strings(&mut json, &|s: &str| s.replace(HOST_PARAMETER, host));
    serde_json::from_value(json).expect("replacing text keeps the shape")
}

fn replace_strings(value: &mut serde_json::Value, f: &dyn Fn(&str) -> String) {
    match value {
        serde_json::Value::String(s) => *s = f(s),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| replace_strings(v, f)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|v| replace_strings(v, f)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vedette_crds::check::{PortOrParameter, TcpProbe};

    fn tcp_check(rule: &str) -> PlannedCheck {
        PlannedCheck {
            id: CheckId {
                namespace: "shop".into(),
                rule_set: "web".into(),
                rule: rule.into(),
            },
            template: "shop/tcp".into(),
            labels: BTreeMap::new(),
            check: CheckSpec {
                tcp: Some(TcpProbe {
                    host: "$host$".into(),
                    port: PortOrParameter::Int(80),
                    send: None,
                    expect: None,
                    close: Default::default(),
                }),
                ..CheckSpec::default()
            },
            warning: Some("1".into()),
            critical: Some("2".into()),
            condition: None,
            condition_state: CheckState::Critical,
            interval_seconds: 30,
            every_cycles: None,
            retry_interval_seconds: 10,
            max_attempts: 3,
            timeout_seconds: 5,
            timeout_state: CheckState::Critical,
            spool_every_result: false,
        }
    }

    fn bundle() -> ZoneBundle {
        ZoneBundle {
            zone: "core".into(),
            settings: AgentSettings::default(),
            checks: vec![tcp_check("a"), tcp_check("b")],
            machines: BTreeMap::from([("web-1".into(), vec![0, 1]), ("web-2".into(), vec![1])]),
            remote: Vec::new(),
            elements: Vec::new(),
            secrets: Default::default(),
        }
    }

    #[test]
    fn a_machine_gets_its_checks_with_its_own_host() {
        let plan = plan_for(&bundle(), "web-2").expect("known machine");
        assert_eq!(plan.checks.len(), 1);
        assert_eq!(plan.checks[0].id.rule, "b");
        assert_eq!(plan.checks[0].check.tcp.as_ref().unwrap().host, "web-2");
        assert!(plan.validate().is_ok());
        assert!(plan_for(&bundle(), "unknown").is_none());
    }

    #[test]
    fn equal_plans_hash_equally_and_different_ones_do_not() {
        let a = plan_for(&bundle(), "web-1").unwrap();
        let b = plan_for(&bundle(), "web-1").unwrap();
        assert_eq!(a.hash(), b.hash());
        assert_ne!(a.hash(), plan_for(&bundle(), "web-2").unwrap().hash());
    }

    #[test]
    fn an_invalid_plan_names_every_problem() {
        let mut plan = plan_for(&bundle(), "web-1").unwrap();
        plan.checks[1] = plan.checks[0].clone();
        plan.checks[0].timeout_seconds = 30;
        plan.checks[0].warning = Some("$warn$".into());
        let problems = plan.validate().unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(
            text.contains(&"check shop/web/a appears twice".to_owned()),
            "{text:?}"
        );
        assert!(
            text.iter().any(|t| t.contains("timeoutSeconds 30")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.contains("unresolved parameter in warning")),
            "{text:?}"
        );
    }

    #[test]
    fn a_check_on_cycles_must_say_its_period_as_its_interval() {
        let mut plan = plan_for(&bundle(), "web-2").unwrap();
        plan.settings.cycle_seconds = 20;
        plan.checks[0].every_cycles = Some(3);
        plan.checks[0].interval_seconds = 60;
        assert!(plan.validate().is_ok());
        plan.checks[0].interval_seconds = 30;
        let text = plan.validate().unwrap_err()[0].to_string();
        assert!(
            text.contains("intervalSeconds 30 must be everyCycles 3 × cycleSeconds 20"),
            "{text}"
        );
    }

    #[test]
    fn a_plan_without_a_cycle_length_gets_the_default() {
        let mut json = serde_json::to_value(plan_for(&bundle(), "web-1").unwrap()).unwrap();
        json["settings"]
            .as_object_mut()
            .unwrap()
            .remove("cycleSeconds");
        let plan: Plan = serde_json::from_value(json).unwrap();
        assert_eq!(plan.settings.cycle_seconds, 60);
    }

    #[test]
    fn a_plan_for_another_host_or_garbage_is_refused() {
        let json = serde_json::to_vec(&plan_for(&bundle(), "web-1").unwrap()).unwrap();
        assert!(Plan::from_json(&json, "web-1").is_ok());
        assert!(matches!(
            Plan::from_json(&json, "web-2").unwrap_err()[0],
            PlanError::WrongHost { .. }
        ));
        assert!(matches!(
            Plan::from_json(b"{", "web-1").unwrap_err()[0],
            PlanError::Parse(_)
        ));
    }

    #[test]
    fn parameter_names_are_found_in_text() {
        let names: Vec<&str> = parameter_names("http://$host$:$port$/x$ $1$ $a b$").collect();
        assert_eq!(names, ["host", "port"]);
        assert!(!has_parameter("cost is $5"));
    }
}
