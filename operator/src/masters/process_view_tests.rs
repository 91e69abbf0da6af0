use std::collections::BTreeMap;

use vedette_crds::process::ElementState::{self, *};
use vedette_protocol::process::{ElementReport, PlannedElement, ProcessId};

use super::*;
use crate::compile::process::ElementModel;
use crate::masters::processes::ProcessEngine;

fn id() -> ProcessId {
    ProcessId {
        namespace: "brokerage".into(),
        name: "valuation".into(),
    }
}

fn element(name: &str, hosts: &[&str], depends_on: &[&str]) -> ElementModel {
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
        clauses: BTreeMap::new(),
        complete_by: None,
    }
}

fn model() -> ProcessModel {
    ProcessModel {
        id: id(),
        time_zone: "UTC".into(),
        elements: vec![
            element("prices", &["feed"], &[]),
            element("positions", &["batch"], &["prices"]),
            element("valuation", &["batch"], &["positions"]),
        ],
    }
}

fn step(
    engine: &mut ProcessEngine,
    element: &str,
    host: &str,
    from: ElementState,
    to: ElementState,
    at: u64,
) {
    let report = ElementReport {
        process: id(),
        element: element.into(),
        host: host.into(),
        from,
        to,
        clause: to.as_str().to_ascii_lowercase(),
        message: Some(format!("{element} is {to}")),
        at_ms: at,
    };
    engine.apply_report(&report, host, at, at);
    engine.evaluate(at, &|_| Vec::new(), &|_| u64::MAX);
}

#[test]
fn a_failed_element_blocks_everything_after_it_and_counts_add_up() {
    let mut engine = ProcessEngine::default();
    engine.set_models([model()]);
    step(&mut engine, "prices", "feed", Standby, Running, 1_000);
    step(&mut engine, "prices", "feed", Running, Failed, 61_000);
    let live = live(&model(), engine.runtime(&id()).unwrap(), &|_| true);
    assert_eq!((live.running, live.completed, live.failed), (0, 0, 1));
    let prices = &live.elements[0];
    assert_eq!(prices.state, Failed);
    assert_eq!(prices.message.as_deref(), Some("prices is Failed"));
    assert_eq!(prices.machine.as_deref(), Some("feed"));
    assert_eq!(prices.last_run.as_ref().map(|r| r.seconds), Some(60));
    assert_eq!(live.elements[1].blocked_by.as_deref(), Some("prices"));
    assert_eq!(
        live.elements[2].blocked_by.as_deref(),
        Some("prices"),
        "transitively"
    );
    assert_eq!(live.elements[2].dependencies[0].name, "positions");
    assert_eq!(live.elements[2].dependencies[0].state, Standby);
    assert_eq!(live.not_evaluating, None);
}

#[test]
fn an_early_start_is_listed_and_stale_agents_say_the_process_is_not_evaluated() {
    let mut engine = ProcessEngine::default();
    engine.set_models([model()]);
    step(&mut engine, "valuation", "batch", Standby, Running, 5_000);
    let live = live(&model(), engine.runtime(&id()).unwrap(), &|host| {
        host != "batch"
    });
    assert_eq!(live.violations, 1);
    assert_eq!(live.current_violations[0].element, "valuation");
    assert_eq!(
        live.current_violations[0].dependency.as_deref(),
        Some("positions")
    );
    let why = live.not_evaluating.unwrap();
    assert_eq!(why.reason, "AgentsStale");
    assert!(why.message.contains("batch"), "{}", why.message);
    let mut unplaced = model();
    unplaced.elements[0].hosts.clear();
    let live = super::live(&unplaced, engine.runtime(&id()).unwrap(), &|_| true);
    assert_eq!(live.not_evaluating.unwrap().reason, "NoMachines");
}
