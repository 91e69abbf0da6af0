use super::*;
use crate::masters::stream::HardChange;
use vedette_protocol::report::{Envelope, PlanState, StateCounts};

pub(crate) fn id(rule: &str) -> CheckId {
    CheckId {
        namespace: "shop".into(),
        rule_set: "web".into(),
        rule: rule.into(),
    }
}

pub(crate) fn change(host: &str, state: CheckState, hard: bool, at_ms: u64) -> Report {
    Report::StateChange(CheckReport {
        check: id("tcp"),
        host: host.into(),
        state,
        hard,
        attempt: 1,
        previous_state: CheckState::Ok,
        output: format!("{state:?} output"),
        duration_ms: 1,
        at_ms,
    })
}

pub(crate) fn keepalive(host: &str, at_ms: u64, held: bool) -> Report {
    Report::Keepalive(Keepalive {
        host: host.into(),
        zone: "core".into(),
        at_ms,
        interval_seconds: 2,
        plan: PlanState {
            hash: "h".into(),
            held,
            reason: String::new(),
            age_seconds: 0,
        },
        counts: StateCounts::default(),
        spool_depth: 0,
        spool_dropped: 0,
        version: "test".into(),
    })
}

pub(crate) fn agent(agent: &str, sequence: u64, report: Report) -> Forwarded {
    Forwarded::Agent {
        agent: agent.into(),
        sequence,
        report,
    }
}

pub(crate) fn batch(satellite: &str, entries: Vec<(u64, Forwarded)>) -> Batch<Forwarded> {
    Batch {
        agent: satellite.into(),
        floor: 1,
        entries: entries
            .into_iter()
            .map(|(sequence, report)| Envelope { sequence, report })
            .collect(),
    }
}

#[test]
fn acknowledges_the_contiguous_prefix_of_each_satellite() {
    let mut state = MasterState::default();
    let (ack, _) = state.receive(
        batch(
            "sat-a",
            vec![
                (1, agent("n1", 1, keepalive("n1", 10, false))),
                (3, agent("n1", 3, keepalive("n1", 30, false))),
            ],
        ),
        100,
    );
    assert_eq!(ack.up_to, 1);
    let (ack, _) = state.receive(
        batch(
            "sat-a",
            vec![(2, agent("n1", 2, keepalive("n1", 20, false)))],
        ),
        100,
    );
    assert_eq!(ack.up_to, 3);
    let (ack, _) = state.receive(batch("sat-b", vec![]), 100);
    assert_eq!(ack.up_to, 0, "each satellite has its own watermark");
}

#[test]
fn an_older_entry_never_overwrites_a_newer_state() {
    let mut state = MasterState::default();
    state.receive(
        batch(
            "sat-a",
            vec![(
                1,
                agent("n1", 5, change("n1", CheckState::Critical, true, 50)),
            )],
        ),
        100,
    );
    // A replayed older OK (lower agent sequence) arrives later, through another satellite.
    state.receive(
        batch(
            "sat-b",
            vec![(1, agent("n1", 4, change("n1", CheckState::Ok, true, 40)))],
        ),
        100,
    );
    let entry = state.check("n1", &id("tcp")).unwrap();
    assert_eq!(entry.state, CheckState::Critical);
    assert_eq!(state.applied().outdated, 1);
}

#[test]
fn an_agent_entry_forwarded_by_two_satellites_counts_once() {
    let mut state = MasterState::default();
    let entry = agent("n1", 7, change("n1", CheckState::Critical, true, 70));
    let (_, first) = receive_hard(&mut state, batch("sat-a", vec![(1, entry.clone())]), 100);
    let (_, second) = receive_hard(&mut state, batch("sat-b", vec![(9, entry)]), 100);
    assert_eq!((first.len(), second.len()), (1, 0));
    assert_eq!(state.applied().duplicates, 1);
}

