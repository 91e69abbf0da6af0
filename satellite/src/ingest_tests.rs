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
