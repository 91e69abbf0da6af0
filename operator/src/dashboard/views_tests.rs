use super::*;
use crate::masters::state::tests::{agent, batch, keepalive};
use vedette_protocol::forward::Forwarded;
use vedette_protocol::merge::CheckKey;
use vedette_protocol::plan::ZoneBundle;
use vedette_protocol::report::{CheckReport, Report};

fn id(namespace: &str, rule: &str) -> CheckId {
    CheckId {
        namespace: namespace.into(),
        rule_set: "web".into(),
        rule: rule.into(),
    }
}

fn report(host: &str, id: CheckId, state: CheckState, hard: bool, at_ms: u64) -> Forwarded {
    agent(
        host,
        at_ms,
        Report::StateChange(CheckReport {
            check: id,
            host: host.into(),
            state,
            hard,
            attempt: 1,
            previous_state: CheckState::Ok,
            output: format!("{} on {host}", state.name()),
            duration_ms: 1,
            at_ms,
        }),
    )
}

fn planned(id: &CheckId) -> vedette_protocol::plan::PlannedCheck {
    serde_json::from_value(serde_json::json!({
        "id": id,
        "template": format!("{}/tcp", id.namespace),
        "check": {"tcp": {"port": 80}},
        "critical": "2",
        "conditionState": "CRITICAL",
        "intervalSeconds": 60,
        "retryIntervalSeconds": 10,
        "maxAttempts": 3,
        "timeoutSeconds": 10,
        "timeoutState": "UNKNOWN",
    }))
    .unwrap()
}

/// Three hosts in `edge`: `a` CRITICAL (hard, since 3000), `b` WARNING (soft), `c` never
/// reported (PENDING); `billing`'s check on `a` is UNKNOWN (hard, since 2000).
fn fixture() -> (MasterState, Catalog) {
    let mut bundle = ZoneBundle {
        zone: "edge".into(),
        checks: vec![planned(&id("billing", "db")), planned(&id("shop", "http"))],
        ..ZoneBundle::default()
    };
    bundle.machines.insert("a".into(), vec![0, 1]);
    bundle.machines.insert("b".into(), vec![1]);
    bundle.machines.insert("c".into(), vec![1]);
    let catalog = Catalog::new([&bundle], &[]);
    let mut state = MasterState::default();
    state.receive(
        batch(
            "s",
            vec![
                (
                    1,
                    report("a", id("shop", "http"), CheckState::Critical, true, 3_000),
                ),
                (
                    2,
                    report("b", id("shop", "http"), CheckState::Warning, false, 2_500),
                ),
                (
                    3,
                    report("a", id("billing", "db"), CheckState::Unknown, true, 2_000),
                ),
                (4, agent("a", 10, keepalive("a", 3_000, false))),
            ],
        ),
        3_000,
    );
    (state, catalog)
}

fn hosts(rows: &[Row]) -> Vec<(&str, &str)> {
    rows.iter()
        .map(|r| (r.host.as_str(), r.namespace.as_str()))
        .collect()
}

#[test]
fn planned_checks_without_a_report_are_pending_and_namespaces_outside_are_left_out() {
    let (state, catalog) = fixture();
    let shop = Visible::Namespaces(["shop".to_owned()].into());
    let rows = rows(&state, &catalog, &shop, 3_000);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|r| r.namespace == "shop"));
    let pending = rows.iter().find(|r| r.host == "c").unwrap();
    assert_eq!((pending.state, pending.zone.as_str()), (None, "edge"));
    assert_eq!(self::rows(&state, &catalog, &Visible::All, 3_000).len(), 4);
    let none = Visible::Namespaces(BTreeSet::new());
    assert!(self::rows(&state, &catalog, &none, 3_000).is_empty());
}

#[test]
fn problems_are_hard_ones_worst_first_with_soft_ones_apart() {
    let (state, catalog) = fixture();
    let all = rows(&state, &catalog, &Visible::All, 3_000);
    let counted = visible_counts(&state, &catalog, &Visible::All);
    assert_eq!(
        counted,
        counts(&all),
        "counting without rows gives the same"
    );
    let reported = rows_where(&state, &catalog, &Visible::All, 3_000, |e| e.is_some());
    assert_eq!(reported.len(), 3, "only the rows asked for are made");
    let problems = problems(all, counted, &state, true, 3_000);
    assert_eq!(hosts(&problems.hard), [("a", "shop"), ("a", "billing")]);
    assert_eq!(hosts(&problems.soft), [("b", "shop")]);
    assert_eq!((problems.hard_total, problems.soft_total), (2, 1));
    assert_eq!(problems.counts["PENDING"], 1);
    assert_eq!(problems.counts["CRITICAL"], 1);
    assert!(problems.stale_agents.is_empty());
    // Seven seconds later `a` missed three keepalives of 2 s.
    let later = problems_at(&state, &catalog, 10_000);
    assert_eq!(later.stale_agents.len(), 1);
    assert!(later.hard.iter().all(|r| r.stale));
}

