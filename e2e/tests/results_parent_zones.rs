//! Three levels, as Icinga's masters → regional satellites → site satellites: zone `site` has
//! `parentZone: region`, so its satellite forwards to the `region` satellite, which relays to
//! the masters. An agent in `site` and a remote check of `site`'s satellite: their states reach
//! the RuleSet and MonitorZone status through both levels. Then the `region` satellite is
//! SIGKILLed for a minute while the check keeps changing state: the masters see the site's
//! agent go stale (nothing of it arrives), the site satellite spools, and once `region` is
//! back (same spool, as a restarted pod) the masters' history holds every state change the
//! agent made, each once, in the agent's order, and the agent is fresh again.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use serde_json::Value;
use vedette_e2e::fleet::{self, NodeAgent, Satellite, SatelliteMode, metric_in};
use vedette_e2e::http::http_get;
use vedette_e2e::operator::{self, Operator};
use vedette_e2e::{ControlPlane, wait};

const NAMESPACE: &str = "res-parent";
const APP: &str = "res-parent-app";
const NODE: &str = "site-node-1";
const WAIT: Duration = Duration::from_secs(60);
const EVERY: Duration = Duration::from_millis(250);
/// How long the `region` satellite is down.
const OUTAGE: Duration = Duration::from_secs(60);
/// Longer than the check's interval (2 s) with room for jitter.
const HOLD: Duration = Duration::from_secs(5);

fn manifests(port: u16) -> String {
    format!(
        r#"
apiVersion: vedette.dev/v1alpha1
kind: MonitorZone
metadata: {{name: region}}
spec:
  nodeSelector: {{matchLabels: {{zone: region}}}}
  satellites: {{replicas: 2}}
---
apiVersion: vedette.dev/v1alpha1
kind: MonitorZone
metadata: {{name: site}}
spec:
  parentZone: region
  nodeSelector: {{matchLabels: {{zone: site}}}}
  satellites:
    replicas: 2
    remoteChecks:
      - name: gateway
        targets: [site-gateway]
        template: {{name: tcp, namespace: {APP}}}
        parameters: {{port: {port}}}
  agents: {{keepaliveIntervalSeconds: 2, planHoldSeconds: 600}}
---
apiVersion: vedette.dev/v1alpha1
kind: CheckTemplate
metadata: {{name: tcp, namespace: {APP}}}
spec:
  parameters:
    - {{name: port, type: int, minimum: 1, maximum: 65535, required: true}}
  check:
    tcp: {{host: 127.0.0.1, port: $port$}}
  intervalSeconds: 2
  retryIntervalSeconds: 2
  maxAttempts: 1
  timeoutSeconds: 1
---
apiVersion: vedette.dev/v1alpha1
kind: RuleSet
metadata: {{name: web, namespace: {APP}}}
spec:
  machines: {{nodeSelector: {{matchLabels: {{role: web}}}}, zones: [site]}}
  rules:
    - {{name: listener, template: {{name: tcp}}, parameters: {{port: {port}}}}}
"#
    )
}

/// The state-change records of the agent's check, oldest first.
async fn history(master: &Operator) -> anyhow::Result<Vec<Value>> {
    let port: u16 = master
        .url()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .parse()?;
    let path = format!("/v1/history?namespace={APP}&kind=state_change&host={NODE}&limit=1000");
    let (status, body) = http_get(port, &path).await?;
    anyhow::ensure!(status == 200, "history: {status} {body}");
    let page: Value = serde_json::from_str(&body)?;
    let mut records = page["records"].as_array().cloned().unwrap_or_default();
    records.reverse();
    Ok(records)
}

