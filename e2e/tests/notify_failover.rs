//! Notifications delivered once across two masters that share the PostgreSQL history: ten
//! checks of one agent flip between OK and CRITICAL twenty times each (200 hard changes), and
//! the Lease holder is killed with SIGKILL three times during the burst (and started again).
//! Every change in the history reaches the webhook (no change missing), a notification is
//! repeated at most once per kill and only under its own idempotency key, and no change is
//! told twice under different keys. Prints the failover gaps (kill → the next holder).

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use serde_json::Value;
use vedette_e2e::fleet::{self, NodeAgent, Satellite, SatelliteMode};
use vedette_e2e::http::http_get;
use vedette_e2e::operator::{self, Operator};
use vedette_e2e::postgres::PostgresServer;
use vedette_e2e::wait;
use vedette_e2e::webhook::Webhook;

const NAMESPACE: &str = "notify-fo";
const APP: &str = "notify-fo-app";
const ZONE: &str = "nf";
const NODE: &str = "nf-node-1";
const CHECKS: usize = 10;
const ROUNDS: usize = 20;
const KILL_AT: [usize; 3] = [4, 9, 14];
const WAIT: Duration = Duration::from_secs(90);
const EVERY: Duration = Duration::from_millis(250);

fn burst(ports: &[u16], hook: &str) -> String {
    let rules: String = ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            format!("    - {{name: c{i}, template: {{name: tcp}}, parameters: {{port: {port}}}}}\n")
        })
        .collect();
    format!(
        r#"
apiVersion: vedette.dev/v1alpha1
kind: RuleSet
metadata: {{name: burst, namespace: {APP}}}
spec:
  machines: {{nodeSelector: {{matchLabels: {{role: web}}}}, zones: [{ZONE}]}}
  rules:
{rules}---
apiVersion: vedette.dev/v1alpha1
kind: NotificationConfig
metadata: {{name: team, namespace: {APP}}}
spec:
  receivers:
    - name: hook
      webhook: {{url: "{hook}/hook", maxAttempts: 20}}
  routes:
    - receiver: hook
      matchers: [{{name: ruleSet, value: burst}}]
      groupWaitSeconds: 1
      groupIntervalSeconds: 1
"#
    )
}

