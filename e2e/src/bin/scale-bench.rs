//! `make scale-bench`: the operator against a fleet of fake Nodes. Prints numbers; never a
//! pass/fail test (see `docs/benchmarks.md`).
//!
//! A real control plane (etcd, kube-apiserver, kube-controller-manager) plus kube-scheduler
//! and kwok, which makes the fake Nodes Ready and the agent DaemonSets' pods Running. N Nodes
//! spread over Z MonitorZones, 5 CheckTemplates, 10 RuleSets selecting by labels. Measured:
//! time to the first full publish; after changing one RuleSet parameter that reaches some
//! zones only, the time until every affected bundle is updated, the operator's API writes by
//! kind and verb (its own counters, and independently the ConfigMap events a watch sees),
//! whether the other zones' bundles stayed byte-identical; the operator's RSS and CPU, its
//! passes while nothing changes, the largest object it wrote.
//!
//! ```text
//! cargo run --release -p vedette-e2e --bin scale-bench -- --nodes 2000 [--zones 4]
//!     [--concurrency 32] [--idle-seconds 30] [--no-agents]
//! ```

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, ListParams, ObjectMeta, PostParams, WatchEvent, WatchParams};
use vedette_e2e::operator::{self, Operator};
use vedette_e2e::process::Managed;
use vedette_e2e::{ControlPlane, tools, wait};

const NAMESPACE: &str = "vedette-system";
const APP: &str = "bench-app";
const ZONE_LABEL: &str = "bench.vedette.dev/zone";
const KWOK_ANNOTATION: &str = "kwok.x-k8s.io/node";
const ROLES: [&str; 4] = ["web", "db", "cache", "batch"];
/// The RuleSet whose parameter changes; it reaches the zones in [`CHANGED_ZONES`] only.
const CHANGED_RULE_SET: &str = "web-front";
const CHANGED_CHECK: &str = "bench-app/web-front/http";
/// Quiet time after which status writes of a change have been made (coalescing is 10 s).
const SETTLE: Duration = Duration::from_secs(12);
const EVERY: Duration = Duration::from_millis(100);

struct Args {
    nodes: usize,
    zones: usize,
    concurrency: usize,
    idle_seconds: u64,
    agents: bool,
}

fn args() -> anyhow::Result<Args> {
    let mut args = Args {
        nodes: 2000,
        zones: 4,
        concurrency: 32,
        idle_seconds: 30,
        agents: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || -> anyhow::Result<usize> {
            it.next()
                .with_context(|| format!("{arg} needs a value"))?
                .parse()
                .with_context(|| format!("{arg} needs a number"))
        };
        match arg.as_str() {
            "--nodes" => args.nodes = value()?,
            "--zones" => args.zones = value()?.max(2),
            "--concurrency" => args.concurrency = value()?.max(1),
            "--idle-seconds" => args.idle_seconds = value()? as u64,
            "--no-agents" => args.agents = false,
            other => anyhow::bail!(
                "unknown argument {other}; usage: scale-bench [--nodes N] [--zones Z] \
                 [--concurrency C] [--idle-seconds S] [--no-agents]"
            ),
        }
    }
    Ok(args)
}

fn zone_name(index: usize) -> String {
    format!("bench-z{index}")
}

/// The zones [`CHANGED_RULE_SET`] reaches: the first half.
fn changed_zones(zones: usize) -> Vec<String> {
    (0..zones / 2).map(zone_name).collect()
}

