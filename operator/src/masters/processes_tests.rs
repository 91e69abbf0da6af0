use std::collections::BTreeMap;

use proptest::prelude::*;
use vedette_crds::process::{Deadline, ElementStateCondition, TimeWindow};
use vedette_protocol::process::PlannedElement;

use super::*;
use crate::compile::process::ClauseInfo;
use ElementState::*;

fn id() -> ProcessId {
    ProcessId {
        namespace: "batch".into(),
        name: "nightly".into(),
    }
}

fn element(name: &str, hosts: &[&str], depends_on: &[&str]) -> ElementModel {
    let clauses: BTreeMap<String, ClauseInfo> = ["standby", "running", "completed", "failed[0]"]
        .into_iter()
        .map(|c| {
            let info = ClauseInfo {
                message: Some(format!("{name} {c}")),
                notify: vec!["ops".into()],
            };
            (c.to_owned(), info)
        })
        .collect();
    ElementModel {
        name: name.into(),
        hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
        depends_on: depends_on.iter().map(|d| (*d).to_owned()).collect(),
        agent: PlannedElement {
            process: id(),
            element: name.into(),
            time_zone: "UTC".into(),
            hosts: Vec::new(),
            clauses: Vec::new(),
        },
        masters: Vec::new(),
        clauses,
        complete_by: None,
    }
}

fn engine(elements: Vec<ElementModel>) -> ProcessEngine {
    let mut engine = ProcessEngine::default();
    engine.set_models([ProcessModel {
        id: id(),
        time_zone: "UTC".into(),
        elements,
    }]);
    engine
}

fn report(
    element: &str,
    host: &str,
    from: ElementState,
    to: ElementState,
    at_ms: u64,
) -> ElementReport {
    let clause = match to {
        Failed => "failed[0]".to_owned(),
        other => other.as_str().to_ascii_lowercase(),
    };
    ElementReport {
        process: id(),
        element: element.into(),
        host: host.into(),
        from,
        to,
        clause: clause.clone(),
        message: Some(format!("{element} {clause}")),
        at_ms,
    }
}

fn transitions(events: &[ProcessEvent]) -> Vec<(String, ElementState, ElementState)> {
    events
        .iter()
        .filter_map(|e| match e {
            ProcessEvent::Transition(t) => Some((t.element.clone(), t.from, t.to)),
            _ => None,
        })
        .collect()
}

fn violations(events: &[ProcessEvent]) -> Vec<Violation> {
    events
        .iter()
        .filter_map(|e| match e {
            ProcessEvent::Violation { violation, .. } => Some(violation.clone()),
            _ => None,
        })
        .collect()
}

fn state(engine: &ProcessEngine, element: &str) -> ElementState {
    engine.runtime(&id()).unwrap().elements[element].state
}

const NO_CHECKS: &dyn Fn(&CheckId) -> Vec<(CheckState, u64)> = &|_| Vec::new();
/// Every agent said it has nothing older in flight.
const ALL_DRAINED: &dyn Fn(&str) -> u64 = &|_| u64::MAX;

