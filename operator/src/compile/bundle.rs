//! Zone bundles: every distinct check a zone needs, sorted by id, and for each machine of the
//! zone the ascending indices of the checks it runs; remote checks with one assignment per
//! target. Checks on cycles get the zone's period here; one whose timeout does not fit it, one
//! an agent would refuse, or one too large for a bundle shard is left out of this zone, with an
//! error on its rule set (or on the zone, for a remote check; a check too large also warns on
//! the zone), so the rest of the zone's bundle is still published and its counts are true.

use std::borrow::Cow;
use std::collections::BTreeMap;

use vedette_crds::zone::{AgentSpec, MonitorZoneSpec};
use vedette_protocol::plan::{AgentSettings, CheckId, PlannedCheck, RemoteAssignment, ZoneBundle};

use vedette_protocol::process::PlannedElement;

use super::cycles;
use super::diagnostic::{Diagnostics, ObjectRef, Reason};
use super::process::ProcessModel;
use super::rules::CompiledRuleSet;
use super::zones::Remote;

/// A host name that stands for every machine while a check with `$host$` is judged.
const ANY_HOST: &str = "host.example";

/// `check` as this zone runs it (its period, on cycles), if an agent runs it; else why not.
/// The agent's own definition decides ([`vedette_agent::runner::compile_check`]), so compile
/// never publishes a check an agent refuses.
fn placed(
    check: &PlannedCheck,
    cycle_seconds: u32,
) -> Result<Cow<'_, PlannedCheck>, (Reason, String)> {
    let in_zone = cycles::in_zone(check, cycle_seconds)
        .map_err(|problem| (Reason::InvalidTiming, problem))?;
    let on_a_machine = vedette_protocol::plan::with_host(&in_zone, ANY_HOST);
    if let Err(reason) = vedette_agent::runner::compile_check(&on_a_machine, cycle_seconds) {
        return Err((
            Reason::Unrunnable,
            format!("agents would refuse it: {reason}"),
        ));
    }
    vedette_protocol::bundle_shards::check_fits(&in_zone)
        .map_err(|problem| (Reason::TooLarge, problem.to_string()))?;
    Ok(in_zone)
}

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
            match placed(check, cycle_seconds) {
                Ok(in_zone) => drop(by_id.insert(&check.id, in_zone)),
                Err((reason, problem)) => {
                    if reason == Reason::TooLarge {
                        diagnostics.warning(
                            &ObjectRef::zone(zone),
                            reason,
                            format!("check {} is left out: {problem}", check.id),
                        );
                    }
                    diagnostics.error(
                        &ObjectRef::rule_set(rule_set.namespace, rule_set.name),
                        reason,
                        format!("rule {} in zone {zone}: {problem}", check.id.rule),
                    );
                }
            }
        }
    }
    for remote in remote {
        match placed(&remote.check, cycle_seconds) {
            Ok(in_zone) => drop(by_id.insert(&remote.check.id, in_zone)),
            Err((reason, problem)) => diagnostics.error(
                &ObjectRef::zone(zone),
                reason,
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
        elements: Vec::new(),
        secrets: Default::default(),
    }
}

/// The process elements that run on `members`, each with the members it runs on; the
/// models come sorted by process, so the elements are too.
pub fn elements<'a>(
    members: &[&str],
    processes: impl Iterator<Item = &'a ProcessModel>,
) -> Vec<PlannedElement> {
    processes
        .flat_map(|process| &process.elements)
        .filter(|element| !element.agent.clauses.is_empty())
        .filter_map(|element| {
            let hosts: Vec<String> = element
                .hosts
                .iter()
                .filter(|h| members.contains(&h.as_str()))
                .cloned()
                .collect();
            (!hosts.is_empty()).then(|| PlannedElement {
                hosts,
                ..element.agent.clone()
            })
        })
        .collect()
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
