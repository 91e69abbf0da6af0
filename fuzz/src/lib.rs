//! vedette-fuzz: hostile input for the parsers that read bytes from outside, on the stable
//! toolchain. A target is a function of bytes that must never panic (and asserts what else
//! holds: errors name the problem, what parses round-trips). [`fuzz`] first replays every
//! seed of `fuzz/corpus/<target>/` as it is (so a crash once found and added there stays
//! fixed), then, until the time budget is spent, feeds the target random bytes and seeds
//! mutated by proptest: truncation, bit flips, deleted, inserted and duplicated runs, splices
//! of two seeds, huge and non-finite numbers, deep nesting, invalid UTF-8, oversize input.
//! A failure is shrunk by proptest to a small input, saved under the temporary directory and
//! reported with its path.
//!
//! `FUZZ_SECONDS` is each target's budget (default [`DEFAULT_SECONDS`], what `make test`
//! runs); `FUZZ_SEED` repeats a run (every run prints its seed).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};

/// Each target's budget when `FUZZ_SECONDS` is not set, seconds.
pub const DEFAULT_SECONDS: f64 = 1.0;
/// Inputs are cut to this many bytes.
pub const MAX_INPUT_BYTES: usize = 1 << 20;
/// Cases per proptest run; runs repeat until the budget is spent.
const CASES_PER_RUN: u32 = 64;

/// Bytes that mean something to one parser or another, inserted at random places.
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"null",
    b"true",
    b"-",
    b";",
    b"=",
    b"'",
    b"''",
    b"|",
    b"@",
    b"~",
    b":",
    b"\n",
    b"\r\n",
    b"\t",
    b" ",
    b"\0",
    b"\x1b[31m",
    b"\x1b]0;t\x07",
    b"\xe2\x80\xae",
    b"\xff",
    b"\xc3",
    b"\xf0\x9f\x98",
    b"U",
    b"%",
    b"ms",
    b"KB",
    b"\"kind\":\"relayed\"",
    b"\"type\":\"keepalive\"",
];

/// Numbers at and beyond the edges of every numeric type.
const NUMBERS: &[&[u8]] = &[
    b"0",
    b"-0",
    b"-1",
    b"4294967295",
    b"4294967296",
    b"18446744073709551615",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"1e308",
    b"1e309",
    b"-1e309",
    b"1e-400",
    b"1.7976931348623157e308",
    b"5e-324",
    b"NaN",
    b"inf",
    b"-inf",
    b"0x10",
    b"1_000",
    b"1.",
    b".5",
    b"+5",
    b"1e",
    b"99999999999999999999999999999999999999999999999999",
];

/// A point in a collection of any size: the fraction `self.0 / 2^64` of it.
#[derive(Clone, Copy, Debug)]
struct At(u64);

impl At {
    /// The index in a collection of `size` (not 0).
    fn pick(self, size: usize) -> usize {
        ((size as u128 * u128::from(self.0)) >> 64) as usize
    }
}

