//! Business-process elements on this machine: every second, each element of the plan has its
//! clauses evaluated against the machine's facts (time in the process's zone, processes, files,
//! log lines, this machine's check states) and takes the one transition the state machine
//! allows ([`vedette_protocol::process::next_clause`]), reported through the spool like a
//! check's state change, so an agent cut off from its satellite keeps evaluating and its
//! transitions arrive later, in order. States are saved in `<state-dir>/element-states.json`
//! on every transition, so a restart resumes where the element was.
//!
//! A `logMatch` holds from the first matching line after the element entered its state until
//! it leaves it (lines written before are not counted).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{info, warn};
use vedette_crds::process::ElementState;
use vedette_crds::template::CheckState;
use vedette_protocol::clock::unix_ms;
use vedette_protocol::plan::CheckId;
use vedette_protocol::process::{ElementReport, PlannedElement, in_window, next_clause};
use vedette_protocol::report::Report;

use super::engine::Reporter;
use super::plan_keeper::ActivePlan;
use crate::host_paths::HostPaths;
use crate::probe::facts::{self, LogWatch};
use crate::spool::Priority;

/// How often the clauses are evaluated.
pub const EVALUATE_EVERY: Duration = Duration::from_secs(1);

/// What a clause may ask of the machine.
pub trait Facts {
    /// A process with this name runs.
    fn process_running(&mut self, name: &str) -> bool;
    /// The file exists.
    fn file_exists(&mut self, path: &str) -> bool;
    /// The state of a check of this machine, if it ran.
    fn check_state(&self, check: &CheckId) -> Option<CheckState>;
    /// New lines of `watch`'s file matching its pattern.
    fn new_log_matches(&mut self, watch: &mut LogWatch) -> u64;
}

/// One element's state machine on this machine.
pub struct ElementMachine {
    planned: PlannedElement,
    zone: Option<vedette_protocol::process::TimeZone>,
    /// The state.
    pub state: ElementState,
    /// Since when, Unix ms (0: not known).
    pub since_ms: u64,
    /// Per clause, its log watch and whether a line matched in this state.
    logs: Vec<Option<(LogWatch, bool)>>,
}

impl ElementMachine {
    /// The machine of `planned`, in `state`.
    pub fn new(planned: PlannedElement, state: ElementState, since_ms: u64) -> Self {
        let zone = match vedette_protocol::process::time_zone(&planned.time_zone) {
            Ok(zone) => Some(zone),
            Err(error) => {
                warn!(message = "A process's time zone is unknown; its time windows never hold.", process = %planned.process, %error);
                None
            }
        };
        let logs = planned
            .clauses
            .iter()
            .map(|clause| {
                let log = clause.when.log_match.as_ref()?;
                match LogWatch::new(&log.path, &log.pattern) {
                    Ok(watch) => Some((watch, false)),
                    Err(error) => {
                        warn!(message = "A logMatch pattern does not compile; it never holds.", process = %planned.process, element = %planned.element, %error);
                        None
                    }
                }
            })
            .collect();
        Self {
            planned,
            zone,
            state,
            since_ms,
            logs,
        }
    }

    /// What the element is.
    pub fn planned(&self) -> &PlannedElement {
        &self.planned
    }

    /// Evaluates the clauses at `now_ms` and takes the transition that fires, if any.
    pub fn step(
        &mut self,
        host: &str,
        facts: &mut dyn Facts,
        now_ms: u64,
    ) -> Option<ElementReport> {
        for (watch, matched) in self.logs.iter_mut().flatten() {
            *matched |= facts.new_log_matches(watch) > 0;
        }
        let truths: Vec<(ElementState, bool)> = (0..self.planned.clauses.len())
            .map(|i| (self.planned.clauses[i].enters, self.holds(i, facts, now_ms)))
            .collect();
        let index = next_clause(self.state, truths)?;
        let clause = &self.planned.clauses[index];
        let report = ElementReport {
            process: self.planned.process.clone(),
            element: self.planned.element.clone(),
            host: host.to_owned(),
            from: self.state,
            to: clause.enters,
            clause: clause.name.clone(),
            message: clause.message.clone(),
            at_ms: now_ms,
        };
        self.state = clause.enters;
        self.since_ms = now_ms;
        for (_, matched) in self.logs.iter_mut().flatten() {
            *matched = false;
        }
        Some(report)
    }

    fn holds(&self, index: usize, facts: &mut dyn Facts, now_ms: u64) -> bool {
        let when = &self.planned.clauses[index].when;
        if let Some(window) = &when.time_window {
            let inside = self
                .zone
                .as_ref()
                .is_some_and(|zone| in_window(window, zone, now_ms).unwrap_or(false));
            if !inside {
                return false;
            }
        }
        if let Some(name) = &when.process_running
            && !facts.process_running(name)
        {
            return false;
        }
        if let Some(path) = &when.file_exists
            && !facts.file_exists(path)
        {
            return false;
        }
        if let Some(condition) = &when.check_state
            && !facts
                .check_state(&condition.check)
                .is_some_and(|state| condition.states.contains(&state))
        {
            return false;
        }
        if when.log_match.is_some() && !self.logs[index].as_ref().is_some_and(|(_, m)| *m) {
            return false;
        }
        true
    }
}

