//! Satellites and node agents (`vedette-agent`) as real processes against a [`ControlPlane`]
//! and an operator, plus the fixtures the results scenarios share: a zone with a short
//! keepalive interval, a TCP template and a rule set probing a local listener.
//!
//! The binary is found like the operator's (see [`crate::tools::build_binary`]): built once per test
//! process with the `cargo` running the tests; `VEDETTE_AGENT_BIN` overrides it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;

pub use crate::http::{http_get, http_post};

use crate::control_plane::free_port;
use crate::process::Managed;
use crate::{ControlPlane, wait};

/// The node agent binary, built on first use.
pub fn binary() -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            crate::tools::build_binary("vedette-agent", "VEDETTE_AGENT_BIN")
                .map_err(|e| format!("{e:#}"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// The satellite binary, built on first use.
pub fn satellite_binary() -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            crate::tools::build_binary("vedette-satellite", "VEDETTE_SATELLITE_BIN")
                .map_err(|e| format!("{e:#}"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// How a satellite gets its bundle and authenticates agents.
#[derive(Clone, Debug)]
pub enum SatelliteMode {
    /// Bundle and Lease from the cluster (KUBECONFIG, POD_NAMESPACE), no agent auth.
    KubeInsecure,
    /// Bundle and Lease from the cluster, agents' tokens checked with TokenReview; the
    /// masters are given the token in this file.
    KubeTokenReview(PathBuf),
    /// Bundle from this file (re-read every second), no agent auth, no Kubernetes.
    File(PathBuf),
}

/// A running `vedette-satellite`.
pub struct Satellite {
    process: Managed,
    launch: SatelliteLaunch,
    starts: u32,
}

/// Everything a satellite is started with, so it can be started again on the same port and
/// spool, as a restarted pod would be.
struct SatelliteLaunch {
    /// None: no control plane (a [`SatelliteMode::File`] bundle).
    kubeconfig: Option<PathBuf>,
    dir: PathBuf,
    namespace: String,
    zone: String,
    replica: String,
    masters: Vec<String>,
    /// Forward to the parent zone's satellites at this URL instead of `masters`.
    parent_zone_url: Option<String>,
    mode: SatelliteMode,
    port: u16,
    /// More flags of `vedette-satellite`.
    extra: Vec<String>,
}

impl SatelliteLaunch {
    fn command(&self) -> anyhow::Result<Command> {
        let mut command = Command::new(satellite_binary()?);
        match &self.kubeconfig {
            Some(kubeconfig) => command.env("KUBECONFIG", kubeconfig),
            None => command.env_remove("KUBECONFIG"),
        };
        command
            .env("POD_NAMESPACE", &self.namespace)
            .env("POD_NAME", &self.replica)
            .env("NODE_NAME", "satellite-node")
            .env("VEDETTE_LOG", "info,kube=warn")
            .args(["--zone", &self.zone, "--replica", &self.replica])
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--spool-dir")
            .arg(self.dir.join("spool"))
            .args(["--summary-seconds", "2", "--snapshot-seconds", "1"])
            .args([
                "--lease-renew-seconds",
                "1",
                "--lease-duration-seconds",
                "3",
            ]);
        for master in &self.masters {
            command.args(["--masters", master]);
        }
        if let Some(parent) = &self.parent_zone_url {
            command.args(["--parent-zone-url", parent]);
        }
        match &self.mode {
            SatelliteMode::KubeInsecure => {
                command.arg("--insecure-no-auth");
            }
            SatelliteMode::KubeTokenReview(token_file) => {
                command.arg("--token-file").arg(token_file);
            }
            SatelliteMode::File(path) => {
                command
                    .arg("--insecure-no-auth")
                    .arg("--bundle-file")
                    .arg(path);
            }
        }
        command.args(&self.extra);
        Ok(command)
    }

    fn spawn(&self, start: u32) -> anyhow::Result<Managed> {
        let log = self
            .dir
            .with_file_name(format!("satellite-{}.{start}.log", self.replica));
        Managed::spawn(
            &format!("satellite {}", self.replica),
            self.command()?,
            &log,
        )
    }
}

impl Satellite {
    /// Starts replica `replica` of `zone`, its objects in `namespace`, forwarding to `masters`.
    pub fn start(
        plane: &ControlPlane,
        namespace: &str,
        zone: &str,
        replica: &str,
        masters: &[String],
        mode: SatelliteMode,
    ) -> anyhow::Result<Self> {
        Self::launch(plane, namespace, zone, replica, masters, None, mode)
    }

    /// Starts replica `replica` of `zone`, a zone with a `parentZone`, forwarding to the
    /// parent zone's satellites at `parent_zone_url`.
    pub fn start_in_child_zone(
        plane: &ControlPlane,
        namespace: &str,
        zone: &str,
        replica: &str,
        parent_zone_url: &str,
        mode: SatelliteMode,
    ) -> anyhow::Result<Self> {
        let parent = Some(parent_zone_url.to_owned());
        Self::launch(plane, namespace, zone, replica, &[], parent, mode)
    }

    fn launch(
        plane: &ControlPlane,
        namespace: &str,
        zone: &str,
        replica: &str,
        masters: &[String],
        parent_zone_url: Option<String>,
        mode: SatelliteMode,
    ) -> anyhow::Result<Self> {
        let dir = plane.dir().join(format!("satellite-{replica}"));
        std::fs::create_dir_all(&dir)?;
        let launch = SatelliteLaunch {
            kubeconfig: Some(plane.kubeconfig().to_path_buf()),
            dir,
            namespace: namespace.to_owned(),
            zone: zone.to_owned(),
            replica: replica.to_owned(),
            masters: masters.to_vec(),
            parent_zone_url,
            mode,
            port: free_port()?,
            extra: Vec::new(),
        };
        Ok(Self {
            process: launch.spawn(1)?,
            launch,
            starts: 1,
        })
    }

    /// Starts replica `replica` of `zone` without a control plane: the bundle read from
    /// `bundle_file`, no agent authentication, its spool under `dir` (its logs beside it),
    /// forwarding to `masters`, with `extra` flags.
    pub fn start_without_cluster(
        dir: &Path,
        zone: &str,
        replica: &str,
        masters: &[String],
        bundle_file: &Path,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let dir = dir.join(format!("satellite-{replica}"));
        std::fs::create_dir_all(&dir)?;
        let launch = SatelliteLaunch {
            kubeconfig: None,
            dir,
            namespace: String::new(),
            zone: zone.to_owned(),
            replica: replica.to_owned(),
            masters: masters.to_vec(),
            parent_zone_url: None,
            mode: SatelliteMode::File(bundle_file.to_owned()),
            port: free_port()?,
            extra: extra.iter().map(|flag| (*flag).to_owned()).collect(),
        };
        Ok(Self {
            process: launch.spawn(1)?,
            launch,
            starts: 1,
        })
    }

    /// Sends `signal` (e.g. `TERM`) to the process.
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.process.pid().to_string())
            .status()?;
        anyhow::ensure!(status.success(), "kill -{signal} failed");
        Ok(())
    }

    /// How it exited, if it does within `within` (blocks the thread).
    pub fn exited_within(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        self.process.exited_within(within)
    }

    /// The end of its current log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    /// Starts it again on the same port and spool (after [`Satellite::kill`]; a running
    /// one is SIGKILLed first).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.process.kill();
        self.starts += 1;
        self.process = self.launch.spawn(self.starts)?;
        Ok(())
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.launch.port)
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.launch.port
    }

    /// Fails with the log when the process has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.process.ensure_running()
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// GET `path`: status and body.
    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        http_get(self.launch.port, path).await
    }

    /// Waits until `/readyz` answers 200 (a bundle is loaded).
    pub async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let what = format!("satellite {} /readyz", self.launch.replica);
        wait::until(
            &what,
            Duration::from_secs(60),
            Duration::from_millis(200),
            || {
                let alive = self.process.ensure_running();
                let port = self.launch.port;
                async move {
                    alive?;
                    Ok(matches!(http_get(port, "/readyz").await, Ok((200, _))).then_some(()))
                }
            },
        )
        .await
        .with_context(|| format!("satellite log:\n{}", self.process.log_tail(30)))
    }

    /// The value of the first series of `/metrics` named `name` whose labels contain every
    /// one of `labels` (e.g. `host="n1"`).
    pub async fn metric(&self, name: &str, labels: &[&str]) -> anyhow::Result<Option<f64>> {
        let (_, body) = self.get("/metrics").await?;
        Ok(metric_in(&body, name, labels))
    }
}