#[test]
fn hard_changes_are_reported_once_with_the_previous_hard_state() {
    let mut state = MasterState::default();
    let (_, soft) = receive_hard(
        &mut state,
        batch(
            "s",
            vec![(
                1,
                agent("n1", 1, change("n1", CheckState::Critical, false, 10)),
            )],
        ),
        100,
    );
    assert!(soft.is_empty(), "a soft problem is not a hard change");
    let (_, hard) = receive_hard(
        &mut state,
        batch(
            "s",
            vec![(
                2,
                agent("n1", 2, change("n1", CheckState::Critical, true, 20)),
            )],
        ),
        100,
    );
    assert_eq!(
        hard.iter()
            .map(|c| (c.state, c.previous))
            .collect::<Vec<_>>(),
        [(CheckState::Critical, CheckState::Ok)]
    );
    assert_eq!(state.check("n1", &id("tcp")).unwrap().since_ms, 10);
    let (_, recovered) = receive_hard(
        &mut state,
        batch(
            "s",
            vec![(3, agent("n1", 3, change("n1", CheckState::Ok, true, 30)))],
        ),
        100,
    );
    assert_eq!(
        recovered
            .iter()
            .map(|c| (c.state, c.previous))
            .collect::<Vec<_>>(),
        [(CheckState::Ok, CheckState::Critical)]
    );
}

#[test]
fn keepalives_make_agents_fresh_then_stale_and_tell_held_plans() {
    let mut state = MasterState::default();
    state.receive(
        batch("s", vec![(1, agent("n1", 1, keepalive("n1", 1_000, true)))]),
        1_000,
    );
    let agent = &state.agents()["n1"];
    assert!(agent.plan_held);
    assert!(!agent.stale(1_000 + 6_000), "three intervals of 2 s");
    assert!(agent.stale(1_000 + 6_001));
    // An agent clock ahead of ours does not keep it fresh.
    state.receive(batch("s", vec![(2, agent_entry(2, 999_999))]), 2_000);
    assert_eq!(state.agents()["n1"].seen_ms, 2_000);
}

fn agent_entry(sequence: u64, at_ms: u64) -> Forwarded {
    agent("n1", sequence, keepalive("n1", at_ms, false))
}

/// The hard changes among the events of one batch.
fn receive_hard(
    state: &mut MasterState,
    batch: Batch<Forwarded>,
    now_ms: u64,
) -> (Ack, Vec<HardChange>) {
    let (ack, events) = state.receive(batch, now_ms);
    let changes = events
        .iter()
        .filter_map(|event| match event {
            MasterEvent::Check(check) => check.hard_change(),
            _ => None,
        })
        .collect();
    (ack, changes)
}

#[test]
fn every_applied_report_is_an_event_with_the_state_before() {
    let mut state = MasterState::default();
    let (_, events) = state.receive(
        batch(
            "s",
            vec![
                (
                    1,
                    agent("n1", 1, change("n1", CheckState::Warning, false, 10)),
                ),
                (
                    2,
                    agent("n1", 2, change("n1", CheckState::Warning, true, 20)),
                ),
                (
                    3,
                    agent("n1", 1, change("n1", CheckState::Critical, true, 5)),
                ),
            ],
        ),
        100,
    );
    let checks: Vec<(Option<CheckState>, CheckState, bool, bool)> = events
        .iter()
        .filter_map(|event| match event {
            MasterEvent::Check(c) => Some((c.previous, c.state, c.hard, c.is_state_change())),
            _ => None,
        })
        .collect();
    // The third is a duplicate sequence of n1: no event.
    assert_eq!(
        checks,
        [
            (None, CheckState::Warning, false, true),
            (Some(CheckState::Warning), CheckState::Warning, true, false),
        ]
    );
}

#[test]
fn agents_are_fresh_once_stale_once_and_fresh_again() {
    let mut state = MasterState::default();
    let kinds = |events: &[MasterEvent]| -> Vec<&'static str> {
        events.iter().map(crate::masters::stream::kind).collect()
    };
    let (_, events) = state.receive(batch("s", vec![(1, agent_entry(1, 1_000))]), 1_000);
    assert_eq!(kinds(&events), ["agent_fresh"]);
    let (_, events) = state.receive(batch("s", vec![(2, agent_entry(2, 2_000))]), 2_000);
    assert!(events.is_empty(), "still fresh: {events:?}");
    assert!(
        state.sweep(2_000 + 6_000).is_empty(),
        "three intervals of 2 s: not yet"
    );
    assert_eq!(kinds(&state.sweep(2_000 + 6_001)), ["agent_stale"]);
    assert!(state.sweep(60_000).is_empty(), "reported once");
    let (_, events) = state.receive(batch("s", vec![(3, agent_entry(3, 70_000))]), 70_000);
    assert_eq!(kinds(&events), ["agent_fresh"]);
}

