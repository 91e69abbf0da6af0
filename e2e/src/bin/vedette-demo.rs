//! `make demo`: starts a local control plane, applies `crds/` and `config/samples/`, prints
//! `kubectl get` of every Vedette kind, and keeps the control plane up until Ctrl-C
//! (`--once` stops right after printing).

use std::path::Path;

use vedette_e2e::{ControlPlane, manifests};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let once = std::env::args().any(|a| a == "--once");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e lives in the repository");
    eprintln!("starting a local Kubernetes control plane (first run builds it from Go modules)…");
    let plane = ControlPlane::start().await?;
    let client = plane.client().await?;
    for dir in ["crds", "config/samples"] {
        for file in manifests::yaml_files(&repo.join(dir))? {
            for document in manifests::documents(&file)? {
                manifests::apply(&client, &document.value)
                    .await
                    .map_err(|e| anyhow::anyhow!("{}: {e}", document.describe()))?;
            }
        }
        if dir == "crds" {
            let status = plane
                .kubectl()
                .args([
                    "wait",
                    "--for=condition=Established",
                    "crd",
                    "--all",
                    "--timeout=60s",
                ])
                .status()?;
            anyhow::ensure!(status.success(), "CRDs did not become Established");
        }
    }
    let kinds = "monitorzones,checktemplates,rulesets,businessprocesses";
    let status = plane
        .kubectl()
        .args(["get", kinds, "--all-namespaces"])
        .status()?;
    anyhow::ensure!(status.success(), "kubectl get failed");
    if once {
        return Ok(());
    }
    let kubectl = plane.bin_dir().join("kubectl");
    println!(
        "\nThe control plane stays up until Ctrl-C. Explore it with:\n  export KUBECONFIG={}\n  {} get vedette -A\n  {} explain checktemplates.spec.check",
        plane.kubeconfig().display(),
        kubectl.display(),
        kubectl.display()
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
