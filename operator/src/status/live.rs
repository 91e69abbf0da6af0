//! The live part of statuses, as pure functions of the masters' state and the published zone
//! bundles: per rule set the checks by state, the stale ones and the worst problems; per zone
//! the agents connected, stale and on a held plan. The bundles say what is planned, so a
//! check that never reported is *pending* and a machine whose agent never sent a keepalive is
//! *stale*, never silently OK.

use std::collections::BTreeMap;

use vedette_crds::ruleset::{Problem, StateCounts};
use vedette_crds::template::CheckState;
use vedette_protocol::plan::ZoneBundle;

use crate::masters::state::{CheckEntry, MasterState};

/// Problems per rule set in status.
pub const WORST_PROBLEMS: usize = 10;
/// Longest output kept in a problem, UTF-8 bytes (after
/// [`vedette_protocol::text::sanitize_output`]).
pub const MAX_OUTPUT_BYTES: usize = 256;

/// A rule set's live summary.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuleSetLive {
    /// Checks by current state.
    pub counts: StateCounts,
    /// Checks whose agent is stale.
    pub stale: u32,
    /// The worst current hard problems, worst first.
    pub problems: Vec<Problem>,
}

/// A zone's agents and remote checks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ZoneLive {
    /// With a fresh keepalive.
    pub connected: u32,
    /// Missed three keepalives, or never sent one.
    pub stale: u32,
    /// Running a held plan.
    pub on_held_plan: u32,
    /// Remote checks (one per target) by current state; `None` when the zone has none.
    pub remote: Option<StateCounts>,
    /// The worst current hard problems of its remote checks, worst first.
    pub remote_problems: Vec<Problem>,
}

/// Live summaries of every rule set (by `(namespace, name)`) and zone.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Live {
    /// By `(namespace, name)`.
    pub rule_sets: BTreeMap<(String, String), RuleSetLive>,
    /// By zone name.
    pub zones: BTreeMap<String, ZoneLive>,
    /// Business processes by `(namespace, name)`.
    pub processes: BTreeMap<(String, String), crate::masters::process_view::ProcessLive>,
}

/// A hard problem found: host, rule, entry.
type Found<'a> = (&'a str, &'a str, &'a CheckEntry);

/// Summarises `state` over the checks and machines `bundles` plan, at `now_ms`.
pub fn summarise(state: &MasterState, bundles: &BTreeMap<String, ZoneBundle>, now_ms: u64) -> Live {
    let stale = |host: &str| state.agents().get(host).is_none_or(|a| a.stale(now_ms));
    let mut live = Live::default();
    let mut problems: BTreeMap<(String, String), Vec<Found<'_>>> = BTreeMap::new();
    for (zone, bundle) in bundles {
        let zone_live = live.zones.entry(zone.clone()).or_default();
        let mut hosts: Vec<&str> = bundle.machines.keys().map(String::as_str).collect();
        hosts.extend(
            state
                .agents()
                .iter()
                .filter(|(host, agent)| agent.zone == *zone && !bundle.machines.contains_key(*host))
                .map(|(host, _)| host.as_str()),
        );
        for host in hosts {
            let agent_stale = stale(host);
            zone_live.stale += u32::from(agent_stale);
            zone_live.connected += u32::from(!agent_stale);
            zone_live.on_held_plan +=
                u32::from(state.agents().get(host).is_some_and(|a| a.plan_held));
        }
        let mut remote_problems: Vec<Found<'_>> = Vec::new();
        for assignment in &bundle.remote {
            let Some(check) = bundle.checks.get(assignment.check as usize) else {
                continue;
            };
            let entry = state.check(&assignment.target, &check.id);
            zone_live
                .remote
                .get_or_insert_with(StateCounts::default)
                .add(entry.map(|e| e.state));
            if let Some(entry) = entry.filter(|e| e.hard && e.state != CheckState::Ok) {
                remote_problems.push((assignment.target.as_str(), check.id.rule.as_str(), entry));
            }
        }
        zone_live.remote_problems = worst(remote_problems);
        for (host, indices) in &bundle.machines {
            let host_stale = stale(host);
            for check in indices
                .iter()
                .filter_map(|&i| bundle.checks.get(i as usize))
            {
                let key = (check.id.namespace.clone(), check.id.rule_set.clone());
                let rule_set = live.rule_sets.entry(key.clone()).or_default();
                let entry = state.check(host, &check.id);
                rule_set.counts.add(entry.map(|e| e.state));
                rule_set.stale += u32::from(host_stale);
                if let Some(entry) = entry.filter(|e| e.hard && e.state != CheckState::Ok) {
                    problems.entry(key).or_default().push((
                        host.as_str(),
                        check.id.rule.as_str(),
                        entry,
                    ));
                }
            }
        }
    }
    let fresh = |host: &str| !stale(host);
    for model in state.processes().models() {
        if let Some(runtime) = state.processes().runtime(&model.id) {
            live.processes.insert(
                (model.id.namespace.clone(), model.id.name.clone()),
                crate::masters::process_view::live(model, runtime, &fresh),
            );
        }
    }
    for (key, found) in problems {
        if let Some(rule_set) = live.rule_sets.get_mut(&key) {
            rule_set.problems = worst(found);
        }
    }
    live
}

/// The [`WORST_PROBLEMS`] worst of `found`, worst first (then the oldest).
fn worst(mut found: Vec<Found<'_>>) -> Vec<Problem> {
    found.sort_by_key(|(host, rule, e)| (e.state.worst_first(), e.since_ms, *host, *rule));
    found
        .into_iter()
        .take(WORST_PROBLEMS)
        .map(|(host, rule, entry)| problem(host, rule, entry))
        .collect()
}

fn problem(host: &str, rule: &str, entry: &CheckEntry) -> Problem {
    Problem {
        host: host.to_owned(),
        check: rule.to_owned(),
        state: entry.state,
        output: vedette_protocol::text::sanitize_output(&entry.output, MAX_OUTPUT_BYTES),
        since: Some(rfc3339(entry.since_ms)),
    }
}

pub use vedette_protocol::clock::rfc3339;

#[cfg(test)]
#[path = "live_tests.rs"]
mod tests;