#[test]
fn a_held_plan_and_its_release_are_events() {
    let mut state = MasterState::default();
    let held = agent("n1", 1, keepalive("n1", 1_000, true));
    let (_, events) = state.receive(batch("s", vec![(1, held)]), 1_000);
    assert!(matches!(
        events.as_slice(),
        [MasterEvent::AgentFresh(_), MasterEvent::PlanHeld { .. }]
    ));
    let released = agent("n1", 2, keepalive("n1", 2_000, false));
    let (_, events) = state.receive(batch("s", vec![(2, released)]), 2_000);
    assert!(matches!(events.as_slice(), [MasterEvent::PlanReleased(_)]));
}

/// `entry`, as satellite `child` spooled it with `sequence`, relayed by a parent zone's
/// satellite.
fn relayed(child: &str, sequence: u64, entry: Forwarded) -> Forwarded {
    Forwarded::Relayed {
        satellite: child.into(),
        sequence,
        floor: 1,
        entry: Box::new(entry),
    }
}

#[test]
fn a_child_zones_entry_relayed_by_both_parent_replicas_is_applied_once() {
    let mut state = MasterState::default();
    let own = Forwarded::Own {
        report: change("target", CheckState::Critical, true, 70),
    };
    let (_, first) = receive_hard(
        &mut state,
        batch("region-0", vec![(1, relayed("site-0", 4, own.clone()))]),
        100,
    );
    // The child failed over to the other parent replica and sent it again.
    let (ack, second) = receive_hard(
        &mut state,
        batch("region-1", vec![(1, relayed("site-0", 4, own))]),
        100,
    );
    assert_eq!((first.len(), second.len()), (1, 0));
    assert_eq!(
        ack.up_to, 1,
        "the relaying replica's own sequence is acknowledged"
    );
    assert_eq!(state.applied().duplicates, 1);
    let entry = state.check("target", &id("tcp")).unwrap();
    assert_eq!(
        entry.writer,
        ("site-0".to_owned(), 4),
        "written by the child satellite"
    );
}

#[test]
fn an_agent_entry_relayed_through_two_levels_counts_once_with_a_direct_copy() {
    let mut state = MasterState::default();
    let entry = agent("n1", 7, change("n1", CheckState::Critical, true, 70));
    let twice = relayed("region-0", 3, relayed("site-0", 9, entry.clone()));
    let (_, relayed_events) = receive_hard(&mut state, batch("top-0", vec![(1, twice)]), 100);
    let (_, direct) = receive_hard(&mut state, batch("site-1", vec![(5, entry)]), 100);
    assert_eq!((relayed_events.len(), direct.len()), (1, 0));
    let watermarks = state.satellite_watermarks();
    assert_eq!(
        (
            watermarks["top-0"],
            watermarks["region-0"],
            watermarks["site-0"]
        ),
        (1, 0, 0),
        "each level deduplicates by its own sequences (floors of 1: nothing below)"
    );
}

#[test]
fn a_relayed_zone_summary_names_the_child_satellites_zone() {
    let mut state = MasterState::default();
    let summary = Forwarded::ZoneSummary(ZoneSummary {
        zone: "site".into(),
        replica: "site-0".into(),
        at_ms: 10,
        agents: 1,
        connected: 1,
        stale: 0,
        plan_held: 0,
        remote_checks_owned: 1,
    });
    let own = Forwarded::Own {
        report: change("target", CheckState::Warning, true, 20),
    };
    state.receive(
        batch(
            "region-0",
            vec![
                (1, relayed("site-0", 1, summary)),
                (2, relayed("site-0", 2, own)),
            ],
        ),
        100,
    );
    let entry = state.check("target", &id("tcp")).unwrap();
    assert_eq!(entry.zone.as_deref(), Some("site"));
}
