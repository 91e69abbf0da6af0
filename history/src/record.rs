//! One thing that happened, as the history keeps it: a [`Record`] of a [`Kind`], with when,
//! where (application, zone, host, rule set, check) and a message a person reads.
//!
//! **Natural key.** Every record has one: `(kind, source, sequence)`, where `source` and
//! `sequence` are whoever made it and its own counter (an agent and its spool sequence for a
//! check's state change; the agent and the keepalive's sequence for "connected"; the agent and
//! the time of its last keepalive for "stale", which every master computes alike). A record
//! written twice (a satellite's resend after a master restart, or the second master writing to a
//! shared database) is stored once.
//!
//! **New kinds without a migration.** The kind is a name, the columns are those every kind has,
//! and what only one kind has goes in `detail` (JSON); business-process transitions,
//! notifications, acknowledgements and maintenance windows are new names, not new columns.

use serde::Serialize;
use vedette_crds::CheckState;
use vedette_protocol::plan::CheckId;
use vedette_protocol::report::CheckReport;

/// What a record is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A check changed state (soft or hard, see [`Record::hard`]) or first reported.
    StateChange,
    /// An agent sent its first keepalive, or one after it was stale.
    AgentFresh,
    /// An agent missed its keepalives.
    AgentStale,
    /// An agent runs its last good plan, held.
    PlanHeld,
    /// An agent that ran a held plan runs a confirmed one again.
    PlanReleased,
    /// A business-process element changed state (`rule_set` is the process, `check` the
    /// element, `host` the machine or `masters`; states in `detail`).
    ProcessTransition,
    /// A business-process violation: an element ran early or is late (`detail.kind`).
    ProcessViolation,
    /// A business-process element's run ended (`detail`: started, ended, seconds, outcome).
    ProcessRun,
    /// A notification was delivered (`source` the receiver, `detail.key` its idempotency key,
    /// `detail.alerts` what it said).
    NotificationSent,
    /// A notification was given up after its last try (`message` the last error).
    NotificationDead,
}

impl Kind {
    /// Every kind, in the order of the API's documentation.
    pub const ALL: [Kind; 10] = [
        Kind::StateChange,
        Kind::AgentFresh,
        Kind::AgentStale,
        Kind::PlanHeld,
        Kind::PlanReleased,
        Kind::ProcessTransition,
        Kind::ProcessViolation,
        Kind::ProcessRun,
        Kind::NotificationSent,
        Kind::NotificationDead,
    ];

    /// The kind's name, as stored and in the API.
    pub fn name(self) -> &'static str {
        match self {
            Kind::StateChange => "state_change",
            Kind::AgentFresh => "agent_fresh",
            Kind::AgentStale => "agent_stale",
            Kind::PlanHeld => "plan_held",
            Kind::PlanReleased => "plan_released",
            Kind::ProcessTransition => "process_transition",
            Kind::ProcessViolation => "process_violation",
            Kind::ProcessRun => "process_run",
            Kind::NotificationSent => "notification_sent",
            Kind::NotificationDead => "notification_dead",
        }
    }

    /// The kind named `name`.
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

/// One thing that happened; see the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// What it is about.
    pub kind: Kind,
    /// When it happened (the clock of whoever saw it), Unix ms.
    pub at_ms: u64,
    /// Who made it (an agent, a satellite replica for remote checks); part of the natural key.
    pub source: String,
    /// The source's own counter; part of the natural key.
    pub sequence: u64,
    /// The application (namespace) of the check; empty for agent records.
    pub namespace: String,
    /// The zone, when known.
    pub zone: String,
    /// The machine or remote target.
    pub host: String,
    /// The rule set; empty for agent records.
    pub rule_set: String,
    /// The check (the rule's name); empty for agent records.
    pub check: String,
    /// The state after (state changes).
    pub state: Option<CheckState>,
    /// The state before (state changes).
    pub previous: Option<CheckState>,
    /// Whether the new state is hard (state changes).
    pub hard: Option<bool>,
    /// What a person reads: the plugin output, or why a plan is held.
    pub message: String,
    /// What only this kind has (a state change's attempt), JSON.
    pub detail: serde_json::Value,
}

impl Record {
    /// The record of a check report applied from `source`'s `sequence`, when the report is a
    /// state change in the reporter's eyes (its state differs from the one before, or it was
    /// spooled as a change: first report, soft or hard transition).
    pub fn state_change(
        source: &str,
        sequence: u64,
        zone: Option<&str>,
        report: &CheckReport,
        spooled_as_change: bool,
    ) -> Option<Record> {
        if !spooled_as_change && report.state == report.previous_state {
            return None;
        }
        Some(Record {
            kind: Kind::StateChange,
            at_ms: report.at_ms,
            source: source.to_owned(),
            sequence,
            namespace: report.check.namespace.clone(),
            zone: zone.unwrap_or_default().to_owned(),
            host: report.host.clone(),
            rule_set: report.check.rule_set.clone(),
            check: report.check.rule.clone(),
            state: Some(report.state),
            previous: Some(report.previous_state),
            hard: Some(report.hard),
            message: report.output.clone(),
            detail: serde_json::json!({ "attempt": report.attempt }),
        })
    }

    /// A record about agent `host` of `zone` (connected, stale, plan held or released).
    pub fn agent(
        kind: Kind,
        host: &str,
        zone: &str,
        sequence: u64,
        at_ms: u64,
        message: String,
    ) -> Record {
        Record {
            kind,
            at_ms,
            source: host.to_owned(),
            sequence,
            namespace: String::new(),
            zone: zone.to_owned(),
            host: host.to_owned(),
            rule_set: String::new(),
            check: String::new(),
            state: None,
            previous: None,
            hard: None,
            message,
            detail: serde_json::Value::Null,
        }
    }

    /// The check this record is about, when it is about one.
    pub fn check_id(&self) -> Option<CheckId> {
        (!self.check.is_empty()).then(|| CheckId {
            namespace: self.namespace.clone(),
            rule_set: self.rule_set.clone(),
            rule: self.check.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(state: CheckState, previous: CheckState) -> CheckReport {
        CheckReport {
            check: CheckId {
                namespace: "shop".into(),
                rule_set: "web".into(),
                rule: "tcp".into(),
            },
            host: "n1".into(),
            state,
            hard: false,
            attempt: 1,
            previous_state: previous,
            output: "refused".into(),
            duration_ms: 3,
            at_ms: 1000,
        }
    }

    #[test]
    fn a_result_in_the_same_state_is_no_record_but_a_spooled_change_is() {
        let same = report(CheckState::Ok, CheckState::Ok);
        assert_eq!(Record::state_change("n1", 4, None, &same, false), None);
        let first = Record::state_change("n1", 4, Some("z"), &same, true).unwrap();
        assert_eq!((first.zone.as_str(), first.sequence), ("z", 4));
        let flipped = report(CheckState::Critical, CheckState::Ok);
        let record = Record::state_change("n1", 5, None, &flipped, false).unwrap();
        assert_eq!(record.state, Some(CheckState::Critical));
        assert_eq!(record.previous, Some(CheckState::Ok));
        assert_eq!(record.check_id().unwrap().to_string(), "shop/web/tcp");
    }

    #[test]
    fn kinds_round_trip_by_name() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(Kind::from_name("nope"), None);
    }
}
