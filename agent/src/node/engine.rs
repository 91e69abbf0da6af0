//! The check engine: runs the plan's checks on schedule with bounded concurrency, keeps each
//! check's soft/hard state, records every run in the metrics, and spools state changes (and
//! every result of checks that ask for it) for the sender. Stopped ([`run_until`]), it starts
//! nothing more, kills the running checks (each plugin's process group goes with its task)
//! and waits for them, and writes the check states.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use vedette_crds::template::CheckState;

use crate::metrics::{CheckLabels, Metrics};
use crate::runner::{CheckRunner, CompiledCheck, Outcome};
use crate::schedule::{CycleSlot, Schedule, first_run_ms, phase_ms};
use crate::spool::{Priority, Spool};
use crate::state::{NextInterval, StateType, Transition};
use vedette_protocol::clock::unix_ms;
use vedette_protocol::plan::CheckId;
use vedette_protocol::report::{CheckReport, Report, StateCounts};

use super::plan_keeper::ActivePlan;
use super::retention::{CheckStates, Retention};

pub use crate::sender::LiveEntry;

/// Where reports go: the node's spool (then its sender), or a satellite's ingest.
pub trait ReportSink: Send + Sync {
    /// Keeps a report durably and hands it on; failures are logged, not returned.
    fn spool(&self, priority: Priority, report: &Report);
}

/// The node's sink: the spool, then the sender's live channel once durable.
pub struct SpoolSink {
    spool: Spool,
    live: mpsc::Sender<LiveEntry>,
}

impl SpoolSink {
    /// A sink appending to `spool` and telling `live` about every durable entry.
    pub fn new(spool: Spool, live: mpsc::Sender<LiveEntry>) -> Self {
        Self { spool, live }
    }
}

impl ReportSink for SpoolSink {
    fn spool(&self, priority: Priority, report: &Report) {
        let payload = serde_json::to_vec(report).expect("reports always serialize");
        let pending = match self.spool.submit(priority, payload.clone()) {
            Ok(pending) => pending,
            Err(error) => {
                warn!(message = "Failed to spool a report.", %error);
                return;
            }
        };
        let live = self.live.clone();
        tokio::spawn(async move {
            match pending.durable().await {
                // A full live queue is fine: the entry is in the spool and will be replayed.
                Ok(sequence) => drop(live.try_send((sequence, payload))),
                Err(error) => warn!(message = "Failed to spool a report.", %error),
            }
        });
    }
}

/// What the reporter remembers of a check: its state and the perfdata series it created.
struct Tracked {
    state: CheckState,
    perfdata: Vec<(String, String)>,
    /// The check changed in a new plan: its next result is reported like a first one.
    restarted: bool,
}

/// Records runs: metrics, current states, and spooled reports.
pub struct Reporter {
    host: String,
    sink: Arc<dyn ReportSink>,
    metrics: Arc<Metrics>,
    states: Mutex<HashMap<CheckId, Tracked>>,
}

impl Reporter {
    /// A reporter for `host` (the machine, or a remote target).
    pub fn new(host: &str, sink: Arc<dyn ReportSink>, metrics: Arc<Metrics>) -> Self {
        Self {
            host: host.to_owned(),
            sink,
            metrics,
            states: Mutex::new(HashMap::new()),
        }
    }

    /// Checks by current state, over the checks of `plan`.
    pub fn counts(&self, plan: Option<&ActivePlan>) -> StateCounts {
        let states = self.states.lock().expect("states lock");
        let mut counts = StateCounts::default();
        for check in plan.map(|p| p.checks.as_slice()).unwrap_or_default() {
            counts.add(states.get(&check.planned.id).map(|t| t.state));
        }
        counts
    }

    /// The current state of one check of this machine, if it ran.
    pub fn state_of(&self, id: &CheckId) -> Option<CheckState> {
        self.states
            .lock()
            .expect("states lock")
            .get(id)
            .map(|t| t.state)
    }

    /// Whether a check has had a result of its current definition in this life.
    pub fn has_run(&self, id: &CheckId) -> bool {
        self.states
            .lock()
            .expect("states lock")
            .get(id)
            .is_some_and(|t| !t.restarted)
    }

