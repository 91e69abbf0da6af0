//! Zone bundles: every distinct check a zone needs, sorted by id, and for each machine of the
//! zone the ascending indices of the checks it runs; remote checks with one assignment per
//! target. Checks on cycles get the zone's period here; one whose timeout does not fit it is
//! left out of this zone, with an error on its rule set (or on the zone, for a remote check).

use std::borrow::Cow;
use std::collections::BTreeMap;

use vedette_crds::zone::{AgentSpec, MonitorZoneSpec};
use vedette_protocol::plan::{AgentSettings, CheckId, PlannedCheck, RemoteAssignment, ZoneBundle};

use super::cycles;
use super::diagnostic::{Diagnostics, ObjectRef, Reason};
use super::rules::CompiledRuleSet;
use super::zones::Remote;

/// The bundle of one zone.
pub fn assemble(
    zone: &str,
    spec: &MonitorZoneSpec,
    members: &[&str],
    rule_sets: &[CompiledRuleSet<'_>],
    remote: &[Remote],
    diagnostics: &mut Diagnostics,
) -> ZoneBundle {
    let reaching: Vec<(&CompiledRuleSet<'_>, &Vec<&str>)> = rule_sets
        .iter()
        .filter(|rs| !rs.checks.is_empty())
        .filter_map(|rs| Some((rs, rs.machines_by_zone.get(zone)?)))
        .collect();
    let cycle_seconds = spec.agents.cycle_seconds;
    let mut by_id: BTreeMap<&CheckId, Cow<'_, PlannedCheck>> = BTreeMap::new();
    for (rule_set, _) in &reaching {
        for check in &rule_set.checks {
            match cycles::in_zone(check, cycle_seconds) {
                Ok(in_zone) => drop(by_id.insert(&check.id, in_zone)),
                Err(problem) => diagnostics.error(
                    &ObjectRef::rule_set(rule_set.namespace, rule_set.name),
                    Reason::InvalidTiming,
                    format!("rule {} in zone {zone}: {problem}", check.id.rule),
                ),
            }
        }
    }
    for remote in remote {
        match cycles::in_zone(&remote.check, cycle_seconds) {
            Ok(in_zone) => drop(by_id.insert(&remote.check.id, in_zone)),
            Err(problem) => diagnostics.error(
                &ObjectRef::zone(zone),
                Reason::InvalidTiming,
                format!("remote check {}: {problem}", remote.check.id.rule),
            ),
        }
    }
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
        let indices: Vec<u32> = rule_set
            .checks
            .iter()
            .filter_map(|c| index.get(&c.id).copied())
            .collect();
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
        .filter_map(|r| Some((index.get(&r.check.id).copied()?, r)))
        .flat_map(|(check, r)| {
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
        checks: by_id.into_values().map(Cow::into_owned).collect(),
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
        cycle_seconds: agents.cycle_seconds,
    }
}
