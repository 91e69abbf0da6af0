//! A check run from end to end: the probe or plugin, then the thresholds, then the condition,
//! with real files and real plugin processes.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use vedette_agent::nagios::exec::PluginRunner;
use vedette_agent::probe::Prober;
use vedette_agent::runner::{CheckRunner, CompiledCheck, Outcome};
use vedette_crds::CheckSpec;
use vedette_crds::check::{ExecProbe, FileMetric, FileProbe};
use vedette_crds::template::CheckState;

fn file_size_check(path: &Path) -> vedette_protocol::plan::PlannedCheck {
    let mut check = common::tcp_check("size", 9, 10);
    check.check = CheckSpec {
        file: Some(FileProbe {
            path: path.display().to_string(),
            metric: FileMetric::SizeBytes,
        }),
        ..CheckSpec::default()
    };
    check
}

fn plugin_check(program: &Path) -> vedette_protocol::plan::PlannedCheck {
    let mut check = common::tcp_check("plugin", 9, 10);
    check.timeout_seconds = 5;
    check.check = CheckSpec {
        exec: Some(ExecProbe {
            command: program.display().to_string(),
            args: Vec::new(),
        }),
        ..CheckSpec::default()
    };
    check
}

async fn run(planned: vedette_protocol::plan::PlannedCheck) -> Outcome {
    let compiled = CompiledCheck::compile(planned).expect("check compiles");
    CheckRunner::new(Prober::new(), PluginRunner::default())
        .run(&compiled)
        .await
}

fn plugin(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn a_probe_that_would_fail_on_every_run_is_refused_with_the_plan() {
    use vedette_crds::check::{HttpProbe, LoadProbe, LogProbe, PortOrParameter, TcpProbe};
    let log = CheckSpec {
        log: Some(LogProbe {
            path: "/var/log/app.log".into(),
            pattern: "error(".into(),
        }),
        ..CheckSpec::default()
    };
    let http = CheckSpec {
        http: Some(HttpProbe {
            url: "ftp://example.test/".into(),
            method: "GET".into(),
            expect_status: Vec::new(),
            body_match: None,
            verify_certificate: true,
            headers: Default::default(),
            reuse_connection: false,
            auth: None,
        }),
        ..CheckSpec::default()
    };
    let tcp = CheckSpec {
        tcp: Some(TcpProbe {
            host: "127.0.0.1".into(),
            port: PortOrParameter::Int(70_000),
            send: None,
            expect: None,
            close: Default::default(),
        }),
        ..CheckSpec::default()
    };
    let load = CheckSpec {
        load: Some(LoadProbe {
            period_minutes: 10,
            per_cpu: false,
        }),
        ..CheckSpec::default()
    };
    let cases = [
        (log, "bad pattern \"error(\""),
        (http, "is not http:// or https://"),
        (tcp, "port 70000 is not in 1-65535"),
        (load, "load period 10 is not 1, 5 or 15"),
    ];
    for (spec, expected) in cases {
        let mut check = common::tcp_check("bad", 9, 10);
        check.check = spec;
        let error = CompiledCheck::compile(check)
            .expect_err("refused")
            .to_string();
        assert!(
            error.starts_with("check test/net/bad: ") && error.contains(expected),
            "{error}"
        );
    }
}

#[tokio::test]
async fn thresholds_decide_a_probe_value() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data");
    std::fs::write(&file, vec![b'x'; 100]).unwrap();
    let cases = [
        (None, None, CheckState::Ok),
        (Some("50"), Some("200"), CheckState::Warning),
        (Some("50"), Some("80"), CheckState::Critical),
        (Some("@0:99"), None, CheckState::Ok),
        (Some("@100:200"), None, CheckState::Warning),
        (None, Some("~:100"), CheckState::Ok),
    ];
    for (warning, critical, expected) in cases {
        let mut check = file_size_check(&file);
        check.warning = warning.map(str::to_owned);
        check.critical = critical.map(str::to_owned);
        let outcome = run(check).await;
        assert_eq!(
            outcome.state, expected,
            "warning {warning:?}, critical {critical:?}: {}",
            outcome.output
        );
    }
}

