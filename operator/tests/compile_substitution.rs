//! Typed `$param$` substitution through compile: thresholds, ports, `$host$` left for the
//! satellite, interval overrides, and zone remote checks from a template or inline.

mod common;

use common::{machine, messages, rule_set, template, zone};
use vedette_crds::check::PortOrParameter;
use vedette_operator::compile::{Input, Reason, compile};
use vedette_protocol::plan::{CheckId, RemoteAssignment};

const TLS: &str = r#"
parameters:
  - {name: port, type: int, default: 443}
  - {name: warnDays, type: int, default: 21, minimum: 0}
  - {name: critDays, type: int, default: 7, minimum: 0}
  - {name: within, type: duration, default: 5m, minimum: 60, maximum: 3600}
check:
  tls: {host: $host$, port: $port$, serverName: "$host$.example.com"}
warning: "$warnDays$:"
critical: "@$critDays$:30"
condition: "value > duration('$within$')"
intervalSeconds: 600
retryIntervalSeconds: 60
timeoutSeconds: 10
"#;

fn input(parameters: &str, interval: &str) -> Input {
    Input {
        zones: vec![zone("core", "nodeSelector: {}")],
        templates: vec![template("lib", "tls", TLS)],
        rule_sets: vec![rule_set(
            "shop",
            "certs",
            &format!(
                "machines: {{hostNames: [m1]}}\nlabels: {{team: web}}\nrules:\n  - {{name: cert, template: {{name: tls, namespace: lib}}, parameters: {parameters}{interval}}}"
            ),
        )],
        processes: Vec::new(),
        notifications: Vec::new(),
        machines: vec![machine("m1", &[]), machine("m2", &[])],
    }
}

#[test]
fn thresholds_ports_and_conditions_are_substituted_and_host_is_left() {
    let output = compile(&input("{warnDays: 30, port: \"8443\", within: 10m}", ""));
    assert!(output.diagnostics.is_empty(), "{:#?}", output.diagnostics);
    let bundle = &output.bundles["core"];
    let check = &bundle.checks[0];
    assert_eq!(
        check.id,
        CheckId {
            namespace: "shop".into(),
            rule_set: "certs".into(),
            rule: "cert".into()
        }
    );
    let tls = check.check.tls.as_ref().unwrap();
    assert_eq!(tls.port, PortOrParameter::Int(8443));
    assert_eq!(tls.host, "$host$");
    assert_eq!(tls.server_name.as_deref(), Some("$host$.example.com"));
    assert_eq!(check.warning.as_deref(), Some("30:"));
    assert_eq!(check.critical.as_deref(), Some("@7:30"));
    assert_eq!(check.condition.as_deref(), Some("value > duration('10m')"));
    assert_eq!(check.labels["team"], "web");
    assert_eq!(
        (check.interval_seconds, check.retry_interval_seconds),
        (600, 60)
    );
    assert_eq!(bundle.machines["m1"], [0]);
    assert!(bundle.machines["m2"].is_empty());
}

#[test]
fn a_port_parameter_without_bounds_is_still_checked_as_a_port() {
    let output = compile(&input("{port: 70000}", ""));
    assert_eq!(
        messages(&output, Reason::InvalidParameter),
        ["rule cert: template lib/tls: check.tls.port: expected int 1–65535, got \"70000\""]
    );
    assert!(output.bundles["core"].checks.is_empty());
}

#[test]
fn durations_are_checked_in_seconds() {
    let output = compile(&input("{within: 2h}", ""));
    assert_eq!(
        messages(&output, Reason::InvalidParameter),
        ["rule cert: template lib/tls: parameter within: expected duration 60s–3600s, got \"2h\""]
    );
}

#[test]
fn a_rule_interval_overrides_the_template_and_the_retry_interval_is_kept() {
    let output = compile(&input("{}", ", intervalSeconds: 120"));
    let check = &output.bundles["core"].checks[0];
    assert_eq!(
        (check.interval_seconds, check.retry_interval_seconds),
        (120, 60)
    );
}

#[test]
fn the_retry_interval_defaults_to_the_rule_interval() {
    let mut world = input("{}", ", intervalSeconds: 120");
    world.templates = vec![template(
        "lib",
        "tls",
        &TLS.replace("retryIntervalSeconds: 60\n", ""),
    )];
    let output = compile(&world);
    let check = &output.bundles["core"].checks[0];
    assert_eq!(
        (check.interval_seconds, check.retry_interval_seconds),
        (120, 120)
    );
}

#[test]
fn the_same_rule_name_in_two_namespaces_is_two_checks() {
    let mut world = input("{}", "");
    world.rule_sets.push(rule_set(
        "bank",
        "certs",
        "machines: {hostNames: [m1]}\nrules: [{name: cert, template: {name: tls, namespace: lib}}]",
    ));
    let output = compile(&world);
    let ids: Vec<String> = output.bundles["core"]
        .checks
        .iter()
        .map(|c| c.id.to_string())
        .collect();
    assert_eq!(ids, ["bank/certs/cert", "shop/certs/cert"]);
    assert_eq!(output.bundles["core"].machines["m1"], [0, 1]);
}

#[test]
fn remote_checks_come_from_templates_or_inline_with_one_assignment_per_target() {
    let world = Input {
        zones: vec![zone(
            "dmz",
            r#"
nodeSelector: {matchLabels: {zone: dmz}}
satellites:
  remoteChecks:
    - name: site-cert
      targets: [b.example.com, a.example.com, a.example.com]
      template: {name: tls, namespace: lib}
      parameters: {warnDays: 14}
    - name: ping
      targets: [router]
      check: {tcp: {port: 22}}
    - name: broken
      targets: [x]
      check: {tcp: {port: $port$}}
"#,
        )],
        templates: vec![template("lib", "tls", TLS)],
        ..Input::default()
    };
    let output = compile(&world);
    assert_eq!(
        messages(&output, Reason::InvalidParameter),
        ["remote check broken: check.tcp.port: expected int 1–65535, got \"$port$\""]
    );
    assert_eq!(
        messages(&output, Reason::UndeclaredParameter),
        ["remote check broken: check.tcp.port uses $port$, but an inline check has no parameters"]
    );
    let bundle = &output.bundles["dmz"];
    let ids: Vec<String> = bundle.checks.iter().map(|c| c.id.to_string()).collect();
    assert_eq!(ids, ["/zone/dmz/ping", "/zone/dmz/site-cert"]);
    let ping = &bundle.checks[0];
    assert_eq!(
        (
            ping.template.as_str(),
            ping.interval_seconds,
            ping.timeout_seconds
        ),
        ("", 60, 10)
    );
    let cert = &bundle.checks[1];
    assert_eq!(cert.template, "lib/tls");
    assert_eq!(cert.warning.as_deref(), Some("14:"));
    assert_eq!(cert.check.tls.as_ref().unwrap().host, "$host$");
    let assignment = |check, target: &str| RemoteAssignment {
        check,
        target: target.into(),
    };
    assert_eq!(
        bundle.remote,
        [
            assignment(0, "router"),
            assignment(1, "a.example.com"),
            assignment(1, "b.example.com")
        ]
    );
    assert_eq!(output.templates["lib/tls"].remote_checks, 1);
}
