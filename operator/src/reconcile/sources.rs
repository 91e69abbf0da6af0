//! What the operator reads: MonitorZones, CheckTemplates, RuleSets, BusinessProcesses (all
//! namespaces) and Nodes, the latter as metadata only (name and labels are all compile
//! needs, and metadata watches keep the API-server load of 10,000 nodes small). Each is a
//! reflector store; every event wakes the reconciler.

use std::fmt::Debug;
use std::hash::Hash;
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
use vedette_crds::{BusinessProcess, CheckTemplate, MonitorZone, RuleSet};

use super::error::Error;
use super::metrics::Metrics;
use crate::compile::{Input, Machine};

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
            let stream = watcher(api, config());
            drive(
                "Node",
                stream.default_backoff().reflect(writer),
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
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer);
    drive(kind, stream, changed, metrics);
    reader
}

fn drive<T: Send + 'static>(
    kind: &'static str,
    stream: impl Stream<Item = Result<Event<T>, watcher::Error>> + Send + 'static,
    changed: &Arc<Notify>,
    metrics: &Arc<Metrics>,
) {
    let (changed, metrics) = (changed.clone(), metrics.clone());
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => changed.notify_one(),
                Err(source) => metrics.error(&Error::Watch { kind, source }),
            }
        }
    });
}
