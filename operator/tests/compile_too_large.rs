//! A check too large for a bundle shard (a 230 KB parameter value) is left out of its zone with
//! an error on its rule set and a warning on the zone; the rest of the zone's bundle is still
//! published and shards, and the counts are of what is published.

mod common;

use common::{machine, rule_set, template, with_reason, zone};
use vedette_operator::compile::{Input, Reason, compile};
use vedette_protocol::bundle_shards::write_shards;

#[test]
fn a_check_too_large_for_a_shard_is_left_out_and_the_rest_of_the_zone_is_published() {
    let huge = "x".repeat(230 * 1024);
    let input = Input {
        zones: vec![zone("all", "nodeSelector: {}")],
        templates: vec![template(
            "lib",
            "grep",
            "parameters: [{name: pattern, type: string, required: true}]\n\
             check: {log: {path: /var/log/app.log, pattern: $pattern$}}",
        )],
        rule_sets: vec![rule_set(
            "app",
            "logs",
            &format!(
                "machines: {{nodeSelector: {{}}}}\nrules:\n\
                 - {{name: small, template: {{name: grep, namespace: lib}}, parameters: {{pattern: ERROR}}}}\n\
                 - {{name: huge, template: {{name: grep, namespace: lib}}, parameters: {{pattern: {huge}}}}}\n"
            ),
        )],
        processes: Vec::new(),
        notifications: Vec::new(),
        machines: vec![machine("m0", &[("role", "web")])],
    };
    let output = compile(&input);
    let bundle = &output.bundles["all"];
    let rules: Vec<&str> = bundle.checks.iter().map(|c| c.id.rule.as_str()).collect();
    assert_eq!(rules, ["small"], "only the check that fits is published");
    assert!(
        write_shards(bundle, vedette_protocol::bundle_shards::SHARD_DATA_BYTES).is_ok(),
        "the rest of the zone's bundle shards"
    );
    let problems = with_reason(&output, Reason::TooLarge);
    let on = |kind: &str| {
        problems
            .iter()
            .filter(|d| d.object.kind == kind)
            .map(|d| d.message.clone())
            .collect::<Vec<_>>()
    };
    let rule_set_problems = on("RuleSet");
    assert_eq!(rule_set_problems.len(), 1, "{problems:?}");
    assert!(
        rule_set_problems[0].starts_with("rule huge in zone all: check app/logs/huge takes ")
            && rule_set_problems[0].contains("more than the"),
        "{rule_set_problems:?}"
    );
    assert_eq!(
        on("MonitorZone").len(),
        1,
        "the zone is told too: {problems:?}"
    );
    assert_eq!(
        output.zones["all"].checks, 1,
        "the zone counts what it publishes"
    );
}
