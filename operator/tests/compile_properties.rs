//! Properties of compile over generated worlds: input order never changes the bytes; a
//! parameter change touches only the zones its rule set reaches; a new matching node gets
//! exactly its rule set's checks and leaves every other plan alone.

mod common;

use std::collections::BTreeSet;

use common::{machine, rule_set, template, zone};
use proptest::prelude::*;
use vedette_operator::compile::{Input, Output, compile};
use vedette_protocol::plan::plan_for;

const ZONES: [&str; 3] = ["z0", "z1", "z2"];
const ROLES: [&str; 3] = ["web", "db", "batch"];

/// One generated rule set: where it runs and the values of its rules.
#[derive(Debug, Clone)]
struct RuleSetShape {
    namespace: &'static str,
    roles: Vec<&'static str>,
    zone: Option<&'static str>,
    warns: Vec<u8>,
    port: u16,
}

fn rule_set_shape() -> impl Strategy<Value = RuleSetShape> {
    (
        prop::sample::select(vec!["a", "b"]),
        prop::sample::subsequence(ROLES.to_vec(), 1..=3),
        prop::option::of(prop::sample::select(ZONES.to_vec())),
        prop::collection::vec(0u8..=100, 1..4),
        1u16..=65535,
    )
        .prop_map(|(namespace, roles, zone, warns, port)| RuleSetShape {
            namespace,
            roles,
            zone,
            warns,
            port,
        })
}

fn machine_shape() -> impl Strategy<Value = (Option<&'static str>, &'static str, bool)> {
    (
        prop::option::of(prop::sample::select(ZONES.to_vec())),
        prop::sample::select(ROLES.to_vec()),
        any::<bool>(),
    )
}

fn rule_set_yaml(shape: &RuleSetShape) -> String {
    let zones = shape
        .zone
        .map(|z| format!(", zones: [{z}]"))
        .unwrap_or_default();
    let mut yaml = format!(
        "machines: {{nodeSelector: {{matchExpressions: [{{key: role, operator: In, values: [{}]}}]}}{zones}}}\nlabels: {{team: t}}\nrules:\n",
        shape.roles.join(", ")
    );
    for (i, warn) in shape.warns.iter().enumerate() {
        yaml.push_str(&format!(
            "  - {{name: cpu-{i}, template: {{name: cpu, namespace: lib}}, parameters: {{warn: {warn}}}}}\n"
        ));
    }
    yaml.push_str(&format!(
        "  - {{name: port, template: {{name: tcp, namespace: lib}}, parameters: {{port: {}}}}}\n",
        shape.port
    ));
    yaml
}

fn world(
    machines: &[(Option<&'static str>, &'static str, bool)],
    rule_sets: &[RuleSetShape],
) -> Input {
    let mut zones: Vec<_> = ZONES
        .iter()
        .map(|z| zone(z, &format!("nodeSelector: {{matchLabels: {{zone: {z}}}}}")))
        .collect();
    zones.push(zone("rest", "nodeSelector: {}"));
    Input {
        zones,
        templates: vec![
            template(
                "lib",
                "cpu",
                "parameters: [{name: warn, type: int, default: 80, minimum: 0, maximum: 100}]\ncheck: {cpu: {}}\nwarning: $warn$",
            ),
            template(
                "lib",
                "tcp",
                "parameters: [{name: port, type: int, required: true}]\ncheck: {tcp: {port: $port$}}\ncritical: '1'",
            ),
        ],
        rule_sets: rule_sets
            .iter()
            .enumerate()
            .map(|(i, shape)| rule_set(shape.namespace, &format!("rs{i}"), &rule_set_yaml(shape)))
            .collect(),
        processes: Vec::new(),
        notifications: Vec::new(),
        machines: machines
            .iter()
            .enumerate()
            .map(|(i, (zone, role, linux))| {
                let mut labels = vec![("role", *role)];
                labels.extend(zone.map(|z| ("zone", z)));
                if *linux {
                    labels.push(("os", "linux"));
                }
                machine(&format!("m{i}"), &labels)
            })
            .collect(),
    }
}