/// One change to an input.
#[derive(Clone, Debug)]
enum Mutation {
    /// Cut the input at a point.
    Truncate(At),
    /// Flip one bit.
    FlipBit(At, u8),
    /// Overwrite one byte.
    SetByte(At, u8),
    /// Remove a run of up to this many bytes.
    Delete(At, u16),
    /// Insert a token.
    Insert(At, At),
    /// Replace the number at or after a point by an extreme one.
    Number(At, At),
    /// Repeat a run of bytes.
    Duplicate(At, u16, u8),
    /// Insert part of another seed.
    Splice(At, At, At),
    /// Open (and maybe close) this many brackets or objects.
    Nest(At, u16, bool),
    /// Insert bytes that are not UTF-8.
    InvalidUtf8(At),
    /// Double the input this many times.
    Oversize(u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let index = || any::<u64>().prop_map(At);
    prop_oneof![
        index().prop_map(Mutation::Truncate),
        (index(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit(at, bit)),
        (index(), any::<u8>()).prop_map(|(at, byte)| Mutation::SetByte(at, byte)),
        (index(), 1u16..64).prop_map(|(at, len)| Mutation::Delete(at, len)),
        (index(), index()).prop_map(|(at, token)| Mutation::Insert(at, token)),
        (index(), index()).prop_map(|(at, number)| Mutation::Number(at, number)),
        (index(), 1u16..64, 1u8..16)
            .prop_map(|(at, len, times)| Mutation::Duplicate(at, len, times)),
        (index(), index(), index()).prop_map(|(seed, from, at)| Mutation::Splice(seed, from, at)),
        (index(), 1u16..600, any::<bool>())
            .prop_map(|(at, depth, close)| Mutation::Nest(at, depth, close)),
        index().prop_map(Mutation::InvalidUtf8),
        (1u8..6).prop_map(Mutation::Oversize),
    ]
}

/// A point in `bytes`, the end included.
fn point(at: &At, bytes: &[u8]) -> usize {
    at.pick(bytes.len() + 1)
}

fn insert(bytes: &mut Vec<u8>, at: usize, what: &[u8]) {
    bytes.splice(at..at, what.iter().copied());
}

fn apply(mutation: &Mutation, bytes: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    match mutation {
        Mutation::Truncate(at) => bytes.truncate(point(at, bytes)),
        Mutation::FlipBit(at, bit) if !bytes.is_empty() => {
            let at = at.pick(bytes.len());
            bytes[at] ^= 1 << bit;
        }
        Mutation::SetByte(at, byte) if !bytes.is_empty() => {
            let at = at.pick(bytes.len());
            bytes[at] = *byte;
        }
        Mutation::Delete(at, len) => {
            let start = point(at, bytes);
            let end = (start + *len as usize).min(bytes.len());
            bytes.drain(start..end);
        }
        Mutation::Insert(at, token) => {
            let at = point(at, bytes);
            insert(bytes, at, TOKENS[token.pick(TOKENS.len())]);
        }
        Mutation::Number(at, number) => {
            let start = point(at, bytes);
            let Some(first) = bytes[start..].iter().position(u8::is_ascii_digit) else {
                return;
            };
            let first = start + first;
            let len = bytes[first..]
                .iter()
                .take_while(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E'))
                .count();
            let number = NUMBERS[number.pick(NUMBERS.len())];
            bytes.splice(first..first + len, number.iter().copied());
        }
        Mutation::Duplicate(at, len, times) => {
            let start = point(at, bytes);
            let end = (start + *len as usize).min(bytes.len());
            let run = bytes[start..end].repeat(*times as usize);
            insert(bytes, end, &run);
        }
        Mutation::Splice(seed, from, at) => {
            let other = &seeds[seed.pick(seeds.len())];
            let from = point(from, other);
            let part = other[from..].to_vec();
            let at = point(at, bytes);
            insert(bytes, at, &part[..part.len().min(4096)]);
        }
        Mutation::Nest(at, depth, close) => {
            let (open, shut): (&[u8], &[u8]) = if depth % 2 == 0 {
                (b"[", b"]")
            } else {
                (b"{\"a\":", b"}")
            };
            let mut nested = open.repeat(*depth as usize);
            if *close {
                nested.extend_from_slice(b"0");
                nested.extend(shut.repeat(*depth as usize));
            }
            let at = point(at, bytes);
            insert(bytes, at, &nested);
        }
        Mutation::InvalidUtf8(at) => {
            let at = point(at, bytes);
            insert(bytes, at, b"\xed\xa0\x80\xc0\xaf\xfe");
        }
        Mutation::Oversize(times) => {
            for _ in 0..*times {
                if bytes.len() * 2 > MAX_INPUT_BYTES {
                    break;
                }
                bytes.extend_from_within(..);
            }
        }
        Mutation::FlipBit(..) | Mutation::SetByte(..) => {}
    }
    bytes.truncate(MAX_INPUT_BYTES);
}

/// Random bytes, or a seed with a few mutations.
fn input(seeds: Arc<Vec<Vec<u8>>>) -> impl Strategy<Value = Vec<u8>> {
    let count = seeds.len();
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..512),
        8 => (0..count, proptest::collection::vec(mutation(), 1..6)).prop_map(
            move |(seed, mutations)| {
                let mut bytes = seeds[seed].clone();
                for mutation in &mutations {
                    apply(mutation, &mut bytes, &seeds);
                }
                bytes
            }
        ),
    ]
}

/// The seeds of `target`: every file of `fuzz/corpus/<target>/`, by name.
pub fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&directory)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", directory.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| path.is_file())
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "corpus {} is empty", directory.display());
    paths
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).expect("corpus file");
            (path, bytes)
        })
        .collect()
}

/// Each target's budget: `FUZZ_SECONDS`, or [`DEFAULT_SECONDS`].
pub fn budget() -> Duration {
    let seconds = match std::env::var("FUZZ_SECONDS") {
        Ok(text) => text
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .unwrap_or_else(|| panic!("FUZZ_SECONDS={text:?}: not a number of seconds")),
        Err(_) => DEFAULT_SECONDS,
    };
    Duration::from_secs_f64(seconds)
}

/// `FUZZ_SEED`, or one from the clock.
fn rng_seed() -> u64 {
    match std::env::var("FUZZ_SEED") {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("FUZZ_SEED={text:?}: not an unsigned integer")),
        Err(_) => {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            nanos ^ u64::from(std::process::id()).rotate_left(32)
        }
    }
}

