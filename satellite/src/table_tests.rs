use super::*;
use vedette_protocol::plan::{AgentSettings, CheckId, PlannedCheck, RemoteAssignment};
use vedette_protocol::report::PlanState;

pub(crate) fn check_id(rule: &str) -> CheckId {
    CheckId {
        namespace: "shop".into(),
        rule_set: "web".into(),
        rule: rule.into(),
    }
}

pub(crate) fn change(host: &str, rule: &str, state: CheckState, at_ms: u64) -> Report {
    Report::StateChange(CheckReport {
        check: check_id(rule),
        host: host.into(),
        state,
        hard: true,
        attempt: 1,
        previous_state: CheckState::Ok,
        output: format!("{state:?}"),
        duration_ms: 1,
        at_ms,
    })
}

pub(crate) fn keepalive(host: &str, interval_seconds: u64, held: bool) -> Report {
    Report::Keepalive(Keepalive {
        host: host.into(),
        zone: "core".into(),
        at_ms: 0,
        interval_seconds,
        plan: PlanState {
            hash: "h".into(),
            held,
            reason: if held {
                "upstream unreachable".into()
            } else {
                String::new()
            },
            age_seconds: 0,
        },
        counts: StateCounts::default(),
        spool_depth: 0,
        spool_dropped: 0,
        version: "test".into(),
    })
}

fn bundle() -> ZoneBundle {
    let check = |rule: &str| -> PlannedCheck {
        serde_json::from_value(serde_json::json!({
            "id": {"namespace": "shop", "ruleSet": "web", "rule": rule},
            "template": "shop/t", "check": {}, "conditionState": "CRITICAL",
            "intervalSeconds": 30, "retryIntervalSeconds": 10, "maxAttempts": 1,
            "timeoutSeconds": 5, "timeoutState": "CRITICAL"
        }))
        .unwrap()
    };
    ZoneBundle {
        zone: "core".into(),
        settings: AgentSettings::default(),
        checks: vec![check("a"), check("b")],
        machines: BTreeMap::from([("web-1".into(), vec![0, 1]), ("web-2".into(), vec![0])]),
        remote: vec![RemoteAssignment {
            check: 1,
            target: "example.org".into(),
        }],
        elements: Vec::new(),
        secrets: Default::default(),
    }
}

#[test]
fn planned_checks_are_pending_until_reported() {
    let mut table = StateTable::default();
    table.set_bundle(&bundle());
    assert_eq!(table.checks().count(), 4);
    assert!(table.checks().all(|(_, e)| e.state.is_none()));
    table.apply(
        "web-1",
        1,
        &change("web-1", "a", CheckState::Critical, 10),
        10,
    );
    let mut counts = StateCounts::default();
    table
        .checks()
        .for_each(|(_, entry)| counts.add(entry.state));
    assert_eq!(counts.critical, 1);
    assert_eq!(counts.pending, 3);
    let problems: Vec<&str> = table
        .checks()
        .filter(|(_, e)| e.state.is_some_and(|s| s != CheckState::Ok))
        .map(|(key, _)| key.host.as_str())
        .collect();
    assert_eq!(problems, ["web-1"]);
    assert!(table.check("example.org", &check_id("b")).unwrap().remote);
}

#[test]
fn a_replayed_older_state_change_does_not_overwrite_a_newer_one() {
    let mut table = StateTable::default();
    table.apply(
        "web-1",
        7,
        &change("web-1", "a", CheckState::Ok, 2_000),
        2_000,
    );
    // Sequence 5 arrives late (a replayed backlog), with an older state.
    table.apply(
        "web-1",
        5,
        &change("web-1", "a", CheckState::Critical, 1_000),
        3_000,
    );
    let entry = table.check("web-1", &check_id("a")).unwrap();
    assert_eq!(entry.state, Some(CheckState::Ok));
    assert_eq!(entry.writer.as_ref().unwrap().sequence, 7);
    assert_eq!(table.applied().outdated, 1);
    assert_eq!(table.applied().state_changes, 2, "both were received once");
    // Another writer (a remote check moving between replicas) wins by time.
    table.apply_own(
        "satellite-1",
        1,
        &change("web-1", "a", CheckState::Warning, 2_500),
    );
    assert_eq!(
        table.check("web-1", &check_id("a")).unwrap().state,
        Some(CheckState::Warning)
    );
    table.apply_own(
        "satellite-2",
        9,
        &change("web-1", "a", CheckState::Unknown, 100),
    );
    assert_eq!(
        table.check("web-1", &check_id("a")).unwrap().state,
        Some(CheckState::Warning)
    );
}

