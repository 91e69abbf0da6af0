//! Runs one check and decides its state on the agent (F8): the built-in probe or the Nagios
//! plugin, then thresholds (Nagios ranges), then the CEL condition. Everything a check needs
//! is compiled once per plan (`CompiledCheck`), so a bad range or condition rejects the plan
//! instead of failing at every run.

use std::time::{Duration, Instant};

use vedette_crds::template::CheckState;

use crate::condition::{self, Condition, Inputs};
use crate::nagios::exec::{ExecRequest, PluginRunner};
use crate::nagios::perfdata::PerfDatum;
use crate::probe::Prober;
use crate::state::evaluate;
use vedette_protocol::plan::{PlanError, PlannedCheck};
use vedette_protocol::range::Range;

/// A planned check with its ranges and condition compiled.
#[derive(Debug)]
pub struct CompiledCheck {
    /// The check as planned (for a refused check, with a safe schedule).
    pub planned: PlannedCheck,
    warning: Option<Range>,
    critical: Option<Range>,
    condition: Option<Condition>,
    /// Why this agent refused the check; its every run is then UNKNOWN with this reason.
    pub refusal: Option<String>,
}

/// The one definition of a check an agent runs, shared by compile (which leaves out what fails
/// it, with a condition) and the agent (which refuses the check alone): the plan's own rules
/// for it ([`vedette_protocol::plan::check_problems`]: a probe this release knows, a possible
/// timing, every parameter substituted), then what compiling it needs (its ranges, condition
/// and probe settings). `Err` carries every problem, each naming the check.
pub fn compile_check(planned: &PlannedCheck, cycle_seconds: u32) -> Result<CompiledCheck, String> {
    let problems = vedette_protocol::plan::check_problems(planned, cycle_seconds);
    let compiled = if problems.is_empty() {
        CompiledCheck::compile(planned.clone()).map_err(|problem| vec![problem])
    } else {
        Err(problems)
    };
    compiled.map_err(|problems| {
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// How often a refused check reports that it is refused.
pub const REFUSED_INTERVAL_SECONDS: u32 = 300;

impl CompiledCheck {
    /// Compiles thresholds and condition; an error names the check and the field.
    pub fn compile(planned: PlannedCheck) -> Result<Self, PlanError> {
        let id = planned.id.to_string();
        let range = |field: &str, text: &Option<String>| -> Result<Option<Range>, PlanError> {
            text.as_deref()
                .filter(|t| !t.is_empty())
                .map(Range::parse)
                .transpose()
                .map_err(|e| PlanError::Timing {
                    id: id.clone(),
                    problem: format!("{field}: {e}"),
                })
        };
        let timeout = Duration::from_secs(u64::from(planned.timeout_seconds));
        crate::probe::validate(&planned.check)
            .and_then(|()| crate::probe::validate_within(&planned.check, timeout))
            .map_err(|error| PlanError::Spec {
                id: id.clone(),
                problem: error.to_string(),
            })?;
        let warning = range("warning", &planned.warning)?;
        let critical = range("critical", &planned.critical)?;
        let condition = planned
            .condition
            .as_deref()
            .map(Condition::compile)
            .transpose()
            .map_err(|e| PlanError::Timing {
                id: id.clone(),
                problem: e.to_string(),
            })?;
        Ok(Self {
            planned,
            warning,
            critical,
            condition,
            refusal: None,
        })
    }

    /// A check this agent cannot run, for `reason`: it is scheduled every
    /// [`REFUSED_INTERVAL_SECONDS`] (its own timing may be what is wrong), hard at the first
    /// run, and each run is UNKNOWN saying why.
    pub fn refused(mut planned: PlannedCheck, reason: String) -> Self {
        planned.interval_seconds = REFUSED_INTERVAL_SECONDS;
        planned.retry_interval_seconds = REFUSED_INTERVAL_SECONDS;
        planned.every_cycles = None;
        planned.max_attempts = 1;
        planned.timeout_seconds = 1;
        planned.spool_every_result = false;
        Self {
            planned,
            warning: None,
            critical: None,
            condition: None,
            refusal: Some(reason),
        }
    }
}

/// The decided result of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The state of this run (before soft/hard handling).
    pub state: CheckState,
    /// The first line of output, Nagios style (`TCP OK - …`).
    pub output: String,
    /// Further output lines.
    pub long_output: String,
    /// Performance data: label, value, unit.
    pub perfdata: Vec<(String, f64, String)>,
    /// The limits the plugin wrote beside its values (thresholds' bounds, min, max).
    pub limits: Vec<PerfdataLimit>,
    /// Performance data items the plugin wrote that were dropped, and why.
    pub dropped: DroppedPerfdata,
    /// How long the run took.
    pub duration: Duration,
}

/// One bound a plugin wrote beside a performance datum, as dashboards draw it.
#[derive(Debug, Clone, PartialEq)]
pub struct PerfdataLimit {
    /// The datum's label.
    pub label: String,
    /// The datum's unit.
    pub uom: String,
    /// Which bound.
    pub kind: LimitKind,
    /// Its value.
    pub value: f64,
}

/// Which bound of a performance datum a [`PerfdataLimit`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    /// The warning range's start.
    WarnLow,
    /// The warning range's end.
    WarnHigh,
    /// The critical range's start.
    CritLow,
    /// The critical range's end.
    CritHigh,
    /// The smallest possible value.
    Min,
    /// The largest possible value.
    Max,
}

impl LimitKind {
    /// The name in the `limit` label of `vedette_check_perfdata_limit`.
    pub fn name(self) -> &'static str {
        match self {
            LimitKind::WarnLow => "warn_low",
            LimitKind::WarnHigh => "warn_high",
            LimitKind::CritLow => "crit_low",
            LimitKind::CritHigh => "crit_high",
            LimitKind::Min => "min",
            LimitKind::Max => "max",
        }
    }

    /// Every kind.
    pub const ALL: [LimitKind; 6] = [
        LimitKind::WarnLow,
        LimitKind::WarnHigh,
        LimitKind::CritLow,
        LimitKind::CritHigh,
        LimitKind::Min,
        LimitKind::Max,
    ];
}

