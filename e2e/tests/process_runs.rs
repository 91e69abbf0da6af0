//! Business processes run, on the real control plane with real facts and real time: a
//! twopm-shaped process (seed 003) in New York time whose windows open a minute or two after
//! the test begins, a real process named `twopm` started by the test, its success and failure
//! files written by the test, and the agent's satellite killed in the middle of a run.
//!
//! - the element stays in Standby while `twopm` runs before its window, goes Running when the
//!   window opens, Completed when the success file appears (while the agent is cut off from
//!   its satellite: the transition arrives after the outage, in order), Standby when the
//!   standby window opens; a second run (a new spec) writes the failure file and ends Failed;
//!   the status, the history and the Events say so, with the clauses' messages;
//! - a second process whose dependent element starts first raises exactly one violation;
//! - a third process's deadline passes and its late violation is in the history within 2 s.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;
use vedette_crds::BusinessProcess;
use vedette_crds::process::{ElementState, ViolationKind};
use vedette_e2e::fleet::{NodeAgent, Satellite, SatelliteMode, event};
use vedette_e2e::http::http_get;
use vedette_e2e::operator::{self, Operator};
use vedette_e2e::{ControlPlane, wait};

const NAMESPACE: &str = "bp-e2e";
const APP: &str = "bp-app";
const ZONE: &str = "bp";
const NODE: &str = "bp-node-1";
const ZONE_NAME: &str = "America/New_York";

/// A minute of the process's day, as `HH:MM`, and when it begins (Unix ms).
#[derive(Clone, Copy, Debug)]
struct Minute {
    at_ms: u64,
}

impl Minute {
    fn hhmm(self) -> String {
        let zone = jiff::tz::TimeZone::get(ZONE_NAME).expect("zone");
        jiff::Timestamp::from_millisecond(self.at_ms as i64)
            .expect("time")
            .to_zoned(zone)
            .strftime("%H:%M")
            .to_string()
    }

    fn plus(self, minutes: u64) -> Minute {
        Minute {
            at_ms: self.at_ms + minutes * 60_000,
        }
    }
}

fn now_ms() -> u64 {
    jiff::Timestamp::now().as_millisecond() as u64
}

/// The first whole minute at least 60 s from now.
fn a_minute_from_now() -> Minute {
    let at = now_ms() + 60_000;
    Minute {
        at_ms: at.div_ceil(60_000) * 60_000,
    }
}

fn twopm(dir: &str, run: (Minute, Minute), standby: (Minute, Minute)) -> String {
    let window =
        |(a, b): (Minute, Minute)| format!("{{start: \"{}\", end: \"{}\"}}", a.hhmm(), b.hhmm());
    let (run, standby) = (window(run), window(standby));
    format!(
        r#"
apiVersion: vedette.dev/v1alpha1
kind: BusinessProcess
metadata: {{name: twopm, namespace: {APP}}}
spec:
  timeZone: {ZONE_NAME}
  elements:
    - name: twopm
      runsOn: {{hostNames: [{NODE}]}}
      standby:
        when: {{timeWindow: {standby}}}
        message: we are now in standby state
      running:
        when: {{timeWindow: {run}, processRunning: twopm}}
        message: twopm has started
        notify: [process-operations-group]
      completed:
        when: {{timeWindow: {run}, fileExists: {dir}/twopm.success}}
        message: twopm completed successfully
      failed:
        - when: {{timeWindow: {run}, fileExists: {dir}/twopm.fail}}
          message: twopm failed (twopm.fail written)
"#
    )
}

