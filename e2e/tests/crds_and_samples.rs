//! The API contract against a real kube-apiserver: every CRD becomes Established, every
//! sample applies with server-side apply and reads back unchanged, and every invalid sample is
//! rejected with a message that names the problem.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use vedette_e2e::{ControlPlane, manifests, wait};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e lives in the repository")
        .to_owned()
}

/// Applies `crds/*.yaml` and waits until every CRD is Established.
async fn install_crds(plane: &ControlPlane) -> anyhow::Result<Vec<String>> {
    let client = plane.client().await?;
    let mut names = Vec::new();
    for file in manifests::yaml_files(&repo().join("crds"))? {
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
    for name in &names {
        wait::until(
            &format!("CRD {name} Established"),
            Duration::from_secs(30),
            Duration::from_millis(100),
            || {
                let crds = crds.clone();
                let name = name.clone();
                async move {
                    let crd = crds.get(&name).await?;
                    let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
                    let established = conditions
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True");
                    if let Some(bad) = conditions.iter().find(|c| {
                        c.type_ == "NonStructuralSchema"
                            || (c.type_ == "NamesAccepted" && c.status == "False")
                    }) {
                        anyhow::bail!(
                            "CRD {name}: {} {}",
                            bad.type_,
                            bad.message.clone().unwrap_or_default()
                        );
                    }
                    Ok(established.then_some(()))
                }
            },
        )
        .await?;
    }
    Ok(names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_crd_becomes_established() -> anyhow::Result<()> {
    let mut plane = ControlPlane::start().await?;
    let names = install_crds(&plane).await?;
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "businessprocesses.vedette.dev",
            "checktemplates.vedette.dev",
            "monitorzones.vedette.dev",
            "notificationconfigs.vedette.dev",
            "rulesets.vedette.dev"
        ]
    );
    // `kubectl explain` must teach the API from the field descriptions (published to OpenAPI
    // shortly after the CRD is established).
    let explained = wait::until(
        "kubectl explain",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || {
            let output = plane
                .kubectl()
                .args(["explain", "checktemplates.spec.maxAttempts"])
                .output();
            async move {
                let output = output?;
                let text = String::from_utf8_lossy(&output.stdout).to_string();
                anyhow::ensure!(
                    output.status.success(),
                    "{}",
                    String::from_utf8_lossy(&output.stderr)
                );
                Ok(Some(text))
            }
        },
    )
    .await?;
    assert!(
        explained.contains("Consecutive non-OK results"),
        "kubectl explain said: {explained}"
    );
    plane.ensure_running()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_applies_and_reads_back_unchanged() -> anyhow::Result<()> {
    let mut plane = ControlPlane::start().await?;
    install_crds(&plane).await?;
    let client = plane.client().await?;
    let mut files = manifests::yaml_files(&repo().join("config/samples"))?;
    assert!(
        files.len() >= 5,
        "expected the sample files, found {files:?}"
    );
    // The template library, as `kubectl apply -f` installs it without the chart.
    plane
        .kubectl()
        .args(["create", "namespace", "vedette-system"])
        .output()?;
    files.push(repo().join("charts/vedette/files/library.yaml"));
    let mut kinds = std::collections::BTreeSet::new();
    for file in files {
        for document in manifests::documents(&file)? {
            let what = document.describe();
            manifests::apply(&client, &document.value)
                .await
                .map_err(|e| anyhow::anyhow!("{what} was rejected: {e}"))?;
            let api = manifests::api_for(&client, &document.value).await?;
            let name = document.value["metadata"]["name"]
                .as_str()
                .unwrap_or_default();
            let actual = serde_json::to_value(api.get(name).await?)?;
            let differences = manifests::differences(&document.value, &actual);
            assert!(
                differences.is_empty(),
                "{what} changed on the server: {differences:#?}"
            );
            kinds.insert(
                document.value["kind"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
    }
    for kind in [
        "MonitorZone",
        "CheckTemplate",
        "RuleSet",
        "BusinessProcess",
        "NotificationConfig",
    ] {
        assert!(kinds.contains(kind), "no {kind} among the samples");
    }
    // Applying the same manifests again is a no-op: resourceVersions stay the same.
    let zones = plane
        .kubectl()
        .args([
            "get",
            "monitorzones",
            "-o",
            "jsonpath={.items[*].metadata.resourceVersion}",
        ])
        .output()?;
    let before = String::from_utf8_lossy(&zones.stdout).to_string();
    for document in manifests::documents(&repo().join("config/samples/00-zones.yaml"))? {
        manifests::apply(&client, &document.value).await?;
    }
    let zones = plane
        .kubectl()
        .args([
            "get",
            "monitorzones",
            "-o",
            "jsonpath={.items[*].metadata.resourceVersion}",
        ])
        .output()?;
    assert_eq!(
        before,
        String::from_utf8_lossy(&zones.stdout),
        "re-applying the same zones wrote them again"
    );
    plane.ensure_running()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invalid_sample_is_rejected_with_its_reason() -> anyhow::Result<()> {
    let mut plane = ControlPlane::start().await?;
    install_crds(&plane).await?;
    let client = plane.client().await?;
    let files = manifests::yaml_files(&repo().join("config/samples/invalid"))?;
    assert!(
        files.len() >= 15,
        "expected the invalid samples, found {files:?}"
    );
    let mut wrong = Vec::new();
    for file in files {
        let expected = manifests::expected_rejection(&file)?;
        for document in manifests::documents(&file)? {
            match manifests::apply(&client, &document.value).await {
                Ok(_) => wrong.push(format!(
                    "{} was accepted; it must be rejected ({expected})",
                    document.describe()
                )),
                // Schema and CEL failures are 422 Invalid; server-side apply refuses unknown
                // fields and duplicate list keys earlier, when it builds the typed patch.
                Err(kube::Error::Api(status))
                    if status.code >= 400 && status.message.contains(&expected) => {}
                Err(error) => wrong.push(format!(
                    "{}: expected a 422 mentioning {expected:?}, got: {error}",
                    document.describe()
                )),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "invalid samples not rejected as expected:\n{}",
        wrong.join("\n")
    );
    plane.ensure_running()
}
