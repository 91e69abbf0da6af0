//! When each check runs next. Pure: time is passed in as milliseconds on a monotonic clock.
//! Each check has a phase within its interval (at most [`PHASE_SPREAD_MAX_MS`]), a hash of host
//! and check (deterministic jitter, no thundering herd when a thousand agents start at once);
//! a check never overlaps itself; a check that finished waits its (regular or retry) interval
//! from its last due time, so a steady check keeps its phase instead of drifting by its own
//! duration.
//!
//! A check that has not run yet in the agent's life runs first within
//! [`FIRST_RUN_SPREAD_MS`] of the plan's start instead ([`first_run_ms`], the same hash), so a
//! new or restarted agent reports every check within seconds; its next regular run goes back
//! to its phase ([`Schedule::finished_on_phase`]), at least half an interval later, so the
//! early runs of agents started together do not stay bunched.
//!
//! A check on cycles (`everyCycles`) instead runs on a grid shared by every agent of a zone:
//! cycle `k` is the `cycle_ms` long span starting at Unix time `k × cycle_ms`; a check that
//! runs every `n` cycles runs in the cycles with `k % n` equal to a hash of host and check,
//! at a fixed offset (the jitter) within the cycle. A cycle it misses, still running or
//! waiting for a free runner, is skipped rather than caught up.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// The longest span a check's phase is spread over (checks with longer intervals have their
/// phase in the first minute of it).
pub const PHASE_SPREAD_MAX_MS: u64 = 60_000;

/// The span over which checks that have not run yet run for the first time.
pub const FIRST_RUN_SPREAD_MS: u64 = 5_000;

/// A check's phase: its offset in `[0, min(interval_ms, PHASE_SPREAD_MAX_MS))`, and the first
/// run of a check whose state is known (a plan change).
pub fn phase_ms(host: &str, check: &str, interval_ms: u64) -> u64 {
    jitter_ms(host, check, interval_ms.min(PHASE_SPREAD_MAX_MS))
}

/// The first run of a check that has not run yet: in `[0, min(interval_ms,
/// FIRST_RUN_SPREAD_MS))`.
pub fn first_run_ms(host: &str, check: &str, interval_ms: u64) -> u64 {
    jitter_ms(host, check, interval_ms.min(FIRST_RUN_SPREAD_MS))
}

/// The first instant at or after `not_before_ms` of the grid `phase_ms + k × interval_ms`
/// (`k ≥ 0`).
pub fn next_on_phase(phase_ms: u64, interval_ms: u64, not_before_ms: u64) -> u64 {
    let interval_ms = interval_ms.max(1);
    if not_before_ms <= phase_ms {
        return phase_ms;
    }
    phase_ms + (not_before_ms - phase_ms).div_ceil(interval_ms) * interval_ms
}

/// Deterministic offset in `[0, interval_ms)` for a host and check.
pub fn jitter_ms(host: &str, check: &str, interval_ms: u64) -> u64 {
    if interval_ms == 0 {
        return 0;
    }
    host_check_hash(host, check) % interval_ms
}

