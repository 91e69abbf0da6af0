//! `BusinessProcess`: elements that move Standby → Running → Completed or Failed → Standby,
//! driven by per-state clauses, with dependencies between elements (seed 003's BPM2).

#[cfg(feature = "kube")]
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Condition, MachineSelector};
use crate::template::CheckState;

/// A business process made of elements and their dependencies.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[cfg_attr(feature = "kube", derive(CustomResource))]
#[cfg_attr(
    feature = "kube",
    kube(
        group = "vedette.dev",
        version = "v1alpha1",
        kind = "BusinessProcess",
        namespaced,
        status = "BusinessProcessStatus",
        shortname = "bp",
        category = "vedette",
        printcolumn = r#"{"name":"Elements","type":"integer","jsonPath":".status.elementCount"}"#,
        printcolumn = r#"{"name":"Running","type":"integer","jsonPath":".status.running"}"#,
        printcolumn = r#"{"name":"Completed","type":"integer","jsonPath":".status.completed"}"#,
        printcolumn = r#"{"name":"Failed","type":"integer","jsonPath":".status.failed"}"#,
        printcolumn = r#"{"name":"Violations","type":"integer","jsonPath":".status.violations"}"#,
        printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
        printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.elements.all(e, !has(e.dependsOn) || e.dependsOn.all(d, self.elements.exists(o, o.name == d)))",
        "message": "every dependsOn entry must name an element of this process"
    },
    {
        "rule": "self.elements.all(e, !has(e.dependsOn) || !(e.name in e.dependsOn))",
        "message": "an element cannot depend on itself"
    }
]))]
pub struct BusinessProcessSpec {
    /// What the process is, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// When the process runs, as a cron expression (minute hour day-of-month month
    /// day-of-week), e.g. `0 14 * * *`; informational for views and reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 9, max = 128))]
    pub schedule: Option<String>,
    /// IANA time zone of the schedule and of every time window, e.g. `America/New_York`.
    #[serde(default = "default_time_zone")]
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: String,
    /// The process elements; names are unique.
    #[schemars(length(min = 1, max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub elements: Vec<ProcessElement>,
}

fn default_time_zone() -> String {
    "UTC".to_owned()
}

/// One element of a process and the clauses that move it between states.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProcessElement {
    /// Name, unique within the process.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Where the element runs: the machines whose agents evaluate its clauses.
    pub runs_on: MachineSelector,
    /// Enters Standby (from Completed or Failed).
    pub standby: Clause,
    /// Enters Running (from Standby).
    pub running: Clause,
    /// Enters Completed (from Running).
    pub completed: Clause,
    /// Enter Failed (from Running); each clause is a separate failure path.
    #[schemars(length(min = 1, max = 16))]
    pub failed: Vec<Clause>,
    /// Elements that must be Completed before this one may run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 63)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub depends_on: Vec<String>,
    /// When the element must be Completed: not Completed by then is a `Late` violation,
    /// raised at the deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete_by: Option<Deadline>,
}

/// A deadline: a time of day in the process's time zone, or a time after the element's
/// dependencies completed. Exactly one of `time` and `afterDependenciesSeconds`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.time) != has(self.afterDependenciesSeconds)",
    "message": "a deadline is either a time of day or a number of seconds after the dependencies completed"
}, {
    "rule": "!has(self.days) || has(self.time)",
    "message": "days apply to a time-of-day deadline only"
}]))]
pub struct Deadline {
    /// Time of day, `HH:MM` (24 hours), in the process's time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 5, max = 5),
        regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    )]
    pub time: Option<String>,
    /// Days of the week the time applies on (`Mon` … `Sun`); every day when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 7),
        inner(regex(pattern = r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun)$"))
    )]
    pub days: Vec<String>,
    /// Seconds after the last of the element's dependencies completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 604800))]
    pub after_dependencies_seconds: Option<u32>,
}

/// A transition: when every condition given holds, the element enters the clause's state.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Clause {
    /// What must hold; every condition given must be true at once.
    pub when: ClauseConditions,
    /// Stored in the event history with the transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub message: Option<String>,
    /// Notification routes (receivers) told of the transition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 253)))]
    pub notify: Vec<String>,
}

/// Conditions of a clause. All that are given must hold together.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.timeWindow) || has(self.processRunning) || has(self.fileExists) || has(self.checkState) || has(self.logMatch) || has(self.elementState) || has(self.expression)",
    "message": "a clause needs at least one condition"
}]))]
pub struct ClauseConditions {
    /// The local time (in the process time zone) is within this window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_window: Option<TimeWindow>,
    /// A process with this name (`comm`) runs on the element's machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub process_running: Option<String>,
    /// This file exists on the element's machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub file_exists: Option<String>,
    /// A check of a rule set is in one of the given states.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_state: Option<CheckStateCondition>,
    /// A line matching a pattern appeared in a log file since the element last changed state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_match: Option<LogMatch>,
    /// Another element of this process is in a given state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub element_state: Option<ElementStateCondition>,
    /// A CEL expression for anything the fields above cannot say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub expression: Option<String>,
}

