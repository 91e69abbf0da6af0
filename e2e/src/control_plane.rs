//! A real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver (RBAC, service-account
//! tokens, static admin token) and kube-controller-manager (garbage collection and the other
//! built-in controllers). Each instance has its own free ports and temporary directory and is
//! stopped when dropped, also when a test fails.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::process::Managed;
use crate::wait;

/// The admin token written into the kubeconfig (group `system:masters`).
pub const ADMIN_TOKEN: &str = "vedette-e2e-admin-token";

/// A running control plane.
pub struct ControlPlane {
    // Field order is drop order: controller manager, then apiserver, then etcd, then the dir.
    controller_manager: Managed,
    apiserver: Managed,
    etcd: Managed,
    bin: PathBuf,
    kubeconfig: PathBuf,
    server: String,
    dir: tempfile::TempDir,
}

impl ControlPlane {
    /// Builds the binaries if needed (cached), starts everything and waits until the
    /// apiserver is ready.
    pub async fn start() -> anyhow::Result<Self> {
        let bin = binaries()?;
        let dir = tempfile::Builder::new().prefix("vedette-e2e-").tempdir()?;
        let etcd = start_etcd(&bin, dir.path())?;
        let etcd_url = etcd.1;
        let mut etcd = etcd.0;
        write_credentials(dir.path())?;
        let port = free_port()?;
        let server = format!("https://127.0.0.1:{port}");
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_yaml(&server))?;
        let mut apiserver = start_apiserver(&bin, dir.path(), port, &etcd_url)?;
        wait_ready(&mut apiserver, &mut etcd, &kubeconfig).await?;
        let controller_manager = start_controller_manager(&bin, dir.path(), &kubeconfig)?;
        Ok(Self {
            controller_manager,
            apiserver,
            etcd,
            bin,
            kubeconfig,
            server,
            dir,
        })
    }

    /// A client with admin rights.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        client_for(&self.kubeconfig).await
    }

    /// Path of the admin kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The apiserver URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The directory holding the control-plane binaries (kubectl among them).
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// The temporary directory of this control plane (logs, data, credentials).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A `kubectl` command bound to this control plane.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(self.bin.join("kubectl"));
        command.arg("--kubeconfig").arg(&self.kubeconfig);
        command
    }

    /// Starts kube-scheduler against this control plane with the admin kubeconfig and
    /// leader election off (the plain control plane has none: Pods stay Pending). It is
    /// stopped when the returned guard is dropped.
    pub fn start_scheduler(&self) -> anyhow::Result<Managed> {
        let mut command = Command::new(self.bin.join("kube-scheduler"));
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--leader-elect=false", "--bind-address", "127.0.0.1"])
            .args(["--secure-port", &free_port()?.to_string(), "--v", "1"]);
        Managed::spawn(
            "kube-scheduler",
            command,
            &self.dir.path().join("kube-scheduler.log"),
        )
    }

    /// Fails when any control-plane process has died.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.etcd.ensure_running()?;
        self.apiserver.ensure_running()?;
        self.controller_manager.ensure_running()
    }
}

/// Finds or builds the binaries: `$VEDETTE_K8S_BIN` when set, else the build script's cache.
fn binaries() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("VEDETTE_K8S_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/build-control-plane.sh");
    let output = Command::new("bash")
        .arg(&script)
        .output()
        .context("run build-control-plane.sh")?;
    anyhow::ensure!(
        output.status.success(),
        "build-control-plane.sh failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout)?;
    let dir = stdout
        .lines()
        .last()
        .context("build-control-plane.sh printed no directory")?;
    Ok(PathBuf::from(dir.trim()))
}

/// A TCP port free on 127.0.0.1 at the time of asking.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn start_etcd(bin: &Path, dir: &Path) -> anyhow::Result<(Managed, String)> {
    let (client, peer) = (free_port()?, free_port()?);
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let mut command = Command::new(bin.join("etcd"));
    command
        .arg("--data-dir")
        .arg(dir.join("etcd"))
        .args([
            "--listen-client-urls",
            &client_url,
            "--advertise-client-urls",
            &client_url,
        ])
        .args([
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
        ])
        .args(["--initial-cluster", &format!("default={peer_url}")])
        .args(["--unsafe-no-fsync", "--log-level", "warn"]);
    Ok((
        Managed::spawn("etcd", command, &dir.join("etcd.log"))?,
        client_url,
    ))
}