    /// Hands a report to the sink (the spool, then the sender).
    pub fn spool(&self, priority: Priority, report: &Report) {
        self.sink.spool(priority, report);
    }

    fn record(&self, check: &CompiledCheck, outcome: &Outcome, transition: &Transition, now: u64) {
        let planned = &check.planned;
        let labels = CheckLabels::new(&planned.id, &self.host);
        let hard = transition.state_type == StateType::Hard;
        let unix_seconds = now as f64 / 1000.0;
        self.metrics.observe_run(
            &labels,
            transition.state,
            hard,
            outcome.duration.as_secs_f64(),
            unix_seconds,
            &outcome.perfdata,
        );
        // The first result of a check since start is reported too: upstream learns the state
        // of every check, not only of those that changed.
        let mut states = self.states.lock().expect("states lock");
        let first = states.get(&planned.id).is_none_or(|t| t.restarted);
        let tracked = states.entry(planned.id.clone()).or_insert_with(|| Tracked {
            state: transition.state,
            perfdata: Vec::new(),
            restarted: false,
        });
        tracked.state = transition.state;
        tracked.restarted = false;
        // The series are this run's; those of labels the check no longer reports go, so that
        // a plugin whose labels change cannot grow the metrics without bound.
        let series: Vec<(String, String)> = outcome
            .perfdata
            .iter()
            .take(crate::metrics::MAX_PERFDATA_PER_CHECK)
            .map(|(label, _, uom)| (label.clone(), uom.clone()))
            .collect();
        let gone: Vec<(String, String)> = std::mem::replace(&mut tracked.perfdata, series)
            .into_iter()
            .filter(|old| !tracked.perfdata.contains(old))
            .collect();
        let kept = tracked.perfdata.clone();
        drop(states);
        self.metrics.forget_perfdata(&labels, &gone);
        self.metrics.observe_limits(&labels, &kept, &outcome.limits);
        self.metrics.observe_dropped(&labels, outcome.dropped);
        let changed = first || transition.hard_change || transition.soft_change;
        if !changed && !planned.spool_every_result {
            return;
        }
        let report = CheckReport {
            check: planned.id.clone(),
            host: self.host.clone(),
            state: transition.state,
            hard,
            attempt: transition.attempt,
            previous_state: transition.previous,
            output: outcome.output.clone(),
            duration_ms: outcome.duration.as_millis() as u64,
            at_ms: now,
        };
        if changed {
            debug!(message = "State changed.", check = %planned.id, state = ?transition.state, hard);
            self.metrics
                .check_state_changes
                .get_or_create(&labels)
                .inc();
            self.spool(Priority::StateChange, &Report::StateChange(report));
        } else {
            self.spool(Priority::Result, &Report::Result(report));
        }
    }

    /// Marks a check whose definition changed (a new state machine): its next result is
    /// reported upstream even when the state is the same, since upstream may hold a state
    /// the old definition produced.
    fn restarted(&self, id: &CheckId) {
        if let Some(tracked) = self.states.lock().expect("states lock").get_mut(id) {
            tracked.restarted = true;
        }
    }

    /// Removes the series of checks that are not in `plan`.
    fn forget_missing(&self, plan: Option<&ActivePlan>) {
        let keep: std::collections::HashSet<&CheckId> = plan
            .map(|p| p.checks.iter().map(|c| &c.planned.id).collect())
            .unwrap_or_default();
        let mut states = self.states.lock().expect("states lock");
        states.retain(|id, tracked| {
            let kept = keep.contains(id);
            if !kept {
                self.metrics
                    .forget_check(&CheckLabels::new(id, &self.host), &tracked.perfdata);
            }
            kept
        });
    }
}

/// Runs the current plan until the channel closes, restarting the schedule on every plan
/// change (state machines of unchanged checks carry over). With `retention`, the machines are
/// also saved and those of the last life restored.
pub async fn run(
    host: String,
    plans: watch::Receiver<Option<Arc<ActivePlan>>>,
    runner: Arc<CheckRunner>,
    reporter: Arc<Reporter>,
    concurrency: usize,
    retention: Option<Retention>,
) {
    let never = CancellationToken::new();
    run_until(host, plans, runner, reporter, concurrency, retention, never).await;
}

