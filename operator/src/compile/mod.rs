//! The operator's pure core: zones, templates, rule sets, processes and machines in; a
//! `ZoneBundle` per zone, every problem as a `Diagnostic`, and per-object summaries for status
//! out. No I/O, no clock, no client: the same input (in any order) gives the same bytes.

pub mod bundle;
pub mod cycles;
pub mod diagnostic;
pub mod duration;
pub mod notify;
pub mod params;
pub mod planned;
pub mod process;
pub mod rules;
pub mod selector;
pub mod substitute;
pub mod template;
pub mod zones;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use vedette_crds::{BusinessProcess, CheckTemplate, MonitorZone, NotificationConfig, RuleSet};
use vedette_protocol::plan::{ZoneBundle, content_hash};

pub use diagnostic::{Diagnostic, ObjectRef, Reason, Severity};

use diagnostic::{Diagnostics, KIND_NODE};
use rules::CompiledRuleSet;
use template::Template;

/// A machine: a Kubernetes node or a registered host, with its labels.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Machine {
    /// Node name (or registered host name).
    pub name: String,
    /// Its labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Everything compile reads.
#[derive(Clone, Debug, Default)]
pub struct Input {
    /// MonitorZones.
    pub zones: Vec<MonitorZone>,
    /// CheckTemplates.
    pub templates: Vec<CheckTemplate>,
    /// RuleSets.
    pub rule_sets: Vec<RuleSet>,
    /// BusinessProcesses.
    pub processes: Vec<BusinessProcess>,
    /// NotificationConfigs.
    pub notifications: Vec<NotificationConfig>,
    /// Machines.
    pub machines: Vec<Machine>,
}

/// What a rule set's status reports.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RuleSetSummary {
    /// Machines the machine set selects.
    pub machines: u32,
    /// Rules that compiled (and are emitted).
    pub rules: u32,
    /// Checks in all: per zone, its selected machines × the compiled rules that fit the
    /// zone's cycle.
    pub checks: u32,
}

/// What a template's status reports.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TemplateSummary {
    /// The probe its check runs, such as `http`.
    pub probe: Option<String>,
    /// Rule sets with a rule that names it.
    pub rule_sets: u32,
    /// Zone remote checks that name it.
    pub remote_checks: u32,
}

/// What a zone's status reports.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ZoneSummary {
    /// Machines in the zone.
    pub machines: u32,
    /// Distinct checks the zone's bundle holds.
    pub checks: u32,
    /// Checks run in all: per machine, plus one per remote target.
    pub assignments: u32,
}

/// Everything compile produces.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    /// A bundle per zone, by zone name.
    pub bundles: BTreeMap<String, ZoneBundle>,
    /// Every problem, sorted.
    pub diagnostics: Vec<Diagnostic>,
    /// Per rule set, by `namespace/name`.
    pub rule_sets: BTreeMap<String, RuleSetSummary>,
    /// Per template, by `namespace/name`.
    pub templates: BTreeMap<String, TemplateSummary>,
    /// Per zone, by name.
    pub zones: BTreeMap<String, ZoneSummary>,
    /// Business processes as the masters run them, by `namespace/name`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub processes: BTreeMap<String, process::ProcessModel>,
    /// How the masters route notifications (not part of the serialized output, which is
    /// what bundles and snapshots compare).
    #[serde(skip)]
    pub notifications: notify::Routing,
}

/// The content hash of a bundle (hex SHA-256 of its JSON): equal bundles, equal hashes.
pub fn bundle_hash(bundle: &ZoneBundle) -> String {
    content_hash(bundle)
}