/// The hard changes of the burst in the shared history: (check, time in seconds, firing).
async fn changes_in_history(master: &Operator) -> anyhow::Result<BTreeSet<(String, String, bool)>> {
    let path = format!("/v1/history?namespace={APP}&ruleSet=burst&kind=state_change&limit=1000");
    let (status, body) = http_get(master.port(), &path).await?;
    anyhow::ensure!(status == 200, "history: {status} {body}");
    let page: Value = serde_json::from_str(&body)?;
    let mut changes = BTreeSet::new();
    for record in page["records"].as_array().into_iter().flatten() {
        let state = record["state"].as_str().unwrap_or_default();
        let previous = record["previous"].as_str();
        let told = state != "OK" || previous.is_some_and(|p| p != "OK");
        if record["hard"] == true && told {
            let at = vedette_protocol::clock::rfc3339(record["atMs"].as_u64().unwrap_or(0));
            let check = record["check"].as_str().unwrap_or_default().to_owned();
            changes.insert((check, at, state != "OK"));
        }
    }
    Ok(changes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_told_once_across_three_kills_of_the_lease_holder() -> anyhow::Result<()> {
    let database = PostgresServer::start();
    let url = database.database("vedette");
    let first_listener = TcpListener::bind("127.0.0.1:0")?;
    let port = first_listener.local_addr()?.port();
    let flags = ["--insecure-no-auth", "--history-postgres-url", url.as_str()];
    let fleet::Scenario {
        mut plane,
        client,
        operator: first,
    } = fleet::scenario(NAMESPACE, APP, ZONE, &[NODE], port, &flags).await?;
    let kubeconfig = plane.kubeconfig().to_path_buf();
    let mut second = Operator::start_with(&plane, &kubeconfig, NAMESPACE, "master-1", &flags)?;
    second.wait_ready().await?;
    let mut masters = vec![first, second];
    let mut listeners: Vec<Option<TcpListener>> = (0..CHECKS)
        .map(|_| TcpListener::bind("127.0.0.1:0").map(Some))
        .collect::<Result<_, _>>()?;
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| {
            l.as_ref()
                .and_then(|l| l.local_addr().ok())
                .map_or(0, |a| a.port())
        })
        .collect();
    let hook = Webhook::start().await?;
    operator::apply_yaml(&client, &burst(&ports, &hook.url())).await?;
    let urls: Vec<String> = masters.iter().map(Operator::url).collect();
    let mut satellite = Satellite::start(
        &plane,
        NAMESPACE,
        ZONE,
        "nf-satellite-0",
        &urls,
        SatelliteMode::KubeInsecure,
    )?;
    satellite.wait_ready().await?;
    let mut agent = NodeAgent::start(&plane, NODE, &[satellite.url()])?;
    fleet::rule_set_status(&client, APP, "burst", WAIT, |s| {
        (s.checks_by_state.ok == CHECKS as u32).then_some(())
    })
    .await?;

    let mut gaps = Vec::new();
    for round in 0..ROUNDS {
        for (index, listener) in listeners.iter_mut().enumerate() {
            *listener = match listener.take() {
                Some(open) => {
                    drop(open);
                    None
                }
                None => Some(TcpListener::bind(("127.0.0.1", ports[index]))?),
            };
        }
        if KILL_AT.contains(&round) {
            let holder = operator::lease_holder(&client, NAMESPACE).await?;
            let at = masters
                .iter()
                .position(|m| Some(m.identity()) == holder.as_deref())
                .ok_or_else(|| anyhow::anyhow!("no master holds the Lease ({holder:?})"))?;
            let killed = Instant::now();
            masters[at].kill();
            let identity = masters[at].identity().to_owned();
            let port = masters[at].port();
            // The other takes the Lease once it expires; the killed one comes back after
            // (with its own identity it would otherwise renew the Lease it held).
            let other = masters[1 - at].identity().to_owned();
            operator::wait_for_lease(&client, NAMESPACE, &other).await?;
            gaps.push(killed.elapsed());
            masters[at] =
                Operator::start_on(&plane, &kubeconfig, NAMESPACE, &identity, &flags, port)?;
        } else {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
    }
    eprintln!("failover gaps (kill → the other master holds the Lease): {gaps:?}");

    let expected = wait::until("every change in the history", WAIT, EVERY, || async {
        let changes = changes_in_history(&masters[0]).await?;
        Ok((changes.len() >= CHECKS * ROUNDS).then_some(changes))
    })
    .await?;
    let told = wait::until("every change told", WAIT, EVERY, || async {
        let mut told: BTreeMap<(String, String, bool), BTreeSet<String>> = BTreeMap::new();
        for request in hook.on("/hook") {
            let body = request.json();
            let key = body["key"].as_str().unwrap_or_default().to_owned();
            for alert in body["alerts"].as_array().into_iter().flatten() {
                let firing = alert["status"] == "firing";
                let at = if firing {
                    &alert["startsAt"]
                } else {
                    &alert["endsAt"]
                };
                let check = alert["labels"]["check"].as_str().unwrap_or_default();
                told.entry((
                    check.to_owned(),
                    at.as_str().unwrap_or_default().to_owned(),
                    firing,
                ))
                .or_default()
                .insert(key.clone());
            }
        }
        Ok(expected
            .iter()
            .all(|c| told.contains_key(c))
            .then_some(told))
    })
    .await?;
    let mut deliveries: BTreeMap<String, usize> = BTreeMap::new();
    for request in hook.on("/hook") {
        *deliveries
            .entry(
                request
                    .header("Idempotency-Key")
                    .unwrap_or_default()
                    .to_owned(),
            )
            .or_default() += 1;
    }
    let repeats: usize = deliveries.values().map(|n| n - 1).sum();
    let doubled: Vec<_> = told.iter().filter(|(_, keys)| keys.len() > 1).collect();
    eprintln!(
        "{} changes in the history, {} notifications delivered, {repeats} repeats under the same key",
        expected.len(),
        deliveries.len()
    );
    assert!(
        repeats <= KILL_AT.len(),
        "at most one repeat per kill: {repeats}"
    );
    assert!(
        doubled.is_empty(),
        "told twice under different keys: {doubled:?}"
    );

    for master in &mut masters {
        master.ensure_running()?;
    }
    satellite.ensure_running()?;
    agent.ensure_running()?;
    drop(first_listener);
    plane.ensure_running()
}
