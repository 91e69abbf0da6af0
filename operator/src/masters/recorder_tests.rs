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

#[test]
fn process_records_have_one_key_per_event_and_read_back_as_the_state_to_resume() {
    use super::super::processes::{Transition, Violation};
    use vedette_crds::process::{ElementState, ViolationKind};
    let process = ProcessId {
        namespace: "batch".into(),
        name: "twopm".into(),
    };
    let transition = |to: ElementState, at_ms: u64| {
        MasterEvent::Process(ProcessEvent::Transition(Transition {
            process: process.clone(),
            element: "twopm".into(),
            machine: "b1".into(),
            from: ElementState::Standby,
            to,
            clause: "running".into(),
            message: Some("twopm has started".into()),
            notify: vec!["ops".into()],
            at_ms,
        }))
    };
    let running = process_record(&transition(ElementState::Running, 1_000)).unwrap();
    let completed = process_record(&transition(ElementState::Completed, 1_000)).unwrap();
    assert_eq!(running.source, "batch/twopm/twopm");
    assert_ne!(
        running.sequence, completed.sequence,
        "two steps at one instant are two records"
    );
    let restored = restored_element(&running).unwrap();
    assert_eq!(restored.state, ElementState::Running);
    assert_eq!(restored.message.as_deref(), Some("twopm has started"));
    assert_eq!(restored.machine.as_deref(), Some("b1"));
    assert_eq!(restored.clause.as_deref(), Some("running"));
    let early = |dependency: &str, slot: u8| {
        MasterEvent::Process(ProcessEvent::Violation {
            process: process.clone(),
            violation: Violation {
                kind: ViolationKind::Early,
                element: "load".into(),
                dependency: Some(dependency.into()),
                slot,
                at_ms: 5_000,
                message: "early".into(),
            },
            notify: Vec::new(),
        })
    };
    let a = process_record(&early("extract", 0)).unwrap();
    let b = process_record(&early("transform", 1)).unwrap();
    assert_ne!(a.sequence, b.sequence, "one record per dependency");
    let run = MasterEvent::Process(ProcessEvent::RunEnded {
        process: process.clone(),
        element: "twopm".into(),
        run: super::super::processes::Run {
            started_ms: 1_000,
            ended_ms: 301_000,
            outcome: ElementState::Completed,
        },
    });
    let record = process_record(&run).unwrap();
    let ((id, element), back) = run_of(&record).unwrap();
    assert_eq!((id, element.as_str()), (process, "twopm"));
    assert_eq!(back.ended_ms - back.started_ms, 300_000);
    assert!(restored_element(&record).is_none());
}

#[test]
fn a_relayed_report_is_recorded_under_the_satellite_that_made_it() {
    let mut state = MasterState::default();
    let remote = Forwarded::Own {
        report: change("target", CheckState::Critical, true, 5_000),
    };
    let from_agent = agent("n1", 8, change("n1", CheckState::Warning, true, 6_000));
    let relay = |sequence, entry| Forwarded::Relayed {
        satellite: "site-0".into(),
        sequence,
        floor: 1,
        entry: Box::new(entry),
    };
    let write = merged(
        &mut state,
        batch(
            "region-0",
            vec![(1, relay(4, remote)), (2, relay(5, from_agent))],
        ),
        10_000,
    );
    let keys: Vec<(&str, u64)> = write
        .records
        .iter()
        .map(|r| (r.source.as_str(), r.sequence))
        .collect();
    assert_eq!(keys, [("site-0", 4), ("n1", 8)]);
}