fn manifests(dir: &str, first: Minute) -> String {
    format!(
        r#"
apiVersion: vedette.dev/v1alpha1
kind: MonitorZone
metadata: {{name: {ZONE}}}
spec:
  nodeSelector: {{matchLabels: {{zone: {ZONE}}}}}
  satellites: {{replicas: 1}}
  agents: {{keepaliveIntervalSeconds: 2, planHoldSeconds: 600}}
---
apiVersion: vedette.dev/v1alpha1
kind: BusinessProcess
metadata: {{name: chain, namespace: {APP}}}
spec:
  elements:
    - name: first
      runsOn: {{hostNames: [{NODE}]}}
      standby: {{when: {{fileExists: {dir}/never}}}}
      running: {{when: {{processRunning: vd-first}}}}
      completed: {{when: {{fileExists: {dir}/first.done}}}}
      failed: [{{when: {{fileExists: {dir}/first.fail}}}}]
    - name: second
      runsOn: {{hostNames: [{NODE}]}}
      dependsOn: [first]
      standby: {{when: {{fileExists: {dir}/never}}}}
      running: {{when: {{processRunning: vd-second}}, message: second started}}
      completed: {{when: {{fileExists: {dir}/second.done}}}}
      failed: [{{when: {{fileExists: {dir}/second.fail}}}}]
---
apiVersion: vedette.dev/v1alpha1
kind: BusinessProcess
metadata: {{name: late, namespace: {APP}}}
spec:
  timeZone: {ZONE_NAME}
  elements:
    - name: report
      runsOn: {{hostNames: [{NODE}]}}
      completeBy: {{time: "{deadline}"}}
      standby: {{when: {{fileExists: {dir}/never}}}}
      running: {{when: {{processRunning: vd-never}}}}
      completed: {{when: {{fileExists: {dir}/never}}}}
      failed: [{{when: {{fileExists: {dir}/never}}}}]
---
{twopm}"#,
        deadline = first.hhmm(),
        twopm = twopm(dir, (first, first.plus(2)), (first.plus(2), first.plus(3))),
    )
}

/// A real process of this name: a copy of `sleep`, so that its `comm` is the name.
fn named_process(dir: &std::path::Path, name: &str) -> anyhow::Result<Child> {
    let path = dir.join(name);
    std::fs::copy("/bin/sleep", &path)?;
    Ok(Command::new(path).arg("600").spawn()?)
}

/// Every record of `kind` of the application, oldest first.
async fn records(master: &Operator, kind: &str) -> anyhow::Result<Vec<Value>> {
    records_at(port_of(master)?, kind).await
}

fn port_of(master: &Operator) -> anyhow::Result<u16> {
    Ok(master
        .url()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .parse()?)
}

/// Every record of `kind` of the application on the masters at `port`, oldest first.
async fn records_at(port: u16, kind: &str) -> anyhow::Result<Vec<Value>> {
    let path = format!("/v1/history?namespace={APP}&kind={kind}&limit=1000");
    let (status, body) = http_get(port, &path).await?;
    anyhow::ensure!(status == 200, "history: {status} {body}");
    let page: Value = serde_json::from_str(&body)?;
    let mut list = page["records"].as_array().cloned().unwrap_or_default();
    list.reverse();
    Ok(list)
}