/// [`run`] until `stop` is cancelled: then no check starts any more, the running ones are
/// killed (their plugins' process groups with them) and waited for, and the check states are
/// written (with a `retention`) before it returns.
pub async fn run_until(
    host: String,
    mut plans: watch::Receiver<Option<Arc<ActivePlan>>>,
    runner: Arc<CheckRunner>,
    reporter: Arc<Reporter>,
    concurrency: usize,
    retention: Option<Retention>,
    stop: CancellationToken,
) {
    let mut states = CheckStates::new(retention);
    loop {
        let plan = plans.borrow_and_update().clone();
        reporter.forget_missing(plan.as_deref());
        if let Some(plan) = plan {
            runner.set_secrets(&host, &plan.plan.secrets);
            states.plan(
                plan.checks.iter().map(|check| {
                    let planned = &check.planned;
                    let definition = vedette_protocol::plan::content_hash(planned);
                    (&planned.id, definition, planned.max_attempts)
                }),
                |id| reporter.restarted(id),
            );
            let inputs = Inputs {
                plans: &mut plans,
                stop: &stop,
            };
            let ended = run_plan(
                &host,
                &plan,
                &runner,
                &reporter,
                &mut states,
                concurrency,
                inputs,
            );
            let ended = ended.await;
            if let Ended::Stopped = ended {
                // A write still in flight would skip this one: let it finish first.
                states.flush().await;
                states.save_now();
                states.flush().await;
                return;
            }
            states.save_now();
            if let Ended::Closed = ended {
                return;
            }
        } else {
            tokio::select! {
                changed = plans.changed() => if changed.is_err() { return },
                () = stop.cancelled() => return,
            }
        }
    }
}

/// What a running plan listens to besides its checks.
struct Inputs<'a> {
    /// New plans.
    plans: &'a mut watch::Receiver<Option<Arc<ActivePlan>>>,
    /// Stopping the engine.
    stop: &'a CancellationToken,
}

/// Why a plan stopped running.
enum Ended {
    /// A new plan came.
    PlanChanged,
    /// The plans' channel closed.
    Closed,
    /// The engine was stopped; its running checks are gone.
    Stopped,
}

/// Where each check of a plan runs on the zone's cycles; `None` for a check on its own
/// interval.
fn cycle_slots(host: &str, plan: &ActivePlan) -> Vec<Option<CycleSlot>> {
    let cycle_ms = u64::from(plan.plan.settings.cycle_seconds) * 1000;
    plan.checks
        .iter()
        .map(|c| {
            let every = c.planned.every_cycles?;
            let id = c.planned.id.to_string();
            Some(CycleSlot::new(host, &id, cycle_ms, u64::from(every)))
        })
        .collect()
}

/// Whether a check on cycles waits for its next cycle: always while steady, and while soft
/// unless it has a retry interval of its own (compile makes the retry interval equal to the
/// regular one when the template gives none).
fn stays_on_cycles(next: NextInterval, check: &vedette_protocol::plan::PlannedCheck) -> bool {
    next == NextInterval::Regular || check.retry_interval_seconds == check.interval_seconds
}

