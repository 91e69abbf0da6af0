//! Builders shared by the compile tests: objects from YAML specs, machines from label pairs.

#![allow(dead_code)]

use std::collections::BTreeMap;

use vedette_crds::{BusinessProcess, CheckTemplate, MonitorZone, RuleSet};
use vedette_operator::compile::{Diagnostic, Machine, Output, Reason};

/// A CheckTemplate from its spec in YAML.
pub fn template(namespace: &str, name: &str, spec: &str) -> CheckTemplate {
    let mut object = CheckTemplate::new(name, serde_yaml::from_str(spec).expect("template spec"));
    object.metadata.namespace = Some(namespace.to_owned());
    object
}

/// A RuleSet from its spec in YAML.
pub fn rule_set(namespace: &str, name: &str, spec: &str) -> RuleSet {
    let mut object = RuleSet::new(name, serde_yaml::from_str(spec).expect("rule set spec"));
    object.metadata.namespace = Some(namespace.to_owned());
    object
}

/// A MonitorZone from its spec in YAML.
pub fn zone(name: &str, spec: &str) -> MonitorZone {
    MonitorZone::new(name, serde_yaml::from_str(spec).expect("zone spec"))
}

/// A BusinessProcess from its spec in YAML.
pub fn process(namespace: &str, name: &str, spec: &str) -> BusinessProcess {
    let mut object = BusinessProcess::new(name, serde_yaml::from_str(spec).expect("process spec"));
    object.metadata.namespace = Some(namespace.to_owned());
    object
}

/// A machine with labels.
pub fn machine(name: &str, labels: &[(&str, &str)]) -> Machine {
    Machine {
        name: name.to_owned(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// The diagnostics with a reason.
pub fn with_reason(output: &Output, reason: Reason) -> Vec<&Diagnostic> {
    output
        .diagnostics
        .iter()
        .filter(|d| d.reason == reason)
        .collect()
}

/// The messages of the diagnostics with a reason.
pub fn messages(output: &Output, reason: Reason) -> Vec<String> {
    with_reason(output, reason)
        .into_iter()
        .map(|d| d.message.clone())
        .collect()
}

/// Rule names of the checks a machine runs in a zone's bundle, as `namespace/ruleSet/rule`.
pub fn checks_of(output: &Output, zone: &str, machine: &str) -> Vec<String> {
    let bundle = &output.bundles[zone];
    bundle.machines[machine]
        .iter()
        .map(|&i| bundle.checks[i as usize].id.to_string())
        .collect()
}
