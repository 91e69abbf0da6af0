//! Every problem compile reports, with its exact message, and that a rule with a problem is
//! left out while the rest still compiles.

mod common;

use common::{machine, messages, process, rule_set, template, with_reason, zone};
use vedette_operator::compile::{Input, ObjectRef, Reason, Severity, compile};

const HTTP_CHECK: &str = r#"
parameters:
  - {name: url, type: string, required: true}
  - {name: port, type: int, default: 80, minimum: 1, maximum: 65535}
  - {name: warn, type: float, default: 1, minimum: 0}
  - {name: crit, type: float, default: 2, minimum: 0}
check:
  tcp: {port: $port$}
warning: $warn$
critical: $crit$
intervalSeconds: 30
timeoutSeconds: 5
"#;

const CPU: &str = r#"
parameters:
  - {name: warn, type: float, default: 85, minimum: 0, maximum: 100}
  - {name: crit, type: float, default: 95, minimum: 0, maximum: 100}
check: {cpu: {}}
warning: $warn$
critical: $crit$
"#;

fn world(rules: &str) -> Input {
    Input {
        zones: vec![zone("core", "nodeSelector: {}")],
        templates: vec![
            template("web", "http-check", HTTP_CHECK),
            template("infrastructure", "cpu", CPU),
        ],
        rule_sets: vec![rule_set(
            "web",
            "site",
            &format!("machines: {{nodeSelector: {{}}}}\nrules:\n{rules}"),
        )],
        processes: Vec::new(),
        notifications: Vec::new(),
        machines: vec![machine("m1", &[])],
    }
}

fn only(output: &vedette_operator::compile::Output, reason: Reason) -> String {
    let found = messages(output, reason);
    assert_eq!(found.len(), 1, "{reason}: {:#?}", output.diagnostics);
    found[0].clone()
}

#[test]
fn an_unknown_template_is_named_with_its_namespace() {
    let output = compile(&world(
        "  - {name: cpu, template: {name: cpu-usage, namespace: infrastructure}}",
    ));
    assert_eq!(
        only(&output, Reason::UnknownTemplate),
        "rule cpu: template infrastructure/cpu-usage not found"
    );
    let diagnostic = with_reason(&output, Reason::UnknownTemplate)[0];
    assert_eq!(diagnostic.object, ObjectRef::rule_set("web", "site"));
    assert_eq!(diagnostic.severity, Severity::Error);
}

#[test]
fn a_value_of_the_wrong_type_names_type_range_and_value() {
    let output = compile(&world(
        "  - {name: web, template: {name: http-check}, parameters: {url: x, port: abc}}",
    ));
    assert_eq!(
        only(&output, Reason::InvalidParameter),
        "rule web: template web/http-check: parameter port: expected int 1–65535, got \"abc\""
    );
    let output = compile(&world(
        "  - {name: web, template: {name: http-check}, parameters: {url: x, warn: -1}}",
    ));
    assert_eq!(
        only(&output, Reason::InvalidParameter),
        "rule web: template web/http-check: parameter warn: expected float ≥ 0, got -1"
    );
}

#[test]
fn a_missing_required_parameter_is_reported() {
    let output = compile(&world("  - {name: homepage, template: {name: http-check}}"));
    assert_eq!(
        only(&output, Reason::MissingParameter),
        "rule homepage: template web/http-check: parameter url is required"
    );
}

#[test]
fn an_unknown_parameter_lists_what_the_template_has() {
    let output = compile(&world(
        "  - {name: x, template: {name: cpu, namespace: infrastructure}, parameters: {colour: red}}",
    ));
    assert_eq!(
        only(&output, Reason::UnknownParameter),
        "rule x: template infrastructure/cpu: unknown parameter colour (template has: warn, crit)"
    );
}

