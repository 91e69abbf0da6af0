//! What travels upstream: state changes, results and keepalives, each in an `Envelope` with
//! `(agent id, sequence)` so that a resend is harmless, grouped in a `Batch`; the upstream
//! answers with an `Ack`.

use serde::{Deserialize, Serialize};
use vedette_crds::template::CheckState;

use crate::plan::CheckId;

/// The result of one check run as reported upstream.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    /// Which check.
    pub check: CheckId,
    /// The machine (or remote target) it ran for.
    pub host: String,
    /// State after this run.
    pub state: CheckState,
    /// Whether the state is hard (confirmed after `maxAttempts`).
    pub hard: bool,
    /// The attempt this run was, 1-based.
    pub attempt: u32,
    /// State before this run.
    pub previous_state: CheckState,
    /// First line of output.
    pub output: String,
    /// How long the run took, milliseconds.
    pub duration_ms: u64,
    /// When it finished, Unix milliseconds.
    pub at_ms: u64,
}

/// Checks counted by state (the same type a RuleSet's status carries).
pub use vedette_crds::ruleset::StateCounts;

/// Which plan the agent runs and whether it is held.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PlanState {
    /// Hash (ETag) of the plan being run; empty when there is none.
    pub hash: String,
    /// True when the agent runs its last good plan because the upstream is unreachable or
    /// sent an invalid plan.
    pub held: bool,
    /// Why the plan is held, e.g. the validation error of the rejected plan.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Seconds since the plan was fetched.
    pub age_seconds: u64,
}

/// A periodic sign of life with a summary.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Keepalive {
    /// The machine.
    pub host: String,
    /// Its zone, as the plan says.
    pub zone: String,
    /// When it was sent, Unix milliseconds.
    pub at_ms: u64,
    /// Seconds until the next keepalive; upstream marks the agent stale after three.
    pub interval_seconds: u64,
    /// The plan.
    pub plan: PlanState,
    /// Checks by current state.
    pub counts: StateCounts,
    /// Entries waiting in the spool.
    pub spool_depth: u64,
    /// Entries the spool dropped (retention) since the agent started.
    pub spool_dropped: u64,
    /// Agent version.
    pub version: String,
}

/// One report.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Report {
    /// A check changed state (soft or hard).
    StateChange(CheckReport),
    /// A result of a check that spools every result.
    Result(CheckReport),
    /// A keepalive.
    Keepalive(Keepalive),
    /// A business-process element changed state on this machine.
    ElementTransition(crate::process::ElementReport),
}

impl Report {
    /// When the report was made, reporter's clock, Unix ms.
    pub fn at_ms(&self) -> u64 {
        match self {
            Report::StateChange(r) | Report::Result(r) => r.at_ms,
            Report::Keepalive(k) => k.at_ms,
            Report::ElementTransition(t) => t.at_ms,
        }
    }
}

/// A report with its identity. `R` is what the sender's spool holds: an agent's [`Report`],
/// or a satellite's [`crate::forward::Forwarded`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<R = Report> {
    /// Sequence number, unique and increasing per agent (the spool's).
    pub sequence: u64,
    /// The report.
    pub report: R,
}

/// What an agent (or a satellite, to the masters) sends in one request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Batch<R = Report> {
    /// The sender's id (an agent's host name in a cluster; a satellite's replica id).
    pub agent: String,
    /// The lowest sequence the agent still holds: everything below was acknowledged or
    /// dropped by retention, so the upstream need not wait for it.
    pub floor: u64,
    /// The entries, any order.
    pub entries: Vec<Envelope<R>>,
}

/// The upstream's answer to a batch.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Ack {
    /// Every sequence up to and including this one is durably stored upstream.
    pub up_to: u64,
}
