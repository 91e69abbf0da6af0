//! The masters' business-process engine, as a pure value: every element's state per machine
//! and as a whole, correlation between elements, deadlines and runs.
//!
//! - **Agents' transitions** ([`ProcessEngine::apply_report`]) move the element on their
//!   machine in the agent's order: each continues the machine's chain, one that arrives before
//!   the one it follows waits for it (see [`ProcessEngine::release`]). A masters' clause moves
//!   the machines too, so an agent that did not see that step is taken back in by its next. The element's own state follows its machines by
//!   [`vedette_protocol::process::aggregate`].
//! - **The masters' clauses** (another element's state, a check of another machine) and the
//!   **deadlines** are evaluated by [`ProcessEngine::evaluate`], on every merged batch and
//!   every second; a masters' clause moves the element and every machine that may follow.
//! - **Correlation.** An element entering Running while an element it depends on is not
//!   Completed is an `Early` violation naming both; not Completed by its deadline is `Late`,
//!   raised at the deadline. A process run starts when its first element leaves Standby and
//!   ends when all are back; the violations of the current run are kept (a late raised while
//!   nothing ran stays with the next run).
//! - **Runs.** Entering Running starts an element's run; Completed or Failed ends it, with its
//!   duration; the median of the last [`RUNS_KEPT`] durations is in status.
//!
//! Time comes in as arguments; what happened goes out as [`ProcessEvent`]s for the event
//! stream, the history and Kubernetes Events.

use std::collections::{BTreeMap, VecDeque};

use vedette_crds::process::{ElementState, ViolationKind};
use vedette_crds::template::CheckState;
use vedette_protocol::plan::CheckId;
use vedette_protocol::process::{ElementReport, ProcessId, aggregate, in_window, next_clause};

use crate::compile::process::{ElementModel, MastersClause, ProcessModel};

/// Durations kept per element for the median.
pub const RUNS_KEPT: usize = 20;
/// Violations kept per process run.
pub const VIOLATIONS_KEPT: usize = 64;
/// The machine of a transition the masters made.
pub const MASTERS: &str = "masters";
/// Longest a transition waits for the one it follows, ms.
pub const PARK_LIMIT_MS: u64 = 10 * 60 * 1000;
/// Transitions waiting per machine at most; beyond, the oldest is dropped.
pub const MAX_PARKED: usize = 32;
/// The [`Violation::slot`] of a late violation (an element depends on at most 32 others).
pub const LATE_SLOT: u8 = 63;

/// A machine of an element: process, element, host.
type ParkKey = (ProcessId, String, String);

/// A transition waiting for the one it follows.
#[derive(Clone, Debug)]
struct Parked {
    report: ElementReport,
    agent: String,
    sequence: u64,
    parked_ms: u64,
}

/// An element's last transition, read back from the history at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restored {
    /// The process.
    pub process: ProcessId,
    /// The element.
    pub element: String,
    /// The state it entered.
    pub state: ElementState,
    /// When.
    pub at_ms: u64,
    /// The transition's message.
    pub message: Option<String>,
    /// Its clause.
    pub clause: Option<String>,
    /// Its machine.
    pub machine: Option<String>,
    /// Its last runs, newest first (at most [`RUNS_KEPT`]).
    pub runs: Vec<Run>,
}

/// One element's state as the masters know it.
#[derive(Clone, Debug, PartialEq)]
pub struct ElementRuntime {
    /// Each machine's state.
    pub machines: BTreeMap<String, ElementState>,
    /// When each machine's last transition happened (its agent's clock).
    pub machine_at_ms: BTreeMap<String, u64>,
    /// The element's state.
    pub state: ElementState,
    /// Since when (0: never left its first Standby).
    pub since_ms: u64,
    /// The message of the transition into it.
    pub message: Option<String>,
    /// The clause that fired.
    pub clause: Option<String>,
    /// The machine that reported it (or [`MASTERS`]).
    pub machine: Option<String>,
    /// When the current run started.
    pub run_started_ms: Option<u64>,
    /// The last finished run.
    pub last_run: Option<Run>,
    /// Durations of the last runs, ms, oldest first.
    pub durations: VecDeque<u64>,
    /// When it last entered Completed.
    pub completed_ms: Option<u64>,
    /// The deadline instant a late violation was raised for.
    pub late_raised_for: Option<u64>,
    /// When the masters first evaluated it: deadlines before are not raised.
    pub watched_since_ms: Option<u64>,
    /// A deadline after the dependencies, once known: (due, dependencies completed).
    pub pending_due: Option<(u64, u64)>,
}

