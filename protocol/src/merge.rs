//! The rules every receiver of reports applies the same way, satellites and masters alike:
//! which of two reports of a check is newer, what identifies a check on a host, and when an
//! agent is stale.
//!
//! **Which report is newer.** A stored state is replaced only by a newer report: from the
//! same writer (agent or satellite replica), a higher sequence; from another writer (a remote
//! check that moved between replicas), a later or equal `at_ms`. A replayed old state change
//! never overwrites a newer state.
//!
//! **Staleness.** An agent is stale once it missed [`MISSED_KEEPALIVES`] keepalives at the
//! interval it announced, or when it never sent one.

use serde::{Deserialize, Serialize};

use crate::plan::CheckId;

/// Keepalives an agent may miss before it is stale.
pub const MISSED_KEEPALIVES: u64 = 3;

/// Identifies a check on a host.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CheckKey {
    /// The machine or remote target.
    pub host: String,
    /// The check.
    pub check: CheckId,
}

impl CheckKey {
    /// The key of `check` on `host`.
    pub fn new(host: &str, check: &CheckId) -> CheckKey {
        CheckKey {
            host: host.to_owned(),
            check: check.clone(),
        }
    }
}

/// Where a report came from: its writer, the writer's sequence, and when the run finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp<'a> {
    /// Agent (or satellite replica) id.
    pub writer: &'a str,
    /// The writer's sequence number of the entry.
    pub sequence: u64,
    /// When the run finished (writer's clock), Unix ms.
    pub at_ms: u64,
}

impl Stamp<'_> {
    /// Whether a report with this stamp replaces the state stored with `stored` (`None`:
    /// nothing stored yet). See the module documentation.
    pub fn is_newer_than(&self, stored: Option<&Stamp<'_>>) -> bool {
        match stored {
            None => true,
            Some(stored) if stored.writer == self.writer => self.sequence > stored.sequence,
            Some(stored) => self.at_ms >= stored.at_ms,
        }
    }
}

/// Whether an agent last heard of at `last_seen_ms` (0: never) with keepalives every
/// `interval_seconds` is stale at `now_ms`.
pub fn is_stale(last_seen_ms: u64, interval_seconds: u64, now_ms: u64) -> bool {
    // Saturating: the interval is what the agent wrote, up to u64::MAX.
    let window = (MISSED_KEEPALIVES * 1000).saturating_mul(interval_seconds.max(1));
    last_seen_ms == 0 || now_ms.saturating_sub(last_seen_ms) > window
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(writer: &str, sequence: u64, at_ms: u64) -> Stamp<'_> {
        Stamp {
            writer,
            sequence,
            at_ms,
        }
    }

    #[test]
    fn the_same_writer_is_ordered_by_sequence_not_time() {
        let stored = stamp("a", 5, 1_000);
        assert!(stamp("a", 6, 10).is_newer_than(Some(&stored)));
        assert!(!stamp("a", 5, 2_000).is_newer_than(Some(&stored)));
        assert!(!stamp("a", 4, 2_000).is_newer_than(Some(&stored)));
    }

    #[test]
    fn another_writer_is_ordered_by_time() {
        let stored = stamp("a", 5, 1_000);
        assert!(stamp("b", 1, 1_000).is_newer_than(Some(&stored)));
        assert!(!stamp("b", 100, 999).is_newer_than(Some(&stored)));
        assert!(stamp("b", 0, 0).is_newer_than(None));
    }

    #[test]
    fn stale_after_three_missed_keepalives_or_never_seen() {
        assert!(is_stale(0, 10, 1));
        assert!(!is_stale(1_000, 10, 31_000));
        assert!(is_stale(1_000, 10, 31_001));
        // An interval of 0 counts as one second.
        assert!(is_stale(1_000, 0, 4_001));
        // Found by fuzzing (forwarded target): a huge interval overflowed the window.
        assert!(!is_stale(1_000, u64::MAX, u64::MAX));
        assert!(!is_stale(1_000, u64::MAX / 1000, u64::MAX));
    }
}
