//! Who sees what on the dashboard, on the real control plane with real tokens: the masters
//! (without `--insecure-no-auth`) hold CRITICAL checks of two applications, `dash-shop` and
//! `dash-billing`, sent by a satellite with its ServiceAccount's token. In a real browser
//! (`e2e/browser/access.cjs`):
//! - the dashboard asks for a login; a garbage token is refused with the API server's reason;
//! - a ServiceAccount bound to `vedette-view` in `dash-shop` only sees that application's
//!   checks, and nothing of `dash-billing` on any view, in the filters, in the API (its checks,
//!   its check page) or in the live stream; zones are not shown to it (403);
//! - the cluster's admin sees both applications and the zones.

use std::time::Duration;

use vedette_crds::CheckState;
use vedette_e2e::browser;
use vedette_e2e::control_plane::ADMIN_TOKEN;
use vedette_e2e::fleet;
use vedette_e2e::http::{http_get_with_token, http_post};
use vedette_e2e::{ControlPlane, wait};
use vedette_protocol::clock::unix_ms;
use vedette_protocol::forward::Forwarded;
use vedette_protocol::plan::CheckId;
use vedette_protocol::report::{
    Batch, CheckReport, Envelope, Keepalive, PlanState, Report, StateCounts,
};

const NAMESPACE: &str = "dash";
const SHOP: &str = "dash-shop";
const BILLING: &str = "dash-billing";
const ZONE: &str = "dz";
const NODE: &str = "dash-node-1";