impl ElementRuntime {
    fn new(hosts: &[String]) -> Self {
        Self {
            machines: hosts
                .iter()
                .map(|h| (h.clone(), ElementState::Standby))
                .collect(),
            machine_at_ms: BTreeMap::new(),
            state: ElementState::Standby,
            since_ms: 0,
            message: None,
            clause: None,
            machine: None,
            run_started_ms: None,
            last_run: None,
            durations: VecDeque::new(),
            completed_ms: None,
            late_raised_for: None,
            watched_since_ms: None,
            pending_due: None,
        }
    }

    /// Takes the state it had when the masters last ran: every machine in it.
    fn restore(&mut self, restored: Restored) {
        for (host, state) in &mut self.machines {
            *state = restored.state;
            self.machine_at_ms.insert(host.clone(), restored.at_ms);
        }
        self.state = restored.state;
        self.since_ms = restored.at_ms;
        self.message = restored.message;
        self.clause = restored.clause;
        self.machine = restored.machine;
        if restored.state == ElementState::Running {
            self.run_started_ms = Some(restored.at_ms);
        }
        if restored.state == ElementState::Completed {
            self.completed_ms = Some(restored.at_ms);
        }
        self.last_run = restored.runs.first().copied();
        self.durations = restored
            .runs
            .iter()
            .rev()
            .map(|run| run.ended_ms.saturating_sub(run.started_ms))
            .collect();
    }

    /// Median of the kept durations, ms.
    pub fn median_ms(&self) -> Option<u64> {
        let mut sorted: Vec<u64> = self.durations.iter().copied().collect();
        sorted.sort_unstable();
        sorted.get(sorted.len().checked_sub(1)? / 2).copied()
    }
}

/// A finished run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// Entered Running, Unix ms.
    pub started_ms: u64,
    /// Entered Completed or Failed, Unix ms.
    pub ended_ms: u64,
    /// Completed or Failed.
    pub outcome: ElementState,
}

/// A violation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Early or Late.
    pub kind: ViolationKind,
    /// The element.
    pub element: String,
    /// The dependency not Completed (Early).
    pub dependency: Option<String>,
    /// Which of the element's violations at one instant this is: the dependency's place in
    /// `dependsOn` (Early), [`LATE_SLOT`] (Late); part of its record's key.
    pub slot: u8,
    /// When: the transition's time (Early) or the deadline (Late), Unix ms.
    pub at_ms: u64,
    /// For people.
    pub message: String,
}

/// A process's state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessRuntime {
    /// By element name.
    pub elements: BTreeMap<String, ElementRuntime>,
    /// Violations of the current run, oldest first.
    pub violations: Vec<Violation>,
    /// Whether a run is under way (an element left Standby and not all are back).
    pub run_active: bool,
    /// When the last run ended.
    pub run_ended_ms: u64,
    /// Early starts not decided yet: the dependency's machines may still report a completion
    /// from before the start (see [`ProcessEngine::evaluate`]).
    pub suspects: Vec<Suspect>,
}

/// An element that started while a dependency was not Completed, as far as the masters knew.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suspect {
    /// The violation it becomes.
    pub violation: Violation,
    /// When the masters first looked at it.
    pub noted_ms: Option<u64>,
}

/// An element's transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The process.
    pub process: ProcessId,
    /// The element.
    pub element: String,
    /// The machine that reported it, or [`MASTERS`].
    pub machine: String,
    /// State before.
    pub from: ElementState,
    /// State entered.
    pub to: ElementState,
    /// The clause that fired.
    pub clause: String,
    /// Its message.
    pub message: Option<String>,
    /// Its receivers.
    pub notify: Vec<String>,
    /// When, Unix ms.
    pub at_ms: u64,
}