#[test]
fn an_agent_is_stale_after_three_missed_keepalives() {
    let mut table = StateTable::default();
    table.set_bundle(&bundle());
    assert!(table.is_stale("web-1", 0), "never sent a keepalive");
    table.apply("web-1", 1, &keepalive("web-1", 2, false), 10_000);
    assert!(!table.is_stale("web-1", 10_000));
    assert!(!table.is_stale("web-1", 16_000), "three intervals: not yet");
    assert!(table.is_stale("web-1", 16_001));
    table.apply("web-1", 2, &keepalive("web-1", 2, true), 16_500);
    assert!(!table.is_stale("web-1", 17_000));
    let zone = table.zone_summary("core", "satellite-0", 17_000, 0);
    assert_eq!(
        (zone.agents, zone.connected, zone.stale, zone.plan_held),
        (2, 1, 1, 1)
    );
    let agents = table.agents(17_000);
    assert_eq!(agents[0].entry.plan_reason, "upstream unreachable");
}

#[test]
fn the_table_survives_a_json_roundtrip() {
    let mut table = StateTable::default();
    table.set_bundle(&bundle());
    table.apply(
        "web-1",
        1,
        &change("web-1", "a", CheckState::Critical, 10),
        10,
    );
    let json = serde_json::to_string(&table).unwrap();
    assert_eq!(serde_json::from_str::<StateTable>(&json).unwrap(), table);
}

#[test]
fn one_hosts_checks_and_agent_are_found_without_the_others() {
    let mut table = StateTable::default();
    table.set_bundle(&bundle());
    let web1: Vec<_> = table
        .checks_of("web-1")
        .map(|(k, _)| k.check.rule.clone())
        .collect();
    assert_eq!(web1, ["a", "b"]);
    assert_eq!(table.checks_of("web-2").count(), 1);
    assert_eq!(table.checks_of("web-").count(), 0);
    assert_eq!(table.checks_of("example.org").count(), 1);
    assert_eq!(table.agent("web-2", 0).unwrap().host, "web-2");
    assert!(table.agent("nobody", 0).is_none());
}

#[test]
fn state_changes_are_remembered_in_arrival_order_and_bounded() {
    let mut table = StateTable::default();
    table.apply(
        "node-a",
        1,
        &change("node-a", "cpu", CheckState::Critical, 100),
        0,
    );
    table.apply("node-a", 2, &keepalive("node-a", 10, false), 0);
    // A live change overtakes the replay of an older one: both are history, the older one
    // marked as outdated.
    table.apply(
        "node-a",
        4,
        &change("node-a", "cpu", CheckState::Ok, 300),
        0,
    );
    table.apply(
        "node-a",
        3,
        &change("node-a", "cpu", CheckState::Warning, 200),
        0,
    );
    let seen: Vec<_> = table
        .recent_changes()
        .map(|c| (c.writer.sequence, c.state, c.outdated))
        .collect();
    assert_eq!(
        seen,
        [
            (1, CheckState::Critical, false),
            (4, CheckState::Ok, false),
            (3, CheckState::Warning, true),
        ]
    );

    for sequence in 5..(5 + RECENT_CHANGES as u64) {
        table.apply(
            "node-a",
            sequence,
            &change("node-a", "cpu", CheckState::Ok, sequence * 100),
            0,
        );
    }
    let kept: Vec<u64> = table.recent_changes().map(|c| c.writer.sequence).collect();
    assert_eq!(kept.len(), RECENT_CHANGES);
    assert_eq!(kept.first(), Some(&5));
    assert!(kept.windows(2).all(|w| w[0] < w[1]));

    let restored: StateTable =
        serde_json::from_str(&serde_json::to_string(&table).unwrap()).unwrap();
    assert!(restored.recent_changes().eq(table.recent_changes()));
}
