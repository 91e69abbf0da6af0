//! The current state of every (host, check) of the zone and the freshness of every agent.
//! Pure: entries are applied with the time they were received, and staleness is asked for
//! at a given time, so tests (and recovery from the spool) need no clock.
//!
//! **Last writer wins by (agent, sequence)**, by the protocol's rule
//! ([`vedette_protocol::merge`]): a replayed old state change never overwrites a newer
//! state.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};
use vedette_crds::template::CheckState;

use vedette_protocol::forward::ZoneSummary;
use vedette_protocol::merge::{Stamp, is_stale};
use vedette_protocol::plan::{CheckId, ZoneBundle};
use vedette_protocol::report::{CheckReport, Keepalive, Report, StateCounts};

/// State changes the table remembers, in the order they arrived (the newest last).
pub const RECENT_CHANGES: usize = 256;

pub use vedette_protocol::merge::{CheckKey, MISSED_KEEPALIVES};

/// Who wrote a state: the sender's id and its sequence.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Writer {
    /// Agent (or satellite replica) id.
    pub agent: String,
    /// Its sequence number of the entry.
    pub sequence: u64,
}

/// The state of one check on one host.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CheckEntry {
    /// The state; `None` while pending (planned, never reported).
    pub state: Option<CheckState>,
    /// Whether it is hard.
    pub hard: bool,
    /// Output of the run that set it.
    pub output: String,
    /// When that run finished (agent's clock), Unix ms.
    pub at_ms: u64,
    /// Who reported it.
    pub writer: Option<Writer>,
    /// A remote (agentless) check, run by a satellite.
    pub remote: bool,
}

/// What the satellite knows of one agent.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AgentEntry {
    /// When its last keepalive was received (satellite's clock), Unix ms; 0: never.
    pub last_keepalive_ms: u64,
    /// Seconds between its keepalives, as it said (0: the zone's setting).
    pub interval_seconds: u64,
    /// Whether it runs a held plan.
    pub plan_held: bool,
    /// Why.
    pub plan_reason: String,
    /// Hash of the plan it runs.
    pub plan_hash: String,
    /// Its checks by state, as it counted them.
    pub counts: StateCounts,
}

/// An agent as shown on `/v1/state` and in metrics.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AgentView {
    /// The agent.
    pub host: String,
    /// Missed three keepalives, or never sent one.
    pub stale: bool,
    /// What is known of it.
    #[serde(flatten)]
    pub entry: AgentEntry,
}

/// A state change as it arrived: the zone's recent history, oldest first.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChangeRecord {
    /// The machine or remote target.
    pub host: String,
    /// The check.
    pub check: CheckId,
    /// The new state.
    pub state: CheckState,
    /// Whether it is hard.
    pub hard: bool,
    /// When the run finished (sender's clock), Unix ms.
    pub at_ms: u64,
    /// Who reported it and with which sequence.
    pub writer: Writer,
    /// It arrived after a newer state of the check (a replayed backlog overtaken by a live
    /// send): history, not the current state.
    pub outdated: bool,
}

/// Counts of what was applied, for `/v1/state` and the tests that check exactly-once.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// State changes applied (each received once, however often it was sent).
    pub state_changes: u64,
    /// Results applied.
    pub results: u64,
    /// Keepalives applied.
    pub keepalives: u64,
    /// Business-process transitions received (forwarded, not applied here).
    #[serde(default)]
    pub element_transitions: u64,
    /// Entries older than the stored state, which did not overwrite it.
    pub outdated: u64,
}

/// The zone's state table.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct StateTable {
    #[serde(with = "pairs")]
    checks: BTreeMap<CheckKey, CheckEntry>,
    agents: BTreeMap<String, AgentEntry>,
    planned_machines: BTreeSet<String>,
    default_interval_seconds: u64,
    applied: Applied,
    #[serde(default)]
    recent_changes: VecDeque<ChangeRecord>,
}