#[test]
fn a_rule_with_an_error_is_skipped_and_the_others_still_compile() {
    let output = compile(&world(
        "  - {name: bad, template: {name: http-check}}\n  - {name: good, template: {name: http-check}, parameters: {url: x}}",
    ));
    assert_eq!(common::checks_of(&output, "core", "m1"), ["web/site/good"]);
    assert_eq!(output.rule_sets["web/site"].rules, 1);
}

#[test]
fn template_problems_are_reported_on_the_template() {
    let spec = r#"
parameters:
  - {name: url, type: string, required: true, default: "http://x/"}
  - {name: port, type: int, default: 0, minimum: 1, maximum: 65535}
  - {name: low, type: float, minimum: 5, maximum: 1, default: 3}
check:
  http: {url: "$url$:$port$/$path$"}
warning: $level$
timeoutSeconds: 60
intervalSeconds: 30
"#;
    let input = Input {
        templates: vec![template("web", "broken", spec)],
        ..Input::default()
    };
    let output = compile(&input);
    let object = ObjectRef::template("web", "broken");
    assert!(output.diagnostics.iter().all(|d| d.object == object));
    assert_eq!(
        messages(&output, Reason::InvalidParameterSpec),
        [
            "parameter low: minimum 5 exceeds maximum 1",
            "parameter url: required parameters cannot have a default",
        ]
    );
    assert_eq!(
        messages(&output, Reason::InvalidParameter),
        [
            "parameter low: default: expected float 5–1, got 3",
            "parameter port: default: expected int 1–65535, got 0"
        ]
    );
    assert_eq!(
        messages(&output, Reason::UndeclaredParameter),
        [
            "check.http.url uses $path$, which is not a declared parameter",
            "warning uses $level$, which is not a declared parameter"
        ]
    );
    assert_eq!(
        messages(&output, Reason::InvalidTiming),
        ["timeoutSeconds 60 must be shorter than intervalSeconds 30"]
    );
}

#[test]
fn a_rule_on_an_invalid_template_says_so() {
    let mut input = world("  - {name: x, template: {name: broken}}");
    input.templates.push(template(
        "web",
        "broken",
        "check: {cpu: {}}\nwarning: $nope$",
    ));
    let output = compile(&input);
    assert_eq!(
        only(&output, Reason::InvalidTemplate),
        "rule x: template web/broken is invalid (see its diagnostics)"
    );
}

#[test]
fn a_threshold_that_is_no_range_after_substitution_is_reported() {
    let mut input =
        world("  - {name: t, template: {name: text-threshold}, parameters: {level: high}}");
    input.templates.push(template(
        "web",
        "text-threshold",
        "parameters: [{name: level, type: string}]\ncheck: {cpu: {}}\nwarning: $level$",
    ));
    let output = compile(&input);
    assert_eq!(
        only(&output, Reason::InvalidThreshold),
        "rule t: warning \"high\" is not a Nagios range"
    );
}

#[test]
fn a_range_the_agent_would_refuse_is_refused_here_with_the_agents_reason() {
    let mut input = world("  - {name: backwards, template: {name: reversed}}");
    input.templates.push(template(
        "web",
        "reversed",
        "check: {cpu: {}}\nwarning: \"10:5\"",
    ));
    let output = compile(&input);
    assert_eq!(
        only(&output, Reason::InvalidThreshold),
        "rule backwards: warning: range \"10:5\": start 10 is greater than end 5"
    );
    assert!(
        output
            .bundles
            .values()
            .all(|bundle| bundle.checks.is_empty()),
        "the check is not published"
    );
}

#[test]
fn a_rule_interval_not_longer_than_the_timeout_is_reported() {
    let output = compile(&world(
        "  - {name: fast, template: {name: http-check}, parameters: {url: x}, intervalSeconds: 5}",
    ));
    assert_eq!(
        only(&output, Reason::InvalidTiming),
        "rule fast: intervalSeconds 5 must be longer than the template's timeoutSeconds 5"
    );
}

