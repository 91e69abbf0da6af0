//! Where the zone bundle comes from: Kubernetes ConfigMaps (in a cluster), a JSON file
//! (standalone), or memory (tests). Every source publishes the bundle whenever it changes,
//! and keeps the last good one when the new one cannot be read (an update under way).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use std::collections::BTreeMap;

use crate::watch_backoff::backoff;
use vedette_protocol::bundle_shards::{BundleError, StoredShard, read_shards};
use vedette_protocol::names::{LABEL_COMPONENT, LABEL_ZONE, check_secrets_name, zone_label_value};
use vedette_protocol::plan::{SecretValues, ZoneBundle, content_hash};

/// What a ConfigMap without labels, annotations or data has of them.
static NONE: BTreeMap<String, String> = BTreeMap::new();

/// A ConfigMap as the shard reader sees it: name, labels, annotations and data.
pub fn stored_shard(config_map: &ConfigMap) -> StoredShard<'_> {
    StoredShard {
        name: config_map.metadata.name.as_deref().unwrap_or_default(),
        labels: config_map.metadata.labels.as_ref().unwrap_or(&NONE),
        annotations: config_map.metadata.annotations.as_ref().unwrap_or(&NONE),
        data: config_map.data.as_ref().unwrap_or(&NONE),
    }
}

/// The bundle a zone's ConfigMaps hold ([`vedette_protocol::bundle_shards`] says what is
/// checked).
pub fn bundle_from_config_maps(config_maps: &[ConfigMap]) -> Result<ZoneBundle, BundleError> {
    let shards: Vec<StoredShard<'_>> = config_maps.iter().map(stored_shard).collect();
    read_shards(&shards)
}

/// Where the current bundle is published.
pub type BundleSender = watch::Sender<Option<Arc<ZoneBundle>>>;

/// A source of zone bundles.
pub trait BundleSource: Send {
    /// Publishes bundles until the receivers are gone.
    fn run(self: Box<Self>, publish: BundleSender) -> BoxFuture<'static, ()>;
}

/// Publishes `bundle` unless the same bundle, with the same check secrets, is published
/// already.
pub fn publish_if_changed(publish: &BundleSender, bundle: ZoneBundle) {
    let hash = content_hash(&bundle);
    let same = publish.borrow().as_ref().is_some_and(|current| {
        content_hash(&**current) == hash && current.secrets == bundle.secrets
    });
    if !same {
        info!(message = "Zone bundle loaded.", zone = %bundle.zone, hash = %hash, machines = bundle.machines.len());
        publish.send_replace(Some(Arc::new(bundle)));
    }
}

/// A fixed bundle.
pub struct StaticBundleSource(pub ZoneBundle);

impl BundleSource for StaticBundleSource {
    fn run(self: Box<Self>, publish: BundleSender) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            publish_if_changed(&publish, self.0);
            publish.closed().await;
        })
    }
}

/// A bundle in a JSON file, re-read every `poll`.
pub struct FileBundleSource {
    /// The file.
    pub path: PathBuf,
    /// How often it is read again.
    pub poll: Duration,
}

impl BundleSource for FileBundleSource {
    fn run(self: Box<Self>, publish: BundleSender) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let mut last_error = String::new();
            while !publish.is_closed() {
                let read = std::fs::read(&self.path)
                    .map_err(|e| e.to_string())
                    .and_then(|bytes| {
                        serde_json::from_slice::<ZoneBundle>(&bytes).map_err(|e| e.to_string())
                    });
                match read {
                    Ok(bundle) => publish_if_changed(&publish, bundle),
                    Err(error) if error != last_error => {
                        warn!(message = "Failed to read the bundle file.", %error, path = %self.path.display());
                        last_error = error;
                    }
                    Err(_) => {}
                }
                tokio::time::sleep(self.poll).await;
            }
        })
    }
}

/// The check secrets a zone's Secret holds, by `namespace/name/key`.
pub fn secrets_from_secret(secret: Option<&Secret>) -> SecretValues {
    let Some(data) = secret.and_then(|s| s.data.as_ref()) else {
        return SecretValues::default();
    };
    vedette_protocol::check_secrets::from_data(data.iter().map(|(k, v)| (k, v.0.as_slice())))
}

/// The zone's bundle ConfigMaps in a namespace, watched, with the zone's check-secrets
/// Secret (watched by name: the satellite may read no other Secret).
pub struct KubeBundleSource {
    /// API client.
    pub client: kube::Client,
    /// Namespace of the ConfigMaps (the satellite's own).
    pub namespace: String,
    /// The zone.
    pub zone: String,
}

impl KubeBundleSource {
    /// The label selector of the zone's bundle shards.
    pub fn selector(zone: &str) -> String {
        format!(
            "{LABEL_ZONE}={},{LABEL_COMPONENT}=bundle",
            zone_label_value(zone)
        )
    }
}

impl BundleSource for KubeBundleSource {
    fn run(self: Box<Self>, publish: BundleSender) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
            let config = watcher::Config::default().labels(&Self::selector(&self.zone));
            let (reader, writer) = reflector::store();
            let config_maps = backoff(watcher(api, config))
                .reflect(writer)
                // Every event, not only applied objects: the reflector fills its store at
                // the end of the initial list (`InitDone`), after the objects were yielded.
                .map(|event| event.map(drop).map_err(|e| ("bundle config maps", e)));
            let secrets_api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
            let by_name = watcher::Config::default()
                .fields(&format!("metadata.name={}", check_secrets_name(&self.zone)));
            let (secret_reader, secret_writer) = reflector::store();
            let secrets = backoff(watcher(secrets_api, by_name))
                .reflect(secret_writer)
                .map(|event| event.map(drop).map_err(|e| ("check secrets", e)));
            let mut events = futures::stream::select(config_maps.boxed(), secrets.boxed());
            while let Some(event) = events.next().await {
                if let Err((what, error)) = event {
                    warn!(message = "Failed to watch the zone's bundle.", what, %error);
                    continue;
                }
                let config_maps: Vec<ConfigMap> =
                    reader.state().iter().map(|c| (**c).clone()).collect();
                let secret = secret_reader.state().first().cloned();
                match bundle_from_config_maps(&config_maps) {
                    Ok(mut bundle) => {
                        bundle.secrets = secrets_from_secret(secret.as_deref());
                        publish_if_changed(&publish, bundle);
                    }
                    // Mid-update: keep serving the bundle we have.
                    Err(error) => debug!(message = "Bundle not complete yet.", %error),
                }
                if publish.is_closed() {
                    return;
                }
            }
        })
    }
}