impl StateTable {
    /// Takes the checks of a (new) bundle: every planned check not reported yet is pending;
    /// checks no longer planned and agents no longer planned (and silent) are forgotten.
    pub fn set_bundle(&mut self, bundle: &ZoneBundle) {
        let mut planned = BTreeMap::new();
        for (host, indices) in &bundle.machines {
            for check in indices
                .iter()
                .filter_map(|&i| bundle.checks.get(i as usize))
            {
                planned.insert(key(host, &check.id), false);
            }
        }
        for assignment in &bundle.remote {
            if let Some(check) = bundle.checks.get(assignment.check as usize) {
                planned.insert(key(&assignment.target, &check.id), true);
            }
        }
        self.checks.retain(|key, _| planned.contains_key(key));
        for (key, remote) in planned {
            self.checks.entry(key).or_insert_with(|| CheckEntry {
                state: None,
                hard: false,
                output: String::new(),
                at_ms: 0,
                writer: None,
                remote,
            });
        }
        self.planned_machines = bundle.machines.keys().cloned().collect();
        self.default_interval_seconds = bundle.settings.keepalive_interval_seconds.max(1) as u64;
    }

    /// Applies one report from `agent` with its `sequence`, received at `received_ms`.
    pub fn apply(&mut self, agent: &str, sequence: u64, report: &Report, received_ms: u64) {
        match report {
            Report::StateChange(check) => {
                self.applied.state_changes += 1;
                let newer = self.apply_check(agent, sequence, check, false);
                self.remember(agent, sequence, check, !newer);
            }
            Report::Result(check) => {
                self.applied.results += 1;
                self.apply_check(agent, sequence, check, false);
            }
            Report::Keepalive(keepalive) => {
                self.applied.keepalives += 1;
                self.apply_keepalive(agent, keepalive, received_ms);
            }
            // Forwarded to the masters, which run processes; the zone keeps no view of them.
            Report::ElementTransition(_) => self.applied.element_transitions += 1,
        }
    }

    /// Applies a report of the satellite's own remote checks.
    pub fn apply_own(&mut self, replica: &str, sequence: u64, report: &Report) {
        if let Report::StateChange(check) | Report::Result(check) = report {
            let change = matches!(report, Report::StateChange(_));
            self.applied.state_changes += u64::from(change);
            self.applied.results += u64::from(!change);
            let newer = self.apply_check(replica, sequence, check, true);
            if change {
                self.remember(replica, sequence, check, !newer);
            }
        }
    }

    /// Adds a state change to the recent history, forgetting the oldest beyond
    /// [`RECENT_CHANGES`].
    fn remember(&mut self, agent: &str, sequence: u64, report: &CheckReport, outdated: bool) {
        if self.recent_changes.len() == RECENT_CHANGES {
            self.recent_changes.pop_front();
        }
        self.recent_changes.push_back(ChangeRecord {
            host: report.host.clone(),
            check: report.check.clone(),
            state: report.state,
            hard: report.hard,
            at_ms: report.at_ms,
            writer: Writer {
                agent: agent.to_owned(),
                sequence,
            },
            outdated,
        });
    }

    /// The most recent state changes in the order they arrived, oldest first.
    pub fn recent_changes(&self) -> impl Iterator<Item = &ChangeRecord> {
        self.recent_changes.iter()
    }

    /// Applies a check report; returns whether it was newer than the stored state.
    fn apply_check(
        &mut self,
        agent: &str,
        sequence: u64,
        report: &CheckReport,
        remote: bool,
    ) -> bool {
        let entry = self
            .checks
            .entry(key(&report.host, &report.check))
            .or_insert_with(|| CheckEntry {
                state: None,
                hard: false,
                output: String::new(),
                at_ms: 0,
                writer: None,
                remote,
            });
        let stamp = Stamp {
            writer: agent,
            sequence,
            at_ms: report.at_ms,
        };
        let stored = entry.writer.as_ref().map(|writer| Stamp {
            writer: &writer.agent,
            sequence: writer.sequence,
            at_ms: entry.at_ms,
        });
        let newer = stamp.is_newer_than(stored.as_ref());
        if !newer {
            self.applied.outdated += 1;
            return false;
        }
        entry.state = Some(report.state);
        entry.hard = report.hard;
        entry.output = report.output.clone();
        entry.at_ms = report.at_ms;
        entry.writer = Some(Writer {
            agent: agent.to_owned(),
            sequence,
        });
        true
    }