/// The service-account signing key and the static token file.
fn write_credentials(dir: &Path) -> anyhow::Result<()> {
    let key = dir.join("sa.key");
    let status = Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&key)
        .arg("2048")
        .stderr(std::process::Stdio::null())
        .status()
        .context("openssl is needed to make the service-account key")?;
    anyhow::ensure!(status.success(), "openssl genrsa failed");
    std::fs::write(
        dir.join("tokens.csv"),
        format!("{ADMIN_TOKEN},vedette-admin,1,system:masters\n"),
    )?;
    Ok(())
}

fn start_apiserver(bin: &Path, dir: &Path, port: u16, etcd_url: &str) -> anyhow::Result<Managed> {
    let key = dir.join("sa.key");
    let mut command = Command::new(bin.join("kube-apiserver"));
    command
        .args(["--etcd-servers", etcd_url])
        .args([
            "--bind-address",
            "127.0.0.1",
            "--advertise-address",
            "127.0.0.1",
        ])
        .args(["--secure-port", &port.to_string()])
        .arg("--cert-dir")
        .arg(dir.join("certs"))
        .arg("--token-auth-file")
        .arg(dir.join("tokens.csv"))
        .arg("--service-account-key-file")
        .arg(&key)
        .arg("--service-account-signing-key-file")
        .arg(&key)
        .args([
            "--service-account-issuer",
            "https://kubernetes.default.svc.cluster.local",
        ])
        .args([
            "--api-audiences",
            "https://kubernetes.default.svc.cluster.local,vedette",
        ])
        .args([
            "--authorization-mode",
            "RBAC",
            "--service-cluster-ip-range",
            "10.0.0.0/24",
        ])
        .args(["--disable-admission-plugins", "ServiceAccount"])
        .args(["--allow-privileged=true", "--v", "1"]);
    Managed::spawn("kube-apiserver", command, &dir.join("kube-apiserver.log"))
}

fn start_controller_manager(bin: &Path, dir: &Path, kubeconfig: &Path) -> anyhow::Result<Managed> {
    let mut command = Command::new(bin.join("kube-controller-manager"));
    command
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--leader-elect=false", "--bind-address", "127.0.0.1"])
        .args(["--secure-port", &free_port()?.to_string()])
        .arg("--service-account-private-key-file")
        .arg(dir.join("sa.key"))
        .args(["--use-service-account-credentials=false", "--v", "1"]);
    Managed::spawn(
        "kube-controller-manager",
        command,
        &dir.join("kube-controller-manager.log"),
    )
}

fn kubeconfig_yaml(server: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: {server}\n    insecure-skip-tls-verify: true\nusers:\n- name: admin\n  user:\n    token: {ADMIN_TOKEN}\ncontexts:\n- name: e2e\n  context:\n    cluster: e2e\n    user: admin\n    namespace: default\ncurrent-context: e2e\n"
    )
}

/// A client for a kubeconfig file.
pub async fn client_for(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let kubeconfig = Kubeconfig::read_from(kubeconfig)?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

async fn wait_ready(
    apiserver: &mut Managed,
    etcd: &mut Managed,
    kubeconfig: &Path,
) -> anyhow::Result<()> {
    let client = client_for(kubeconfig).await?;
    wait::until(
        "kube-apiserver /readyz",
        Duration::from_secs(90),
        Duration::from_millis(250),
        || {
            let client = client.clone();
            let alive = etcd
                .ensure_running()
                .and_then(|()| apiserver.ensure_running());
            async move {
                // A dead process ends the wait at once, with its log.
                if let Err(died) = alive {
                    return Ok(Some(Err(died)));
                }
                let request = http::Request::get("/readyz").body(Vec::new())?;
                let text = client.request_text(request).await?;
                Ok((text.trim() == "ok").then_some(Ok(())))
            }
        },
    )
    .await??;
    // The `default` namespace is created by the apiserver's own bootstrap controller.
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client);
    wait::until(
        "namespace default",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let namespaces = namespaces.clone();
            async move { Ok(namespaces.get_opt("default").await?.map(|_| ())) }
        },
    )
    .await
}