#[test]
fn a_run_goes_round_with_its_messages_and_its_duration() {
    let mut engine = engine(vec![element("twopm", &["batch-01"], &[])]);
    let events = engine.apply_report_now(&report("twopm", "batch-01", Standby, Running, 1_000));
    let [ProcessEvent::Transition(t)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(
        (t.from, t.to, t.machine.as_str()),
        (Standby, Running, "batch-01")
    );
    assert_eq!(t.message.as_deref(), Some("twopm running"));
    assert_eq!(t.notify, ["ops"]);
    let events = engine.apply_report_now(&report("twopm", "batch-01", Running, Completed, 301_000));
    assert!(events.iter().any(|e| matches!(
        e,
        ProcessEvent::RunEnded { run, .. } if run.ended_ms - run.started_ms == 300_000 && run.outcome == Completed
    )));
    engine.apply_report_now(&report("twopm", "batch-01", Completed, Standby, 400_000));
    let runtime = &engine.runtime(&id()).unwrap().elements["twopm"];
    assert_eq!(runtime.state, Standby);
    assert_eq!(runtime.median_ms(), Some(300_000));
    assert_eq!(runtime.message.as_deref(), Some("twopm standby"));
}

#[test]
fn an_illegal_step_from_an_agent_is_ignored_and_counted() {
    let mut engine = engine(vec![element("twopm", &["batch-01"], &[])]);
    assert!(
        engine
            .apply_report_now(&report("twopm", "batch-01", Running, Completed, 1))
            .is_empty()
    );
    assert!(
        engine
            .apply_report_now(&report("twopm", "elsewhere", Standby, Running, 1))
            .is_empty()
    );
    assert_eq!(
        engine.counts().ignored,
        1,
        "a machine the element does not run on"
    );
    assert_eq!(
        engine.parked(),
        1,
        "a step from Running waits for the one into it"
    );
    assert_eq!(state(&engine, "twopm"), Standby);
}

#[test]
fn a_transition_that_overtook_the_one_before_waits_for_it() {
    let mut engine = engine(vec![element("twopm", &["batch-01"], &[])]);
    engine.apply_report_now(&report("twopm", "batch-01", Standby, Running, 1_000));
    // After an outage: the live Completed → Standby arrives before the backlog's completion.
    assert!(
        engine
            .apply_report(
                &report("twopm", "batch-01", Completed, Standby, 9_000),
                "batch-01",
                3,
                10_000
            )
            .is_empty()
    );
    assert_eq!(state(&engine, "twopm"), Running);
    let events = engine.apply_report(
        &report("twopm", "batch-01", Running, Completed, 5_000),
        "batch-01",
        2,
        10_500,
    );
    assert_eq!(
        transitions(&events),
        [
            ("twopm".into(), Running, Completed),
            ("twopm".into(), Completed, Standby)
        ]
    );
    assert_eq!(engine.parked(), 0);
    // A resend of something older changes nothing.
    assert!(
        engine
            .apply_report(
                &report("twopm", "batch-01", Standby, Running, 1_000),
                "batch-01",
                1,
                11_000
            )
            .is_empty()
    );
}

#[test]
fn a_transition_whose_predecessor_never_comes_is_applied_once_the_agent_settled() {
    let mut engine = engine(vec![element("twopm", &["batch-01"], &[])]);
    // The masters never saw it start (a restart without history): the completion waits…
    engine.apply_report(
        &report("twopm", "batch-01", Running, Completed, 5_000),
        "batch-01",
        7,
        6_000,
    );
    assert!(
        engine
            .release(6_500, &|_, sequence, _| sequence < 7)
            .is_empty()
    );
    // …until everything the agent sent before it has arrived.
    let events = engine.release(7_000, &|_, _, _| true);
    assert_eq!(
        transitions(&events),
        [
            ("twopm".into(), Standby, Running),
            ("twopm".into(), Running, Completed)
        ]
    );
    // Or until it waited long enough.
    let mut engine = engine_with_parked();
    assert!(
        engine
            .release(1_000 + PARK_LIMIT_MS - 1, &|_, _, _| false)
            .is_empty()
    );
    assert_eq!(
        transitions(&engine.release(1_000 + PARK_LIMIT_MS, &|_, _, _| false)).len(),
        2
    );
}

fn engine_with_parked() -> ProcessEngine {
    let mut engine = engine(vec![element("twopm", &["batch-01"], &[])]);
    engine.apply_report(
        &report("twopm", "batch-01", Running, Completed, 500),
        "batch-01",
        7,
        1_000,
    );
    engine
}

#[test]
fn a_restored_element_resumes_in_its_last_state() {
    let mut engine = ProcessEngine::default();
    engine.restore([Restored {
        process: id(),
        element: "twopm".into(),
        state: Running,
        at_ms: 1_000,
        message: Some("twopm has started".into()),
        clause: Some("running".into()),
        machine: Some("batch-01".into()),
        runs: vec![Run {
            started_ms: 0,
            ended_ms: 30_000,
            outcome: Completed,
        }],
    }]);
    engine.set_models([ProcessModel {
        id: id(),
        time_zone: "UTC".into(),
        elements: vec![element("twopm", &["batch-01"], &[])],
    }]);
    assert_eq!(state(&engine, "twopm"), Running);
    let events = engine.apply_report_now(&report("twopm", "batch-01", Running, Completed, 61_000));
    assert!(events.iter().any(|e| matches!(
        e,
        ProcessEvent::RunEnded { run, .. } if run.ended_ms - run.started_ms == 60_000
    )));
    let runtime = &engine.runtime(&id()).unwrap().elements["twopm"];
    assert_eq!(
        runtime.durations,
        [30_000, 60_000],
        "the restored run counts for the median"
    );
}

#[test]
fn an_element_on_two_machines_runs_while_either_runs_and_completes_when_both_have() {
    let mut engine = engine(vec![element("load", &["a", "b"], &[])]);
    engine.apply_report_now(&report("load", "a", Standby, Running, 1));
    assert_eq!(state(&engine, "load"), Running);
    engine.apply_report_now(&report("load", "a", Running, Completed, 2));
    assert_eq!(state(&engine, "load"), Running, "b has not run yet");
    engine.apply_report_now(&report("load", "b", Standby, Running, 3));
    let events = engine.apply_report_now(&report("load", "b", Running, Completed, 4));
    assert_eq!(transitions(&events), [("load".into(), Running, Completed)]);
    engine.apply_report_now(&report("load", "a", Completed, Standby, 5));
    assert_eq!(state(&engine, "load"), Completed, "b still shows the run");
    engine.apply_report_now(&report("load", "b", Completed, Standby, 6));
    assert_eq!(state(&engine, "load"), Standby);
}

#[test]
fn a_dependent_that_starts_first_is_one_violation_naming_both() {
    let mut engine = engine(vec![
        element("prices", &["feed"], &[]),
        element("positions", &["batch"], &["prices"]),
    ]);
    let events = engine.apply_and_decide(&report("positions", "batch", Standby, Running, 10));
    let found = violations(&events);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].kind, ViolationKind::Early);
    assert_eq!(found[0].element, "positions");
    assert_eq!(found[0].dependency.as_deref(), Some("prices"));
    assert!(found[0].message.contains("prices"), "{}", found[0].message);
    assert_eq!(engine.runtime(&id()).unwrap().violations.len(), 1);
    // In order, nothing is raised.
    let mut engine = engine_in_order();
    assert!(engine.runtime(&id()).unwrap().violations.is_empty());
    let events = engine.apply_and_decide(&report("positions", "batch", Running, Completed, 40));
    assert!(violations(&events).is_empty());
}