    fn apply_keepalive(&mut self, agent: &str, keepalive: &Keepalive, received_ms: u64) {
        let entry = self.agents.entry(agent.to_owned()).or_default();
        if received_ms < entry.last_keepalive_ms {
            return;
        }
        entry.last_keepalive_ms = received_ms;
        entry.interval_seconds = keepalive.interval_seconds;
        entry.plan_held = keepalive.plan.held;
        entry.plan_reason = keepalive.plan.reason.clone();
        entry.plan_hash = keepalive.plan.hash.clone();
        entry.counts = keepalive.counts;
    }

    /// Whether an agent is stale at `now_ms`: it missed [`MISSED_KEEPALIVES`] keepalives
    /// (at the interval it announced) or never sent one.
    pub fn is_stale(&self, agent: &str, now_ms: u64) -> bool {
        let Some(entry) = self.agents.get(agent) else {
            return true;
        };
        let interval = if entry.interval_seconds > 0 {
            entry.interval_seconds
        } else {
            self.default_interval_seconds.max(1)
        };
        is_stale(entry.last_keepalive_ms, interval, now_ms)
    }

    /// Every agent: the planned machines and whoever sent a keepalive.
    pub fn agents(&self, now_ms: u64) -> Vec<AgentView> {
        let hosts: BTreeSet<&String> = self
            .planned_machines
            .iter()
            .chain(self.agents.keys())
            .collect();
        hosts
            .into_iter()
            .map(|host| self.agent_view(host, now_ms))
            .collect()
    }

    /// Every check's entry.
    pub fn checks(&self) -> impl Iterator<Item = (&CheckKey, &CheckEntry)> {
        self.checks.iter()
    }

    /// The checks of one machine or target, in order (a range, not a scan).
    pub fn checks_of<'a>(
        &'a self,
        host: &'a str,
    ) -> impl Iterator<Item = (&'a CheckKey, &'a CheckEntry)> + 'a {
        let from = CheckKey {
            host: host.to_owned(),
            check: CheckId {
                namespace: String::new(),
                rule_set: String::new(),
                rule: String::new(),
            },
        };
        self.checks
            .range(from..)
            .take_while(move |(key, _)| key.host == host)
    }

    /// One agent, planned or heard from; `None` when neither.
    pub fn agent(&self, host: &str, now_ms: u64) -> Option<AgentView> {
        (self.planned_machines.contains(host) || self.agents.contains_key(host))
            .then(|| self.agent_view(host, now_ms))
    }

    fn agent_view(&self, host: &str, now_ms: u64) -> AgentView {
        AgentView {
            host: host.to_owned(),
            stale: self.is_stale(host, now_ms),
            entry: self.agents.get(host).cloned().unwrap_or_default(),
        }
    }

    /// The state of one check.
    pub fn check(&self, host: &str, check: &CheckId) -> Option<&CheckEntry> {
        self.checks.get(&key(host, check))
    }

    /// What was applied so far.
    pub fn applied(&self) -> &Applied {
        &self.applied
    }

    /// The zone's agents counted.
    pub fn zone_summary(&self, zone: &str, replica: &str, now_ms: u64, owned: u32) -> ZoneSummary {
        let agents = self.agents(now_ms);
        let stale = agents.iter().filter(|a| a.stale).count() as u32;
        ZoneSummary {
            zone: zone.to_owned(),
            replica: replica.to_owned(),
            at_ms: now_ms,
            agents: agents.len() as u32,
            connected: agents.len() as u32 - stale,
            stale,
            plan_held: agents.iter().filter(|a| a.entry.plan_held).count() as u32,
            remote_checks_owned: owned,
        }
    }
}

fn key(host: &str, check: &CheckId) -> CheckKey {
    CheckKey::new(host, check)
}

/// A map with structured keys as a list of pairs (JSON object keys are strings only).
mod pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        map: &BTreeMap<K, V>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K, V, D>(deserializer: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
pub(crate) mod tests;