/// FNV-1a of host and check: stable across versions and platforms, unlike std's hasher.
fn host_check_hash(host: &str, check: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in host.bytes().chain([0]).chain(check.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The splitmix64 finaliser: every output bit depends on every input bit. The cycle a check
/// runs in is taken from the mixed hash, so it does not follow from its offset in the cycle
/// (FNV's low bits depend only on low bits).
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Where a check on cycles runs: in which cycles and when within them. Instants are Unix
/// time in milliseconds; cycle `k` starts at `k × cycle_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CycleSlot {
    /// Length of one cycle.
    pub cycle_ms: u64,
    /// The check runs on every `every`-th cycle…
    pub every: u64,
    /// …namely in the cycles whose number modulo `every` is `phase`…
    pub phase: u64,
    /// …this long after the cycle starts.
    pub offset_ms: u64,
}

impl CycleSlot {
    /// The slot of `check` on `host` in a zone whose cycles last `cycle_ms`, running every
    /// `every` cycles (both at least 1).
    pub fn new(host: &str, check: &str, cycle_ms: u64, every: u64) -> Self {
        let (cycle_ms, every) = (cycle_ms.max(1), every.max(1));
        Self {
            cycle_ms,
            every,
            phase: mix(host_check_hash(host, check)) % every,
            offset_ms: jitter_ms(host, check, cycle_ms),
        }
    }

    /// Time between two runs: `every` cycles.
    pub fn period_ms(&self) -> u64 {
        self.every.saturating_mul(self.cycle_ms)
    }

    /// The first run at or after Unix time `unix_ms`.
    pub fn next_at_or_after(&self, unix_ms: u64) -> u64 {
        let first = self.phase * self.cycle_ms + self.offset_ms;
        if unix_ms <= first {
            return first;
        }
        let period = self.period_ms();
        first + (unix_ms - first).div_ceil(period) * period
    }

    /// The first run at or after `at_ms` on a clock that reads `unix_ms - unix_offset_ms`
    /// (a schedule's monotonic clock), on that clock.
    pub fn next_due_ms(&self, at_ms: u64, unix_offset_ms: u64) -> u64 {
        self.next_at_or_after(at_ms.saturating_add(unix_offset_ms)) - unix_offset_ms
    }
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
        let due_ms = self.slots[index].due_ms;
        let mut next = due_ms.saturating_add(interval_ms.max(1));
        if next <= now_ms {
            next = now_ms.saturating_add(interval_ms.max(1));
        }
        self.reschedule(index, next);
    }

    /// A check's early first run finished at `now_ms` with its regular interval next: it is
    /// due at its phase again (`phase_ms + k × interval_ms`), at least half an interval after
    /// the time it was due and after now.
    pub fn finished_on_phase(
        &mut self,
        index: usize,
        now_ms: u64,
        interval_ms: u64,
        phase_ms: u64,
    ) {
        let interval_ms = interval_ms.max(1);
        let not_before = self.slots[index]
            .due_ms
            .saturating_add(interval_ms / 2)
            .max(now_ms.saturating_add(1));
        self.reschedule(index, next_on_phase(phase_ms, interval_ms, not_before));
    }

    /// A check on cycles finished at `now_ms`; it is due at its next slot after both now and
    /// the time it was due, so a cycle it missed is skipped. `unix_offset_ms` is the Unix time
    /// at this schedule's 0 (it is read again on every call, so clock corrections apply).
    pub fn finished_on_cycle(
        &mut self,
        index: usize,
        now_ms: u64,
        unix_offset_ms: u64,
        cycle: &CycleSlot,
    ) {
        let after = self.slots[index].due_ms.max(now_ms).saturating_add(1);
        self.reschedule(index, cycle.next_due_ms(after, unix_offset_ms));
    }

    fn reschedule(&mut self, index: usize, next_due_ms: u64) {
        let slot = &mut self.slots[index];
        slot.running = false;
        slot.runs += 1;
        slot.due_ms = next_due_ms;
        self.queue.push(Reverse((next_due_ms, index)));
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
    fn first_runs_come_within_the_spread_and_phases_within_the_interval() {
        for i in 0..200 {
            let (host, check) = (format!("node-{i}"), "infra/base/disk");
            assert!(first_run_ms(&host, check, 3_600_000) < FIRST_RUN_SPREAD_MS);
            assert!(
                first_run_ms(&host, check, 2_000) < 2_000,
                "a shorter interval"
            );
            assert!(phase_ms(&host, check, 3_600_000) < PHASE_SPREAD_MAX_MS);
            assert!(phase_ms(&host, check, 30_000) < 30_000);
        }
        let firsts: std::collections::BTreeSet<u64> = (0..1000)
            .map(|i| first_run_ms(&format!("node-{i}"), "infra/base/cpu", 60_000) / 500)
            .collect();
        assert_eq!(
            firsts.len(),
            10,
            "1000 hosts fall in all ten tenths of the spread"
        );
    }

    #[test]
    fn the_phase_grid() {
        assert_eq!(next_on_phase(7_000, 30_000, 0), 7_000);
        assert_eq!(next_on_phase(7_000, 30_000, 7_000), 7_000);
        assert_eq!(next_on_phase(7_000, 30_000, 7_001), 37_000);
        assert_eq!(next_on_phase(7_000, 30_000, 95_000), 97_000);
    }

    #[test]
    fn after_an_early_first_run_a_check_goes_back_to_its_phase() {
        // Due early at 1 s, phase 20 s, interval 30 s: the next run is at 20 s (19 s later,
        // more than half an interval), then every 30 s on the phase.
        let mut s = Schedule::new([1_000]);
        assert_eq!(s.take_due(1_000, 1), vec![0]);
        s.finished_on_phase(0, 1_200, 30_000, 20_000);
        assert_eq!(s.next_due_ms(), Some(20_000));
        assert_eq!(s.take_due(20_000, 1), vec![0]);
        s.finished(0, 20_300, 30_000);
        assert_eq!(s.next_due_ms(), Some(50_000));
        // Phase 3 s, just after the early run at 2 s: not run twice in a row, but a whole
        // interval later.
        let mut s = Schedule::new([2_000]);
        assert_eq!(s.take_due(2_000, 1), vec![0]);
        s.finished_on_phase(0, 2_100, 30_000, 3_000);
        assert_eq!(s.next_due_ms(), Some(33_000));
        // An early run that overran its phase: the next slot after now.
        let mut s = Schedule::new([2_000]);
        assert_eq!(s.take_due(2_000, 1), vec![0]);
        s.finished_on_phase(0, 40_000, 30_000, 20_000);
        assert_eq!(s.next_due_ms(), Some(50_000));
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

    /// 2023-11-14T22:13:20Z, plus a few seconds so it is no cycle boundary.
    const UNIX_START_MS: u64 = 1_700_000_000_000 + 7_321;

    /// The Unix instants a check on cycles fires at in a schedule started at Unix time
    /// `unix_start_ms`, each run taking `duration_ms`, over `span_ms`.
    fn cycle_fires(
        unix_start_ms: u64,
        cycle: &CycleSlot,
        duration_ms: u64,
        span_ms: u64,
    ) -> Vec<u64> {
        let mut s = Schedule::new([cycle.next_due_ms(0, unix_start_ms)]);
        let mut fires = Vec::new();
        let mut end = None;
        for now in 0..span_ms {
            if end == Some(now) {
                s.finished_on_cycle(0, now, unix_start_ms, cycle);
                end = None;
            }
            if !s.take_due(now, 1).is_empty() {
                fires.push(unix_start_ms + now);
                end = Some(now + duration_ms.max(1));
            }
        }
        fires
    }

    #[test]
    fn a_check_on_cycles_fires_in_its_cycles_at_its_offset() {
        let cycle = CycleSlot::new("web-1", "infra/base/disk", 60_000, 5);
        let fires = cycle_fires(UNIX_START_MS, &cycle, 4_000, 3_600_000);
        assert_eq!(fires.len(), 12, "an hour holds twelve 5-minute periods");
        assert!(
            fires[0] - UNIX_START_MS < 300_000,
            "first run within one period"
        );
        for fire in &fires {
            assert_eq!((fire / 60_000) % 5, cycle.phase, "its cycles");
            assert_eq!(fire % 60_000, cycle.offset_ms, "its offset in the cycle");
        }
        assert!(fires.windows(2).all(|w| w[1] - w[0] == 300_000));
    }

    #[test]
    fn agents_of_a_zone_share_cycles_whenever_they_started() {
        let cycle = CycleSlot::new("web-1", "shop/web/http", 10_000, 3);
        let early = cycle_fires(UNIX_START_MS, &cycle, 100, 200_000);
        let late = cycle_fires(UNIX_START_MS + 47_123, &cycle, 100, 200_000);
        let overlap: Vec<&u64> = early.iter().filter(|t| **t >= late[0]).collect();
        assert!(overlap.len() >= 3);
        assert!(overlap.iter().zip(&late).all(|(a, b)| **a == *b));
        assert_eq!(
            cycle.next_at_or_after(0) % 10_000,
            cycle.offset_ms,
            "cycles start at Unix-time multiples of the cycle length"
        );
    }

    #[test]
    fn checks_every_n_cycles_are_spread_over_the_n_cycles() {
        let mut per_cycle = [0u32; 5];
        for i in 0..1000 {
            per_cycle[CycleSlot::new(&format!("node-{i}"), "infra/base/disk", 60_000, 5).phase
                as usize] += 1;
        }
        assert!(
            per_cycle.iter().all(|n| (150..=250).contains(n)),
            "1000 hosts over 5 cycles: {per_cycle:?}"
        );
        let mut per_cycle = [0u32; 4];
        for i in 0..400 {
            per_cycle
                [CycleSlot::new("web-1", &format!("shop/web/r{i}"), 64_000, 4).phase as usize] += 1;
        }
        assert!(
            per_cycle.iter().all(|n| (70..=130).contains(n)),
            "400 checks of one host over 4 cycles, a power of two: {per_cycle:?}"
        );
    }

    #[test]
    fn a_missed_cycle_is_skipped_not_caught_up() {
        let cycle = CycleSlot {
            cycle_ms: 1_000,
            every: 2,
            phase: 1,
            offset_ms: 100,
        };
        let unix_start = 10_000; // cycle 10
        let mut s = Schedule::new([cycle.next_due_ms(0, unix_start)]);
        assert_eq!(s.next_due_ms(), Some(1_100), "cycle 11 at 100 ms");
        assert_eq!(s.take_due(2_500, 10), vec![0], "taken late, in cycle 12");
        s.finished_on_cycle(0, 3_150, unix_start, &cycle);
        assert_eq!(s.next_due_ms(), Some(5_100), "cycle 13 is over: cycle 15");
        assert_eq!(s.take_due(5_100, 10), vec![0]);
        s.finished_on_cycle(0, 5_200, unix_start, &cycle);
        assert_eq!(s.next_due_ms(), Some(7_100), "on time: two cycles later");
    }

    #[test]
    fn a_retry_leaves_the_cycles_and_the_next_regular_run_returns_to_them() {
        let cycle = CycleSlot {
            cycle_ms: 60_000,
            every: 5,
            phase: 0,
            offset_ms: 1_000,
        };
        let mut s = Schedule::new([cycle.next_due_ms(0, 0)]);
        assert_eq!(s.take_due(1_000, 10), vec![0]);
        s.finished(0, 3_000, 20_000);
        assert_eq!(s.next_due_ms(), Some(21_000), "soft: retry after 20 s");
        assert_eq!(s.take_due(21_000, 10), vec![0]);
        s.finished_on_cycle(0, 22_000, 0, &cycle);
        assert_eq!(s.next_due_ms(), Some(301_000), "hard: back on cycle 5");
    }

    proptest! {
        #[test]
        fn checks_on_cycles_fire_only_in_their_cycles_and_never_overlap(
            cycle_ms in 2u64..40,
            every in proptest::collection::vec(1u64..6, 1..10),
            fractions in proptest::collection::vec(0u64..100, 10),
            unix_start_ms in 0u64..1_000_000,
        ) {
            let cycles: Vec<CycleSlot> = every
                .iter()
                .enumerate()
                .map(|(i, n)| CycleSlot::new("web-1", &format!("shop/web/r{i}"), cycle_ms, *n))
                .collect();
            // A run takes at least 1 ms and less than a period, as its timeout is shorter.
            let durations: Vec<u64> = cycles
                .iter()
                .zip(&fractions)
                .map(|(c, f)| (c.period_ms() - 2) * f / 100 + 1)
                .collect();
            let mut s = Schedule::new(cycles.iter().map(|c| c.next_due_ms(0, unix_start_ms)));
            let mut running: Vec<Option<u64>> = vec![None; cycles.len()];
            let mut last: Vec<Option<u64>> = vec![None; cycles.len()];
            for now in 0..2_000u64 {
                for (i, end) in running.iter_mut().enumerate() {
                    if *end == Some(now) {
                        s.finished_on_cycle(i, now, unix_start_ms, &cycles[i]);
                        *end = None;
                    }
                }
                for i in s.take_due(now, usize::MAX) {
                    let (c, unix) = (&cycles[i], unix_start_ms + now);
                    prop_assert!(running[i].is_none(), "check {} overlapped itself", i);
                    prop_assert_eq!((unix / c.cycle_ms) % c.every, c.phase);
                    prop_assert_eq!(unix % c.cycle_ms, c.offset_ms);
                    match last[i] {
                        Some(previous) => prop_assert_eq!(unix - previous, c.period_ms()),
                        None => prop_assert!(now < c.period_ms(), "first run within a period"),
                    }
                    last[i] = Some(unix);
                    running[i] = Some(now + durations[i]);
                }
            }
        }
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
