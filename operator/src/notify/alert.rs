//! What a notification is about ([`Alert`]): made from what the masters learned (a hard
//! problem or recovery, an agent lost or back, a process element's transition, a violation),
//! with the labels routes match on and the annotations people read. Pure.
//!
//! An alert's identity is its **fingerprint**: the labels that name what it is about (kind,
//! namespace, rule set, check, host; process and element), never its state, so its recovery
//! replaces its problem. Both masters make the same alert from the same event.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use vedette_crds::CheckState;
use vedette_crds::process::{ElementState, ViolationKind};

use crate::compile::notify::Routing;
use crate::masters::processes::{ProcessEvent, Transition};
use crate::masters::stream::{AgentEvent, CheckEvent, MasterEvent};

/// Longest output kept in an alert's annotations, UTF-8 bytes.
pub const MAX_OUTPUT_BYTES: usize = 1024;

/// Labels, by name.
pub type Labels = BTreeMap<String, String>;

/// Whether an alert is a problem, its end, or a fact worth telling.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// A problem that holds.
    Firing,
    /// A problem that ended.
    Resolved,
    /// A fact (a process element started or completed): sent once, never repeated.
    Info,
}

/// One thing to tell.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Alert {
    /// Labels: identity and routing.
    pub labels: Labels,
    /// Summary and output, for people.
    pub annotations: Labels,
    /// Firing, resolved or info.
    pub status: Status,
    /// When the problem began (or the fact happened), Unix ms.
    pub starts_at_ms: u64,
    /// When it ended (resolved), Unix ms.
    pub ends_at_ms: Option<u64>,
    /// Receivers named by the rule's or clause's `notify`, besides the routes'.
    pub notify: Vec<String>,
}

impl Alert {
    /// The labels that name what it is about, hashed (hex SHA-256, 16 bytes).
    pub fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        for name in IDENTITY {
            if let Some(value) = self.labels.get(*name) {
                hash.update(name.as_bytes());
                hash.update([0]);
                hash.update(value.as_bytes());
                hash.update([0]);
            }
        }
        hex::encode(&hash.finalize()[..16])
    }

    /// The namespace (application) it belongs to; empty for machine-wide alerts.
    pub fn namespace(&self) -> &str {
        self.labels
            .get("namespace")
            .map(String::as_str)
            .unwrap_or_default()
    }

    /// The time of its newest change: its end when resolved, its start otherwise.
    pub fn changed_at_ms(&self) -> u64 {
        self.ends_at_ms.unwrap_or(self.starts_at_ms)
    }
}

/// The labels that make an alert's identity.
const IDENTITY: &[&str] = &[
    "kind",
    "namespace",
    "ruleSet",
    "check",
    "host",
    "process",
    "element",
    "violation",
];

/// The alerts an event makes (none for most: results that change nothing).
pub fn alerts_of(event: &MasterEvent, routing: &Routing) -> Vec<Alert> {
    match event {
        MasterEvent::Check(check) => check_alert(check, routing).into_iter().collect(),
        MasterEvent::AgentStale(agent) => vec![agent_alert(agent, Status::Firing)],
        MasterEvent::AgentFresh(agent) => vec![agent_alert(agent, Status::Resolved)],
        MasterEvent::Process(process) => process_alerts(process),
        MasterEvent::PlanHeld { .. }
        | MasterEvent::PlanReleased(_)
        | MasterEvent::ZoneSummary { .. } => Vec::new(),
    }
}

/// A hard state change as an alert: a problem, or the recovery of one.
fn check_alert(event: &CheckEvent, routing: &Routing) -> Option<Alert> {
    let change = event.hard_change()?;
    let mut labels = Labels::new();
    let rule_set = routing.rule_sets.get(&format!(
        "{}/{}",
        change.check.namespace, change.check.rule_set
    ));
    if let Some(rule_set) = rule_set {
        labels.extend(rule_set.labels.clone());
    }
    labels.insert("kind".into(), "check".into());
    labels.insert("namespace".into(), change.check.namespace.clone());
    labels.insert("ruleSet".into(), change.check.rule_set.clone());
    labels.insert("check".into(), change.check.rule.clone());
    labels.insert("host".into(), change.host.clone());
    if let Some(zone) = event.zone.as_ref().filter(|z| !z.is_empty()) {
        labels.insert("zone".into(), zone.clone());
    }
    // A zone's remote check has no namespace: it goes to the cluster's default receiver,
    // labelled with its zone and as remote.
    if let Some(zone) = change.check.remote_zone() {
        labels.insert("zone".into(), zone.to_owned());
        labels.insert("remote".into(), "true".into());
    }
    let recovered = change.state == CheckState::Ok;
    let shown = if recovered {
        change.previous
    } else {
        change.state
    };
    labels.insert("severity".into(), severity(shown).into());
    let mut annotations = Labels::new();
    annotations.insert(
        "summary".into(),
        format!(
            "{} on {} is {}",
            change.check.rule,
            change.host,
            state_word(change.state)
        ),
    );
    annotations.insert("output".into(), bounded(&change.output));
    let notify = rule_set
        .and_then(|r| r.rules.get(&change.check.rule))
        .cloned()
        .unwrap_or_default();
    Some(Alert {
        labels,
        annotations,
        status: if recovered {
            Status::Resolved
        } else {
            Status::Firing
        },
        starts_at_ms: change.at_ms,
        ends_at_ms: recovered.then_some(change.at_ms),
        notify,
    })
}

