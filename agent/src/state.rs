//! The soft/hard state machine of one check, with Nagios and Icinga semantics, and the
//! evaluation of a measured value against warning and critical thresholds.
//!
//! A non-OK result after OK starts a *soft* state at attempt 1; each further non-OK result
//! counts one attempt; at `max_attempts` the state becomes *hard*, which is the change that is
//! notified. An OK result is hard at once. A soft non-OK followed by OK is a soft recovery: the
//! hard state never left OK, so nothing is notified. While a hard state is non-OK, a different
//! non-OK result is a hard change at once.

use vedette_crds::template::CheckState;

use vedette_protocol::range::Range;

/// Whether a state is confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateType {
    /// Not yet confirmed: still retrying.
    Soft,
    /// Confirmed: `max_attempts` results agree, or the state is OK.
    Hard,
}

/// Which interval schedules the next run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NextInterval {
    /// `intervalSeconds`: the state is steady.
    Regular,
    /// `retryIntervalSeconds`: a non-OK state is still soft.
    Retry,
}

impl NextInterval {
    /// The seconds to wait; the retry interval defaults to the regular one.
    pub fn seconds(self, interval_seconds: u32, retry_interval_seconds: Option<u32>) -> u32 {
        match self {
            NextInterval::Regular => interval_seconds,
            NextInterval::Retry => retry_interval_seconds.unwrap_or(interval_seconds),
        }
    }
}

/// What one result did to the check's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The state before this result.
    pub previous: CheckState,
    /// The state after this result.
    pub state: CheckState,
    /// Whether the new state is soft or hard.
    pub state_type: StateType,
    /// The attempt this result counted as, `1..=max_attempts`.
    pub attempt: u32,
    /// The hard state changed: notify.
    pub hard_change: bool,
    /// The state changed without changing the hard state (including a soft recovery).
    pub soft_change: bool,
    /// Which interval to wait before the next run.
    pub next_interval: NextInterval,
}

/// The state of one check across its results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckStateMachine {
    max_attempts: u32,
    state: CheckState,
    state_type: StateType,
    attempt: u32,
    last_hard_state: CheckState,
}

impl CheckStateMachine {
    /// A check that has not run yet, assumed hard OK. `max_attempts` below 1 counts as 1.
    pub fn new(max_attempts: u32) -> Self {
        CheckStateMachine {
            max_attempts: max_attempts.max(1),
            state: CheckState::Ok,
            state_type: StateType::Hard,
            attempt: 1,
            last_hard_state: CheckState::Ok,
        }
    }

    /// The current state.
    pub fn state(&self) -> CheckState {
        self.state
    }

    /// Whether the current state is soft or hard.
    pub fn state_type(&self) -> StateType {
        self.state_type
    }

    /// The current attempt, `1..=max_attempts`; `max_attempts` while hard non-OK.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The last confirmed state.
    pub fn last_hard_state(&self) -> CheckState {
        self.last_hard_state
    }

    /// Results needed to confirm a non-OK state.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Applies one result.
    pub fn observe(&mut self, result: CheckState) -> Transition {
        let previous = self.state;
        let (state_type, attempt) = if result == CheckState::Ok {
            (StateType::Hard, 1)
        } else if previous == CheckState::Ok {
            Self::counted(1, self.max_attempts)
        } else if self.state_type == StateType::Soft {
            Self::counted(self.attempt + 1, self.max_attempts)
        } else {
            (StateType::Hard, self.max_attempts)
        };
        self.state = result;
        self.state_type = state_type;
        self.attempt = attempt;
        let hard_change = state_type == StateType::Hard && result != self.last_hard_state;
        if state_type == StateType::Hard {
            self.last_hard_state = result;
        }
        Transition {
            previous,
            state: result,
            state_type,
            attempt,
            hard_change,
            soft_change: result != previous && !hard_change,
            next_interval: if state_type == StateType::Soft {
                NextInterval::Retry
            } else {
                NextInterval::Regular
            },
        }
    }

    /// The type of a non-OK result at this attempt.
    fn counted(attempt: u32, max_attempts: u32) -> (StateType, u32) {
        if attempt >= max_attempts {
            (StateType::Hard, max_attempts)
        } else {
            (StateType::Soft, attempt)
        }
    }
}

/// What a state machine needs to go on where it left off (kept across agent restarts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedState {
    /// The current state.
    pub state: CheckState,
    /// Whether it is hard.
    pub hard: bool,
    /// The current attempt.
    pub attempt: u32,
    /// The last confirmed state.
    pub last_hard_state: CheckState,
}

impl CheckStateMachine {
    /// What to save of this machine.
    pub fn saved(&self) -> SavedState {
        SavedState {
            state: self.state,
            hard: self.state_type == StateType::Hard,
            attempt: self.attempt,
            last_hard_state: self.last_hard_state,
        }
    }