/// Compiles everything; never fails: every problem is a diagnostic in the output.
pub fn compile(input: &Input) -> Output {
    let mut diagnostics = Diagnostics::default();
    let machines = unique_machines(&input.machines, &mut diagnostics);
    let zone_specs = unique(
        input
            .zones
            .iter()
            .map(|z| ("", name_of(&z.metadata), &z.spec)),
        diagnostic::KIND_ZONE,
        &mut diagnostics,
    );
    let zone_specs: Vec<_> = zone_specs
        .into_iter()
        .map(|(_, name, spec)| (name, spec))
        .collect();
    let membership = zones::membership(&zone_specs, &machines, &mut diagnostics);

    let templates = validated_templates(input, &mut diagnostics);
    let rule_set_specs = unique(
        input
            .rule_sets
            .iter()
            .map(|r| (namespace_of(&r.metadata), name_of(&r.metadata), &r.spec)),
        diagnostic::KIND_RULE_SET,
        &mut diagnostics,
    );
    let compiled: Vec<CompiledRuleSet<'_>> = rule_set_specs
        .iter()
        .map(|(ns, name, spec)| {
            rules::compile_rule_set(
                ns,
                name,
                spec,
                &templates,
                &machines,
                &membership,
                &mut diagnostics,
            )
        })
        .collect();

    let rule_index: process::RuleIndex<'_> = rule_set_specs
        .iter()
        .map(|(ns, name, spec)| {
            (
                (*ns, *name),
                spec.rules.iter().map(|r| r.name.as_str()).collect(),
            )
        })
        .collect();
    let processes = unique(
        input
            .processes
            .iter()
            .map(|p| (namespace_of(&p.metadata), name_of(&p.metadata), &p.spec)),
        diagnostic::KIND_PROCESS,
        &mut diagnostics,
    );
    let compiled_by_name: process::RuleSets<'_, '_> = compiled
        .iter()
        .map(|rs| ((rs.namespace, rs.name), rs))
        .collect();
    let mut output = Output::default();
    for (ns, name, spec) in processes {
        let model = process::validate(
            ns,
            name,
            spec,
            &rule_index,
            &compiled_by_name,
            &machines,
            &membership,
            &mut diagnostics,
        );
        output.processes.insert(format!("{ns}/{name}"), model);
    }

    for (zone, spec) in &zone_specs {
        let remote = zones::remote_checks(zone, spec, &templates, &mut diagnostics);
        let members = membership
            .machines_of
            .get(zone)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut bundle =
            bundle::assemble(zone, spec, members, &compiled, &remote, &mut diagnostics);
        bundle.elements = bundle::elements(members, output.processes.values());
        output
            .zones
            .insert((*zone).to_owned(), zone_summary(&bundle));
        output.bundles.insert((*zone).to_owned(), bundle);
    }
    let cycle_seconds: BTreeMap<&str, u32> = zone_specs
        .iter()
        .map(|(zone, spec)| (*zone, spec.agents.cycle_seconds))
        .collect();
    output.rule_sets = compiled
        .iter()
        .map(|rs| {
            (
                format!("{}/{}", rs.namespace, rs.name),
                rule_set_summary(rs, &cycle_seconds),
            )
        })
        .collect();
    output.templates = template_summaries(&templates, &rule_set_specs, &zone_specs);
    output.notifications = notify::compile(
        &input.notifications,
        &input.rule_sets,
        &input.processes,
        &mut diagnostics,
    );
    output.diagnostics = diagnostics.into_sorted();
    output
}

pub(super) fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

/// The namespace of a namespaced object; `default` when the manifest gives none.
pub(super) fn namespace_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> &str {
    meta.namespace.as_deref().unwrap_or("default")
}

/// Objects sorted by `(namespace, name)`, one per key. When a key repeats, the copy whose
/// JSON sorts first is kept, so the choice does not depend on input order.
fn unique<'a, T: Serialize>(
    items: impl Iterator<Item = (&'a str, &'a str, &'a T)>,
    kind: &str,
    diagnostics: &mut Diagnostics,
) -> Vec<(&'a str, &'a str, &'a T)> {
    let json = |value: &T| serde_json::to_string(value).unwrap_or_default();
    let mut items: Vec<_> = items.collect();
    items.sort_by(|a, b| {
        (a.0, a.1)
            .cmp(&(b.0, b.1))
            .then_with(|| json(a.2).cmp(&json(b.2)))
    });
    let mut out: Vec<(&str, &str, &T)> = Vec::with_capacity(items.len());
    for item in items {
        match out.last() {
            Some(last) if (last.0, last.1) == (item.0, item.1) => {
                let object = ObjectRef::new(kind, item.0, item.1);
                diagnostics.error(
                    &object,
                    Reason::Duplicate,
                    "defined more than once; one copy is used",
                );
            }
            _ => out.push(item),
        }
    }
    out
}