/// A running `vedette-agent node`.
pub struct NodeAgent {
    process: Managed,
    /// Its `/metrics` port.
    pub port: u16,
}

impl NodeAgent {
    /// Starts the agent of machine `host` sending to `upstreams` (primary first).
    pub fn start(plane: &ControlPlane, host: &str, upstreams: &[String]) -> anyhow::Result<Self> {
        Self::start_with(plane, host, upstreams, &[])
    }

    /// Starts it with `extra` flags of `vedette-agent node` (e.g. `--replay-per-second`).
    pub fn start_with(
        plane: &ControlPlane,
        host: &str,
        upstreams: &[String],
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let dir = plane.dir().join(format!("agent-{host}"));
        std::fs::create_dir_all(&dir)?;
        let mut command = Command::new(binary()?);
        command
            .env("NODE_NAME", host)
            .env("VEDETTE_LOG", "info")
            .env_remove("KUBECONFIG")
            .args([
                "node",
                "--plan-poll-seconds",
                "1",
                "--keepalive-seconds",
                "1",
            ])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--spool-dir")
            .arg(dir.join("spool"))
            .arg("--state-dir")
            .arg(dir.join("state"));
        for upstream in upstreams {
            command.args(["--upstream", upstream]);
        }
        command.args(extra);
        let log = plane.dir().join(format!("agent-{host}.log"));
        Ok(Self {
            process: Managed::spawn(&format!("agent {host}"), command, &log)?,
            port,
        })
    }

