//! Zone bundles: every distinct check a zone needs, sorted by id, and for each machine of the
//! zone the ascending indices of the checks it runs; remote checks with one assignment per
//! target.

use std::collections::BTreeMap;

use vedette_agent::plan::{AgentSettings, CheckId, PlannedCheck, RemoteAssignment, ZoneBundle};
use vedette_crds::zone::{AgentSpec, MonitorZoneSpec};

use super::rules::CompiledRuleSet;
use super::zones::Remote;

/// The bundle of one zone.
pub fn assemble(
    zone: &str,
    spec: &MonitorZoneSpec,
    members: &[&str],
    rule_sets: &[CompiledRuleSet<'_>],
    remote: &[Remote],
) -> ZoneBundle {
    let reaching: Vec<(&CompiledRuleSet<'_>, &Vec<&str>)> = rule_sets
        .iter()
        .filter(|rs| !rs.checks.is_empty())
        .filter_map(|rs| Some((rs, rs.machines_by_zone.get(zone)?)))
        .collect();
    let mut by_id: BTreeMap<&CheckId, &PlannedCheck> = BTreeMap::new();
    for (rule_set, _) in &reaching {
        by_id.extend(rule_set.checks.iter().map(|c| (&c.id, c)));
    }
    by_id.extend(remote.iter().map(|r| (&r.check.id, &r.check)));
    let index: BTreeMap<&CheckId, u32> = by_id
        .keys()
        .enumerate()
        .map(|(i, id)| (*id, i as u32))
        .collect();

    let mut machines: BTreeMap<String, Vec<u32>> = members
        .iter()
        .map(|m| ((*m).to_owned(), Vec::new()))
        .collect();
    for (rule_set, selected) in &reaching {
        let indices: Vec<u32> = rule_set.checks.iter().map(|c| index[&c.id]).collect();
        for machine in selected.iter() {
            if let Some(list) = machines.get_mut(*machine) {
                list.extend_from_slice(&indices);
            }
        }
    }
    for list in machines.values_mut() {
        list.sort_unstable();
        list.dedup();
    }
    let mut assignments: Vec<RemoteAssignment> = remote
        .iter()
        .flat_map(|r| {
            let check = index[&r.check.id];
            r.targets.iter().map(move |target| RemoteAssignment {
                check,
                target: target.clone(),
            })
        })
        .collect();
    assignments.sort();
    ZoneBundle {
        zone: zone.to_owned(),
        settings: settings(&spec.agents),
        checks: by_id.into_values().cloned().collect(),
        machines,
        remote: assignments,
    }
}

fn settings(agents: &AgentSpec) -> AgentSettings {
    AgentSettings {
        keepalive_interval_seconds: agents.keepalive_interval_seconds,
        plan_hold_seconds: agents.plan_hold_seconds,
        spool_max_bytes: agents.spool_max_bytes,
        spool_max_age_seconds: agents.spool_max_age_seconds,
    }
}