/// The transitions of one element in the history: (from, to, clause, message, at_ms, host).
async fn transitions(
    master: &Operator,
    process: &str,
    element: &str,
) -> anyhow::Result<Vec<(String, String, String, String, u64, String)>> {
    Ok(records(master, "process_transition")
        .await?
        .into_iter()
        .filter(|r| r["ruleSet"] == process && r["check"] == element)
        .map(|r| {
            (
                r["detail"]["from"].as_str().unwrap_or_default().to_owned(),
                r["detail"]["to"].as_str().unwrap_or_default().to_owned(),
                r["detail"]["clause"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                r["message"].as_str().unwrap_or_default().to_owned(),
                r["atMs"].as_u64().unwrap_or_default(),
                r["host"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect())
}

async fn wait_for_state(
    master: &Operator,
    process: &str,
    element: &str,
    to: &str,
    count: usize,
    timeout: Duration,
) -> anyhow::Result<u64> {
    wait::until(
        &format!("{process}/{element} entering {to} (#{count})"),
        timeout,
        Duration::from_millis(100),
        || async {
            let found = transitions(master, process, element).await?;
            let into: Vec<u64> = found.iter().filter(|t| t.1 == to).map(|t| t.4).collect();
            Ok((into.len() >= count).then(|| into[count - 1]))
        },
    )
    .await
}

async fn process_status(
    client: &kube::Client,
    name: &str,
    timeout: Duration,
    accept: impl Fn(&vedette_crds::BusinessProcessStatus) -> bool,
) -> anyhow::Result<vedette_crds::BusinessProcessStatus> {
    let api: kube::Api<BusinessProcess> = kube::Api::namespaced(client.clone(), APP);
    wait::until(
        &format!("status of BusinessProcess {name}"),
        timeout,
        Duration::from_millis(250),
        || async {
            let status = api.get(name).await?.status.unwrap_or_default();
            Ok(accept(&status).then_some(status))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_run_on_real_facts_and_real_time() -> anyhow::Result<()> {
    let test_began = Instant::now();
    let plane = ControlPlane::start().await?;
    operator::install_crds(&plane).await?;
    let client = plane.client().await?;
    operator::create_namespace(&client, NAMESPACE).await?;
    operator::create_namespace(&client, APP).await?;
    operator::create_node(&client, NODE, &[("zone", ZONE)]).await?;
    let work = plane.dir().join("twopm-work");
    std::fs::create_dir_all(&work)?;
    let dir = work.to_str().unwrap_or_default().to_owned();
    let first = a_minute_from_now();
    operator::apply_yaml(&client, &manifests(&dir, first)).await?;

    let flags = ["--insecure-no-auth"];
    let mut master =
        Operator::start_with(&plane, plane.kubeconfig(), NAMESPACE, "master-0", &flags)?;
    master.wait_ready().await?;
    wait::until(
        "the zone's bundle with the elements",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            let (bundle, _) = operator::bundle(&client, NAMESPACE, ZONE).await?;
            Ok((bundle.elements.len() == 4).then_some(()))
        },
    )
    .await?;
    let mut satellite = Satellite::start(
        &plane,
        NAMESPACE,
        ZONE,
        "bp-satellite-0",
        &[master.url()],
        SatelliteMode::KubeInsecure,
    )?;
    satellite.wait_ready().await?;
    let mut agent = NodeAgent::start(&plane, NODE, &[satellite.url()])?;

    // twopm runs before its window: the element stays in Standby.
    let mut twopm_process = named_process(&work, "twopm")?;

    // The dependent starts first: one violation, naming both.
    let mut second = named_process(&work, "vd-second")?;
    wait_for_state(
        &master,
        "chain",
        "second",
        "Running",
        1,
        Duration::from_secs(60),
    )
    .await?;
    let status = process_status(&client, "chain", Duration::from_secs(30), |s| {
        s.violations == 1
    })
    .await?;
    let violation = &status.current_violations[0];
    assert_eq!(violation.kind, ViolationKind::Early);
    assert_eq!(
        (violation.element.as_str(), violation.dependency.as_deref()),
        ("second", Some("first"))
    );
    event(
        &client,
        APP,
        "DependencyViolation",
        "second started while first",
        Duration::from_secs(30),
    )
    .await?;
    // The rest of the chain in order raises nothing more.
    let mut first_process = named_process(&work, "vd-first")?;
    wait_for_state(
        &master,
        "chain",
        "first",
        "Running",
        1,
        Duration::from_secs(30),
    )
    .await?;
    std::fs::write(work.join("first.done"), b"")?;
    wait_for_state(
        &master,
        "chain",
        "first",
        "Completed",
        1,
        Duration::from_secs(30),
    )
    .await?;
    let violations = records(&master, "process_violation").await?;
    let of_chain: Vec<&Value> = violations
        .iter()
        .filter(|r| r["ruleSet"] == "chain")
        .collect();
    assert_eq!(of_chain.len(), 1, "{of_chain:?}");

    // Watched from now on, apart from the rest: when the late violation becomes visible.
    let master_port = port_of(&master)?;
    let late_watch = tokio::spawn(async move {
        wait::until(
            "the late violation",
            Duration::from_secs(180),
            Duration::from_millis(100),
            || async {
                let found = records_at(master_port, "process_violation").await?;
                Ok(found
                    .iter()
                    .any(|r| r["ruleSet"] == "late" && r["detail"]["kind"] == "Late")
                    .then(now_ms))
            },
        )
        .await
    });

    // The window opens: Running, and not before.
    let running_at = wait_for_state(
        &master,
        "twopm",
        "twopm",
        "Running",
        1,
        Duration::from_secs(150),
    )
    .await?;
    assert!(
        running_at >= first.at_ms,
        "entered Running at {running_at}, the window opens at {}",
        first.at_ms
    );
    assert!(
        running_at < first.at_ms + 5_000,
        "entered Running {} ms after the window opened",
        running_at - first.at_ms
    );

    // The deadline of `late` was the same minute: its late violation is there within 2 s.
    let seen_late = late_watch.await??;
    let late_by = seen_late.saturating_sub(first.at_ms);
    println!("late violation visible {late_by} ms after its deadline");

    // Cut the agent off mid-run; it completes meanwhile.
    satellite.kill();
    let outage_began = now_ms();
    std::fs::write(work.join("twopm.success"), b"")?;
    wait::until(
        "the agent's Completed, spooled",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || async {
            Ok(agent
                .log_tail(40)
                .lines()
                .any(|l| l.contains("Element changed state.") && l.contains("Completed"))
                .then_some(()))
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    satellite.restart()?;
    satellite.wait_ready().await?;
    let completed_at = wait_for_state(
        &master,
        "twopm",
        "twopm",
        "Completed",
        1,
        Duration::from_secs(60),
    )
    .await?;
    assert!(completed_at >= outage_began, "completed during the outage");
    let history = transitions(&master, "twopm", "twopm").await?;
    let steps: Vec<(&str, &str, &str, &str)> = history
        .iter()
        .map(|t| (t.0.as_str(), t.1.as_str(), t.2.as_str(), t.3.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            ("Standby", "Running", "running", "twopm has started"),
            (
                "Running",
                "Completed",
                "completed",
                "twopm completed successfully"
            ),
        ]
    );
    assert!(history.iter().all(|t| t.5 == NODE), "{history:?}");
    let status = process_status(&client, "twopm", Duration::from_secs(30), |s| {
        s.elements
            .first()
            .is_some_and(|e| e.state == ElementState::Completed)
    })
    .await?;
    let element = &status.elements[0];
    assert_eq!(
        element.message.as_deref(),
        Some("twopm completed successfully")
    );
    assert_eq!(element.machine.as_deref(), Some(NODE));
    assert!(element.last_run.is_some(), "{element:?}");
    assert_eq!(status.completed, 1);
    event(
        &client,
        APP,
        "ElementRunning",
        "twopm has started",
        Duration::from_secs(30),
    )
    .await?;

    // The standby window: back to Standby.
    let standby_at = wait_for_state(
        &master,
        "twopm",
        "twopm",
        "Standby",
        1,
        Duration::from_secs(200),
    )
    .await?;
    assert!(standby_at >= first.plus(2).at_ms && standby_at < first.plus(2).at_ms + 5_000);

    // A second run, its window open now: twopm still runs, and writes its failure file.
    let now = Minute {
        at_ms: now_ms() / 60_000 * 60_000,
    };
    std::fs::remove_file(work.join("twopm.success"))?;
    operator::apply_yaml(
        &client,
        &twopm(&dir, (now, now.plus(3)), (now.plus(3), now.plus(4))),
    )
    .await?;
    wait_for_state(
        &master,
        "twopm",
        "twopm",
        "Running",
        2,
        Duration::from_secs(60),
    )
    .await?;
    std::fs::write(work.join("twopm.fail"), b"")?;
    wait_for_state(
        &master,
        "twopm",
        "twopm",
        "Failed",
        1,
        Duration::from_secs(30),
    )
    .await?;
    let history = transitions(&master, "twopm", "twopm").await?;
    let last = history.last().expect("a transition");
    assert_eq!(
        (last.1.as_str(), last.2.as_str(), last.3.as_str()),
        ("Failed", "failed[0]", "twopm failed (twopm.fail written)")
    );
    let status =
        process_status(&client, "twopm", Duration::from_secs(30), |s| s.failed == 1).await?;
    assert_eq!(status.elements[0].state, ElementState::Failed);
    event(
        &client,
        APP,
        "ElementFailed",
        "twopm failed",
        Duration::from_secs(30),
    )
    .await?;
    assert!(
        late_by <= 2_000,
        "the late violation came {late_by} ms after its deadline"
    );

    // The status budget: at most one write per process per 10 s, only on change.
    let writes = master
        .metric(r#"vedette_operator_api_writes_total{kind="BusinessProcess",verb="status"}"#)
        .await?;
    let minutes = test_began.elapsed().as_secs_f64() / 60.0;
    println!(
        "BusinessProcess status writes: {writes} in {minutes:.1} min for 3 processes ({:.1} per process per minute)",
        writes / 3.0 / minutes
    );
    assert!(
        writes / 3.0 / minutes <= 6.0,
        "{writes} status writes in {minutes:.1} min exceed one per process per 10 s"
    );

    let started = Instant::now();
    for child in [&mut twopm_process, &mut second, &mut first_process] {
        let _ = child.kill();
        let _ = child.wait();
    }
    agent.ensure_running()?;
    master.ensure_running()?;
    println!("stopped in {:?}", started.elapsed());
    Ok(())
}