fn worlds() -> impl Strategy<Value = Input> {
    (
        prop::collection::vec(machine_shape(), 0..24),
        prop::collection::vec(rule_set_shape(), 1..6),
    )
        .prop_map(|(machines, rule_sets)| world(&machines, &rule_sets))
}

fn bytes<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("serializes")
}

fn shuffled(input: Input) -> impl Strategy<Value = (Input, Input)> {
    (
        Just(input.zones.clone()).prop_shuffle(),
        Just(input.templates.clone()).prop_shuffle(),
        Just(input.rule_sets.clone()).prop_shuffle(),
        Just(input.machines.clone()).prop_shuffle(),
    )
        .prop_map(move |(zones, templates, rule_sets, machines)| {
            let other = Input {
                zones,
                templates,
                rule_sets,
                processes: Vec::new(),
                notifications: Vec::new(),
                machines,
            };
            (input.clone(), other)
        })
}

/// Zones whose bundle holds a check of the rule set `rs{index}`.
fn zones_reached(output: &Output, index: usize) -> BTreeSet<String> {
    let name = format!("rs{index}");
    output
        .bundles
        .iter()
        .filter(|(_, b)| b.checks.iter().any(|c| c.id.rule_set == name))
        .map(|(z, _)| z.clone())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn input_order_does_not_change_the_output_bytes((a, b) in worlds().prop_flat_map(shuffled)) {
        prop_assert_eq!(bytes(&compile(&a)), bytes(&compile(&b)));
    }

    #[test]
    fn a_parameter_change_touches_only_the_zones_its_rule_set_reaches(
        machines in prop::collection::vec(machine_shape(), 1..24),
        mut rule_sets in prop::collection::vec(rule_set_shape(), 1..6),
        pick in any::<prop::sample::Index>(),
        new_warn in 0u8..=100,
    ) {
        let index = pick.index(rule_sets.len());
        let before = compile(&world(&machines, &rule_sets));
        prop_assume!(rule_sets[index].warns[0] != new_warn);
        rule_sets[index].warns[0] = new_warn;
        let after = compile(&world(&machines, &rule_sets));
        let reached = zones_reached(&before, index);
        prop_assert_eq!(&reached, &zones_reached(&after, index));
        for (zone, bundle) in &before.bundles {
            let same = bytes(bundle) == bytes(&after.bundles[zone]);
            prop_assert_eq!(same, !reached.contains(zone), "zone {}", zone);
        }
    }

    #[test]
    fn a_new_matching_node_gets_exactly_its_rule_sets_checks(
        machines in prop::collection::vec(machine_shape(), 0..24),
        rule_sets in prop::collection::vec(rule_set_shape(), 1..6),
        zone in prop::sample::select(ZONES.to_vec()),
    ) {
        let mut input = world(&machines, &rule_sets);
        let before = compile(&input);
        input.rule_sets.push(rule_set(
            "probe",
            "new-node",
            "machines: {nodeSelector: {matchLabels: {probe: 'yes'}}}\nrules:\n  - {name: cpu, template: {name: cpu, namespace: lib}}\n  - {name: port, template: {name: tcp, namespace: lib}, parameters: {port: 9}}",
        ));
        input.machines.push(machine("new", &[("zone", zone), ("probe", "yes")]));
        let after = compile(&input);
        let bundle = &after.bundles[zone];
        let got: Vec<String> = bundle.machines["new"].iter().map(|&i| bundle.checks[i as usize].id.to_string()).collect();
        prop_assert_eq!(got, ["probe/new-node/cpu", "probe/new-node/port"]);
        for (name, old) in &before.bundles {
            for host in old.machines.keys() {
                let old_plan = plan_for(old, host).expect("known");
                let new_plan = plan_for(&after.bundles[name], host).expect("still known");
                prop_assert_eq!(bytes(&old_plan), bytes(&new_plan), "{}", host);
            }
        }
    }
}
