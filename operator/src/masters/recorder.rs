//! What the masters write to their history for one satellite batch (pure): a record for every
//! state change an agent or satellite reported, in the batch or not yet merged, and for every
//! agent event the merge made; and the last state of every check the batch touched.
//!
//! **Every transition, in its place.** Records are taken from the batch *before* the merge's
//! deduplication and its "newer report wins" rule: a change from an agent's replayed backlog
//! that arrives after a newer live one does not replace the current state (correctly), but it
//! is still a transition that happened, and its record carries the agent's own time and
//! sequence, so the history shows it where it happened. A report received twice (a resend, the
//! other satellite replica after a failover) has the same natural key and is stored once.
//!
//! **Last states from the merge.** The last states written are the merged ones, read after the
//! merge for every check the batch mentions, so a resend after a failed write writes them
//! again.

use std::collections::BTreeSet;

use vedette_history::{Kind, LastState, Record, Write};
use vedette_protocol::forward::Forwarded;
use vedette_protocol::merge::CheckKey;
use vedette_protocol::report::{Batch, CheckReport, Report};

use vedette_protocol::process::ProcessId;

use super::processes::{ProcessEvent, Restored, Run};
use super::state::{CheckEntry, MasterState};
use super::stream::{AgentEvent, MasterEvent};

/// The reports of `batch`, before it is merged: `(source, sequence, report, spooled as a
/// change)`; a relayed entry's source is the child zone's satellite that sent it.
pub fn reports(batch: &Batch<Forwarded>) -> Vec<(String, u64, CheckReport, bool)> {
    let mut reports = Vec::new();
    for envelope in &batch.entries {
        collect_reports(
            &batch.agent,
            envelope.sequence,
            &envelope.report,
            &mut reports,
        );
    }
    reports
}

fn collect_reports(
    satellite: &str,
    spool_sequence: u64,
    entry: &Forwarded,
    reports: &mut Vec<(String, u64, CheckReport, bool)>,
) {
    let found = match entry {
        Forwarded::Agent {
            agent,
            sequence,
            report,
        } => check_report(report).map(|(r, change)| (agent.clone(), *sequence, r, change)),
        Forwarded::Own { report } => check_report(report)
            .map(|(r, change)| (satellite.to_owned(), spool_sequence, r, change)),
        Forwarded::Relayed {
            satellite,
            sequence,
            entry,
            ..
        } => return collect_reports(satellite, *sequence, entry, reports),
        Forwarded::RuleSetSummary(_) | Forwarded::ZoneSummary(_) => None,
    };
    reports.extend(found);
}

fn check_report(report: &Report) -> Option<(CheckReport, bool)> {
    match report {
        Report::StateChange(check) => Some((check.clone(), true)),
        Report::Result(check) => Some((check.clone(), false)),
        Report::Keepalive(_) | Report::ElementTransition(_) => None,
    }
}

/// The write for a merged batch: its `reports` (from [`reports`]) and the `events` the merge
/// made, with zones and last states from the merged `state`.
pub fn write_for(
    reports: &[(String, u64, CheckReport, bool)],
    events: &[MasterEvent],
    state: &MasterState,
) -> Write {
    let mut write = Write::default();
    let mut touched = BTreeSet::new();
    for (source, sequence, report, change) in reports {
        let key = CheckKey::new(&report.host, &report.check);
        let zone = state
            .check(&key.host, &key.check)
            .and_then(|e| e.zone.clone());
        if let Some(record) =
            Record::state_change(source, *sequence, zone.as_deref(), report, *change)
        {
            write.records.push(record);
        }
        touched.insert(key);
    }
    write.records.extend(events.iter().filter_map(agent_record));
    write
        .records
        .extend(events.iter().filter_map(process_record));
    write.last_states = touched
        .into_iter()
        .filter_map(|key| {
            let entry = state.check(&key.host, &key.check)?.clone();
            Some(last_state(key, entry))
        })
        .collect();
    write
}

