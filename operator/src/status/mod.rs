//! Every status the operator writes, built in one place as pure functions: from the compile
//! output (observedGeneration, conditions Ready / InvalidSpec / Degraded, counts) and from the
//! live state the masters merged ([`live`]: checks by state, stale, worst problems, agents).
//! Each status is its `vedette-crds` type (`MonitorZoneStatus`, `CheckTemplateStatus`,
//! `RuleSetStatus`, `BusinessProcessStatus`), so what is written is what the CRD declares.
//! A condition keeps its `lastTransitionTime` while its status and reason stay the same, so
//! an unchanged object renders a byte-identical status and causes no write.

pub mod live;
pub mod problem_events;

use std::collections::BTreeMap;

use serde_json::Value;
use vedette_crds::{
    BusinessProcessStatus, CheckTemplateStatus, Condition, MonitorZoneStatus,
    NotificationConfigStatus, RuleSetStatus,
};

use crate::compile::notify::KIND_NOTIFICATION_CONFIG;
use crate::compile::{Diagnostic, Input, ObjectRef, Output, Severity};
use live::Live;

/// The status one object should have.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredStatus {
    /// The object.
    pub object: ObjectRef,
    /// Its uid (what an Event on it names), when it has one.
    pub uid: Option<String>,
    /// The fields the operator owns, as they go into `status`.
    pub status: Value,
    /// The object's current status (the same fields, and whatever else it has).
    pub current: Value,
}

impl DesiredStatus {
    /// Whether every field the operator owns already has the desired value.
    pub fn unchanged(&self) -> bool {
        let Value::Object(fields) = &self.status else {
            return false;
        };
        fields
            .iter()
            .all(|(key, value)| self.current.get(key).unwrap_or(&Value::Null) == value)
    }
}

/// A problem that is not in the spec, such as satellites that are not ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// CamelCase reason.
    pub reason: String,
    /// What a person should know.
    pub message: String,
}

/// Ready and desired satellites of a zone.
pub type Satellites = (i32, i32);