fn agent_alert(agent: &AgentEvent, status: Status) -> Alert {
    let labels = Labels::from([
        ("kind".into(), "agent".into()),
        ("host".into(), agent.host.clone()),
        ("zone".into(), agent.zone.clone()),
        ("severity".into(), "critical".into()),
    ]);
    let summary = match status {
        Status::Resolved => format!("the agent on {} reports again", agent.host),
        _ => format!("the agent on {} stopped reporting", agent.host),
    };
    Alert {
        labels,
        annotations: Labels::from([("summary".into(), summary)]),
        status,
        starts_at_ms: agent.seen_ms,
        ends_at_ms: (status == Status::Resolved).then_some(agent.seen_ms),
        notify: Vec::new(),
    }
}

fn process_alerts(event: &ProcessEvent) -> Vec<Alert> {
    match event {
        ProcessEvent::Transition(transition) => transition_alerts(transition),
        ProcessEvent::Violation {
            process,
            violation,
            notify,
        } => {
            let (word, severity) = match violation.kind {
                ViolationKind::Early => ("early", "warning"),
                ViolationKind::Late => ("late", "critical"),
            };
            let labels = process_labels(&process.namespace, &process.name, &violation.element)
                .into_iter()
                .chain([
                    ("kind".into(), "violation".into()),
                    ("violation".into(), word.into()),
                    ("severity".into(), severity.into()),
                ])
                .collect();
            vec![Alert {
                labels,
                annotations: Labels::from([("summary".into(), bounded(&violation.message))]),
                status: Status::Firing,
                starts_at_ms: violation.at_ms,
                ends_at_ms: None,
                notify: notify.clone(),
            }]
        }
        ProcessEvent::RunEnded { .. } => Vec::new(),
    }
}

/// A transition: Failed fires; leaving Failed resolves; Standby also resolves the element's
/// violations of the run that ended; Running and Completed are facts.
fn transition_alerts(transition: &Transition) -> Vec<Alert> {
    let id = &transition.process;
    let base = process_labels(&id.namespace, &id.name, &transition.element);
    let message = transition.message.clone().unwrap_or_else(|| {
        format!(
            "{} of {} is {:?} ({})",
            transition.element, id.name, transition.to, transition.clause
        )
    });
    let element = |status: Status, severity: &str| {
        let mut labels = base.clone();
        labels.insert("kind".into(), "element".into());
        labels.insert("severity".into(), severity.into());
        labels.insert("host".into(), transition.machine.clone());
        labels.insert("state".into(), format!("{:?}", transition.to));
        Alert {
            labels,
            annotations: Labels::from([("summary".into(), bounded(&message))]),
            status,
            starts_at_ms: transition.at_ms,
            ends_at_ms: (status == Status::Resolved).then_some(transition.at_ms),
            notify: transition.notify.clone(),
        }
    };
    let mut alerts = Vec::new();
    match transition.to {
        ElementState::Failed => alerts.push(element(Status::Firing, "critical")),
        _ if transition.from == ElementState::Failed => {
            alerts.push(element(Status::Resolved, "critical"));
        }
        _ => alerts.push(element(Status::Info, "info")),
    }
    if transition.to == ElementState::Standby {
        for (word, severity) in [("early", "warning"), ("late", "critical")] {
            let mut labels = base.clone();
            labels.insert("kind".into(), "violation".into());
            labels.insert("violation".into(), word.into());
            labels.insert("severity".into(), severity.into());
            alerts.push(Alert {
                labels,
                annotations: Labels::from([(
                    "summary".into(),
                    format!("the run of {} ended", transition.element),
                )]),
                status: Status::Resolved,
                starts_at_ms: transition.at_ms,
                ends_at_ms: Some(transition.at_ms),
                notify: Vec::new(),
            });
        }
    }
    alerts
}

fn process_labels(namespace: &str, process: &str, element: &str) -> Labels {
    Labels::from([
        ("namespace".into(), namespace.to_owned()),
        ("process".into(), process.to_owned()),
        ("element".into(), element.to_owned()),
    ])
}

/// The severity label of a check state.
pub fn severity(state: CheckState) -> &'static str {
    match state {
        CheckState::Critical => "critical",
        CheckState::Warning => "warning",
        CheckState::Unknown => "unknown",
        CheckState::Ok => "none",
    }
}

fn state_word(state: CheckState) -> &'static str {
    match state {
        CheckState::Ok => "OK",
        CheckState::Warning => "WARNING",
        CheckState::Critical => "CRITICAL",
        CheckState::Unknown => "UNKNOWN",
    }
}

/// `text` sanitized ([`vedette_protocol::text::sanitize_output`]), at most [`MAX_OUTPUT_BYTES`].
pub fn bounded(text: &str) -> String {
    vedette_protocol::text::sanitize_output(text, MAX_OUTPUT_BYTES)
}
