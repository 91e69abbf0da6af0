//! `vedette-operator run` as a real process against a [`ControlPlane`], plus the fixtures the
//! operator scenarios share (CRDs, namespaces, Nodes).
//!
//! **Finding the binary.** `env!("CARGO_BIN_EXE_…")` only names binaries of the crate under
//! test, and artifact dependencies are unstable, so the harness builds the operator itself:
//! once per test process it runs `$CARGO build -p vedette-operator` (the `cargo` that runs the
//! tests, same profile and target directory, so it is a no-op when nothing changed) and uses
//! `vedette-operator` in the directory above the test binary (`target/<profile>/`). Set
//! `VEDETTE_OPERATOR_BIN` to use a given binary instead.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, PostParams};

use crate::control_plane::free_port;
use crate::process::Managed;
use crate::{ControlPlane, manifests, wait};

/// The operator binary, built on first use.
pub fn binary() -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            crate::tools::build_binary("vedette-operator", "VEDETTE_OPERATOR_BIN")
                .map_err(|e| format!("{e:#}"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// A running `vedette-operator run`.
pub struct Operator {
    process: Managed,
    metrics_port: u16,
    identity: String,
}

impl Operator {
    /// Starts a replica named `identity` that keeps zones' objects in `namespace`.
    pub fn start(plane: &ControlPlane, namespace: &str, identity: &str) -> anyhow::Result<Self> {
        Self::start_as(plane, plane.kubeconfig(), namespace, identity)
    }

    /// Starts a replica with the credentials of `kubeconfig` (e.g. a ServiceAccount token).
    pub fn start_as(
        plane: &ControlPlane,
        kubeconfig: &Path,
        namespace: &str,
        identity: &str,
    ) -> anyhow::Result<Self> {
        Self::start_with(plane, kubeconfig, namespace, identity, &[])
    }

    /// Starts a replica with `kubeconfig` and extra flags (e.g. `--insecure-no-auth`).
    pub fn start_with(
        plane: &ControlPlane,
        kubeconfig: &Path,
        namespace: &str,
        identity: &str,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        Self::start_on(plane, kubeconfig, namespace, identity, extra, free_port()?)
    }

    /// Starts a replica listening on `metrics_port` (a restarted pod behind the same Service).
    pub fn start_on(
        plane: &ControlPlane,
        kubeconfig: &Path,
        namespace: &str,
        identity: &str,
        extra: &[&str],
        metrics_port: u16,
    ) -> anyhow::Result<Self> {
        let mut command = Command::new(binary()?);
        // Like a StatefulSet pod and its volume: a replica started again with the same
        // identity finds its history.
        let data_dir = plane.dir().join(format!("operator-{identity}-data"));
        command
            .env("KUBECONFIG", kubeconfig)
            .env("VEDETTE_LOG", "info,kube=warn")
            .args(["run", "--namespace", namespace, "--identity", identity])
            .args(["--listen", &format!("127.0.0.1:{metrics_port}")])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--image", "vedette-agent:e2e"])
            .args(extra);
        let log = plane.dir().join(format!("operator-{identity}.log"));
        Ok(Self {
            process: Managed::spawn(&format!("vedette-operator {identity}"), command, &log)?,
            metrics_port,
            identity: identity.to_owned(),
        })
    }

    /// Its base URL (the masters' endpoint for satellites, /metrics, /healthz).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.metrics_port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.metrics_port
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The replica's identity (its Lease holder name).
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Fails with the log when the process has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.process.ensure_running()
    }

    /// The end of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    /// SIGKILL, like a crashed pod.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// SIGTERM, like a pod being stopped: how it exited within `grace`, if it did.
    pub fn terminate(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        self.process.terminate(grace)
    }

    /// GET `path` on its HTTP port; the status line and body.
    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        crate::http::http_get(self.metrics_port, path).await
    }

    /// The value of one series of `/metrics` (the sum when several match), 0 when absent.
    pub async fn metric(&self, prefix: &str) -> anyhow::Result<f64> {
        let (_, body) = self.get("/metrics").await?;
        Ok(body
            .lines()
            .filter(|line| line.starts_with(prefix))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// Waits until `/readyz` answers 200 (every watch synced).
    pub async fn wait_ready(&mut self) -> anyhow::Result<()> {
        wait::until(
            &format!("operator {} /readyz", self.identity),
            Duration::from_secs(60),
            Duration::from_millis(200),
            || {
                let alive = self.process.ensure_running();
                let port = self.metrics_port;
                async move {
                    alive?;
                    let probe = crate::http::http_get(port, "/readyz").await;
                    Ok(matches!(probe, Ok((200, _))).then_some(()))
                }
            },
        )
        .await
    }
}

/// Applies `crds/*.yaml` and waits until every CRD is Established.
pub async fn install_crds(plane: &ControlPlane) -> anyhow::Result<()> {
    let client = plane.client().await?;
    let mut names = Vec::new();
    for file in manifests::yaml_files(&crate::tools::repository().join("crds"))? {
        for document in manifests::documents(&file)? {
            manifests::apply(&client, &document.value).await?;
            names.push(
                document.value["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    for name in names {
        wait::until(
            &format!("CRD {name} Established"),
            Duration::from_secs(30),
            Duration::from_millis(100),
            || {
                let (crds, name) = (crds.clone(), name.clone());
                async move {
                    let crd = crds.get(&name).await?;
                    let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
                    Ok(conditions
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                        .then_some(()))
                }
            },
        )
        .await?;
    }
    Ok(())
}

/// Creates a namespace.
pub async fn create_namespace(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await?;
    Ok(())
}

/// Creates a Node object with `labels` (no kubelet behind it: a plain API object).
pub async fn create_node(
    client: &kube::Client,
    name: &str,
    labels: &[(&str, &str)],
) -> anyhow::Result<()> {
    let node = Node {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        },
        ..Node::default()
    };
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await?;
    Ok(())
}

/// Server-side applies every document of a YAML text.
pub async fn apply_yaml(client: &kube::Client, yaml: &str) -> anyhow::Result<()> {
    use serde::Deserialize;
    for document in serde_yaml::Deserializer::from_str(yaml) {
        let value = serde_json::Value::deserialize(document)?;
        if !value.is_null() {
            manifests::apply(client, &value)
                .await
                .with_context(|| format!("apply {}", value["metadata"]["name"]))?;
        }
    }
    Ok(())
}

/// The bundle of `zone` as the operator published it in `namespace`, and its ConfigMaps.
pub async fn bundle(
    client: &kube::Client,
    namespace: &str,
    zone: &str,
) -> anyhow::Result<(
    vedette_protocol::plan::ZoneBundle,
    Vec<k8s_openapi::api::core::v1::ConfigMap>,
)> {
    use k8s_openapi::api::core::v1::ConfigMap;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let selector = format!("vedette.dev/zone={zone},app.kubernetes.io/component=bundle");
    let list = config_maps
        .list(&kube::api::ListParams::default().labels(&selector))
        .await?;
    let bundle = vedette_operator::build::bundle_from_config_maps(&list.items)?;
    Ok((bundle, list.items))
}

/// For each machine of a bundle, the ids of its checks (`namespace/ruleSet/rule`) and the
/// TCP port each would connect to.
pub fn checks_by_machine(
    bundle: &vedette_protocol::plan::ZoneBundle,
) -> std::collections::BTreeMap<String, Vec<(String, serde_json::Value)>> {
    bundle
        .machines
        .iter()
        .map(|(machine, indices)| {
            let checks = indices
                .iter()
                .map(|i| {
                    let check = &bundle.checks[*i as usize];
                    let spec = serde_json::to_value(&check.check).unwrap_or_default();
                    (check.id.to_string(), spec["tcp"]["port"].clone())
                })
                .collect();
            (machine.clone(), checks)
        })
        .collect()
}

/// Waits up to 60 s until `identity` holds the operator's Lease in `namespace`: a Lease lasts
/// 15 s after its holder's last renewal, so a take-over after a kill takes that and a pass.
pub async fn wait_for_lease(
    client: &kube::Client,
    namespace: &str,
    identity: &str,
) -> anyhow::Result<()> {
    crate::wait::until(
        &format!("{identity} holds the Lease"),
        Duration::from_secs(60),
        Duration::from_millis(250),
        || async {
            Ok(lease_holder(client, namespace)
                .await?
                .filter(|holder| holder == identity)
                .map(drop))
        },
    )
    .await
}

/// Who holds the operator's Lease (`vedette-operator` in `namespace`); `None` while nobody does.
pub async fn lease_holder(
    client: &kube::Client,
    namespace: &str,
) -> anyhow::Result<Option<String>> {
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), namespace);
    Ok(leases
        .get_opt("vedette-operator")
        .await?
        .and_then(|l| l.spec?.holder_identity)
        .filter(|h| !h.is_empty()))
}
