//! Business processes, checked and placed: dependencies form a DAG, conditions name elements
//! the process has and rules its rule sets have, each element runs somewhere; then each
//! clause goes where its facts are ([`ProcessModel`]): a clause of only the machine's facts to
//! the agents of the element's machines (in their plans), a clause that needs another
//! element's state or a check of another machine to the masters. A clause that needs both
//! cannot be evaluated in one place and is an error.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use vedette_crds::process::{
    BusinessProcessSpec, Clause, Deadline, ElementState, ElementStateCondition, ProcessElement,
    TimeWindow,
};
use vedette_crds::template::CheckState;
use vedette_protocol::plan::CheckId;
use vedette_protocol::process::{
    LocalCheckState, MachineConditions, PlannedClause, PlannedElement, ProcessId,
};

use super::Machine;
use super::diagnostic::{Diagnostics, ObjectRef, Reason};
use super::rules::{CompiledRuleSet, select};
use super::zones::Membership;

/// Rules of every rule set: `(namespace, rule set)` → rule names.
pub type RuleIndex<'a> = BTreeMap<(&'a str, &'a str), BTreeSet<&'a str>>;

/// Compiled rule sets by `(namespace, name)`: which machines run which checks.
pub type RuleSets<'r, 'a> = BTreeMap<(&'a str, &'a str), &'r CompiledRuleSet<'a>>;

/// A process as the masters run it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProcessModel {
    /// The process.
    pub id: ProcessId,
    /// Its time zone (valid: compile checked it).
    pub time_zone: String,
    /// Its elements, in spec order.
    pub elements: Vec<ElementModel>,
}

/// An element as the masters run it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ElementModel {
    /// Its name.
    pub name: String,
    /// The machines that run it, sorted.
    pub hosts: Vec<String>,
    /// The elements it depends on, sorted.
    pub depends_on: Vec<String>,
    /// The clauses its machines' agents evaluate.
    pub agent: PlannedElement,
    /// The clauses the masters evaluate.
    pub masters: Vec<MastersClause>,
    /// Every clause's message and receivers, by clause name.
    pub clauses: BTreeMap<String, ClauseInfo>,
    /// Its deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete_by: Option<Deadline>,
}

/// What a clause says when it fires.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClauseInfo {
    /// The transition's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Receivers told of it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<String>,
}

/// A clause the masters evaluate: facts they hold.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MastersClause {
    /// The state it enters.
    pub enters: ElementState,
    /// Its name in the spec.
    pub name: String,
    /// The masters' clock in the process's zone within the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_window: Option<TimeWindow>,
    /// A check (on any machine of its rule set) in one of the states.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_state: Option<(CheckId, Vec<CheckState>)>,
    /// Another element in a state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub element_state: Option<ElementStateCondition>,
}

