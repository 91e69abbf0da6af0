//! A check's credentials come from a Secret of its application: an HTTP check with basic
//! authentication against a server of the test that answers 401 to anything but the right
//! password. The masters copy the value into the zone's check-secrets Secret, the satellite
//! (which may read only that Secret) puts it in the plan of the machine that runs the check,
//! and the check is OK; the value is in no bundle ConfigMap, RuleSet status, Event or
//! satellite `/v1/state`. Rotating the password (server and Secret) makes the check CRITICAL
//! and then OK again without any restart.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use vedette_e2e::fleet::{self, NodeAgent, Satellite, SatelliteMode};
use vedette_e2e::operator::apply_yaml;

const NAMESPACE: &str = "res-secrets";
const APP: &str = "res-secrets-app";
const ZONE: &str = "cs";
const NODE: &str = "cs-node-1";
const FIRST: &str = "first-Pa55word-4b1c";
const SECOND: &str = "second-Pa55word-9e7d";
/// The masters read the Secrets again every minute; a pass comes within seconds of it.
const ROTATION_WAIT: Duration = Duration::from_secs(100);

/// `Authorization: Basic` of `monitor:<password>`.
fn basic(password: &str) -> String {
    let text = format!("monitor:{password}");
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

/// A server answering 200 to the expected password and 401 otherwise; one request per
/// connection.
async fn guarded_server(expected: Arc<Mutex<String>>) -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let expected = expected.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request).to_lowercase();
                let wanted = format!(
                    "authorization: {}",
                    basic(&expected.lock().expect("lock")).to_lowercase()
                );
                let status = if text.contains(&wanted) {
                    "200 OK"
                } else {
                    "401 Unauthorized"
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok(port)
}

fn manifests(port: u16, password: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Secret
metadata: {{name: web-credentials, namespace: {APP}}}
stringData: {{password: {password}}}
---
apiVersion: vedette.dev/v1alpha1
kind: CheckTemplate
metadata: {{name: guarded, namespace: {APP}}}
spec:
  check:
    http:
      url: http://127.0.0.1:{port}/
      auth: {{username: monitor, passwordSecret: {{name: web-credentials, key: password}}}}
  intervalSeconds: 2
  retryIntervalSeconds: 2
  maxAttempts: 1
  timeoutSeconds: 1
---
apiVersion: vedette.dev/v1alpha1
kind: RuleSet
metadata: {{name: guarded, namespace: {APP}}}
spec:
  machines: {{nodeSelector: {{matchLabels: {{role: web}}}}, zones: [{ZONE}]}}
  rules:
    - {{name: login, template: {{name: guarded}}}}
"#
    )
}

async fn guarded_state(
    client: &kube::Client,
    want_ok: bool,
    timeout: Duration,
) -> anyhow::Result<()> {
    fleet::rule_set_status(client, APP, "guarded", timeout, |s| {
        let settled = if want_ok {
            s.checks_by_state.ok == 1
        } else {
            s.checks_by_state.critical == 1
        };
        (s.checks == 1 && settled).then_some(())
    })
    .await
}

/// Every place a value must never appear, as text.
async fn everything_visible(
    scenario: &fleet::Scenario,
    satellite: &Satellite,
) -> anyhow::Result<String> {
    let kubectl = |args: &[&str]| -> anyhow::Result<String> {
        let output = scenario.plane.kubectl().args(args).output()?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let mut seen = String::new();
    seen += &kubectl(&["get", "configmaps", "-n", NAMESPACE, "-o", "yaml"])?;
    seen += &kubectl(&["get", "rulesets,checktemplates", "-A", "-o", "yaml"])?;
    seen += &kubectl(&["get", "events", "-A", "-o", "yaml"])?;
    seen += &kubectl(&["get", "monitorzones", "-o", "yaml"])?;
    seen += &satellite.get("/v1/state").await?.1;
    seen += &satellite.get("/metrics").await?.1;
    Ok(seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_credentials_come_from_a_secret_and_follow_its_rotation() -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let flags = ["--insecure-no-auth"];
    let mut scenario = fleet::scenario(NAMESPACE, APP, ZONE, &[NODE], port, &flags).await?;
    let client = scenario.client.clone();
    let expected = Arc::new(Mutex::new(FIRST.to_owned()));
    let server = guarded_server(expected.clone()).await?;
    apply_yaml(&client, &manifests(server, FIRST)).await?;
    let masters = [scenario.operator.url()];
    let mut satellite = Satellite::start(
        &scenario.plane,
        NAMESPACE,
        ZONE,
        "cs-satellite-0",
        &masters,
        SatelliteMode::KubeInsecure,
    )?;
    satellite.wait_ready().await?;
    let mut agent = NodeAgent::start(&scenario.plane, NODE, &[satellite.url()])?;

    guarded_state(&client, true, Duration::from_secs(60)).await?;
    let zone_secret = scenario
        .plane
        .kubectl()
        .args([
            "get",
            "secret",
            "-n",
            NAMESPACE,
            "vedette-zone-cs-check-secrets",
            "-o",
            "jsonpath={.data}",
        ])
        .output()?;
    let data = String::from_utf8_lossy(&zone_secret.stdout);
    assert!(
        data.contains(&format!("{APP}.web-credentials.")),
        "the zone's check secrets hold no value for the check: {data:?}"
    );
    let seen = everything_visible(&scenario, &satellite).await?;
    assert!(
        !seen.contains(FIRST),
        "the password shows outside the plan of the machine that runs the check"
    );

    // Rotation: the server wants the new password first (CRITICAL), then the Secret has it.
    *expected.lock().expect("lock") = SECOND.to_owned();
    guarded_state(&client, false, Duration::from_secs(30)).await?;
    apply_yaml(&client, &manifests(server, SECOND)).await?;
    guarded_state(&client, true, ROTATION_WAIT).await?;
    let seen = everything_visible(&scenario, &satellite).await?;
    assert!(
        !seen.contains(SECOND),
        "the new password shows outside plans"
    );

    drop(listener);
    agent.ensure_running()?;
    satellite.ensure_running()?;
    scenario.operator.ensure_running()?;
    scenario.plane.ensure_running()
}