fn unique_machines<'a>(machines: &'a [Machine], diagnostics: &mut Diagnostics) -> Vec<&'a Machine> {
    let mut sorted: Vec<&Machine> = machines.iter().collect();
    sorted.sort();
    let mut out: Vec<&Machine> = Vec::with_capacity(sorted.len());
    for machine in sorted {
        match out.last() {
            Some(last) if last.name == machine.name => {
                let object = ObjectRef::new(KIND_NODE, "", &machine.name);
                diagnostics.warning(
                    &object,
                    Reason::Duplicate,
                    "machine listed more than once; one copy is used",
                );
            }
            _ => out.push(machine),
        }
    }
    out
}

fn validated_templates<'a>(
    input: &'a Input,
    diagnostics: &mut Diagnostics,
) -> BTreeMap<(&'a str, &'a str), Template<'a>> {
    let specs = unique(
        input
            .templates
            .iter()
            .map(|t| (namespace_of(&t.metadata), name_of(&t.metadata), &t.spec)),
        diagnostic::KIND_TEMPLATE,
        diagnostics,
    );
    specs
        .into_iter()
        .map(|(namespace, name, spec)| {
            let valid = template::validate(namespace, name, spec, diagnostics);
            (
                (namespace, name),
                Template {
                    namespace,
                    name,
                    spec,
                    valid,
                },
            )
        })
        .collect()
}

/// Counts what a rule set puts into bundles: per zone, its machines there × its checks that
/// fit that zone's cycle (a check on cycles whose timeout does not fit is left out).
fn rule_set_summary(
    rule_set: &CompiledRuleSet<'_>,
    cycle_seconds: &BTreeMap<&str, u32>,
) -> RuleSetSummary {
    let checks: usize = rule_set
        .machines_by_zone
        .iter()
        .map(|(zone, machines)| {
            let fitting = match cycle_seconds.get(zone) {
                Some(&cycle) => rule_set
                    .checks
                    .iter()
                    .filter(|check| cycles::in_zone(check, cycle).is_ok())
                    .count(),
                None => rule_set.checks.len(),
            };
            fitting * machines.len()
        })
        .sum();
    RuleSetSummary {
        machines: rule_set.machines.len() as u32,
        rules: rule_set.checks.len() as u32,
        checks: checks as u32,
    }
}

fn zone_summary(bundle: &ZoneBundle) -> ZoneSummary {
    let per_machine: usize = bundle.machines.values().map(Vec::len).sum();
    ZoneSummary {
        machines: bundle.machines.len() as u32,
        checks: bundle.checks.len() as u32,
        assignments: (per_machine + bundle.remote.len()) as u32,
    }
}

fn template_summaries(
    templates: &BTreeMap<(&str, &str), Template<'_>>,
    rule_sets: &[(&str, &str, &vedette_crds::RuleSetSpec)],
    zones: &[(&str, &vedette_crds::MonitorZoneSpec)],
) -> BTreeMap<String, TemplateSummary> {
    let mut users: BTreeMap<(&str, &str), BTreeSet<(&str, &str)>> = BTreeMap::new();
    for (namespace, name, spec) in rule_sets {
        for rule in &spec.rules {
            let template_namespace = rule.template.namespace.as_deref().unwrap_or(namespace);
            users
                .entry((template_namespace, &rule.template.name))
                .or_default()
                .insert((namespace, name));
        }
    }
    let mut remote: BTreeMap<(&str, &str), u32> = BTreeMap::new();
    for (_, spec) in zones {
        for check in &spec.satellites.remote_checks {
            if let Some(reference) = &check.template {
                let namespace = reference.namespace.as_deref().unwrap_or_default();
                *remote.entry((namespace, &reference.name)).or_default() += 1;
            }
        }
    }
    templates
        .iter()
        .map(|(key, template)| {
            let summary = TemplateSummary {
                probe: template.spec.check.probe_kind().map(str::to_owned),
                rule_sets: users.get(key).map_or(0, BTreeSet::len) as u32,
                remote_checks: remote.get(key).copied().unwrap_or_default(),
            };
            (template.key(), summary)
        })
        .collect()
}