#[test]
fn a_value_may_hold_host_but_no_other_parameter() {
    let output = compile(&world(
        "  - {name: w, template: {name: http-check}, parameters: {url: \"http://$host$/$x$\"}}",
    ));
    assert_eq!(
        only(&output, Reason::InvalidParameter),
        "rule w: parameter url: value \"http://$host$/$x$\" uses $x$; only $host$ may appear in values"
    );
}

#[test]
fn a_selector_that_matches_nothing_is_a_warning() {
    let mut input = world("  - {name: cpu, template: {name: cpu, namespace: infrastructure}}");
    input.rule_sets.push(rule_set(
        "web",
        "nobody",
        "machines: {nodeSelector: {matchLabels: {tier: none}}, zones: [nowhere]}\nrules: [{name: cpu, template: {name: cpu, namespace: infrastructure}}]",
    ));
    let output = compile(&input);
    let nothing = with_reason(&output, Reason::SelectorMatchesNothing);
    assert_eq!(nothing.len(), 1);
    assert_eq!(nothing[0].object, ObjectRef::rule_set("web", "nobody"));
    assert_eq!(nothing[0].severity, Severity::Warning);
    assert_eq!(nothing[0].message, "machines: selects no machine");
    assert_eq!(
        only(&output, Reason::UnknownZone),
        "machines.zones: zone nowhere does not exist"
    );
}

#[test]
fn an_invalid_selector_operator_is_reported() {
    let mut input = world("  - {name: cpu, template: {name: cpu, namespace: infrastructure}}");
    input.rule_sets[0] = rule_set(
        "web",
        "site",
        "machines: {nodeSelector: {matchExpressions: [{key: a, operator: Gt, values: ['1']}]}}\nrules: [{name: cpu, template: {name: cpu, namespace: infrastructure}}]",
    );
    let output = compile(&input);
    assert_eq!(
        only(&output, Reason::InvalidSelector),
        "machines.nodeSelector: matchExpressions key a: unknown operator \"Gt\" (use In, NotIn, Exists or DoesNotExist)"
    );
}

#[test]
fn machines_outside_every_zone_are_reported() {
    let mut input = world("  - {name: cpu, template: {name: cpu, namespace: infrastructure}}");
    input.zones = vec![zone("dmz", "nodeSelector: {matchLabels: {zone: dmz}}")];
    input.machines.push(machine("m2", &[]));
    let output = compile(&input);
    assert_eq!(
        only(&output, Reason::MachinesWithoutZone),
        "2 machines selected but in no zone, so not monitored: m1, m2"
    );
}

#[test]
fn zone_parents_must_exist_and_form_no_cycle() {
    let input = Input {
        zones: vec![
            zone("b", "nodeSelector: {}\nparentZone: a"),
            zone("a", "nodeSelector: {}\nparentZone: b"),
            zone("c", "nodeSelector: {}\nparentZone: a"),
            zone("d", "nodeSelector: {}\nparentZone: nowhere"),
            zone("e", "nodeSelector: {}\nparentZone: e"),
        ],
        ..Input::default()
    };
    let output = compile(&input);
    assert_eq!(
        messages(&output, Reason::ZoneCycle),
        // Every member of a cycle is flagged, its message starting at that member.
        [
            "parentZone forms a cycle: a -> b -> a",
            "parentZone forms a cycle: b -> a -> b",
            "parentZone forms a cycle: e -> e"
        ]
    );
    let flagged: Vec<ObjectRef> = with_reason(&output, Reason::ZoneCycle)
        .iter()
        .map(|d| d.object.clone())
        .collect();
    assert_eq!(
        flagged,
        [
            ObjectRef::zone("a"),
            ObjectRef::zone("b"),
            ObjectRef::zone("e")
        ]
    );
    assert_eq!(
        only(&output, Reason::UnknownZone),
        "parentZone nowhere does not exist"
    );
}