    /// Sends `signal` (e.g. `STOP`, `CONT`) to the process.
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.process.pid().to_string())
            .status()?;
        anyhow::ensure!(status.success(), "kill -{signal} failed");
        Ok(())
    }

    /// Fails with the log when the process has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.process.ensure_running()
    }

    /// The value of a series of its `/metrics` (see [`metric_in`]). A connection that fails
    /// is tried again twice, 200 ms apart: an agent busy replaying a backlog on a loaded
    /// machine may reset one scrape, and a scrape is not what the tests are about.
    pub async fn metric(&self, name: &str, labels: &[&str]) -> anyhow::Result<Option<f64>> {
        let mut attempt = 0;
        let body = loop {
            match http_get(self.port, "/metrics").await {
                Ok((_, body)) => break body,
                Err(error) if attempt >= 2 => return Err(error),
                Err(_) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        Ok(metric_in(&body, name, labels))
    }

    /// The end of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }
}

/// The value of the first series named `name` with every one of `labels` in `text`.
pub fn metric_in(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| {
            line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
        })
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

/// A zone `zone` (nodes labelled `zone=<zone>`, keepalives every 2 s), a TCP template and a
/// rule set `web` in `app` probing 127.0.0.1:`port` every 2 s on nodes with `role=web`.
pub fn fixture(zone: &str, app: &str, port: u16, satellites: u32) -> String {
    format!(
        r#"
apiVersion: vedette.dev/v1alpha1
kind: MonitorZone
metadata: {{name: {zone}}}
spec:
  nodeSelector: {{matchLabels: {{zone: {zone}}}}}
  satellites: {{replicas: {satellites}}}
  agents: {{keepaliveIntervalSeconds: 2, planHoldSeconds: 60}}
---
apiVersion: vedette.dev/v1alpha1
kind: CheckTemplate
metadata: {{name: tcp, namespace: {app}}}
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
metadata: {{name: web, namespace: {app}}}
spec:
  machines: {{nodeSelector: {{matchLabels: {{role: web}}}}, zones: [{zone}]}}
  rules:
    - {{name: listener, template: {{name: tcp}}, parameters: {{port: {port}}}}}
"#
    )
}

/// Writes `bundle` as JSON to `path` (for a satellite with `--bundle-file`).
pub fn write_bundle(
    path: &Path,
    bundle: &vedette_protocol::plan::ZoneBundle,
) -> anyhow::Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, serde_json::to_vec(bundle)?)?;
    std::fs::rename(&temporary, path)?;
    Ok(())
}

