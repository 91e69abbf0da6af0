//! The spool against an in-memory model: random sequences of appends (all priorities), acks,
//! peeks, reopens, torn tails and retention passes, with named invariants checked after every
//! operation.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use vedette_agent::spool::{Error, FRAME_OVERHEAD, Priority, Record, Spool, SpoolConfig};

const MAX_BYTES: u64 = 2_500;
const MAX_AGE_MS: u64 = 60_000;
/// Simulated time advances this much per operation.
const TICK_MS: u64 = 10_000;

#[derive(Debug, Clone)]
enum Op {
    Append {
        priority: Priority,
        len: usize,
    },
    Ack {
        pick: u16,
    },
    Peek {
        max_records: usize,
        max_bytes: usize,
    },
    Reopen,
    TornTail {
        priority: Priority,
        garbage: Vec<u8>,
    },
    Retention {
        advance_ms: u64,
    },
}

fn priority() -> impl Strategy<Value = Priority> {
    prop_oneof![
        Just(Priority::Result),
        Just(Priority::Keepalive),
        Just(Priority::StateChange)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (priority(), 0..150usize).prop_map(|(priority, len)| Op::Append { priority, len }),
        2 => any::<u16>().prop_map(|pick| Op::Ack { pick }),
        2 => (0..12usize, 0..600usize)
            .prop_map(|(max_records, max_bytes)| Op::Peek { max_records, max_bytes }),
        1 => Just(Op::Reopen),
        1 => (priority(), vec(any::<u8>(), 1..64))
            .prop_map(|(priority, garbage)| Op::TornTail { priority, garbage }),
        1 => (0..3 * MAX_AGE_MS).prop_map(|advance_ms| Op::Retention { advance_ms }),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Live,
    Acked,
    Dropped,
}

#[derive(Debug, Clone)]
struct ModelRecord {
    record: Record,
    fate: Fate,
}

/// Why the model dropped a record, with what it saw at that moment.
#[derive(Debug, Clone)]
enum DropReason {
    Bytes {
        live_bytes_before: u64,
        lowest_live_priority: Priority,
        oldest_of_priority: u64,
    },
    Age {
        age_ms: u64,
    },
}

#[derive(Debug, Clone)]
struct DropEvent {
    sequence: u64,
    priority: Priority,
    reason: DropReason,
}

#[derive(Debug, Default)]
struct Model {
    records: Vec<ModelRecord>,
    acked: u64,
    drops: Vec<DropEvent>,
}

fn frame_len(record: &Record) -> u64 {
    (FRAME_OVERHEAD + record.payload.len()) as u64
}

impl Model {
    fn last_sequence(&self) -> u64 {
        self.records
            .last()
            .map_or(0, |r| r.record.sequence)
            .max(self.acked)
    }

    fn live(&self) -> impl Iterator<Item = &Record> {
        self.records
            .iter()
            .filter(|r| r.fate == Fate::Live)
            .map(|r| &r.record)
    }

    fn live_bytes(&self) -> u64 {
        self.live().map(frame_len).sum()
    }

    fn peek(&self, max_records: usize, max_bytes: usize) -> Vec<Record> {
        let mut out: Vec<Record> = Vec::new();
        let mut bytes = 0;
        for record in self.live().take(max_records) {
            if !out.is_empty() && bytes + record.payload.len() > max_bytes {
                break;
            }
            bytes += record.payload.len();
            out.push(record.clone());
        }
        out
    }

    fn ack(&mut self, up_to: u64) {
        self.acked = self.acked.max(up_to);
        for r in &mut self.records {
            if r.record.sequence <= self.acked && r.fate == Fate::Live {
                r.fate = Fate::Acked;
            }
        }
    }

    fn drop_record(&mut self, sequence: u64, reason: DropReason) {
        let r = self
            .records
            .iter_mut()
            .find(|r| r.record.sequence == sequence)
            .unwrap();
        r.fate = Fate::Dropped;
        let priority = r.record.priority;
        self.drops.push(DropEvent {
            sequence,
            priority,
            reason,
        });
    }

    fn enforce_bytes(&mut self) {
        while self.live_bytes() > MAX_BYTES {
            let live_bytes_before = self.live_bytes();
            let lowest = self.live().map(|r| r.priority).min().unwrap();
            let oldest = self.live().find(|r| r.priority == lowest).unwrap().sequence;
            let reason = DropReason::Bytes {
                live_bytes_before,
                lowest_live_priority: lowest,
                oldest_of_priority: oldest,
            };
            self.drop_record(oldest, reason);
        }
    }

    fn enforce_age(&mut self, now_ms: u64) {
        for priority in Priority::ALL {
            let old: Vec<(u64, u64)> = self
                .live()
                .filter(|r| r.priority == priority)
                .map(|r| (r.sequence, now_ms.saturating_sub(r.timestamp_ms)))
                .take_while(|(_, age)| *age > MAX_AGE_MS)
                .collect();
            for (sequence, age_ms) in old {
                self.drop_record(sequence, DropReason::Age { age_ms });
            }
        }
        self.enforce_bytes();
    }

    fn dropped(&self, priority: Priority) -> u64 {
        self.drops.iter().filter(|d| d.priority == priority).count() as u64
    }
}

fn config(dir: &Path) -> SpoolConfig {
    SpoolConfig {
        max_bytes: MAX_BYTES,
        max_age_seconds: MAX_AGE_MS / 1000,
        segment_bytes: 300,
        ..SpoolConfig::new(dir)
    }
}

// ---- named invariants ----

fn inv_sequence_strictly_increasing(model: &Model, sequence: u64) -> Result<(), TestCaseError> {
    let previous = model.records.last().map_or(0, |r| r.record.sequence);
    prop_assert!(
        sequence > previous,
        "sequence {} after {}",
        sequence,
        previous
    );
    Ok(())
}

fn inv_peek_matches_model(
    got: &[Record],
    model: &Model,
    max_records: usize,
    max_bytes: usize,
) -> Result<(), TestCaseError> {
    let want = model.peek(max_records, max_bytes);
    prop_assert_eq!(got, &want[..], "peek({}, {})", max_records, max_bytes);
    Ok(())
}

fn inv_acked_never_returned(got: &[Record], model: &Model) -> Result<(), TestCaseError> {
    for record in got {
        prop_assert!(
            record.sequence > model.acked,
            "acked sequence {} returned again",
            record.sequence
        );
    }
    Ok(())
}

fn inv_nothing_lost(spool: &Spool, model: &Model) -> Result<(), TestCaseError> {
    let all = spool.peek(usize::MAX, usize::MAX).map_err(fail)?;
    inv_peek_matches_model(&all, model, usize::MAX, usize::MAX)?;
    inv_acked_never_returned(&all, model)?;
    let stats = spool.stats();
    prop_assert_eq!(stats.depth, model.live().count() as u64);
    prop_assert_eq!(stats.bytes, model.live_bytes());
    prop_assert_eq!(stats.acked_through, model.acked);
    prop_assert_eq!(stats.recovery.corrupt_regions, 0);
    Ok(())
}

fn inv_drops_only_over_limits_prefer_lower_priority(
    spool: &Spool,
    model: &Model,
) -> Result<(), TestCaseError> {
    for event in &model.drops {
        match event.reason {
            DropReason::Bytes {
                live_bytes_before,
                lowest_live_priority,
                oldest_of_priority,
            } => {
                prop_assert!(
                    live_bytes_before > MAX_BYTES,
                    "{:?} while under the byte limit",
                    event
                );
                prop_assert_eq!(event.priority, lowest_live_priority, "{:?}", event);
                prop_assert_eq!(event.sequence, oldest_of_priority, "{:?}", event);
            }
            DropReason::Age { age_ms } => prop_assert!(age_ms > MAX_AGE_MS, "{:?}", event),
        }
    }
    let dropped = spool.stats().dropped;
    for priority in Priority::ALL {
        prop_assert_eq!(
            dropped.get(priority),
            model.dropped(priority),
            "{:?} drops",
            priority
        );
    }
    prop_assert!(model.live_bytes() <= MAX_BYTES);
    Ok(())
}

fn fail(error: Error) -> TestCaseError {
    TestCaseError::fail(error.to_string())
}

fn last_segment(dir: &Path, priority: Priority) -> Option<std::path::PathBuf> {
    let mut paths: Vec<_> = std::fs::read_dir(dir.join(priority.name()))
        .ok()?
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .collect();
    paths.sort();
    paths.pop()
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    // An hour ahead of the wall clock, so the writer's own age checks never drop anything.
    let base_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 3_600_000;
    let mut spool = Spool::open(config(dir.path())).map_err(fail)?;
    let mut model = Model::default();
    for (step, op) in ops.into_iter().enumerate() {
        let now_ms = base_ms + step as u64 * TICK_MS;
        match op {
            Op::Append { priority, len } => {
                let payload: Vec<u8> = (0..len)
                    .map(|i| (i as u8).wrapping_mul(31) ^ step as u8)
                    .collect();
                let sequence = spool
                    .submit_at(priority, now_ms, payload.clone())
                    .map_err(fail)?
                    .wait()
                    .map_err(fail)?;
                inv_sequence_strictly_increasing(&model, sequence)?;
                let record = Record {
                    sequence,
                    priority,
                    timestamp_ms: now_ms,
                    payload,
                };
                model.records.push(ModelRecord {
                    record,
                    fate: Fate::Live,
                });
                model.enforce_bytes();
            }
            Op::Ack { pick } => {
                let target = u64::from(pick) % (model.last_sequence() + 2);
                let result = spool.ack(target);
                if target > model.acked && target > model.last_sequence() {
                    prop_assert!(
                        matches!(result, Err(Error::AckBeyondEnd { .. })),
                        "{:?}",
                        result
                    );
                } else {
                    result.map_err(fail)?;
                    model.ack(target);
                }
            }
            Op::Peek {
                max_records,
                max_bytes,
            } => {
                let got = spool.peek(max_records, max_bytes).map_err(fail)?;
                inv_peek_matches_model(&got, &model, max_records, max_bytes)?;
                inv_acked_never_returned(&got, &model)?;
            }
            Op::Reopen => {
                drop(spool);
                spool = Spool::open(config(dir.path())).map_err(fail)?;
            }
            Op::TornTail { priority, garbage } => {
                drop(spool);
                let torn = last_segment(dir.path(), priority);
                if let Some(path) = &torn {
                    let mut file = OpenOptions::new().append(true).open(path).unwrap();
                    file.write_all(b"VSR1").unwrap();
                    file.write_all(&garbage).unwrap();
                }
                spool = Spool::open(config(dir.path())).map_err(fail)?;
                let expected = torn.map_or(0, |_| 4 + garbage.len() as u64);
                prop_assert_eq!(spool.stats().recovery.torn_tail_bytes, expected);
            }
            Op::Retention { advance_ms } => {
                let now = now_ms + advance_ms;
                spool.enforce_retention_at(now).map_err(fail)?;
                model.enforce_age(now);
            }
        }
        inv_nothing_lost(&spool, &model)?;
        inv_drops_only_over_limits_prefer_lower_priority(&spool, &model)?;
    }
    // Appending goes on above everything ever used, after one more reopen.
    drop(spool);
    let spool = Spool::open(config(dir.path())).map_err(fail)?;
    inv_nothing_lost(&spool, &model)?;
    let sequence = spool
        .append_blocking(Priority::StateChange, b"last".to_vec())
        .map_err(fail)?;
    inv_sequence_strictly_increasing(&model, sequence)?;
    prop_assert!(sequence > model.acked);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn spool_matches_model(ops in vec(op(), 1..80)) {
        run(ops)?;
    }
}