/// The record of an agent event (`None` for the events that are not about an agent).
pub fn agent_record(event: &MasterEvent) -> Option<Record> {
    let (kind, agent, message) = match event {
        MasterEvent::AgentFresh(agent) => (Kind::AgentFresh, agent, "agent connected".to_owned()),
        MasterEvent::AgentStale(agent) => (
            Kind::AgentStale,
            agent,
            format!(
                "agent missed {} keepalives",
                vedette_protocol::merge::MISSED_KEEPALIVES
            ),
        ),
        MasterEvent::PlanHeld { agent, reason } => {
            (Kind::PlanHeld, agent, format!("plan held: {reason}"))
        }
        MasterEvent::PlanReleased(agent) => {
            (Kind::PlanReleased, agent, "plan confirmed again".to_owned())
        }
        MasterEvent::Check(_) | MasterEvent::ZoneSummary { .. } | MasterEvent::Process(_) => {
            return None;
        }
    };
    Some(record_of(kind, agent, message))
}

/// The record of a business-process event (`None` for the other events). `rule_set` holds the
/// process, `check` the element, `host` the machine (or `masters`). The natural key is the
/// element and its time, so both masters (and a resend) write the same record once:
/// `source` = `namespace/process/element`, `sequence` = `at_ms × 64` plus the state entered
/// (transitions), the violation's slot (violations: the dependency's place, 63 for late).
pub fn process_record(event: &MasterEvent) -> Option<Record> {
    let MasterEvent::Process(event) = event else {
        return None;
    };
    let record = |kind, process: &ProcessId, element: &str, host: &str, at_ms: u64| Record {
        kind,
        at_ms,
        source: format!("{process}/{element}"),
        sequence: at_ms.saturating_mul(64),
        namespace: process.namespace.clone(),
        zone: String::new(),
        host: host.to_owned(),
        rule_set: process.name.clone(),
        check: element.to_owned(),
        state: None,
        previous: None,
        hard: None,
        message: String::new(),
        detail: serde_json::Value::Null,
    };
    Some(match event {
        ProcessEvent::Transition(t) => {
            let mut r = record(
                Kind::ProcessTransition,
                &t.process,
                &t.element,
                &t.machine,
                t.at_ms,
            );
            r.sequence += t.to as u64;
            r.message = t
                .message
                .clone()
                .unwrap_or_else(|| format!("entered {}", t.to));
            r.detail = serde_json::json!({
                "from": t.from, "to": t.to, "clause": t.clause, "notify": t.notify,
            });
            r
        }
        ProcessEvent::Violation {
            process,
            violation,
            notify,
        } => {
            let mut r = record(
                Kind::ProcessViolation,
                process,
                &violation.element,
                "",
                violation.at_ms,
            );
            r.sequence += u64::from(violation.slot);
            r.message = violation.message.clone();
            r.detail = serde_json::json!({
                "kind": violation.kind, "dependency": violation.dependency, "notify": notify,
            });
            r
        }
        ProcessEvent::RunEnded {
            process,
            element,
            run,
        } => {
            let mut r = record(Kind::ProcessRun, process, element, "", run.ended_ms);
            let seconds = (run.ended_ms - run.started_ms) / 1000;
            r.message = format!("run {} after {seconds} s", run.outcome);
            r.detail = serde_json::json!({
                "startedMs": run.started_ms, "endedMs": run.ended_ms, "seconds": seconds,
                "outcome": run.outcome,
            });
            r
        }
    })
}

/// The state an element resumes in, from its newest `process_transition` record (the inverse
/// of [`process_record`]); its runs are added from `process_run` records ([`run_of`]).
pub fn restored_element(record: &Record) -> Option<Restored> {
    if record.kind != Kind::ProcessTransition {
        return None;
    }
    let state = serde_json::from_value(record.detail.get("to")?.clone()).ok()?;
    Some(Restored {
        process: ProcessId {
            namespace: record.namespace.clone(),
            name: record.rule_set.clone(),
        },
        element: record.check.clone(),
        state,
        at_ms: record.at_ms,
        message: Some(record.message.clone()).filter(|m| !m.is_empty()),
        clause: record
            .detail
            .get("clause")
            .and_then(|c| c.as_str())
            .map(str::to_owned),
        machine: Some(record.host.clone()).filter(|h| !h.is_empty()),
        runs: Vec::new(),
    })
}

