//! One definition of a valid plan: over generated templates (thresholds, conditions, timings,
//! probes, from values that are fine and values that are not), every check compile publishes
//! is one the agent runs — none is refused by `ActivePlan::new` — and a template compile
//! refuses never reaches a plan.

mod common;

use common::{machine, rule_set, template, zone};
use proptest::prelude::*;
use vedette_agent::node::plan_keeper::ActivePlan;
use vedette_operator::compile::{Input, compile};
use vedette_protocol::plan::plan_for;

/// Thresholds as users write them, good and bad.
const RANGES: [&str; 16] = [
    "10", "10:", "~:10", "10:20", "@10:20", "20:10", "@", "~", "", "1e3", "abc", "10,5", ":",
    "-5:-1", "@~:0", "1:2:3",
];
/// Conditions, good and bad.
const CONDITIONS: [&str; 8] = [
    "value < 90.0",
    "state == 'OK'",
    "output.contains('ok')",
    "value <",
    "1 + 'a'",
    "perfdata.size() > 0",
    "undefined_variable > 1",
    "true",
];
/// Probes, good and bad.
const PROBES: [&str; 5] = [
    "{cpu: {}}",
    "{tcp: {port: 80}}",
    "{http: {url: 'http://127.0.0.1:1/'}}",
    "{log: {path: /var/log/x.log, pattern: '('}}",
    "{exec: {command: check_dummy, args: ['0']}}",
];

#[derive(Debug, Clone)]
struct Shape {
    warning: Option<&'static str>,
    critical: Option<&'static str>,
    condition: Option<&'static str>,
    probe: &'static str,
    interval: u32,
    timeout: u32,
    attempts: u32,
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        prop::option::of(prop::sample::select(RANGES.to_vec())),
        prop::option::of(prop::sample::select(RANGES.to_vec())),
        prop::option::of(prop::sample::select(CONDITIONS.to_vec())),
        prop::sample::select(PROBES.to_vec()),
        0u32..120,
        0u32..120,
        0u32..4,
    )
        .prop_map(
            |(warning, critical, condition, probe, interval, timeout, attempts)| Shape {
                warning,
                critical,
                condition,
                probe,
                interval,
                timeout,
                attempts,
            },
        )
}

fn template_yaml(shape: &Shape) -> String {
    let mut yaml = format!(
        "check: {}\nintervalSeconds: {}\ntimeoutSeconds: {}\nmaxAttempts: {}\n",
        shape.probe, shape.interval, shape.timeout, shape.attempts
    );
    for (field, value) in [
        ("warning", shape.warning),
        ("critical", shape.critical),
        ("condition", shape.condition),
    ] {
        if let Some(value) = value {
            yaml.push_str(&format!("{field}: {value:?}\n"));
        }
    }
    yaml
}

fn world(shapes: &[Shape]) -> Option<Input> {
    let mut templates = Vec::new();
    let mut rules = String::from("machines: {nodeSelector: {}}\nrules:\n");
    for (i, shape) in shapes.iter().enumerate() {
        // A template the CRD's own schema would refuse (serde) is not a world to compile.
        let spec: serde_yaml::Value = serde_yaml::from_str(&template_yaml(shape)).ok()?;
        serde_yaml::from_value::<vedette_crds::template::CheckTemplateSpec>(spec).ok()?;
        templates.push(template("lib", &format!("t{i}"), &template_yaml(shape)));
        rules.push_str(&format!(
            "  - {{name: r{i}, template: {{name: t{i}, namespace: lib}}}}\n"
        ));
    }
    Some(Input {
        zones: vec![zone("all", "nodeSelector: {}")],
        templates,
        rule_sets: vec![rule_set("app", "checks", &rules)],
        processes: Vec::new(),
        notifications: Vec::new(),
        machines: vec![machine("m0", &[("role", "web")])],
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn every_check_compile_publishes_is_one_the_agent_runs(
        shapes in prop::collection::vec(shape(), 1..6)
    ) {
        let Some(input) = world(&shapes) else {
            return Ok(());
        };
        let output = compile(&input);
        for bundle in output.bundles.values() {
            for host in bundle.machines.keys() {
                let plan = plan_for(bundle, host).expect("a machine of the bundle");
                prop_assert_eq!(plan.validate(), Ok(()));
                let active = ActivePlan::new(plan).expect("a published plan is readable");
                prop_assert!(
                    active.refused.is_empty(),
                    "compile published checks the agent refuses: {:?}\ntemplates: {:?}",
                    active.refused,
                    shapes
                );
            }
        }
    }
}

#[test]
fn a_check_the_agents_would_refuse_is_left_out_with_the_reason_and_a_good_one_is_published() {
    let good = Shape {
        warning: Some("10:20"),
        critical: None,
        condition: Some("value < 90.0"),
        probe: "{cpu: {}}",
        interval: 60,
        timeout: 10,
        attempts: 3,
    };
    let refused = Shape {
        attempts: 0,
        ..good.clone()
    };
    let input = world(&[good, refused]).expect("both templates read");
    let output = compile(&input);
    let plan = plan_for(&output.bundles["all"], "m0").expect("m0 has a plan");
    let rules: Vec<&str> = plan.checks.iter().map(|c| c.id.rule.as_str()).collect();
    assert_eq!(rules, ["r0"], "only the runnable check is published");
    let messages: Vec<&str> =
        common::with_reason(&output, vedette_operator::compile::Reason::Unrunnable)
            .iter()
            .map(|d| d.message.as_str())
            .collect();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(
        messages[0].contains("rule r1 in zone all: agents would refuse it")
            && messages[0].contains("maxAttempts must be at least 1"),
        "{messages:?}"
    );
}