fn engine_in_order() -> ProcessEngine {
    let mut engine = engine(vec![
        element("prices", &["feed"], &[]),
        element("positions", &["batch"], &["prices"]),
    ]);
    for r in [
        report("prices", "feed", Standby, Running, 10),
        report("prices", "feed", Running, Completed, 20),
        report("positions", "batch", Standby, Running, 30),
    ] {
        assert!(violations(&engine.apply_and_decide(&r)).is_empty());
    }
    engine
}

#[test]
fn a_failed_dependency_fails_the_dependent_through_a_masters_clause() {
    let mut valuation = element("valuation", &["batch"], &["positions"]);
    valuation.masters.push(MastersClause {
        enters: Failed,
        name: "failed[0]".into(),
        time_window: None,
        check_state: None,
        element_state: Some(ElementStateCondition {
            element: "positions".into(),
            state: Failed,
        }),
    });
    let mut engine = engine(vec![element("positions", &["batch"], &[]), valuation]);
    engine.apply_report_now(&report("positions", "batch", Standby, Running, 1));
    engine.apply_report_now(&report("positions", "batch", Standby, Running, 1));
    let (_, events) = engine_apply_then_evaluate(
        &mut engine,
        report("valuation", "batch", Standby, Running, 2),
        3,
    );
    assert_eq!(state(&engine, "valuation"), Running);
    assert!(transitions(&events).iter().all(|(_, _, to)| *to != Failed));
    engine.apply_report_now(&report("positions", "batch", Running, Failed, 4));
    let events = engine.evaluate(5, NO_CHECKS, ALL_DRAINED);
    let [ProcessEvent::Transition(t), ..] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(
        (t.element.as_str(), t.to, t.machine.as_str()),
        ("valuation", Failed, MASTERS)
    );
    assert_eq!(t.message.as_deref(), Some("valuation failed[0]"));
    // The agent, unaware, goes on from its own state: its completion leaves the element
    // Failed, and its Standby brings the element back, by legal steps.
    assert!(
        engine
            .apply_report_now(&report("valuation", "batch", Running, Completed, 6))
            .is_empty()
    );
    assert_eq!(state(&engine, "valuation"), Failed);
    let events = engine.apply_report_now(&report("valuation", "batch", Completed, Standby, 7));
    assert_eq!(
        transitions(&events),
        [("valuation".into(), Failed, Standby)]
    );
}