/// Labels of node `i`: its zone, a role, a disk kind.
fn node_labels(i: usize, zones: usize) -> BTreeMap<String, String> {
    let zone = i % zones;
    let role = ROLES[(i / zones) % ROLES.len()];
    let disk = if (i / zones / ROLES.len()).is_multiple_of(2) {
        "ssd"
    } else {
        "hdd"
    };
    [
        ("kubernetes.io/os", "linux".to_owned()),
        ("kubernetes.io/hostname", node_name(i)),
        ("type", "kwok".to_owned()),
        (ZONE_LABEL, format!("z{zone}")),
        ("role", role.to_owned()),
        ("disk", disk.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn node_name(i: usize) -> String {
    format!("kwok-node-{i:05}")
}

fn fake_node(i: usize, zones: usize) -> Node {
    let resources: BTreeMap<String, Quantity> =
        [("cpu", "32"), ("memory", "256Gi"), ("pods", "110")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Quantity(v.to_owned())))
            .collect();
    Node {
        metadata: ObjectMeta {
            name: Some(node_name(i)),
            labels: Some(node_labels(i, zones)),
            annotations: Some([(KWOK_ANNOTATION.to_owned(), "fake".to_owned())].into()),
            ..ObjectMeta::default()
        },
        status: Some(k8s_openapi::api::core::v1::NodeStatus {
            allocatable: Some(resources.clone()),
            capacity: Some(resources),
            ..Default::default()
        }),
        ..Node::default()
    }
}

/// Creates the nodes with `concurrency` requests in flight.
async fn create_nodes(client: &kube::Client, args: &Args) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let zones = args.zones;
    futures::stream::iter(0..args.nodes)
        .map(|i| {
            let nodes = nodes.clone();
            async move {
                nodes
                    .create(&PostParams::default(), &fake_node(i, zones))
                    .await
                    .with_context(|| format!("create node {i}"))
            }
        })
        .buffer_unordered(args.concurrency)
        .try_for_each(|_| async { Ok(()) })
        .await
}

fn fixture(args: &Args, web_port: u16) -> String {
    let mut yaml = String::new();
    for zone in 0..args.zones {
        yaml.push_str(&format!(
            "---\napiVersion: vedette.dev/v1alpha1\nkind: MonitorZone\nmetadata: {{name: {}}}\n\
             spec:\n  nodeSelector: {{matchLabels: {{{ZONE_LABEL}: z{zone}}}}}\n  \
             satellites: {{replicas: 1}}\n  agents: {{enabled: {}}}\n",
            zone_name(zone),
            args.agents
        ));
    }
    let changed = changed_zones(args.zones).join(", ");
    let others = (args.zones / 2..args.zones)
        .map(zone_name)
        .collect::<Vec<_>>()
        .join(", ");
    yaml.push_str(&format!(
        r#"---
apiVersion: vedette.dev/v1alpha1
kind: CheckTemplate
metadata: {{name: tcp-port, namespace: {APP}}}
spec:
  parameters:
    - {{name: port, type: int, required: true, minimum: 1, maximum: 65535}}
  check:
    tcp: {{port: $port$}}
  intervalSeconds: 30
---
apiVersion: vedette.dev/v1alpha1
kind: CheckTemplate
metadata: {{name: cpu-usage, namespace: {APP}}}
spec:
  parameters:
    - {{name: warn, type: float, default: 85, minimum: 0, maximum: 100}}
    - {{name: crit, type: float, default: 95, minimum: 0, maximum: 100}}
  check:
    cpu: {{}}
  warning: $warn$
  critical: $crit$
---
apiVersion: vedette.dev/v1alpha1
kind: CheckTemplate
metadata: {{name: memory-usage, namespace: {APP}}}
spec:
  parameters:
    - {{name: warn, type: float, default: 90, minimum: 0, maximum: 100}}
    - {{name: crit, type: float, default: 97, minimum: 0, maximum: 100}}
  check:
    memory: {{metric: usedPercent}}
  warning: $warn$
  critical: $crit$
---
apiVersion: vedette.dev/v1alpha1
kind: CheckTemplate
metadata: {{name: disk-usage, namespace: {APP}}}
spec:
  parameters:
    - {{name: mount, type: string, default: /}}
    - {{name: warn, type: float, default: 80, minimum: 0, maximum: 100}}
    - {{name: crit, type: float, default: 90, minimum: 0, maximum: 100}}
  check:
    disk: {{mountPoint: $mount$, metric: usedPercent}}
  warning: $warn$
  critical: $crit$
---
apiVersion: vedette.dev/v1alpha1
kind: CheckTemplate
metadata: {{name: process-count, namespace: {APP}}}
spec:
  parameters:
    - {{name: name, type: string, required: true}}
    - {{name: min, type: int, default: 1, minimum: 0}}
  check:
    process: {{name: $name$}}
  critical: "$min$:"
---
apiVersion: vedette.dev/v1alpha1
kind: RuleSet
metadata: {{name: base, namespace: {APP}}}
spec:
  machines: {{nodeSelector: {{matchLabels: {{kubernetes.io/os: linux}}}}}}
  rules:
    - {{name: cpu, template: {{name: cpu-usage}}}}
    - {{name: memory, template: {{name: memory-usage}}}}
    - {{name: root, template: {{name: disk-usage}}}}
---
apiVersion: vedette.dev/v1alpha1
kind: RuleSet
metadata: {{name: {CHANGED_RULE_SET}, namespace: {APP}}}
spec:
  machines: {{nodeSelector: {{matchLabels: {{role: web}}}}, zones: [{changed}]}}
  rules:
    - {{name: http, template: {{name: tcp-port}}, parameters: {{port: {web_port}}}}}
    - {{name: https, template: {{name: tcp-port}}, parameters: {{port: 443}}}}
---
apiVersion: vedette.dev/v1alpha1
kind: RuleSet
metadata: {{name: web-back, namespace: {APP}}}
spec:
  machines: {{nodeSelector: {{matchLabels: {{role: web}}}}, zones: [{others}]}}
  rules:
    - {{name: http, template: {{name: tcp-port}}, parameters: {{port: 80}}}}
---
apiVersion: vedette.dev/v1alpha1
kind: RuleSet
metadata: {{name: web-processes, namespace: {APP}}}
spec:
  machines: {{nodeSelector: {{matchLabels: {{role: web}}}}}}
  rules:
    - {{name: nginx, template: {{name: process-count}}, parameters: {{name: nginx, min: 2}}}}
---
apiVersion: vedette.dev/v1alpha1
kind: RuleSet
metadata: {{name: db, namespace: {APP}}}
spec:
  machines: {{nodeSelector: {{matchLabels: {{role: db}}}}}}
  rules:
    - {{name: postgres, template: {{name: tcp-port}}, parameters: {{port: 5432}}}}
    - {{name: postmaster, template: {{name: process-count}}, parameters: {{name: postgres}}}}
---
apiVersion: vedette.dev/v1alpha1
kind: RuleSet
metadata: {{name: cache, namespace: {APP}}}
spec:
  machines: {{nodeSelector: {{matchLabels: {{role: cache}}}}}}
  rules:
    - {{name: redis, template: {{name: tcp-port}}, parameters: {{port: 6379}}}}
    - {{name: redis-server, template: {{name: process-count}}, parameters: {{name: redis-server}}}}
---
apiVersion: vedette.dev/v1alpha1
kind: RuleSet
metadata: {{name: batch, namespace: {APP}}}
spec:
  machines: {{nodeSelector: {{matchLabels: {{role: batch}}}}}}
  rules:
    - {{name: cron, template: {{name: process-count}}, parameters: {{name: cron}}}}
    - {{name: var, template: {{name: disk-usage}}, parameters: {{mount: /var, warn: 70}}}}
---
apiVersion: vedette.dev/v1alpha1
kind: RuleSet
metadata: {{name: ssd, namespace: {APP}}}
spec:
  machines: {{nodeSelector: {{matchLabels: {{disk: ssd}}}}}}
  rules:
    - {{name: data, template: {{name: disk-usage}}, parameters: {{mount: /data}}}}
---
apiVersion: vedette.dev/v1alpha1
kind: RuleSet
metadata: {{name: hdd, namespace: {APP}}}
spec:
  machines: {{nodeSelector: {{matchLabels: {{disk: hdd}}}}}}
  rules:
    - {{name: srv, template: {{name: disk-usage}}, parameters: {{mount: /srv, crit: 95}}}}
---
apiVersion: vedette.dev/v1alpha1
kind: RuleSet
metadata: {{name: db-ssd, namespace: {APP}}}
spec:
  machines:
    nodeSelector:
      matchLabels: {{role: db, disk: ssd}}
  rules:
    - {{name: pgdata, template: {{name: disk-usage}}, parameters: {{mount: /var/lib/postgresql, warn: 75}}}}
---
apiVersion: vedette.dev/v1alpha1
kind: RuleSet
metadata: {{name: not-batch, namespace: {APP}}}
spec:
  machines:
    nodeSelector:
      matchExpressions:
        - {{key: role, operator: NotIn, values: [batch]}}
  rules:
    - {{name: ssh, template: {{name: tcp-port}}, parameters: {{port: 22}}}}
    - {{name: sshd, template: {{name: process-count}}, parameters: {{name: sshd}}}}
"#
    ));
    yaml
}

/// A zone's bundle ConfigMaps as the API server has them.
async fn zone_config_maps(client: &kube::Client, zone: &str) -> anyhow::Result<Vec<ConfigMap>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let selector = format!("vedette.dev/zone={zone},app.kubernetes.io/component=bundle");
    Ok(api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items)
}