#[test]
fn overlapping_zones_pick_the_most_specific_then_the_first_name() {
    let input = Input {
        zones: vec![
            zone("all", "nodeSelector: {}"),
            zone("dmz", "nodeSelector: {matchLabels: {zone: dmz}}"),
            zone(
                "edge",
                "nodeSelector: {matchExpressions: [{key: zone, operator: In, values: [dmz]}]}",
            ),
        ],
        machines: vec![
            machine("d1", &[("zone", "dmz")]),
            machine("d2", &[("zone", "dmz")]),
            machine("x", &[]),
        ],
        ..Input::default()
    };
    let output = compile(&input);
    assert_eq!(
        output.bundles["dmz"].machines.keys().collect::<Vec<_>>(),
        ["d1", "d2"]
    );
    assert_eq!(
        output.bundles["all"].machines.keys().collect::<Vec<_>>(),
        ["x"]
    );
    assert!(output.bundles["edge"].machines.is_empty());
    let overlaps = with_reason(&output, Reason::OverlappingZones);
    let pairs: Vec<(String, String)> = overlaps
        .iter()
        .map(|d| (d.object.name.clone(), d.message.clone()))
        .collect();
    assert_eq!(
        pairs,
        [
            (
                "all".to_owned(),
                "2 machines also selected by zone dmz, which is preferred: d1, d2".to_owned()
            ),
            (
                "edge".to_owned(),
                "2 machines also selected by zone dmz, which is preferred: d1, d2".to_owned()
            ),
        ]
    );
    assert_eq!(output.zones["dmz"].machines, 2);
}

#[test]
fn a_remote_template_needs_a_namespace() {
    let input = Input {
        zones: vec![zone(
            "dmz",
            "nodeSelector: {}\nsatellites:\n  remoteChecks:\n    - {name: site, targets: [a], template: {name: http-check}, parameters: {url: x}}\n    - {name: both, targets: [a]}",
        )],
        templates: vec![template("web", "http-check", HTTP_CHECK)],
        ..Input::default()
    };
    let output = compile(&input);
    assert_eq!(
        messages(&output, Reason::InvalidRemoteCheck),
        [
            "remote check both: needs exactly one of template or check",
            "remote check site: template http-check needs a namespace (zones are cluster-scoped)"
        ]
    );
    assert!(output.bundles["dmz"].checks.is_empty());
}

#[test]
fn duplicates_are_reported_and_one_copy_is_used() {
    let mut input = world(
        "  - {name: cpu, template: {name: cpu, namespace: infrastructure}}\n  - {name: cpu, template: {name: http-check}}",
    );
    input.templates.push(template("infrastructure", "cpu", CPU));
    let output = compile(&input);
    assert_eq!(
        messages(&output, Reason::Duplicate),
        [
            "defined more than once; one copy is used",
            "rule cpu is defined twice; the first is used"
        ]
    );
    assert_eq!(common::checks_of(&output, "core", "m1"), ["web/site/cpu"]);
    assert_eq!(
        output.bundles["core"].checks[0].template,
        "infrastructure/cpu"
    );
}

const VALUATION: &str = r#"
elements:
  - name: a
    runsOn: {hostNames: [m1]}
    dependsOn: [b]
    standby: {when: {fileExists: /x}}
    running: {when: {elementState: {element: ghost, state: Running}}}
    completed: {when: {checkState: {ruleSet: site, rule: nope, states: [OK]}}}
    failed:
      - when: {checkState: {ruleSet: missing, rule: cpu, states: [CRITICAL]}}
  - name: b
    runsOn: {hostNames: [nobody]}
    dependsOn: [a, c]
    standby: {when: {fileExists: /x}}
    running: {when: {fileExists: /x}}
    completed: {when: {checkState: {ruleSet: site, rule: cpu, states: [OK]}}}
    failed: [{when: {fileExists: /y}}]
"#;

