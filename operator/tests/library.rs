//! The template library the chart installs (charts/vedette/files/library.yaml): every template
//! compiles, referenced from another namespace, with only its required parameters given; it
//! has the catalogue the README promises; and its interface only grows
//! (library-interface.json), so that references keep working across chart upgrades.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::machine;
use vedette_crds::CheckTemplate;
use vedette_crds::template::ParameterType;
use vedette_operator::compile::{Input, Severity, compile};
use vedette_operator::manifests::{Object, load_paths};
use vedette_protocol::plan::plan_for;

const LIBRARY_NAMESPACE: &str = "vedette-system";

fn chart_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../charts/vedette/files")
        .join(name)
}

fn library() -> Vec<CheckTemplate> {
    let loaded = load_paths(&[chart_file("library.yaml")]).expect("library loads");
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    loaded
        .objects
        .into_iter()
        .map(|object| match object {
            Object::Template(template) => *template,
            other => panic!("the library holds only CheckTemplates, not {other:?}"),
        })
        .collect()
}

/// A value for a required parameter, as a user would give it.
fn example(name: &str, type_: ParameterType) -> serde_json::Value {
    let text = match name {
        "url" => "https://shop.example/health",
        "name" => "shop.example",
        "path" => "/var/log/syslog",
        "user" => "monitor",
        "passwordSecret" => "db-credentials",
        "oid" => "1.3.6.1.2.1.1.3.0",
        "send" => "ping",
        "command" => "sshd",
        "server" => "ntp.example",
        _ => "",
    };
    match type_ {
        ParameterType::Int => serde_json::json!(443),
        ParameterType::Float => serde_json::json!(1.5),
        ParameterType::Bool => serde_json::json!(true),
        ParameterType::Duration => serde_json::json!("5m"),
        ParameterType::String => {
            assert!(!text.is_empty(), "no example for required parameter {name}");
            serde_json::json!(text)
        }
    }
}

/// A RuleSet of namespace `app` with one rule per template, giving required parameters only.
fn rule_set_using_everything(templates: &[CheckTemplate]) -> vedette_crds::RuleSet {
    let rules: Vec<serde_json::Value> = templates
        .iter()
        .map(|template| {
            let name = template.metadata.name.clone().unwrap_or_default();
            let parameters: serde_json::Map<String, serde_json::Value> = template
                .spec
                .parameters
                .iter()
                .filter(|p| p.required)
                .map(|p| (p.name.clone(), example(&p.name, p.type_)))
                .collect();
            serde_json::json!({
                "name": name,
                "template": {"name": name, "namespace": LIBRARY_NAMESPACE},
                "parameters": parameters,
            })
        })
        .collect();
    let spec = serde_json::json!({
        "machines": {"nodeSelector": {"matchLabels": {"kubernetes.io/os": "linux"}}},
        "rules": rules,
    });
    let mut rule_set = vedette_crds::RuleSet::new(
        "everything",
        serde_json::from_value(spec).expect("rule set spec"),
    );
    rule_set.metadata.namespace = Some("app".to_owned());
    rule_set
}

#[test]
fn every_template_compiles_from_another_namespace_with_its_defaults() {
    let templates = library();
    let zone = common::zone("core", "nodeSelector: {}\n");
    let input = Input {
        zones: vec![zone],
        rule_sets: vec![rule_set_using_everything(&templates)],
        templates: templates.clone(),
        machines: vec![machine("node-1", &[("kubernetes.io/os", "linux")])],
        ..Input::default()
    };
    let output = compile(&input);
    let errors: Vec<String> = output
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(ToString::to_string)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let plan = plan_for(&output.bundles["core"], "node-1").expect("node-1 has a plan");
    assert_eq!(plan.checks.len(), templates.len());
    plan.validate()
        .expect("the plan of every library check is valid");
    // Secrets a library template reads are the referring rule set's, never the library's.
    let database = plan
        .checks
        .iter()
        .find(|c| c.id.rule == "postgresql")
        .expect("postgresql check");
    let secret = &database.check.database.as_ref().unwrap().password_secret;
    assert_eq!(
        secret.as_ref().unwrap().plan_key(),
        "app/db-credentials/password"
    );
}

