//! The last known state of one check, as the store keeps it so that a master that restarts
//! serves it ("last known at T") instead of `pending`.

use serde::Serialize;
use vedette_crds::CheckState;
use vedette_protocol::merge::CheckKey;

/// What the masters knew of a check when they last applied a report for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastState {
    /// The machine and the check.
    #[serde(flatten)]
    pub key: CheckKey,
    /// Zone of the reporter, when known.
    pub zone: Option<String>,
    /// The state.
    pub state: CheckState,
    /// Whether it is hard.
    pub hard: bool,
    /// The last hard state.
    pub last_hard: CheckState,
    /// Output of the run that set it.
    pub output: String,
    /// When that run finished, Unix ms.
    pub at_ms: u64,
    /// Since when the check is in `state`, Unix ms.
    pub since_ms: u64,
    /// Who wrote it, and its sequence (the merge's tie-breaker).
    pub writer: String,
    /// The writer's sequence.
    pub writer_sequence: u64,
}