/// The run a `process_run` record holds, with its element.
pub fn run_of(record: &Record) -> Option<((ProcessId, String), Run)> {
    if record.kind != Kind::ProcessRun {
        return None;
    }
    let detail = &record.detail;
    let run = Run {
        started_ms: detail.get("startedMs")?.as_u64()?,
        ended_ms: detail.get("endedMs")?.as_u64()?,
        outcome: serde_json::from_value(detail.get("outcome")?.clone()).ok()?,
    };
    let process = ProcessId {
        namespace: record.namespace.clone(),
        name: record.rule_set.clone(),
    };
    Some(((process, record.check.clone()), run))
}

/// Keyed by the time of the agent's newest keepalive, which every master sees alike.
fn record_of(kind: Kind, agent: &AgentEvent, message: String) -> Record {
    Record::agent(
        kind,
        &agent.host,
        &agent.zone,
        agent.seen_ms,
        agent.seen_ms,
        message,
    )
}

/// The stored form of a merged check entry.
pub fn last_state(key: CheckKey, entry: CheckEntry) -> LastState {
    LastState {
        key,
        zone: entry.zone,
        state: entry.state,
        hard: entry.hard,
        last_hard: entry.last_hard,
        output: entry.output,
        at_ms: entry.at_ms,
        since_ms: entry.since_ms,
        writer: entry.writer.0,
        writer_sequence: entry.writer.1,
    }
}

/// The merged form of a stored last state, marked as restored. Its writer is left blank, so
/// the next report replaces it by time alone (the merge's rule for another writer): an agent
/// whose spool was wiped meanwhile starts its sequences again from 1.
pub fn restored_entry(last: LastState) -> (CheckKey, CheckEntry) {
    (
        last.key,
        CheckEntry {
            zone: last.zone,
            state: last.state,
            hard: last.hard,
            output: last.output,
            at_ms: last.at_ms,
            since_ms: last.since_ms,
            last_hard: last.last_hard,
            writer: (String::new(), 0),
            restored: true,
        },
    )
}

#[cfg(test)]
#[path = "recorder_tests.rs"]
mod tests;

/// The record of a notification delivered (`error: None`) or given up (`error`: the last
/// one): keyed by the receiver and the notification's key, so a repeated delivery (another
/// master after a hand-over) stores nothing new.
pub fn notification_record(
    receiver: &crate::notify::route::ReceiverId,
    dispatch: &crate::notify::group::Dispatch,
    error: Option<String>,
) -> Record {
    let first = dispatch.alerts.first();
    let label = |name: &str| {
        first
            .and_then(|a| a.labels.get(name))
            .cloned()
            .unwrap_or_default()
    };
    let alerts: Vec<serde_json::Value> = dispatch
        .alerts
        .iter()
        .map(|a| serde_json::json!({"fingerprint": a.fingerprint(), "status": a.status, "labels": a.labels}))
        .collect();
    Record {
        kind: if error.is_some() {
            Kind::NotificationDead
        } else {
            Kind::NotificationSent
        },
        at_ms: vedette_protocol::clock::unix_ms(),
        source: receiver.to_string(),
        sequence: key_number(&dispatch.key),
        namespace: receiver.namespace.clone(),
        zone: label("zone"),
        host: label("host"),
        rule_set: label("ruleSet"),
        check: label("check"),
        state: None,
        previous: None,
        hard: None,
        message: error.unwrap_or_else(|| {
            first
                .and_then(|a| a.annotations.get("summary"))
                .cloned()
                .unwrap_or_default()
        }),
        detail: serde_json::json!({"key": dispatch.key, "group": dispatch.group.text(), "alerts": alerts}),
    }
}

/// The record of Alertmanager posts given up.
pub fn alertmanager_dead_record(
    receiver: &crate::notify::route::ReceiverId,
    at_ms: u64,
    error: String,
) -> Record {
    Record {
        kind: Kind::NotificationDead,
        at_ms,
        source: receiver.to_string(),
        sequence: at_ms,
        namespace: receiver.namespace.clone(),
        zone: String::new(),
        host: String::new(),
        rule_set: String::new(),
        check: String::new(),
        state: None,
        previous: None,
        hard: None,
        message: error,
        detail: serde_json::json!({}),
    }
}

/// The first 8 bytes of a hex key as a number (the record's sequence; SQL stores `i64`).
fn key_number(key: &str) -> u64 {
    u64::from_str_radix(key.get(..15).unwrap_or(key), 16).unwrap_or(0)
}
