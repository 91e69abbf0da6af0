//! The four Nagios check states and every rule about them, in one place: the name, the exit
//! code, the number on `/metrics`, and the order of severity that "worse" and "worst first"
//! mean everywhere (thresholds, summaries, status `problems`, the demo's listing).
//!
//! **Severity: CRITICAL > UNKNOWN > WARNING > OK.** This is the order Icinga 2 and Icinga Web
//! sort problems in, and the one Nagios users expect: UNKNOWN means the check could not tell
//! (a plugin that cannot start, a timeout configured as UNKNOWN, a target that does not
//! answer the question), which hides a problem of any size and is more urgent than a known
//! warning. `Ord` follows severity, so `a.max(b)` is the worse state and sorting by
//! `Reverse(state)` puts the worst first.

use std::cmp::Ordering;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The four Nagios states.
// The doc line above is the CRD's description; `Ord` is severity, not the exit code (see the
// module documentation).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum CheckState {
    /// Exit code 0.
    #[serde(rename = "OK")]
    Ok,
    /// Exit code 1.
    #[serde(rename = "WARNING")]
    Warning,
    /// Exit code 2.
    #[serde(rename = "CRITICAL")]
    Critical,
    /// Exit code 3, or anything a check could not decide.
    #[serde(rename = "UNKNOWN")]
    Unknown,
}

impl CheckState {
    /// Every state, from the least to the most severe.
    pub const BY_SEVERITY: [CheckState; 4] = [
        CheckState::Ok,
        CheckState::Warning,
        CheckState::Unknown,
        CheckState::Critical,
    ];

    /// `OK`, `WARNING`, `CRITICAL` or `UNKNOWN`, as plugins print it and the API spells it.
    pub const fn name(self) -> &'static str {
        match self {
            CheckState::Ok => "OK",
            CheckState::Warning => "WARNING",
            CheckState::Critical => "CRITICAL",
            CheckState::Unknown => "UNKNOWN",
        }
    }

    /// The state [`CheckState::name`] spells, if any.
    pub fn from_name(name: &str) -> Option<CheckState> {
        CheckState::BY_SEVERITY
            .into_iter()
            .find(|state| state.name() == name)
    }

    /// The Nagios exit code: 0, 1, 2 or 3.
    pub const fn exit_code(self) -> i32 {
        match self {
            CheckState::Ok => 0,
            CheckState::Warning => 1,
            CheckState::Critical => 2,
            CheckState::Unknown => 3,
        }
    }

    /// The state a plugin's exit code means: 0–2 as such, anything else UNKNOWN (as Nagios
    /// and Icinga read it).
    pub const fn from_exit_code(code: i32) -> CheckState {
        match code {
            0 => CheckState::Ok,
            1 => CheckState::Warning,
            2 => CheckState::Critical,
            _ => CheckState::Unknown,
        }
    }

    /// The value of a state gauge on `/metrics`: the exit code, so dashboards read it as
    /// Nagios numbers.
    pub const fn metric_value(self) -> i64 {
        self.exit_code() as i64
    }

    /// Rank in the order of severity: OK 0, WARNING 1, UNKNOWN 2, CRITICAL 3.
    pub const fn severity(self) -> u8 {
        match self {
            CheckState::Ok => 0,
            CheckState::Warning => 1,
            CheckState::Unknown => 2,
            CheckState::Critical => 3,
        }
    }

    /// The more severe of the two.
    pub fn worse(self, other: CheckState) -> CheckState {
        self.max(other)
    }

    /// Sort key that puts the worst state first (`sort_by_key(|p| p.state.worst_first())`).
    pub fn worst_first(self) -> std::cmp::Reverse<CheckState> {
        std::cmp::Reverse(self)
    }
}

impl Ord for CheckState {
    fn cmp(&self, other: &Self) -> Ordering {
        self.severity().cmp(&other.severity())
    }
}

impl PartialOrd for CheckState {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for CheckState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::CheckState::{self, Critical, Ok, Unknown, Warning};

    #[test]
    fn severity_is_critical_unknown_warning_ok() {
        let mut states = vec![Ok, Critical, Warning, Unknown];
        states.sort_by_key(|s| s.worst_first());
        assert_eq!(states, [Critical, Unknown, Warning, Ok]);
        assert_eq!(Warning.worse(Unknown), Unknown);
        assert_eq!(Critical.worse(Unknown), Critical);
        assert_eq!(Ok.worse(Warning), Warning);
    }

    #[test]
    fn exit_codes_and_names_round_trip() {
        for state in CheckState::BY_SEVERITY {
            assert_eq!(CheckState::from_exit_code(state.exit_code()), state);
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.name()));
            assert_eq!(state.to_string(), state.name());
            assert_eq!(CheckState::from_name(state.name()), Some(state));
        }
        assert_eq!(CheckState::from_exit_code(-1), Unknown);
        assert_eq!(CheckState::from_exit_code(4), Unknown);
        assert_eq!(CheckState::from_name("PENDING"), None);
        assert_eq!(Critical.metric_value(), 2);
    }
}