/// What makes two snapshots of a zone's bundle byte-identical: name, resourceVersion, data.
fn fingerprint(maps: &[ConfigMap]) -> Vec<(String, String, BTreeMap<String, String>)> {
    let mut all: Vec<_> = maps
        .iter()
        .map(|m| {
            (
                m.metadata.name.clone().unwrap_or_default(),
                m.metadata.resource_version.clone().unwrap_or_default(),
                m.data.clone().unwrap_or_default(),
            )
        })
        .collect();
    all.sort();
    all
}

/// `vedette_operator_api_writes_total` by its label set.
async fn writes(operator: &Operator) -> anyhow::Result<BTreeMap<String, f64>> {
    let (_, body) = operator.get("/metrics").await?;
    Ok(body
        .lines()
        .filter(|line| line.starts_with("vedette_operator_api_writes_total{"))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let labels = series.split_once('{')?.1.trim_end_matches('}');
            Some((labels.to_owned(), value.parse().ok()?))
        })
        .collect())
}

fn diff(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v != 0.0)
        .collect()
}

/// VmRSS and VmHWM in kB, and user+system CPU seconds, of a process.
fn memory_and_cpu(pid: u32) -> anyhow::Result<(u64, u64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> f64 { fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0.0) };
    // Index 0 is the state (field 3), so utime (field 14) is index 11.
    let clock_ticks = 100.0;
    Ok((
        field("VmRSS:"),
        field("VmHWM:"),
        (ticks(11) + ticks(12)) / clock_ticks,
    ))
}

