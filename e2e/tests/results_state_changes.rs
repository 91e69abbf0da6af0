//! A check goes OK → CRITICAL → OK on a real node agent behind a real satellite (bundle read
//! from the cluster) reporting to the operator as masters: the satellite's /metrics shows each
//! change within 2 s of the agent's, the RuleSet status within 30 s (checksByState, a problem
//! naming host and check), and the Lease holder sends a Warning `CheckCritical` and a Normal
//! `CheckRecovered` Event on the RuleSet. A NotificationConfig of the application routes to a
//! webhook of the test, signed with a key from a Secret the masters read from the API server:
//! its status counts the receiver and route, and the webhook gets the problem and its
//! recovery, each once. No process exits.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use vedette_crds::template::CheckState;
use vedette_e2e::fleet::{self, NodeAgent, Satellite, SatelliteMode};
use vedette_e2e::wait;
use vedette_e2e::webhook::{Received, Webhook};

const NAMESPACE: &str = "res-changes";
const APP: &str = "res-changes-app";
const ZONE: &str = "rc";
const NODE: &str = "rc-node-1";
const STATUS_WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changes_reach_satellite_metrics_status_and_events() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let flags = ["--insecure-no-auth", "--event-interval-seconds", "1"];
    let mut scenario = fleet::scenario(NAMESPACE, APP, ZONE, &[NODE], port, &flags).await?;
    let client = scenario.client.clone();
    let masters = [scenario.operator.url()];
    let mut satellite = Satellite::start(
        &scenario.plane,
        NAMESPACE,
        ZONE,
        "rc-satellite-0",
        &masters,
        SatelliteMode::KubeInsecure,
    )?;
    satellite.wait_ready().await?;
    let mut agent = NodeAgent::start(&scenario.plane, NODE, &[satellite.url()])?;

    fleet::rule_set_status(&client, APP, "web", STATUS_WAIT, |s| {
        (s.checks_by_state.ok == 1 && s.checks == 1).then_some(())
    })
    .await?;
    let hook = Webhook::start().await?;
    vedette_e2e::operator::apply_yaml(&client, &notifications(&hook.url())).await?;
    notification_status(&client).await?;

    // OK → CRITICAL.
    drop(listener);
    let critical = 2.0;
    let (agent_at, satellite_after) = propagate(&agent, &satellite, critical).await?;
    eprintln!("CRITICAL reached the satellite {satellite_after:?} after the agent");
    let started = Instant::now();
    let problem = fleet::rule_set_status(&client, APP, "web", STATUS_WAIT, |s| {
        (s.checks_by_state.critical == 1 && s.checks_by_state.ok == 0)
            .then(|| s.problems.first().cloned())
            .flatten()
    })
    .await?;
    eprintln!(
        "CRITICAL reached RuleSet status {:?} after the satellite",
        started.elapsed()
    );
    assert_eq!(
        (problem.host.as_str(), problem.check.as_str()),
        (NODE, "listener")
    );
    assert_eq!(problem.state, CheckState::Critical);
    assert!(problem.since.is_some());
    let event = fleet::event(&client, APP, "CheckCritical", NODE, STATUS_WAIT).await?;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    let regarding = event.regarding.unwrap_or_default();
    assert_eq!(
        (regarding.kind.as_deref(), regarding.name.as_deref()),
        (Some("RuleSet"), Some("web"))
    );
    assert!(event.note.unwrap_or_default().contains("listener"));
    let _ = agent_at;
    let firing = notified(&hook, &["firing"]).await?;
    let alert = &firing[0].json()["alerts"][0];
    assert_eq!(alert["labels"]["host"], NODE);
    assert_eq!(alert["labels"]["check"], "listener");
    assert_eq!(alert["labels"]["namespace"], APP);
    assert_eq!(alert["labels"]["zone"], ZONE);
    assert!(
        firing[0]
            .header("X-Vedette-Signature")
            .is_some_and(|s| s.starts_with("sha256=")),
        "signed with the Secret's key: {:?}",
        firing[0].headers
    );

    // CRITICAL → OK.
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    let (_, satellite_after) = propagate(&agent, &satellite, 0.0).await?;
    eprintln!("OK reached the satellite {satellite_after:?} after the agent");
    let started = Instant::now();
    fleet::rule_set_status(&client, APP, "web", STATUS_WAIT, |s| {
        (s.checks_by_state.ok == 1 && s.checks_by_state.critical == 0 && s.problems.is_empty())
            .then_some(())
    })
    .await?;
    eprintln!(
        "OK reached RuleSet status {:?} after the satellite",
        started.elapsed()
    );
    let recovered = fleet::event(&client, APP, "CheckRecovered", NODE, STATUS_WAIT).await?;
    assert_eq!(recovered.type_.as_deref(), Some("Normal"));
    notified(&hook, &["firing", "resolved"]).await?;
    drop(listener);

    scenario.operator.ensure_running()?;
    satellite.ensure_running()?;
    agent.ensure_running()?;
    scenario.plane.ensure_running()
}