/// The check a finished task ran and its outcome; a task that panicked gives UNKNOWN with the
/// panic's message, so that the check is reported and scheduled again instead of stalling.
fn finished_run(
    joined: Result<(tokio::task::Id, Outcome), tokio::task::JoinError>,
    running_checks: &mut HashMap<tokio::task::Id, usize>,
    check_name: impl Fn(usize) -> String,
) -> Option<(usize, Outcome)> {
    match joined {
        Ok((task, outcome)) => Some((running_checks.remove(&task)?, outcome)),
        Err(error) => {
            let index = running_checks.remove(&error.id())?;
            let reason = match error.try_into_panic() {
                Ok(payload) => panic_message(payload.as_ref()),
                Err(error) => error.to_string(),
            };
            let check = check_name(index);
            tracing::error!(message = "A check's run failed inside the agent.", %check, %reason);
            Some((
                index,
                Outcome {
                    state: CheckState::Unknown,
                    output: format!("the agent failed running this check: {reason}"),
                    long_output: String::new(),
                    perfdata: Vec::new(),
                    limits: Vec::new(),
                    dropped: Default::default(),
                    duration: Duration::ZERO,
                },
            ))
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panicked".to_owned())
}

/// Runs one plan until the plan changes, the channel closes or the engine is stopped (then
/// its running checks are killed and waited for).
async fn run_plan(
    host: &str,
    plan: &ActivePlan,
    runner: &Arc<CheckRunner>,
    reporter: &Arc<Reporter>,
    states: &mut CheckStates,
    concurrency: usize,
    inputs: Inputs<'_>,
) -> Ended {
    let Inputs { plans, stop } = inputs;
    let start = Instant::now();
    let elapsed_ms = move || start.elapsed().as_millis() as u64;
    // Unix time at the schedule's 0, read anew each time so clock corrections apply.
    let unix_offset_ms = move || unix_ms().saturating_sub(elapsed_ms());
    let cycles = cycle_slots(host, plan);
    let offset = unix_offset_ms();
    // A check that has not run yet in this life (or not since its definition changed) runs
    // within seconds, once; then on its phase.
    let mut early: Vec<bool> = plan
        .checks
        .iter()
        .map(|c| c.refusal.is_none() && !reporter.has_run(&c.planned.id))
        .collect();
    let mut schedule = Schedule::new(plan.checks.iter().zip(&cycles).zip(&early).map(
        |((c, cycle), early)| {
            let id = c.planned.id.to_string();
            let interval_ms = u64::from(c.planned.interval_seconds) * 1000;
            match cycle {
                _ if c.refusal.is_some() => 0, // say at once why it does not run
                Some(cycle) if *early => first_run_ms(host, &id, cycle.period_ms()),
                Some(cycle) => cycle.next_due_ms(0, offset),
                None if *early => first_run_ms(host, &id, interval_ms),
                None => phase_ms(host, &id, interval_ms),
            }
        },
    ));
    let mut running: JoinSet<Outcome> = JoinSet::new();
    // Which check each running task is, so that a task that panics is still accounted for.
    let mut running_checks: HashMap<tokio::task::Id, usize> = HashMap::new();
    debug!(message = "Scheduling plan.", hash = %plan.hash, checks = plan.checks.len());
    loop {
        for index in schedule.take_due(elapsed_ms(), concurrency.saturating_sub(running.len())) {
            let check = plan.checks[index].clone();
            debug!(message = "Running check.", check = %check.planned.id);
            let runner = runner.clone();
            let task = running.spawn(async move { runner.run(&check).await });
            running_checks.insert(task.id(), index);
        }
        let wait = schedule
            .next_due_ms()
            .map_or(Duration::from_secs(3600), |due| {
                Duration::from_millis(due.saturating_sub(elapsed_ms()))
            });
        tokio::select! {
            biased;
            () = stop.cancelled() => {
                // Aborting a run drops its plugin's process-group guard, which kills the group.
                running.shutdown().await;
                return Ended::Stopped;
            }
            changed = plans.changed() => {
                return if changed.is_ok() { Ended::PlanChanged } else { Ended::Closed };
            }
            Some(joined) = running.join_next_with_id() => {
                let Some((index, outcome)) = finished_run(joined, &mut running_checks, |index| {
                    plan.checks[index].planned.id.to_string()
                }) else {
                    continue;
                };
                let check = &plan.checks[index];
                let transition = states.observe(&check.planned.id, outcome.state);
                reporter.record(check, &outcome, &transition, unix_ms());
                let planned = &check.planned;
                let was_early = std::mem::take(&mut early[index]);
                match &cycles[index] {
                    Some(cycle) if stays_on_cycles(transition.next_interval, planned) => {
                        schedule.finished_on_cycle(index, elapsed_ms(), unix_offset_ms(), cycle);
                    }
                    None if was_early && transition.next_interval == NextInterval::Regular => {
                        let interval_ms = u64::from(planned.interval_seconds) * 1000;
                        let phase = phase_ms(host, &planned.id.to_string(), interval_ms);
                        schedule.finished_on_phase(index, elapsed_ms(), interval_ms, phase);
                    }
                    _ => {
                        let seconds = transition.next_interval.seconds(
                            planned.interval_seconds,
                            Some(planned.retry_interval_seconds),
                        );
                        schedule.finished(index, elapsed_ms(), u64::from(seconds) * 1000);
                    }
                }
            }
            () = tokio::time::sleep(wait), if running.len() < concurrency => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::CheckStateMachine;
    use vedette_crds::CheckSpec;
    use vedette_crds::check::ExecProbe;
    use vedette_protocol::plan::PlannedCheck;

    struct Discard;

    impl ReportSink for Discard {
        fn spool(&self, _: Priority, _: &Report) {}
    }

    fn plugin_check() -> CompiledCheck {
        CompiledCheck::compile(PlannedCheck {
            id: CheckId {
                namespace: "shop".into(),
                rule_set: "web".into(),
                rule: "plugin".into(),
            },
            template: "shop/plugin".into(),
            labels: Default::default(),
            check: CheckSpec {
                exec: Some(ExecProbe {
                    command: "check_dummy".into(),
                    args: Vec::new(),
                }),
                ..CheckSpec::default()
            },
            warning: None,
            critical: None,
            condition: None,
            condition_state: CheckState::Critical,
            interval_seconds: 60,
            every_cycles: None,
            retry_interval_seconds: 60,
            max_attempts: 1,
            timeout_seconds: 10,
            timeout_state: CheckState::Critical,
            spool_every_result: false,
        })
        .expect("compiles")
    }

    fn outcome_with(labels: &[&str]) -> Outcome {
        Outcome {
            state: CheckState::Ok,
            output: "OK".into(),
            long_output: String::new(),
            perfdata: labels
                .iter()
                .map(|label| ((*label).to_owned(), 1.0, "B".to_owned()))
                .collect(),
            limits: Vec::new(),
            dropped: Default::default(),
            duration: Duration::ZERO,
        }
    }

    #[test]
    fn perfdata_series_follow_the_labels_of_the_latest_run() {
        let metrics = Arc::new(Metrics::default());
        let registry = crate::metrics::registry(&metrics);
        let reporter = Reporter::new("web-1", Arc::new(Discard), metrics.clone());
        let check = plugin_check();
        let mut machine = CheckStateMachine::new(1);
        let series = |text: &str, label: &str| text.contains(&format!("label=\"{label}\""));
        for (run, labels) in [["a", "b"], ["b", "c"], ["c", "d"]].iter().enumerate() {
            let outcome = outcome_with(labels);
            let transition = machine.observe(outcome.state);
            reporter.record(
                &check,
                &outcome,
                &transition,
                1_700_000_000_000 + run as u64,
            );
            let text = crate::metrics::encode(&registry);
            for label in ["a", "b", "c", "d"] {
                assert_eq!(
                    series(&text, label),
                    labels.contains(&label),
                    "run {run}, label {label}: {text}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_panicking_run_is_unknown_with_the_panic_message() {
        let mut running: JoinSet<Outcome> = JoinSet::new();
        let mut running_checks = HashMap::new();
        let task = running.spawn(async { panic!("probe table corrupt") });
        running_checks.insert(task.id(), 7);
        let joined = running.join_next_with_id().await.expect("one task");
        let (index, outcome) =
            finished_run(joined, &mut running_checks, |_| "shop/web/tcp".into()).expect("known");
        assert_eq!(index, 7);
        assert_eq!(outcome.state, CheckState::Unknown);
        assert_eq!(
            outcome.output,
            "the agent failed running this check: probe table corrupt"
        );
        assert!(running_checks.is_empty());
    }

    #[tokio::test]
    async fn a_finished_run_is_matched_to_its_check() {
        let mut running: JoinSet<Outcome> = JoinSet::new();
        let mut running_checks = HashMap::new();
        for index in [3, 5] {
            let task = running.spawn(async move {
                Outcome {
                    state: CheckState::Ok,
                    output: format!("check {index}"),
                    long_output: String::new(),
                    perfdata: Vec::new(),
                    limits: Vec::new(),
                    dropped: Default::default(),
                    duration: Duration::ZERO,
                }
            });
            running_checks.insert(task.id(), index);
        }
        while let Some(joined) = running.join_next_with_id().await {
            let (index, outcome) =
                finished_run(joined, &mut running_checks, |_| String::new()).expect("known");
            assert_eq!(outcome.output, format!("check {index}"));
        }
        assert!(running_checks.is_empty());
    }
}
