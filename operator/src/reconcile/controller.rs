//! The reconcile loop: wait for a change, debounce, compile (keeping last good specs), and —
//! only on the Lease holder — publish every zone and write statuses. Every replica compiles,
//! so a replica that takes over has a warm last-good cache and current metrics.
//!
//! Live state from the satellites (see [`crate::masters`]) is merged into the statuses: the
//! status path subscribes to the masters' event stream ([`LiveChanges`]), and every
//! [`LIVE_REFRESH`] in which an event arrived a pass runs without compiling again (the last
//! compile output is kept), so counts, staleness and problems reach status within seconds,
//! while the status writer keeps the budget (only on change, at most once per object per
//! 10 s). With no event, nothing live changed and no pass runs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::time::Duration;

use kube::ResourceExt;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::last_good::{Compiled, LastGood};
use super::owned::{OwnedIndex, OwnedKey};
use super::publish::Publisher;
use super::sources::Sources;
use super::status_writer::StatusWriter;
use crate::build::common::satellite_name;
use crate::metrics::{Metrics, ZoneLabels};
use crate::status::{self, Satellites};

/// Quiet time after the last event before a pass starts.
pub const DEBOUNCE: Duration = Duration::from_millis(300);
/// Longest a stream of events may delay a pass.
pub const MAX_DEBOUNCE: Duration = Duration::from_secs(2);
/// Delay before a pass that failed to write is retried.
pub const RETRY: Duration = Duration::from_secs(5);
/// Longest wait before publishing again a zone bundle whose publishing failed (it doubles from
/// [`RETRY`] per failure of the same bundle; a changed bundle is tried at once).
pub const MAX_PUBLISH_BACKOFF: Duration = Duration::from_secs(300);

/// A zone whose bundle could not be published: which bundle, how often, when to try again, and
/// the problem its status shows.
#[derive(Debug, Clone)]
pub struct Unpublished {
    hash: String,
    attempts: u32,
    retry_at: Instant,
    problem: status::Problem,
}

impl Unpublished {
    /// The failure to publish bundle `hash` at `now`, after `previous`: the wait doubles per
    /// failure of the same bundle, from [`RETRY`] up to [`MAX_PUBLISH_BACKOFF`].
    fn after(previous: Option<&Unpublished>, hash: String, now: Instant, error: &str) -> Self {
        let attempts = previous
            .filter(|p| p.hash == hash)
            .map_or(1, |p| p.attempts + 1);
        let backoff = RETRY
            .saturating_mul(1 << (attempts - 1).min(6))
            .min(MAX_PUBLISH_BACKOFF);
        Unpublished {
            hash,
            attempts,
            retry_at: now + backoff,
            problem: status::Problem {
                reason: "PublishFailed".to_owned(),
                message: error.to_owned(),
            },
        }
    }
}

/// Whether bundle `hash` is to be published at `now`: yes unless that same bundle failed and
/// its wait is not over.
fn publish_due(failure: Option<&Unpublished>, hash: &str, now: Instant) -> bool {
    failure.is_none_or(|f| f.hash != hash || now >= f.retry_at)
}
/// How often live state (results, freshness) is merged into statuses.
pub const LIVE_REFRESH: Duration = Duration::from_secs(3);

/// Whether the masters' stream said anything since the last look: the status path's
/// subscription.
#[derive(Clone, Debug, Default)]
pub struct LiveChanges(Arc<AtomicBool>);

impl LiveChanges {
    /// Drains `stream` in a task, marking a change for every event, until the stream closes.
    pub fn subscribe(mut stream: crate::masters::stream::Subscription) -> Self {
        let changes = LiveChanges::default();
        let flag = changes.0.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                flag.store(true, AtomicOrdering::Release);
            }
        });
        changes
    }

    /// Whether anything changed since the last call.
    pub fn take(&self) -> bool {
        self.0.swap(false, AtomicOrdering::AcqRel)
    }
}

