//! What the operator owns, as the API server last told it: for every object labelled
//! `app.kubernetes.io/managed-by=vedette-operator`, its zone label, the hash of the content
//! last applied to it (an annotation), and for StatefulSets the ready/desired replicas. Fed by
//! metadata-only watches (full objects only for StatefulSets, whose status the zone reports),
//! so the operator knows after a restart or a failover what needs no write. Deployments are
//! still watched: satellites of earlier releases ran as one, which is deleted once the
//! zone's StatefulSet replaces it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use vedette_satellite::watch_backoff::backoff;

use super::error::Error;
use crate::build::common::{LABEL_MANAGED_BY, LABEL_ZONE, MANAGER};
use crate::metrics::Metrics;

/// Annotation holding the hash of the content the operator last applied to an object.
pub const APPLIED_HASH_ANNOTATION: &str = "vedette.dev/applied-hash";

/// Every kind the operator creates for a zone.
pub const KINDS: [&str; 11] = [
    "ConfigMap",
    "StatefulSet",
    "Deployment",
    "Service",
    "PodDisruptionBudget",
    "DaemonSet",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "ClusterRole",
    "ClusterRoleBinding",
];

/// Identifies an owned object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OwnedKey {
    /// Its kind, one of [`KINDS`].
    pub kind: String,
    /// Its namespace; empty when cluster-scoped.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl std::fmt::Display for OwnedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// What is known of an owned object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnedEntry {
    /// Value of its zone label.
    pub zone: Option<String>,
    /// The hash of the content last applied to it.
    pub applied_hash: Option<String>,
    /// For StatefulSets: ready and desired replicas.
    pub replicas: Option<(i32, i32)>,
}

#[derive(Default)]
struct Inner {
    entries: BTreeMap<OwnedKey, OwnedEntry>,
    relisting: BTreeMap<&'static str, Vec<(OwnedKey, OwnedEntry)>>,
    synced: BTreeSet<&'static str>,
}

/// The index of owned objects, shared by the watch tasks and the publisher.
#[derive(Default)]
pub struct OwnedIndex {
    inner: Mutex<Inner>,
}

impl OwnedIndex {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep using it.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether every kind has been listed once.
    pub fn synced(&self) -> bool {
        self.lock().synced.len() == KINDS.len()
    }

    /// The hash last applied to `key`, if the object exists.
    pub fn applied_hash(&self, key: &OwnedKey) -> Option<String> {
        self.lock().entries.get(key)?.applied_hash.clone()
    }

    /// Ready and desired replicas of a StatefulSet.
    pub fn replicas(&self, key: &OwnedKey) -> Option<(i32, i32)> {
        self.lock().entries.get(key)?.replicas
    }

