//! The last good version of every object: an invalid spec never replaces what was published
//! before. Compile runs on the current objects (its diagnostics go to status); when an object
//! has errors and an earlier version of it compiled without any, compile runs again with that
//! earlier spec in its place, and that second output is what gets published.
//!
//! **Across references.** A rule set broken by a change to a template it uses (a new required
//! parameter, a threshold its values make invalid) keeps running the checks it last compiled
//! to: the templates it used then are remembered with it, and while it has errors it is
//! served with a pinned copy of each template that changed since (named
//! `<name>.last-good.<rule set>`, renamed back in what is published), so every other rule set
//! already gets the new template. Its status still reports the error, naming the template and
//! the field.
//!
//! **A change that breaks its dependents** — a zone's shorter `cycleSeconds` that rule sets'
//! checks no longer fit, a rule set losing a rule a process names — is an error on the changed
//! object (`BreaksDependents`, naming them), so its last good spec is served and the
//! dependents keep running.
//!
//! Limits: the cache is in memory, so a replica that starts (or takes over) while a spec is
//! already invalid has no earlier version and publishes the valid rest of it.

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
    /// Per rule set, the templates it used when it last compiled without errors.
    used_templates: BTreeMap<ObjectRef, Vec<CheckTemplate>>,
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
        let mut reported = compile::compile(&input);
        self.report_breaking_changes(&input, &mut reported);
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
        let pinned = self.pin_templates(&mut served_input, &errored, &mut held);
        let served = if held.is_empty() {
            reported.clone()
        } else {
            let mut served = compile::compile(&served_input);
            unpin(&mut served, &pinned);
            served
        };
        Compiled {
            reported,
            served,
            served_input,
            held,
        }
    }
}

impl LastGood {
    /// A change that breaks the objects depending on it is an error itself, so its last good
    /// spec is served: a zone whose change breaks rule sets (a shorter `cycleSeconds` their
    /// checks' timeouts no longer fit), a rule set whose change breaks processes (a rule they
    /// name is gone). Each such object that differs from its last good spec is tried with that
    /// spec; where this leaves fewer dependents with errors, the object gets an error naming
    /// them.
    fn report_breaking_changes(&self, input: &Input, reported: &mut Output) {
        for (index, zone) in input.zones.iter().enumerate() {
            let Some(good) = self.zones.get(&zone.key()) else {
                continue;
            };
            self.report_if_breaking(
                input,
                reported,
                zone.key(),
                good,
                &zone.spec,
                "RuleSet",
                |trial| {
                    trial.zones[index].spec = good.clone();
                },
            );
        }
        for (index, rule_set) in input.rule_sets.iter().enumerate() {
            let Some(good) = self.rule_sets.get(&rule_set.key()) else {
                continue;
            };
            self.report_if_breaking(
                input,
                reported,
                rule_set.key(),
                good,
                &rule_set.spec,
                "BusinessProcess",
                |trial| trial.rule_sets[index].spec = good.clone(),
            );
        }
        reported.diagnostics.sort();
    }

    /// Adds a `BreaksDependents` error on `key` when its last good spec (`good`, put in place
    /// by `restore`) leaves fewer objects of `dependent_kind` with errors than `current`.
    #[allow(clippy::too_many_arguments)]
    fn report_if_breaking<S: PartialEq>(
        &self,
        input: &Input,
        reported: &mut Output,
        key: ObjectRef,
        good: &S,
        current: &S,
        dependent_kind: &str,
        restore: impl FnOnce(&mut Input),
    ) {
        let broken = with_errors(reported, dependent_kind);
        if broken.is_empty() || good == current {
            return;
        }
        let mut trial = input.clone();
        restore(&mut trial);
        let still = with_errors(&compile::compile(&trial), dependent_kind);
        let fixed: Vec<String> = broken
            .difference(&still)
            .map(|r| format!("{}/{}", r.namespace, r.name))
            .collect();
        if fixed.is_empty() {
            return;
        }
        let dependents = match dependent_kind {
            "RuleSet" => "rule sets",
            _ => "business processes",
        };
        reported.diagnostics.push(compile::Diagnostic {
            object: key,
            severity: Severity::Error,
            reason: compile::Reason::BreaksDependents,
            message: format!(
                "this change breaks {dependents} {} (see their conditions); the last good spec \
                 is served until they fit",
                fixed.join(", ")
            ),
        });
    }

