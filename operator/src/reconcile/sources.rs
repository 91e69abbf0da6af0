//! What the operator reads: MonitorZones, CheckTemplates, RuleSets, BusinessProcesses (all
//! namespaces) and Nodes, the latter as metadata only (name and labels are all compile
//! needs, and metadata watches keep the API-server load of 10,000 nodes small). Each is a
//! reflector store; every event of the Vedette kinds wakes the reconciler.
//!
//! Nodes are different: kubelets (and kwok) update a Node's status every few seconds, and
//! even a metadata-only watch delivers each update (the resourceVersion changes). Only a
//! Node that appears, disappears or changes its labels can change compile's output, so only
//! those wake the reconciler ([`NodeChanges`]); with 10,000 Nodes anything else would mean a
//! full compile every [`MAX_DEBOUNCE`](super::controller::MAX_DEBOUNCE) for nothing. The
//! store keeps neither managed fields nor annotations, which compile never reads.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Node;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use vedette_crds::{BusinessProcess, CheckTemplate, MonitorZone, NotificationConfig, RuleSet};
use vedette_satellite::watch_backoff::backoff;

use super::error::Error;
use crate::compile::{Input, Machine};
use crate::metrics::Metrics;

/// The reflector stores of everything compile reads.
#[derive(Clone)]
pub struct Sources {
    /// MonitorZones.
    pub zones: Store<MonitorZone>,
    /// CheckTemplates.
    pub templates: Store<CheckTemplate>,
    /// RuleSets.
    pub rule_sets: Store<RuleSet>,
    /// BusinessProcesses.
    pub processes: Store<BusinessProcess>,
    /// NotificationConfigs.
    pub notifications: Store<NotificationConfig>,
    /// Nodes, metadata only.
    pub nodes: Store<PartialObjectMeta<Node>>,
}

impl Sources {
    /// Starts the watches; `changed` is notified on every event.
    pub fn spawn(client: &Client, changed: &Arc<Notify>, metrics: &Arc<Metrics>) -> Self {
        let config = watcher::Config::default;
        let nodes = {
            let (reader, writer) = reflector::store();
            let api = Api::<PartialObjectMeta<Node>>::all(client.clone());
            let stream = backoff(watcher(api, config()))
                .modify(|node| {
                    node.metadata.managed_fields = None;
                    node.metadata.annotations = None;
                })
                .reflect(writer);
            let mut changes = NodeChanges::default();
            drive_filtered(
                "Node",
                stream,
                move |event| changes.relevant(event),
                changed,
                metrics,
            );
            reader
        };
        Self {
            zones: reflect("MonitorZone", Api::all(client.clone()), changed, metrics),
            templates: reflect("CheckTemplate", Api::all(client.clone()), changed, metrics),
            rule_sets: reflect("RuleSet", Api::all(client.clone()), changed, metrics),
            processes: reflect(
                "BusinessProcess",
                Api::all(client.clone()),
                changed,
                metrics,
            ),
            notifications: reflect(
                "NotificationConfig",
                Api::all(client.clone()),
                changed,
                metrics,
            ),
            nodes,
        }
    }

    /// Waits until every store holds a complete list.
    pub async fn wait_until_ready(&self) {
        // These only fail when the writer is dropped, i.e. the watch task is gone for good.
        let _ = self.zones.wait_until_ready().await;
        let _ = self.templates.wait_until_ready().await;
        let _ = self.rule_sets.wait_until_ready().await;
        let _ = self.processes.wait_until_ready().await;
        let _ = self.notifications.wait_until_ready().await;
        let _ = self.nodes.wait_until_ready().await;
    }

    /// The current objects as compile's input, sorted by name (compile does not care about
    /// order, but stable input makes logs and debugging easier).
    pub fn input(&self) -> Input {
        let mut machines: Vec<Machine> = self
            .nodes
            .state()
            .iter()
            .map(|node| Machine {
                name: node.metadata.name.clone().unwrap_or_default(),
                labels: node.metadata.labels.clone().unwrap_or_default(),
            })
            .collect();
        machines.sort();
        Input {
            zones: cloned(&self.zones),
            templates: cloned(&self.templates),
            rule_sets: cloned(&self.rule_sets),
            processes: cloned(&self.processes),
            notifications: cloned(&self.notifications),
            machines,
        }
    }
}

fn cloned<K>(store: &Store<K>) -> Vec<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    store
        .state()
        .iter()
        .map(|object| (**object).clone())
        .collect()
}

fn reflect<K>(
    kind: &'static str,
    api: Api<K>,
    changed: &Arc<Notify>,
    metrics: &Arc<Metrics>,
) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = backoff(watcher(api, watcher::Config::default())).reflect(writer);
    drive(kind, stream, changed, metrics);
    reader
}

