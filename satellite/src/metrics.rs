//! The satellite's Prometheus metrics: one typed struct, registered in one place, every family
//! named `vedette_satellite_*` so none collides with the node agent's `vedette_*` (the
//! satellite's check states are its view of the zone, `vedette_satellite_check_state`, beside
//! each agent's own `vedette_check_state`). The per-check and per-agent gauges and the spool's
//! numbers are rebuilt at every scrape, so series of checks and agents that left the bundle
//! disappear. Label values are lower snake case.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use vedette_agent::metrics::{SendResult, SpoolMetrics};
use vedette_agent::sender::SendMetrics;
use vedette_agent::spool::SpoolStats;
use vedette_crds::CheckState;
use vedette_protocol::forward::Forwarded;
use vedette_protocol::report::Report;

use super::table::StateTable;

/// A check of the zone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ZoneCheckLabels {
    /// The zone.
    pub zone: String,
    /// The machine or remote target.
    pub host: String,
    /// The application.
    pub namespace: String,
    /// The rule set.
    pub ruleset: String,
    /// The rule.
    pub check: String,
}

/// An agent.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HostLabels {
    /// The agent's host.
    pub host: String,
}

/// Kind of a received entry.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum EntryType {
    /// A state change.
    StateChange,
    /// A result.
    Result,
    /// A keepalive.
    Keepalive,
    /// A business-process element's transition.
    ElementTransition,
}

impl EntryType {
    /// Its label value.
    pub fn name(self) -> &'static str {
        match self {
            EntryType::StateChange => "state_change",
            EntryType::Result => "result",
            EntryType::Keepalive => "keepalive",
            EntryType::ElementTransition => "element_transition",
        }
    }
}

impl EncodeLabelValue for EntryType {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.name(), encoder)
    }
}

/// Labels of received entries.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EntryLabels {
    /// What was received.
    pub r#type: EntryType,
}

/// A master (bounded: the configured list).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    /// The master's URL as configured.
    pub upstream: String,
}

/// Labels of batches sent to a master.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamSendLabels {
    /// The master's URL as configured.
    pub upstream: String,
    /// Outcome.
    pub result: SendResult,
}

/// Labels of refused batches and requests.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    /// Why: `unauthenticated`, `forbidden`, `too_large`, `malformed`, `storage`, `auth_unavailable`.
    pub reason: &'static str,
}

/// Every metric of a satellite.
pub struct SatelliteMetrics {
    /// State per check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, -1 pending.
    pub check_state: Family<ZoneCheckLabels, Gauge>,
    /// 1 when the agent missed three keepalives (or never sent one).
    pub agent_stale: Family<HostLabels, Gauge>,
    /// 1 while the agent runs a held plan.
    pub agent_plan_held: Family<HostLabels, Gauge>,
    /// Entries received from agents (new ones, not duplicates), by type.
    pub received: Family<EntryLabels, Counter>,
    /// Entries received again (resends), not stored twice.
    pub duplicates: Counter,
    /// Entries satellites of child zones sent, stored and relayed upstream.
    pub relayed: Counter,
    /// Refused batches (and plan requests), by reason.
    pub refused: Family<RefusedLabels, Counter>,
    /// Seconds from an entry's creation on the agent to its storage here.
    pub ingest_latency_seconds: Histogram,
    /// Batches sent to each master, by result.
    pub sends: Family<UpstreamSendLabels, Counter>,
    /// Entries a master's cursor skipped: dropped by retention before that master got them.
    pub upstream_skipped: Family<UpstreamLabels, Counter>,
    /// Spooled entries a master has not acknowledged yet.
    pub upstream_backlog: Family<UpstreamLabels, Gauge>,
    /// Remote checks this replica runs.
    pub remote_checks_owned: Gauge,
    /// Live satellite replicas of the zone.
    pub replicas: Gauge,
    /// 1 once a bundle is loaded.
    pub bundle_loaded: Gauge,
    /// The satellite's spool: entries, bytes, dropped by retention.
    pub spool: SpoolMetrics,
}

impl Default for SatelliteMetrics {
    fn default() -> Self {
        let buckets = [0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 300.0, 3600.0];
        Self {
            check_state: Family::default(),
            agent_stale: Family::default(),
            agent_plan_held: Family::default(),
            received: Family::default(),
            duplicates: Counter::default(),
            relayed: Counter::default(),
            refused: Family::default(),
            ingest_latency_seconds: Histogram::new(buckets),
            sends: Family::default(),
            upstream_skipped: Family::default(),
            upstream_backlog: Family::default(),
            remote_checks_owned: Gauge::default(),
            replicas: Gauge::default(),
            bundle_loaded: Gauge::default(),
            spool: SpoolMetrics::default(),
        }
    }
}