    /// Remembers the templates each rule set without errors uses; gives each rule set with
    /// errors a pinned copy of every template it used then that has changed since. Returns the
    /// pinned keys (`namespace/pinned name`) with the template key they stand for.
    fn pin_templates(
        &mut self,
        input: &mut Input,
        errored: &BTreeSet<ObjectRef>,
        held: &mut BTreeSet<ObjectRef>,
    ) -> BTreeMap<String, String> {
        let current: BTreeMap<ObjectRef, CheckTemplate> = input
            .templates
            .iter()
            .map(|t| (t.key(), t.clone()))
            .collect();
        let present: BTreeSet<ObjectRef> = input.rule_sets.iter().map(Versioned::key).collect();
        self.used_templates.retain(|key, _| present.contains(key));
        let mut pinned = BTreeMap::new();
        let mut copies = Vec::new();
        for rule_set in &mut input.rule_sets {
            let key = rule_set.key();
            let references = template_references(rule_set);
            if !errored.contains(&key) {
                let used = references
                    .iter()
                    .filter_map(|r| current.get(r).cloned())
                    .collect();
                self.used_templates.insert(key, used);
                continue;
            }
            let Some(used) = self.used_templates.get(&key) else {
                continue;
            };
            for old in used {
                let template_key = old.key();
                if current.get(&template_key).map(|t| &t.spec) == Some(&old.spec) {
                    continue;
                }
                let pinned_name = format!("{}.last-good.{}", name(&old.metadata), key.name);
                let mut copy = old.clone();
                copy.metadata.name = Some(pinned_name.clone());
                copies.push(copy);
                pinned.insert(
                    format!("{}/{pinned_name}", template_key.namespace),
                    format!("{}/{}", template_key.namespace, template_key.name),
                );
                for rule in &mut rule_set.spec.rules {
                    let namespace = rule.template.namespace.as_deref().unwrap_or(&key.namespace);
                    if namespace == template_key.namespace
                        && rule.template.name == template_key.name
                    {
                        rule.template = vedette_crds::common::TemplateReference {
                            name: pinned_name.clone(),
                            namespace: Some(template_key.namespace.clone()),
                        };
                    }
                }
                held.insert(key.clone());
            }
        }
        input.templates.extend(copies);
        pinned
    }
}

/// The objects of `kind` with an error.
fn with_errors(output: &Output, kind: &str) -> BTreeSet<ObjectRef> {
    output
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error && d.object.kind == kind)
        .map(|d| d.object.clone())
        .collect()
}

/// The templates a rule set's rules name.
fn template_references(rule_set: &RuleSet) -> BTreeSet<ObjectRef> {
    let own = namespace(&rule_set.metadata);
    rule_set
        .spec
        .rules
        .iter()
        .map(|rule| {
            ObjectRef::template(
                rule.template.namespace.as_deref().unwrap_or(own),
                &rule.template.name,
            )
        })
        .collect()
}

