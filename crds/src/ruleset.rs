//! `RuleSet`: template instantiations joined with a machine set. Every selected machine runs
//! every rule; rule sets of different namespaces (applications) never collide.

use std::collections::BTreeMap;

#[cfg(feature = "kube")]
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::check::ParameterValue;
use crate::common::{Condition, Labels, MachineSelector, TemplateReference};
use crate::template::CheckState;

/// Rules × machines.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[cfg_attr(feature = "kube", derive(CustomResource))]
#[cfg_attr(
    feature = "kube",
    kube(
        group = "vedette.dev",
        version = "v1alpha1",
        kind = "RuleSet",
        namespaced,
        status = "RuleSetStatus",
        shortname = "rs",
        category = "vedette",
        printcolumn = r#"{"name":"Machines","type":"integer","jsonPath":".status.machines"}"#,
        printcolumn = r#"{"name":"Checks","type":"integer","jsonPath":".status.checks"}"#,
        printcolumn = r#"{"name":"OK","type":"integer","jsonPath":".status.checksByState.ok"}"#,
        printcolumn = r#"{"name":"Warning","type":"integer","jsonPath":".status.checksByState.warning"}"#,
        printcolumn = r#"{"name":"Critical","type":"integer","jsonPath":".status.checksByState.critical"}"#,
        printcolumn = r#"{"name":"Stale","type":"integer","jsonPath":".status.stale"}"#,
        printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
        printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleSetSpec {
    /// The rules every selected machine runs; names are unique within the rule set.
    #[schemars(length(min = 1, max = 256))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub rules: Vec<Rule>,
    /// Which machines run the rules.
    pub machines: MachineSelector,
    /// Labels that every notification and metric of these checks carries (team, severity…).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    pub labels: Labels,
}

/// One instantiation of a CheckTemplate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.intervalSeconds) || !has(self.everyCycles)",
    "message": "intervalSeconds and everyCycles are mutually exclusive: a rule runs its check on its own interval or on its zone's cycles"
}]))]
pub struct Rule {
    /// Name of the check on each machine, unique within the rule set.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// The CheckTemplate to instantiate.
    pub template: TemplateReference,
    /// Values for the template's parameters, by parameter name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "crate::common::parameter_map_schema")]
    pub parameters: BTreeMap<String, ParameterValue>,
    /// Overrides the template's schedule for this rule: the check runs every this many
    /// seconds, even when the template says `everyCycles`. Mutually exclusive with
    /// `everyCycles`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub interval_seconds: Option<u32>,
    /// Overrides the template's schedule for this rule: the check runs on every N-th poll
    /// cycle of the machine's zone (see the CheckTemplate's `everyCycles`), even when the
    /// template says `intervalSeconds`. The template's `timeoutSeconds` must be shorter than
    /// N × the zone's `cycleSeconds`. Mutually exclusive with `intervalSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1440))]
    pub every_cycles: Option<u32>,
    /// Receivers (of a NotificationConfig in this namespace) that get this rule's hard
    /// problems and recoveries, besides those its namespace's routes choose.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 63)))]
    pub notify: Vec<String>,
}

/// Checks counted by their current state: in a RuleSet's status, and on the wire (an agent's
/// keepalive, a satellite's summaries).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StateCounts {
    /// Checks that are OK.
    #[serde(default)]
    pub ok: u32,
    /// Checks that are WARNING.
    #[serde(default)]
    pub warning: u32,
    /// Checks that are CRITICAL.
    #[serde(default)]
    pub critical: u32,
    /// Checks that are UNKNOWN.
    #[serde(default)]
    pub unknown: u32,
    /// Checks that have not reported yet.
    #[serde(default)]
    pub pending: u32,
}

impl StateCounts {
    /// Counts one more check in `state` (`None`: pending).
    pub fn add(&mut self, state: Option<CheckState>) {
        match state {
            Some(CheckState::Ok) => self.ok += 1,
            Some(CheckState::Warning) => self.warning += 1,
            Some(CheckState::Critical) => self.critical += 1,
            Some(CheckState::Unknown) => self.unknown += 1,
            None => self.pending += 1,
        }
    }
}

/// One current problem, among the worst of a rule set.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// The machine the check runs on.
    pub host: String,
    /// The rule name.
    pub check: String,
    /// Its hard state.
    pub state: CheckState,
    /// The first line of its output.
    #[serde(default)]
    pub output: String,
    /// Since when it is in this state, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

/// What the operator observed about a RuleSet. Aggregated: never a field per check.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuleSetStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `InvalidSpec`, `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Machines the machine set selects.
    #[serde(default)]
    pub machines: u32,
    /// Checks in all (rules × machines).
    #[serde(default)]
    pub checks: u32,
    /// Checks by current state.
    #[serde(default)]
    pub checks_by_state: StateCounts,
    /// Checks whose agent stopped reporting.
    #[serde(default)]
    pub stale: u32,
    /// The worst current problems, at most ten, worst first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub problems: Vec<Problem>,
}
