//! The masters' state, as a pure value: what satellites forwarded, merged.
//!
//! - **Satellite batches** are deduplicated by `(satellite replica, spool sequence)` with a
//!   [`Watermark`] per replica; the acknowledgement is that watermark.
//! - **Agent entries inside them** are deduplicated by `(agent, sequence)` (after a failover
//!   an agent resends to another replica what the first one already forwarded), and a check's
//!   state is replaced only by a newer one, by the protocol's rule
//!   ([`vedette_protocol::merge`]): an old entry never overwrites a newer state.
//! - **Keepalives** give each agent's freshness and held plan; **summaries** are kept as the
//!   satellites last sent them.
//!
//! The merge says what it learned as [`MasterEvent`]s (the masters' event stream, see
//! [`super::stream`]): every applied check report, agents fresh again, held plans, zone
//! summaries; [`MasterState::sweep`] finds agents that went stale since the last sweep.
//!
//! Time comes in as arguments (`now_ms`), so tests need no clock.

use std::collections::{BTreeMap, HashMap};

use vedette_crds::template::CheckState;
use vedette_protocol::forward::{Forwarded, ZoneSummary};
pub use vedette_protocol::merge::CheckKey;
use vedette_protocol::merge::{Stamp, is_stale};
use vedette_protocol::plan::CheckId;
use vedette_protocol::report::{Ack, Batch, CheckReport, Keepalive, Report};
use vedette_protocol::watermark::Watermark;

use super::processes::ProcessEngine;
use super::stream::{AgentEvent, CheckEvent, MasterEvent};

/// Most sequences an agent's watermark keeps above its contiguous part; beyond, the gap is
/// skipped (the agent dropped those entries, or they were forwarded by a replica that is gone).
const MAX_ABOVE: u64 = 10_000;

/// The current state of one check, as the masters know it.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckEntry {
    /// Zone of the reporting agent or satellite, when known.
    pub zone: Option<String>,
    /// Current state.
    pub state: CheckState,
    /// Whether it is hard.
    pub hard: bool,
    /// Output of the run that set it.
    pub output: String,
    /// When that run finished (reporter's clock), Unix ms.
    pub at_ms: u64,
    /// Since when the check is in `state`, Unix ms.
    pub since_ms: u64,
    /// The last hard state (OK until a hard problem was seen).
    pub last_hard: CheckState,
    /// Who wrote it: sender id and its sequence.
    pub writer: (String, u64),
    /// Read from the history at start, not reported since: the state is the last known one
    /// (at `at_ms`).
    pub restored: bool,
}

/// What the masters know of one agent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentEntry {
    /// Its zone, as its plan says.
    pub zone: String,
    /// When its newest keepalive was made, bounded by when it arrived, Unix ms.
    pub seen_ms: u64,
    /// Seconds between its keepalives.
    pub interval_seconds: u64,
    /// Sequence of the newest keepalive applied.
    pub sequence: u64,
    /// Whether it runs a held plan.
    pub plan_held: bool,
    /// Why.
    pub plan_reason: String,
    /// Whether the stream has been told it is stale (by [`MasterState::sweep`]).
    pub reported_stale: bool,
    /// When its newest keepalive with an empty spool was made (nothing older in flight).
    pub drained_ms: u64,
}

impl AgentEntry {
    /// Missed [`MISSED_KEEPALIVES`](vedette_protocol::merge::MISSED_KEEPALIVES) keepalives at `now_ms`.
    pub fn stale(&self, now_ms: u64) -> bool {
        is_stale(self.seen_ms, self.interval_seconds, now_ms)
    }
}

/// Counts of what was applied (for `/metrics` and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Entries applied.
    pub entries: u64,
    /// Entries received again (by satellite or agent sequence), skipped.
    pub duplicates: u64,
    /// Check reports older than the stored state, which did not overwrite it.
    pub outdated: u64,
}