fn kubectl(plane: &ControlPlane, args: &[&str]) -> anyhow::Result<String> {
    let output = plane.kubectl().args(args).output()?;
    anyhow::ensure!(
        output.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

/// The billing application: its own TCP template and rule set on the same nodes.
fn billing() -> String {
    format!(
        r#"
apiVersion: vedette.dev/v1alpha1
kind: CheckTemplate
metadata: {{name: tcp, namespace: {BILLING}}}
spec:
  check:
    tcp: {{host: 127.0.0.1, port: 9}}
  intervalSeconds: 2
  maxAttempts: 1
  timeoutSeconds: 1
---
apiVersion: vedette.dev/v1alpha1
kind: RuleSet
metadata: {{name: ledger, namespace: {BILLING}}}
spec:
  machines: {{nodeSelector: {{matchLabels: {{role: web}}}}, zones: [{ZONE}]}}
  rules:
    - {{name: database, template: {{name: tcp}}}}
"#
    )
}

fn critical(sequence: u64, namespace: &str, rule_set: &str, rule: &str) -> Envelope<Forwarded> {
    change(sequence, (namespace, rule_set, rule), CheckState::Critical)
}

fn change(
    sequence: u64,
    (namespace, rule_set, rule): (&str, &str, &str),
    state: CheckState,
) -> Envelope<Forwarded> {
    let at_ms = unix_ms();
    Envelope {
        sequence,
        report: Forwarded::Agent {
            agent: NODE.to_owned(),
            sequence,
            report: Report::StateChange(CheckReport {
                check: CheckId {
                    namespace: namespace.to_owned(),
                    rule_set: rule_set.to_owned(),
                    rule: rule.to_owned(),
                },
                host: NODE.to_owned(),
                state,
                hard: true,
                attempt: 1,
                previous_state: CheckState::Ok,
                output: format!("TCP {} - {namespace}", state.name()),
                duration_ms: 1,
                at_ms,
            }),
        },
    }
}

fn batch() -> Batch<Forwarded> {
    let keepalive = Envelope {
        sequence: 1,
        report: Forwarded::Agent {
            agent: NODE.to_owned(),
            sequence: 1,
            report: Report::Keepalive(Keepalive {
                host: NODE.to_owned(),
                zone: ZONE.to_owned(),
                at_ms: unix_ms(),
                interval_seconds: 600,
                plan: PlanState::default(),
                counts: StateCounts::default(),
                spool_depth: 0,
                spool_dropped: 0,
                version: "e2e".to_owned(),
            }),
        },
    };
    Batch {
        agent: "dz-satellite-0".to_owned(),
        floor: 1,
        entries: vec![
            keepalive,
            critical(2, SHOP, "web", "listener"),
            critical(3, BILLING, "ledger", "database"),
        ],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_of_one_application_sees_nothing_of_another() -> anyhow::Result<()> {
    let mut scenario = fleet::scenario(NAMESPACE, SHOP, ZONE, &[NODE], 9, &[]).await?;
    let plane = &scenario.plane;
    vedette_e2e::operator::create_namespace(&scenario.client, BILLING).await?;
    vedette_e2e::operator::apply_yaml(&scenario.client, &billing()).await?;
    let port = scenario.operator.port();

    // A satellite of the operator's namespace sends both applications' checks.
    kubectl(
        plane,
        &[
            "-n",
            NAMESPACE,
            "create",
            "serviceaccount",
            "vedette-satellite",
        ],
    )?;
    let satellite = kubectl(
        plane,
        &[
            "-n",
            NAMESPACE,
            "create",
            "token",
            "vedette-satellite",
            "--audience",
            "vedette",
        ],
    )?;
    let body = serde_json::to_string(&batch())?;
    let (status, answer) = http_post(port, "/v1/satellite", Some(&satellite), &body).await?;
    assert_eq!(status, 200, "{answer}");
    wait::until(
        "both applications' checks on the dashboard",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            let (_, body) =
                http_get_with_token(port, "/ui/api/checks?state=CRITICAL", Some(ADMIN_TOKEN))
                    .await?;
            Ok((body.contains(SHOP) && body.contains(BILLING)).then_some(()))
        },
    )
    .await?;

    // A viewer of the shop: the built-in-style read role, bound in one namespace.
    kubectl(
        plane,
        &[
            "create",
            "clusterrole",
            "vedette-view",
            "--verb=get,list,watch",
            "--resource=monitorzones.vedette.dev,checktemplates.vedette.dev,rulesets.vedette.dev,businessprocesses.vedette.dev",
        ],
    )?;
    kubectl(plane, &["-n", SHOP, "create", "serviceaccount", "viewer"])?;
    kubectl(
        plane,
        &[
            "-n",
            SHOP,
            "create",
            "rolebinding",
            "viewer",
            "--clusterrole=vedette-view",
            &format!("--serviceaccount={SHOP}:viewer"),
        ],
    )?;
    let viewer = kubectl(plane, &["-n", SHOP, "create", "token", "viewer"])?;

    let shots = browser::screenshots("access")?;
    browser::run(
        "access.cjs",
        &[
            ("BASE", format!("http://127.0.0.1:{port}")),
            ("SHOTS", shots.display().to_string()),
            ("VIEWER_TOKEN", viewer),
            ("ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
            ("SHOP", SHOP.to_owned()),
            ("BILLING", BILLING.to_owned()),
            ("HOST", NODE.to_owned()),
        ],
        Duration::from_secs(180),
        |step| match step {
            "change" => {
                // A change in each application while the viewer's page listens.
                let next = Batch {
                    agent: "dz-satellite-0".to_owned(),
                    floor: 1,
                    entries: vec![
                        change(4, (BILLING, "ledger", "database"), CheckState::Warning),
                        change(5, (SHOP, "web", "listener"), CheckState::Warning),
                    ],
                };
                let body = serde_json::to_string(&next)?;
                let runtime = tokio::runtime::Handle::current();
                let (status, answer) = std::thread::scope(|s| {
                    s.spawn(|| {
                        runtime.block_on(http_post(port, "/v1/satellite", Some(&satellite), &body))
                    })
                    .join()
                    .expect("post")
                })?;
                anyhow::ensure!(status == 200, "{answer}");
                Ok("done".to_owned())
            }
            other => anyhow::bail!("the script asked for an unknown step {other:?}"),
        },
    )?;
    scenario.operator.ensure_running()?;
    scenario.plane.ensure_running()
}
