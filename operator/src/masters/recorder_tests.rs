use super::*;
use crate::masters::state::tests::{agent, batch, change, id, keepalive};
use vedette_crds::CheckState;
use vedette_protocol::report::Report;

fn merged(state: &mut MasterState, batch: Batch<Forwarded>, now_ms: u64) -> Write {
    let reports = reports(&batch);
    let (_, events) = state.receive(batch, now_ms);
    write_for(&reports, &events, state)
}

fn flip(host: &str, previous: CheckState, state: CheckState, at_ms: u64) -> Report {
    let Report::StateChange(mut report) = change(host, state, true, at_ms) else {
        unreachable!()
    };
    report.previous_state = previous;
    Report::StateChange(report)
}

#[test]
fn a_backlog_that_arrives_after_a_newer_live_change_is_recorded_but_does_not_replace_the_state() {
    use CheckState::*;
    let mut state = MasterState::default();
    let live = merged(
        &mut state,
        batch(
            "sat-a",
            vec![(1, agent("n1", 10, flip("n1", Critical, Ok, 10_000)))],
        ),
        10_000,
    );
    assert_eq!(live.records.len(), 1);
    let backlog = merged(
        &mut state,
        batch(
            "sat-a",
            vec![
                (2, agent("n1", 3, flip("n1", Ok, Critical, 3_000))),
                (3, agent("n1", 4, flip("n1", Critical, Warning, 4_000))),
                (4, agent("n1", 5, flip("n1", Warning, Critical, 5_000))),
            ],
        ),
        11_000,
    );
    let sequences: Vec<(u64, u64)> = backlog
        .records
        .iter()
        .map(|r| (r.sequence, r.at_ms))
        .collect();
    assert_eq!(
        sequences,
        [(3, 3_000), (4, 4_000), (5, 5_000)],
        "every transition, with the agent's order"
    );
    assert_eq!(
        state.check("n1", &id("tcp")).unwrap().state,
        Ok,
        "the live state stays"
    );
    assert_eq!(backlog.last_states.len(), 1);
    assert_eq!(
        backlog.last_states[0].state, Ok,
        "the last state is the merged one"
    );
    assert_eq!(backlog.last_states[0].writer_sequence, 10);
}

#[test]
fn a_result_in_the_same_state_writes_the_last_state_but_no_record() {
    let mut state = MasterState::default();
    let Report::StateChange(report) = change("n1", CheckState::Ok, true, 1_000) else {
        unreachable!()
    };
    let write = merged(
        &mut state,
        batch("sat-a", vec![(1, agent("n1", 1, Report::Result(report)))]),
        1_000,
    );
    assert!(write.records.is_empty());
    assert_eq!(write.last_states.len(), 1);
}

#[test]
fn agents_connecting_going_stale_and_holding_plans_are_records_keyed_by_their_keepalive() {
    let mut state = MasterState::default();
    let write = merged(
        &mut state,
        batch(
            "sat-a",
            vec![
                (1, agent("n1", 1, keepalive("n1", 1_000, false))),
                (2, agent("n1", 2, keepalive("n1", 2_000, true))),
            ],
        ),
        2_000,
    );
    let kinds: Vec<(Kind, u64)> = write.records.iter().map(|r| (r.kind, r.sequence)).collect();
    assert_eq!(kinds, [(Kind::AgentFresh, 1_000), (Kind::PlanHeld, 2_000)]);
    let stale: Vec<Record> = state
        .sweep(60_000)
        .iter()
        .filter_map(agent_record)
        .collect();
    assert_eq!(stale.len(), 1);
    assert_eq!(
        (stale[0].kind, stale[0].sequence),
        (Kind::AgentStale, 2_000)
    );
    assert_eq!(stale[0].zone, "core");
}

#[test]
fn a_restored_state_is_replaced_by_a_newer_report_even_from_a_wiped_spool_but_not_an_older_one() {
    use CheckState::*;
    let mut state = MasterState::default();
    let mut first = MasterState::default();
    let write = merged(
        &mut first,
        batch(
            "sat-a",
            vec![(1, agent("n1", 500, flip("n1", Ok, Critical, 5_000)))],
        ),
        5_000,
    );
    state.restore(write.last_states.into_iter().map(restored_entry));
    let restored = state.check("n1", &id("tcp")).unwrap();
    assert!(restored.restored);
    assert_eq!(restored.state, Critical);
    let (_, _) = state.receive(
        batch(
            "sat-a",
            vec![(1, agent("n1", 1, flip("n1", Critical, Warning, 4_000)))],
        ),
        6_000,
    );
    assert_eq!(
        state.check("n1", &id("tcp")).unwrap().state,
        Critical,
        "older: kept"
    );
    let (_, _) = state.receive(
        batch(
            "sat-a",
            vec![(2, agent("n1", 2, flip("n1", Critical, Ok, 7_000)))],
        ),
        7_000,
    );
    let now = state.check("n1", &id("tcp")).unwrap();
    assert_eq!((now.state, now.restored), (Ok, false));
}
