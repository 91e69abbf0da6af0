//! One fuzz target per parser that reads bytes from outside (see `vedette_fuzz`): what each
//! must hold besides never panicking is asserted here. `make fuzz` runs them for longer.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use vedette_agent::nagios::perfdata::{parse_output, parse_perfdata};
use vedette_agent::runner::compile_check;
use vedette_fuzz::fuzz;
use vedette_operator::masters::state::MasterState;
use vedette_operator::status::live::{MAX_OUTPUT_BYTES, summarise};
use vedette_protocol::bundle_shards::{StoredShard, read_shards, write_shards};
use vedette_protocol::forward::{Forwarded, check_relayable};
use vedette_protocol::plan::{Plan, PlanError, ZoneBundle, plan_for};
use vedette_protocol::range::Range;
use vedette_protocol::report::{Batch, Envelope, Report};
use vedette_protocol::text::{TRUNCATED, sanitize_output};
use vedette_satellite::table::StateTable;

/// The bytes as text the way a reader that insists on UTF-8 gets them, or lossily.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// JSON that parses must read back the same after writing; an error must say where.
fn json_round_trip<T>(bytes: &[u8]) -> Option<T>
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    match serde_json::from_slice::<T>(bytes) {
        Ok(value) => {
            let written = serde_json::to_vec(&value).expect("what parsed serializes");
            let again: T = serde_json::from_slice(&written)
                .unwrap_or_else(|problem| panic!("written form does not parse: {problem}"));
            assert_eq!(again, value, "round trip");
            Some(value)
        }
        Err(problem) => {
            let message = problem.to_string();
            assert!(
                message.contains("line") && message.contains("column"),
                "{message}"
            );
            None
        }
    }
}

/// Text that reaches status or Events: bounded, and only printable characters and newlines.
fn assert_clean(text: &str, max_bytes: usize) {
    assert!(text.len() <= max_bytes, "{} bytes: {text:?}", text.len());
    assert!(
        !text
            .chars()
            .any(|c| c.is_control() && c != '\n' || c == '\u{202e}'),
        "{text:?}"
    );
}

#[test]
fn range() {
    fuzz("range", |bytes| {
        let input = text(bytes);
        match Range::parse(&input) {
            Ok(range) => {
                let written = range.to_string();
                assert_eq!(Range::parse(&written), Ok(range), "{written:?}");
                for value in [f64::MIN, -1.0, 0.0, 1.0, f64::MAX, f64::NAN] {
                    range.alerts(value);
                }
            }
            Err(problem) => {
                let message = problem.to_string();
                assert!(message.contains(&format!("{input:?}")), "{message}");
            }
        }
    });
}

#[test]
fn perfdata() {
    fuzz("perfdata", |bytes| {
        let parsed = parse_perfdata(&text(bytes));
        for item in &parsed.items {
            let written = item.to_string();
            let again = parse_perfdata(&written);
            assert!(
                again.problems.is_empty(),
                "{written:?}: {:?}",
                again.problems
            );
            assert_eq!(again.items, std::slice::from_ref(item), "{written:?}");
        }
        for problem in &parsed.problems {
            assert!(
                problem.to_string().starts_with("perfdata item"),
                "{problem}"
            );
        }
    });
}

#[test]
fn plugin_output() {
    fuzz("plugin_output", |bytes| {
        // What the agent does with a plugin's bytes (agent/src/nagios/exec.rs).
        let output = parse_output(&text(bytes));
        assert!(!output.text.contains('\n'), "{:?}", output.text);
        assert!(!output.text.contains('|'), "{:?}", output.text);
    });
}

#[test]
fn plan() {
    fuzz("plan", |bytes| match Plan::from_json(bytes, "n1") {
        Ok(plan) => {
            let written = serde_json::to_vec(&plan).expect("a plan serializes");
            assert_eq!(Plan::from_json(&written, "n1"), Ok(plan.clone()));
            let _ = plan.validate();
            for check in &plan.checks {
                for problem in plan.check_problems(check) {
                    assert!(!problem.to_string().is_empty());
                }
                // What the agent runs: thresholds, CEL condition, probe settings.
                if let Err(problem) = compile_check(check, plan.settings.cycle_seconds) {
                    assert!(!problem.is_empty());
                }
            }
            plan.hash();
        }
        Err(problems) => {
            assert!(!problems.is_empty());
            for problem in problems {
                let message = problem.to_string();
                if let PlanError::Parse(_) = problem {
                    assert!(message.starts_with("plan does not parse: "), "{message}");
                }
                assert!(message.len() > 10, "{message}");
            }
        }
    });
}

