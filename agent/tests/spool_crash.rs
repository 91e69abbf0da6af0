//! Crash safety of the spool, with a real `vedette-agent` process SIGKILLed mid-write:
//! every sequence number it reported durable must come back intact, and appending must go on
//! with higher sequence numbers.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use vedette_agent::spool::{Spool, SpoolConfig};

const AGENT: &str = env!("CARGO_BIN_EXE_vedette-agent");

/// A tiny xorshift generator: the seed is printed so a failing run can be repeated.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// Runs `spool append`; kills it (SIGKILL) after `kill_after` durable lines if given.
/// Returns every `(sequence, payload)` the process printed as durable.
fn run_append(
    dir: &Path,
    count: usize,
    kill_after: Option<usize>,
    chunk: Option<usize>,
) -> Vec<(u64, String)> {
    let mut command = Command::new(AGENT);
    command.args(["spool", "append", "--dir"]).arg(dir);
    command.args([
        "--count",
        &count.to_string(),
        "--tasks",
        "8",
        "--segment-bytes",
        "65536",
    ]);
    if let Some(chunk) = chunk {
        command.args(["--write-chunk-bytes", &chunk.to_string()]);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut durable = Vec::new();
    let mut killed = false;
    for line in lines {
        let line = line.unwrap();
        let (sequence, payload) = line
            .split_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        durable.push((sequence.parse().unwrap(), payload.to_string()));
        if !killed && kill_after.is_some_and(|after| durable.len() >= after) {
            child.kill().unwrap();
            killed = true;
        }
    }
    let status = child.wait().unwrap();
    if kill_after.is_some() {
        assert_eq!(
            status.signal(),
            Some(9),
            "the agent should have been killed, exited {status}"
        );
    } else {
        assert!(status.success(), "spool append failed: {status}");
    }
    durable
}

fn inspect_json(dir: &Path) -> serde_json::Value {
    let output = Command::new(AGENT)
        .args(["spool", "inspect", "--json", "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "inspect failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn every_sequence_reported_durable_survives_sigkill() {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut durable: BTreeMap<u64, String> = BTreeMap::new();
    let mut torn_tail_bytes = 0;
    for round in 0..6 {
        let kill_after = 1 + rng.below(2500) as usize;
        let chunk = (round % 2 == 1).then_some(1);
        for (sequence, payload) in run_append(dir.path(), 1_000_000, Some(kill_after), chunk) {
            let previous = durable.insert(sequence, payload);
            assert!(
                previous.is_none(),
                "sequence {sequence} was reported durable twice"
            );
        }
        let stats = inspect_json(dir.path());
        let recovery = &stats["recovery"];
        assert_eq!(recovery["corrupt_regions"], 0, "round {round}: {stats:#}");
        assert_eq!(
            recovery["errors"],
            serde_json::json!([]),
            "round {round}: {stats:#}"
        );
        torn_tail_bytes += recovery["torn_tail_bytes"].as_u64().unwrap();
    }
    println!(
        "{} durable records over 6 kills, {torn_tail_bytes} torn tail bytes cut",
        durable.len()
    );

    let spool = Spool::open(SpoolConfig::new(dir.path())).unwrap();
    let records = spool.peek(usize::MAX, usize::MAX).unwrap();
    assert!(
        records
            .windows(2)
            .all(|pair| pair[0].sequence < pair[1].sequence),
        "out of order"
    );
    let found: BTreeMap<u64, &[u8]> = records
        .iter()
        .map(|record| (record.sequence, record.payload.as_slice()))
        .collect();
    for (sequence, payload) in &durable {
        let Some(stored) = found.get(sequence) else {
            panic!("durable sequence {sequence} is lost")
        };
        assert_eq!(
            *stored,
            payload.as_bytes(),
            "payload of sequence {sequence} changed"
        );
    }
    let last_before = spool.stats().last_sequence;
    assert!(last_before >= *durable.keys().last().unwrap());
    drop(spool);

    let after = run_append(dir.path(), 20, None, None);
    assert_eq!(after.len(), 20);
    assert!(
        after.iter().all(|(sequence, _)| *sequence > last_before),
        "sequence went back: {after:?}"
    );
}