/// Counts ConfigMap events (by type) in the operator's namespace from now on.
fn watch_config_maps(
    client: kube::Client,
    resource_version: String,
) -> (
    Arc<Mutex<BTreeMap<String, usize>>>,
    tokio::task::JoinHandle<()>,
) {
    let counts = Arc::new(Mutex::new(BTreeMap::new()));
    let shared = counts.clone();
    let task = tokio::spawn(async move {
        let api: Api<ConfigMap> = Api::namespaced(client, NAMESPACE);
        let Ok(stream) = api
            .watch(&WatchParams::default().timeout(290), &resource_version)
            .await
        else {
            return;
        };
        let mut stream = std::pin::pin!(stream);
        while let Some(Ok(event)) = stream.next().await {
            let key = match event {
                WatchEvent::Added(m) => format!("ADDED {}", m.metadata.name.unwrap_or_default()),
                WatchEvent::Modified(m) => {
                    format!("MODIFIED {}", m.metadata.name.unwrap_or_default())
                }
                WatchEvent::Deleted(m) => {
                    format!("DELETED {}", m.metadata.name.unwrap_or_default())
                }
                WatchEvent::Bookmark(_) | WatchEvent::Error(_) => continue,
            };
            *shared
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(key)
                .or_insert(0) += 1;
        }
    });
    (counts, task)
}

/// Counts Node events (metadata watch, as the operator has one) during `window`.
async fn node_events(client: &kube::Client, window: Duration) -> anyhow::Result<usize> {
    let api: Api<Node> = Api::all(client.clone());
    let list = api.list_metadata(&ListParams::default().limit(1)).await?;
    let version = list.metadata.resource_version.unwrap_or_default();
    let stream = api
        .watch_metadata(&WatchParams::default().timeout(290), &version)
        .await?;
    let mut stream = std::pin::pin!(stream);
    let mut count = 0;
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, stream.next()).await {
        if matches!(event, Ok(WatchEvent::Modified(_) | WatchEvent::Added(_))) {
            count += 1;
        }
    }
    Ok(count)
}

/// The compile count (passes) of the operator.
async fn passes(operator: &Operator) -> anyhow::Result<f64> {
    operator
        .metric("vedette_operator_compile_duration_seconds_count")
        .await
}

