//! The dashboard in a real browser (Debian's chromium driven by playwright-core), served by
//! `vedette-operator standalone` on manifests of this test: a TCP check against a port the
//! test holds open, a file check that warns, and a twopm-shaped business process whose element
//! runs while a process of that name runs and completes when its success file appears.
//!
//! The script (`e2e/browser/standalone.cjs`) asks for each change: the port closes and the
//! check turns CRITICAL on the open problems view without a reload; the checks view's filters
//! and sort work and live in the URL; the process view changes colour Standby → Running →
//! Completed as the test starts the process and writes the file. Screenshots of every view go
//! to `target/dashboard-screenshots/standalone/`.

use std::net::TcpListener;
use std::process::{Child, Command};
use std::time::Duration;

use vedette_e2e::browser;
use vedette_e2e::control_plane::free_port;
use vedette_e2e::process::Managed;
use vedette_e2e::wait;

const HOST: &str = "dash-host";

fn manifests(port: u16, work: &str) -> String {
    format!(
        r#"apiVersion: vedette.dev/v1alpha1
kind: MonitorZone
metadata: {{name: local}}
spec: {{nodeSelector: {{}}}}
---
apiVersion: vedette.dev/v1alpha1
kind: CheckTemplate
metadata: {{name: port-open, namespace: shop}}
spec:
  check:
    tcp: {{host: 127.0.0.1, port: {port}}}
  intervalSeconds: 2
  maxAttempts: 1
  timeoutSeconds: 1
---
apiVersion: vedette.dev/v1alpha1
kind: CheckTemplate
metadata: {{name: report-file, namespace: shop}}
spec:
  check:
    file: {{path: {work}/report.csv, metric: exists}}
  warning: "1:"
  intervalSeconds: 5
  maxAttempts: 1
  timeoutSeconds: 2
---
apiVersion: vedette.dev/v1alpha1
kind: RuleSet
metadata: {{name: storefront, namespace: shop}}
spec:
  machines: {{nodeSelector: {{}}}}
  rules:
    - {{name: checkout-port, template: {{name: port-open}}}}
    - {{name: daily-report, template: {{name: report-file}}}}
---
apiVersion: vedette.dev/v1alpha1
kind: BusinessProcess
metadata: {{name: twopm, namespace: batch}}
spec:
  elements:
    - name: twopm
      runsOn: {{hostNames: [{HOST}]}}
      standby: {{when: {{fileExists: {work}/never}}, message: we are now in standby state}}
      running: {{when: {{processRunning: vd-twopm}}, message: twopm has started}}
      completed: {{when: {{fileExists: {work}/twopm.success}}, message: twopm completed successfully}}
      failed: [{{when: {{fileExists: {work}/twopm.fail}}, message: twopm failed}}]
"#
    )
}

/// A real process named `name`: a copy of `sleep`, so that its `comm` is the name.
fn named_process(dir: &std::path::Path, name: &str) -> anyhow::Result<Child> {
    let path = dir.join(name);
    std::fs::copy("/bin/sleep", &path)?;
    Ok(Command::new(path).arg("600").spawn()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_sees_problems_filters_and_processes_change_live() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let work = dir.path().join("work");
    std::fs::create_dir_all(work.join("manifests"))?;
    let mut listener = Some(TcpListener::bind("127.0.0.1:0")?);
    let target = listener.as_ref().unwrap().local_addr()?.port();
    std::fs::write(
        work.join("manifests/dashboard.yaml"),
        manifests(target, &work.display().to_string()),
    )?;
    let port = free_port()?;
    let mut command = Command::new(vedette_e2e::operator::binary()?);
    command
        .args(["standalone", "-f"])
        .arg(work.join("manifests"))
        .args(["--host", HOST, "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path().join("data"));
    let mut standalone = Managed::spawn(
        "vedette-operator standalone",
        command,
        &dir.path().join("standalone.log"),
    )?;
    let base = format!("http://127.0.0.1:{port}");
    wait::until(
        "the checks' first results on the dashboard",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            let (status, body) =
                vedette_e2e::http::http_get(port, "/ui/api/checks?state=PENDING").await?;
            Ok((status == 200 && body.contains("\"total\":0")).then_some(()))
        },
    )
    .await?;

    let shots = browser::screenshots("standalone")?;
    let mut twopm = None;
    browser::run(
        "standalone.cjs",
        &[
            ("BASE", base),
            ("SHOTS", shots.display().to_string()),
            ("HOST", HOST.to_owned()),
            ("CHECK", "shop/storefront/checkout-port".to_owned()),
            ("PROCESS", "batch/twopm".to_owned()),
            ("ELEMENT", "twopm".to_owned()),
        ],
        Duration::from_secs(240),
        |step| {
            match step {
                "critical" => drop(listener.take()),
                "run" => twopm = Some(named_process(&work, "vd-twopm")?),
                "complete" => std::fs::write(work.join("twopm.success"), "done")?,
                other => anyhow::bail!("the script asked for an unknown step {other:?}"),
            }
            Ok("done".to_owned())
        },
    )?;
    for name in [
        "problems", "checks", "process", "check", "host", "zones", "matrix",
    ] {
        let shot = shots.join(format!("{name}.png"));
        anyhow::ensure!(shot.exists(), "no screenshot {}", shot.display());
    }
    if let Some(mut process) = twopm {
        let _ = process.kill();
        let _ = process.wait();
    }
    standalone.ensure_running()
}