/// Counts of performance data items dropped in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DroppedPerfdata {
    /// Items that do not read as the Nagios guidelines say (`v=10,5`, `v=50;2:1`).
    pub malformed: u32,
    /// The item the output cap cut in the middle.
    pub cut: u32,
}

/// The finite bounds of each datum: a range's start and end (`10` is 0 to 10, `10:` has no
/// end, `~:10` no start), min and max.
fn limits_of(perfdata: &[PerfDatum]) -> Vec<PerfdataLimit> {
    let mut limits = Vec::new();
    for datum in perfdata {
        let bounds = [
            (
                LimitKind::WarnLow,
                datum.warn.as_ref().and_then(|r| r.start()),
            ),
            (
                LimitKind::WarnHigh,
                datum.warn.as_ref().and_then(|r| r.end()),
            ),
            (
                LimitKind::CritLow,
                datum.crit.as_ref().and_then(|r| r.start()),
            ),
            (
                LimitKind::CritHigh,
                datum.crit.as_ref().and_then(|r| r.end()),
            ),
            (LimitKind::Min, datum.min),
            (LimitKind::Max, datum.max),
        ];
        for (kind, value) in bounds {
            if let Some(value) = value.filter(|v| v.is_finite()) {
                limits.push(PerfdataLimit {
                    label: datum.label.clone(),
                    uom: datum.uom.as_str().to_owned(),
                    kind,
                    value,
                });
            }
        }
    }
    limits
}

/// Runs checks: one shared prober (HTTP pools, counters, log cursors) and plugin runner.
#[derive(Default)]
pub struct CheckRunner {
    prober: Prober,
    plugins: PluginRunner,
}

impl CheckRunner {
    /// A runner with the given plugin runner (directories, output cap).
    pub fn new(prober: Prober, plugins: PluginRunner) -> Self {
        Self { prober, plugins }
    }

    /// Replaces the Secret values the checks of `host`'s plan may read (empty: forgets
    /// them).
    pub fn set_secrets(&self, host: &str, secrets: &vedette_protocol::plan::SecretValues) {
        self.prober.set_plan_secrets(host, secrets.0.clone());
    }

