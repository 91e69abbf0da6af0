//! Acknowledgement bookkeeping on the receiving side: which sequences of one agent have been
//! stored. Entries may arrive out of order (live sends overtake a replayed backlog) and more
//! than once (resends after a failover); the watermark says up to where everything is stored,
//! and tells duplicates apart.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// Received sequences of one agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    /// Every sequence `<= contiguous` is stored (or was dropped by the agent).
    contiguous: u64,
    /// Stored sequences above `contiguous`.
    above: BTreeSet<u64>,
}

impl Watermark {
    /// A watermark that already covers everything up to `contiguous`.
    pub fn at(contiguous: u64) -> Self {
        Self {
            contiguous,
            above: BTreeSet::new(),
        }
    }

    /// Everything up to this sequence is stored.
    pub fn contiguous(&self) -> u64 {
        self.contiguous
    }

    /// How many sequences above `contiguous` are stored.
    pub fn stored_above(&self) -> u64 {
        self.above.len() as u64
    }

    /// Whether `sequence` was stored already.
    pub fn seen(&self, sequence: u64) -> bool {
        sequence <= self.contiguous || self.above.contains(&sequence)
    }

    /// The agent no longer holds anything below `floor`: stop waiting for it.
    pub fn advance_floor(&mut self, floor: u64) {
        if floor > 0 && floor - 1 > self.contiguous {
            self.contiguous = floor - 1;
            self.above = self.above.split_off(&floor);
        }
        self.compact();
    }

    /// Records `sequence` as stored; returns false when it was a duplicate.
    pub fn record(&mut self, sequence: u64) -> bool {
        if self.seen(sequence) {
            return false;
        }
        self.above.insert(sequence);
        self.compact();
        true
    }

    fn compact(&mut self) {
        while self.above.first() == Some(&(self.contiguous + 1)) {
            self.above.pop_first();
            self.contiguous += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn live_entries_overtaking_a_backlog_are_acked_once_the_gap_fills() {
        let mut w = Watermark::default();
        assert!(w.record(1));
        assert!(w.record(5));
        assert_eq!(w.contiguous(), 1);
        for s in 2..=4 {
            assert!(w.record(s));
        }
        assert_eq!(w.contiguous(), 5);
        assert!(!w.record(3), "a resend is a duplicate");
    }

    #[test]
    fn a_floor_skips_what_the_agent_dropped() {
        let mut w = Watermark::default();
        w.record(10);
        w.advance_floor(8);
        assert_eq!(w.contiguous(), 7);
        w.record(8);
        w.record(9);
        assert_eq!(w.contiguous(), 10);
    }

    proptest! {
        #[test]
        fn contiguous_is_exactly_the_longest_received_prefix(
            mut sequences in proptest::collection::vec(1u64..60, 0..120)
        ) {
            let mut w = Watermark::default();
            let mut received = BTreeSet::new();
            for s in sequences.drain(..) {
                let fresh = w.record(s);
                prop_assert_eq!(fresh, received.insert(s));
                let mut prefix = 0;
                while received.contains(&(prefix + 1)) { prefix += 1; }
                prop_assert_eq!(w.contiguous(), prefix);
            }
        }
    }
}
