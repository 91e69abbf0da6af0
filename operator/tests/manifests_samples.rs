//! The samples parse into Vedette's Rust types offline, and a bad document is reported by file,
//! document and field while the good ones are kept.

use std::path::{Path, PathBuf};

use vedette_operator::manifests::{self, Loaded, Object};

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/samples")
}

#[test]
fn every_sample_parses_into_its_type() {
    let loaded = manifests::load_paths(&[samples()]).expect("samples are readable");
    assert!(
        loaded.problems.is_empty(),
        "problems: {:#?}",
        loaded.problems
    );
    let count = |f: fn(&Object) -> bool| loaded.objects.iter().filter(|o| f(o)).count();
    assert_eq!(count(|o| matches!(o, Object::Zone(_))), 2);
    assert_eq!(count(|o| matches!(o, Object::Template(_))), 9);
    assert_eq!(count(|o| matches!(o, Object::RuleSet(_))), 3);
    assert_eq!(count(|o| matches!(o, Object::Process(_))), 2);
}

#[test]
fn twopm_has_the_four_rules_of_seed_003() {
    let loaded = manifests::load_paths(&[samples().join("30-twopm.yaml")]).unwrap();
    let Some(Object::Process(process)) = loaded.objects.first() else {
        panic!("no process")
    };
    let element = &process.spec.elements[0];
    let window = |c: &vedette_crds::process::Clause| {
        c.when
            .time_window
            .as_ref()
            .map(|w| (w.start.clone(), w.end.clone()))
    };
    assert_eq!(
        window(&element.standby),
        Some(("15:30".into(), "16:00".into()))
    );
    assert_eq!(
        window(&element.running),
        Some(("14:00".into(), "14:30".into()))
    );
    assert_eq!(
        element.running.when.process_running.as_deref(),
        Some("twopm")
    );
    assert!(
        element
            .completed
            .when
            .file_exists
            .as_deref()
            .unwrap()
            .ends_with("twopm.success")
    );
    assert!(
        element.failed[0]
            .when
            .file_exists
            .as_deref()
            .unwrap()
            .ends_with("twopm.fail")
    );
}

#[test]
fn a_bad_document_is_named_and_the_good_ones_are_kept() {
    let text = r#"
apiVersion: vedette.dev/v1alpha1
kind: CheckTemplate
metadata: {name: good, namespace: a}
spec:
  check: {cpu: {}}
---
apiVersion: vedette.dev/v1alpha1
kind: CheckTemplate
metadata: {name: typo, namespace: a}
spec:
  check: {cpu: {}}
  intervalSecs: 30
---
apiVersion: v1
kind: ConfigMap
metadata: {name: other}
"#;
    let mut loaded = Loaded::default();
    manifests::load_text("inline.yaml", text, &mut loaded);
    assert_eq!(
        loaded.objects.len(),
        1,
        "the good template is kept, the ConfigMap skipped"
    );
    assert_eq!(loaded.problems.len(), 1);
    let problem = &loaded.problems[0];
    assert!(
        problem.contains("inline.yaml: document 2") && problem.contains("intervalSecs"),
        "{problem}"
    );
}