/// The status of every object of `current`. `reported` holds the diagnostics of the
/// current specs, `served` the counts of what is published, `satellites` the ready/desired
/// replicas of a zone's Deployment, `live` what the satellites reported (checks by state,
/// problems, agents), `now` the RFC 3339 time of new transitions.
pub fn desired(
    current: &Input,
    reported: &Output,
    served: &Output,
    satellites: &dyn Fn(&vedette_crds::MonitorZone) -> Satellites,
    unpublished: &BTreeMap<String, Problem>,
    live: &Live,
    now: &str,
) -> Vec<DesiredStatus> {
    let mut all = Vec::new();
    for zone in &current.zones {
        let name = zone.metadata.name.clone().unwrap_or_default();
        let object = ObjectRef::zone(&name);
        let summary = served.zones.get(&name).cloned().unwrap_or_default();
        let (ready, wanted) = satellites(zone);
        let mut extra: Vec<Problem> = unpublished.get(&name).cloned().into_iter().collect();
        extra.extend((ready < wanted).then(|| Problem {
            reason: "SatellitesUnavailable".to_owned(),
            message: format!("{ready} of {wanted} satellites ready"),
        }));
        let previous = zone.status.as_ref().map(|s| s.conditions.as_slice());
        let agents = live.zones.get(&name).cloned().unwrap_or_default();
        let status = MonitorZoneStatus {
            observed_generation: zone.metadata.generation,
            conditions: conditions(&reported.diagnostics, &object, &extra, previous, now),
            satellites: Some(format!("{ready}/{wanted}")),
            machines: summary.machines,
            agents_connected: agents.connected,
            agents_stale: agents.stale,
            agents_on_held_plan: agents.on_held_plan,
            checks: summary.checks,
            remote_checks_by_state: agents.remote,
            remote_problems: agents.remote_problems,
        };
        all.push(entry(object, &zone.metadata.uid, &status, &zone.status));
    }
    for template in &current.templates {
        let object = key(&template.metadata, ObjectRef::template);
        let summary = served
            .templates
            .get(&keyed(&object))
            .cloned()
            .unwrap_or_default();
        let previous = template.status.as_ref().map(|s| s.conditions.as_slice());
        let status = CheckTemplateStatus {
            observed_generation: template.metadata.generation,
            conditions: conditions(&reported.diagnostics, &object, &[], previous, now),
            probe: summary.probe,
            rule_sets: summary.rule_sets,
        };
        all.push(entry(
            object,
            &template.metadata.uid,
            &status,
            &template.status,
        ));
    }
    for rule_set in &current.rule_sets {
        let object = key(&rule_set.metadata, ObjectRef::rule_set);
        let summary = served
            .rule_sets
            .get(&keyed(&object))
            .cloned()
            .unwrap_or_default();
        let previous = rule_set.status.as_ref().map(|s| s.conditions.as_slice());
        let results = live
            .rule_sets
            .get(&(object.namespace.clone(), object.name.clone()))
            .cloned()
            .unwrap_or_default();
        let status = RuleSetStatus {
            observed_generation: rule_set.metadata.generation,
            conditions: conditions(&reported.diagnostics, &object, &[], previous, now),
            machines: summary.machines,
            checks: summary.checks,
            checks_by_state: results.counts,
            stale: results.stale,
            problems: results.problems,
        };
        all.push(entry(
            object,
            &rule_set.metadata.uid,
            &status,
            &rule_set.status,
        ));
    }
    for process in &current.processes {
        let object = key(&process.metadata, ObjectRef::process);
        let previous = process.status.as_ref().map(|s| s.conditions.as_slice());
        let runtime = live
            .processes
            .get(&(object.namespace.clone(), object.name.clone()))
            .cloned()
            .unwrap_or_default();
        let mut conditions = conditions(&reported.diagnostics, &object, &[], previous, now);
        let (evaluating, reason, message) = match &runtime.not_evaluating {
            None => (true, "Evaluated".to_owned(), String::new()),
            Some(why) => (false, why.reason.clone(), why.message.clone()),
        };
        conditions.push(condition(
            "Evaluating",
            evaluating,
            reason,
            message,
            previous.unwrap_or_default(),
            now,
        ));
        let status = BusinessProcessStatus {
            observed_generation: process.metadata.generation,
            conditions,
            element_count: u32::try_from(process.spec.elements.len()).unwrap_or(u32::MAX),
            running: runtime.running,
            completed: runtime.completed,
            failed: runtime.failed,
            violations: runtime.violations,
            elements: runtime.elements,
            current_violations: runtime.current_violations,
        };
        all.push(entry(
            object,
            &process.metadata.uid,
            &status,
            &process.status,
        ));
    }
    for config in &current.notifications {
        let object = key(&config.metadata, |namespace, name| {
            ObjectRef::new(KIND_NOTIFICATION_CONFIG, namespace, name)
        });
        let summary = served
            .notifications
            .configs
            .get(&keyed(&object))
            .copied()
            .unwrap_or_default();
        let previous = config.status.as_ref().map(|s| s.conditions.as_slice());
        let status = NotificationConfigStatus {
            observed_generation: config.metadata.generation,
            conditions: conditions(&reported.diagnostics, &object, &[], previous, now),
            receivers: summary.receivers,
            routes: summary.routes,
        };
        all.push(entry(object, &config.metadata.uid, &status, &config.status));
    }
    all
}

fn key(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    make: fn(&str, &str) -> ObjectRef,
) -> ObjectRef {
    make(
        meta.namespace.as_deref().unwrap_or("default"),
        meta.name.as_deref().unwrap_or_default(),
    )
}

/// `namespace/name`, the key of compile's summaries.
fn keyed(object: &ObjectRef) -> String {
    format!("{}/{}", object.namespace, object.name)
}

fn entry<S: serde::Serialize>(
    object: ObjectRef,
    uid: &Option<String>,
    status: &S,
    current: &Option<S>,
) -> DesiredStatus {
    DesiredStatus {
        object,
        uid: uid.clone(),
        status: serde_json::to_value(status).unwrap_or(Value::Null),
        current: current
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok())
            .unwrap_or(Value::Null),
    }
}