/// Waits until the agent's own /metrics shows `state`, then until the satellite's does, at
/// most 2 s later; returns when the agent showed it and how much later the satellite did.
async fn propagate(
    agent: &NodeAgent,
    satellite: &Satellite,
    state: f64,
) -> anyhow::Result<(Instant, Duration)> {
    let labels = [r#"check="listener""#];
    wait::until(
        "the agent's /metrics to show the state",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || async {
            let found = agent.metric("vedette_check_state", &labels).await?;
            Ok((found == Some(state)).then_some(()))
        },
    )
    .await?;
    let seen = Instant::now();
    let host = format!(r#"host="{NODE}""#);
    wait::until(
        "the satellite's /metrics to show the state",
        Duration::from_secs(2),
        Duration::from_millis(50),
        || async {
            let found = satellite
                .metric("vedette_satellite_check_state", &[&host, labels[0]])
                .await?;
            Ok((found == Some(state)).then_some(()))
        },
    )
    .await?;
    Ok((seen, seen.elapsed()))
}

fn notifications(hook: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: hook-key, namespace: {APP}}}
stringData: {{key: an-e2e-webhook-key}}
---
apiVersion: vedette.dev/v1alpha1
kind: NotificationConfig
metadata: {{name: team, namespace: {APP}}}
spec:
  receivers:
    - name: hook
      webhook: {{url: "{hook}/hook", hmacSecret: {{name: hook-key, key: key}}}}
  routes:
    - receiver: hook
      matchers: [{{name: severity, value: "critical|none", matchType: "=~"}}]
      groupWaitSeconds: 1
      groupIntervalSeconds: 1
"#
    )
}

/// Waits until the NotificationConfig's status counts its receiver and route and is Ready.
async fn notification_status(client: &kube::Client) -> anyhow::Result<()> {
    let api: kube::Api<vedette_crds::NotificationConfig> =
        kube::Api::namespaced(client.clone(), APP);
    wait::until(
        "the NotificationConfig's status",
        STATUS_WAIT,
        Duration::from_millis(250),
        || async {
            let config = api.get("team").await?;
            Ok(config
                .status
                .filter(|s| {
                    s.receivers == 1
                        && s.routes == 1
                        && s.conditions
                            .iter()
                            .any(|c| c.type_ == "Ready" && c.status == "True")
                })
                .map(|_| ()))
        },
    )
    .await
}

/// Waits until the webhook got exactly notifications of `statuses`, in order.
async fn notified(hook: &Webhook, statuses: &[&str]) -> anyhow::Result<Vec<Received>> {
    let got = wait::until(
        &format!("webhook notifications {statuses:?}"),
        STATUS_WAIT,
        Duration::from_millis(100),
        || async {
            let got = hook.on("/hook");
            let seen: Vec<String> = got
                .iter()
                .map(|r| r.json()["status"].as_str().unwrap_or_default().to_owned())
                .collect();
            Ok((seen == statuses).then_some(got))
        },
    )
    .await?;
    Ok(got)
}