#[test]
fn bundle() {
    fuzz("bundle", |bytes| {
        let Some(bundle) = json_round_trip::<ZoneBundle>(bytes) else {
            return;
        };
        for host in bundle.machines.keys() {
            if let Some(plan) = plan_for(&bundle, host) {
                assert_eq!(&plan.host, host);
            }
        }
        StateTable::default().set_bundle(&bundle);
        // What the operator writes, the satellite reads back (ConfigMap shards).
        if let Ok(shards) = write_shards(&bundle, 2048) {
            let empty = BTreeMap::new();
            let names: Vec<String> = shards
                .iter()
                .map(|s| format!("shard-{}", s.index))
                .collect();
            let labels: Vec<_> = shards
                .iter()
                .map(|s| s.labels().into_iter().collect())
                .collect();
            let annotations: Vec<_> = shards.iter().map(|s| s.annotations()).collect();
            let stored: Vec<StoredShard<'_>> = (0..shards.len())
                .map(|i| StoredShard {
                    name: &names[i],
                    labels: labels.get(i).unwrap_or(&empty),
                    annotations: &annotations[i],
                    data: &shards[i].data,
                })
                .collect();
            assert_eq!(read_shards(&stored).map_err(|e| e.to_string()), Ok(bundle));
        }
    });
}

#[test]
fn batch() {
    fuzz("batch", |bytes| {
        let Some(batch) = json_round_trip::<Batch<Report>>(bytes) else {
            return;
        };
        // What the satellite does with an agent's batch (satellite/src/ingest.rs).
        let mut table = StateTable::default();
        for envelope in &batch.entries {
            table.apply(&batch.agent, envelope.sequence, &envelope.report, 5_000);
        }
        table.agents(10_000);
        table.zone_summary("core", "sat-0", 10_000, 0);
        table.is_stale(&batch.agent, u64::MAX);
    });
}

#[test]
fn forwarded() {
    fuzz("forwarded", |bytes| {
        let Some(batch) = json_round_trip::<Batch<Forwarded>>(bytes) else {
            return;
        };
        // What the masters do with a satellite's batch, and what reaches status.
        let mut state = MasterState::default();
        state.receive(batch, 5_000);
        state.sweep(u64::MAX / 2);
        let bundles: BTreeMap<String, ZoneBundle> = BTreeMap::new();
        let live = summarise(&state, &bundles, 10_000);
        for problem in live.rule_sets.values().flat_map(|r| &r.problems) {
            assert_clean(&problem.output, MAX_OUTPUT_BYTES);
        }
    });
}

#[test]
fn relayed() {
    fuzz("relayed", |bytes| {
        let Ok(batch) = serde_json::from_slice::<Batch<Forwarded>>(bytes) else {
            return;
        };
        if let Err(problem) = check_relayable(&batch) {
            assert!(problem.to_string().contains("relayed"), "{problem}");
            return;
        }
        // What the satellite relays (satellite/src/ingest.rs), the masters must parse.
        let upstream = Batch {
            agent: "parent-sat-0".to_owned(),
            floor: 0,
            entries: batch
                .entries
                .into_iter()
                .enumerate()
                .map(|(i, envelope)| Envelope {
                    sequence: i as u64 + 1,
                    report: Forwarded::Relayed {
                        satellite: batch.agent.clone(),
                        sequence: envelope.sequence,
                        floor: batch.floor,
                        entry: Box::new(envelope.report),
                    },
                })
                .collect(),
        };
        let written = serde_json::to_vec(&upstream).expect("a batch serializes");
        let parsed: Batch<Forwarded> = serde_json::from_slice(&written)
            .unwrap_or_else(|problem| panic!("the masters refuse a relayed batch: {problem}"));
        MasterState::default().receive(parsed, 5_000);
    });
}

#[test]
fn sanitize() {
    fuzz("sanitize", |bytes| {
        let (limit, rest) = bytes.split_at(bytes.len().min(2));
        let max = limit.iter().fold(0usize, |n, b| n * 256 + *b as usize) % 2048;
        let input = text(rest);
        let clean = sanitize_output(&input, max);
        assert_clean(&clean, max);
        if clean.len() < input.len() && max >= TRUNCATED.len() && clean.ends_with(TRUNCATED) {
            return;
        }
        assert_eq!(sanitize_output(&clean, max), clean, "idempotent");
    });
}

