//! Test tools built from Go modules besides the control plane: helm and kwok
//! (`e2e/tools/build-helm.sh`, cached by version), and the Prometheus Operator's monitor CRDs
//! (`e2e/tools/prometheus-operator-crds.sh`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::Context;

/// The directory holding helm and kwok, building them when missing.
pub fn tools_dir() -> anyhow::Result<PathBuf> {
    script_dir("build-helm.sh")
}

/// The directory holding the Prometheus Operator's PodMonitor and ServiceMonitor CRDs
/// (`monitoring.coreos.com_podmonitors.yaml`, `…_servicemonitors.yaml`), downloading the Go
/// module that has them when missing.
pub fn prometheus_operator_crds() -> anyhow::Result<PathBuf> {
    script_dir("prometheus-operator-crds.sh")
}

/// Runs `e2e/tools/<script>` and takes the directory it prints last.
pub(crate) fn script_dir(script: &str) -> anyhow::Result<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tools")
        .join(script);
    let output = Command::new("bash")
        .arg(&path)
        .output()
        .with_context(|| format!("run {script}"))?;
    anyhow::ensure!(
        output.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout)?;
    Ok(PathBuf::from(
        stdout
            .lines()
            .last()
            .with_context(|| format!("{script} printed no directory"))?
            .trim(),
    ))
}

/// A `helm` command bound to `plane`, with its cache, config and data inside the plane's
/// temporary directory (nothing of the user's own helm setup is read or written).
pub fn helm(plane: &crate::ControlPlane) -> anyhow::Result<Command> {
    let mut command = Command::new(tools_dir()?.join("helm"));
    command.arg("--kubeconfig").arg(plane.kubeconfig());
    for (key, dir) in [
        ("HELM_CACHE_HOME", "cache"),
        ("HELM_CONFIG_HOME", "config"),
        ("HELM_DATA_HOME", "data"),
    ] {
        command.env(key, plane.dir().join("helm").join(dir));
    }
    Ok(command)
}

/// The repository's root.
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e lives in the repository")
        .to_owned()
}

/// Runs a command and fails with its output unless it succeeds.
pub fn run_ok(command: &mut Command) -> anyhow::Result<String> {
    let output = command
        .output()
        .with_context(|| format!("run {command:?}"))?;
    ensure_success(command, &output)?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn ensure_success(command: &Command, output: &Output) -> anyhow::Result<()> {
    anyhow::ensure!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// Builds binary `name` of package `name` (or takes `$override_var`), in the profile and
/// target directory of the running test.
pub fn build_binary(name: &str, override_var: &str) -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var(override_var) {
        return Ok(PathBuf::from(path));
    }
    // A test binary lives in target/<profile>/deps, a `[[bin]]` of this crate (the
    // benchmarks) in target/<profile>.
    let exe_dir = std::env::current_exe()?
        .parent()
        .context("the running binary has no directory")?
        .to_owned();
    let profile_dir = if exe_dir.file_name().is_some_and(|n| n == "deps") {
        exe_dir
            .parent()
            .context("test binary is not in target/<profile>/deps")?
            .to_owned()
    } else {
        exe_dir
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command
        .current_dir(repository())
        .args(["build", "-p", name, "--bin", name]);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        command.arg("--release");
    }
    if let Some(target) = profile_dir.parent() {
        command.env("CARGO_TARGET_DIR", target);
    }
    let output = command
        .output()
        .with_context(|| format!("run cargo build -p {name}"))?;
    anyhow::ensure!(
        output.status.success(),
        "cargo build -p {name} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let binary = profile_dir.join(name);
    anyhow::ensure!(binary.exists(), "{} was not built", binary.display());
    Ok(binary)
}
