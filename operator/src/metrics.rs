//! The operator's Prometheus metrics: one typed struct of families, registered in one place.
//! Labels are bounded: kinds, results, error variants, verbs, and zone names.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A reconcile of one object.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// `MonitorZone`, `CheckTemplate`, `RuleSet` or `BusinessProcess`.
    pub kind: String,
    /// `ok` or `error`.
    pub result: String,
}

/// An error, by variant.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// `Error::metric_label`.
    pub error: String,
}

/// A write to the API server.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// Kind of the written object, e.g. `ConfigMap` or `RuleSet`.
    pub kind: String,
    /// `apply`, `delete` or `status`.
    pub verb: String,
}

/// A notification's delivery.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotificationLabels {
    /// The receiver, `namespace/name` (bounded by the NotificationConfigs).
    pub receiver: String,
    /// `sent`, `failed` (one try), `dead` (given up), `dropped` (its queue was full).
    pub outcome: String,
}

/// A zone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ZoneLabels {
    /// The zone's name.
    pub zone: String,
}

/// A batch from a satellite, by result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BatchLabels {
    /// `ok`, `unauthenticated`, `forbidden`, `auth_unavailable` or `malformed`.
    pub result: String,
}

/// An event of the masters' stream, by kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MasterEventLabels {
    /// `hard_change`, `state_change`, `result`, `agent_fresh`, `agent_stale`, `plan_held`,
    /// `plan_released` or `zone_summary`.
    pub kind: String,
}

/// A subscriber of the masters' stream.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubscriberLabels {
    /// Its name (`status`, `events`).
    pub subscriber: String,
}

/// Every metric of `vedette-operator run`.
#[derive(Debug)]
pub struct Metrics {
    /// Objects reconciled, by kind and result.
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// Errors, by variant.
    pub errors: Family<ErrorLabels, Counter>,
    /// Seconds one `compile` takes.
    pub compile_duration: Histogram,
    /// Bytes of each zone's bundle JSON.
    pub bundle_bytes: Family<ZoneLabels, Gauge>,
    /// Requests that changed something on the API server: creates/patches and deletes.
    pub api_writes: Family<WriteLabels, Counter>,
    /// 1 while this replica holds the Lease.
    pub leader: Gauge,
    /// Batches received from satellites, by result.
    pub satellite_batches: Family<BatchLabels, Counter>,
    /// Satellite entries applied (new ones, not resends).
    pub satellite_entries: Counter,
    /// Events that failed to publish.
    pub event_failures: Counter,
    /// Events of the masters' stream, by kind.
    pub master_events: Family<MasterEventLabels, Counter>,
    /// Events lost by a subscriber whose queue was full.
    pub master_events_dropped: Family<SubscriberLabels, Counter>,
    /// Notification deliveries, by receiver and outcome.
    pub notifications: Family<NotificationLabels, Counter>,
}

impl Metrics {
    /// The families, registered in `registry` under the `vedette_operator` prefix.
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Self {
            reconciles: Family::default(),
            errors: Family::default(),
            compile_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            bundle_bytes: Family::default(),
            api_writes: Family::default(),
            leader: Gauge::default(),
            satellite_batches: Family::default(),
            satellite_entries: Counter::default(),
            event_failures: Counter::default(),
            master_events: Family::default(),
            master_events_dropped: Family::default(),
            notifications: Family::default(),
        };
        let registry = registry.sub_registry_with_prefix("vedette_operator");
        registry.register(
            "reconciles",
            "Objects reconciled, by kind and result",
            metrics.reconciles.clone(),
        );
        registry.register("errors", "Errors, by variant", metrics.errors.clone());
        registry.register(
            "compile_duration_seconds",
            "Seconds one compile takes",
            metrics.compile_duration.clone(),
        );
        registry.register(
            "bundle_bytes",
            "Bytes of each zone's bundle JSON",
            metrics.bundle_bytes.clone(),
        );
        registry.register(
            "api_writes",
            "Writes to the API server (apply, delete, status), by kind",
            metrics.api_writes.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the Lease",
            metrics.leader.clone(),
        );
        registry.register(
            "satellite_batches",
            "Batches received from satellites, by result",
            metrics.satellite_batches.clone(),
        );
        registry.register(
            "satellite_entries",
            "Satellite entries applied (new ones, not resends)",
            metrics.satellite_entries.clone(),
        );
        registry.register(
            "event_failures",
            "Kubernetes Events that failed to publish",
            metrics.event_failures.clone(),
        );
        registry.register(
            "master_events",
            "Events of the masters' stream, by kind",
            metrics.master_events.clone(),
        );
        registry.register(
            "master_events_dropped",
            "Events a subscriber of the masters' stream lost because its queue was full",
            metrics.master_events_dropped.clone(),
        );
        registry.register(
            "notifications",
            "Notification deliveries, by receiver and outcome",
            metrics.notifications.clone(),
        );
        metrics
    }

    /// Counts one batch from a satellite with `result`.
    pub fn batch(&self, result: &str) {
        self.satellite_batches
            .get_or_create(&BatchLabels {
                result: result.to_owned(),
            })
            .inc();
    }

    /// Counts an event that failed to publish.
    pub fn event_failed(&self) {
        self.event_failures.inc();
    }

    /// Counts one event of the masters' stream.
    pub fn master_event(&self, kind: &str) {
        self.master_events
            .get_or_create(&MasterEventLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Counts one event `subscriber` lost.
    pub fn master_event_dropped(&self, subscriber: &str) {
        self.master_events_dropped
            .get_or_create(&SubscriberLabels {
                subscriber: subscriber.to_owned(),
            })
            .inc();
    }

    /// Events `subscriber` lost so far.
    pub fn master_events_dropped_for(&self, subscriber: &str) -> u64 {
        self.master_events_dropped
            .get_or_create(&SubscriberLabels {
                subscriber: subscriber.to_owned(),
            })
            .get()
    }

    /// Counts one reconcile of an object of `kind`.
    pub fn reconciled(&self, kind: &str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.reconciles
            .get_or_create(&ReconcileLabels {
                kind: kind.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    /// Counts an error and logs it.
    pub fn error(&self, error: &impl LabelledError) {
        tracing::warn!(message = "Reconcile step failed.", %error, variant = error.metric_label());
        self.errors
            .get_or_create(&ErrorLabels {
                error: error.metric_label().to_owned(),
            })
            .inc();
    }

    /// Counts one write request of `verb` on an object of `kind`.
    pub fn wrote(&self, kind: &str, verb: &str) {
        self.api_writes
            .get_or_create(&WriteLabels {
                kind: kind.to_owned(),
                verb: verb.to_owned(),
            })
            .inc();
    }
}

/// The registry in the Prometheus text format.
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    text
}

/// An error that names its variant for the `error` label (bounded: the variant, never the
/// message).
pub trait LabelledError: std::fmt::Display {
    /// The variant's name.
    fn metric_label(&self) -> &'static str;
}
