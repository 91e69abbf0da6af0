//! Test fixtures: a realistic zone (the sample `dmz` zone, with the optional fields filled
//! in), a build context, small and huge bundles, and label-selector semantics to check the
//! DaemonSet's placement against.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use vedette_crds::MonitorZone;
use vedette_crds::check::{CheckSpec, ExecProbe, HttpProbe, PortOrParameter, TcpProbe};
use vedette_crds::template::CheckState;
use vedette_protocol::plan::{AgentSettings, CheckId, PlannedCheck, RemoteAssignment, ZoneBundle};

use super::BuildContext;

/// The `dmz` zone of `config/samples/00-zones.yaml`, plus resources, tolerations and node
/// expressions so that every builder has something to render.
const DMZ: &str = r#"
apiVersion: vedette.dev/v1alpha1
kind: MonitorZone
metadata:
  name: dmz
  uid: 5b0f6a8e-3c1d-4e2f-9a7b-1c2d3e4f5a6b
spec:
  parentZone: core
  nodeSelector:
    matchLabels:
      vedette.dev/zone: dmz
    matchExpressions:
      - key: node-role.kubernetes.io/control-plane
        operator: DoesNotExist
      - key: tier
        operator: NotIn
        values: [web]
  satellites:
    replicas: 2
    resources:
      requests: {cpu: 100m, memory: 128Mi}
      limits: {memory: 512Mi}
    remoteChecks:
      - name: public-site-tls
        targets: [www.example.com, api.example.com]
        check:
          tls:
            host: $host$
            port: 443
  agents:
    tolerations:
      - key: dedicated
        operator: Equal
        value: dmz
        effect: NoSchedule
    resources:
      requests: {cpu: 10m, memory: 16Mi}
      limits: {memory: 64Mi}
    keepaliveIntervalSeconds: 15
    planHoldSeconds: 86400
"#;

/// The realistic zone every snapshot renders.
pub fn dmz() -> MonitorZone {
    serde_yaml::from_str(DMZ).expect("the dmz fixture parses")
}

/// A zone named `name`, otherwise `dmz`.
pub fn zone_named(name: &str) -> MonitorZone {
    let mut zone = dmz();
    zone.metadata.name = Some(name.to_owned());
    zone
}

/// The build context of the snapshots.
pub fn context() -> BuildContext {
    BuildContext {
        namespace: "vedette-system".to_owned(),
        image: "ghcr.io/vedette-dev/vedette-agent:0.1.0".to_owned(),
        masters_url: "http://vedette-operator.vedette-system.svc:8080".to_owned(),
        bundle_hash: "9f2c4e1a7b3d5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8".to_owned(),
    }
}

/// Whether `labels` satisfy `selector`, as the API server decides it.
pub fn label_selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_hold = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(key, value)| labels.get(key) == Some(value));
    let expressions_hold = selector
        .match_expressions
        .iter()
        .flatten()
        .all(|expression| {
            let value = labels.get(&expression.key);
            let values = expression.values.clone().unwrap_or_default();
            match expression.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                other => panic!("unknown operator {other}"),
            }
        });
    labels_hold && expressions_hold
}

fn check(namespace: &str, rule_set: &str, rule: &str, spec: CheckSpec) -> PlannedCheck {
    PlannedCheck {
        id: CheckId {
            namespace: namespace.to_owned(),
            rule_set: rule_set.to_owned(),
            rule: rule.to_owned(),
        },
        template: format!("{namespace}/{rule}"),
        labels: BTreeMap::from([("team".to_owned(), "edge".to_owned())]),
        check: spec,
        warning: Some("0.5".to_owned()),
        critical: Some("2".to_owned()),
        condition: None,
        condition_state: CheckState::Critical,
        interval_seconds: 60,
        every_cycles: None,
        retry_interval_seconds: 15,
        max_attempts: 3,
        timeout_seconds: 10,
        timeout_state: CheckState::Critical,
        spool_every_result: false,
    }
}

fn http(url: &str) -> CheckSpec {
    CheckSpec {
        http: Some(HttpProbe {
            url: url.to_owned(),
            method: "GET".to_owned(),
            expect_status: vec![200],
            body_match: None,
            verify_certificate: true,
            headers: BTreeMap::new(),
            reuse_connection: false,
            auth: None,
        }),
        ..CheckSpec::default()
    }
}

fn tcp(port: i64) -> CheckSpec {
    CheckSpec {
        tcp: Some(TcpProbe {
            host: "$host$".to_owned(),
            port: PortOrParameter::Int(port),
            send: None,
            expect: None,
            close: Default::default(),
        }),
        ..CheckSpec::default()
    }
}

/// A small bundle like the compiler makes for `dmz`: three checks, three machines, a remote
/// check on two targets.
pub fn small_bundle() -> ZoneBundle {
    ZoneBundle {
        zone: "dmz".to_owned(),
        settings: AgentSettings {
            keepalive_interval_seconds: 15,
            plan_hold_seconds: 86400,
            ..AgentSettings::default()
        },
        checks: vec![
            check("shop", "edge", "https", http("https://$host$/healthz")),
            check("shop", "edge", "ssh", tcp(22)),
            check("zone", "zone/dmz", "public-site-tls", tcp(443)),
        ],
        machines: BTreeMap::from([
            ("dmz-edge-1".to_owned(), vec![0, 1]),
            ("dmz-edge-2".to_owned(), vec![0, 1]),
            ("dmz-bastion".to_owned(), vec![1]),
        ]),
        remote: vec![
            RemoteAssignment {
                check: 2,
                target: "api.example.com".to_owned(),
            },
            RemoteAssignment {
                check: 2,
                target: "www.example.com".to_owned(),
            },
        ],
        elements: Vec::new(),
        secrets: Default::default(),
    }
}

/// A zone at the scale target: `machines` machines with long names, each running all of
/// `checks` checks with long ids and arguments.
pub fn huge_bundle(machines: usize, checks: usize) -> ZoneBundle {
    let long = "x".repeat(40);
    let checks: Vec<PlannedCheck> = (0..checks)
        .map(|i| {
            let spec = CheckSpec {
                exec: Some(ExecProbe {
                    command: "/usr/lib/nagios/plugins/check_http_with_a_long_name".to_owned(),
                    args: vec![
                        "-H".to_owned(),
                        "$host$".to_owned(),
                        "-u".to_owned(),
                        format!("/applications/{long}/endpoint-{i:03}/health?verbose=\"1\""),
                    ],
                }),
                ..CheckSpec::default()
            };
            check(
                &format!("application-namespace-{long}"),
                &format!("rule-set-{long}"),
                &format!("rule-{i:03}-{long}"),
                spec,
            )
        })
        .collect();
    let all: Vec<u32> = (0..checks.len() as u32).collect();
    ZoneBundle {
        zone: "a-zone-with-a-rather-long-name-in-a-large-datacenter".to_owned(),
        settings: AgentSettings::default(),
        machines: (0..machines)
            .map(|i| {
                (
                    format!(
                        "node-{i:05}.rack-{:03}.datacenter-{long}.example.com",
                        i / 40
                    ),
                    all.clone(),
                )
            })
            .collect(),
        remote: (0..200)
            .map(|i| RemoteAssignment {
                check: (i % checks.len()) as u32,
                target: format!("endpoint-{i:04}.{long}.example.com"),
            })
            .collect(),
        checks,
        elements: Vec::new(),
        secrets: Default::default(),
    }
}