/// Ready, InvalidSpec and Degraded for `object`: errors make it invalid and not ready,
/// warnings (and `extra`) degraded. Reason: the first diagnostic's; message: all of them.
pub fn conditions(
    diagnostics: &[Diagnostic],
    object: &ObjectRef,
    extra: &[Problem],
    previous: Option<&[Condition]>,
    now: &str,
) -> Vec<Condition> {
    let of_object = |severity| -> Vec<Problem> {
        diagnostics
            .iter()
            .filter(|d| &d.object == object && d.severity == severity)
            .map(|d| Problem {
                reason: d.reason.to_string(),
                message: d.message.clone(),
            })
            .collect()
    };
    let errors = of_object(Severity::Error);
    let mut warnings = of_object(Severity::Warning);
    warnings.extend(extra.iter().cloned());
    let previous = previous.unwrap_or_default();
    let make = |type_: &str, status: bool, problems: &[Problem], fine: &str| {
        let (reason, message) = match problems.first() {
            Some(first) => (first.reason.clone(), joined(problems)),
            None => (fine.to_owned(), String::new()),
        };
        condition(type_, status, reason, message, previous, now)
    };
    vec![
        make("Ready", errors.is_empty(), &errors, "Compiled"),
        make("InvalidSpec", !errors.is_empty(), &errors, "Valid"),
        make("Degraded", !warnings.is_empty(), &warnings, "AsExpected"),
    ]
}

fn joined(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| p.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

fn condition(
    type_: &str,
    status: bool,
    reason: String,
    message: String,
    previous: &[Condition],
    now: &str,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_owned();
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status && c.reason == reason)
        .map_or_else(|| now.to_owned(), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.to_owned(),
        status,
        reason,
        message,
        last_transition_time,
        observed_generation: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::Reason;
    use serde_json::json;

    fn diagnostic(severity: Severity, reason: Reason, message: &str) -> Diagnostic {
        Diagnostic {
            object: ObjectRef::rule_set("web", "checks"),
            severity,
            reason,
            message: message.to_owned(),
        }
    }

    #[test]
    fn an_error_makes_the_object_invalid_with_its_reason_and_message() {
        let message =
            "rule web: template web/http-check: parameter port: expected int 1–65535, got \"abc\"";
        let diagnostics = [diagnostic(
            Severity::Error,
            Reason::InvalidParameter,
            message,
        )];
        let found = conditions(
            &diagnostics,
            &ObjectRef::rule_set("web", "checks"),
            &[],
            None,
            "t1",
        );
        let invalid = found.iter().find(|c| c.type_ == "InvalidSpec").unwrap();
        assert_eq!(
            (
                invalid.status.as_str(),
                invalid.reason.as_str(),
                invalid.message.as_str()
            ),
            ("True", "InvalidParameter", message)
        );
        let ready = found.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "InvalidParameter")
        );
    }

    #[test]
    fn diagnostics_of_other_objects_do_not_count() {
        let diagnostics = [diagnostic(Severity::Error, Reason::InvalidParameter, "x")];
        let found = conditions(
            &diagnostics,
            &ObjectRef::rule_set("web", "other"),
            &[],
            None,
            "t1",
        );
        assert!(
            found
                .iter()
                .all(|c| (c.type_ == "Ready") == (c.status == "True"))
        );
    }

    #[test]
    fn the_transition_time_stays_while_status_and_reason_stay() {
        let first = conditions(&[], &ObjectRef::zone("core"), &[], None, "t1");
        let again = conditions(&[], &ObjectRef::zone("core"), &[], Some(&first), "t2");
        assert_eq!(first, again);
        let degraded = Problem {
            reason: "SatellitesUnavailable".to_owned(),
            message: "0 of 2 satellites ready".to_owned(),
        };
        let changed = conditions(
            &[],
            &ObjectRef::zone("core"),
            &[degraded],
            Some(&first),
            "t3",
        );
        let times: Vec<&str> = changed
            .iter()
            .map(|c| c.last_transition_time.as_str())
            .collect();
        assert_eq!(times, ["t1", "t1", "t3"]);
    }

    #[test]
    fn a_status_equal_in_the_owned_fields_is_unchanged() {
        let status = DesiredStatus {
            object: ObjectRef::zone("core"),
            uid: None,
            status: json!({"machines": 2, "checks": 3}),
            current: json!({"machines": 2, "checks": 3, "agentsConnected": 5}),
        };
        assert!(status.unchanged());
        let other = DesiredStatus {
            current: json!({"machines": 1, "checks": 3}),
            ..status
        };
        assert!(!other.unchanged());
    }
}