/// Everything the masters merged.
#[derive(Clone, Debug, Default)]
pub struct MasterState {
    satellites: HashMap<String, Watermark>,
    satellite_zones: HashMap<String, String>,
    agent_sequences: HashMap<String, Watermark>,
    checks: BTreeMap<CheckKey, CheckEntry>,
    agents: BTreeMap<String, AgentEntry>,
    zone_summaries: BTreeMap<(String, String), ZoneSummary>,
    processes: ProcessEngine,
    applied: Applied,
    version: u64,
}

impl MasterState {
    /// Applies a satellite's batch received at `now_ms`; returns the acknowledgement and the
    /// events the merge made, in the order of the batch.
    pub fn receive(&mut self, batch: Batch<Forwarded>, now_ms: u64) -> (Ack, Vec<MasterEvent>) {
        let satellite = batch.agent;
        let mut watermark = self.satellites.remove(&satellite).unwrap_or_default();
        watermark.advance_floor(batch.floor);
        let mut events = Vec::new();
        for envelope in batch.entries {
            if !watermark.record(envelope.sequence) {
                self.applied.duplicates += 1;
                continue;
            }
            self.apply(
                &satellite,
                envelope.sequence,
                envelope.report,
                now_ms,
                &mut events,
            );
        }
        let ack = Ack {
            up_to: watermark.contiguous(),
        };
        self.satellites.insert(satellite, watermark);
        self.evaluate_processes(now_ms, &mut events);
        (ack, events)
    }

    /// The agents that went stale at `now_ms` since the last sweep, each reported once until
    /// it is fresh again.
    pub fn sweep(&mut self, now_ms: u64) -> Vec<MasterEvent> {
        let mut events = Vec::new();
        for (host, agent) in &mut self.agents {
            if !agent.reported_stale && agent.stale(now_ms) {
                agent.reported_stale = true;
                events.push(MasterEvent::AgentStale(agent_event(host, agent)));
            }
        }
        self.evaluate_processes(now_ms, &mut events);
        events
    }

    /// The business processes' masters' clauses and deadlines at `now_ms`.
    fn evaluate_processes(&mut self, now_ms: u64, events: &mut Vec<MasterEvent>) {
        if self.processes.parked() > 0 {
            let sequences = &self.agent_sequences;
            let agents = &self.agents;
            // Everything the agent sent before has arrived: its sequences are contiguous up
            // to it, or a later keepalive said its spool was empty (it had nothing older in
            // flight; after a restart the masters do not know the agent's earlier sequences).
            let settled = |agent: &str, sequence: u64, at_ms: u64| {
                sequences
                    .get(agent)
                    .is_some_and(|w| w.contiguous() + 1 >= sequence)
                    || agents.get(agent).is_some_and(|a| a.drained_ms >= at_ms)
            };
            let released = self.processes.release(now_ms, &settled);
            events.extend(released.into_iter().map(MasterEvent::Process));
        }
        let checks = &self.checks;
        let states = |id: &CheckId| -> Vec<(CheckState, u64)> {
            checks
                .iter()
                .filter(|(key, _)| key.check == *id)
                .map(|(_, entry)| (entry.state, entry.since_ms))
                .collect()
        };
        let agents = &self.agents;
        let drained = |host: &str| agents.get(host).map_or(0, |a| a.drained_ms);
        let found = self.processes.evaluate(now_ms, &states, &drained);
        events.extend(found.into_iter().map(MasterEvent::Process));
    }

    /// Sets the elements' last states, read from the history at start.
    pub fn restore_processes(
        &mut self,
        restored: impl IntoIterator<Item = super::processes::Restored>,
    ) {
        self.processes.restore(restored);
    }

    /// The business processes: their models and states.
    pub fn processes(&self) -> &ProcessEngine {
        &self.processes
    }

    /// Replaces the business processes' models (after a compile), keeping the state of what
    /// remains.
    pub fn set_processes(
        &mut self,
        models: impl IntoIterator<Item = crate::compile::process::ProcessModel>,
    ) {
        self.processes.set_models(models);
    }

