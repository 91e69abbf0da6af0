//! Checks on cycles (`everyCycles`): each zone gives them its own period, rules override the
//! template's schedule either way, an interval and cycles together are refused, and a check
//! whose timeout does not fit a zone's period is left out of that zone only.

mod common;

use common::{checks_of, machine, messages, rule_set, template, with_reason, zone};
use vedette_operator::compile::{Input, ObjectRef, Output, Reason, compile};
use vedette_protocol::plan::{PlannedCheck, plan_for};

const SLOW: &str = r#"
check: {disk: {mountPoint: /}}
everyCycles: 5
timeoutSeconds: 40
"#;

const STEADY: &str = r#"
check: {cpu: {}}
intervalSeconds: 30
retryIntervalSeconds: 10
timeoutSeconds: 5
"#;

/// Zone `core` (cycles of `core_cycle` s) holds m1, zone `edge` (cycles of 10 s) holds m2;
/// rule set `infra/base` runs `rules` on both.
fn world(core_cycle: u32, rules: &str) -> Input {
    Input {
        zones: vec![
            zone(
                "core",
                &format!(
                    "nodeSelector: {{matchLabels: {{site: core}}}}\nagents: {{cycleSeconds: {core_cycle}}}"
                ),
            ),
            zone(
                "edge",
                "nodeSelector: {matchLabels: {site: edge}}\nagents: {cycleSeconds: 10}",
            ),
        ],
        templates: vec![
            template("infra", "slow", SLOW),
            template("infra", "steady", STEADY),
        ],
        rule_sets: vec![rule_set(
            "infra",
            "base",
            &format!("machines: {{nodeSelector: {{}}}}\nrules:\n{rules}"),
        )],
        processes: Vec::new(),
        notifications: Vec::new(),
        machines: vec![
            machine("m1", &[("site", "core")]),
            machine("m2", &[("site", "edge")]),
        ],
    }
}

fn check<'a>(output: &'a Output, zone: &str, rule: &str) -> &'a PlannedCheck {
    output.bundles[zone]
        .checks
        .iter()
        .find(|c| c.id.rule == rule)
        .unwrap_or_else(|| panic!("{rule} in {zone}: {:#?}", output.diagnostics))
}

fn timing(check: &PlannedCheck) -> (Option<u32>, u32, u32) {
    (
        check.every_cycles,
        check.interval_seconds,
        check.retry_interval_seconds,
    )
}

#[test]
fn each_zone_gives_a_check_on_cycles_its_own_period() {
    let output = compile(&world(60, "  - {name: disk, template: {name: slow}}"));
    assert!(output.diagnostics.is_empty(), "{:#?}", output.diagnostics);
    assert_eq!(timing(check(&output, "core", "disk")), (Some(5), 300, 300));
    assert_eq!(timing(check(&output, "edge", "disk")), (Some(5), 50, 50));
    assert_eq!(output.bundles["edge"].settings.cycle_seconds, 10);
    for (zone, host) in [("core", "m1"), ("edge", "m2")] {
        let plan = plan_for(&output.bundles[zone], host).expect("machine in zone");
        assert_eq!(plan.validate(), Ok(()), "{zone}");
    }
}

#[test]
fn a_rule_overrides_the_templates_schedule_either_way() {
    let output = compile(&world(
        60,
        "  - {name: disk, template: {name: slow}, intervalSeconds: 120}\n  - {name: cpu, template: {name: steady}, everyCycles: 2}",
    ));
    assert!(output.diagnostics.is_empty(), "{:#?}", output.diagnostics);
    assert_eq!(timing(check(&output, "core", "disk")), (None, 120, 120));
    assert_eq!(
        timing(check(&output, "core", "cpu")),
        (Some(2), 120, 10),
        "the template's own retry interval is kept"
    );
}

#[test]
fn a_template_without_interval_or_cycles_runs_every_minute() {
    let mut input = world(60, "  - {name: cpu, template: {name: steady}}");
    input.templates[1] = template("infra", "steady", "check: {cpu: {}}");
    let output = compile(&input);
    assert_eq!(timing(check(&output, "core", "cpu")), (None, 60, 60));
}

#[test]
fn an_interval_and_cycles_together_are_refused() {
    let mut input = world(
        60,
        "  - {name: cpu, template: {name: steady}, intervalSeconds: 60, everyCycles: 2}\n  - {name: disk, template: {name: both}}",
    );
    input.templates.push(template(
        "infra",
        "both",
        &format!("{SLOW}intervalSeconds: 300\n"),
    ));
    let output = compile(&input);
    let refused = with_reason(&output, Reason::InvalidTiming);
    let text: Vec<String> = refused
        .iter()
        .map(|d| format!("{}: {}", d.object, d.message))
        .collect();
    assert_eq!(
        text,
        [
            "CheckTemplate infra/both: intervalSeconds and everyCycles are mutually exclusive: a check runs on its own interval or on its zone's cycles",
            "RuleSet infra/base: rule cpu: intervalSeconds and everyCycles are mutually exclusive: a rule runs its check on its own interval or on its zone's cycles",
        ]
    );
    assert!(checks_of(&output, "core", "m1").is_empty());
}

#[test]
fn a_timeout_that_does_not_fit_a_zones_period_leaves_the_check_out_of_that_zone_only() {
    let output = compile(&world(
        60,
        "  - {name: disk, template: {name: slow}}\n  - {name: quick, template: {name: slow}, everyCycles: 4}",
    ));
    assert_eq!(
        messages(&output, Reason::InvalidTiming),
        [
            "rule quick in zone edge: timeoutSeconds 40 must be shorter than everyCycles 4 × cycleSeconds 10 = 40"
        ]
    );
    assert_eq!(
        with_reason(&output, Reason::InvalidTiming)[0].object,
        ObjectRef::rule_set("infra", "base")
    );
    assert_eq!(
        checks_of(&output, "core", "m1"),
        ["infra/base/disk", "infra/base/quick"]
    );
    assert_eq!(checks_of(&output, "edge", "m2"), ["infra/base/disk"]);
    let plan = plan_for(&output.bundles["edge"], "m2").unwrap();
    assert_eq!(plan.validate(), Ok(()));
    // The rule set's status counts what runs: two checks on m1, one on m2.
    let summary = &output.rule_sets["infra/base"];
    assert_eq!((summary.machines, summary.rules, summary.checks), (2, 2, 3));
}

#[test]
fn a_remote_check_on_cycles_follows_its_zone() {
    let mut input = world(60, "  - {name: cpu, template: {name: steady}}");
    input.zones[1] = zone(
        "edge",
        "nodeSelector: {matchLabels: {site: edge}}\nagents: {cycleSeconds: 5}\nsatellites:\n  remoteChecks:\n    - {name: far-disk, targets: [a.example], template: {name: slow, namespace: infra}}",
    );
    let output = compile(&input);
    assert_eq!(
        messages(&output, Reason::InvalidTiming),
        [
            "remote check far-disk: timeoutSeconds 40 must be shorter than everyCycles 5 × cycleSeconds 5 = 25"
        ]
    );
    assert!(output.bundles["edge"].remote.is_empty());
    assert!(
        output.bundles["edge"]
            .checks
            .iter()
            .all(|c| c.id.rule != "far-disk")
    );
}
