use super::*;
use crate::masters::state::tests::{agent, batch, change, keepalive};
use vedette_protocol::forward::Forwarded;
use vedette_protocol::plan::{CheckId, PlannedCheck};
use vedette_protocol::report::Report;

fn bundle(machines: &[&str], rules: &[&str]) -> BTreeMap<String, ZoneBundle> {
    let checks: Vec<PlannedCheck> = rules
        .iter()
        .map(|rule| {
            serde_json::from_value(serde_json::json!({
                "id": {"namespace": "shop", "ruleSet": "web", "rule": rule},
                "template": "shop/t", "check": {}, "conditionState": "CRITICAL",
                "intervalSeconds": 30, "retryIntervalSeconds": 10, "maxAttempts": 1,
                "timeoutSeconds": 5, "timeoutState": "CRITICAL"
            }))
            .unwrap()
        })
        .collect();
    let all: Vec<u32> = (0..checks.len() as u32).collect();
    let bundle = ZoneBundle {
        zone: "core".into(),
        settings: Default::default(),
        checks,
        machines: machines
            .iter()
            .map(|m| ((*m).to_owned(), all.clone()))
            .collect(),
        remote: Vec::new(),
        elements: Vec::new(),
        secrets: Default::default(),
    };
    [("core".to_owned(), bundle)].into()
}

#[test]
fn counts_pending_stale_and_the_worst_problems_first() {
    let mut state = MasterState::default();
    let report = |host: &str, s: CheckState, at: u64| change(host, s, true, at);
    state.receive(
        batch(
            "sat",
            vec![
                (1, agent("n1", 1, keepalive("n1", 1_000, false))),
                (2, agent("n1", 2, report("n1", CheckState::Unknown, 100))),
                (3, agent("n2", 1, report("n2", CheckState::Warning, 300))),
                (4, agent("n3", 1, report("n3", CheckState::Critical, 500))),
                (5, agent("n4", 1, report("n4", CheckState::Warning, 200))),
            ],
        ),
        1_000,
    );
    let live = summarise(
        &state,
        &bundle(&["n1", "n2", "n3", "n4", "n5"], &["tcp"]),
        2_000,
    );
    let rule_set = &live.rule_sets[&("shop".to_owned(), "web".to_owned())];
    assert_eq!(
        rule_set.counts,
        StateCounts {
            ok: 0,
            warning: 2,
            critical: 1,
            unknown: 1,
            pending: 1
        }
    );
    assert_eq!(rule_set.stale, 4, "only n1 sent a keepalive");
    let order: Vec<(&str, CheckState)> = rule_set
        .problems
        .iter()
        .map(|p| (p.host.as_str(), p.state))
        .collect();
    assert_eq!(
        order,
        // Worst first by `CheckState` severity (CRITICAL > UNKNOWN > WARNING), then oldest.
        [
            ("n3", CheckState::Critical),
            ("n1", CheckState::Unknown),
            ("n4", CheckState::Warning),
            ("n2", CheckState::Warning)
        ]
    );
    assert_eq!(rule_set.problems[0].check, "tcp");
    assert_eq!(
        live.zones["core"],
        ZoneLive {
            connected: 1,
            stale: 4,
            on_held_plan: 0,
            ..ZoneLive::default()
        }
    );
}

#[test]
fn at_most_ten_problems() {
    let mut state = MasterState::default();
    let hosts: Vec<String> = (0..15).map(|i| format!("n{i:02}")).collect();
    let entries = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let s = i as u64 + 1;
            (s, agent(h, 1, change(h, CheckState::Critical, true, s)))
        })
        .collect();
    state.receive(batch("sat", entries), 1_000);
    let names: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let live = summarise(&state, &bundle(&names, &["tcp"]), 2_000);
    let problems = &live.rule_sets[&("shop".to_owned(), "web".to_owned())].problems;
    assert_eq!(problems.len(), WORST_PROBLEMS);
    assert_eq!(problems[0].host, "n00", "oldest first");
}

#[test]
fn problem_output_is_sanitized_and_bounded_in_bytes() {
    let mut report = change("n1", CheckState::Critical, true, 1);
    if let Report::StateChange(check) = &mut report {
        check.output = format!("\u{1b}]0;title\u{7}DOWN\u{202e}\0{}", "ß".repeat(500));
    }
    let mut state = MasterState::default();
    state.receive(batch("sat", vec![(1, agent("n1", 1, report))]), 1_000);
    let live = summarise(&state, &bundle(&["n1"], &["tcp"]), 2_000);
    let output = &live.rule_sets[&("shop".to_owned(), "web".to_owned())].problems[0].output;
    assert!(output.starts_with("DOWNß"), "{output:?}");
    assert!(output.len() <= MAX_OUTPUT_BYTES, "{} bytes", output.len());
    assert!(output.ends_with(vedette_protocol::text::TRUNCATED));
}

#[test]
fn a_zones_remote_checks_are_counted_per_target_with_their_problems() {
    let mut bundles = bundle(&["n1"], &["tcp"]);
    let zone = bundles.get_mut("core").unwrap();
    let mut remote = zone.checks[0].clone();
    remote.id = CheckId::remote("core", "router-ping");
    zone.checks.push(remote);
    zone.remote = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
        .iter()
        .map(|target| vedette_protocol::plan::RemoteAssignment {
            check: 1,
            target: (*target).into(),
        })
        .collect();
    let own = |target: &str, state: CheckState| Forwarded::Own {
        report: Report::StateChange(vedette_protocol::report::CheckReport {
            check: CheckId::remote("core", "router-ping"),
            host: target.into(),
            state,
            hard: true,
            attempt: 1,
            previous_state: CheckState::Ok,
            output: format!("PING {state:?}"),
            duration_ms: 1,
            at_ms: 500,
        }),
    };
    let mut state = MasterState::default();
    state.receive(
        batch(
            "sat",
            vec![
                (1, own("192.0.2.1", CheckState::Ok)),
                (2, own("192.0.2.2", CheckState::Critical)),
            ],
        ),
        1_000,
    );
    let live = summarise(&state, &bundles, 2_000);
    let zone = &live.zones["core"];
    assert_eq!(
        zone.remote,
        Some(StateCounts {
            ok: 1,
            critical: 1,
            pending: 1,
            ..StateCounts::default()
        })
    );
    assert_eq!(zone.remote_problems.len(), 1);
    assert_eq!(zone.remote_problems[0].host, "192.0.2.2");
    assert_eq!(zone.remote_problems[0].check, "router-ping");
    assert!(
        !live
            .rule_sets
            .contains_key(&(String::new(), "zone/core".to_owned())),
        "remote checks are the zone's, not a rule set's"
    );
}
