//! What a satellite sends upstream (`POST /v1/satellite`, in a
//! [`Batch<Forwarded>`](crate::report::Batch) whose `agent` is the satellite replica's id), to
//! the masters or, for a zone with a `parentZone`, to the parent zone's satellites: every
//! entry its agents sent, its own remote checks' reports, periodic zone summaries, and what
//! the satellites of its child zones sent it ([`Forwarded::Relayed`]). Each is an entry of the
//! satellite's spool, so the same `(sender, sequence)` rules make resends harmless at every
//! level.

use serde::{Deserialize, Serialize};
use vedette_crds::template::CheckState;

use crate::plan::CheckId;
use crate::report::{Batch, Report, StateCounts};

/// One entry of a satellite's spool.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Forwarded {
    /// An entry an agent sent, as received.
    #[serde(rename_all = "camelCase")]
    Agent {
        /// The agent's id.
        agent: String,
        /// The agent's sequence number of the entry.
        sequence: u64,
        /// The report.
        report: Report,
    },
    /// A report of the satellite itself (a remote check's state change).
    #[serde(rename_all = "camelCase")]
    Own {
        /// The report.
        report: Report,
    },
    /// Summary of one rule set's checks in the zone. No longer sent: the masters count rule
    /// sets from the check states they merge. Still accepted (and ignored) so that a
    /// satellite of the previous release can forward what it spooled during an upgrade.
    RuleSetSummary(RuleSetSummary),
    /// Summary of the zone's agents.
    ZoneSummary(ZoneSummary),
    /// An entry a satellite of a child zone sent this satellite (a parent zone's), as
    /// received: the masters deduplicate it by `(satellite, sequence)`, whichever parent
    /// replica relayed it, and apply `entry` as if that satellite had sent it to them.
    #[serde(rename_all = "camelCase")]
    Relayed {
        /// The child zone's satellite replica that sent it.
        satellite: String,
        /// Its spool sequence there.
        sequence: u64,
        /// The floor of the batch it came in (everything below is acknowledged or dropped).
        floor: u64,
        /// The entry.
        entry: Box<Forwarded>,
    },
}

/// Most relays an entry may have gone through when it reaches the masters. Zones nest a few
/// levels deep; each relay adds a level of JSON nesting, and JSON parsers bound nesting
/// (serde_json at 128), so without a bound an entry a satellite accepted could, wrapped once
/// more, no longer parse upstream and block its spool.
pub const MAX_RELAYS: usize = 16;

/// Why a satellite refuses to relay a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// An entry went through too many relays already.
    #[error(
        "entry {sequence}: relayed {relays} times already, at most {} relays are allowed",
        MAX_RELAYS - 1
    )]
    TooManyRelays {
        /// The entry's sequence in the batch.
        sequence: u64,
        /// Relays it went through.
        relays: usize,
    },
}

impl Forwarded {
    /// The entry itself, through any number of relays.
    pub fn innermost(&self) -> &Forwarded {
        let mut entry = self;
        while let Forwarded::Relayed { entry: inner, .. } = entry {
            entry = inner;
        }
        entry
    }

    /// How many relays the entry went through.
    pub fn relays(&self) -> usize {
        let mut relays = 0;
        let mut entry = self;
        while let Forwarded::Relayed { entry: inner, .. } = entry {
            relays += 1;
            entry = inner;
        }
        relays
    }
}

/// Whether a satellite may relay `batch` (what a child zone's satellite sent) upstream: each
/// entry gets one more relay there, and must stay within [`MAX_RELAYS`].
pub fn check_relayable(batch: &Batch<Forwarded>) -> Result<(), RelayError> {
    match batch
        .entries
        .iter()
        .find(|envelope| envelope.report.relays() >= MAX_RELAYS)
    {
        Some(envelope) => Err(RelayError::TooManyRelays {
            sequence: envelope.sequence,
            relays: envelope.report.relays(),
        }),
        None => Ok(()),
    }
}

/// A current problem: a check not OK.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// The machine or remote target.
    pub host: String,
    /// The check.
    pub check: CheckId,
    /// Its state.
    pub state: CheckState,
    /// Whether the state is hard.
    pub hard: bool,
    /// Its output.
    pub output: String,
    /// When the state was reported, Unix ms.
    pub at_ms: u64,
}

/// Checks of one rule set in one zone, counted by state, with the worst problems.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RuleSetSummary {
    /// The zone.
    pub zone: String,
    /// Namespace (application) of the rule set.
    pub namespace: String,
    /// The rule set.
    pub rule_set: String,
    /// When the summary was made, Unix ms.
    pub at_ms: u64,
    /// Checks by state (pending: planned, never reported).
    pub counts: StateCounts,
    /// Checks whose agent is stale (their state may be out of date).
    pub stale: u32,
    /// The worst current problems, worst first (CRITICAL, UNKNOWN, WARNING; hard first).
    pub problems: Vec<Problem>,
}

/// The zone's agents as one satellite replica sees them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ZoneSummary {
    /// The zone.
    pub zone: String,
    /// The satellite replica.
    pub replica: String,
    /// When the summary was made, Unix ms.
    pub at_ms: u64,
    /// Agents known (planned machines and agents that sent keepalives).
    pub agents: u32,
    /// Agents with a fresh keepalive.
    pub connected: u32,
    /// Agents that missed three keepalives (or never sent one).
    pub stale: u32,
    /// Agents running a held plan.
    pub plan_held: u32,
    /// Remote checks this replica runs.
    pub remote_checks_owned: u32,
}