fn engine_apply_then_evaluate(
    engine: &mut ProcessEngine,
    report: ElementReport,
    now: u64,
) -> (Vec<ProcessEvent>, Vec<ProcessEvent>) {
    let applied = engine.apply_report_now(&report);
    let evaluated = engine.evaluate(now, NO_CHECKS, ALL_DRAINED);
    (applied, evaluated)
}

fn ms(text: &str) -> u64 {
    text.parse::<jiff::Timestamp>().unwrap().as_millisecond() as u64
}

#[test]
fn a_deadline_is_raised_once_at_its_time_unless_the_element_completed() {
    let mut late = element("report", &["batch"], &[]);
    late.complete_by = Some(Deadline {
        time: Some("14:20".into()),
        days: Vec::new(),
        after_dependencies_seconds: None,
    });
    let mut engine = engine(vec![late]);
    assert!(
        engine
            .evaluate(ms("2026-12-02T14:19:59Z"), NO_CHECKS, ALL_DRAINED)
            .is_empty()
    );
    let events = engine.evaluate(ms("2026-12-02T14:20:00Z"), NO_CHECKS, ALL_DRAINED);
    let found = violations(&events);
    assert_eq!(found.len(), 1, "{events:?}");
    assert_eq!(found[0].kind, ViolationKind::Late);
    assert_eq!(found[0].at_ms, ms("2026-12-02T14:20:00Z"));
    assert!(
        engine
            .evaluate(ms("2026-12-02T14:20:01Z"), NO_CHECKS, ALL_DRAINED)
            .is_empty(),
        "once"
    );
    // The next day it completes in time: nothing.
    engine.apply_report_now(&report(
        "report",
        "batch",
        Standby,
        Running,
        ms("2026-12-03T14:00:00Z"),
    ));
    engine.apply_report_now(&report(
        "report",
        "batch",
        Running,
        Completed,
        ms("2026-12-03T14:10:00Z"),
    ));
    assert!(
        violations(&engine.evaluate(ms("2026-12-03T14:20:00Z"), NO_CHECKS, ALL_DRAINED)).is_empty()
    );
    // Completed late on the 4th (after 14:20), not run at all on the 5th: both are late.
    engine.apply_report_now(&report(
        "report",
        "batch",
        Completed,
        Standby,
        ms("2026-12-04T08:00:00Z"),
    ));
    engine.apply_report_now(&report(
        "report",
        "batch",
        Standby,
        Running,
        ms("2026-12-04T14:00:00Z"),
    ));
    assert_eq!(
        violations(&engine.evaluate(ms("2026-12-04T14:20:00Z"), NO_CHECKS, ALL_DRAINED)).len(),
        1
    );
    engine.apply_report_now(&report(
        "report",
        "batch",
        Running,
        Completed,
        ms("2026-12-04T14:25:00Z"),
    ));
    assert_eq!(
        violations(&engine.evaluate(ms("2026-12-05T14:20:00Z"), NO_CHECKS, ALL_DRAINED)).len(),
        1,
        "yesterday's late completion does not count for today"
    );
}

#[test]
fn a_deadline_after_the_dependencies_counts_from_the_last_one() {
    let mut valuation = element("valuation", &["batch"], &["prices"]);
    valuation.complete_by = Some(Deadline {
        time: None,
        days: Vec::new(),
        after_dependencies_seconds: Some(60),
    });
    let mut engine = engine(vec![element("prices", &["feed"], &[]), valuation]);
    assert!(
        engine.evaluate(500, NO_CHECKS, ALL_DRAINED).is_empty(),
        "no dependency completed"
    );
    engine.apply_report_now(&report("prices", "feed", Standby, Running, 1_000));
    engine.apply_report_now(&report("prices", "feed", Running, Completed, 10_000));
    assert!(violations(&engine.evaluate(69_999, NO_CHECKS, ALL_DRAINED)).is_empty());
    // The dependency going back to Standby does not cancel the deadline.
    engine.apply_report_now(&report("prices", "feed", Completed, Standby, 20_000));
    assert!(violations(&engine.evaluate(69_999, NO_CHECKS, ALL_DRAINED)).is_empty());
    let found = violations(&engine.evaluate(70_000, NO_CHECKS, ALL_DRAINED));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].at_ms, 70_000);
}