#[tokio::test]
async fn a_false_condition_gives_the_condition_state_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data");
    std::fs::write(&file, vec![b'x'; 100]).unwrap();
    let mut check = file_size_check(&file);
    check.condition = Some("value < 50.0".into());
    check.condition_state = CheckState::Warning;
    let outcome = run(check.clone()).await;
    assert_eq!(outcome.state, CheckState::Warning, "{}", outcome.output);
    assert!(
        outcome.output.contains("condition value < 50.0 is false"),
        "{}",
        outcome.output
    );

    check.condition = Some("value > 50.0 && output.contains('exists')".into());
    let outcome = run(check.clone()).await;
    assert_eq!(outcome.state, CheckState::Ok, "{}", outcome.output);

    // Evaluating a missing perfdata label is UNKNOWN with the reason, not a silent OK.
    check.condition = Some("perfdata['nope'] > 1.0".into());
    let outcome = run(check).await;
    assert_eq!(outcome.state, CheckState::Unknown, "{}", outcome.output);
}

#[tokio::test]
async fn thresholds_on_a_plugin_can_only_make_its_state_worse() {
    let dir = tempfile::tempdir().unwrap();
    let used = plugin(
        dir.path(),
        "used",
        "echo 'DISK OK - fine | used=90%;;;0;100'; exit 0",
    );
    let failing = plugin(
        dir.path(),
        "failing",
        "echo 'DISK CRITICAL - full | used=10%'; exit 2",
    );
    let silent = plugin(dir.path(), "silent", "echo 'OK - no data'; exit 0");

    let outcome = run(plugin_check(&used)).await;
    assert_eq!(outcome.state, CheckState::Ok, "{}", outcome.output);
    assert_eq!(outcome.perfdata, vec![("used".into(), 90.0, "%".into())]);

    let mut check = plugin_check(&used);
    check.warning = Some("70".into());
    check.critical = Some("80".into());
    let outcome = run(check).await;
    assert_eq!(outcome.state, CheckState::Critical, "{}", outcome.output);
    assert!(
        outcome
            .output
            .contains("value 90 is CRITICAL by the thresholds"),
        "{}",
        outcome.output
    );

    // The plugin's own CRITICAL stands even though its value is within the thresholds.
    let mut check = plugin_check(&failing);
    check.warning = Some("70".into());
    let outcome = run(check).await;
    assert_eq!(outcome.state, CheckState::Critical, "{}", outcome.output);
    assert_eq!(outcome.output, "DISK CRITICAL - full");

    let mut check = plugin_check(&silent);
    check.critical = Some("80".into());
    let outcome = run(check).await;
    assert_eq!(outcome.state, CheckState::Unknown, "{}", outcome.output);
    assert!(
        outcome.output.contains("no performance data"),
        "{}",
        outcome.output
    );
}

#[tokio::test]
async fn thresholds_on_a_malformed_first_datum_are_unknown_not_the_next_datums() {
    let dir = tempfile::tempdir().unwrap();
    for (name, perfdata) in [("reversed", "v=50;2:1 w=6"), ("comma", "v=10,5 w=6")] {
        let program = plugin(dir.path(), name, &format!("echo 'OK | {perfdata}'; exit 0"));
        let mut check = plugin_check(&program);
        check.critical = Some("10".into());
        let outcome = run(check).await;
        assert_eq!(
            outcome.state,
            CheckState::Unknown,
            "{perfdata}: {outcome:?}"
        );
        assert!(
            outcome
                .output
                .contains("the thresholds' performance datum could not be read"),
            "{perfdata}: {}",
            outcome.output
        );
        let labels: Vec<&str> = outcome.perfdata.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(labels, ["w"], "the readable item is still kept");
    }
}
