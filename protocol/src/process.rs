//! Business processes on the wire and the rules both tiers share: the clauses an agent
//! evaluates ([`PlannedElement`], in its plan), the transitions it reports
//! ([`ElementReport`]), which clause fires from a state ([`next_clause`]), what a time window
//! means in a time zone ([`in_window`], DST-correct), and what an element on several machines
//! is ([`aggregate`]).
//!
//! **Where clauses are evaluated.** A clause whose conditions are all facts of the element's
//! machine (a time window, a process, a file, a log line, a check of that machine) is
//! evaluated by the machine's agent, which runs the element's state machine there and reports
//! each transition through its spool: a machine cut off from its satellite keeps evaluating,
//! and its transitions arrive later, in order. A clause that needs facts from elsewhere
//! (another element's state, a check of another machine) is the masters'; compile decides.

use serde::{Deserialize, Serialize};
use vedette_crds::process::{ElementState, LogMatch, TimeWindow};
use vedette_crds::template::CheckState;

use crate::plan::CheckId;

/// A time zone, as [`time_zone`] returns it.
pub use jiff::tz::TimeZone;

/// Identifies a business process: `namespace/name`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "camelCase")]
pub struct ProcessId {
    /// Namespace (application).
    pub namespace: String,
    /// Name of the BusinessProcess.
    pub name: String,
}

impl std::fmt::Display for ProcessId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One element as the agents of its machines run it: the clauses they evaluate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlannedElement {
    /// The process.
    pub process: ProcessId,
    /// The element's name.
    pub element: String,
    /// IANA time zone of the process's time windows.
    pub time_zone: String,
    /// The machines that run it (in a zone bundle; a machine's plan keeps only itself).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// The clauses the agent evaluates, in the order they are tried (see [`next_clause`]).
    pub clauses: Vec<PlannedClause>,
}

/// A clause an agent evaluates.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlannedClause {
    /// The state it enters.
    pub enters: ElementState,
    /// Its name in the spec: `standby`, `running`, `completed`, `failed[i]`.
    pub name: String,
    /// What must hold, all at once.
    pub when: MachineConditions,
    /// The transition's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Facts of one machine.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MachineConditions {
    /// Local time in the process's zone within the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_window: Option<TimeWindow>,
    /// A process of this name runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_running: Option<String>,
    /// This file exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_exists: Option<String>,
    /// A line matching appeared since the element last changed state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_match: Option<LogMatch>,
    /// A check of this machine is in one of these states.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_state: Option<LocalCheckState>,
}

/// A check of the machine as a condition.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LocalCheckState {
    /// The check.
    pub check: CheckId,
    /// States that satisfy it.
    pub states: Vec<CheckState>,
}

/// An element's transition on one machine, as its agent reports it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ElementReport {
    /// The process.
    pub process: ProcessId,
    /// The element.
    pub element: String,
    /// The machine.
    pub host: String,
    /// State before.
    pub from: ElementState,
    /// State entered.
    pub to: ElementState,
    /// The clause that fired.
    pub clause: String,
    /// Its message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When, agent's clock, Unix ms.
    pub at_ms: u64,
}

/// The clause that fires for an element in `state`, given which clauses hold: the first of
/// those that may follow `state` and hold, trying failure paths before `completed` (a run that
/// wrote both its failure and its success marker failed). `clauses` yields each clause's
/// target state and truth, in plan order; the answer is its index.
pub fn next_clause(
    state: ElementState,
    clauses: impl IntoIterator<Item = (ElementState, bool)>,
) -> Option<usize> {
    let candidates: Vec<(usize, ElementState)> = clauses
        .into_iter()
        .enumerate()
        .filter(|(_, (enters, holds))| *holds && state.may_enter(*enters))
        .map(|(i, (enters, _))| (i, enters))
        .collect();
    candidates
        .iter()
        .find(|(_, enters)| *enters == ElementState::Failed)
        .or_else(|| candidates.first())
        .map(|(i, _)| *i)
}

/// Why a time window cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// The time zone is unknown.
    #[error("unknown time zone {0:?}")]
    TimeZone(String),
    /// A time is not `HH:MM`.
    #[error("time {0:?} is not HH:MM")]
    Time(String),
    /// A day is not `Mon` … `Sun`.
    #[error("day {0:?} is not one of Mon Tue Wed Thu Fri Sat Sun")]
    Day(String),
}

/// The time zone named, from the bundled database (agents need no zoneinfo files).
pub fn time_zone(name: &str) -> Result<jiff::tz::TimeZone, WindowError> {
    jiff::tz::db()
        .get(name)
        .map_err(|_| WindowError::TimeZone(name.to_owned()))
}