/// What the engine learned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcessEvent {
    /// An element changed state.
    Transition(Transition),
    /// A violation was raised.
    Violation {
        /// The process.
        process: ProcessId,
        /// What.
        violation: Violation,
        /// The element's receivers.
        notify: Vec<String>,
    },
    /// An element's run ended.
    RunEnded {
        /// The process.
        process: ProcessId,
        /// The element.
        element: String,
        /// The run.
        run: Run,
    },
}

/// Counts for `/metrics` and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessCounts {
    /// Agents' transitions applied.
    pub applied: u64,
    /// Agents' transitions not legal from the masters' state (or of an unknown element).
    pub ignored: u64,
}

/// Every process the masters run.
#[derive(Clone, Debug, Default)]
pub struct ProcessEngine {
    models: BTreeMap<ProcessId, ProcessModel>,
    runtime: BTreeMap<ProcessId, ProcessRuntime>,
    parked: BTreeMap<ParkKey, Vec<Parked>>,
    restored: BTreeMap<(ProcessId, String), Restored>,
    /// Each model's time zone, looked up once per model (evaluation runs on every batch).
    zones: BTreeMap<ProcessId, jiff::tz::TimeZone>,
    counts: ProcessCounts,
}

/// The states of a check on every machine that reported it, each with since when (Unix ms).
pub type CheckStates<'a> = &'a dyn Fn(&CheckId) -> Vec<(CheckState, u64)>;

impl ProcessEngine {
    /// Replaces the models (after a compile); the state of elements and machines that remain
    /// is kept, new ones start in Standby, removed ones are forgotten.
    pub fn set_models(&mut self, models: impl IntoIterator<Item = ProcessModel>) {
        self.models = models.into_iter().map(|m| (m.id.clone(), m)).collect();
        self.zones = self
            .models
            .iter()
            .filter_map(|(id, m)| {
                let zone = vedette_protocol::process::time_zone(&m.time_zone).ok()?;
                Some((id.clone(), zone))
            })
            .collect();
        let mut runtime = std::mem::take(&mut self.runtime);
        for (id, model) in &self.models {
            let known = runtime.contains_key(id);
            let mut process = runtime.remove(id).unwrap_or_default();
            let mut elements = std::mem::take(&mut process.elements);
            for element in &model.elements {
                let restored = self.restored.remove(&(id.clone(), element.name.clone()));
                let mut state = elements.remove(&element.name).unwrap_or_else(|| {
                    let mut fresh = ElementRuntime::new(&element.hosts);
                    if let Some(restored) = restored {
                        fresh.restore(restored);
                    }
                    fresh
                });
                let mut machines = std::mem::take(&mut state.machines);
                state.machines = element
                    .hosts
                    .iter()
                    .map(|h| {
                        (
                            h.clone(),
                            machines.remove(h).unwrap_or(ElementState::Standby),
                        )
                    })
                    .collect();
                process.elements.insert(element.name.clone(), state);
            }
            if !known {
                // Restored elements may be in the middle of a run.
                process.run_active = process
                    .elements
                    .values()
                    .any(|e| e.state != ElementState::Standby);
            }
            self.runtime.insert(id.clone(), process);
        }
    }

    /// The model of a process.
    pub fn model(&self, id: &ProcessId) -> Option<&ProcessModel> {
        self.models.get(id)
    }

    /// Every model.
    pub fn models(&self) -> impl Iterator<Item = &ProcessModel> {
        self.models.values()
    }

    /// The state of a process.
    pub fn runtime(&self, id: &ProcessId) -> Option<&ProcessRuntime> {
        self.runtime.get(id)
    }

    /// What was applied and ignored.
    pub fn counts(&self) -> ProcessCounts {
        self.counts
    }