/// Whether the masters see the agent as stale.
async fn agent_stale(master: &Operator) -> anyhow::Result<Option<bool>> {
    let (_, body) = master.get("/v1/masters/state").await?;
    let view: Value = serde_json::from_str(&body)?;
    Ok(view["agents"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a[0] == NODE)
        .and_then(|a| a[2].as_bool()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_zone_reports_through_its_region_and_loses_nothing_while_the_region_is_down()
-> anyhow::Result<()> {
    let mut plane = ControlPlane::start().await?;
    operator::install_crds(&plane).await?;
    let client = plane.client().await?;
    operator::create_namespace(&client, NAMESPACE).await?;
    operator::create_namespace(&client, APP).await?;
    operator::create_node(&client, NODE, &[("zone", "site"), ("role", "web")]).await?;
    let mut listener = Some(TcpListener::bind("127.0.0.1:0")?);
    let port = listener.as_ref().expect("open").local_addr()?.port();
    operator::apply_yaml(&client, &manifests(port)).await?;
    let flags = ["--insecure-no-auth"];
    let mut master =
        Operator::start_with(&plane, plane.kubeconfig(), NAMESPACE, "master-0", &flags)?;
    master.wait_ready().await?;
    wait::until("the site zone's bundle", WAIT, EVERY, || async {
        let (bundle, _) = operator::bundle(&client, NAMESPACE, "site").await?;
        Ok(bundle.machines.contains_key(NODE).then_some(()))
    })
    .await?;

    let mode = SatelliteMode::KubeInsecure;
    let region_replica = "vedette-zone-region-satellite-0";
    let mut region = Satellite::start(
        &plane,
        NAMESPACE,
        "region",
        region_replica,
        &[master.url()],
        mode.clone(),
    )?;
    region.wait_ready().await?;
    let mut site = Satellite::start_in_child_zone(
        &plane,
        NAMESPACE,
        "site",
        "vedette-zone-site-satellite-0",
        &region.url(),
        mode,
    )?;
    site.wait_ready().await?;
    let mut agent = NodeAgent::start(&plane, NODE, &[site.url()])?;

    // Both levels carry the agent's check and the site satellite's remote check.
    fleet::rule_set_status(&client, APP, "web", WAIT, |s| {
        (s.checks_by_state.ok == 1).then_some(())
    })
    .await?;
    fleet::zone_status(&client, "site", WAIT, |s| {
        let remote_ok = s.remote_checks_by_state.as_ref().is_some_and(|c| c.ok == 1);
        (remote_ok && s.agents_connected == 1).then_some(())
    })
    .await?;
    listener = None;
    fleet::rule_set_status(&client, APP, "web", WAIT, |s| {
        (s.checks_by_state.critical == 1).then_some(())
    })
    .await?;
    let relayed = region
        .metric("vedette_satellite_relayed_entries_total", &[])
        .await?;
    assert!(
        relayed.unwrap_or(0.0) > 0.0,
        "the region relayed: {relayed:?}"
    );

    // The region satellite down for a minute while the check flips.
    region.kill();
    let down = Instant::now();
    let mut became_stale = false;
    while down.elapsed() < OUTAGE {
        tokio::time::sleep(HOLD).await;
        listener = match listener.take() {
            Some(_) => None,
            None => Some(TcpListener::bind(("127.0.0.1", port))?),
        };
        became_stale |= agent_stale(&master).await? == Some(true);
    }
    assert!(
        became_stale,
        "the masters saw the agent go stale while nothing of it arrived"
    );
    let spooled = site
        .metric("vedette_satellite_upstream_backlog_entries", &[])
        .await?;
    region.restart()?;
    region.wait_ready().await?;
    let back = Instant::now();

    // Everything the agent made arrives, once, in order; the agent is fresh again.
    let made = |text: &str| {
        metric_in(
            text,
            "vedette_check_state_changes_total",
            &[r#"check="listener""#],
        )
        .unwrap_or(0.0) as usize
    };
    let records = wait::until(
        "every state change of the outage in the masters' history",
        WAIT,
        Duration::from_millis(500),
        || async {
            let (_, text) = http_get(agent.port, "/metrics").await?;
            let records = history(&master).await?;
            let fresh = agent_stale(&master).await? == Some(false);
            Ok((fresh && made(&text) > 0 && records.len() == made(&text)).then_some(records))
        },
    )
    .await?;
    eprintln!(
        "region down {OUTAGE:?}, site backlog {spooled:?} entries; {} state changes recorded, all there {:?} after the region was back",
        records.len(),
        back.elapsed()
    );
    assert!(records.len() >= 10, "flipped every {HOLD:?}: {records:?}");
    for pair in records.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        assert!(
            after["sequence"].as_u64() > before["sequence"].as_u64(),
            "out of the agent's order: {before} then {after}"
        );
        assert_eq!(
            after["previous"], before["state"],
            "a transition is missing between {before} and {after}"
        );
    }
    let state = if listener.is_some() { "OK" } else { "CRITICAL" };
    fleet::rule_set_status(&client, APP, "web", WAIT, |s| {
        let count = match state {
            "OK" => s.checks_by_state.ok,
            _ => s.checks_by_state.critical,
        };
        (count == 1).then_some(())
    })
    .await?;

    master.ensure_running()?;
    region.ensure_running()?;
    site.ensure_running()?;
    agent.ensure_running()?;
    plane.ensure_running()
}