#[test]
fn every_template_and_parameter_is_described_and_has_a_default_or_is_required() {
    for template in library() {
        let name = template.metadata.name.clone().unwrap_or_default();
        assert_eq!(
            template.metadata.namespace.as_deref(),
            Some(LIBRARY_NAMESPACE)
        );
        let labels = template.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get("vedette.dev/library").map(String::as_str),
            Some("true"),
            "{name}"
        );
        assert!(
            template
                .spec
                .description
                .as_deref()
                .is_some_and(|d| d.len() > 10),
            "{name} needs a description"
        );
        for parameter in &template.spec.parameters {
            assert!(
                parameter
                    .description
                    .as_deref()
                    .is_some_and(|d| !d.is_empty()),
                "{name}: parameter {} needs a description",
                parameter.name
            );
            assert!(
                parameter.required != parameter.default.is_some(),
                "{name}: parameter {} needs exactly one of a default or required",
                parameter.name
            );
        }
    }
}

#[test]
fn the_catalogue_has_what_the_readme_lists() {
    let names: Vec<String> = library()
        .into_iter()
        .filter_map(|t| t.metadata.name)
        .collect();
    let expected = [
        "cpu",
        "memory",
        "swap",
        "load",
        "disk",
        "inodes",
        "network-errors",
        "tcp",
        "http",
        "tls-expiry",
        "dns",
        "process",
        "file-age",
        "file-size",
        "log-pattern",
        "ping",
        "udp",
        "snmp-get",
        "postgresql",
        "mysql",
        "smtp",
        "imap",
        "check-tcp",
        "check-http",
        "check-curl",
        "check-disk",
        "check-procs",
        "check-load",
        "check-swap",
        "check-ntp-time",
        "check-dns",
        "check-ssh",
        "check-smtp",
        "check-ping",
    ];
    for name in expected {
        assert!(names.iter().any(|n| n == name), "library has no {name}");
    }
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README");
    for name in &names {
        assert!(
            readme.contains(&format!("`{name}`")),
            "README's catalogue does not list {name}"
        );
    }
}

/// Each template's parameters by name, with their type and whether they are required.
type Interface = BTreeMap<String, BTreeMap<String, (String, bool)>>;

fn interface_of(templates: &[CheckTemplate]) -> Interface {
    templates
        .iter()
        .map(|template| {
            let parameters = template
                .spec
                .parameters
                .iter()
                .map(|p| {
                    let type_ = serde_json::to_value(p.type_).expect("type serializes");
                    let type_ = type_.as_str().unwrap_or_default().to_owned();
                    (p.name.clone(), (type_, p.required))
                })
                .collect();
            (
                template.metadata.name.clone().unwrap_or_default(),
                parameters,
            )
        })
        .collect()
}

/// Upgrading the chart must keep every reference to the library working: what was published
/// (library-interface.json) is still there with the same types, and nothing new is required.
/// A new template or parameter is added to library-interface.json with the change.
#[test]
fn the_library_interface_only_grows() {
    let published: Interface = serde_json::from_str(
        &std::fs::read_to_string(chart_file("library-interface.json")).expect("interface file"),
    )
    .expect("interface parses");
    let current = interface_of(&library());
    for (template, parameters) in &published {
        let Some(now) = current.get(template) else {
            panic!("template {template} was removed or renamed: references to it would break");
        };
        for (name, (type_, _)) in parameters {
            let Some((now_type, _)) = now.get(name) else {
                panic!("{template}: parameter {name} was removed or renamed");
            };
            assert_eq!(now_type, type_, "{template}: parameter {name} changed type");
        }
        for (name, (_, required)) in now {
            let was_required = parameters.get(name).is_some_and(|(_, r)| *r);
            assert!(
                !required || was_required,
                "{template}: parameter {name} became required: existing rules do not give it"
            );
        }
    }
    assert_eq!(
        serde_json::to_value(&current).unwrap(),
        serde_json::to_value(&published).unwrap(),
        "the library changed: add the new templates and parameters to \
         charts/vedette/files/library-interface.json"
    );
}
