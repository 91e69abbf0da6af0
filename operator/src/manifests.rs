//! Reads Vedette objects from manifest files (for `validate` and standalone mode). Documents
//! of other kinds are skipped; a Vedette document that does not parse is a problem naming the
//! file, the document and the field.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use vedette_crds::{BusinessProcess, CheckTemplate, MonitorZone, NotificationConfig, RuleSet};

/// One Vedette object read from a file.
#[derive(Debug, Clone)]
pub enum Object {
    /// A MonitorZone.
    Zone(Box<MonitorZone>),
    /// A CheckTemplate.
    Template(Box<CheckTemplate>),
    /// A RuleSet.
    RuleSet(Box<RuleSet>),
    /// A BusinessProcess.
    Process(Box<BusinessProcess>),
    /// A NotificationConfig.
    Notifications(Box<NotificationConfig>),
}

/// What a set of files held.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Objects that parsed.
    pub objects: Vec<Object>,
    /// Where each object of `objects` came from (same index): `file: document N`.
    pub origins: Vec<String>,
    /// One line per document that did not.
    pub problems: Vec<String>,
    /// `v1` Secrets (standalone mode reads webhook keys and SMTP passwords from them).
    pub secrets: crate::notify::send::StaticSecrets,
}

/// Errors that stop loading altogether.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A path could not be read.
    #[error("failed to read {path}")]
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeMeta {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
}

/// Loads every file of `paths` (directories: their `*.yaml`/`*.yml`, sorted).
pub fn load_paths(paths: &[PathBuf]) -> Result<Loaded, Error> {
    let mut loaded = Loaded::default();
    for file in expand(paths)? {
        let text = std::fs::read_to_string(&file).map_err(|source| Error::Read {
            path: file.clone(),
            source,
        })?;
        load_text(&file.display().to_string(), &text, &mut loaded);
    }
    Ok(loaded)
}

fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_yaml(p))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// Parses every document of one file's text into `loaded`.
pub fn load_text(source: &str, text: &str, loaded: &mut Loaded) {
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = match serde_yaml::Value::deserialize(document) {
            Ok(serde_yaml::Value::Null) => continue,
            Ok(value) => value,
            // Only a YAML syntax error fails here (a Value takes any shape). The parser
            // cannot resynchronise after one, and the stream would repeat it forever: the
            // documents before it stay loaded, the rest of the file is not read.
            Err(error) => {
                loaded.problems.push(format!(
                    "{source}: document {}: {error} (the rest of the file is not read)",
                    index + 1
                ));
                break;
            }
        };
        if is_secret(&value) {
            if let Err(error) = parse_secret(value, loaded) {
                loaded
                    .problems
                    .push(format!("{source}: document {}: {error}", index + 1));
            }
            continue;
        }
        match parse_object(value) {
            Ok(Some(object)) => {
                loaded.objects.push(object);
                loaded
                    .origins
                    .push(format!("{source}: document {}", index + 1));
            }
            Ok(None) => {}
            Err(error) => loaded
                .problems
                .push(format!("{source}: document {}: {error}", index + 1)),
        }
    }
}

/// A `v1` Secret document: its keys, `data` (base64) and `stringData` merged as the API
/// server merges them.
fn parse_secret(value: serde_yaml::Value, loaded: &mut Loaded) -> Result<(), String> {
    let secret: k8s_openapi::api::core::v1::Secret =
        serde_path_to_error::deserialize(value).map_err(|e| format!("Secret: {e}"))?;
    let name = secret
        .metadata
        .name
        .clone()
        .ok_or("Secret: metadata.name is missing")?;
    let namespace = secret
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let mut data: std::collections::BTreeMap<String, Vec<u8>> = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    for (key, value) in secret.string_data.unwrap_or_default() {
        data.insert(key, value.into_bytes());
    }
    loaded.secrets.secrets.insert((namespace, name), data);
    Ok(())
}

fn is_secret(value: &serde_yaml::Value) -> bool {
    let field = |name: &str| value.get(name).and_then(serde_yaml::Value::as_str);
    field("apiVersion") == Some("v1") && field("kind") == Some("Secret")
}

fn parse_object(value: serde_yaml::Value) -> Result<Option<Object>, String> {
    let meta: TypeMeta = serde_yaml::from_value(value.clone()).map_err(|e| e.to_string())?;
    if meta.api_version != format!("{}/{}", vedette_crds::GROUP, vedette_crds::VERSION) {
        return Ok(None);
    }
    let kind = meta.kind.clone();
    // serde_path_to_error names the field at fault (`spec.check.tcp.port: invalid type …`),
    // which serde_yaml's own errors from a `Value` do not.
    let object = match kind.as_str() {
        "MonitorZone" => serde_path_to_error::deserialize(value).map(|o| Object::Zone(Box::new(o))),
        "CheckTemplate" => {
            serde_path_to_error::deserialize(value).map(|o| Object::Template(Box::new(o)))
        }
        "RuleSet" => serde_path_to_error::deserialize(value).map(|o| Object::RuleSet(Box::new(o))),
        "BusinessProcess" => {
            serde_path_to_error::deserialize(value).map(|o| Object::Process(Box::new(o)))
        }
        "NotificationConfig" => {
            serde_path_to_error::deserialize(value).map(|o| Object::Notifications(Box::new(o)))
        }
        other => return Err(format!("unknown Vedette kind {other:?}")),
    };
    object.map(Some).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            format!("{kind}: {inner}")
        } else {
            format!("{kind}: field {path}: {inner}")
        }
    })
}

impl Object {
    /// Kind, namespace (empty for zones) and name, as compile's diagnostics name them.
    pub fn reference(&self) -> crate::compile::ObjectRef {
        use crate::compile::ObjectRef;
        fn name(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
            meta.name.as_deref().unwrap_or_default()
        }
        fn namespace(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
            meta.namespace.as_deref().unwrap_or("default")
        }
        match self {
            Object::Zone(o) => ObjectRef::zone(name(&o.metadata)),
            Object::Template(o) => ObjectRef::template(namespace(&o.metadata), name(&o.metadata)),
            Object::RuleSet(o) => ObjectRef::rule_set(namespace(&o.metadata), name(&o.metadata)),
            Object::Process(o) => ObjectRef::process(namespace(&o.metadata), name(&o.metadata)),
            Object::Notifications(o) => ObjectRef::new(
                crate::compile::notify::KIND_NOTIFICATION_CONFIG,
                namespace(&o.metadata),
                name(&o.metadata),
            ),
        }
    }
}

/// The compile input for these objects and machines.
pub fn input(
    objects: Vec<Object>,
    machines: Vec<crate::compile::Machine>,
) -> crate::compile::Input {
    let mut input = crate::compile::Input {
        machines,
        ..Default::default()
    };
    for object in objects {
        match object {
            Object::Zone(zone) => input.zones.push(*zone),
            Object::Template(template) => input.templates.push(*template),
            Object::RuleSet(rule_set) => input.rule_sets.push(*rule_set),
            Object::Process(process) => input.processes.push(*process),
            Object::Notifications(config) => input.notifications.push(*config),
        }
    }
    input
}