/// Validates one process and places its clauses; problems go to `diagnostics`.
#[allow(clippy::too_many_arguments)]
pub fn validate(
    namespace: &str,
    name: &str,
    spec: &BusinessProcessSpec,
    rules: &RuleIndex<'_>,
    rule_sets: &RuleSets<'_, '_>,
    machines: &[&Machine],
    membership: &Membership<'_>,
    diagnostics: &mut Diagnostics,
) -> ProcessModel {
    let object = ObjectRef::process(namespace, name);
    let id = ProcessId {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    };
    if let Err(problem) = vedette_protocol::process::time_zone(&spec.time_zone) {
        diagnostics.error(
            &object,
            Reason::InvalidClause,
            format!("timeZone: {problem}"),
        );
    }
    let mut models = Vec::new();
    let mut elements: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for element in &spec.elements {
        if elements.contains_key(element.name.as_str()) {
            let message = format!(
                "element {} is defined twice; the first is used",
                element.name
            );
            diagnostics.error(&object, Reason::Duplicate, message);
            continue;
        }
        let mut depends_on: Vec<&str> = element.depends_on.iter().map(String::as_str).collect();
        depends_on.sort_unstable();
        depends_on.dedup();
        elements.insert(&element.name, depends_on);
    }
    for (element, depends_on) in &elements {
        for missing in depends_on.iter().filter(|d| !elements.contains_key(*d)) {
            let message = format!("element {element}: dependsOn names unknown element {missing}");
            diagnostics.error(&object, Reason::UnknownElement, message);
        }
    }
    for cycle in cycles(&elements) {
        let message = format!("dependencies form a cycle: {}", cycle.join(" -> "));
        diagnostics.error(&object, Reason::DependencyCycle, message);
    }
    for element in &spec.elements {
        let field = format!("element {}: runsOn", element.name);
        let hosts: Vec<String> = select(
            &element.runs_on,
            machines,
            membership,
            &object,
            &field,
            diagnostics,
        )
        .into_iter()
        .map(str::to_owned)
        .collect();
        let mut model = ElementModel {
            name: element.name.clone(),
            depends_on: elements
                .get(element.name.as_str())
                .map(|d| d.iter().map(|s| (*s).to_owned()).collect())
                .unwrap_or_default(),
            agent: PlannedElement {
                process: id.clone(),
                element: element.name.clone(),
                time_zone: spec.time_zone.clone(),
                hosts: hosts.clone(),
                clauses: Vec::new(),
            },
            hosts,
            masters: Vec::new(),
            clauses: BTreeMap::new(),
            complete_by: element.complete_by.clone(),
        };
        if element.complete_by.as_ref().is_some_and(|d| {
            d.after_dependencies_seconds.is_some() && element.depends_on.is_empty()
        }) {
            let message = format!(
                "element {}: completeBy.afterDependenciesSeconds needs dependsOn",
                element.name
            );
            diagnostics.error(&object, Reason::InvalidClause, message);
        }
        for (clause_name, enters, clause) in clauses_of(element) {
            let at = format!("element {}: {clause_name}", element.name);
            check_clause(
                namespace,
                &at,
                clause,
                &elements,
                rules,
                &object,
                diagnostics,
            );
            model.clauses.insert(
                clause_name.clone(),
                ClauseInfo {
                    message: clause.message.clone(),
                    notify: clause.notify.clone(),
                },
            );
            let placed = place(namespace, &model.hosts, clause, rule_sets);
            match placed {
                Ok(Placed::Agent(when)) => model.agent.clauses.push(PlannedClause {
                    enters,
                    name: clause_name,
                    when,
                    message: clause.message.clone(),
                }),
                Ok(Placed::Masters(mut masters)) => {
                    masters.enters = enters;
                    masters.name = clause_name;
                    model.masters.push(masters);
                }
                Err(problem) => {
                    diagnostics.error(&object, Reason::InvalidClause, format!("{at}: {problem}"));
                }
            }
        }
        models.push(model);
    }
    ProcessModel {
        id,
        time_zone: spec.time_zone.clone(),
        elements: models,
    }
}

/// An element's clauses in plan order, each with its name and the state it enters.
pub(super) fn clauses_of(
    element: &ProcessElement,
) -> impl Iterator<Item = (String, ElementState, &Clause)> {
    [
        ("standby", ElementState::Standby, &element.standby),
        ("running", ElementState::Running, &element.running),
        ("completed", ElementState::Completed, &element.completed),
    ]
    .into_iter()
    .map(|(name, state, clause)| (name.to_owned(), state, clause))
    .chain(
        element
            .failed
            .iter()
            .enumerate()
            .map(|(i, clause)| (format!("failed[{i}]"), ElementState::Failed, clause)),
    )
}

/// Where a clause is evaluated.
enum Placed {
    /// By the agents of the element's machines.
    Agent(MachineConditions),
    /// By the masters (`enters` and `name` are filled in by the caller).
    Masters(MastersClause),
}

/// Where `clause` can be evaluated: a check is the machine's when its rule set runs it on every
/// machine of the element; a time window goes with the rest of the clause.
fn place(
    namespace: &str,
    hosts: &[String],
    clause: &Clause,
    rule_sets: &RuleSets<'_, '_>,
) -> Result<Placed, String> {
    let when = &clause.when;
    if when.expression.is_some() {
        return Err("expression is not evaluated by this release; use the other conditions".into());
    }
    let check = when.check_state.as_ref().map(|condition| {
        let id = CheckId {
            namespace: namespace.to_owned(),
            rule_set: condition.rule_set.clone(),
            rule: condition.rule.clone(),
        };
        let on_every_host = rule_sets
            .get(&(namespace, condition.rule_set.as_str()))
            .is_some_and(|rs| {
                rs.checks.iter().any(|c| c.id == id)
                    && hosts.iter().all(|h| rs.machines.contains(&h.as_str()))
            });
        (id, condition.states.clone(), on_every_host)
    });
    let mut machine_facts: Vec<&str> = [
        (when.process_running.is_some(), "processRunning"),
        (when.file_exists.is_some(), "fileExists"),
        (when.log_match.is_some(), "logMatch"),
    ]
    .into_iter()
    .filter_map(|(given, name)| given.then_some(name))
    .collect();
    let mut elsewhere: Vec<&str> = Vec::new();
    if when.element_state.is_some() {
        elsewhere.push("elementState");
    }
    match &check {
        Some((_, _, true)) if elsewhere.is_empty() => machine_facts.push("checkState"),
        Some(_) => elsewhere.push("checkState"),
        None => {}
    }
    if !machine_facts.is_empty() && !elsewhere.is_empty() {
        return Err(format!(
            "combines facts of the element's machine ({}) with facts only the masters hold ({}); no single place can evaluate it — split it into an element of its own",
            machine_facts.join(", "),
            elsewhere.join(", ")
        ));
    }
    if elsewhere.is_empty() {
        return Ok(Placed::Agent(MachineConditions {
            time_window: when.time_window.clone(),
            process_running: when.process_running.clone(),
            file_exists: when.file_exists.clone(),
            log_match: when.log_match.clone(),
            check_state: check.map(|(check, states, _)| LocalCheckState { check, states }),
        }));
    }
    Ok(Placed::Masters(MastersClause {
        enters: ElementState::Standby,
        name: String::new(),
        time_window: when.time_window.clone(),
        check_state: check.map(|(id, states, _)| (id, states)),
        element_state: when.element_state.clone(),
    }))
}