    /// Every owned object labelled with `zone`.
    pub fn of_zone(&self, zone: &str) -> Vec<OwnedKey> {
        self.lock()
            .entries
            .iter()
            .filter(|(_, entry)| entry.zone.as_deref() == Some(zone))
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Records a successful apply before its watch event arrives.
    pub fn applied(&self, key: OwnedKey, zone: String, hash: String) {
        let mut inner = self.lock();
        let entry = inner.entries.entry(key).or_default();
        entry.zone = Some(zone);
        entry.applied_hash = Some(hash);
    }

    /// Records a successful delete before its watch event arrives.
    pub fn deleted(&self, key: &OwnedKey) {
        self.lock().entries.remove(key);
    }

    fn handle<T: ResourceExt>(
        &self,
        kind: &'static str,
        event: Event<T>,
        replicas: fn(&T) -> Option<(i32, i32)>,
    ) {
        let mut inner = self.lock();
        match event {
            Event::Apply(object) => {
                let (key, entry) = entry(kind, &object, replicas);
                inner.entries.insert(key, entry);
            }
            Event::Delete(object) => {
                let (key, _) = entry(kind, &object, replicas);
                inner.entries.remove(&key);
            }
            Event::Init => {
                inner.relisting.insert(kind, Vec::new());
            }
            Event::InitApply(object) => {
                let item = entry(kind, &object, replicas);
                inner.relisting.entry(kind).or_default().push(item);
            }
            Event::InitDone => {
                let listed = inner.relisting.remove(kind).unwrap_or_default();
                inner.entries.retain(|key, _| key.kind != kind);
                inner.entries.extend(listed);
                inner.synced.insert(kind);
            }
        }
    }
}

fn entry<T: ResourceExt>(
    kind: &str,
    object: &T,
    replicas: fn(&T) -> Option<(i32, i32)>,
) -> (OwnedKey, OwnedEntry) {
    let key = OwnedKey {
        kind: kind.to_owned(),
        namespace: object.namespace().unwrap_or_default(),
        name: object.name_any(),
    };
    let entry = OwnedEntry {
        zone: object.labels().get(LABEL_ZONE).cloned(),
        applied_hash: object.annotations().get(APPLIED_HASH_ANNOTATION).cloned(),
        replicas: replicas(object),
    };
    (key, entry)
}

fn no_replicas<T>(_: &T) -> Option<(i32, i32)> {
    None
}

fn stateful_set_replicas(set: &StatefulSet) -> Option<(i32, i32)> {
    let desired = set.spec.as_ref()?.replicas.unwrap_or(1);
    let ready = set
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    Some((ready, desired))
}

/// Starts one watch per owned kind (namespaced kinds in `namespace`); every event also
/// wakes the reconciler through `changed`.
pub fn spawn_watches(
    client: &Client,
    namespace: &str,
    index: &Arc<OwnedIndex>,
    changed: &Arc<Notify>,
    metrics: &Arc<Metrics>,
) {
    let config = watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGER}"));
    let shared = (index.clone(), changed.clone(), metrics.clone());
    let stateful_sets = watcher(
        Api::<StatefulSet>::namespaced(client.clone(), namespace),
        config.clone(),
    );
    drive(
        "StatefulSet",
        stateful_sets,
        stateful_set_replicas,
        shared.clone(),
    );
    metadata::<Deployment>(Api::namespaced(client.clone(), namespace), &config, &shared);
    metadata::<ConfigMap>(Api::namespaced(client.clone(), namespace), &config, &shared);
    metadata::<Service>(Api::namespaced(client.clone(), namespace), &config, &shared);
    metadata::<PodDisruptionBudget>(Api::namespaced(client.clone(), namespace), &config, &shared);
    metadata::<DaemonSet>(Api::namespaced(client.clone(), namespace), &config, &shared);
    metadata::<ServiceAccount>(Api::namespaced(client.clone(), namespace), &config, &shared);
    metadata::<Role>(Api::namespaced(client.clone(), namespace), &config, &shared);
    metadata::<RoleBinding>(Api::namespaced(client.clone(), namespace), &config, &shared);
    metadata::<ClusterRole>(Api::all(client.clone()), &config, &shared);
    metadata::<ClusterRoleBinding>(Api::all(client.clone()), &config, &shared);
}

type Shared = (Arc<OwnedIndex>, Arc<Notify>, Arc<Metrics>);

/// A metadata-only watch (`Api<PartialObjectMeta<K>>` asks for metadata only).
fn metadata<K>(api: Api<PartialObjectMeta<K>>, config: &watcher::Config, shared: &Shared)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let kind: &'static str = KINDS
        .iter()
        .find(|k| **k == K::kind(&()))
        .copied()
        .unwrap_or("Unknown");
    drive(
        kind,
        watcher(api, config.clone()),
        no_replicas,
        shared.clone(),
    );
}

fn drive<T>(
    kind: &'static str,
    stream: impl Stream<Item = Result<Event<T>, watcher::Error>> + Send + 'static,
    replicas: fn(&T) -> Option<(i32, i32)>,
    (index, changed, metrics): Shared,
) where
    T: ResourceExt + Send + 'static,
{
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(backoff(stream));
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => {
                    index.handle(kind, event, replicas);
                    changed.notify_one();
                }
                Err(source) => metrics.error(&Error::Watch { kind, source }),
            }
        }
    });
}
