//! A business process as people see it (pure), in the status's own types: each element's
//! state, since, message, clause, machine, its dependencies' states and what blocks it, its
//! last run and median duration; the counts of the printer columns; the current run's
//! violations; and whether the masters evaluate the process at all (`Evaluating`: its
//! elements select machines, and their agents are fresh). The status writer
//! (`crate::status`), `GET /v1/processes` and standalone's summary all show this.

use vedette_crds::process::{
    DependencyStatus, ElementState, ElementStatus, RunStatus, ViolationStatus,
};

use serde::Serialize;
use vedette_protocol::clock::rfc3339;

use super::processes::{ProcessRuntime, VIOLATIONS_KEPT};
use super::state::MasterState;
use crate::compile::process::ProcessModel;

/// Violations listed in status.
pub const VIOLATIONS_LISTED: usize = 16;

/// The live part of a process's status.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessLive {
    /// Each element, in spec order.
    pub elements: Vec<ElementStatus>,
    /// Elements Running.
    pub running: u32,
    /// Elements Completed.
    pub completed: u32,
    /// Elements Failed.
    pub failed: u32,
    /// Violations in the current run.
    pub violations: u32,
    /// The first of them.
    pub current_violations: Vec<ViolationStatus>,
    /// `Evaluating`: `None` when it is, else why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_evaluating: Option<NotEvaluating>,
}

/// Why the masters do not evaluate a process (the `Evaluating` condition, False).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NotEvaluating {
    /// `NoMachines` or `AgentsStale`.
    pub reason: String,
    /// Which elements or machines.
    pub message: String,
}

/// One process as `GET /v1/processes` and standalone's `/v1/state` show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessView {
    /// `namespace/name`.
    pub process: String,
    /// Its live status.
    #[serde(flatten)]
    pub live: ProcessLive,
}

/// Every process the masters run, at `now_ms` (agents stale by then make it not evaluated).
pub fn views(state: &MasterState, now_ms: u64) -> Vec<ProcessView> {
    let fresh = |host: &str| state.agents().get(host).is_some_and(|a| !a.stale(now_ms));
    state
        .processes()
        .models()
        .filter_map(|model| {
            let runtime = state.processes().runtime(&model.id)?;
            Some(ProcessView {
                process: model.id.to_string(),
                live: live(model, runtime, &fresh),
            })
        })
        .collect()
}

/// The live status of `model` in `runtime`; `fresh` says whether a machine's agent is fresh.
pub fn live(
    model: &ProcessModel,
    runtime: &ProcessRuntime,
    fresh: &dyn Fn(&str) -> bool,
) -> ProcessLive {
    let state_of = |name: &str| {
        runtime
            .elements
            .get(name)
            .map_or(ElementState::Standby, |e| e.state)
    };
    let mut live = ProcessLive::default();
    for element in &model.elements {
        let Some(runtime_element) = runtime.elements.get(&element.name) else {
            continue;
        };
        let state = runtime_element.state;
        live.running += u32::from(state == ElementState::Running);
        live.completed += u32::from(state == ElementState::Completed);
        live.failed += u32::from(state == ElementState::Failed);
        live.elements.push(ElementStatus {
            name: element.name.clone(),
            state,
            since: (runtime_element.since_ms > 0).then(|| rfc3339(runtime_element.since_ms)),
            message: runtime_element.message.clone(),
            clause: runtime_element.clause.clone(),
            machine: runtime_element.machine.clone(),
            dependencies: element
                .depends_on
                .iter()
                .map(|d| DependencyStatus {
                    name: d.clone(),
                    state: state_of(d),
                })
                .collect(),
            blocked_by: blocked_by(model, &element.name, &state_of),
            last_run: runtime_element.last_run.map(|run| RunStatus {
                started: rfc3339(run.started_ms),
                ended: rfc3339(run.ended_ms),
                seconds: (run.ended_ms - run.started_ms) / 1000,
                outcome: run.outcome,
            }),
            median_run_seconds: runtime_element.median_ms().map(|ms| ms / 1000),
        });
    }
    live.violations = runtime.violations.len().min(VIOLATIONS_KEPT) as u32;
    live.current_violations = runtime
        .violations
        .iter()
        .take(VIOLATIONS_LISTED)
        .map(|v| ViolationStatus {
            kind: v.kind,
            element: v.element.clone(),
            dependency: v.dependency.clone(),
            at: rfc3339(v.at_ms),
            message: v.message.clone(),
        })
        .collect();
    live.not_evaluating = not_evaluating(model, fresh);
    live
}

/// The failed element, among those `element` depends on directly or not, nearest first.
fn blocked_by(
    model: &ProcessModel,
    element: &str,
    state_of: &dyn Fn(&str) -> ElementState,
) -> Option<String> {
    let mut queue: std::collections::VecDeque<&str> = std::collections::VecDeque::from([element]);
    let mut seen = std::collections::BTreeSet::from([element]);
    while let Some(name) = queue.pop_front() {
        let Some(model_element) = model.elements.iter().find(|e| e.name == name) else {
            continue;
        };
        for dependency in &model_element.depends_on {
            if !seen.insert(dependency) {
                continue;
            }
            if state_of(dependency) == ElementState::Failed {
                return Some(dependency.clone());
            }
            queue.push_back(dependency);
        }
    }
    None
}

fn not_evaluating(model: &ProcessModel, fresh: &dyn Fn(&str) -> bool) -> Option<NotEvaluating> {
    let unplaced: Vec<&str> = model
        .elements
        .iter()
        .filter(|e| e.hosts.is_empty())
        .map(|e| e.name.as_str())
        .collect();
    if !unplaced.is_empty() {
        return Some(NotEvaluating {
            reason: "NoMachines".to_owned(),
            message: format!("elements select no machine: {}", unplaced.join(", ")),
        });
    }
    let mut stale: Vec<&str> = model
        .elements
        .iter()
        .flat_map(|e| &e.hosts)
        .map(String::as_str)
        .filter(|h| !fresh(h))
        .collect();
    stale.sort_unstable();
    stale.dedup();
    if stale.is_empty() {
        return None;
    }
    let listed: Vec<&str> = stale.iter().take(10).copied().collect();
    let more = stale.len().saturating_sub(listed.len());
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    Some(NotEvaluating {
        reason: "AgentsStale".to_owned(),
        message: format!(
            "the agents of {}{tail} are stale or never connected: their transitions arrive when \
             they are back",
            listed.join(", ")
        ),
    })
}

#[cfg(test)]
#[path = "process_view_tests.rs"]
mod tests;
