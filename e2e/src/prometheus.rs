//! Debian's Prometheus for the metrics scenarios (`make deps` installs package `prometheus`):
//! `promtool check metrics` on an exposition (its parser and its lint), and a real
//! Prometheus server scraping loopback targets, queried over its HTTP API. Every child process
//! is bounded in time and stopped when its guard is dropped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::control_plane::free_port;
use crate::http::http_get;
use crate::process::Managed;
use crate::wait;

/// How long one promtool run or one HTTP request to Prometheus may take.
const STEP: Duration = Duration::from_secs(30);

/// The two binaries of Debian's `prometheus` package.
#[derive(Clone, Debug)]
pub struct Tools {
    /// `promtool`.
    pub promtool: PathBuf,
    /// `prometheus`.
    pub prometheus: PathBuf,
}

/// The tools, found on `PATH`. Missing: an error when `CI` is set (CI must run these tests),
/// otherwise `None` after a loud message on stderr, so the caller skips.
pub fn tools() -> anyhow::Result<Option<Tools>> {
    let found = (find("promtool"), find("prometheus"));
    if let (Some(promtool), Some(prometheus)) = found {
        return Ok(Some(Tools {
            promtool,
            prometheus,
        }));
    }
    let message = "promtool and prometheus (Debian package `prometheus`) are not installed: \
                   run `make deps`";
    anyhow::ensure!(std::env::var_os("CI").is_none(), "{message}");
    eprintln!("\n!!!!!!!! SKIPPED: {message} !!!!!!!!\n");
    Ok(None)
}

fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

impl Tools {
    /// What `promtool check metrics` says about `exposition` (parse errors and lint
    /// problems, one a line); empty when it is clean. Fails when promtool cannot run or
    /// exits non-zero without a word.
    pub fn check_metrics(&self, exposition: &str) -> anyhow::Result<Vec<String>> {
        let mut child = Command::new(&self.promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("start promtool")?;
        child
            .stdin
            .take()
            .context("promtool's stdin")?
            .write_all(exposition.as_bytes())?;
        let deadline = Instant::now() + STEP;
        while child.try_wait()?.is_none() {
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!("promtool check metrics did not finish within {STEP:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = child.wait_with_output()?;
        let complaints: Vec<String> = [&output.stdout, &output.stderr]
            .into_iter()
            .flat_map(|bytes| {
                String::from_utf8_lossy(bytes)
                    .into_owned()
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter(|line| !line.trim().is_empty())
            .collect();
        anyhow::ensure!(
            output.status.success() || !complaints.is_empty(),
            "promtool check metrics exited with {} and said nothing",
            output.status
        );
        Ok(complaints)
    }
}

/// A scrape job: its name and its targets (`host:port`, scraped at `/metrics`).
#[derive(Clone, Debug)]
pub struct Job {
    /// `job` label.
    pub name: String,
    /// Targets, e.g. `127.0.0.1:9090`.
    pub targets: Vec<String>,
}

/// A running Prometheus server on a free loopback port, with its own config and storage in
/// `dir`.
pub struct Prometheus {
    process: Managed,
    port: u16,
}

/// A Prometheus configuration scraping `jobs` every `interval_seconds`, as the chart's
/// PodMonitor and ServiceMonitor do: path `/metrics`, plain HTTP, the target's own labels
/// kept (`honor_labels`: Vedette's `namespace` label is the application's, not the pod's).
pub fn config(jobs: &[Job], interval_seconds: u32) -> String {
    let mut text = format!(
        "global:\n  scrape_interval: {interval_seconds}s\n  scrape_timeout: {interval_seconds}s\n\
         scrape_configs:\n"
    );
    for job in jobs {
        let targets: Vec<String> = job.targets.iter().map(|t| format!("'{t}'")).collect();
        text.push_str(&format!(
            "  - job_name: '{}'\n    metrics_path: /metrics\n    honor_labels: true\n    \
             static_configs:\n      - targets: [{}]\n",
            job.name,
            targets.join(", ")
        ));
    }
    text
}

impl Prometheus {
    /// Starts Prometheus scraping `jobs` every second and waits until it is ready.
    pub async fn start(tools: &Tools, dir: &Path, jobs: &[Job]) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config(jobs, 1))?;
        let port = free_port()?;
        let mut command = Command::new(&tools.prometheus);
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn");
        let mut process = Managed::spawn("prometheus", command, &dir.join("prometheus.log"))?;
        let started = wait::until(
            "Prometheus /-/ready",
            Duration::from_secs(60),
            Duration::from_millis(200),
            || {
                let alive = process.ensure_running();
                async move {
                    alive?;
                    let answer = tokio::time::timeout(STEP, http_get(port, "/-/ready")).await;
                    Ok(matches!(answer, Ok(Ok((200, _)))).then_some(()))
                }
            },
        )
        .await;
        started.with_context(|| format!("prometheus log:\n{}", process.log_tail(30)))?;
        Ok(Self { process, port })
    }

    /// The result of the instant query `promql`: its `data.result` array (vector results:
    /// one object per series, `metric` holding the labels).
    pub async fn query(&self, promql: &str) -> anyhow::Result<Vec<serde_json::Value>> {
        let path = format!("/api/v1/query?query={}", percent_encode(promql));
        let (status, body) = tokio::time::timeout(STEP, http_get(self.port, &path))
            .await
            .with_context(|| format!("query {promql} did not answer within {STEP:?}"))??;
        let answer: serde_json::Value = serde_json::from_str(&body)
            .with_context(|| format!("query {promql}: {status} {body}"))?;
        anyhow::ensure!(
            status == 200 && answer["status"] == "success",
            "query {promql}: {status} {body}"
        );
        Ok(answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Fails with the log when the process has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.process.ensure_running()
    }

    /// The end of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }
}

/// `text` for a URL's query string: unreserved characters kept, every other byte `%XX`.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(
            percent_encode(r#"vedette_check_state{check="a b"} == 2"#),
            "vedette_check_state%7Bcheck%3D%22a%20b%22%7D%20%3D%3D%202"
        );
    }

    #[test]
    fn the_config_names_every_job_and_target() {
        let jobs = [Job {
            name: "zone".into(),
            targets: vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()],
        }];
        let text = config(&jobs, 1);
        assert!(text.contains("scrape_interval: 1s"), "{text}");
        assert!(
            text.contains("job_name: 'zone'") && text.contains("['127.0.0.1:1', '127.0.0.1:2']"),
            "{text}"
        );
    }
}