#[test]
fn a_masters_time_window_uses_the_process_zone() {
    let mut valuation = element("valuation", &["batch"], &[]);
    valuation.masters.push(MastersClause {
        enters: Running,
        name: "running".into(),
        time_window: Some(TimeWindow {
            start: "09:00".into(),
            end: "10:00".into(),
            days: Vec::new(),
        }),
        check_state: Some((
            CheckId {
                namespace: "batch".into(),
                rule_set: "feed".into(),
                rule: "sftp".into(),
            },
            vec![CheckState::Ok],
        )),
        element_state: None,
    });
    let mut engine = engine(vec![valuation]);
    let ok: &dyn Fn(&CheckId) -> Vec<(CheckState, u64)> =
        &|_| vec![(CheckState::Ok, 5), (CheckState::Critical, 9)];
    assert!(
        engine
            .evaluate(ms("2026-12-02T08:59:00Z"), ok, ALL_DRAINED)
            .is_empty()
    );
    assert!(
        engine
            .evaluate(ms("2026-12-02T09:01:00Z"), NO_CHECKS, ALL_DRAINED)
            .is_empty()
    );
    let events = engine.evaluate(ms("2026-12-02T09:01:30Z"), ok, ALL_DRAINED);
    assert_eq!(
        transitions(&events),
        [("valuation".into(), Standby, Running)]
    );
    // Every master computes the same instant: the window's start or the check's, the later.
    let ProcessEvent::Transition(t) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(t.at_ms, ms("2026-12-02T09:00:00Z"));
}

#[test]
fn a_new_model_keeps_the_state_of_what_remains() {
    let mut engine = engine(vec![element("a", &["m1"], &[]), element("b", &["m1"], &[])]);
    engine.apply_report_now(&report("a", "m1", Standby, Running, 1));
    engine.set_models([ProcessModel {
        id: id(),
        time_zone: "UTC".into(),
        elements: vec![element("a", &["m1", "m2"], &[])],
    }]);
    let runtime = engine.runtime(&id()).unwrap();
    assert_eq!(runtime.elements["a"].state, Running);
    assert_eq!(runtime.elements["a"].machines["m2"], Standby);
    assert!(!runtime.elements.contains_key("b"));
}

fn any_state() -> impl Strategy<Value = ElementState> {
    prop_oneof![Just(Standby), Just(Running), Just(Completed), Just(Failed)]
}

proptest! {
    /// Whatever agents report, in whatever order: every transition the engine takes is legal
    /// and starts where the element was; every entry into Running while a dependency is not
    /// Completed is exactly one violation per such dependency, and there is no other.
    #[test]
    fn random_facts_never_make_an_illegal_transition_or_a_false_violation(
        reports in prop::collection::vec((0usize..3, 0usize..2, any_state(), any_state()), 1..80),
    ) {
        let names = ["extract", "transform", "load"];
        let mut engine = engine(vec![
            element("extract", &["m0", "m1"], &[]),
            element("transform", &["m0", "m1"], &["extract"]),
            element("load", &["m0", "m1"], &["extract", "transform"]),
        ]);
        let depends: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
            ("extract", vec![]),
            ("transform", vec!["extract"]),
            ("load", vec!["extract", "transform"]),
        ]);
        let mut current: BTreeMap<String, ElementState> =
            names.iter().map(|n| ((*n).to_owned(), Standby)).collect();
        for (at, (e, m, from, to)) in reports.into_iter().enumerate() {
            let r = report(names[e], ["m0", "m1"][m], from, to, at as u64 + 1);
            let before = current.clone();
            let events = engine.apply_and_decide(&r);
            let mut expected_violations = 0;
            for event in &events {
                match event {
                    ProcessEvent::Transition(t) => {
                        let was = current[&t.element];
                        prop_assert_eq!(was, t.from);
                        prop_assert!(t.from.may_enter(t.to), "{} -> {}", t.from, t.to);
                        if t.to == Running {
                            expected_violations += depends[t.element.as_str()]
                                .iter()
                                .filter(|d| current[**d] != Completed)
                                .count();
                        }
                        current.insert(t.element.clone(), t.to);
                    }
                    ProcessEvent::Violation { violation, .. } => {
                        prop_assert_eq!(violation.kind, ViolationKind::Early);
                        let dependency = violation.dependency.clone().unwrap();
                        prop_assert!(before[&dependency] != Completed || current[&dependency] != Completed);
                    }
                    ProcessEvent::RunEnded { .. } => {}
                }
            }
            prop_assert_eq!(violations(&events).len(), expected_violations);
            for name in names {
                prop_assert_eq!(state(&engine, name), current[name]);
            }
        }
    }
}

