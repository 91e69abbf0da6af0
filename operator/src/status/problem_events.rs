//! Which Kubernetes Events a status change raises (F20): a compile problem becomes a `Warning`
//! on its object the first time it appears or when it changes, and its end a `Normal`
//! `Compiled`. The rule reads only the conditions being written and the ones the object has,
//! so an Event goes with a status write: at most one set per object per status interval
//! (`reconcile::status_writer`) and none while nothing changes.

use serde_json::Value;

use super::DesiredStatus;

/// One Event to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProblemEvent {
    /// `Warning` (a problem) or `Normal` (it is gone).
    pub warning: bool,
    /// CamelCase reason: the condition's.
    pub reason: String,
    /// What a person reads.
    pub note: String,
}

/// The `(status, reason, message)` of condition `type_` in a status, if it has it.
fn condition<'a>(status: &'a Value, type_: &str) -> Option<(&'a str, &'a str, &'a str)> {
    let text = |c: &'a Value, field: &str| c.get(field).and_then(Value::as_str).unwrap_or("");
    status
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
        .map(|c| (text(c, "status"), text(c, "reason"), text(c, "message")))
}

/// The Events that writing `status` raises; see the module documentation.
pub fn problem_events(status: &DesiredStatus) -> Vec<ProblemEvent> {
    let mut events = Vec::new();
    let was = |type_| condition(&status.current, type_);
    if let Some(ready) = condition(&status.status, "Ready") {
        match (ready, was("Ready")) {
            (("False", reason, message), before) if before != Some(ready) => {
                events.push(ProblemEvent {
                    warning: true,
                    reason: reason.to_owned(),
                    note: message.to_owned(),
                });
            }
            (("True", ..), Some(("False", _, before))) => events.push(ProblemEvent {
                warning: false,
                reason: "Compiled".to_owned(),
                note: format!("compiles again (was: {before})"),
            }),
            _ => {}
        }
    }
    if let Some(degraded @ ("True", reason, message)) = condition(&status.status, "Degraded")
        && was("Degraded") != Some(degraded)
    {
        events.push(ProblemEvent {
            warning: true,
            reason: reason.to_owned(),
            note: message.to_owned(),
        });
    }
    events
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::compile::ObjectRef;

    fn conditions(ready: (&str, &str, &str), degraded: (&str, &str, &str)) -> Value {
        let one = |type_: &str, (status, reason, message): (&str, &str, &str)| {
            json!({"type": type_, "status": status, "reason": reason, "message": message,
                   "lastTransitionTime": "2026-12-02T00:00:00Z"})
        };
        json!({"conditions": [one("Ready", ready), one("Degraded", degraded)]})
    }

    fn change(current: Value, desired: Value) -> Vec<ProblemEvent> {
        problem_events(&DesiredStatus {
            object: ObjectRef::rule_set("shop", "web"),
            uid: None,
            status: desired,
            current,
        })
    }

    const FINE: (&str, &str, &str) = ("True", "Compiled", "");
    const CALM: (&str, &str, &str) = ("False", "AsExpected", "");
    const BAD: (&str, &str, &str) = (
        "False",
        "InvalidTemplate",
        "rule tcp: warning \"@\" is not a range",
    );

    #[test]
    fn a_new_problem_is_one_warning_and_its_end_one_normal() {
        let events = change(conditions(FINE, CALM), conditions(BAD, CALM));
        assert_eq!(
            events,
            [ProblemEvent {
                warning: true,
                reason: "InvalidTemplate".into(),
                note: "rule tcp: warning \"@\" is not a range".into(),
            }]
        );
        let events = change(conditions(BAD, CALM), conditions(FINE, CALM));
        assert_eq!(events.len(), 1);
        assert!(!events[0].warning);
        assert_eq!(events[0].reason, "Compiled");
        assert!(
            events[0].note.contains("is not a range"),
            "{}",
            events[0].note
        );
    }

    #[test]
    fn an_unchanged_problem_raises_nothing_and_a_changed_one_raises_again() {
        assert!(change(conditions(BAD, CALM), conditions(BAD, CALM)).is_empty());
        assert!(change(conditions(FINE, CALM), conditions(FINE, CALM)).is_empty());
        let other = (
            "False",
            "InvalidTemplate",
            "rule tcp: warning \"10:5\": start 10 is greater than end 5",
        );
        let events = change(conditions(BAD, CALM), conditions(other, CALM));
        assert_eq!(events.len(), 1);
        assert!(events[0].note.contains("10:5"));
    }

    #[test]
    fn a_first_status_with_a_problem_and_a_new_degradation_warn() {
        let events = change(Value::Null, conditions(BAD, CALM));
        assert_eq!(events.len(), 1);
        let degraded = ("True", "SatellitesUnavailable", "0 of 2 satellites ready");
        let events = change(conditions(FINE, CALM), conditions(FINE, degraded));
        assert_eq!(
            events,
            [ProblemEvent {
                warning: true,
                reason: "SatellitesUnavailable".into(),
                note: "0 of 2 satellites ready".into(),
            }]
        );
        assert!(change(Value::Null, conditions(FINE, CALM)).is_empty());
    }
}
