//! Numbers an operator (and the agent's `/metrics`) reads about a spool.

use serde::Serialize;

use super::frame::Priority;

/// One number per priority.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PerPriority {
    /// For [`Priority::Result`].
    pub result: u64,
    /// For [`Priority::Keepalive`].
    pub keepalive: u64,
    /// For [`Priority::StateChange`].
    pub state_change: u64,
}

impl PerPriority {
    /// Builds the numbers from a function of the priority.
    pub fn from_fn(mut value: impl FnMut(Priority) -> u64) -> PerPriority {
        PerPriority {
            result: value(Priority::Result),
            keepalive: value(Priority::Keepalive),
            state_change: value(Priority::StateChange),
        }
    }

    /// The number for `priority`.
    pub fn get(&self, priority: Priority) -> u64 {
        match priority {
            Priority::Result => self.result,
            Priority::Keepalive => self.keepalive,
            Priority::StateChange => self.state_change,
        }
    }

    /// Sum over all priorities.
    pub fn total(&self) -> u64 {
        self.result + self.keepalive + self.state_change
    }
}

/// What recovery found when the spool was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecoveryReport {
    /// Intact records found (acknowledged or dropped ones included).
    pub records: u64,
    /// Bytes of partially written records cut off the end of the last segments.
    pub torn_tail_bytes: u64,
    /// Damaged regions found (skipped when intact records follow them).
    pub corrupt_regions: u64,
    /// Bytes in damaged regions.
    pub corrupt_bytes: u64,
    /// Damage recovery could not read past, one sentence each.
    pub errors: Vec<String>,
}

/// A snapshot of a spool's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpoolStats {
    /// Entries waiting for an acknowledgement.
    pub depth: u64,
    /// [`SpoolStats::depth`] by priority.
    pub depth_by_priority: PerPriority,
    /// Bytes of the waiting entries' frames (what retention's `max_bytes` limits).
    pub bytes: u64,
    /// Bytes of segment files on disk (includes acknowledged entries not yet deleted).
    pub disk_bytes: u64,
    /// Segment files on disk.
    pub segments: u64,
    /// Entries retention dropped, ever, by priority.
    pub dropped: PerPriority,
    /// Unix time (ms) of the oldest waiting entry.
    pub oldest_timestamp_ms: Option<u64>,
    /// Age (ms) of the oldest waiting entry.
    pub oldest_age_ms: Option<u64>,
    /// Every entry up to this sequence number was acknowledged.
    pub acked_through: u64,
    /// Highest sequence number used so far.
    pub last_sequence: u64,
    /// Batches committed since the spool was opened.
    pub commits: u64,
    /// fdatasync calls for those batches.
    pub fsyncs: u64,
    /// What recovery found on open.
    pub recovery: RecoveryReport,
}