    /// Applies a transition agent `agent` spooled with `sequence`, received at `now_ms`.
    ///
    /// **In the agent's order.** A machine's transitions form a chain (each starts where the
    /// last ended). One that does not start where the machine is, and is newer, arrived
    /// before one it follows (after an outage the agent's live entries overtake its replayed
    /// backlog): it waits, and is applied when the chain reaches it, or by
    /// [`ProcessEngine::release`] once everything the agent sent before it has arrived (the
    /// missing link was lost, or the masters restarted without it) or after
    /// [`PARK_LIMIT_MS`]. One older than the machine's last is a resend, ignored.
    pub fn apply_report(
        &mut self,
        report: &ElementReport,
        agent: &str,
        sequence: u64,
        now_ms: u64,
    ) -> Vec<ProcessEvent> {
        let mut events = Vec::new();
        let key = (
            report.process.clone(),
            report.element.clone(),
            report.host.clone(),
        );
        let Some((state, last_at)) = self.machine(&key) else {
            self.counts.ignored += 1;
            return events;
        };
        if report.at_ms < last_at || (report.at_ms == last_at && report.to == state) {
            self.counts.ignored += 1;
            return events;
        }
        if report.from != state {
            let parked = self.parked.entry(key).or_default();
            if parked.len() >= MAX_PARKED {
                parked.remove(0);
                self.counts.ignored += 1;
            }
            parked.push(Parked {
                report: report.clone(),
                agent: agent.to_owned(),
                sequence,
                parked_ms: now_ms,
            });
            parked.sort_by_key(|p| (p.report.at_ms, p.sequence));
            return events;
        }
        self.take(report, &mut events);
        self.follow_chain(&key, &mut events);
        events
    }