/// The node's facts, read once per evaluation round.
struct NodeFacts<'a> {
    host: &'a HostPaths,
    reporter: &'a Reporter,
    processes: HashMap<String, bool>,
    files: HashMap<String, bool>,
}

impl Facts for NodeFacts<'_> {
    fn process_running(&mut self, name: &str) -> bool {
        let host = self.host;
        *self
            .processes
            .entry(name.to_owned())
            .or_insert_with(|| facts::process_running(name, host))
    }

    fn file_exists(&mut self, path: &str) -> bool {
        let host = self.host;
        *self
            .files
            .entry(path.to_owned())
            .or_insert_with(|| facts::file_exists(path, host))
    }

    fn check_state(&self, check: &CheckId) -> Option<CheckState> {
        self.reporter.state_of(check)
    }

    fn new_log_matches(&mut self, watch: &mut LogWatch) -> u64 {
        watch.new_matches(self.host)
    }
}

/// What is saved of an element.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct Saved {
    state: ElementState,
    since_ms: u64,
}

/// The key of an element in the saved file.
fn key(planned: &PlannedElement) -> String {
    format!("{}/{}", planned.process, planned.element)
}

fn load(path: &std::path::Path) -> BTreeMap<String, Saved> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|error| {
            warn!(message = "Saved element states do not parse; elements start in Standby.", path = %path.display(), %error);
            BTreeMap::new()
        }),
        Err(_) => BTreeMap::new(),
    }
}

/// Saves the states of `machines`, and of elements not in the plan now (`resting`), which
/// resume theirs if the plan brings them back.
fn save(
    path: &std::path::Path,
    machines: &BTreeMap<String, ElementMachine>,
    resting: &BTreeMap<String, Saved>,
) {
    let mut saved: BTreeMap<&String, Saved> = resting.iter().map(|(k, s)| (k, *s)).collect();
    saved.extend(machines.iter().map(|(key, m)| {
        let state = Saved {
            state: m.state,
            since_ms: m.since_ms,
        };
        (key, state)
    }));
    let bytes = serde_json::to_vec(&saved).expect("states always serialize");
    if let Err(error) = crate::atomic_file::replace(path, &bytes) {
        warn!(message = "Failed to save element states.", path = %path.display(), %error);
    }
}

/// Evaluates the elements of the current plan every [`EVALUATE_EVERY`] until `plans` closes.
pub async fn run(
    host: String,
    host_paths: HostPaths,
    mut plans: watch::Receiver<Option<Arc<ActivePlan>>>,
    reporter: Arc<Reporter>,
    state_file: PathBuf,
) {
    let mut saved = load(&state_file);
    let mut machines: BTreeMap<String, ElementMachine> = BTreeMap::new();
    let mut tick = tokio::time::interval(EVALUATE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            changed = plans.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
            _ = tick.tick() => {}
        }
        let plan = plans.borrow().clone();
        let elements = plan
            .as_ref()
            .map(|p| p.plan.elements.as_slice())
            .unwrap_or_default();
        sync(&mut machines, &mut saved, elements);
        if machines.is_empty() {
            continue;
        }
        let mut node = NodeFacts {
            host: &host_paths,
            reporter: &reporter,
            processes: HashMap::new(),
            files: HashMap::new(),
        };
        let now = unix_ms();
        let mut changed = false;
        for machine in machines.values_mut() {
            if let Some(report) = machine.step(&host, &mut node, now) {
                info!(message = "Element changed state.", process = %report.process, element = %report.element, from = %report.from, to = %report.to, clause = %report.clause);
                reporter.spool(Priority::StateChange, &Report::ElementTransition(report));
                changed = true;
            }
        }
        if changed {
            save(&state_file, &machines, &saved);
        }
    }
}

/// Keeps one machine per element of the plan: new ones resume their saved state (or start in
/// Standby), changed ones keep their state, removed ones rest in `saved` (a plan that leaves
/// an element out for a while does not reset it).
fn sync(
    machines: &mut BTreeMap<String, ElementMachine>,
    saved: &mut BTreeMap<String, Saved>,
    elements: &[PlannedElement],
) {
    let wanted: BTreeMap<String, &PlannedElement> = elements.iter().map(|e| (key(e), e)).collect();
    machines.retain(|key, machine| {
        let kept = wanted.contains_key(key);
        if !kept {
            let state = Saved {
                state: machine.state,
                since_ms: machine.since_ms,
            };
            saved.insert(key.clone(), state);
        }
        kept
    });
    for (key, planned) in wanted {
        let current = machines.get(&key);
        if current.is_some_and(|m| m.planned() == planned) {
            continue;
        }
        let (state, since_ms) = match current {
            Some(m) => (m.state, m.since_ms),
            None => saved
                .remove(&key)
                .map_or((ElementState::Standby, 0), |s| (s.state, s.since_ms)),
        };
        machines.insert(key, ElementMachine::new(planned.clone(), state, since_ms));
    }
}

#[cfg(test)]
#[path = "processes_tests.rs"]
mod tests;
