//! Availability (the basis of SLA reports): the share of a time range a check spent in each
//! state, from its state when the range began and its state changes within it. Pure.
//!
//! Time before a check's first known state is *pending* (it did not exist, or the history was
//! pruned), never counted as OK.

use serde::Serialize;
use vedette_crds::CheckState;

/// Milliseconds spent in each state over a range.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateTimes {
    /// In OK.
    pub ok_ms: u64,
    /// In WARNING.
    pub warning_ms: u64,
    /// In CRITICAL.
    pub critical_ms: u64,
    /// In UNKNOWN.
    pub unknown_ms: u64,
    /// With no known state.
    pub pending_ms: u64,
}

impl StateTimes {
    /// Adds `ms` to `state`'s time (`None`: pending).
    pub fn add(&mut self, state: Option<CheckState>, ms: u64) {
        let slot = match state {
            Some(CheckState::Ok) => &mut self.ok_ms,
            Some(CheckState::Warning) => &mut self.warning_ms,
            Some(CheckState::Critical) => &mut self.critical_ms,
            Some(CheckState::Unknown) => &mut self.unknown_ms,
            None => &mut self.pending_ms,
        };
        *slot += ms;
    }

    /// Both added up.
    pub fn plus(self, other: StateTimes) -> StateTimes {
        StateTimes {
            ok_ms: self.ok_ms + other.ok_ms,
            warning_ms: self.warning_ms + other.warning_ms,
            critical_ms: self.critical_ms + other.critical_ms,
            unknown_ms: self.unknown_ms + other.unknown_ms,
            pending_ms: self.pending_ms + other.pending_ms,
        }
    }

    /// All the time counted.
    pub fn total_ms(&self) -> u64 {
        self.ok_ms + self.warning_ms + self.critical_ms + self.unknown_ms + self.pending_ms
    }

    /// The share of the time in OK (0 when nothing was counted).
    pub fn ok_share(&self) -> f64 {
        match self.total_ms() {
            0 => 0.0,
            total => self.ok_ms as f64 / total as f64,
        }
    }
}

/// Time per state over `[from_ms, to_ms)` for a check that was in `initial` at `from_ms`
/// (`None`: no state known) and changed to each of `changes` (`(at_ms, state)`, in the
/// order they happened) afterwards. Changes outside the range only move the state.
pub fn state_times(
    initial: Option<CheckState>,
    changes: &[(u64, CheckState)],
    from_ms: u64,
    to_ms: u64,
) -> StateTimes {
    let mut times = StateTimes::default();
    let mut state = initial;
    let mut cursor = from_ms;
    for &(at, next) in changes {
        let at = at.clamp(from_ms, to_ms.max(from_ms));
        if at > cursor {
            times.add(state, at - cursor);
            cursor = at;
        }
        state = Some(next);
    }
    if to_ms > cursor {
        times.add(state, to_ms - cursor);
    }
    times
}

#[cfg(test)]
mod tests {
    use super::*;
    use CheckState::*;

    #[test]
    fn time_is_split_at_each_change_and_before_the_first_state_is_pending() {
        let times = state_times(None, &[(10, Ok), (40, Critical), (70, Ok)], 0, 100);
        assert_eq!(
            times,
            StateTimes {
                ok_ms: 60,
                critical_ms: 30,
                pending_ms: 10,
                ..StateTimes::default()
            }
        );
        assert_eq!(times.total_ms(), 100);
    }

    #[test]
    fn the_initial_state_counts_from_the_start_and_changes_outside_only_move_the_state() {
        let times = state_times(Some(Warning), &[(5, Critical), (200, Ok)], 50, 100);
        assert_eq!(
            times.critical_ms, 50,
            "changed before the range: critical throughout"
        );
        assert_eq!(times.total_ms(), 50);
        let empty = state_times(Some(Ok), &[], 0, 0);
        assert_eq!(empty.total_ms(), 0);
        assert_eq!(empty.ok_share(), 0.0);
    }

    #[test]
    fn two_changes_at_one_instant_leave_the_last_one() {
        let times = state_times(Some(Ok), &[(10, Critical), (10, Warning)], 0, 20);
        assert_eq!(
            (times.ok_ms, times.warning_ms, times.critical_ms),
            (10, 10, 0)
        );
    }
}