/// The parts of the loop.
pub struct Controller {
    /// What compile reads.
    pub sources: Sources,
    /// What the operator owns.
    pub owned: Arc<OwnedIndex>,
    /// Writes zones' objects.
    pub publisher: Publisher,
    /// Writes zones' check-secrets Secrets.
    pub check_secrets: super::check_secrets::CheckSecrets,
    /// Writes statuses.
    pub statuses: StatusWriter,
    /// Last good specs.
    pub last_good: LastGood,
    /// What satellites sent.
    pub masters: Arc<crate::masters::Masters>,
    /// Whether it changed since the last pass.
    pub live: LiveChanges,
    /// The last compile output; `None`: compile on the next pass.
    pub compiled: Option<Compiled>,
    /// Where the notifier reads the routing of the last compile.
    pub routing: watch::Sender<Arc<crate::compile::notify::Routing>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// True while this replica holds the Lease.
    pub leader: watch::Receiver<bool>,
    /// Notified on every watch event.
    pub changed: Arc<Notify>,
    /// Namespace of the zones' objects.
    pub namespace: String,
    /// Zones whose bundle could not be published, by name.
    pub unpublished: BTreeMap<String, Unpublished>,
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
                () = self.changed.notified() => {
                    self.compiled = None;
                    self.debounce().await;
                }
                result = self.leader.changed() => {
                    if result.is_err() {
                        tracing::error!(message = "Leader election stopped.");
                        return;
                    }
                    self.debounce().await;
                }
                () = sleep_until(due) => {}
                () = tokio::time::sleep(LIVE_REFRESH) => {
                    if !self.live.take() && retry_at.is_none() {
                        continue;
                    }
                }
            }
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

    /// Compiles unless the last output is still current.
    fn compile(&mut self) -> Compiled {
        if let Some(compiled) = self.compiled.take() {
            return compiled;
        }
        let current = self.sources.input();
        let started = std::time::Instant::now();
        let compiled = self.last_good.compile(current);
        self.masters
            .state()
            .set_processes(compiled.served.processes.values().cloned());
        self.masters
            .set_catalog(crate::dashboard::catalog::Catalog::new(
                compiled.served.bundles.values(),
                &compiled.served_input.zones,
            ));
        self.routing.send_if_modified(|routing| {
            let changed = **routing != compiled.served.notifications;
            if changed {
                *routing = Arc::new(compiled.served.notifications.clone());
            }
            changed
        });
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
        compiled
    }

    /// One pass; false when a write failed (the pass is retried).
    pub async fn pass(&mut self) -> bool {
        let current = self.sources.input();
        let compiled = self.compile();
        let ok = self.write(&current, &compiled).await;
        self.compiled = Some(compiled);
        ok
    }

    /// Publishes and writes statuses when this replica holds the Lease.
    async fn write(&mut self, current: &crate::compile::Input, compiled: &Compiled) -> bool {
        if !*self.leader.borrow() {
            return true;
        }
        let mut ok = true;
        let now = Instant::now();
        for zone in &compiled.served_input.zones {
            let name = zone.name_any();
            let Some(bundle) = compiled.served.bundles.get(&name) else {
                continue;
            };
            let hash = crate::compile::bundle_hash(bundle);
            if !publish_due(self.unpublished.get(&name), &hash, now) {
                // The same bundle failed moments ago: wait for its backoff, not every pass.
                ok = false;
                continue;
            }
            match self.publisher.zone(zone, bundle).await {
                Ok(writes) => {
                    self.unpublished.remove(&name);
                    if writes > 0 {
                        tracing::info!(message = "Published zone.", zone = %name, writes);
                    }
                    if let Err(error) = self.check_secrets.zone(zone, bundle).await {
                        tracing::warn!(message = "Failed to write the zone's check secrets; retrying.", zone = %name, %error);
                        ok = false;
                    }
                }
                Err(error) => {
                    self.metrics.error(&error);
                    self.metrics.reconciled("MonitorZone", false);
                    let failure = Unpublished::after(
                        self.unpublished.get(&name),
                        hash,
                        now,
                        &error.to_string(),
                    );
                    tracing::warn!(message = "Failed to publish a zone; retrying later.", zone = %name, %error, retry_in_s = (failure.retry_at - now).as_secs());
                    self.unpublished.insert(name, failure);
                    ok = false;
                }
            }
        }
        let present: std::collections::BTreeSet<String> = compiled
            .served_input
            .zones
            .iter()
            .map(ResourceExt::name_any)
            .collect();
        self.unpublished.retain(|zone, _| present.contains(zone));
        let unpublished: BTreeMap<String, status::Problem> = self
            .unpublished
            .iter()
            .map(|(zone, failure)| (zone.clone(), failure.problem.clone()))
            .collect();
        let satellites = self.satellites(current);
        let now = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let live = {
            let state = self.masters.state();
            crate::status::live::summarise(
                &state,
                &compiled.served.bundles,
                vedette_protocol::clock::unix_ms(),
            )
        };
        let statuses = status::desired(
            current,
            &compiled.reported,
            &compiled.served,
            &|zone| {
                satellites
                    .get(&zone.name_any())
                    .copied()
                    .unwrap_or((0, zone.spec.satellites.replicas))
            },
            &unpublished,
            &live,
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
                    kind: "StatefulSet".to_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_that_failed_waits_longer_each_time_and_a_changed_one_goes_at_once() {
        let start = Instant::now();
        let first = Unpublished::after(None, "h1".into(), start, "too large");
        assert_eq!(first.retry_at - start, RETRY);
        assert_eq!(first.problem.reason, "PublishFailed");
        assert!(!publish_due(Some(&first), "h1", start + RETRY / 2));
        assert!(publish_due(Some(&first), "h1", start + RETRY));
        assert!(
            publish_due(Some(&first), "h2", start),
            "a changed bundle is tried at once"
        );
        let mut failure = first;
        for _ in 0..10 {
            failure = Unpublished::after(Some(&failure), "h1".into(), start, "too large");
        }
        assert_eq!(failure.retry_at - start, MAX_PUBLISH_BACKOFF);
        let second = Unpublished::after(Some(&failure), "h2".into(), start, "other");
        assert_eq!(second.attempts, 1, "a new bundle starts over");
    }
}