fn problems_at(state: &MasterState, catalog: &Catalog, now: u64) -> Problems {
    let counts = visible_counts(state, catalog, &Visible::All);
    problems(
        rows(state, catalog, &Visible::All, now),
        counts,
        state,
        true,
        now,
    )
}

#[test]
fn filters_combine_and_a_bad_state_is_named() {
    let (state, catalog) = fixture();
    let all = || rows(&state, &catalog, &Visible::All, 3_000);
    let page = |filter: Filter| {
        let matcher = filter.matcher().unwrap();
        checks_page(all(), &matcher, (Column::Host, Order::Asc), 0, 50)
    };
    let pending = page(Filter {
        state: Some("pending,critical".into()),
        ..Filter::default()
    });
    assert_eq!(hosts(&pending.rows), [("a", "shop"), ("c", "shop")]);
    let text = page(Filter {
        q: Some("WARN".into()),
        ..Filter::default()
    });
    assert_eq!(hosts(&text.rows), [("b", "shop")]);
    let rule_set = page(Filter {
        rule_set: Some("billing/web".into()),
        ..Filter::default()
    });
    assert_eq!(hosts(&rule_set.rows), [("a", "billing")]);
    assert_eq!(rule_set.total, 1);
    assert_eq!(
        rule_set.facets.namespaces.len(),
        2,
        "facets cover every visible row"
    );
    let bad = Filter {
        state: Some("RED".into()),
        ..Filter::default()
    };
    assert!(bad.matcher().err().unwrap().to_string().contains("\"RED\""));
}

#[test]
fn every_column_sorts_both_ways_with_host_and_check_breaking_ties() {
    let (state, catalog) = fixture();
    let mut all = rows(&state, &catalog, &Visible::All, 3_000);
    sort(&mut all, Column::State, Order::Desc);
    let states: Vec<_> = all.iter().map(|r| r.state).collect();
    assert_eq!(
        states,
        [
            Some(CheckState::Critical),
            Some(CheckState::Unknown),
            Some(CheckState::Warning),
            None
        ]
    );
    sort(&mut all, Column::Duration, Order::Desc);
    assert_eq!(all[0].since_ms, 0, "a pending check has no since: longest");
    assert_eq!(
        all[1].namespace, "billing",
        "since 2000 is the longest reported"
    );
    sort(&mut all, Column::Check, Order::Asc);
    assert_eq!(all[0].namespace, "billing");
    sort(&mut all, Column::Host, Order::Desc);
    assert_eq!(all[0].host, "c");
}

#[test]
fn paging_cuts_the_sorted_rows() {
    let (state, catalog) = fixture();
    let matcher = Filter::default().matcher().unwrap();
    let all = rows(&state, &catalog, &Visible::All, 3_000);
    let page = checks_page(all, &matcher, (Column::Host, Order::Asc), 1, 2);
    assert_eq!(page.total, 4);
    assert_eq!(hosts(&page.rows), [("a", "shop"), ("b", "shop")]);
}

#[test]
fn the_matrix_has_machines_as_rows_and_rules_as_columns() {
    let (state, catalog) = fixture();
    let all = rows(&state, &catalog, &Visible::All, 3_000);
    let matrix = matrix(&all, "shop", "web");
    assert_eq!(matrix.rules, ["http"]);
    let cells: Vec<(&str, &str)> = matrix
        .machines
        .iter()
        .map(|(host, line)| (host.as_str(), line[0]))
        .collect();
    assert_eq!(
        cells,
        [("a", "CRITICAL"), ("b", "WARNING"), ("c", "PENDING")]
    );
}

#[test]
fn zones_count_their_agents_and_hosts_show_their_checks() {
    let (state, catalog) = fixture();
    let zones = zones(&state, &catalog, 3_000);
    let names: Vec<&str> = zones.iter().map(|z| z.name.as_str()).collect();
    assert_eq!(
        names,
        ["core", "edge"],
        "the keepalive's zone is listed too"
    );
    assert_eq!((zones[0].connected, zones[0].stale), (1, 0));
    assert_eq!(zones[1].definition.machines, 3);
    let all = rows(&state, &catalog, &Visible::All, 3_000);
    let host = host("a", all, &state, &catalog, false, 3_000);
    assert_eq!(host.checks.len(), 2);
    assert!(
        host.agent.is_none(),
        "agents only for those who may see zones"
    );
    let key = CheckKey {
        host: "a".into(),
        check: id("shop", "http"),
    };
    let all = rows(&state, &catalog, &Visible::All, 3_000);
    let view = check(all, &catalog, &key.host, &key.check).unwrap();
    assert_eq!(view.definition.unwrap().critical.as_deref(), Some("2"));
}
