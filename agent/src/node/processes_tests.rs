use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;

use vedette_crds::process::{LogMatch, TimeWindow};
use vedette_protocol::process::{LocalCheckState, MachineConditions, PlannedClause, ProcessId};

use super::*;
use ElementState::*;

/// Facts a test sets.
#[derive(Default)]
struct Fake {
    processes: BTreeSet<String>,
    files: BTreeSet<String>,
    checks: BTreeMap<CheckId, CheckState>,
    host: HostPaths,
}

impl Facts for Fake {
    fn process_running(&mut self, name: &str) -> bool {
        self.processes.contains(name)
    }
    fn file_exists(&mut self, path: &str) -> bool {
        self.files.contains(path)
    }
    fn check_state(&self, check: &CheckId) -> Option<CheckState> {
        self.checks.get(check).copied()
    }
    fn new_log_matches(&mut self, watch: &mut LogWatch) -> u64 {
        watch.new_matches(&self.host)
    }
}

fn clause(enters: ElementState, name: &str, when: MachineConditions) -> PlannedClause {
    PlannedClause {
        enters,
        name: name.into(),
        when,
        message: Some(format!("{name} fired")),
    }
}

fn window(start: &str, end: &str) -> Option<TimeWindow> {
    Some(TimeWindow {
        start: start.into(),
        end: end.into(),
        days: Vec::new(),
    })
}

fn ms(text: &str) -> u64 {
    text.parse::<jiff::Timestamp>().unwrap().as_millisecond() as u64
}

/// Seed 003's twopm, in New York time.
fn twopm() -> PlannedElement {
    let in_run = |extra: MachineConditions| MachineConditions {
        time_window: window("14:00", "14:30"),
        ..extra
    };
    PlannedElement {
        process: ProcessId {
            namespace: "batch".into(),
            name: "twopm".into(),
        },
        element: "twopm".into(),
        time_zone: "America/New_York".into(),
        hosts: Vec::new(),
        clauses: vec![
            clause(
                Standby,
                "standby",
                MachineConditions {
                    time_window: window("15:30", "16:00"),
                    ..Default::default()
                },
            ),
            clause(
                Running,
                "running",
                in_run(MachineConditions {
                    process_running: Some("twopm".into()),
                    ..Default::default()
                }),
            ),
            clause(
                Completed,
                "completed",
                in_run(MachineConditions {
                    file_exists: Some("/var/lib/twopm/twopm.success".into()),
                    ..Default::default()
                }),
            ),
            clause(
                Failed,
                "failed[0]",
                in_run(MachineConditions {
                    file_exists: Some("/var/lib/twopm/twopm.fail".into()),
                    ..Default::default()
                }),
            ),
        ],
    }
}

#[test]
fn twopm_goes_round_at_the_times_its_windows_say() {
    let mut machine = ElementMachine::new(twopm(), Standby, 0);
    let mut facts = Fake::default();
    facts.processes.insert("twopm".into());
    // 13:59 in New York (UTC-5 in December): the process runs, but the window is not open.
    assert!(
        machine
            .step("b1", &mut facts, ms("2026-12-02T18:59:30Z"))
            .is_none()
    );
    let running = machine
        .step("b1", &mut facts, ms("2026-12-02T19:00:00Z"))
        .unwrap();
    assert_eq!((running.from, running.to), (Standby, Running));
    assert_eq!(running.clause, "running");
    assert_eq!(running.message.as_deref(), Some("running fired"));
    assert_eq!(running.host, "b1");
    assert!(
        machine
            .step("b1", &mut facts, ms("2026-12-02T19:01:00Z"))
            .is_none()
    );
    facts.files.insert("/var/lib/twopm/twopm.success".into());
    let completed = machine
        .step("b1", &mut facts, ms("2026-12-02T19:05:00Z"))
        .unwrap();
    assert_eq!((completed.from, completed.to), (Running, Completed));
    assert!(
        machine
            .step("b1", &mut facts, ms("2026-12-02T20:00:00Z"))
            .is_none()
    );
    let standby = machine
        .step("b1", &mut facts, ms("2026-12-02T20:30:00Z"))
        .unwrap();
    assert_eq!((standby.from, standby.to), (Completed, Standby));
}

