//! The offline commands gate a pipeline: `validate` and `plan` exit non-zero when compile
//! reports an error, naming it, and zero on the samples.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_vedette-operator");

/// A zone, a template, and a rule set whose second rule names a template that does not exist.
const BROKEN: &str = r#"apiVersion: vedette.dev/v1alpha1
kind: MonitorZone
metadata: {name: local}
spec: {nodeSelector: {}}
---
apiVersion: vedette.dev/v1alpha1
kind: CheckTemplate
metadata: {name: port-open, namespace: probes}
spec:
  check: {tcp: {host: 127.0.0.1, port: 80}}
---
apiVersion: vedette.dev/v1alpha1
kind: RuleSet
metadata: {name: local, namespace: probes}
spec:
  machines: {nodeSelector: {}}
  rules:
    - {name: port, template: {name: port-open}}
    - {name: typo, template: {name: port-opne}}
"#;

fn run(args: &[&str], manifests: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("-f")
        .arg(manifests)
        .output()
        .expect("run vedette-operator")
}

fn samples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/samples")
}

#[test]
fn validate_passes_the_samples_and_fails_on_a_compile_error_naming_it() {
    let good = run(&["validate"], &samples());
    assert!(good.status.success(), "{good:?}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    std::fs::write(&path, BROKEN).unwrap();
    let bad = run(&["validate"], &path);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("UnknownTemplate") && stderr.contains("port-opne"),
        "{stderr}"
    );
}

#[test]
fn plan_prints_what_compiles_and_exits_non_zero_on_a_compile_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    std::fs::write(&path, BROKEN).unwrap();
    let output = run(&["plan", "--host", "m1"], &path);
    assert!(!output.status.success());
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).expect("the plan");
    let rules: Vec<&str> = plan["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"]["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["port"], "the valid rule is planned");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("1 error"), "{stderr}");
}

#[test]
fn validate_names_a_yaml_syntax_error_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stray-quote.yaml");
    std::fs::write(&path, format!("\"{BROKEN}")).unwrap();
    // A hang here was the defect: the command is killed after a minute rather than holding
    // the suite.
    let mut child = Command::new(BIN)
        .args(["validate", "-f"])
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run vedette-operator");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("validate did not return on a YAML syntax error");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let bad = child.wait_with_output().unwrap();
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("stray-quote.yaml") && stderr.contains("document 1"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("document 1").count(), 1, "{stderr}");
}
