//! The samples in config/samples, compiled against a handful of machines: exactly which checks
//! each machine runs, and what they look like once substituted.

mod common;

use std::path::PathBuf;

use common::{checks_of, machine};
use vedette_crds::check::PortOrParameter;
use vedette_operator::compile::{Input, Output, Reason, bundle_hash, compile};
use vedette_operator::manifests::{Object, load_paths};
use vedette_protocol::plan::{CheckId, RemoteAssignment, plan_for};

const LINUX: (&str, &str) = ("kubernetes.io/os", "linux");
const STOREFRONT: (&str, &str) = ("app.kubernetes.io/part-of", "storefront");
const WEB: (&str, &str) = ("node-role.kubernetes.io/web", "");
const DMZ: (&str, &str) = ("vedette.dev/zone", "dmz");
const BATCH: (&str, &str) = ("vedette.dev/role", "batch");

fn samples() -> Input {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/samples");
    let loaded = load_paths(&[dir]).expect("samples load");
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    let mut input = Input::default();
    for object in loaded.objects {
        match object {
            Object::Zone(o) => input.zones.push(*o),
            Object::Template(o) => input.templates.push(*o),
            Object::RuleSet(o) => input.rule_sets.push(*o),
            Object::Process(o) => input.processes.push(*o),
            Object::Notifications(o) => input.notifications.push(*o),
        }
    }
    input.machines = vec![
        machine("web-1", &[LINUX, STOREFRONT, WEB]),
        machine("web-dmz-1", &[LINUX, STOREFRONT, WEB, DMZ]),
        machine("db-1", &[LINUX]),
        machine("feed-01", &[LINUX]),
        machine("batch-01", &[LINUX, BATCH]),
        machine("risk-01", &[LINUX]),
        machine("storefront-no-role", &[LINUX, STOREFRONT]),
        machine("win-1", &[("kubernetes.io/os", "windows")]),
    ];
    input
}

const BASELINE: [&str; 5] = [
    "infrastructure/linux-baseline/cpu",
    "infrastructure/linux-baseline/disk-root",
    "infrastructure/linux-baseline/disk-var",
    "infrastructure/linux-baseline/load",
    "infrastructure/linux-baseline/memory",
];

const STOREFRONT_CHECKS: [&str; 6] = [
    "shop/storefront/certificate",
    "shop/storefront/checkout-api",
    "shop/storefront/homepage",
    "shop/storefront/nginx",
    "shop/storefront/redis-port",
    "shop/storefront/sitemap",
];

fn compiled() -> Output {
    compile(&samples())
}

#[test]
fn each_machine_runs_exactly_its_rule_sets_checks() {
    let output = compiled();
    let web: Vec<&str> = BASELINE.iter().chain(&STOREFRONT_CHECKS).copied().collect();
    assert_eq!(checks_of(&output, "core", "web-1"), web);
    assert_eq!(checks_of(&output, "dmz", "web-dmz-1"), web);
    assert_eq!(checks_of(&output, "core", "db-1"), BASELINE);
    assert_eq!(checks_of(&output, "core", "batch-01"), BASELINE);
    assert_eq!(checks_of(&output, "core", "storefront-no-role"), BASELINE);
    let mut feed: Vec<&str> = vec!["brokerage/price-feed/vendor-sftp"];
    feed.extend(BASELINE);
    assert_eq!(checks_of(&output, "core", "feed-01"), feed);
    assert!(checks_of(&output, "core", "win-1").is_empty());
    assert_eq!(
        output.bundles["core"].machines.keys().collect::<Vec<_>>(),
        [
            "batch-01",
            "db-1",
            "feed-01",
            "risk-01",
            "storefront-no-role",
            "web-1",
            "win-1"
        ]
    );
    assert_eq!(
        output.bundles["dmz"].machines.keys().collect::<Vec<_>>(),
        ["web-dmz-1"]
    );
}

#[test]
fn the_only_diagnostic_is_the_intended_zone_overlap() {
    let output = compiled();
    let text: Vec<String> = output.diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "MonitorZone core: Warning OverlappingZones: 1 machine also selected by zone dmz, which is preferred: web-dmz-1"
        ]
    );
    assert_eq!(output.diagnostics[0].reason, Reason::OverlappingZones);
}