/// A daily window of local time, `HH:MM` to `HH:MM`; a window may cross midnight.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.start != self.end",
    "message": "a time window must not start and end at the same minute"
}]))]
pub struct TimeWindow {
    /// Start, inclusive, `HH:MM` (24 hours).
    #[schemars(
        length(min = 5, max = 5),
        regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    )]
    pub start: String,
    /// End, exclusive, `HH:MM` (24 hours).
    #[schemars(
        length(min = 5, max = 5),
        regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    )]
    pub end: String,
    /// Days of the week the window applies on (`Mon` … `Sun`); every day when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 7),
        inner(regex(pattern = r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun)$"))
    )]
    pub days: Vec<String>,
}

/// A check's state as a condition.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckStateCondition {
    /// The rule set (in this namespace).
    #[schemars(length(min = 1, max = 253))]
    pub rule_set: String,
    /// The rule name within it.
    #[schemars(length(min = 1, max = 63))]
    pub rule: String,
    /// States that satisfy the condition.
    #[schemars(length(min = 1, max = 4))]
    pub states: Vec<CheckState>,
}

/// A log-file match as a condition.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogMatch {
    /// Absolute path of the log file.
    #[schemars(length(min = 1, max = 4096))]
    pub path: String,
    /// Regular expression a line must match.
    #[schemars(length(min = 1, max = 1024))]
    pub pattern: String,
}

/// States of a process element.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub enum ElementState {
    /// Waiting for its next run.
    Standby,
    /// Running now.
    Running,
    /// Finished successfully.
    Completed,
    /// Finished unsuccessfully.
    Failed,
}

impl ElementState {
    /// The state machine, in one place: Standby → Running → Completed or Failed → Standby.
    /// Whether an element in `self` may enter `next`.
    pub fn may_enter(self, next: ElementState) -> bool {
        use ElementState::*;
        matches!(
            (self, next),
            (Standby, Running) | (Running, Completed | Failed) | (Completed | Failed, Standby)
        )
    }

    /// The name as the CRD spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ElementState::Standby => "Standby",
            ElementState::Running => "Running",
            ElementState::Completed => "Completed",
            ElementState::Failed => "Failed",
        }
    }
}

impl std::fmt::Display for ElementState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Another element's state as a condition.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ElementStateCondition {
    /// The element's name.
    #[schemars(length(min = 1, max = 63))]
    pub element: String,
    /// The state it must be in.
    pub state: ElementState,
}

/// The current state of one element.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ElementStatus {
    /// The element's name.
    pub name: String,
    /// Its state.
    pub state: ElementState,
    /// Since when, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// The message of the transition into this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The clause that fired (`running`, `failed[1]`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clause: Option<String>,
    /// The machine whose agent reported the transition (`masters` when the masters evaluated
    /// the clause).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// The states of the elements it depends on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub dependencies: Vec<DependencyStatus>,
    /// The failed element (a dependency, direct or not) that blocks this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_by: Option<String>,
    /// The last finished run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<RunStatus>,
    /// Median duration of the last runs (up to 20), seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_run_seconds: Option<u64>,
}

/// A dependency's state.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DependencyStatus {
    /// The element depended on.
    pub name: String,
    /// Its state.
    pub state: ElementState,
}

/// One run of an element: from entering Running to Completed or Failed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunStatus {
    /// Entered Running, RFC 3339.
    pub started: String,
    /// Entered Completed or Failed, RFC 3339.
    pub ended: String,
    /// Duration, seconds.
    pub seconds: u64,
    /// `Completed` or `Failed`.
    pub outcome: ElementState,
}

/// What kind of violation.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ViolationKind {
    /// The element entered Running before an element it depends on had Completed.
    Early,
    /// The element was not Completed by its deadline.
    Late,
}

/// A violation in the current run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ViolationStatus {
    /// `Early` or `Late`.
    pub kind: ViolationKind,
    /// The element that violated.
    pub element: String,
    /// For `Early`: the dependency that had not Completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependency: Option<String>,
    /// When, RFC 3339.
    pub at: String,
    /// For people.
    pub message: String,
}

/// What the masters observed about a process.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BusinessProcessStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `InvalidSpec` (e.g. a dependency cycle), `Degraded`, and `Evaluating`
    /// (whether the masters evaluate the process: machines selected, their agents fresh).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Elements in the process.
    #[serde(default)]
    pub element_count: u32,
    /// Elements Running.
    #[serde(default)]
    pub running: u32,
    /// Elements Completed.
    #[serde(default)]
    pub completed: u32,
    /// Elements Failed.
    #[serde(default)]
    pub failed: u32,
    /// Dependency violations in the current run: elements that ran before what they depend on.
    #[serde(default)]
    pub violations: u32,
    /// Each element's state, in spec order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub elements: Vec<ElementStatus>,
    /// The violations of the current run (the first 16), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub current_violations: Vec<ViolationStatus>,
}