fn drive<T: Send + 'static>(
    kind: &'static str,
    stream: impl Stream<Item = Result<Event<T>, watcher::Error>> + Send + 'static,
    changed: &Arc<Notify>,
    metrics: &Arc<Metrics>,
) {
    drive_filtered(kind, stream, |_| true, changed, metrics);
}

/// Drives `stream`; an event wakes the reconciler when `relevant` says so.
fn drive_filtered<T: Send + 'static>(
    kind: &'static str,
    stream: impl Stream<Item = Result<Event<T>, watcher::Error>> + Send + 'static,
    mut relevant: impl FnMut(&Event<T>) -> bool + Send + 'static,
    changed: &Arc<Notify>,
    metrics: &Arc<Metrics>,
) {
    let (changed, metrics) = (changed.clone(), metrics.clone());
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => {
                    if relevant(&event) {
                        changed.notify_one();
                    }
                }
                Err(source) => metrics.error(&Error::Watch { kind, source }),
            }
        }
    });
}

/// Which Node events can change compile's output: a Node that appears, disappears or
/// changes its labels, and the end of a (re)list. Status updates and heartbeats are not.
#[derive(Debug, Default)]
pub struct NodeChanges {
    /// Hash of each known Node's labels, by name.
    labels: HashMap<String, u64>,
    /// The Nodes of a list in progress.
    relisting: Option<HashMap<String, u64>>,
}

impl NodeChanges {
    /// Records `event`; true when the reconciler should run.
    pub fn relevant(&mut self, event: &Event<PartialObjectMeta<Node>>) -> bool {
        match event {
            Event::Apply(node) => {
                let (name, hash) = name_and_labels(node);
                self.labels.insert(name, hash) != Some(hash)
            }
            Event::Delete(node) => {
                self.labels.remove(&name_and_labels(node).0);
                true
            }
            Event::Init => {
                self.relisting = Some(HashMap::new());
                false
            }
            Event::InitApply(node) => {
                let (name, hash) = name_and_labels(node);
                self.relisting
                    .get_or_insert_with(HashMap::new)
                    .insert(name, hash);
                false
            }
            Event::InitDone => {
                self.labels = self.relisting.take().unwrap_or_default();
                true
            }
        }
    }
}

fn name_and_labels(node: &PartialObjectMeta<Node>) -> (String, u64) {
    let mut hasher = DefaultHasher::new();
    node.metadata.labels.hash(&mut hasher);
    (
        node.metadata.name.clone().unwrap_or_default(),
        hasher.finish(),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kube::api::ObjectMeta;
    use kube::core::PartialObjectMetaExt;

    use super::*;

    fn node(
        name: &str,
        labels: &[(&str, &str)],
        resource_version: &str,
    ) -> PartialObjectMeta<Node> {
        ObjectMeta {
            name: Some(name.to_owned()),
            resource_version: Some(resource_version.to_owned()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..ObjectMeta::default()
        }
        .into_response_partial()
    }

    #[test]
    fn heartbeats_do_not_wake_the_reconciler_label_changes_do() {
        let mut changes = NodeChanges::default();
        assert!(!changes.relevant(&Event::Init));
        assert!(!changes.relevant(&Event::InitApply(node("a", &[("zone", "x")], "1"))));
        assert!(
            changes.relevant(&Event::InitDone),
            "the first list is a change"
        );
        // A status update (heartbeat): new resourceVersion, same labels.
        assert!(!changes.relevant(&Event::Apply(node("a", &[("zone", "x")], "2"))));
        assert!(changes.relevant(&Event::Apply(node("a", &[("zone", "y")], "3"))));
        assert!(
            changes.relevant(&Event::Apply(node("b", &[], "4"))),
            "a new Node"
        );
        assert!(!changes.relevant(&Event::Apply(node("b", &[], "5"))));
        assert!(changes.relevant(&Event::Delete(node("b", &[], "6"))));
        assert!(
            changes.relevant(&Event::Apply(node("b", &[], "7"))),
            "back again"
        );
    }

    #[test]
    fn a_relist_forgets_nodes_deleted_meanwhile() {
        let mut changes = NodeChanges::default();
        changes.relevant(&Event::Init);
        changes.relevant(&Event::InitApply(node("a", &[], "1")));
        changes.relevant(&Event::InitApply(node("b", &[], "1")));
        changes.relevant(&Event::InitDone);
        // The watch broke; "b" was deleted while it was down.
        changes.relevant(&Event::Init);
        changes.relevant(&Event::InitApply(node("a", &[], "9")));
        assert!(changes.relevant(&Event::InitDone));
        assert!(
            changes.relevant(&Event::Apply(node("b", &[], "10"))),
            "b is new again after the relist"
        );
    }
}