#[test]
fn parameters_are_substituted_with_their_types() {
    let output = compiled();
    let bundle = &output.bundles["core"];
    let check = |rule: &str| {
        bundle
            .checks
            .iter()
            .find(|c| c.id.rule == rule)
            .unwrap_or_else(|| panic!("{rule}"))
    };
    let certificate = check("certificate");
    let tls = certificate.check.tls.as_ref().unwrap();
    assert_eq!(tls.host, "$host$");
    assert_eq!(tls.server_name.as_deref(), Some("shop.example.com"));
    assert_eq!(tls.port, PortOrParameter::Int(443));
    assert_eq!(certificate.warning.as_deref(), Some("21:"));
    assert_eq!(certificate.critical.as_deref(), Some("7:"));
    assert_eq!(certificate.retry_interval_seconds, 3600);
    let homepage = check("homepage");
    let http = homepage.check.http.as_ref().unwrap();
    assert_eq!(http.url, "http://$host$:8080/");
    assert_eq!(http.body_match.as_deref(), Some("Welcome"));
    assert_eq!(homepage.warning.as_deref(), Some("0.5"));
    assert_eq!(homepage.labels["team"], "storefront");
    assert_eq!(homepage.template, "shop/http-endpoint");
    let api = check("checkout-api");
    assert_eq!(api.warning.as_deref(), Some("0.2"));
    assert_eq!(api.critical.as_deref(), Some("1"));
    assert_eq!(
        api.check.http.as_ref().unwrap().body_match.as_deref(),
        Some("")
    );
    let redis = check("redis-port");
    assert_eq!(
        redis.check.exec.as_ref().unwrap().args,
        ["-H", "127.0.0.1", "-p", "6379", "-w", "1", "-c", "3"]
    );
    assert_eq!(check("nginx").critical.as_deref(), Some("2:"));
    let disk_var = check("disk-var");
    assert_eq!(disk_var.check.disk.as_ref().unwrap().mount_point, "/var");
    assert_eq!(disk_var.warning.as_deref(), Some("75"));
    assert_eq!(disk_var.critical.as_deref(), Some("90"));
    assert_eq!(
        (disk_var.every_cycles, disk_var.interval_seconds),
        (Some(5), 300),
        "every fifth cycle of 60 s"
    );
    assert_eq!(disk_var.retry_interval_seconds, 60);
    assert_eq!(check("memory").warning.as_deref(), Some("92"));
    let sftp = check("vendor-sftp");
    assert_eq!(sftp.template, "shop/nagios-tcp");
    assert_eq!(sftp.labels["team"], "market-data");
    assert_eq!(sftp.check.exec.as_ref().unwrap().args[3], "22");
}

#[test]
fn a_check_on_cycles_runs_at_each_zones_own_pace() {
    let output = compiled();
    let disk_root = |zone: &str| {
        let bundle = &output.bundles[zone];
        let check = bundle.checks.iter().find(|c| c.id.rule == "disk-root");
        (
            bundle.settings.cycle_seconds,
            check.unwrap().interval_seconds,
        )
    };
    assert_eq!(disk_root("core"), (60, 300));
    assert_eq!(disk_root("dmz"), (30, 150));
}

#[test]
fn the_dmz_remote_checks_have_one_assignment_per_target() {
    let output = compiled();
    let bundle = &output.bundles["dmz"];
    let remote_ids: Vec<CheckId> = bundle.checks[..2].iter().map(|c| c.id.clone()).collect();
    let id = |rule: &str| CheckId {
        namespace: String::new(),
        rule_set: "zone/dmz".into(),
        rule: rule.into(),
    };
    assert_eq!(remote_ids, [id("public-dns"), id("public-site-tls")]);
    let assignment = |check, target: &str| RemoteAssignment {
        check,
        target: target.into(),
    };
    assert_eq!(
        bundle.remote,
        [
            assignment(0, "www.example.com"),
            assignment(1, "api.example.com"),
            assignment(1, "www.example.com")
        ]
    );
    assert_eq!(bundle.settings.keepalive_interval_seconds, 15);
    assert_eq!(bundle.settings.plan_hold_seconds, 86400);
    assert_eq!(output.zones["dmz"].assignments, 14);
}

