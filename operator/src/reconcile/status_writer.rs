//! Writes statuses within the API-server budget: only when the owned fields changed, and at
//! most once per object per [`MIN_STATUS_INTERVAL`]; a change that comes sooner waits, and
//! the reconciler comes back for it at [`StatusWriter::next_due`]. A written status sends the
//! Events it raises (a compile problem that appeared or changed, its end;
//! [`crate::status::problem_events`]), at most [`EVENTS_PER_SECOND`] overall.

use std::collections::HashMap;
use std::time::Duration;

use kube::Resource;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::time::Instant;
use vedette_crds::{BusinessProcess, CheckTemplate, MonitorZone, NotificationConfig, RuleSet};

use super::error::{Error, Result};
use crate::build::common::MANAGER;
use crate::compile::ObjectRef;
use crate::metrics::Metrics;
use crate::status::DesiredStatus;
use crate::status::problem_events::{ProblemEvent, problem_events};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};
use vedette_agent::rate::TokenBucket;

/// Shortest time between two status writes of one object.
pub const MIN_STATUS_INTERVAL: Duration = Duration::from_secs(10);
/// Most problem Events per second, all objects together (beyond, they are counted as dropped).
pub const EVENTS_PER_SECOND: u32 = 5;

/// What happened to one object's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Already as desired; nothing written.
    Unchanged,
    /// Written now.
    Written,
    /// Changed, but written too recently; due at the instant.
    Deferred(Instant),
}

/// Remembers what it wrote and when.
pub struct StatusWriter {
    client: kube::Client,
    written: HashMap<ObjectRef, (Instant, Value)>,
    next_due: Option<Instant>,
    recorder: Recorder,
    events: TokenBucket,
}

impl StatusWriter {
    /// A writer using `client`; its Events name `instance` as the reporting replica.
    pub fn new(client: kube::Client, instance: String) -> Self {
        let recorder = crate::masters::events::recorder(client.clone(), &instance);
        Self {
            client,
            written: HashMap::new(),
            next_due: None,
            recorder,
            events: TokenBucket::new(
                EVENTS_PER_SECOND,
                EVENTS_PER_SECOND * 4,
                std::time::Instant::now(),
            ),
        }
    }

    /// When a deferred status becomes due, if any.
    pub fn next_due(&self) -> Option<Instant> {
        self.next_due
    }

    /// Writes what changed and may be written now; returns the first error, counting the
    /// rest.
    pub async fn write_all(&mut self, statuses: &[DesiredStatus], metrics: &Metrics) -> Result<()> {
        self.next_due = None;
        let present: std::collections::HashSet<&ObjectRef> =
            statuses.iter().map(|s| &s.object).collect();
        self.written.retain(|object, _| present.contains(object));
        let mut first_error = None;
        for status in statuses {
            match self.write(status, metrics).await {
                Ok(Outcome::Deferred(due)) => {
                    self.next_due = Some(self.next_due.map_or(due, |next| next.min(due)));
                }
                Ok(_) => metrics.reconciled(&status.object.kind, true),
                Err(error) => {
                    metrics.reconciled(&status.object.kind, false);
                    metrics.error(&error);
                    first_error.get_or_insert(error);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn write(&mut self, status: &DesiredStatus, metrics: &Metrics) -> Result<Outcome> {
        if status.unchanged() {
            return Ok(Outcome::Unchanged);
        }
        if let Some((at, value)) = self.written.get(&status.object) {
            // The watch has not delivered our own last write yet.
            if *value == status.status && at.elapsed() < MIN_STATUS_INTERVAL {
                return Ok(Outcome::Unchanged);
            }
            if at.elapsed() < MIN_STATUS_INTERVAL {
                return Ok(Outcome::Deferred(*at + MIN_STATUS_INTERVAL));
            }
        }
        patch_status(&self.client, &status.object, &status.status).await?;
        metrics.wrote(&status.object.kind, "status");
        for event in problem_events(status) {
            self.publish(status, &event, metrics).await;
        }
        self.written.insert(
            status.object.clone(),
            (Instant::now(), status.status.clone()),
        );
        Ok(Outcome::Written)
    }
}

impl StatusWriter {
    /// Sends `event` on the object of `status`, within the overall budget; a failure is logged
    /// and counted, never fatal (the condition says the same).
    async fn publish(&mut self, status: &DesiredStatus, event: &ProblemEvent, metrics: &Metrics) {
        let now = std::time::Instant::now();
        if self.events.take_up_to(1, now) == 0 {
            metrics.event_failed();
            return;
        }
        let resource = resource(&status.object.kind);
        let reference = ObjectReference {
            api_version: Some(resource.api_version.clone()),
            kind: Some(resource.kind.clone()),
            name: Some(status.object.name.clone()),
            namespace: (!status.object.namespace.is_empty())
                .then(|| status.object.namespace.clone()),
            uid: status.uid.clone(),
            ..ObjectReference::default()
        };
        let note = vedette_protocol::text::sanitize_output(
            &event.note,
            crate::masters::events::MAX_NOTE_BYTES,
        );
        let kube_event = Event {
            type_: if event.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: event.reason.clone(),
            note: Some(note),
            action: "Compile".to_owned(),
            secondary: None,
        };
        match self.recorder.publish(&kube_event, &reference).await {
            Ok(()) => metrics.wrote("Event", "create"),
            Err(error) => {
                tracing::warn!(message = "Failed to publish an event.", %error, reason = %event.reason);
                metrics.event_failed();
            }
        }
    }
}

fn resource(kind: &str) -> ApiResource {
    match kind {
        "MonitorZone" => ApiResource::erase::<MonitorZone>(&()),
        "CheckTemplate" => ApiResource::erase::<CheckTemplate>(&()),
        "RuleSet" => ApiResource::erase::<RuleSet>(&()),
        "NotificationConfig" => ApiResource::erase::<NotificationConfig>(&()),
        _ => ApiResource::erase::<BusinessProcess>(&()),
    }
}

/// Server-side applies `status` to the status subresource, as the operator's field manager.
async fn patch_status(client: &kube::Client, object: &ObjectRef, status: &Value) -> Result<()> {
    let resource = resource(&object.kind);
    let api: Api<DynamicObject> =
        if object.namespace.is_empty() || object.kind == MonitorZone::kind(&()) {
            Api::all_with(client.clone(), &resource)
        } else {
            Api::namespaced_with(client.clone(), &object.namespace, &resource)
        };
    let body = json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": {"name": object.name},
        "status": status,
    });
    let params = PatchParams::apply(MANAGER).force();
    api.patch_status(&object.name, &params, &Patch::Apply(&body))
        .await
        .map(|_| ())
        .map_err(|source| Error::Status {
            kind: object.kind.clone(),
            name: object.to_string(),
            source,
        })
}
