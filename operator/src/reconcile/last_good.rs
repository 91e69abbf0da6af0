//! The last good version of every object: an invalid spec never replaces what was published
//! before. Compile runs on the current objects (its diagnostics go to status); when an object
//! has errors and an earlier version of it compiled without any, compile runs again with that
//! earlier spec in its place, and that second output is what gets published.
//!
//! Limits: the cache is in memory, so a replica that starts (or takes over) while a spec is
//! already invalid has no earlier version and publishes the valid rest of it; and an error
//! caused by another object (a rule set broken by a template change) is fixed only when the
//! object carrying the error has a good earlier version.

use std::collections::{BTreeMap, BTreeSet};

use vedette_crds::{BusinessProcess, CheckTemplate, MonitorZone, RuleSet};

use crate::compile::{self, Input, ObjectRef, Output, Severity};

/// The two outputs of one pass.
#[derive(Debug)]
pub struct Compiled {
    /// Compile of the current objects: its diagnostics describe what the user wrote.
    pub reported: Output,
    /// Compile of what is published: the current objects, with the last good spec of each
    /// object that has errors now.
    pub served: Output,
    /// The input of `served` (zones with their current metadata and served spec).
    pub served_input: Input,
    /// Objects published from an earlier spec.
    pub held: BTreeSet<ObjectRef>,
}

/// Last good specs, by object.
#[derive(Debug, Default)]
pub struct LastGood {
    zones: BTreeMap<ObjectRef, vedette_crds::MonitorZoneSpec>,
    templates: BTreeMap<ObjectRef, vedette_crds::CheckTemplateSpec>,
    rule_sets: BTreeMap<ObjectRef, vedette_crds::RuleSetSpec>,
    processes: BTreeMap<ObjectRef, vedette_crds::BusinessProcessSpec>,
}

/// An object whose spec can be remembered.
trait Versioned {
    type Spec: Clone + PartialEq;
    fn key(&self) -> ObjectRef;
    fn spec_mut(&mut self) -> &mut Self::Spec;
}

macro_rules! versioned {
    ($kind:ty, $spec:ty, |$o:ident| $key:expr) => {
        impl Versioned for $kind {
            type Spec = $spec;
            fn key(&self) -> ObjectRef {
                let $o = &self.metadata;
                $key
            }
            fn spec_mut(&mut self) -> &mut Self::Spec {
                &mut self.spec
            }
        }
    };
}

fn namespace(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or("default")
}

fn name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

versioned!(MonitorZone, vedette_crds::MonitorZoneSpec, |m| {
    ObjectRef::zone(name(m))
});
versioned!(CheckTemplate, vedette_crds::CheckTemplateSpec, |m| {
    ObjectRef::template(namespace(m), name(m))
});
versioned!(RuleSet, vedette_crds::RuleSetSpec, |m| {
    ObjectRef::rule_set(namespace(m), name(m))
});
versioned!(BusinessProcess, vedette_crds::BusinessProcessSpec, |m| {
    ObjectRef::process(namespace(m), name(m))
});

impl LastGood {
    /// Compiles `input`, remembers the objects without errors, and compiles again with the
    /// last good spec of those with errors.
    pub fn compile(&mut self, input: Input) -> Compiled {
        let reported = compile::compile(&input);
        let errored: BTreeSet<ObjectRef> = reported
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| d.object.clone())
            .collect();
        let mut served_input = input;
        let mut held = BTreeSet::new();
        remember(
            &mut self.zones,
            &mut served_input.zones,
            &errored,
            &mut held,
        );
        remember(
            &mut self.templates,
            &mut served_input.templates,
            &errored,
            &mut held,
        );
        remember(
            &mut self.rule_sets,
            &mut served_input.rule_sets,
            &errored,
            &mut held,
        );
        remember(
            &mut self.processes,
            &mut served_input.processes,
            &errored,
            &mut held,
        );
        let served = if held.is_empty() {
            reported.clone()
        } else {
            compile::compile(&served_input)
        };
        Compiled {
            reported,
            served,
            served_input,
            held,
        }
    }
}

/// Forgets objects that are gone, remembers those without errors, and puts the last good
/// spec into those with errors (recording them in `held`).
fn remember<K: Versioned>(
    cache: &mut BTreeMap<ObjectRef, K::Spec>,
    objects: &mut [K],
    errored: &BTreeSet<ObjectRef>,
    held: &mut BTreeSet<ObjectRef>,
) {
    let present: BTreeSet<ObjectRef> = objects.iter().map(Versioned::key).collect();
    cache.retain(|key, _| present.contains(key));
    for object in objects.iter_mut() {
        let key = object.key();
        if !errored.contains(&key) {
            cache.insert(key, object.spec_mut().clone());
        } else if let Some(good) = cache.get(&key)
            && good != object.spec_mut()
        {
            *object.spec_mut() = good.clone();
            held.insert(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::Machine;

    const WORLD: &str = r#"
apiVersion: vedette.dev/v1alpha1
kind: MonitorZone
metadata: {name: core}
spec: {nodeSelector: {}}
---
apiVersion: vedette.dev/v1alpha1
kind: CheckTemplate
metadata: {name: tcp, namespace: web}
spec:
  parameters: [{name: port, type: int, default: 80, minimum: 1, maximum: 65535}]
  check: {tcp: {port: $port$}}
"#;

    fn input(port: &str) -> Input {
        let mut input = Input::default();
        for document in serde_yaml::Deserializer::from_str(WORLD) {
            let value: serde_yaml::Value = serde::Deserialize::deserialize(document).unwrap();
            match value["kind"].as_str() {
                Some("MonitorZone") => input.zones.push(serde_yaml::from_value(value).unwrap()),
                _ => input.templates.push(serde_yaml::from_value(value).unwrap()),
            }
        }
        let rule_set = format!(
            "apiVersion: vedette.dev/v1alpha1\nkind: RuleSet\nmetadata: {{name: site, namespace: web}}\n\
             spec:\n  machines: {{nodeSelector: {{}}}}\n  rules: [{{name: web, template: {{name: tcp}}, parameters: {{port: {port}}}}}]\n"
        );
        input
            .rule_sets
            .push(serde_yaml::from_str(&rule_set).unwrap());
        input.machines.push(Machine {
            name: "node-1".to_owned(),
            labels: Default::default(),
        });
        input
    }

    #[test]
    fn an_invalid_spec_reports_its_error_and_serves_the_last_good_one() {
        let mut last_good = LastGood::default();
        let good = last_good.compile(input("8080"));
        assert!(good.held.is_empty());
        let bad = last_good.compile(input("abc"));
        assert!(
            bad.reported
                .diagnostics
                .iter()
                .any(|d| d.severity == Severity::Error)
        );
        assert_eq!(bad.held, [ObjectRef::rule_set("web", "site")].into());
        assert_eq!(bad.served.bundles, good.served.bundles);
    }

    #[test]
    fn without_a_good_version_the_current_one_is_served() {
        let mut last_good = LastGood::default();
        let bad = last_good.compile(input("abc"));
        assert!(bad.held.is_empty());
        assert_eq!(bad.served, bad.reported);
        let fixed = last_good.compile(input("9090"));
        assert!(fixed.held.is_empty() && fixed.reported.diagnostics.is_empty());
    }
}