    fn apply(
        &mut self,
        satellite: &str,
        sequence: u64,
        entry: Forwarded,
        now_ms: u64,
        events: &mut Vec<MasterEvent>,
    ) {
        self.applied.entries += 1;
        self.version += 1;
        self.apply_entry(satellite, sequence, entry, now_ms, events);
    }

    /// Applies one entry `satellite` spooled with `sequence`; a relayed entry is applied as
    /// if the child zone's satellite had sent it here, once per `(satellite, sequence)`
    /// whichever parent replica relayed it.
    fn apply_entry(
        &mut self,
        satellite: &str,
        sequence: u64,
        entry: Forwarded,
        now_ms: u64,
        events: &mut Vec<MasterEvent>,
    ) {
        match entry {
            Forwarded::Relayed {
                satellite: child,
                sequence,
                floor,
                entry,
            } => {
                let seen = self.satellites.entry(child.clone()).or_default();
                seen.advance_floor(floor);
                if !seen.record(sequence) {
                    self.applied.duplicates += 1;
                    return;
                }
                if seen.stored_above() > MAX_ABOVE {
                    *seen = Watermark::at(sequence);
                }
                self.apply_entry(&child, sequence, *entry, now_ms, events);
            }
            Forwarded::Agent {
                agent,
                sequence,
                report,
            } => {
                let seen = self.agent_sequences.entry(agent.clone()).or_default();
                if !seen.record(sequence) {
                    self.applied.duplicates += 1;
                    return;
                }
                if seen.stored_above() > MAX_ABOVE {
                    *seen = Watermark::at(sequence);
                }
                let zone = self.agents.get(&agent).map(|a| a.zone.clone());
                match report {
                    Report::StateChange(check) | Report::Result(check) => {
                        self.apply_check(&agent, sequence, &check, zone, events);
                    }
                    Report::Keepalive(keepalive) => {
                        self.apply_keepalive(&agent, sequence, &keepalive, now_ms, events);
                    }
                    Report::ElementTransition(transition) => events.extend(
                        self.processes
                            .apply_report(&transition, &agent, sequence, now_ms)
                            .into_iter()
                            .map(MasterEvent::Process),
                    ),
                }
            }
            Forwarded::Own { report } => {
                if let Report::StateChange(check) | Report::Result(check) = report {
                    let zone = self.satellite_zones.get(satellite).cloned();
                    self.apply_check(satellite, sequence, &check, zone, events);
                }
            }
            // From a satellite of the previous release: the masters count rule sets from
            // the check states they merge.
            Forwarded::RuleSetSummary(_) => {}
            Forwarded::ZoneSummary(summary) => {
                self.satellite_zones
                    .insert(satellite.to_owned(), summary.zone.clone());
                events.push(MasterEvent::ZoneSummary {
                    zone: summary.zone.clone(),
                    replica: summary.replica.clone(),
                });
                self.zone_summaries
                    .insert((summary.zone.clone(), summary.replica.clone()), summary);
            }
        }
    }

    fn apply_check(
        &mut self,
        writer: &str,
        sequence: u64,
        report: &CheckReport,
        zone: Option<String>,
        events: &mut Vec<MasterEvent>,
    ) {
        let key = CheckKey::new(&report.host, &report.check);
        let previous = self.checks.get(&key);
        let stamp = Stamp {
            writer,
            sequence,
            at_ms: report.at_ms,
        };
        let stored = previous.map(|entry| Stamp {
            writer: &entry.writer.0,
            sequence: entry.writer.1,
            at_ms: entry.at_ms,
        });
        let newer = stamp.is_newer_than(stored.as_ref());
        if !newer {
            self.applied.outdated += 1;
            return;
        }
        let last_hard = previous.map_or(CheckState::Ok, |e| e.last_hard);
        let since_ms = match previous {
            Some(entry) if entry.state == report.state => entry.since_ms,
            _ => report.at_ms,
        };
        let zone = zone.or_else(|| previous.and_then(|e| e.zone.clone()));
        events.push(MasterEvent::Check(CheckEvent {
            host: report.host.clone(),
            check: report.check.clone(),
            zone: zone.clone(),
            state: report.state,
            previous: previous.map(|e| e.state),
            hard: report.hard,
            last_hard,
            output: report.output.clone(),
            at_ms: report.at_ms,
        }));
        let entry = CheckEntry {
            zone,
            state: report.state,
            hard: report.hard,
            output: report.output.clone(),
            at_ms: report.at_ms,
            since_ms,
            last_hard: if report.hard { report.state } else { last_hard },
            writer: (writer.to_owned(), sequence),
            restored: false,
        };
        self.checks.insert(key, entry);
    }