    /// Runs a check once and decides its state.
    pub async fn run(&self, check: &CompiledCheck) -> Outcome {
        if let Some(reason) = &check.refusal {
            return Outcome {
                state: CheckState::Unknown,
                output: format!("check refused by this agent: {reason}"),
                long_output: String::new(),
                perfdata: Vec::new(),
                limits: Vec::new(),
                dropped: DroppedPerfdata::default(),
                duration: Duration::ZERO,
            };
        }
        let planned = &check.planned;
        let timeout = Duration::from_secs(u64::from(planned.timeout_seconds));
        if let Some(exec) = &planned.check.exec {
            let request =
                ExecRequest::from_probe(exec, planned.timeout_seconds, planned.timeout_state);
            let result = self.plugins.run(&request).await;
            let perfdata: Vec<(String, f64, String)> = result
                .perfdata
                .iter()
                .filter_map(|p| {
                    p.value
                        .map(|v| (p.label.clone(), v, p.uom.as_str().to_owned()))
                })
                .collect();
            // Thresholds apply to the first item the plugin wrote; when that one is malformed
            // they have no value (UNKNOWN, with the reason), not the next item's.
            let unreadable = result
                .first_perfdata_malformed
                .then(|| result.problems.first().map(ToString::to_string))
                .flatten();
            let value = match unreadable {
                Some(_) => f64::NAN,
                None => perfdata.first().map_or(f64::NAN, |p| p.1),
            };
            let outcome = Outcome {
                state: result.state,
                output: result.output,
                long_output: result.long_output,
                perfdata,
                limits: limits_of(&result.perfdata),
                dropped: DroppedPerfdata {
                    malformed: result.problems.len() as u32,
                    cut: u32::from(result.perfdata_cut),
                },
                duration: result.duration,
            };
            let outcome = apply_thresholds(check, value, unreadable.as_deref(), outcome);
            return apply_condition(check, value, outcome);
        }
        let started = Instant::now();
        let probe = self.prober.run(&planned.check, timeout).await;
        let duration = started.elapsed();
        let (state, reason) = if probe.timed_out {
            (
                planned.timeout_state,
                Some(format!("timed out after {}s", planned.timeout_seconds)),
            )
        } else if let Some((state, reason)) = &probe.failure {
            (*state, Some(reason.clone()))
        } else {
            (
                evaluate(probe.value, check.warning.as_ref(), check.critical.as_ref()),
                None,
            )
        };
        // Perfdata travels separately (metrics, `Outcome::perfdata`); the line is the text.
        let line = probe.line(state);
        let mut output = line.split('|').next().unwrap_or_default().to_owned();
        if let Some(reason) = reason.filter(|r| !output.contains(r.as_str())) {
            output = format!("{output} ({reason})");
        }
        let perfdata = probe
            .perfdata
            .iter()
            .map(|p| (p.label.clone(), p.value, p.uom.to_owned()))
            .collect();
        apply_condition(
            check,
            probe.value,
            Outcome {
                state,
                output,
                long_output: String::new(),
                perfdata,
                limits: Vec::new(),
                dropped: DroppedPerfdata::default(),
                duration,
            },
        )
    }
}

/// Thresholds on a plugin's value (its first performance datum): the plugin decides its own
/// state, the thresholds can only make it worse. A plugin without a numeric datum for them is
/// UNKNOWN unless its own state is worse already; `unreadable` says why the first datum could
/// not be read, when that is the reason.
fn apply_thresholds(
    check: &CompiledCheck,
    value: f64,
    unreadable: Option<&str>,
    mut outcome: Outcome,
) -> Outcome {
    if check.warning.is_none() && check.critical.is_none() {
        return outcome;
    }
    let state = outcome.state.worse(evaluate(
        value,
        check.warning.as_ref(),
        check.critical.as_ref(),
    ));
    if state != outcome.state {
        let reason = if let Some(problem) = unreadable.filter(|_| value.is_nan()) {
            format!("the thresholds' performance datum could not be read: {problem}")
        } else if value.is_nan() {
            "no performance data to compare with the thresholds".to_owned()
        } else {
            format!("value {value} is {state} by the thresholds")
        };
        outcome.output = format!("{} ({reason})", outcome.output);
        outcome.state = state;
    }
    outcome
}

/// A false condition turns the state into `conditionState` (never better than it was);
/// a condition that cannot be evaluated makes the run UNKNOWN with the reason.
fn apply_condition(check: &CompiledCheck, value: f64, mut outcome: Outcome) -> Outcome {
    let Some(condition) = &check.condition else {
        return outcome;
    };
    let perfdata: Vec<(String, f64)> = outcome
        .perfdata
        .iter()
        .map(|(l, v, _)| (l.clone(), *v))
        .collect();
    let state_name = outcome.state.name();
    let inputs = Inputs {
        value,
        output: &outcome.output,
        perfdata: &perfdata,
        state: state_name,
    };
    match condition.holds(inputs) {
        Ok(true) => {}
        Ok(false) => {
            outcome.state = outcome.state.worse(check.planned.condition_state);
            outcome.output = format!(
                "{} (condition {} is false)",
                outcome.output,
                condition.source()
            );
        }
        Err(error @ condition::Error::Evaluate { .. })
        | Err(error @ condition::Error::NotBoolean { .. }) => {
            outcome.state = CheckState::Unknown;
            outcome.output = format!("{} ({error})", outcome.output);
        }
        Err(error) => {
            outcome.state = CheckState::Unknown;
            outcome.output = error.to_string();
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nagios::perfdata::parse_perfdata;

    #[test]
    fn limits_are_the_finite_bounds_of_thresholds_min_and_max() {
        let perfdata = parse_perfdata("used=50%;80;~:90;0;100 free=3;10:;@1:2").items;
        let limits = limits_of(&perfdata);
        let limits: Vec<(&str, &str, f64)> = limits
            .iter()
            .map(|l| (l.label.as_str(), l.kind.name(), l.value))
            .collect();
        assert_eq!(
            limits,
            [
                ("used", "warn_low", 0.0),
                ("used", "warn_high", 80.0),
                ("used", "crit_high", 90.0),
                ("used", "min", 0.0),
                ("used", "max", 100.0),
                ("free", "warn_low", 10.0),
                ("free", "crit_low", 1.0),
                ("free", "crit_high", 2.0),
            ]
        );
    }
}