/// What every results scenario starts from.
pub struct Scenario {
    /// The control plane.
    pub plane: ControlPlane,
    /// An admin client.
    pub client: kube::Client,
    /// The operator (the masters).
    pub operator: crate::operator::Operator,
}

/// Starts a control plane and the operator (`operator_flags` added) keeping zones' objects in
/// `namespace`, with [`fixture`] applied for `nodes` (labelled `zone=<zone>`, `role=web`),
/// and waits until the zone's bundle holds every node.
pub async fn scenario(
    namespace: &str,
    app: &str,
    zone: &str,
    nodes: &[&str],
    port: u16,
    operator_flags: &[&str],
) -> anyhow::Result<Scenario> {
    use crate::operator;
    let plane = ControlPlane::start().await?;
    operator::install_crds(&plane).await?;
    let client = plane.client().await?;
    operator::create_namespace(&client, namespace).await?;
    operator::create_namespace(&client, app).await?;
    for node in nodes {
        operator::create_node(&client, node, &[("zone", zone), ("role", "web")]).await?;
    }
    operator::apply_yaml(&client, &fixture(zone, app, port, 1)).await?;
    let mut master = operator::Operator::start_with(
        &plane,
        plane.kubeconfig(),
        namespace,
        "master-0",
        operator_flags,
    )?;
    master.wait_ready().await?;
    wait::until(
        &format!("bundle of zone {zone} with every node"),
        Duration::from_secs(30),
        Duration::from_millis(200),
        || async {
            let (bundle, _) = operator::bundle(&client, namespace, zone).await?;
            Ok(nodes
                .iter()
                .all(|n| bundle.machines.contains_key(*n))
                .then_some(()))
        },
    )
    .await?;
    Ok(Scenario {
        plane,
        client,
        operator: master,
    })
}

/// Polls a RuleSet's status until `accept` returns a value.
pub async fn rule_set_status<T: std::fmt::Debug>(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
    accept: impl Fn(&vedette_crds::ruleset::RuleSetStatus) -> Option<T>,
) -> anyhow::Result<T> {
    let api: kube::Api<vedette_crds::RuleSet> = kube::Api::namespaced(client.clone(), namespace);
    let last = std::sync::Mutex::new(String::new());
    let found = wait::until(
        &format!("status of RuleSet {namespace}/{name}"),
        timeout,
        Duration::from_millis(250),
        || async {
            let status = api.get(name).await?.status.unwrap_or_default();
            *last.lock().expect("lock") = format!("{status:?}");
            Ok(accept(&status))
        },
    )
    .await;
    found.with_context(|| format!("last status: {}", last.lock().expect("lock")))
}

/// Polls a MonitorZone's status until `accept` returns a value.
pub async fn zone_status<T: std::fmt::Debug>(
    client: &kube::Client,
    zone: &str,
    timeout: Duration,
    accept: impl Fn(&vedette_crds::zone::MonitorZoneStatus) -> Option<T>,
) -> anyhow::Result<T> {
    let api: kube::Api<vedette_crds::MonitorZone> = kube::Api::all(client.clone());
    let last = std::sync::Mutex::new(String::new());
    let found = wait::until(
        &format!("status of MonitorZone {zone}"),
        timeout,
        Duration::from_millis(250),
        || async {
            let status = api.get(zone).await?.status.unwrap_or_default();
            *last.lock().expect("lock") = format!("{status:?}");
            Ok(accept(&status))
        },
    )
    .await;
    found.with_context(|| format!("last status: {}", last.lock().expect("lock")))
}

/// Polls the events.k8s.io Events of `namespace` until one has `reason` and a note
/// containing `note`.
pub async fn event(
    client: &kube::Client,
    namespace: &str,
    reason: &str,
    note: &str,
    timeout: Duration,
) -> anyhow::Result<k8s_openapi::api::events::v1::Event> {
    let api: kube::Api<k8s_openapi::api::events::v1::Event> =
        kube::Api::namespaced(client.clone(), namespace);
    wait::until(
        &format!("event {reason} in {namespace}"),
        timeout,
        Duration::from_millis(250),
        || async {
            let events = api.list(&Default::default()).await?;
            Ok(events.items.into_iter().find(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.note.as_deref().is_some_and(|n| n.contains(note))
            }))
        },
    )
    .await
}