    /// Applies parked transitions whose wait is over: everything `agent` sent before them has
    /// arrived (`settled(agent, sequence, at_ms)`: the caller knows the agent's sequences and
    /// its keepalives), or they waited [`PARK_LIMIT_MS`]. The machine then
    /// jumps to the transition's state, the element following by legal steps.
    pub fn release(
        &mut self,
        now_ms: u64,
        settled: &dyn Fn(&str, u64, u64) -> bool,
    ) -> Vec<ProcessEvent> {
        let mut events = Vec::new();
        let due: Vec<ParkKey> = self
            .parked
            .iter()
            .filter(|(_, parked)| {
                parked.first().is_some_and(|p| {
                    settled(&p.agent, p.sequence, p.report.at_ms)
                        || now_ms.saturating_sub(p.parked_ms) >= PARK_LIMIT_MS
                })
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in due {
            let Some(first) = self
                .parked
                .get_mut(&key)
                .and_then(|p| (!p.is_empty()).then(|| p.remove(0)))
            else {
                continue;
            };
            let last_at = self.machine(&key).map_or(0, |(_, at)| at);
            if first.report.at_ms < last_at {
                self.counts.ignored += 1;
                continue;
            }
            self.take(&first.report, &mut events);
            self.follow_chain(&key, &mut events);
        }
        self.parked.retain(|_, parked| !parked.is_empty());
        events
    }

    /// Transitions waiting for an earlier one.
    pub fn parked(&self) -> usize {
        self.parked.values().map(Vec::len).sum()
    }

    /// Applies the parked transitions that now continue the machine's chain.
    fn follow_chain(&mut self, key: &ParkKey, events: &mut Vec<ProcessEvent>) {
        loop {
            let Some((state, last_at)) = self.machine(key) else {
                return;
            };
            let Some(parked) = self.parked.get_mut(key) else {
                return;
            };
            parked.retain(|p| p.report.at_ms >= last_at);
            let Some(index) = parked.iter().position(|p| p.report.from == state) else {
                return;
            };
            let next = parked.remove(index);
            self.take(&next.report, events);
        }
    }

    /// A machine's state and the time of its last transition.
    fn machine(&self, key: &ParkKey) -> Option<(ElementState, u64)> {
        let runtime = self.runtime.get(&key.0)?.elements.get(&key.1)?;
        let state = *runtime.machines.get(&key.2)?;
        Some((
            state,
            runtime.machine_at_ms.get(&key.2).copied().unwrap_or(0),
        ))
    }

    /// Moves the machine to the report's state and the element along.
    fn take(&mut self, report: &ElementReport, events: &mut Vec<ProcessEvent>) {
        let Some(model) = self.models.get(&report.process) else {
            return;
        };
        let Some(element) = model.elements.iter().find(|e| e.name == report.element) else {
            return;
        };
        let Some(process) = self.runtime.get_mut(&report.process) else {
            return;
        };
        let Some(runtime) = process.elements.get_mut(&report.element) else {
            return;
        };
        let Some(machine) = runtime.machines.get_mut(&report.host) else {
            return;
        };
        *machine = report.to;
        runtime
            .machine_at_ms
            .insert(report.host.clone(), report.at_ms);
        self.counts.applied += 1;
        let steps = aggregate(runtime.state, runtime.machines.values().copied());
        for step in steps {
            let (clause, message) = if step == report.to {
                (report.clause.clone(), report.message.clone())
            } else {
                let name = step.as_str().to_ascii_lowercase();
                let message = element.clauses.get(&name).and_then(|c| c.message.clone());
                (name, message)
            };
            let fired = Fired {
                machine: &report.host,
                clause,
                message,
                at_ms: report.at_ms,
            };
            enter(model, element, process, step, fired, events);
        }
    }

    /// Sets the state elements had when the masters last ran (from the history), applied to
    /// elements as models bring them: each machine starts in its element's last state.
    pub fn restore(&mut self, restored: impl IntoIterator<Item = Restored>) {
        for element in restored {
            self.restored
                .insert((element.process.clone(), element.element.clone()), element);
        }
    }

    /// Evaluates the masters' clauses, the deadlines and the suspected early starts at
    /// `now_ms`. An early start is decided in event time: it is withdrawn when the dependency
    /// turns out to have Completed before it (its machine's report arrived late), and raised
    /// once every machine of the dependency has reported something since, or its agent said
    /// it had nothing older in flight (`drained(host)`: the time of its newest keepalive with
    /// an empty spool), or after [`PARK_LIMIT_MS`].
    pub fn evaluate(
        &mut self,
        now_ms: u64,
        checks: CheckStates<'_>,
        drained: &dyn Fn(&str) -> u64,
    ) -> Vec<ProcessEvent> {
        let mut events = Vec::new();
        for (id, model) in &self.models {
            let Some(process) = self.runtime.get_mut(id) else {
                continue;
            };
            if !process.suspects.is_empty() {
                decide_suspects(model, process, now_ms, drained, &mut events);
            }
            let Some(zone) = self.zones.get(id) else {
                continue;
            };
            for element in &model.elements {
                if !element.masters.is_empty() {
                    masters_clauses(model, element, process, zone, now_ms, checks, &mut events);
                }
                if element.complete_by.is_some() {
                    deadline(model, element, process, zone, now_ms, &mut events);
                }
            }
        }
        events
    }
}

/// Raises or withdraws the suspected early starts that can be decided (see
/// [`ProcessEngine::evaluate`]).
fn decide_suspects(
    model: &ProcessModel,
    process: &mut ProcessRuntime,
    now_ms: u64,
    drained: &dyn Fn(&str) -> u64,
    events: &mut Vec<ProcessEvent>,
) {
    let suspects = std::mem::take(&mut process.suspects);
    for mut suspect in suspects {
        let at_ms = suspect.violation.at_ms;
        let noted = *suspect.noted_ms.get_or_insert(now_ms);
        let Some(dependency) = suspect
            .violation
            .dependency
            .as_ref()
            .and_then(|d| process.elements.get(d))
        else {
            continue;
        };
        let completed_before = dependency.state == ElementState::Completed
            && dependency.completed_ms.is_some_and(|c| c <= at_ms);
        if completed_before {
            continue;
        }
        let settled = dependency.machines.keys().all(|host| {
            dependency
                .machine_at_ms
                .get(host)
                .is_some_and(|t| *t >= at_ms)
                || drained(host) >= at_ms
        });
        if settled || now_ms.saturating_sub(noted) >= PARK_LIMIT_MS {
            let Some(element) = model
                .elements
                .iter()
                .find(|e| e.name == suspect.violation.element)
            else {
                continue;
            };
            raise(model, element, process, suspect.violation, events);
        } else {
            process.suspects.push(suspect);
        }
    }
}

/// Who fired a transition.
struct Fired<'a> {
    machine: &'a str,
    clause: String,
    message: Option<String>,
    at_ms: u64,
}

/// Moves `element` to `to` (a legal step) and says what that means.
fn enter(
    model: &ProcessModel,
    element: &ElementModel,
    process: &mut ProcessRuntime,
    to: ElementState,
    fired: Fired<'_>,
    events: &mut Vec<ProcessEvent>,
) {
    let at_ms = fired.at_ms;
    let notify = element
        .clauses
        .get(&fired.clause)
        .map(|c| c.notify.clone())
        .unwrap_or_default();
    let Some(runtime) = process.elements.get(&element.name) else {
        return;
    };
    let from = runtime.state;
    if to == ElementState::Running && !process.run_active {
        process.run_active = true;
        let ended = process.run_ended_ms;
        process.violations.retain(|v| v.at_ms > ended);
    }
    if to == ElementState::Running {
        for (slot, dependency) in element.depends_on.iter().enumerate() {
            let state = process
                .elements
                .get(dependency)
                .map_or(ElementState::Standby, |d| d.state);
            if state != ElementState::Completed {
                let violation = Violation {
                    kind: ViolationKind::Early,
                    element: element.name.clone(),
                    dependency: Some(dependency.clone()),
                    slot: slot.min(usize::from(LATE_SLOT - 1)) as u8,
                    at_ms,
                    message: format!(
                        "{} started while {dependency}, which it depends on, was {state}, not \
                         Completed",
                        element.name
                    ),
                };
                process.suspects.push(Suspect {
                    violation,
                    noted_ms: None,
                });
            }
        }
    }
    let Some(runtime) = process.elements.get_mut(&element.name) else {
        return;
    };
    runtime.state = to;
    runtime.since_ms = at_ms;
    runtime.message = fired.message.clone();
    runtime.clause = Some(fired.clause.clone());
    runtime.machine = Some(fired.machine.to_owned());
    let mut ended = None;
    match to {
        ElementState::Running => runtime.run_started_ms = Some(at_ms),
        ElementState::Completed | ElementState::Failed => {
            if to == ElementState::Completed {
                runtime.completed_ms = Some(at_ms);
                runtime.pending_due = None;
            }
            if let Some(started_ms) = runtime.run_started_ms.take() {
                let run = Run {
                    started_ms,
                    ended_ms: at_ms.max(started_ms),
                    outcome: to,
                };
                runtime.last_run = Some(run);
                if runtime.durations.len() == RUNS_KEPT {
                    runtime.durations.pop_front();
                }
                runtime.durations.push_back(run.ended_ms - run.started_ms);
                ended = Some(run);
            }
        }
        ElementState::Standby => {}
    }
    events.push(ProcessEvent::Transition(Transition {
        process: model.id.clone(),
        element: element.name.clone(),
        machine: fired.machine.to_owned(),
        from,
        to,
        clause: fired.clause,
        message: fired.message,
        notify,
        at_ms,
    }));
    if let Some(run) = ended {
        events.push(ProcessEvent::RunEnded {
            process: model.id.clone(),
            element: element.name.clone(),
            run,
        });
    }
    if to == ElementState::Standby
        && process
            .elements
            .values()
            .all(|e| e.state == ElementState::Standby)
        && process.run_active
    {
        process.run_active = false;
        process.run_ended_ms = at_ms;
    }
}

fn raise(
    model: &ProcessModel,
    element: &ElementModel,
    process: &mut ProcessRuntime,
    violation: Violation,
    events: &mut Vec<ProcessEvent>,
) {
    if process.violations.len() < VIOLATIONS_KEPT {
        process.violations.push(violation.clone());
    }
    let notify = element
        .clauses
        .get("running")
        .map(|c| c.notify.clone())
        .unwrap_or_default();
    events.push(ProcessEvent::Violation {
        process: model.id.clone(),
        violation,
        notify,
    });
}

fn masters_clauses(
    model: &ProcessModel,
    element: &ElementModel,
    process: &mut ProcessRuntime,
    zone: &jiff::tz::TimeZone,
    now_ms: u64,
    checks: CheckStates<'_>,
    events: &mut Vec<ProcessEvent>,
) {
    let Some(state) = process.elements.get(&element.name).map(|e| e.state) else {
        return;
    };
    let holds = |clause: &MastersClause| {
        let window = clause
            .time_window
            .as_ref()
            .is_none_or(|w| in_window(w, zone, now_ms).unwrap_or(false));
        let check = clause
            .check_state
            .as_ref()
            .is_none_or(|(id, states)| checks(id).iter().any(|(state, _)| states.contains(state)));
        let other = clause.element_state.as_ref().is_none_or(|condition| {
            process
                .elements
                .get(&condition.element)
                .is_some_and(|e| e.state == condition.state)
        });
        window && check && other
    };
    let truths: Vec<(ElementState, bool)> = element
        .masters
        .iter()
        .map(|c| (c.enters, holds(c)))
        .collect();
    let Some(index) = next_clause(state, truths) else {
        return;
    };
    let clause = &element.masters[index];
    let message = element
        .clauses
        .get(&clause.name)
        .and_then(|c| c.message.clone());
    let fired = Fired {
        machine: MASTERS,
        clause: clause.name.clone(),
        message,
        at_ms: fired_at(clause, element, process, zone, now_ms, checks),
    };
    enter(model, element, process, clause.enters, fired, events);
}

/// When a masters' clause became true, computed alike by every master (their records share
/// the key): the latest of its conditions' beginnings — the window's start, the other
/// element's transition, the check entering the state — and never before the element entered
/// its state, never after now.
fn fired_at(
    clause: &MastersClause,
    element: &ElementModel,
    process: &ProcessRuntime,
    zone: &jiff::tz::TimeZone,
    now_ms: u64,
    checks: CheckStates<'_>,
) -> u64 {
    let since = process
        .elements
        .get(&element.name)
        .map_or(0, |e| e.since_ms + 1);
    let window = clause
        .time_window
        .as_ref()
        .and_then(|w| window_start(&w.start, zone, now_ms));
    let other = clause
        .element_state
        .as_ref()
        .and_then(|c| process.elements.get(&c.element))
        .map(|e| e.since_ms);
    let check = clause.check_state.as_ref().and_then(|(id, states)| {
        checks(id)
            .into_iter()
            .filter(|(state, _)| states.contains(state))
            .map(|(_, since)| since)
            .min()
    });
    [Some(since), window, other, check]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(now_ms)
        .min(now_ms)
}

/// The start of the occurrence of a window starting at `start` (`HH:MM` in `zone`) that
/// contains `now_ms`: the latest such minute at or before now.
fn window_start(start: &str, zone: &jiff::tz::TimeZone, now_ms: u64) -> Option<u64> {
    let start = vedette_protocol::process::minutes_of_day(start).ok()?;
    let now = jiff::Timestamp::from_millisecond(now_ms as i64)
        .ok()?
        .to_zoned(zone.clone());
    let minute = i32::from(now.hour()) * 60 + i32::from(now.minute());
    let back = u64::try_from((minute - start).rem_euclid(24 * 60)).ok()?;
    Some((now_ms / 60_000 - back) * 60_000)
}

/// Raises a late violation once the element's deadline passed without it completing.
fn deadline(
    model: &ProcessModel,
    element: &ElementModel,
    process: &mut ProcessRuntime,
    zone: &jiff::tz::TimeZone,
    now_ms: u64,
    events: &mut Vec<ProcessEvent>,
) {
    let Some(deadline) = &element.complete_by else {
        return;
    };
    let Some(runtime) = process.elements.get_mut(&element.name) else {
        return;
    };
    let watched_since = *runtime.watched_since_ms.get_or_insert(now_ms);
    let runtime = &process.elements[&element.name];
    let due = match (&deadline.time, deadline.after_dependencies_seconds) {
        (Some(time), _) => time_deadline(time, &deadline.days, zone, now_ms).map(|due| {
            // A completion counts for this deadline when it came after the one before.
            let previous = time_deadline(time, &deadline.days, zone, due.saturating_sub(1))
                .unwrap_or(due.saturating_sub(8 * DAY_MS));
            (due, previous + 1)
        }),
        (None, Some(seconds)) => {
            let completed: Option<Vec<u64>> = element
                .depends_on
                .iter()
                .map(|d| {
                    let dep = process.elements.get(d)?;
                    (dep.state == ElementState::Completed)
                        .then_some(dep.completed_ms)
                        .flatten()
                })
                .collect();
            let due = completed
                .and_then(|times| times.into_iter().max())
                .map(|since| (since.saturating_add(u64::from(seconds) * 1000), since));
            // Kept once known: dependencies going back to Standby do not cancel it.
            match (due, runtime.pending_due) {
                (Some(due), _) => Some(due),
                (None, pending) => pending,
            }
        }
        (None, None) => None,
    };
    let Some((due_ms, window_start)) = due else {
        return;
    };
    if let Some(runtime) = process.elements.get_mut(&element.name)
        && deadline.after_dependencies_seconds.is_some()
    {
        runtime.pending_due = Some((due_ms, window_start));
    }
    let runtime = &process.elements[&element.name];
    let completed_in_time = if deadline.time.is_some() {
        // The run that completed started after the deadline before: a run completed late
        // belongs to its own day, not to the next deadline.
        runtime.last_run.is_some_and(|run| {
            run.outcome == ElementState::Completed
                && run.started_ms >= window_start
                && run.ended_ms <= due_ms
        })
    } else {
        runtime
            .completed_ms
            .is_some_and(|at| at >= window_start && at <= due_ms)
    };
    if now_ms < due_ms
        || due_ms < watched_since
        || completed_in_time
        || runtime.late_raised_for == Some(due_ms)
    {
        return;
    }
    let state = runtime.state;
    if let Some(runtime) = process.elements.get_mut(&element.name) {
        runtime.late_raised_for = Some(due_ms);
    }
    let violation = Violation {
        kind: ViolationKind::Late,
        element: element.name.clone(),
        dependency: None,
        slot: LATE_SLOT,
        at_ms: due_ms,
        message: format!(
            "{} was not Completed by its deadline {} (it is {state})",
            element.name,
            vedette_protocol::clock::rfc3339(due_ms)
        ),
    };
    raise(model, element, process, violation, events);
}

const DAY_MS: u64 = 24 * 3600 * 1000;

/// Today's deadline at `HH:MM` in `zone` (the latest one at or before `now_ms`, on one of
/// `days`), Unix ms.
fn time_deadline(
    time: &str,
    days: &[String],
    zone: &jiff::tz::TimeZone,
    now_ms: u64,
) -> Option<u64> {
    let minutes = vedette_protocol::process::minutes_of_day(time).ok()?;
    let days: Vec<i8> = days
        .iter()
        .filter_map(|d| vedette_protocol::process::weekday(d).ok())
        .collect();
    let now = jiff::Timestamp::from_millisecond(now_ms as i64)
        .ok()?
        .to_zoned(zone.clone());
    let today = now.date();
    let mut dates = vec![today];
    for _ in 0..8 {
        let last = *dates.last()?;
        dates.push(last.yesterday().ok()?);
    }
    dates
        .into_iter()
        .filter(|date| days.is_empty() || days.contains(&date.weekday().to_monday_one_offset()))
        .filter_map(|date| {
            let at = date.at((minutes / 60) as i8, (minutes % 60) as i8, 0, 0);
            let zoned = at.to_zoned(zone.clone()).ok()?;
            Some(zoned.timestamp().as_millisecond() as u64)
        })
        .find(|due| *due <= now_ms)
}

#[cfg(test)]
#[path = "processes_tests.rs"]
mod tests;
