//! `CheckTemplate`: a reusable, typed rule. Its parameters are declared with types, defaults
//! and bounds; rule sets instantiate it with values for them (`$param$`).

#[cfg(feature = "kube")]
#[cfg(feature = "kube")]
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::state::CheckState;

use crate::check::{CheckSpec, ParameterValue};
use crate::common::Condition;

/// Nagios threshold range syntax: `10`, `10:`, `~:10`, `10:20`, `@10:20`; either bound may be a
/// template parameter (`$warn$`, `$min$:`).
pub const THRESHOLD_PATTERN: &str = r"^@?((~|[-+]?[0-9]+(\.[0-9]+)?|\$[A-Za-z_][A-Za-z0-9_]*\$):)?([-+]?[0-9]+(\.[0-9]+)?|\$[A-Za-z_][A-Za-z0-9_]*\$)?$";

/// A reusable check with typed parameters.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[cfg_attr(feature = "kube", derive(CustomResource))]
#[cfg_attr(
    feature = "kube",
    kube(
        group = "vedette.dev",
        version = "v1alpha1",
        kind = "CheckTemplate",
        namespaced,
        status = "CheckTemplateStatus",
        shortname = "ct",
        category = "vedette",
        printcolumn = r#"{"name":"Probe","type":"string","jsonPath":".status.probe"}"#,
        printcolumn = r#"{"name":"Interval","type":"integer","jsonPath":".spec.intervalSeconds","description":"seconds between runs; empty means 60, or the check runs on cycles"}"#,
        printcolumn = r#"{"name":"Every Cycles","type":"integer","jsonPath":".spec.everyCycles","description":"the check runs on every N-th cycle of its zone"}"#,
        printcolumn = r#"{"name":"Used By","type":"integer","jsonPath":".status.ruleSets","description":"rule sets that instantiate this template"}"#,
        printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
        printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.intervalSeconds) || !has(self.everyCycles)",
        "message": "intervalSeconds and everyCycles are mutually exclusive: a check runs on its own interval or on its zone's cycles"
    },
    {
        "rule": "has(self.everyCycles) || self.timeoutSeconds < (has(self.intervalSeconds) ? self.intervalSeconds : 60)",
        "message": "timeoutSeconds must be shorter than intervalSeconds"
    },
    {
        "rule": "!has(self.retryIntervalSeconds) || self.timeoutSeconds < self.retryIntervalSeconds",
        "message": "timeoutSeconds must be shorter than retryIntervalSeconds"
    }
]))]
pub struct CheckTemplateSpec {
    /// What the check is for, shown in dashboards and notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// Typed parameters that rule sets give values to, used as `$name$` in the check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub parameters: Vec<ParameterSpec>,
    /// The probe or plugin this check runs.
    pub check: CheckSpec,
    /// Range (Nagios syntax) outside of which the value is WARNING, e.g. `80` or `@0:10`. A
    /// plugin's value is its first performance datum; thresholds can only make the state the
    /// plugin gave worse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = THRESHOLD_PATTERN))]
    pub warning: Option<String>,
    /// Range (Nagios syntax) outside of which the value is CRITICAL, e.g. `90` or `~:5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = THRESHOLD_PATTERN))]
    pub critical: Option<String>,
    /// A CEL expression over the probe's output (`value`, `perfdata`, `output`) that must be
    /// true for the check to be OK; when false the check takes `conditionState`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub condition: Option<String>,
    /// The state a false `condition` yields; CRITICAL by default.
    #[serde(default = "critical_state")]
    pub condition_state: CheckState,
    /// Seconds between runs while the state is steady; 60 when neither this nor `everyCycles`
    /// is given. Each host runs the check at its own fixed offset within the interval (a hash
    /// of host and check), so many hosts do not run it at once. Mutually exclusive with
    /// `everyCycles`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub interval_seconds: Option<u32>,
    /// Run the check on every N-th poll cycle of its zone (`MonitorZone`
    /// `spec.agents.cycleSeconds`) instead of on its own interval: 1 runs it every cycle, 5
    /// on every fifth. Cycles start at Unix-time multiples of `cycleSeconds`, so all agents of
    /// a zone count the same cycles. Each host runs the check in the cycles whose number
    /// modulo N is a hash of host and check, so N-cycle checks are spread over the N cycles,
    /// at a fixed offset within the cycle. A cycle is skipped, not caught up, when the check
    /// is still running or the agent was busy. While a non-OK state is soft, retries follow
    /// `retryIntervalSeconds` when it is given, the cycles otherwise. After an agent starts
    /// or its plan changes, the check first runs in its next cycle. `timeoutSeconds` must be
    /// shorter than N × `cycleSeconds` in every zone that runs it (compile reports it on the
    /// rule set otherwise). Mutually exclusive with `intervalSeconds`; a rule set's rule may
    /// override either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1440))]
    pub every_cycles: Option<u32>,
    /// Seconds between runs while a non-OK state is still soft; the regular schedule (the
    /// interval, or the cycles) by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub retry_interval_seconds: Option<u32>,
    /// Consecutive non-OK results before the state becomes hard (and is notified).
    #[serde(default = "default_max_attempts")]
    #[schemars(range(min = 1, max = 100))]
    pub max_attempts: u32,
    /// Seconds a run may take before it is killed.
    #[serde(default = "default_timeout_seconds")]
    #[schemars(range(min = 1, max = 3600))]
    pub timeout_seconds: u32,
    /// The state a timeout yields; CRITICAL by default.
    #[serde(default = "critical_state")]
    pub timeout_state: CheckState,
    /// Send every result upstream, not only state changes (for checks whose history matters).
    #[serde(default)]
    pub spool_every_result: bool,
}

fn critical_state() -> CheckState {
    CheckState::Critical
}

/// Seconds between runs of a check that gives neither `intervalSeconds` nor `everyCycles`.
pub const DEFAULT_INTERVAL_SECONDS: u32 = 60;

fn default_max_attempts() -> u32 {
    3
}

fn default_timeout_seconds() -> u32 {
    10
}

/// The type of a template parameter.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ParameterType {
    /// Any text.
    String,
    /// A whole number.
    Int,
    /// A number.
    Float,
    /// `true` or `false`.
    Bool,
    /// A Go-style duration such as `90s`, `5m` or `1h30m`.
    Duration,
}

/// One typed template parameter.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!(has(self.minimum) || has(self.maximum)) || self.type in ['int', 'float', 'duration']",
        "message": "minimum and maximum apply only to int, float and duration parameters"
    },
    {
        "rule": "!has(self.minimum) || !has(self.maximum) || self.minimum <= self.maximum",
        "message": "minimum must not exceed maximum"
    }
]))]
pub struct ParameterSpec {
    /// Name, used as `$name$` in the check.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$")
    )]
    pub name: String,
    /// Type the value must have.
    #[serde(rename = "type")]
    pub type_: ParameterType,
    /// Value used when a rule gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<ParameterValue>,
    /// A rule must give a value (a default is then never used; compile reports it).
    #[serde(default)]
    pub required: bool,
    /// What the parameter means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// Smallest allowed value (for durations: seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<f64>,
    /// Largest allowed value (for durations: seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<f64>,
    /// The only values allowed, written as text.
    #[serde(default, rename = "enum", skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub allowed: Vec<String>,
}

/// What the operator observed about a CheckTemplate.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckTemplateStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `InvalidSpec`, `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The probe the check runs, such as `http` or `exec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
    /// Rule sets that instantiate this template.
    #[serde(default)]
    pub rule_sets: u32,
}