/// Runs `check` on every seed of `target`, then on hostile input for [`budget`]; panics with
/// the saved input when `check` panics.
pub fn fuzz(target: &str, check: impl Fn(&[u8])) {
    fuzz_seeds(target, corpus(target), budget(), check);
}

/// [`fuzz`] with the seeds and the budget given.
fn fuzz_seeds(
    target: &str,
    seeds: Vec<(PathBuf, Vec<u8>)>,
    budget: Duration,
    check: impl Fn(&[u8]),
) {
    for (path, bytes) in &seeds {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(bytes)));
        if outcome.is_err() {
            panic!("fuzz {target}: seed {} fails", path.display());
        }
    }
    let seed = rng_seed();
    eprintln!(
        "fuzz {target}: {} seeds, {budget:?}, FUZZ_SEED={seed}",
        seeds.len()
    );
    let strategy = input(Arc::new(seeds.into_iter().map(|(_, b)| b).collect()));
    let config = Config {
        cases: CASES_PER_RUN,
        failure_persistence: None,
        max_shrink_time: 30_000,
        ..Config::default()
    };
    let deadline = Instant::now() + budget;
    let cases = std::cell::Cell::new(0u64);
    // A runner counts its successes for good: one per run of CASES_PER_RUN, each with the
    // RNG of the run's number, so that FUZZ_SEED repeats the whole sequence.
    for run in 0u64.. {
        if Instant::now() >= deadline {
            break;
        }
        let mut rng_seed = seed.to_le_bytes().to_vec();
        rng_seed.extend(run.to_le_bytes());
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &rng_seed.repeat(2));
        let mut runner = TestRunner::new_with_rng(config.clone(), rng);
        match runner.run(&strategy, |bytes| {
            cases.set(cases.get() + 1);
            check(&bytes);
            Ok(())
        }) {
            Ok(()) => {}
            Err(TestError::Fail(why, bytes)) => {
                let saved = save(target, &bytes);
                panic!(
                    "fuzz {target} (FUZZ_SEED={seed}): {why}\n{} bytes saved to {}, starting {:?}\n\
                     Fix it, copy the file to fuzz/corpus/{target}/ and add a regression test.",
                    bytes.len(),
                    saved.display(),
                    String::from_utf8_lossy(&bytes[..bytes.len().min(300)]),
                );
            }
            Err(TestError::Abort(why)) => panic!("fuzz {target}: aborted: {why}"),
        }
    }
    eprintln!("fuzz {target}: {} inputs, no failure", cases.get());
}

/// Writes a failing input where the report says, named by its content.
fn save(target: &str, bytes: &[u8]) -> PathBuf {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    });
    let directory = std::env::temp_dir().join("vedette-fuzz").join(target);
    let path = directory.join(format!("crash-{hash:016x}"));
    if let Err(problem) =
        std::fs::create_dir_all(&directory).and_then(|()| std::fs::write(&path, bytes))
    {
        eprintln!("fuzz {target}: cannot save {}: {problem}", path.display());
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;

    #[test]
    fn every_mutation_keeps_inputs_bounded() {
        let seeds = vec![b"{\"a\":[1,2.5e3]}".to_vec(), Vec::new()];
        let mut runner = TestRunner::deterministic();
        for _ in 0..2_000 {
            let mutations = proptest::collection::vec(mutation(), 1..8)
                .new_tree(&mut runner)
                .expect("a tree")
                .current();
            for seed in &seeds {
                let mut bytes = seed.clone();
                for m in &mutations {
                    apply(m, &mut bytes, &seeds);
                }
                assert!(bytes.len() <= MAX_INPUT_BYTES);
            }
        }
    }

    #[test]
    fn numbers_are_replaced_whole() {
        let mut bytes = b"x=12.5;7".to_vec();
        let at = At(0);
        apply(&Mutation::Number(at, At(u64::MAX)), &mut bytes, &[]);
        assert!(
            bytes.starts_with(b"x=9999"),
            "{:?}",
            String::from_utf8_lossy(&bytes)
        );
        assert!(bytes.ends_with(b";7"));
    }

    #[test]
    fn a_failing_target_is_reported_with_its_saved_input() {
        let outcome = std::panic::catch_unwind(|| {
            let seeds = vec![(PathBuf::from("clean"), b"OK - all fine".to_vec())];
            fuzz_seeds("self-test", seeds, Duration::from_secs(60), |bytes| {
                assert!(!bytes.contains(&0xff), "0xff")
            })
        });
        let message = outcome.expect_err("the target fails");
        let text = message
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(text.contains("saved to"), "{text}");
    }
}