fn check_clause(
    namespace: &str,
    at: &str,
    clause: &Clause,
    elements: &BTreeMap<&str, Vec<&str>>,
    rules: &RuleIndex<'_>,
    object: &ObjectRef,
    diagnostics: &mut Diagnostics,
) {
    if let Some(condition) = &clause.when.element_state
        && !elements.contains_key(condition.element.as_str())
    {
        let message = format!(
            "{at}: elementState names unknown element {}",
            condition.element
        );
        diagnostics.error(object, Reason::UnknownElement, message);
    }
    if let Some(condition) = &clause.when.check_state {
        match rules.get(&(namespace, condition.rule_set.as_str())) {
            None => {
                let message = format!(
                    "{at}: checkState names rule set {namespace}/{}, which does not exist",
                    condition.rule_set
                );
                diagnostics.error(object, Reason::UnknownRuleSet, message);
            }
            Some(names) if !names.contains(condition.rule.as_str()) => {
                let message = format!(
                    "{at}: checkState names rule {} of rule set {namespace}/{}, which has no such rule",
                    condition.rule, condition.rule_set
                );
                diagnostics.error(object, Reason::UnknownRule, message);
            }
            Some(_) => {}
        }
    }
}

/// Every dependency cycle a depth-first search meets, each as a path that ends where it
/// starts (`a -> b -> a`), rotated to start at its first name so each is reported once.
fn cycles<'a>(graph: &BTreeMap<&'a str, Vec<&'a str>>) -> Vec<Vec<&'a str>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Active,
        Done,
    }
    let mut marks: BTreeMap<&str, Mark> = BTreeMap::new();
    let mut found: BTreeSet<Vec<&str>> = BTreeSet::new();
    for &root in graph.keys() {
        if marks.contains_key(root) {
            continue;
        }
        // Iterative DFS: the stack holds (node, next dependency to visit).
        let mut stack: Vec<(&str, usize)> = vec![(root, 0)];
        marks.insert(root, Mark::Active);
        while let Some((node, next)) = stack.last_mut() {
            let node = *node;
            let Some(&dependency) = graph.get(node).and_then(|d| d.get(*next)) else {
                marks.insert(node, Mark::Done);
                stack.pop();
                continue;
            };
            *next += 1;
            match marks.get(dependency) {
                Some(Mark::Active) => {
                    let start = stack
                        .iter()
                        .position(|(n, _)| *n == dependency)
                        .unwrap_or(0);
                    let cycle: Vec<&str> = stack[start..].iter().map(|(n, _)| *n).collect();
                    found.insert(rotated(cycle));
                }
                Some(Mark::Done) => {}
                None if graph.contains_key(dependency) => {
                    marks.insert(dependency, Mark::Active);
                    stack.push((dependency, 0));
                }
                None => {}
            }
        }
    }
    found.into_iter().collect()
}

/// A cycle started at its smallest name and closed: `[b, a]` → `[a, b, a]`.
fn rotated(cycle: Vec<&str>) -> Vec<&str> {
    let at = cycle
        .iter()
        .enumerate()
        .min_by_key(|(_, n)| **n)
        .map_or(0, |(i, _)| i);
    let mut out: Vec<&str> = cycle[at..].iter().chain(&cycle[..at]).copied().collect();
    out.push(out[0]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_are_found_once_and_named_as_paths() {
        let graph: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
            ("a", vec!["b"]),
            ("b", vec!["c"]),
            ("c", vec!["a"]),
            ("d", vec!["d"]),
            ("e", vec!["a"]),
        ]);
        assert_eq!(
            cycles(&graph),
            vec![vec!["a", "b", "c", "a"], vec!["d", "d"]]
        );
        let dag: BTreeMap<&str, Vec<&str>> =
            BTreeMap::from([("a", vec![]), ("b", vec!["a"]), ("c", vec!["a", "b"])]);
        assert!(cycles(&dag).is_empty());
    }
}