#[test]
fn business_processes_are_checked() {
    let mut input = world("  - {name: cpu, template: {name: cpu, namespace: infrastructure}}");
    input.processes.push(process("web", "valuation", VALUATION));
    let output = compile(&input);
    let object = ObjectRef::process("web", "valuation");
    let of_process: Vec<String> = output
        .diagnostics
        .iter()
        .filter(|d| d.object == object)
        .map(|d| format!("{} {}", d.reason, d.message))
        .collect();
    assert_eq!(
        of_process,
        [
            "DependencyCycle dependencies form a cycle: a -> b -> a",
            "UnknownElement element a: running: elementState names unknown element ghost",
            "UnknownElement element b: dependsOn names unknown element c",
            "UnknownRuleSet element a: failed[0]: checkState names rule set web/missing, which does not exist",
            "UnknownRule element a: completed: checkState names rule nope of rule set web/site, which has no such rule",
            "SelectorMatchesNothing element b: runsOn: selects no machine",
        ]
    );
}

const UNPLACEABLE: &str = r#"
timeZone: Mars/Olympus
elements:
  - name: a
    runsOn: {hostNames: [m1]}
    standby: {when: {fileExists: /x}}
    running: {when: {fileExists: /started, elementState: {element: b, state: Completed}}}
    completed: {when: {expression: "true"}}
    failed: [{when: {fileExists: /y}}]
  - name: b
    runsOn: {hostNames: [m1]}
    completeBy: {afterDependenciesSeconds: 60}
    standby: {when: {fileExists: /x}}
    running: {when: {fileExists: /x}}
    completed: {when: {fileExists: /done}}
    failed: [{when: {fileExists: /y}}]
"#;

#[test]
fn process_clauses_that_no_single_place_can_evaluate_are_errors_naming_why() {
    let mut input = world("  - {name: cpu, template: {name: cpu, namespace: infrastructure}}");
    input.processes.push(process("web", "odd", UNPLACEABLE));
    let output = compile(&input);
    let object = ObjectRef::process("web", "odd");
    let of_process: Vec<String> = output
        .diagnostics
        .iter()
        .filter(|d| d.object == object)
        .map(|d| format!("{} {}", d.reason, d.message))
        .collect();
    assert_eq!(
        of_process,
        [
            "InvalidClause element a: completed: expression is not evaluated by this release; use \
             the other conditions",
            "InvalidClause element a: running: combines facts of the element's machine \
             (fileExists) with facts only the masters hold (elementState); no single place can \
             evaluate it — split it into an element of its own",
            "InvalidClause element b: completeBy.afterDependenciesSeconds needs dependsOn",
            "InvalidClause timeZone: unknown time zone \"Mars/Olympus\"",
        ]
    );
}

#[test]
fn probes_ports_and_optional_parameters_without_defaults_are_checked() {
    let input = Input {
        zones: vec![zone("core", "nodeSelector: {}")],
        templates: vec![
            template("web", "no-probe", "check: {}"),
            template(
                "web",
                "text-port",
                "parameters: [{name: port, type: string, default: '80'}]\ncheck: {tcp: {port: $port$}}",
            ),
            template(
                "web",
                "optional",
                "parameters: [{name: path, type: string}]\ncheck: {file: {path: $path$}}",
            ),
        ],
        rule_sets: vec![rule_set(
            "web",
            "site",
            "machines: {hostNames: [m1]}\nrules: [{name: file, template: {name: optional}}]",
        )],
        machines: vec![machine("m1", &[])],
        ..Input::default()
    };
    let output = compile(&input);
    assert_eq!(
        only(&output, Reason::InvalidProbe),
        "check needs exactly one probe"
    );
    assert_eq!(
        only(&output, Reason::InvalidParameterSpec),
        "check.tcp.port: parameter port must be of type int, not string"
    );
    assert_eq!(
        only(&output, Reason::MissingParameter),
        "rule file: parameter path has no value and the template gives no default"
    );
    assert_eq!(output.templates["web/no-probe"].probe, None);
    assert_eq!(
        output.templates["web/text-port"].probe.as_deref(),
        Some("tcp")
    );
}
