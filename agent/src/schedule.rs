//! When each check runs next. Pure: time is passed in as milliseconds on a monotonic clock.
//! First runs are spread over the interval by a hash of host and check (deterministic jitter,
//! no thundering herd when a thousand agents start at once); a check never overlaps itself;
//! a check that finished waits its (regular or retry) interval from its last due time, so a
//! steady check keeps its phase instead of drifting by its own duration.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Deterministic offset in `[0, interval_ms)` for a host and check.
pub fn jitter_ms(host: &str, check: &str, interval_ms: u64) -> u64 {
    if interval_ms == 0 {
        return 0;
    }
    // FNV-1a: stable across versions and platforms, unlike std's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in host.bytes().chain([0]).chain(check.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash % interval_ms
}

#[derive(Debug, Clone)]
struct Slot {
    due_ms: u64,
    running: bool,
    runs: u64,
}

/// The schedule of a fixed list of checks (indices `0..n`).
#[derive(Debug, Clone)]
pub struct Schedule {
    slots: Vec<Slot>,
    queue: BinaryHeap<Reverse<(u64, usize)>>,
}

impl Schedule {
    /// Checks with their first due time (`now_ms + jitter`).
    pub fn new(first_due_ms: impl IntoIterator<Item = u64>) -> Self {
        let slots: Vec<Slot> = first_due_ms
            .into_iter()
            .map(|due_ms| Slot {
                due_ms,
                running: false,
                runs: 0,
            })
            .collect();
        let queue = slots
            .iter()
            .enumerate()
            .map(|(i, s)| Reverse((s.due_ms, i)))
            .collect();
        Self { slots, queue }
    }

    /// When the next check is due, if any is waiting.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.queue.peek().map(|Reverse((due, _))| *due)
    }

    /// Takes every check due at `now_ms`, marking each running. A check already running is
    /// never returned (no overlap); at most `limit` are taken (bounded concurrency), the rest
    /// stay due.
    pub fn take_due(&mut self, now_ms: u64, limit: usize) -> Vec<usize> {
        let mut due = Vec::new();
        while due.len() < limit {
            match self.queue.peek() {
                Some(Reverse((at, _))) if *at <= now_ms => {}
                _ => break,
            }
            let Some(Reverse((at, index))) = self.queue.pop() else {
                break;
            };
            let slot = &mut self.slots[index];
            if slot.running || slot.due_ms != at {
                continue; // stale queue entry
            }
            slot.running = true;
            due.push(index);
        }
        due
    }

    /// A check finished at `now_ms`; it is due again `interval_ms` after the time it was due
    /// (or after `now_ms` when it ran so late that it would be due at once again).
    pub fn finished(&mut self, index: usize, now_ms: u64, interval_ms: u64) {
        let slot = &mut self.slots[index];
        slot.running = false;
        slot.runs += 1;
        let mut next = slot.due_ms.saturating_add(interval_ms.max(1));
        if next <= now_ms {
            next = now_ms.saturating_add(interval_ms.max(1));
        }
        slot.due_ms = next;
        self.queue.push(Reverse((next, index)));
    }

    /// How often a check has finished.
    pub fn runs(&self, index: usize) -> u64 {
        self.slots[index].runs
    }

    /// Whether a check is running now.
    pub fn is_running(&self, index: usize) -> bool {
        self.slots[index].running
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn jitter_is_deterministic_and_spread() {
        assert_eq!(
            jitter_ms("web-1", "shop/web/http", 60_000),
            jitter_ms("web-1", "shop/web/http", 60_000)
        );
        let offsets: std::collections::BTreeSet<u64> = (0..1000)
            .map(|i| jitter_ms(&format!("node-{i}"), "infra/base/cpu", 60_000) / 6_000)
            .collect();
        assert_eq!(
            offsets.len(),
            10,
            "1000 hosts fall in all ten tenths of the interval"
        );
    }

    #[test]
    fn a_running_check_is_not_started_again_and_keeps_its_phase() {
        let mut s = Schedule::new([0, 500]);
        assert_eq!(s.take_due(0, 10), vec![0]);
        assert!(s.take_due(10_000, 10).contains(&1));
        assert!(s.take_due(10_000, 10).is_empty(), "both are running");
        s.finished(0, 10_200, 1_000);
        assert_eq!(
            s.next_due_ms(),
            Some(11_200),
            "ran late: due an interval after it finished"
        );
        s.finished(1, 10_300, 20_000);
        assert_eq!(s.take_due(11_200, 10), vec![0]);
        s.finished(0, 11_250, 1_000);
        assert_eq!(s.next_due_ms(), Some(12_200), "on time: keeps its phase");
    }

    #[test]
    fn concurrency_is_bounded() {
        let mut s = Schedule::new([0, 0, 0, 0]);
        assert_eq!(s.take_due(0, 3).len(), 3);
        assert_eq!(s.take_due(0, 3).len(), 1);
    }

    proptest! {
        #[test]
        fn every_check_runs_at_its_interval_and_never_overlaps(
            intervals in proptest::collection::vec(1u64..50, 1..12),
            durations in proptest::collection::vec(0u64..40, 12),
        ) {
            let mut s = Schedule::new(intervals.iter().map(|_| 0));
            let mut running: Vec<Option<u64>> = vec![None; intervals.len()];
            for now in 0..2_000u64 {
                for (i, end) in running.iter_mut().enumerate() {
                    if *end == Some(now) {
                        s.finished(i, now, intervals[i]);
                        *end = None;
                    }
                }
                for i in s.take_due(now, usize::MAX) {
                    prop_assert!(running[i].is_none(), "check {} overlapped itself", i);
                    running[i] = Some(now + durations[i % durations.len()].min(intervals[i]) + 1);
                }
            }
            for (i, interval) in intervals.iter().enumerate() {
                let period = interval + 41;
                prop_assert!(s.runs(i) >= 2_000 / period - 1, "check {} ran {} times", i, s.runs(i));
            }
        }
    }
}
