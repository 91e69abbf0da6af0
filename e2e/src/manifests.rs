//! Reading manifest files and applying them with server-side apply through discovery, so any
//! kind (Namespaces, CRDs, Vedette resources) can be applied and read back.

use std::path::{Path, PathBuf};

use anyhow::Context;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, Scope};
use kube::{Api, Client};
use serde::Deserialize;

/// The field manager every e2e apply uses.
pub const FIELD_MANAGER: &str = "vedette-e2e";

/// One YAML document of a manifest file.
#[derive(Debug, Clone)]
pub struct Document {
    /// The file it came from.
    pub file: PathBuf,
    /// The document as JSON.
    pub value: serde_json::Value,
}

impl Document {
    /// `kind/namespace/name` for messages.
    pub fn describe(&self) -> String {
        let kind = self.value["kind"].as_str().unwrap_or("?");
        let name = self.value["metadata"]["name"].as_str().unwrap_or("?");
        match self.value["metadata"]["namespace"].as_str() {
            Some(ns) => format!("{kind} {ns}/{name} ({})", self.file.display()),
            None => format!("{kind} {name} ({})", self.file.display()),
        }
    }
}

/// The `*.yaml` files of a directory, sorted by name (not recursive).
pub fn yaml_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Every non-empty document of a file.
pub fn documents(file: &Path) -> anyhow::Result<Vec<Document>> {
    let text = std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?;
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_json::Value::deserialize(document)
            .with_context(|| format!("parse {}", file.display()))?;
        if !value.is_null() {
            documents.push(Document {
                file: file.to_owned(),
                value,
            });
        }
    }
    Ok(documents)
}

/// The text after `# expect:` in a file's leading comments: what a rejection must mention.
pub fn expected_rejection(file: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(file)?;
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .find_map(|l| l.strip_prefix("# expect:").map(|s| s.trim().to_owned()))
        .with_context(|| format!("{} has no `# expect:` comment", file.display()))
}

/// An API for the document's kind, in its namespace when the kind is namespaced.
pub async fn api_for(
    client: &Client,
    value: &serde_json::Value,
) -> anyhow::Result<Api<DynamicObject>> {
    let api_version = value["apiVersion"]
        .as_str()
        .context("document without apiVersion")?;
    let kind = value["kind"].as_str().context("document without kind")?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, capabilities) = discovery::pinned_kind(client, &gvk)
        .await
        .with_context(|| format!("discover {api_version} {kind}"))?;
    Ok(match capabilities.scope {
        Scope::Cluster => Api::all_with(client.clone(), &resource),
        Scope::Namespaced => {
            let namespace = value["metadata"]["namespace"].as_str().unwrap_or("default");
            Api::namespaced_with(client.clone(), namespace, &resource)
        }
    })
}

/// Server-side applies one document and returns the object the server holds afterwards.
pub async fn apply(
    client: &Client,
    value: &serde_json::Value,
) -> Result<DynamicObject, kube::Error> {
    apply_as(client, value, FIELD_MANAGER).await
}

/// Server-side applies one document as field manager `manager` (a GitOps tool, say).
pub async fn apply_as(
    client: &Client,
    value: &serde_json::Value,
    manager: &str,
) -> Result<DynamicObject, kube::Error> {
    let api = match api_for(client, value).await {
        Ok(api) => api,
        Err(error) => return Err(kube::Error::Service(error.into())),
    };
    let name = value["metadata"]["name"].as_str().unwrap_or_default();
    let params = PatchParams::apply(manager).force();
    api.patch(name, &params, &Patch::Apply(value)).await
}

/// Server-side applies one document with `dryRun=All` and strict field validation (a field
/// the schema does not have is an error, not silently dropped): the object the server would
/// hold, persisting nothing.
pub async fn dry_run_apply(
    client: &Client,
    value: &serde_json::Value,
) -> Result<DynamicObject, kube::Error> {
    let api = match api_for(client, value).await {
        Ok(api) => api,
        Err(error) => return Err(kube::Error::Service(error.into())),
    };
    let name = value["metadata"]["name"].as_str().unwrap_or_default();
    let params = PatchParams {
        dry_run: true,
        field_validation: Some(kube::api::ValidationDirective::Strict),
        ..PatchParams::apply(FIELD_MANAGER).force()
    };
    api.patch(name, &params, &Patch::Apply(value)).await
}

/// Where `applied` is not contained in `actual`: every field the manifest sets must come back
/// with the same value (the server may add defaults and metadata, nothing else may differ).
pub fn differences(applied: &serde_json::Value, actual: &serde_json::Value) -> Vec<String> {
    let mut found = Vec::new();
    compare("", applied, actual, &mut found);
    found
}

fn compare(
    path: &str,
    applied: &serde_json::Value,
    actual: &serde_json::Value,
    found: &mut Vec<String>,
) {
    use serde_json::Value;
    match (applied, actual) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                match b.get(key) {
                    Some(other) => compare(&format!("{path}.{key}"), value, other, found),
                    None => {
                        found.push(format!("{path}.{key}: applied {value}, missing after read"))
                    }
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (index, (x, y)) in a.iter().zip(b).enumerate() {
                compare(&format!("{path}[{index}]"), x, y, found);
            }
        }
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        (a, b) if a == b => {}
        (a, b) => found.push(format!("{path}: applied {a}, read back {b}")),
    }
}