async fn ready_nodes_and_running_pods(client: &kube::Client) -> anyhow::Result<(usize, usize)> {
    let nodes: Api<Node> = Api::all(client.clone());
    let ready = nodes
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .count();
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let running = pods
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .count();
    Ok((ready, running))
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let started = Instant::now();
    println!(
        "scale-bench: {} nodes, {} zones, 5 CheckTemplates, 10 RuleSets, agents {}",
        args.nodes,
        args.zones,
        if args.agents { "on" } else { "off" }
    );
    println!(
        "machine: {} CPUs ({}), shared",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| c
                .lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned()))
            .unwrap_or_default()
    );

    // Dropped last (declared first): the guards below stop their processes before it.
    let plane = ControlPlane::start().await?;
    let client = plane.client().await?;
    let _scheduler = plane.start_scheduler()?;
    let kwok_bin = tools::tools_dir()?.join("kwok");
    let mut kwok_command = Command::new(&kwok_bin);
    kwok_command
        .arg("--kubeconfig")
        .arg(plane.kubeconfig())
        .args(["--manage-all-nodes=false"])
        .arg(format!(
            "--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake"
        ))
        .args(["--cidr", "10.64.0.1/12", "--node-ip", "10.63.0.1"])
        .args(["--server-address", "127.0.0.1:0"]);
    let _kwok = Managed::spawn("kwok", kwok_command, &plane.dir().join("kwok.log"))?;
    println!(
        "control plane, kube-scheduler and kwok up after {}",
        secs(started.elapsed())
    );

    operator::install_crds(&plane).await?;
    operator::create_namespace(&client, NAMESPACE).await?;
    operator::create_namespace(&client, APP).await?;
    let creating = Instant::now();
    create_nodes(&client, &args).await?;
    println!(
        "created {} Nodes in {} ({} in flight)",
        args.nodes,
        secs(creating.elapsed()),
        args.concurrency
    );
    operator::apply_yaml(&client, &fixture(&args, 80)).await?;

    let expected: BTreeMap<String, usize> = (0..args.zones)
        .map(|z| {
            (
                zone_name(z),
                (0..args.nodes).filter(|i| i % args.zones == z).count(),
            )
        })
        .collect();
    let operator_start = Instant::now();
    let mut operator = Operator::start(&plane, NAMESPACE, "bench-0")?;
    operator.wait_ready().await?;
    let ready_after = operator_start.elapsed();
    let zones: Vec<String> = expected.keys().cloned().collect();
    wait::until(
        "every zone's bundle holding all its machines",
        Duration::from_secs(600),
        Duration::from_millis(250),
        || {
            let (client, expected) = (client.clone(), expected.clone());
            let alive = operator.ensure_running();
            async move {
                alive?;
                for (zone, machines) in &expected {
                    let maps = zone_config_maps(&client, zone).await?;
                    let Ok(bundle) = vedette_operator::build::bundle_from_config_maps(&maps) else {
                        return Ok(None);
                    };
                    if bundle.machines.len() != *machines {
                        return Ok(None);
                    }
                }
                Ok(Some(()))
            }
        },
    )
    .await?;
    let first_publish = operator_start.elapsed();
    let (_, _, cpu_publish) = memory_and_cpu(operator.pid())?;
    println!(
        "operator /readyz after {}; first full publish (every zone's bundle holds all its \
         machines) after {} from process start; operator CPU so far {cpu_publish:.2} s",
        secs(ready_after),
        secs(first_publish)
    );
    for zone in &zones {
        let maps = zone_config_maps(&client, zone).await?;
        let bundle = vedette_operator::build::bundle_from_config_maps(&maps)?;
        let assignments: usize = bundle.machines.values().map(Vec::len).sum();
        println!(
            "  {zone}: {} machines, {} distinct checks, {assignments} machine-check \
             assignments, {} ConfigMap shard(s)",
            bundle.machines.len(),
            bundle.checks.len(),
            maps.len()
        );
    }

    // Steady state: let status writes settle, then watch what the operator does while
    // nothing of ours changes (kwok still heartbeats the Nodes).
    tokio::time::sleep(SETTLE).await;
    let idle = Duration::from_secs(args.idle_seconds);
    let (writes_before, passes_before) = (writes(&operator).await?, passes(&operator).await?);
    let (_, _, cpu_before) = memory_and_cpu(operator.pid())?;
    let events = node_events(&client, idle).await?;
    let (writes_after, passes_after) = (writes(&operator).await?, passes(&operator).await?);
    let (rss, hwm, cpu_after) = memory_and_cpu(operator.pid())?;
    println!(
        "idle {}s: {events} Node events seen by a metadata watch ({:.1}/s); operator passes \
         {}, API writes {:?}, CPU {:.2} s ({:.1}% of one core)",
        idle.as_secs(),
        events as f64 / idle.as_secs_f64(),
        passes_after - passes_before,
        diff(&writes_before, &writes_after),
        cpu_after - cpu_before,
        100.0 * (cpu_after - cpu_before) / idle.as_secs_f64()
    );
    println!(
        "operator memory at steady state: VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );

    // The change: one RuleSet parameter that reaches some zones only.
    let affected = changed_zones(args.zones);
    let before: BTreeMap<String, _> = {
        let mut all = BTreeMap::new();
        for zone in &zones {
            all.insert(
                zone.clone(),
                fingerprint(&zone_config_maps(&client, zone).await?),
            );
        }
        all
    };
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let version = config_maps
        .list_metadata(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let (cm_events, watch_task) = watch_config_maps(client.clone(), version);
    let writes_before = writes(&operator).await?;
    let (_, _, cpu_before) = memory_and_cpu(operator.pid())?;
    let changed_at = Instant::now();
    operator::apply_yaml(&client, &fixture(&args, 8080)).await?;
    let mut updated: BTreeMap<String, Duration> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while updated.len() < affected.len() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "affected bundles not all updated after 300 s; updated: {updated:?}"
        );
        operator.ensure_running()?;
        for zone in &affected {
            if updated.contains_key(zone) {
                continue;
            }
            let maps = zone_config_maps(&client, zone).await?;
            let Ok(bundle) = vedette_operator::build::bundle_from_config_maps(&maps) else {
                continue;
            };
            let has_new_port = bundle.checks.iter().any(|c| {
                c.id.to_string() == CHANGED_CHECK
                    && serde_json::to_value(&c.check).is_ok_and(|v| v["tcp"]["port"] == 8080)
            });
            if has_new_port {
                updated.insert(zone.clone(), changed_at.elapsed());
            }
        }
        tokio::time::sleep(EVERY).await;
    }
    let all_updated = changed_at.elapsed();
    tokio::time::sleep(SETTLE).await;
    let writes_after = writes(&operator).await?;
    let (_, _, cpu_after) = memory_and_cpu(operator.pid())?;
    watch_task.abort();
    let watched = cm_events.lock().unwrap_or_else(|p| p.into_inner()).clone();
    println!(
        "change: RuleSet {APP}/{CHANGED_RULE_SET} rule http port 80 -> 8080 (reaches {})",
        affected.join(", ")
    );
    for (zone, at) in &updated {
        println!("  {zone} bundle updated after {}", secs(*at));
    }
    println!(
        "  every affected bundle updated after {} (target <= 60 s)",
        secs(all_updated)
    );
    println!(
        "  operator API writes during the change (+{}s settle): {:?}; operator CPU {:.2} s",
        SETTLE.as_secs(),
        diff(&writes_before, &writes_after),
        cpu_after - cpu_before
    );
    println!(
        "  ConfigMap events seen by an independent watch on {NAMESPACE}: {} in all: {watched:?}",
        watched.values().sum::<usize>()
    );
    for zone in &zones {
        let now = fingerprint(&zone_config_maps(&client, zone).await?);
        let same = before.get(zone) == Some(&now);
        println!(
            "  {zone}: {}{}",
            if same {
                "unchanged (byte-identical, same resourceVersions)"
            } else {
                "changed"
            },
            if affected.contains(zone) {
                " [affected]"
            } else {
                " [not affected]"
            }
        );
    }

    // Sizes and the end state.
    let all_maps = config_maps.list(&ListParams::default()).await?.items;
    let largest = all_maps
        .iter()
        .map(|m| {
            (
                serde_json::to_vec(m).map_or(0, |b| b.len()),
                m.metadata.name.clone().unwrap_or_default(),
            )
        })
        .max();
    if let Some((bytes, name)) = largest {
        println!("largest ConfigMap the operator wrote: {name}, {bytes} bytes as JSON");
    }
    let (rss, hwm, cpu) = memory_and_cpu(operator.pid())?;
    println!(
        "operator at the end: VmRSS {:.1} MiB, VmHWM {:.1} MiB, CPU {cpu:.2} s in {}",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        secs(operator_start.elapsed())
    );
    let (ready, running) = ready_nodes_and_running_pods(&client).await?;
    println!(
        "kwok: {ready} of {} Nodes Ready, {running} Pods Running in {NAMESPACE} \
         (kwok's and the apiserver's CPU are not the operator's and are not counted)",
        args.nodes
    );
    operator.ensure_running()?;
    println!("total {}", secs(started.elapsed()));
    Ok(())
}