#[test]
fn both_markers_mean_failed_and_a_late_marker_is_not_seen() {
    let mut machine = ElementMachine::new(twopm(), Running, 1);
    let mut facts = Fake::default();
    facts.files.insert("/var/lib/twopm/twopm.success".into());
    facts.files.insert("/var/lib/twopm/twopm.fail".into());
    // After the window: neither clause holds.
    assert!(
        machine
            .step("b1", &mut facts, ms("2026-12-02T19:45:00Z"))
            .is_none()
    );
    let failed = machine
        .step("b1", &mut facts, ms("2026-12-03T19:10:00Z"))
        .unwrap();
    assert_eq!((failed.to, failed.clause.as_str()), (Failed, "failed[0]"));
}

#[test]
fn a_log_line_counts_only_after_the_element_entered_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("import.log");
    std::fs::write(&log, "ERROR before we watched\n").unwrap();
    let path = log.to_str().unwrap().to_owned();
    let element = PlannedElement {
        clauses: vec![
            clause(
                Running,
                "running",
                MachineConditions {
                    process_running: Some("import".into()),
                    ..Default::default()
                },
            ),
            clause(
                Failed,
                "failed[0]",
                MachineConditions {
                    log_match: Some(LogMatch {
                        path: path.clone(),
                        pattern: "ERROR|rejected".into(),
                    }),
                    ..Default::default()
                },
            ),
        ],
        ..twopm()
    };
    let mut machine = ElementMachine::new(element, Standby, 0);
    let mut facts = Fake::default();
    assert!(machine.step("b1", &mut facts, 1).is_none());
    facts.processes.insert("import".into());
    assert_eq!(machine.step("b1", &mut facts, 2).unwrap().to, Running);
    assert!(
        machine.step("b1", &mut facts, 3).is_none(),
        "the old line is not new"
    );
    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    writeln!(file, "vendor file rejected").unwrap();
    let failed = machine.step("b1", &mut facts, 4).unwrap();
    assert_eq!(failed.to, Failed);
}

#[test]
fn a_check_of_this_machine_is_a_fact() {
    let check = CheckId {
        namespace: "brokerage".into(),
        rule_set: "price-feed".into(),
        rule: "vendor-sftp".into(),
    };
    let element = PlannedElement {
        clauses: vec![clause(
            Running,
            "running",
            MachineConditions {
                check_state: Some(LocalCheckState {
                    check: check.clone(),
                    states: vec![CheckState::Critical],
                }),
                ..Default::default()
            },
        )],
        ..twopm()
    };
    let mut machine = ElementMachine::new(element, Standby, 0);
    let mut facts = Fake::default();
    assert!(machine.step("f1", &mut facts, 1).is_none(), "never ran");
    facts.checks.insert(check.clone(), CheckState::Ok);
    assert!(machine.step("f1", &mut facts, 2).is_none());
    facts.checks.insert(check, CheckState::Critical);
    assert_eq!(machine.step("f1", &mut facts, 3).unwrap().to, Running);
}

#[test]
fn a_plan_change_keeps_states_and_a_new_element_resumes_its_saved_one() {
    let mut machines = BTreeMap::new();
    let mut saved = BTreeMap::from([(
        "batch/twopm/twopm".to_owned(),
        Saved {
            state: Running,
            since_ms: 7,
        },
    )]);
    sync(&mut machines, &mut saved, &[twopm()]);
    assert_eq!(machines["batch/twopm/twopm"].state, Running);
    assert_eq!(machines["batch/twopm/twopm"].since_ms, 7);
    let mut changed = twopm();
    changed.clauses[0].message = Some("changed".into());
    sync(&mut machines, &mut saved, &[changed.clone()]);
    assert_eq!(machines["batch/twopm/twopm"].state, Running);
    assert_eq!(machines["batch/twopm/twopm"].planned(), &changed);
    sync(&mut machines, &mut saved, &[]);
    assert!(machines.is_empty());
    sync(&mut machines, &mut saved, &[changed]);
    assert_eq!(
        machines["batch/twopm/twopm"].state, Running,
        "an element back in the plan resumes"
    );
}

#[test]
fn states_survive_a_restart_through_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("element-states.json");
    let machines = BTreeMap::from([(
        "batch/twopm/twopm".to_owned(),
        ElementMachine::new(twopm(), Completed, 42),
    )]);
    save(&path, &machines, &BTreeMap::new());
    let loaded = load(&path);
    assert_eq!(
        loaded["batch/twopm/twopm"],
        Saved {
            state: Completed,
            since_ms: 42
        }
    );
    std::fs::write(&path, b"{not json").unwrap();
    assert!(load(&path).is_empty(), "a damaged file starts over");
}
