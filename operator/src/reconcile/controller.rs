//! The reconcile loop: wait for a change, debounce, compile (keeping last good specs), and —
//! only on the Lease holder — publish every zone and write statuses. Every replica compiles,
//! so a replica that takes over has a warm last-good cache and current metrics.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::last_good::LastGood;
use super::metrics::{Metrics, ZoneLabels};
use super::owned::{OwnedIndex, OwnedKey};
use super::publish::Publisher;
use super::sources::Sources;
use super::status::{self, Satellites};
use super::status_writer::StatusWriter;
use crate::build::common::satellite_name;

/// Quiet time after the last event before a pass starts.
pub const DEBOUNCE: Duration = Duration::from_millis(300);
/// Longest a stream of events may delay a pass.
pub const MAX_DEBOUNCE: Duration = Duration::from_secs(2);
/// Delay before a pass that failed to write is retried.
pub const RETRY: Duration = Duration::from_secs(5);

/// The parts of the loop.
pub struct Controller {
    /// What compile reads.
    pub sources: Sources,
    /// What the operator owns.
    pub owned: Arc<OwnedIndex>,
    /// Writes zones' objects.
    pub publisher: Publisher,
    /// Writes statuses.
    pub statuses: StatusWriter,
    /// Last good specs.
    pub last_good: LastGood,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// True while this replica holds the Lease.
    pub leader: watch::Receiver<bool>,
    /// Notified on every watch event.
    pub changed: Arc<Notify>,
    /// Namespace of the zones' objects.
    pub namespace: String,
}

impl Controller {
    /// Runs passes forever.
    pub async fn run(mut self) {
        let mut retry_at: Option<Instant> = None;
        loop {
            let due = [retry_at, self.statuses.next_due()]
                .into_iter()
                .flatten()
                .min();
            tokio::select! {
                () = self.changed.notified() => {}
                result = self.leader.changed() => {
                    if result.is_err() {
                        tracing::error!(message = "Leader election stopped.");
                        return;
                    }
                }
                () = sleep_until(due) => {}
            }
            self.debounce().await;
            retry_at = (!self.pass().await).then(|| Instant::now() + RETRY);
        }
    }

    async fn debounce(&self) {
        let deadline = Instant::now() + MAX_DEBOUNCE;
        loop {
            tokio::select! {
                () = self.changed.notified() => {
                    if Instant::now() >= deadline {
                        return;
                    }
                }
                () = tokio::time::sleep(DEBOUNCE) => return,
            }
        }
    }

    /// One pass; false when a write failed (the pass is retried).
    pub async fn pass(&mut self) -> bool {
        let current = self.sources.input();
        let started = std::time::Instant::now();
        let compiled = self.last_good.compile(current.clone());
        self.metrics
            .compile_duration
            .observe(started.elapsed().as_secs_f64());
        for (zone, bundle) in &compiled.served.bundles {
            let bytes = serde_json::to_vec(bundle).map_or(0, |b| b.len());
            self.metrics
                .bundle_bytes
                .get_or_create(&ZoneLabels { zone: zone.clone() })
                .set(bytes as i64);
        }
        if !*self.leader.borrow() {
            return true;
        }
        let mut ok = true;
        for zone in &compiled.served_input.zones {
            let name = zone.name_any();
            let Some(bundle) = compiled.served.bundles.get(&name) else {
                continue;
            };
            match self.publisher.zone(zone, bundle).await {
                Ok(writes) => {
                    if writes > 0 {
                        tracing::info!(message = "Published zone.", zone = %name, writes);
                    }
                }
                Err(error) => {
                    self.metrics.error(&error);
                    self.metrics.reconciled("MonitorZone", false);
                    ok = false;
                }
            }
        }
        let satellites = self.satellites(&current);
        let now = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let statuses = status::desired(
            &current,
            &compiled.reported,
            &compiled.served,
            &|zone| {
                satellites
                    .get(&zone.name_any())
                    .copied()
                    .unwrap_or((0, zone.spec.satellites.replicas))
            },
            &now,
        );
        if self
            .statuses
            .write_all(&statuses, &self.metrics)
            .await
            .is_err()
        {
            ok = false;
        }
        ok
    }

    fn satellites(&self, current: &crate::compile::Input) -> BTreeMap<String, Satellites> {
        current
            .zones
            .iter()
            .filter_map(|zone| {
                let key = OwnedKey {
                    kind: "Deployment".to_owned(),
                    namespace: self.namespace.clone(),
                    name: satellite_name(&zone.name_any()),
                };
                Some((zone.name_any(), self.owned.replicas(&key)?))
            })
            .collect()
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}