#[test]
fn every_machine_gets_a_plan_the_agent_accepts() {
    let output = compiled();
    for bundle in output.bundles.values() {
        for host in bundle.machines.keys() {
            let plan = plan_for(bundle, host).expect("machine in bundle");
            assert!(plan.validate().is_ok(), "{host}: {:?}", plan.validate());
        }
    }
}

#[test]
fn summaries_count_what_status_shows() {
    let output = compiled();
    let baseline = &output.rule_sets["infrastructure/linux-baseline"];
    assert_eq!(
        (baseline.machines, baseline.rules, baseline.checks),
        (7, 5, 35)
    );
    let storefront = &output.rule_sets["shop/storefront"];
    assert_eq!(
        (storefront.machines, storefront.rules, storefront.checks),
        (2, 6, 12)
    );
    let nagios = &output.templates["shop/nagios-tcp"];
    assert_eq!(
        (nagios.probe.as_deref(), nagios.rule_sets),
        (Some("exec"), 2)
    );
    assert_eq!(output.templates["shop/http-endpoint"].rule_sets, 1);
    assert_eq!(output.zones["core"].machines, 7);
    assert_eq!(output.zones["core"].checks, 12);
}

#[test]
fn compiling_twice_gives_the_same_bytes_and_hashes() {
    let a = compiled();
    let b = compiled();
    assert_eq!(
        serde_json::to_vec(&a).unwrap(),
        serde_json::to_vec(&b).unwrap()
    );
    assert_eq!(
        bundle_hash(&a.bundles["dmz"]),
        bundle_hash(&b.bundles["dmz"])
    );
    assert_ne!(
        bundle_hash(&a.bundles["dmz"]),
        bundle_hash(&a.bundles["core"])
    );
}

/// Each clause goes where its facts are: the machine's agent for windows, processes, files,
/// logs and its own checks; the masters for another element's state.
#[test]
fn process_clauses_go_to_the_agents_of_their_machines_or_to_the_masters() {
    let output = compile(&samples());
    let errors: Vec<_> = output
        .diagnostics
        .iter()
        .filter(|d| d.severity == vedette_operator::compile::Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let bundle = &output.bundles["core"];
    let batch = plan_for(bundle, "batch-01").expect("batch-01 is in core");
    let names: Vec<String> = batch
        .elements
        .iter()
        .map(|e| format!("{}/{}", e.process, e.element))
        .collect();
    assert_eq!(
        names,
        [
            "batch/twopm/twopm",
            "brokerage/nightly-account-valuation/positions",
            "brokerage/nightly-account-valuation/valuation",
        ]
    );
    let twopm = &batch.elements[0];
    let clauses: Vec<&str> = twopm.clauses.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(clauses, ["standby", "running", "completed", "failed[0]"]);
    assert_eq!(
        twopm.clauses[1].when.process_running.as_deref(),
        Some("twopm")
    );
    assert!(twopm.hosts.is_empty(), "a machine's plan names no hosts");
    // valuation's second failure path needs positions' state: the masters evaluate it.
    let valuation = &batch.elements[2];
    assert!(!valuation.clauses.iter().any(|c| c.name == "failed[1]"));
    let model = &output.processes["brokerage/nightly-account-valuation"];
    let masters: Vec<(&str, &str)> = model
        .elements
        .iter()
        .flat_map(|e| {
            e.masters
                .iter()
                .map(move |c| (e.name.as_str(), c.name.as_str()))
        })
        .collect();
    assert_eq!(masters, [("valuation", "failed[1]")]);
    // closing-prices' SFTP check runs on feed-01, where the element runs: the agent's.
    let feed = plan_for(bundle, "feed-01").expect("feed-01");
    let prices = &feed.elements[0];
    let sftp = prices
        .clauses
        .iter()
        .find(|c| c.name == "failed[1]")
        .unwrap();
    assert_eq!(
        sftp.when.check_state.as_ref().map(|c| c.check.to_string()),
        Some("brokerage/price-feed/vendor-sftp".to_owned())
    );
    assert_eq!(model.elements[0].hosts, ["feed-01"]);
    assert!(
        plan_for(bundle, "db-1").unwrap().elements.is_empty(),
        "no element runs on db-1"
    );
}
