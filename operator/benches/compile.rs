//! Compiles a large synthetic world (10,000 machines × 20 rule sets × 5 rules across 10
//! zones) and prints how long compile takes and how many bytes the bundles are.
//! Run with `cargo bench -p vedette-operator --bench compile`.

use std::collections::BTreeMap;
use std::time::Instant;

use vedette_crds::{CheckTemplate, MonitorZone, RuleSet};
use vedette_operator::compile::{Input, Machine, compile};

const MACHINES: usize = 10_000;
const ZONES: usize = 10;
const RULE_SETS: usize = 20;
const RULES: usize = 5;
const ROLES: usize = 5;
const RUNS: usize = 5;

fn world() -> Input {
    let zones = (0..ZONES)
        .map(|z| {
            let spec = format!("nodeSelector: {{matchLabels: {{vedette.dev/zone: z{z}}}}}");
            MonitorZone::new(&format!("z{z}"), serde_yaml::from_str(&spec).expect("zone"))
        })
        .collect();
    let template_spec = r#"
parameters:
  - {name: url, type: string, required: true}
  - {name: warn, type: float, default: 0.5, minimum: 0}
  - {name: crit, type: float, default: 2, minimum: 0}
check: {http: {url: $url$, expectStatus: [200]}}
warning: $warn$
critical: $crit$
intervalSeconds: 30
timeoutSeconds: 5
"#;
    let mut template = CheckTemplate::new(
        "http",
        serde_yaml::from_str(template_spec).expect("template"),
    );
    template.metadata.namespace = Some("lib".into());
    let rule_sets = (0..RULE_SETS)
        .map(|i| {
            // Two rule sets run everywhere; the others on one role each.
            let selector = if i < 2 {
                "{kubernetes.io/os: linux}".to_owned()
            } else {
                format!("{{role: r{}}}", i % ROLES)
            };
            let mut spec = format!("machines: {{nodeSelector: {{matchLabels: {selector}}}}}\nlabels: {{team: t{i}}}\nrules:\n");
            for r in 0..RULES {
                spec.push_str(&format!(
                    "  - {{name: rule-{r}, template: {{name: http, namespace: lib}}, parameters: {{url: \"http://$host$:80{r}/app{i}\", warn: 0.{r}}}}}\n"
                ));
            }
            let mut object = RuleSet::new(&format!("app-{i}"), serde_yaml::from_str(&spec).expect("rule set"));
            object.metadata.namespace = Some(format!("ns-{}", i % 4));
            object
        })
        .collect();
    let machines = (0..MACHINES)
        .map(|m| Machine {
            name: format!("node-{m:05}"),
            labels: BTreeMap::from([
                ("kubernetes.io/os".into(), "linux".into()),
                ("role".into(), format!("r{}", m % ROLES)),
                ("vedette.dev/zone".into(), format!("z{}", m % ZONES)),
            ]),
        })
        .collect();
    Input {
        zones,
        templates: vec![template],
        rule_sets,
        processes: Vec::new(),
        notifications: Vec::new(),
        machines,
    }
}

fn main() {
    let input = world();
    let mut best = f64::MAX;
    let mut output = compile(&input);
    for _ in 0..RUNS {
        let start = Instant::now();
        output = compile(&input);
        best = best.min(start.elapsed().as_secs_f64());
    }
    let sizes: Vec<usize> = output
        .bundles
        .values()
        .map(|b| serde_json::to_vec(b).expect("serializes").len())
        .collect();
    let assignments: u32 = output.zones.values().map(|z| z.assignments).sum();
    println!(
        "compile: {MACHINES} machines, {RULE_SETS} rule sets x {RULES} rules, {ZONES} zones: best of {RUNS} runs {:.1} ms",
        best * 1000.0
    );
    println!(
        "bundles: {} zones, {assignments} machine-check assignments, {} bytes of JSON in all, largest {} bytes, {} diagnostics",
        sizes.len(),
        sizes.iter().sum::<usize>(),
        sizes.iter().max().copied().unwrap_or_default(),
        output.diagnostics.len()
    );
}
