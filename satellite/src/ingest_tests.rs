use super::*;
use crate::table::tests::{change, check_id};
use vedette_agent::spool::SpoolConfig;
use vedette_crds::template::CheckState;

fn open(dir: &Path) -> (Ingest, Spool) {
    let spool = Spool::open(SpoolConfig::new(dir.join("spool"))).unwrap();
    let ingest = Ingest::open(
        "satellite-0",
        spool.clone(),
        &dir.join("snapshot.json"),
        None,
        Arc::new(SatelliteMetrics::default()),
    )
    .unwrap();
    (ingest, spool)
}

fn batch(floor: u64, entries: &[(u64, CheckState)]) -> Batch {
    Batch {
        agent: "web-1".into(),
        floor,
        entries: entries
            .iter()
            .map(|(sequence, state)| Envelope {
                sequence: *sequence,
                report: change("web-1", "a", *state, *sequence * 1000),
            })
            .collect(),
    }
}

#[tokio::test]
async fn entries_are_in_the_spool_before_the_ack_and_resends_are_not_stored_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (ingest, spool) = open(dir.path());
    let ack = ingest
        .receive(
            batch(1, &[(1, CheckState::Ok), (3, CheckState::Critical)]),
            5_000,
        )
        .await
        .unwrap();
    assert_eq!(ack.up_to, 1, "2 is missing");
    assert_eq!(
        spool.stats().depth,
        2,
        "both are durable when the answer comes"
    );
    let ack = ingest
        .receive(
            batch(
                1,
                &[
                    (1, CheckState::Ok),
                    (2, CheckState::Warning),
                    (3, CheckState::Critical),
                ],
            ),
            6_000,
        )
        .await
        .unwrap();
    assert_eq!(ack.up_to, 3);
    assert_eq!(
        spool.stats().depth,
        3,
        "the resends of 1 and 3 are not stored again"
    );
    let core = ingest.core();
    assert_eq!(core.duplicates, 2);
    assert_eq!(core.table.applied().state_changes, 3);
    assert_eq!(
        core.table.check("web-1", &check_id("a")).unwrap().state,
        Some(CheckState::Critical),
        "the late sequence 2 does not overwrite 3"
    );
}

#[tokio::test]
async fn a_restart_rebuilds_watermarks_and_state_from_snapshot_and_spool() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (ingest, _spool) = open(dir.path());
        ingest
            .receive(batch(1, &[(1, CheckState::Ok)]), 1)
            .await
            .unwrap();
        ingest.snapshot().await.unwrap();
        ingest
            .receive(batch(1, &[(2, CheckState::Critical)]), 2)
            .await
            .unwrap();
        // Dropped without a snapshot of entry 2: only the spool has it.
    }
    let (ingest, spool) = open(dir.path());
    let ack = ingest
        .receive(
            batch(1, &[(1, CheckState::Ok), (2, CheckState::Critical)]),
            3,
        )
        .await
        .unwrap();
    assert_eq!(ack.up_to, 2);
    assert_eq!(spool.stats().depth, 2, "nothing stored twice");
    let core = ingest.core();
    assert_eq!(
        core.table.applied().state_changes,
        2,
        "nothing counted twice"
    );
    assert_eq!(
        core.table.check("web-1", &check_id("a")).unwrap().state,
        Some(CheckState::Critical)
    );
    assert_eq!(
        ingest.gate().limit(),
        0,
        "entry 2 is not covered by a snapshot yet"
    );
}

/// What satellite `site-0` of a child zone forwards: its agent's state changes.
fn from_child(floor: u64, entries: &[(u64, CheckState)]) -> Batch<Forwarded> {
    Batch {
        agent: "site-0".into(),
        floor,
        entries: entries
            .iter()
            .map(|(sequence, state)| Envelope {
                sequence: *sequence,
                report: Forwarded::Agent {
                    agent: "site-node".into(),
                    sequence: *sequence + 100,
                    report: change("site-node", "a", *state, *sequence * 1000),
                },
            })
            .collect(),
    }
}

#[tokio::test]
async fn a_child_zones_batch_is_durable_before_the_ack_relayed_once_and_kept_out_of_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let (ingest, spool) = open(dir.path());
    let ack = ingest
        .receive_relayed(from_child(
            1,
            &[(1, CheckState::Ok), (2, CheckState::Critical)],
        ))
        .await
        .unwrap();
    assert_eq!(ack.up_to, 2);
    assert_eq!(spool.stats().depth, 2, "durable when the answer comes");
    let ack = ingest
        .receive_relayed(from_child(
            1,
            &[(2, CheckState::Critical), (3, CheckState::Ok)],
        ))
        .await
        .unwrap();
    assert_eq!(ack.up_to, 3);
    assert_eq!(
        spool.stats().depth,
        3,
        "the resend of 2 is not stored again"
    );
    assert_eq!(ingest.core().duplicates, 1);
    let records = spool.peek(usize::MAX, usize::MAX).unwrap();
    let first: Forwarded = serde_json::from_slice(&records[0].payload).unwrap();
    let Forwarded::Relayed {
        satellite,
        sequence,
        entry,
        ..
    } = first
    else {
        panic!("not relayed: {first:?}")
    };
    assert_eq!((satellite.as_str(), sequence), ("site-0", 1));
    assert!(matches!(*entry, Forwarded::Agent { sequence: 101, .. }));
    assert_eq!(
        ingest.core().table.check("site-node", &check_id("a")),
        None,
        "another zone's checks are not this zone's state"
    );

    // A restart knows what it relayed: the resend is still a duplicate.
    ingest.snapshot().await.unwrap();
    drop((ingest, spool));
    let (ingest, spool) = open(dir.path());
    let ack = ingest
        .receive_relayed(from_child(1, &[(3, CheckState::Ok)]))
        .await
        .unwrap();
    assert_eq!((ack.up_to, spool.stats().depth), (3, 3));
}