/// A relayed entry `depth` relays deep.
fn relayed_entry(depth: usize) -> Forwarded {
    let mut entry = Forwarded::Own {
        report: serde_json::from_str(
            r#"{"type":"keepalive","host":"n1","zone":"core","atMs":1,"intervalSeconds":10,
            "plan":{"hash":"","held":false,"ageSeconds":0},"counts":{},"spoolDepth":0,
            "spoolDropped":0,"version":"0"}"#,
        )
        .expect("a keepalive"),
    };
    for level in 0..depth {
        entry = Forwarded::Relayed {
            satellite: format!("sat-{level}"),
            sequence: 1,
            floor: 0,
            entry: Box::new(entry),
        };
    }
    entry
}

/// Found by the `relayed` target: a child zone's satellite could send an entry nested just
/// below serde_json's depth limit; relayed once more it no longer parsed at the masters, which
/// refused the parent's every batch from then on. Now such an entry is refused at the parent.
#[test]
fn an_entry_relayed_too_often_is_refused_before_it_blocks_the_spool() {
    for depth in [0, 1, vedette_protocol::forward::MAX_RELAYS - 1] {
        let batch = Batch {
            agent: "child".to_owned(),
            floor: 0,
            entries: vec![Envelope {
                sequence: 3,
                report: relayed_entry(depth),
            }],
        };
        assert_eq!(check_relayable(&batch), Ok(()), "depth {depth}");
    }
    for depth in [vedette_protocol::forward::MAX_RELAYS, 121] {
        let batch = Batch {
            agent: "child".to_owned(),
            floor: 0,
            entries: vec![Envelope {
                sequence: 3,
                report: relayed_entry(depth),
            }],
        };
        let bytes = serde_json::to_vec(&batch).unwrap();
        let parsed: Batch<Forwarded> = serde_json::from_slice(&bytes).expect("parses");
        let problem = check_relayable(&parsed).expect_err("too deep");
        assert!(
            problem
                .to_string()
                .contains(&format!("entry 3: relayed {depth} times")),
            "{problem}"
        );
    }
}

#[test]
fn spool_segment() {
    use vedette_agent::spool::Priority;
    use vedette_agent::spool::frame::{Decoded, decode};
    use vedette_agent::spool::segment::scan;
    // A segment file after a crash or a damaged disk, as the spool's recovery reads it.
    fuzz("spool_segment", |bytes| {
        let _: Decoded = decode(bytes);
        let found = scan(bytes, Priority::StateChange, 0);
        let mut last = 0;
        let mut end = 0;
        for record in &found.records {
            assert!(record.header.sequence > last, "sequences increase");
            last = record.header.sequence;
            assert!(record.offset as usize >= end, "records do not overlap");
            end = record.offset as usize + record.header.frame_len();
            assert!(end <= bytes.len());
        }
        for (offset, length) in &found.corrupt {
            assert!((offset + length) as usize <= bytes.len());
        }
        if let Some(from) = found.unreadable_from {
            assert!((from as usize) < bytes.len());
        }
    });
}

/// A zone bundle's ConfigMaps as the satellite reads them (JSON here for the fuzzer).
#[derive(serde::Deserialize, Serialize)]
struct OwnedShard {
    name: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    data: BTreeMap<String, String>,
}

#[test]
fn shards() {
    fuzz("shards", |bytes| {
        let Ok(owned) = serde_json::from_slice::<Vec<OwnedShard>>(bytes) else {
            return;
        };
        let stored: Vec<StoredShard<'_>> = owned
            .iter()
            .map(|s| StoredShard {
                name: &s.name,
                labels: &s.labels,
                annotations: &s.annotations,
                data: &s.data,
            })
            .collect();
        if let Err(problem) = read_shards(&stored) {
            assert!(!problem.to_string().is_empty());
        }
    });
}

/// Writes `fuzz/corpus/shards/` from the bundle seeds (`cargo test -p vedette-fuzz --test
/// targets -- --ignored write_shard_seeds`).
#[test]
#[ignore = "writes the corpus"]
fn write_shard_seeds() {
    let directory = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/shards");
    std::fs::create_dir_all(&directory).unwrap();
    for (path, bytes) in vedette_fuzz::corpus("bundle") {
        let bundle: ZoneBundle = serde_json::from_slice(&bytes).unwrap();
        let shards = write_shards(&bundle, 1024).unwrap();
        let owned: Vec<OwnedShard> = shards
            .iter()
            .map(|s| OwnedShard {
                name: format!("vedette-zone-core-bundle-{}", s.index),
                labels: s.labels().into_iter().collect(),
                annotations: s.annotations(),
                data: s.data.clone(),
            })
            .collect();
        let name = path.file_name().unwrap();
        std::fs::write(directory.join(name), serde_json::to_vec(&owned).unwrap()).unwrap();
    }
}