/// What is published names the templates, not their pinned copies.
fn unpin(served: &mut Output, pinned: &BTreeMap<String, String>) {
    if pinned.is_empty() {
        return;
    }
    for bundle in served.bundles.values_mut() {
        for check in &mut bundle.checks {
            if let Some(original) = pinned.get(&check.template) {
                check.template = original.clone();
            }
        }
    }
    served.templates.retain(|key, _| !pinned.contains_key(key));
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

    /// `input` with the template requiring a new parameter `path` (valid on its own) and a
    /// second rule set that gives it.
    fn with_changed_template(port: &str) -> Input {
        let mut input = input(port);
        let template = &mut input.templates[0].spec;
        template
            .parameters
            .push(serde_yaml::from_str("{name: path, type: string, required: true}").unwrap());
        template.check =
            serde_yaml::from_str("{http: {url: 'http://$host$:$port$$path$'}}").unwrap();
        let other = "apiVersion: vedette.dev/v1alpha1\nkind: RuleSet\nmetadata: {name: other, namespace: web}\n\
             spec:\n  machines: {nodeSelector: {}}\n  rules: [{name: page, template: {name: tcp}, parameters: {path: /health}}]\n";
        input.rule_sets.push(serde_yaml::from_str(other).unwrap());
        input
    }

    #[test]
    fn a_rule_set_broken_by_a_template_change_keeps_its_last_good_checks() {
        let mut last_good = LastGood::default();
        let good = last_good.compile(input("8080"));
        assert!(good.held.is_empty());
        let changed = last_good.compile(with_changed_template("8080"));
        let errors: Vec<&str> = changed
            .reported
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| d.message.as_str())
            .collect();
        assert!(
            errors
                .iter()
                .any(|m| m.contains("web/tcp") && m.contains("path")),
            "the error names the template and the field: {errors:?}"
        );
        assert_eq!(changed.held, [ObjectRef::rule_set("web", "site")].into());
        let checks = &changed.served.bundles["core"].checks;
        let site: Vec<_> = checks.iter().filter(|c| c.id.rule_set == "site").collect();
        assert_eq!(site.len(), 1);
        assert_eq!(
            *site[0], good.served.bundles["core"].checks[0],
            "the broken rule set runs exactly its last good check"
        );
        assert_eq!(
            site[0].template, "web/tcp",
            "published under the template's own name"
        );
        let other: Vec<_> = checks.iter().filter(|c| c.id.rule_set == "other").collect();
        assert!(
            other.len() == 1 && other[0].check.http.is_some(),
            "another rule set gets the new template: {other:?}"
        );
        assert!(
            !changed
                .served
                .templates
                .keys()
                .any(|k| k.contains("last-good")),
            "{:?}",
            changed.served.templates.keys()
        );
    }

    /// A zone with cycles of `cycle` s and a rule set whose check runs on every cycle with a
    /// 30 s timeout.
    fn on_cycles(cycle: u32) -> Input {
        let mut input = input("8080");
        input.zones[0].spec = serde_yaml::from_str(&format!(
            "{{nodeSelector: {{}}, agents: {{cycleSeconds: {cycle}}}}}"
        ))
        .unwrap();
        let template = &mut input.templates[0].spec;
        template.every_cycles = Some(1);
        template.timeout_seconds = 30;
        input
    }

    #[test]
    fn a_zone_change_that_breaks_a_rule_set_is_an_error_on_the_zone_and_not_served() {
        let mut last_good = LastGood::default();
        let good = last_good.compile(on_cycles(60));
        assert!(good.held.is_empty(), "{:?}", good.reported.diagnostics);
        assert_eq!(good.served.bundles["core"].checks[0].interval_seconds, 60);
        let shorter = last_good.compile(on_cycles(20));
        let on_zone: Vec<&str> = shorter
            .reported
            .diagnostics
            .iter()
            .filter(|d| d.object == ObjectRef::zone("core") && d.severity == Severity::Error)
            .map(|d| d.message.as_str())
            .collect();
        assert_eq!(
            on_zone,
            [
                "this change breaks rule sets web/site (see their conditions); the last good spec \
              is served until they fit"
            ]
        );
        assert!(
            shorter.held.contains(&ObjectRef::zone("core")),
            "{:?}",
            shorter.held
        );
        assert_eq!(
            shorter.served.bundles, good.served.bundles,
            "the rule set keeps running on the zone's last good cycles"
        );
        // A change that breaks nothing is taken.
        let longer = last_good.compile(on_cycles(120));
        assert!(longer.held.is_empty(), "{:?}", longer.reported.diagnostics);
        assert_eq!(
            longer.served.bundles["core"].checks[0].interval_seconds,
            120
        );
    }

    /// `input(port)` with a process whose element completes on the rule set's rule `web`, and
    /// the rule set's rule named `rule`.
    fn with_process(rule: &str) -> Input {
        let mut input = input("8080");
        input.rule_sets[0].spec.rules[0].name = rule.to_owned();
        let process = "apiVersion: vedette.dev/v1alpha1\nkind: BusinessProcess\n\
            metadata: {name: nightly, namespace: web}\nspec:\n  elements:\n  - name: job\n\
            \x20   runsOn: {hostNames: [node-1]}\n\
            \x20   standby: {when: {fileExists: /x}}\n\
            \x20   running: {when: {fileExists: /y}}\n\
            \x20   completed: {when: {checkState: {ruleSet: site, rule: web, states: [OK]}}}\n\
            \x20   failed: [{when: {fileExists: /z}}]\n";
        input.processes.push(serde_yaml::from_str(process).unwrap());
        input
    }

    #[test]
    fn a_rule_set_change_that_breaks_a_process_is_an_error_on_the_rule_set_and_not_served() {
        let mut last_good = LastGood::default();
        let good = last_good.compile(with_process("web"));
        assert!(
            !good
                .reported
                .diagnostics
                .iter()
                .any(|d| d.severity == Severity::Error),
            "{:?}",
            good.reported.diagnostics
        );
        let renamed = last_good.compile(with_process("homepage"));
        let on_rule_set: Vec<&str> = renamed
            .reported
            .diagnostics
            .iter()
            .filter(|d| d.object == ObjectRef::rule_set("web", "site"))
            .map(|d| d.message.as_str())
            .collect();
        assert_eq!(
            on_rule_set,
            [
                "this change breaks business processes web/nightly (see their conditions); the last \
              good spec is served until they fit"
            ]
        );
        assert!(renamed.held.contains(&ObjectRef::rule_set("web", "site")));
        assert_eq!(renamed.served.bundles, good.served.bundles);
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