    fn apply_keepalive(
        &mut self,
        agent: &str,
        sequence: u64,
        keepalive: &Keepalive,
        now: u64,
        events: &mut Vec<MasterEvent>,
    ) {
        let entry = self.agents.entry(agent.to_owned()).or_default();
        if entry.seen_ms > 0 && sequence < entry.sequence {
            return;
        }
        let was_fresh = entry.seen_ms > 0 && !entry.stale(now);
        let was_held = entry.seen_ms > 0 && entry.plan_held;
        let drained_ms = if keepalive.spool_depth == 0 {
            keepalive.at_ms.max(entry.drained_ms)
        } else {
            entry.drained_ms
        };
        *entry = AgentEntry {
            zone: keepalive.zone.clone(),
            // An agent clock ahead of ours must not keep it fresh forever.
            seen_ms: keepalive.at_ms.min(now),
            interval_seconds: keepalive.interval_seconds,
            sequence,
            plan_held: keepalive.plan.held,
            plan_reason: keepalive.plan.reason.clone(),
            reported_stale: false,
            drained_ms,
        };
        let seen = agent_event(agent, entry);
        if !was_fresh && !entry.stale(now) {
            events.push(MasterEvent::AgentFresh(seen.clone()));
        }
        match (was_held, entry.plan_held) {
            (false, true) => events.push(MasterEvent::PlanHeld {
                agent: seen,
                reason: entry.plan_reason.clone(),
            }),
            (true, false) => events.push(MasterEvent::PlanReleased(seen)),
            _ => {}
        }
    }

    /// Adds the last known states of checks the masters have no state for (read from the
    /// history at start); a report applied later replaces them by the usual rule.
    pub fn restore(&mut self, entries: impl IntoIterator<Item = (CheckKey, CheckEntry)>) {
        for (key, entry) in entries {
            self.checks.entry(key).or_insert(entry);
        }
    }

    /// Every check's state.
    pub fn checks(&self) -> &BTreeMap<CheckKey, CheckEntry> {
        &self.checks
    }

    /// One check's state.
    pub fn check(&self, host: &str, check: &CheckId) -> Option<&CheckEntry> {
        self.checks.get(&CheckKey {
            host: host.to_owned(),
            check: check.clone(),
        })
    }

    /// Every agent that sent a keepalive.
    pub fn agents(&self) -> &BTreeMap<String, AgentEntry> {
        &self.agents
    }

    /// The latest zone summaries, by (zone, replica).
    pub fn zone_summaries(&self) -> &BTreeMap<(String, String), ZoneSummary> {
        &self.zone_summaries
    }

    /// Per satellite replica: every spool sequence up to this one is applied.
    pub fn satellite_watermarks(&self) -> BTreeMap<String, u64> {
        self.satellites
            .iter()
            .map(|(replica, w)| (replica.clone(), w.contiguous()))
            .collect()
    }

    /// What was applied.
    pub fn applied(&self) -> Applied {
        self.applied
    }

    /// Changes with every applied entry.
    pub fn version(&self) -> u64 {
        self.version
    }
}

fn agent_event(host: &str, agent: &AgentEntry) -> AgentEvent {
    AgentEvent {
        host: host.to_owned(),
        zone: agent.zone.clone(),
        seen_ms: agent.seen_ms,
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
pub(crate) mod tests;