impl SatelliteMetrics {
    /// A registry with every family under the `vedette_satellite` prefix.
    pub fn registry(&self) -> Registry {
        let mut registry = Registry::default();
        let r = registry.sub_registry_with_prefix("vedette");
        r.register(
            "satellite_check_state",
            "State per check of the zone as the satellite last received it: 0 OK, 1 WARNING, \
             2 CRITICAL, 3 UNKNOWN, -1 pending (no report yet)",
            self.check_state.clone(),
        );
        r.register(
            "satellite_agent_stale",
            "1 when the agent missed three keepalives",
            self.agent_stale.clone(),
        );
        r.register(
            "satellite_agent_plan_held",
            "1 while the agent runs its last good plan",
            self.agent_plan_held.clone(),
        );
        self.spool.register(r.sub_registry_with_prefix("satellite"));
        r.register(
            "satellite_received_entries",
            "Entries received from agents, without duplicates, by type",
            self.received.clone(),
        );
        r.register(
            "satellite_duplicate_entries",
            "Entries received again and not stored twice",
            self.duplicates.clone(),
        );
        r.register(
            "satellite_relayed_entries",
            "Entries satellites of child zones sent, stored and relayed upstream",
            self.relayed.clone(),
        );
        r.register(
            "satellite_refused_batches",
            "Batches refused, by reason",
            self.refused.clone(),
        );
        r.register(
            "satellite_ingest_latency_seconds",
            "From an entry's creation on the agent to its storage on the satellite",
            self.ingest_latency_seconds.clone(),
        );
        r.register(
            "satellite_upstream_sends",
            "Batches sent to each master",
            self.sends.clone(),
        );
        r.register(
            "satellite_upstream_skipped_entries",
            "Entries dropped by spool retention before a master got them",
            self.upstream_skipped.clone(),
        );
        r.register(
            "satellite_upstream_backlog_entries",
            "Spooled entries a master has not acknowledged yet",
            self.upstream_backlog.clone(),
        );
        r.register(
            "satellite_remote_checks_owned",
            "Remote checks this replica runs",
            self.remote_checks_owned.clone(),
        );
        r.register(
            "satellite_replicas",
            "Live satellite replicas of the zone",
            self.replicas.clone(),
        );
        r.register(
            "satellite_bundle_loaded",
            "1 once a zone bundle is loaded",
            self.bundle_loaded.clone(),
        );
        registry
    }

    /// The send loop's metrics for the master at `upstream`.
    pub fn upstream(&self, upstream: &str) -> SendMetrics {
        let sends = |result| {
            let labels = UpstreamSendLabels {
                upstream: upstream.to_owned(),
                result,
            };
            self.sends.get_or_create(&labels).clone()
        };
        let labels = UpstreamLabels {
            upstream: upstream.to_owned(),
        };
        SendMetrics {
            sent: sends(SendResult::Ok),
            failed: sends(SendResult::Failed),
            skipped: self.upstream_skipped.get_or_create(&labels).clone(),
            backlog: self.upstream_backlog.get_or_create(&labels).clone(),
        }
    }

    /// Counts a newly stored entry and its latency.
    pub fn observe_received(&self, entry: &Forwarded, now_ms: u64) {
        let Forwarded::Agent { report, .. } = entry else {
            return;
        };
        let (kind, at_ms) = match report {
            Report::StateChange(r) => (EntryType::StateChange, r.at_ms),
            Report::Result(r) => (EntryType::Result, r.at_ms),
            Report::Keepalive(k) => (EntryType::Keepalive, k.at_ms),
            Report::ElementTransition(t) => (EntryType::ElementTransition, t.at_ms),
        };
        self.received
            .get_or_create(&EntryLabels { r#type: kind })
            .inc();
        self.ingest_latency_seconds
            .observe(now_ms.saturating_sub(at_ms) as f64 / 1000.0);
    }

    /// Counts a refusal.
    pub fn refuse(&self, reason: &'static str) {
        self.refused.get_or_create(&RefusedLabels { reason }).inc();
    }

    /// Rebuilds the per-check and per-agent gauges from the table and records the spool's
    /// `stats`; callers hold the ingest core's lock, so scrapes do not interleave.
    pub fn refresh(&self, zone: &str, table: &StateTable, spool: &SpoolStats, now_ms: u64) {
        self.spool.observe(spool);
        self.check_state.clear();
        for (key, entry) in table.checks() {
            let labels = ZoneCheckLabels {
                zone: zone.to_owned(),
                host: key.host.clone(),
                namespace: key.check.namespace.clone(),
                ruleset: key.check.rule_set.clone(),
                check: key.check.rule.clone(),
            };
            let value = entry.state.map_or(-1, CheckState::metric_value);
            self.check_state.get_or_create(&labels).set(value);
        }
        self.agent_stale.clear();
        self.agent_plan_held.clear();
        for agent in table.agents(now_ms) {
            let labels = HostLabels { host: agent.host };
            self.agent_stale
                .get_or_create(&labels)
                .set(i64::from(agent.stale));
            self.agent_plan_held
                .get_or_create(&labels)
                .set(i64::from(agent.entry.plan_held));
        }
    }
}