    /// A machine that goes on from `saved`, made consistent with `max_attempts` (which may
    /// have changed): an OK state is hard at attempt 1, a soft one never reaches the limit.
    pub fn restored(max_attempts: u32, saved: SavedState) -> Self {
        let max_attempts = max_attempts.max(1);
        let mut machine = Self::new(max_attempts);
        machine.last_hard_state = saved.last_hard_state;
        machine.state = saved.state;
        if saved.state == CheckState::Ok {
            machine.last_hard_state = CheckState::Ok;
        } else if saved.hard || saved.attempt >= max_attempts {
            machine.state_type = StateType::Hard;
            machine.attempt = max_attempts;
            machine.last_hard_state = saved.state;
        } else {
            machine.state_type = StateType::Soft;
            machine.attempt = saved.attempt.max(1);
        }
        machine
    }
}

/// The state of a measured value: CRITICAL when the critical range alerts, else WARNING when
/// the warning range alerts, else OK. A NaN value is UNKNOWN.
pub fn evaluate(value: f64, warning: Option<&Range>, critical: Option<&Range>) -> CheckState {
    if value.is_nan() {
        CheckState::Unknown
    } else if critical.is_some_and(|range| range.alerts(value)) {
        CheckState::Critical
    } else if warning.is_some_and(|range| range.alerts(value)) {
        CheckState::Warning
    } else {
        CheckState::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CheckState::{Critical, Ok, Unknown, Warning};
    use proptest::prelude::*;

    #[test]
    fn a_restored_machine_goes_on_where_it_left_off() {
        let mut machine = CheckStateMachine::new(3);
        for _ in 0..3 {
            machine.observe(Critical);
        }
        let mut restored = CheckStateMachine::restored(3, machine.saved());
        assert_eq!(restored, machine);
        let transition = restored.observe(Critical);
        assert!(
            !transition.hard_change && !transition.soft_change,
            "{transition:?}"
        );
        assert_eq!(
            (transition.state_type, transition.attempt),
            (StateType::Hard, 3)
        );

        let mut soft = CheckStateMachine::new(3);
        soft.observe(Warning);
        let mut restored = CheckStateMachine::restored(3, soft.saved());
        let transition = restored.observe(Warning);
        assert_eq!(
            (transition.state_type, transition.attempt),
            (StateType::Soft, 2)
        );
    }

    #[test]
    fn a_restored_machine_fits_a_changed_max_attempts() {
        let mut soft = CheckStateMachine::new(5);
        for _ in 0..3 {
            soft.observe(Critical);
        }
        // Attempt 3 of 5 saved; the check now allows 2: the state is confirmed.
        let restored = CheckStateMachine::restored(2, soft.saved());
        assert_eq!(restored.state_type(), StateType::Hard);
        assert_eq!(restored.attempt(), 2);
        assert_eq!(restored.last_hard_state(), Critical);
        let ok = CheckStateMachine::restored(
            0,
            SavedState {
                state: Ok,
                hard: false,
                attempt: 7,
                last_hard_state: Critical,
            },
        );
        assert_eq!(ok, CheckStateMachine::new(1));
    }

    proptest! {
        #[test]
        fn saving_and_restoring_changes_nothing(
            max_attempts in 1u32..5,
            results in proptest::collection::vec(0u8..4, 0..20),
            next in 0u8..4,
        ) {
            let state = |n: u8| [Ok, Warning, Critical, Unknown][usize::from(n)];
            let mut machine = CheckStateMachine::new(max_attempts);
            for result in results {
                machine.observe(state(result));
            }
            let mut restored = CheckStateMachine::restored(max_attempts, machine.saved());
            prop_assert_eq!(&restored, &machine);
            prop_assert_eq!(restored.observe(state(next)), machine.observe(state(next)));
        }
    }

    fn run(max_attempts: u32, results: &[CheckState]) -> Vec<Transition> {
        let mut machine = CheckStateMachine::new(max_attempts);
        results
            .iter()
            .map(|&result| machine.observe(result))
            .collect()
    }

    fn summary(t: &Transition) -> (CheckState, StateType, u32, bool, bool, NextInterval) {
        (
            t.state,
            t.state_type,
            t.attempt,
            t.hard_change,
            t.soft_change,
            t.next_interval,
        )
    }

    use NextInterval::{Regular, Retry};
    use StateType::{Hard, Soft};

    #[test]
    fn problem_becomes_hard_after_max_attempts_then_recovers_at_once() {
        let transitions = run(3, &[Ok, Critical, Critical, Critical, Critical, Ok, Ok]);
        let got: Vec<_> = transitions.iter().map(summary).collect();
        assert_eq!(
            got,
            [
                (Ok, Hard, 1, false, false, Regular),
                (Critical, Soft, 1, false, true, Retry),
                (Critical, Soft, 2, false, false, Retry),
                (Critical, Hard, 3, true, false, Regular),
                (Critical, Hard, 3, false, false, Regular),
                (Ok, Hard, 1, true, false, Regular),
                (Ok, Hard, 1, false, false, Regular),
            ]
        );
    }

    #[test]
    fn soft_recovery_is_not_a_hard_change() {
        let got: Vec<_> = run(3, &[Warning, Warning, Ok])
            .iter()
            .map(summary)
            .collect();
        assert_eq!(
            got,
            [
                (Warning, Soft, 1, false, true, Retry),
                (Warning, Soft, 2, false, false, Retry),
                (Ok, Hard, 1, false, true, Regular),
            ]
        );
    }

    #[test]
    fn soft_states_may_differ_and_still_count_attempts() {
        let got: Vec<_> = run(3, &[Warning, Critical, Unknown])
            .iter()
            .map(summary)
            .collect();
        assert_eq!(
            got,
            [
                (Warning, Soft, 1, false, true, Retry),
                (Critical, Soft, 2, false, true, Retry),
                (Unknown, Hard, 3, true, false, Regular),
            ]
        );
    }

    #[test]
    fn hard_problem_changing_kind_is_a_hard_change_at_once() {
        let transitions = run(2, &[Warning, Warning, Critical, Critical]);
        let got: Vec<_> = transitions.iter().map(summary).collect();
        assert_eq!(
            got,
            [
                (Warning, Soft, 1, false, true, Retry),
                (Warning, Hard, 2, true, false, Regular),
                (Critical, Hard, 2, true, false, Regular),
                (Critical, Hard, 2, false, false, Regular),
            ]
        );
        assert_eq!(transitions[2].previous, Warning);
    }

    #[test]
    fn one_attempt_makes_every_problem_hard() {
        let got: Vec<_> = run(1, &[Critical, Ok]).iter().map(summary).collect();
        assert_eq!(
            got,
            [
                (Critical, Hard, 1, true, false, Regular),
                (Ok, Hard, 1, true, false, Regular)
            ]
        );
        assert_eq!(CheckStateMachine::new(0).max_attempts(), 1);
    }

    #[test]
    fn retry_interval_defaults_to_the_regular_one() {
        assert_eq!(Retry.seconds(60, Some(10)), 10);
        assert_eq!(Retry.seconds(60, None), 60);
        assert_eq!(Regular.seconds(60, Some(10)), 60);
    }

    #[test]
    fn critical_wins_over_warning() {
        let warning = Range::parse("10").unwrap();
        let critical = Range::parse("20").unwrap();
        let state = |value| evaluate(value, Some(&warning), Some(&critical));
        assert_eq!(state(5.0), Ok);
        assert_eq!(state(10.0), Ok);
        assert_eq!(state(15.0), Warning);
        assert_eq!(state(25.0), Critical);
        assert_eq!(state(-1.0), Critical);
        assert_eq!(state(f64::NAN), Unknown);
        assert_eq!(evaluate(25.0, None, None), Ok);
        assert_eq!(evaluate(25.0, Some(&warning), None), Warning);
        assert_eq!(evaluate(25.0, None, Some(&critical)), Critical);
        let inside = Range::parse("@0:5").unwrap();
        assert_eq!(evaluate(3.0, None, Some(&inside)), Critical);
    }

    fn result() -> impl Strategy<Value = CheckState> {
        prop_oneof![Just(Ok), Just(Warning), Just(Critical), Just(Unknown)]
    }

    proptest! {
        #[test]
        fn hard_changes_follow_the_rules(
            max_attempts in 1u32..6,
            results in proptest::collection::vec(result(), 0..40),
        ) {
            let mut machine = CheckStateMachine::new(max_attempts);
            let mut consecutive_problems = 0u32;
            let mut hard_state = Ok;
            for result in results {
                let hard_before = hard_state;
                consecutive_problems = if result == Ok { 0 } else { consecutive_problems + 1 };
                let transition = machine.observe(result);
                prop_assert!((1..=max_attempts).contains(&transition.attempt));
                if result == Ok {
                    prop_assert_eq!((transition.state_type, transition.attempt), (Hard, 1));
                    prop_assert_eq!(transition.hard_change, hard_before != Ok);
                } else {
                    // Soft exactly while fewer than max_attempts problems were seen in a row.
                    let soft = consecutive_problems < max_attempts;
                    prop_assert_eq!(transition.state_type == Soft, soft);
                    prop_assert_eq!(transition.attempt, consecutive_problems.min(max_attempts));
                    if transition.hard_change && hard_before == Ok {
                        prop_assert_eq!(consecutive_problems, max_attempts);
                    }
                }
                if transition.state_type == Hard {
                    hard_state = result;
                }
                prop_assert_eq!(transition.hard_change, hard_state != hard_before);
                prop_assert_eq!(machine.last_hard_state(), hard_state);
                prop_assert_eq!(
                    transition.soft_change,
                    transition.previous != result && !transition.hard_change
                );
                prop_assert_eq!(
                    transition.next_interval == Retry,
                    transition.state_type == Soft && result != Ok
                );
            }
        }
    }
}