impl ProcessEngine {
    /// Applies a report from agent `a` as if every earlier entry had arrived.
    fn apply_report_now(&mut self, report: &ElementReport) -> Vec<ProcessEvent> {
        self.apply_report(report, &report.host, report.at_ms, report.at_ms)
    }
}

impl ProcessEngine {
    /// Applies a report, then decides the early starts with every agent drained.
    fn apply_and_decide(&mut self, report: &ElementReport) -> Vec<ProcessEvent> {
        let mut events = self.apply_report_now(report);
        events.extend(self.evaluate(report.at_ms, NO_CHECKS, ALL_DRAINED));
        events
    }
}

#[test]
fn a_start_is_judged_by_when_the_dependency_completed_not_when_its_report_arrived() {
    let mut engine = engine(vec![
        element("prices", &["feed"], &[]),
        element("positions", &["batch"], &["prices"]),
    ]);
    engine.apply_report_now(&report("prices", "feed", Standby, Running, 1_000));
    // feed is cut off; it completes at 18_000, batch starts at 20_000 and reports at once.
    engine.apply_report_now(&report("positions", "batch", Standby, Running, 20_000));
    let not_yet: &dyn Fn(&str) -> u64 = &|_| 0;
    assert!(
        violations(&engine.evaluate(21_000, NO_CHECKS, not_yet)).is_empty(),
        "feed may still report"
    );
    // feed's completion arrives after the outage: it happened before the start.
    engine.apply_report_now(&report("prices", "feed", Running, Completed, 18_000));
    assert!(violations(&engine.evaluate(60_000, NO_CHECKS, ALL_DRAINED)).is_empty());
    assert!(engine.runtime(&id()).unwrap().violations.is_empty());
    assert!(engine.runtime(&id()).unwrap().suspects.is_empty());
}

#[test]
fn an_undecided_early_start_is_raised_once_the_dependency_has_reported_since() {
    let mut engine = engine(vec![
        element("prices", &["feed"], &[]),
        element("positions", &["batch"], &["prices"]),
    ]);
    engine.apply_report_now(&report("positions", "batch", Standby, Running, 20_000));
    let not_yet: &dyn Fn(&str) -> u64 = &|_| 0;
    assert!(violations(&engine.evaluate(21_000, NO_CHECKS, not_yet)).is_empty());
    // feed reports its start after that moment: it was not Completed before.
    engine.apply_report_now(&report("prices", "feed", Standby, Running, 25_000));
    let found = violations(&engine.evaluate(26_000, NO_CHECKS, not_yet));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].at_ms, 20_000);
    // Or, with nothing reported, after the wait.
    let mut engine = engine_with_a_suspect();
    assert!(violations(&engine.evaluate(1_000, NO_CHECKS, not_yet)).is_empty());
    assert_eq!(
        violations(&engine.evaluate(1_000 + PARK_LIMIT_MS, NO_CHECKS, not_yet)).len(),
        1
    );
}

fn engine_with_a_suspect() -> ProcessEngine {
    let mut engine = engine(vec![
        element("prices", &["feed"], &[]),
        element("positions", &["batch"], &["prices"]),
    ]);
    engine.apply_report_now(&report("positions", "batch", Standby, Running, 500));
    engine
}
