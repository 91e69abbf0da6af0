//! Business processes, checked (not evaluated): dependencies form a DAG, conditions name
//! elements the process has and rules its rule sets have, and each element runs somewhere.

use std::collections::{BTreeMap, BTreeSet};

use vedette_crds::process::{BusinessProcessSpec, Clause};

use super::Machine;
use super::diagnostic::{Diagnostics, ObjectRef, Reason};
use super::rules::select;
use super::zones::Membership;

/// Rules of every rule set: `(namespace, rule set)` → rule names.
pub type RuleIndex<'a> = BTreeMap<(&'a str, &'a str), BTreeSet<&'a str>>;

/// Validates one process; problems go to `diagnostics`.
pub fn validate(
    namespace: &str,
    name: &str,
    spec: &BusinessProcessSpec,
    rules: &RuleIndex<'_>,
    machines: &[&Machine],
    membership: &Membership<'_>,
    diagnostics: &mut Diagnostics,
) {
    let object = ObjectRef::process(namespace, name);
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
        select(
            &element.runs_on,
            machines,
            membership,
            &object,
            &field,
            diagnostics,
        );
        let clauses = [
            ("standby", &element.standby),
            ("running", &element.running),
            ("completed", &element.completed),
        ]
        .into_iter()
        .map(|(state, clause)| (state.to_owned(), clause))
        .chain(
            element
                .failed
                .iter()
                .enumerate()
                .map(|(i, clause)| (format!("failed[{i}]"), clause)),
        );
        for (state, clause) in clauses {
            let at = format!("element {}: {state}", element.name);
            check_clause(
                namespace,
                &at,
                clause,
                &elements,
                rules,
                &object,
                diagnostics,
            );
        }
    }
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