/// Minutes since midnight of `HH:MM`.
pub fn minutes_of_day(text: &str) -> Result<i32, WindowError> {
    let bad = || WindowError::Time(text.to_owned());
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(0..24).contains(&h) || !(0..60).contains(&m) || text.len() != 5 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// `Mon` … `Sun` as 1 … 7 (ISO weekday).
pub fn weekday(day: &str) -> Result<i8, WindowError> {
    ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
        .iter()
        .position(|d| *d == day)
        .map(|i| i as i8 + 1)
        .ok_or_else(|| WindowError::Day(day.to_owned()))
}

/// Whether `at_ms` falls in the window, read on the wall clock of `zone`: start inclusive,
/// end exclusive; a window that ends before it starts crosses midnight and belongs to the day
/// it starts on (for `days`). On a DST change the wall clock decides: a window in the skipped
/// hour does not occur that day, one in the repeated hour holds both times.
pub fn in_window(
    window: &TimeWindow,
    zone: &jiff::tz::TimeZone,
    at_ms: u64,
) -> Result<bool, WindowError> {
    let start = minutes_of_day(&window.start)?;
    let end = minutes_of_day(&window.end)?;
    let days = window
        .days
        .iter()
        .map(|d| weekday(d))
        .collect::<Result<Vec<_>, _>>()?;
    let Ok(at) = jiff::Timestamp::from_millisecond(at_ms as i64) else {
        return Ok(false);
    };
    let local = at.to_zoned(zone.clone());
    let minute = i32::from(local.hour()) * 60 + i32::from(local.minute());
    let today = local.weekday().to_monday_one_offset();
    let on = |day: i8| days.is_empty() || days.contains(&day);
    Ok(if start < end {
        (start..end).contains(&minute) && on(today)
    } else if minute >= start {
        on(today)
    } else {
        minute < end && on(if today == 1 { 7 } else { today - 1 })
    })
}

/// The state of an element that runs on several machines, from the state it had and each
/// machine's state: a run starts when its first machine leaves Standby and ends when the last
/// one ends — Failed as soon as any machine failed, Completed when every machine completed —
/// and the element is back in Standby when every machine is, or when a machine starts the next
/// run. The answer is the sequence of states the element goes through (empty: unchanged), each
/// a legal step of the state machine.
pub fn aggregate(
    previous: ElementState,
    machines: impl IntoIterator<Item = ElementState> + Clone,
) -> Vec<ElementState> {
    use ElementState::*;
    let all = |state: ElementState| machines.clone().into_iter().all(|m| m == state);
    let any = |state: ElementState| machines.clone().into_iter().any(|m| m == state);
    let mut steps = Vec::new();
    let mut current = previous;
    loop {
        let next = match current {
            Standby if !all(Standby) && (any(Running) || steps.is_empty()) => Some(Running),
            Running if any(Failed) => Some(Failed),
            Running if all(Completed) => Some(Completed),
            Completed | Failed if all(Standby) || (any(Running) && !any(current)) => Some(Standby),
            _ => None,
        };
        match next {
            Some(state) if steps.len() < 4 => {
                steps.push(state);
                current = state;
            }
            _ => return steps,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ElementState::*;
    use proptest::prelude::*;

    fn window(start: &str, end: &str, days: &[&str]) -> TimeWindow {
        TimeWindow {
            start: start.into(),
            end: end.into(),
            days: days.iter().map(|d| (*d).to_owned()).collect(),
        }
    }

    fn ms(text: &str) -> u64 {
        text.parse::<jiff::Timestamp>().unwrap().as_millisecond() as u64
    }

    #[test]
    fn windows_are_read_on_the_zones_wall_clock_across_dst() {
        let ny = time_zone("America/New_York").unwrap();
        let w = window("14:00", "14:30", &[]);
        // Winter: UTC-5; summer: UTC-4. 14:10 local both times.
        assert!(in_window(&w, &ny, ms("2026-01-15T19:10:00Z")).unwrap());
        assert!(in_window(&w, &ny, ms("2026-07-15T18:10:00Z")).unwrap());
        assert!(!in_window(&w, &ny, ms("2026-07-15T19:10:00Z")).unwrap());
        // 2026-03-08 02:00 → 03:00 in New York: 02:15 does not exist that day.
        let skipped = window("02:00", "02:30", &[]);
        assert!(!in_window(&skipped, &ny, ms("2026-03-08T07:15:00Z")).unwrap());
        // 2026-11-01 01:00–02:00 happens twice: both are in the window.
        let repeated = window("01:00", "01:30", &[]);
        assert!(in_window(&repeated, &ny, ms("2026-11-01T05:10:00Z")).unwrap());
        assert!(in_window(&repeated, &ny, ms("2026-11-01T06:10:00Z")).unwrap());
    }

    #[test]
    fn a_window_across_midnight_belongs_to_the_day_it_starts() {
        let utc = time_zone("UTC").unwrap();
        let w = window("23:00", "01:00", &["Fri"]);
        // 2026-12-04 is a Friday.
        assert!(in_window(&w, &utc, ms("2026-12-04T23:30:00Z")).unwrap());
        assert!(in_window(&w, &utc, ms("2026-12-05T00:30:00Z")).unwrap());
        assert!(!in_window(&w, &utc, ms("2026-12-05T23:30:00Z")).unwrap());
        assert!(!in_window(&w, &utc, ms("2026-12-04T00:30:00Z")).unwrap());
    }

    #[test]
    fn bad_zones_times_and_days_are_named() {
        assert_eq!(
            time_zone("Mars/Olympus").unwrap_err().to_string(),
            "unknown time zone \"Mars/Olympus\""
        );
        let utc = time_zone("UTC").unwrap();
        let err = in_window(&window("25:00", "01:00", &[]), &utc, 0).unwrap_err();
        assert_eq!(err, WindowError::Time("25:00".into()));
        let err = in_window(&window("01:00", "02:00", &["Fr"]), &utc, 0).unwrap_err();
        assert_eq!(err, WindowError::Day("Fr".into()));
    }

    #[test]
    fn failure_paths_win_over_completion_and_only_successors_fire() {
        let clauses = [
            (Standby, true),
            (Running, true),
            (Completed, true),
            (Failed, false),
            (Failed, true),
        ];
        assert_eq!(next_clause(Running, clauses), Some(4));
        assert_eq!(next_clause(Standby, clauses), Some(1));
        assert_eq!(next_clause(Completed, clauses), Some(0));
        assert_eq!(
            next_clause(Standby, [(Completed, true), (Failed, true)]),
            None
        );
    }

    #[test]
    fn an_element_on_several_machines_runs_until_all_completed() {
        assert_eq!(aggregate(Standby, [Standby, Standby]), vec![]);
        assert_eq!(aggregate(Standby, [Running, Standby]), vec![Running]);
        assert_eq!(aggregate(Running, [Completed, Running]), vec![]);
        assert_eq!(aggregate(Running, [Completed, Standby]), vec![]);
        assert_eq!(aggregate(Running, [Completed, Completed]), vec![Completed]);
        assert_eq!(aggregate(Running, [Completed, Failed]), vec![Failed]);
        assert_eq!(aggregate(Completed, [Standby, Completed]), vec![]);
        assert_eq!(aggregate(Completed, [Standby, Standby]), vec![Standby]);
        // A machine that ran and completed between two reports still makes a run.
        assert_eq!(aggregate(Standby, [Completed]), vec![Running, Completed]);
        // The next run starts while another machine still shows the last one's end.
        assert_eq!(
            aggregate(Failed, [Running, Completed]),
            vec![Standby, Running]
        );
    }

    fn state() -> impl Strategy<Value = ElementState> {
        prop_oneof![Just(Standby), Just(Running), Just(Completed), Just(Failed)]
    }

    proptest! {
        /// Whatever the machines do, the element only takes legal steps.
        #[test]
        fn aggregation_only_takes_legal_steps(
            start in state(),
            rounds in prop::collection::vec(prop::collection::vec(state(), 1..4), 1..30),
        ) {
            let mut current = start;
            for machines in rounds {
                for next in aggregate(current, machines.iter().copied()) {
                    prop_assert!(current.may_enter(next), "{current} -> {next}");
                    current = next;
                }
            }
        }

        /// The clause chosen always may follow the state, and holds.
        #[test]
        fn the_chosen_clause_is_a_legal_one_that_holds(
            from in state(),
            clauses in prop::collection::vec((state(), any::<bool>()), 0..8),
        ) {
            match next_clause(from, clauses.iter().copied()) {
                Some(i) => {
                    prop_assert!(clauses[i].1);
                    prop_assert!(from.may_enter(clauses[i].0));
                }
                None => prop_assert!(!clauses.iter().any(|(to, holds)| *holds && from.may_enter(*to))),
            }
        }
    }
}
