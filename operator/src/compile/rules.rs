//! The rule-set join: a rule set's machine set (node selector AND zones AND host names, each
//! part that is given) × its rules, each rule a template instantiated with its values.

use std::collections::{BTreeMap, BTreeSet};

use vedette_crds::common::MachineSelector;
use vedette_crds::ruleset::{Rule, RuleSetSpec};
use vedette_protocol::plan::{CheckId, PlannedCheck};

use super::Machine;
use super::diagnostic::{Diagnostics, ObjectRef, Reason};
use super::planned::{Cadence, planned};
use super::selector::Selector;
use super::template::{Template, find_template, instantiate};
use super::zones::{Membership, count, list};

/// A rule set after compiling: its checks and the machines that run them.
#[derive(Debug, Clone)]
pub struct CompiledRuleSet<'a> {
    /// Namespace.
    pub namespace: &'a str,
    /// Name.
    pub name: &'a str,
    /// One check per rule that compiled, sorted by id.
    pub checks: Vec<PlannedCheck>,
    /// Every machine the machine set selects, sorted.
    pub machines: Vec<&'a str>,
    /// The selected machines by zone (machines without a zone are left out).
    pub machines_by_zone: BTreeMap<&'a str, Vec<&'a str>>,
}

/// Machines selected by a `MachineSelector`: every part that is given must match.
/// `field` prefixes messages (`machines`, `element x: runsOn`).
pub fn select<'a>(
    selector: &MachineSelector,
    machines: &[&'a Machine],
    membership: &Membership<'_>,
    object: &ObjectRef,
    field: &str,
    diagnostics: &mut Diagnostics,
) -> Vec<&'a str> {
    if selector.node_selector.is_none()
        && selector.zones.is_empty()
        && selector.host_names.is_empty()
    {
        let message = format!("{field}: give at least one of nodeSelector, zones or hostNames");
        diagnostics.error(object, Reason::SelectorMatchesNothing, message);
        return Vec::new();
    }
    let labels = match selector
        .node_selector
        .as_ref()
        .map(Selector::new)
        .transpose()
    {
        Ok(labels) => labels,
        Err(error) => {
            diagnostics.error(
                object,
                Reason::InvalidSelector,
                format!("{field}.nodeSelector: {error}"),
            );
            return Vec::new();
        }
    };
    for zone in selector
        .zones
        .iter()
        .filter(|z| !membership.zones.contains_key(z.as_str()))
    {
        diagnostics.warning(
            object,
            Reason::UnknownZone,
            format!("{field}.zones: zone {zone} does not exist"),
        );
    }
    let zones: BTreeSet<&str> = selector.zones.iter().map(String::as_str).collect();
    let hosts: BTreeSet<&str> = selector.host_names.iter().map(String::as_str).collect();
    let selected: Vec<&str> = machines
        .iter()
        .filter(|m| labels.as_ref().is_none_or(|s| s.matches(&m.labels)))
        .filter(|m| {
            zones.is_empty()
                || membership
                    .zone_of
                    .get(m.name.as_str())
                    .is_some_and(|z| zones.contains(z))
        })
        .filter(|m| hosts.is_empty() || hosts.contains(m.name.as_str()))
        .map(|m| m.name.as_str())
        .collect();
    if selected.is_empty() {
        diagnostics.warning(
            object,
            Reason::SelectorMatchesNothing,
            format!("{field}: selects no machine"),
        );
    }
    selected
}

/// Compiles one rule set: selects its machines and instantiates each rule.
pub fn compile_rule_set<'a>(
    namespace: &'a str,
    name: &'a str,
    spec: &'a RuleSetSpec,
    templates: &BTreeMap<(&str, &str), Template<'_>>,
    machines: &[&'a Machine],
    membership: &Membership<'a>,
    diagnostics: &mut Diagnostics,
) -> CompiledRuleSet<'a> {
    let object = ObjectRef::rule_set(namespace, name);
    let selected = select(
        &spec.machines,
        machines,
        membership,
        &object,
        "machines",
        diagnostics,
    );
    let mut machines_by_zone: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut without_zone = Vec::new();
    for machine in &selected {
        match membership.zone_of.get(machine) {
            Some(zone) => machines_by_zone.entry(zone).or_default().push(machine),
            None => without_zone.push(*machine),
        }
    }
    if !without_zone.is_empty() {
        let message = format!(
            "{} selected but in no zone, so not monitored: {}",
            count(without_zone.len(), "machine"),
            list(&without_zone)
        );
        diagnostics.warning(&object, Reason::MachinesWithoutZone, message);
    }
    let mut seen = BTreeSet::new();
    let mut checks = Vec::new();
    for rule in &spec.rules {
        if !seen.insert(rule.name.as_str()) {
            let message = format!("rule {} is defined twice; the first is used", rule.name);
            diagnostics.error(&object, Reason::Duplicate, message);
            continue;
        }
        match compile_rule(namespace, name, spec, rule, templates) {
            Ok(check) => checks.push(check),
            Err(problems) => {
                for (reason, message) in problems {
                    diagnostics.error(&object, reason, format!("rule {}: {message}", rule.name));
                }
            }
        }
    }
    checks.sort_by(|a, b| a.id.cmp(&b.id));
    CompiledRuleSet {
        namespace,
        name,
        checks,
        machines: selected,
        machines_by_zone,
    }
}

fn compile_rule(
    namespace: &str,
    rule_set: &str,
    spec: &RuleSetSpec,
    rule: &Rule,
    templates: &BTreeMap<(&str, &str), Template<'_>>,
) -> Result<PlannedCheck, Vec<(Reason, String)>> {
    let template_namespace = rule.template.namespace.as_deref().unwrap_or(namespace);
    let template = find_template(templates, template_namespace, &rule.template.name)?;
    let mut instance = instantiate(&template, &rule.parameters).map_err(|problems| {
        problems
            .into_iter()
            .map(|p| (p.reason, p.message))
            .collect::<Vec<_>>()
    })?;
    instance.check.bind_secrets(namespace);
    let id = CheckId {
        namespace: namespace.to_owned(),
        rule_set: rule_set.to_owned(),
        rule: rule.name.clone(),
    };
    if rule.interval_seconds.is_some() && rule.every_cycles.is_some() {
        let message = "intervalSeconds and everyCycles are mutually exclusive: a rule runs its \
                       check on its own interval or on its zone's cycles";
        return Err(vec![(Reason::InvalidTiming, message.to_owned())]);
    }
    let cadence = Cadence {
        interval_seconds: rule.interval_seconds,
        every_cycles: rule.every_cycles,
    };
    let check = planned(id, &template, instance, cadence, spec.labels.clone());
    // A check on cycles is measured against each zone's cycles (`cycles::in_zone`).
    if check.every_cycles.is_none() && check.timeout_seconds >= check.interval_seconds {
        let message = format!(
            "intervalSeconds {} must be longer than the template's timeoutSeconds {}",
            check.interval_seconds, check.timeout_seconds
        );
        return Err(vec![(Reason::InvalidTiming, message)]);
    }
    Ok(check)
}
