//! The agent's Prometheus metrics: one typed struct of families, registered in one place.
//! Label cardinality is bounded: per check (host, namespace, rule set, check) and per perfdata
//! label (at most `MAX_PERFDATA_PER_CHECK` per check); series of checks that leave the plan are
//! removed. Label values are lower snake case (`ok`, `state_change`).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use vedette_crds::template::CheckState;

use vedette_protocol::plan::CheckId;

use crate::spool::{Priority, SpoolStats};

/// Perfdata series kept per check; further labels are ignored.
pub const MAX_PERFDATA_PER_CHECK: usize = 32;

/// Identifies a check's series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    /// The machine or remote target.
    pub host: String,
    /// The application.
    pub namespace: String,
    /// The rule set.
    pub ruleset: String,
    /// The rule.
    pub check: String,
}

impl CheckLabels {
    /// The labels of a check on a host.
    pub fn new(id: &CheckId, host: &str) -> Self {
        Self {
            host: host.to_owned(),
            namespace: id.namespace.clone(),
            ruleset: id.rule_set.clone(),
            check: id.rule.clone(),
        }
    }
}

/// A perfdata series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PerfdataLabels {
    /// The machine or remote target.
    pub host: String,
    /// The application.
    pub namespace: String,
    /// The rule set.
    pub ruleset: String,
    /// The rule.
    pub check: String,
    /// The perfdata label.
    pub label: String,
    /// Its unit of measure.
    pub uom: String,
}

/// A bound of a perfdata series (`vedette_check_perfdata_limit`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    /// The series.
    #[prometheus(flatten)]
    pub series: PerfdataLabels,
    /// `warn_low`, `warn_high`, `crit_low`, `crit_high`, `min` or `max`.
    pub limit: String,
}

/// Perfdata items a check's plugin wrote that were dropped (`vedette_check_perfdata_dropped`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DroppedLabels {
    /// The check.
    #[prometheus(flatten)]
    pub check: CheckLabels,
    /// `malformed` (not as the Nagios guidelines say) or `cut` (by the output cap).
    pub reason: String,
}

/// Outcome of a send.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum SendResult {
    /// Acknowledged.
    Ok,
    /// Failed (see logs).
    Failed,
}

impl SendResult {
    /// Its label value: `ok` or `failed`.
    pub fn name(self) -> &'static str {
        match self {
            SendResult::Ok => "ok",
            SendResult::Failed => "failed",
        }
    }
}

impl EncodeLabelValue for SendResult {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.name(), encoder)
    }
}

/// Labels of the send counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SendLabels {
    /// Outcome.
    pub result: SendResult,
}

/// Labels of spool drop counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PriorityLabels {
    /// `result`, `keepalive` or `state_change`.
    pub priority: String,
}

/// Labels of the plan info series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PlanLabels {
    /// Hash of the plan being run.
    pub hash: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// What a spool holds and what its retention dropped: the node agent's (`vedette_spool_*`) and
/// the satellite's (`vedette_satellite_spool_*`), registered under the caller's prefix.
#[derive(Debug, Default)]
pub struct SpoolMetrics {
    /// Entries waiting for an acknowledgement.
    pub entries: Gauge,
    /// Bytes of the waiting entries.
    pub bytes: Gauge,
    /// Entries retention dropped, ever, by priority.
    pub dropped: Family<PriorityLabels, Counter>,
}

impl SpoolMetrics {
    /// Registers the families in `registry` (already prefixed).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "spool_entries",
            "Spooled entries waiting for an acknowledgement",
            self.entries.clone(),
        );
        registry.register(
            "spool_bytes",
            "Bytes of the spooled entries waiting for an acknowledgement",
            self.bytes.clone(),
        );
        registry.register(
            "spool_dropped_entries",
            "Spooled entries dropped by retention (byte and age limits), by priority",
            self.dropped.clone(),
        );
    }

    /// Records `stats`. The drop counts are the spool's own totals (kept across restarts); the
    /// counters are raised to them, so callers must not observe concurrently.
    pub fn observe(&self, stats: &SpoolStats) {
        self.entries.set(saturating_i64(stats.depth));
        self.bytes.set(saturating_i64(stats.bytes));
        for priority in [Priority::Result, Priority::Keepalive, Priority::StateChange] {
            let labels = PriorityLabels {
                priority: priority.name().to_owned(),
            };
            raise(
                &self.dropped.get_or_create(&labels),
                stats.dropped.get(priority),
            );
        }
    }
}

/// Raises `counter` to `total`, a cumulative count kept elsewhere (never lowers it).
pub fn raise(counter: &Counter, total: u64) {
    counter.inc_by(total.saturating_sub(counter.get()));
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The series of perfdata `label` (in `uom`) of a check.
fn perfdata_labels(labels: &CheckLabels, label: &str, uom: &str) -> PerfdataLabels {
    PerfdataLabels {
        host: labels.host.clone(),
        namespace: labels.namespace.clone(),
        ruleset: labels.ruleset.clone(),
        check: labels.check.clone(),
        label: label.to_owned(),
        uom: uom.to_owned(),
    }
}

/// Every metric of an agent.
#[derive(Default)]
pub struct Metrics {
    /// State per check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    pub check_state: Family<CheckLabels, Gauge>,
    /// 1 while the state is hard.
    pub check_state_hard: Family<CheckLabels, Gauge>,
    /// Duration of the last run.
    pub check_duration_seconds: Family<CheckLabels, FloatGauge>,
    /// When the last run finished, Unix seconds.
    pub check_last_run_timestamp_seconds: Family<CheckLabels, FloatGauge>,
    /// Runs per check.
    pub check_runs: Family<CheckLabels, Counter>,
    /// State changes per check (the first report, soft and hard transitions), each spooled
    /// as a state change: what the masters' history holds for the check.
    pub check_state_changes: Family<CheckLabels, Counter>,
    /// Perfdata values.
    pub check_perfdata: Family<PerfdataLabels, FloatGauge>,
    /// Bounds the plugin wrote beside its perfdata values.
    pub check_perfdata_limit: Family<LimitLabels, FloatGauge>,
    /// Perfdata items dropped, by reason.
    pub check_perfdata_dropped: Family<DroppedLabels, Counter>,
    /// The spool: entries, bytes, dropped by retention.
    pub spool: SpoolMetrics,
    /// Batches sent upstream, by result.
    pub sends: Family<SendLabels, Counter>,
    /// Spooled entries the upstream has not acknowledged yet.
    pub upstream_backlog: Gauge,
    /// Entries the send cursor skipped: dropped by retention before the upstream got them.
    pub upstream_skipped: Counter,
    /// Seconds since the plan being run was fetched.
    pub plan_age_seconds: Gauge,
    /// 1 while the agent runs a held (last good) plan.
    pub plan_held: Gauge,
    /// 1 for the hash of the plan being run.
    pub plan_info: Family<PlanLabels, Gauge>,
    /// Checks in the plan.
    pub plan_checks: Gauge,
}

impl Metrics {
    /// The sender's metrics: batches by result, backlog, skipped entries (the node sends to
    /// one upstream at a time).
    pub fn send_metrics(&self) -> crate::sender::SendMetrics {
        let sends = |result| self.sends.get_or_create(&SendLabels { result }).clone();
        crate::sender::SendMetrics {
            sent: sends(SendResult::Ok),
            failed: sends(SendResult::Failed),
            skipped: self.upstream_skipped.clone(),
            backlog: self.upstream_backlog.clone(),
        }
    }

    /// Registers every family under the `vedette` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("vedette");
        r.register(
            "check_state",
            "State per check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN",
            self.check_state.clone(),
        );
        r.register(
            "check_state_hard",
            "1 while the check's state is hard",
            self.check_state_hard.clone(),
        );
        r.register(
            "check_duration_seconds",
            "Duration of the check's last run",
            self.check_duration_seconds.clone(),
        );
        r.register(
            "check_last_run_timestamp_seconds",
            "When the check's last run finished",
            self.check_last_run_timestamp_seconds.clone(),
        );
        r.register("check_runs", "Runs of the check", self.check_runs.clone());
        r.register(
            "check_state_changes",
            "State changes of the check spooled for upstream (first report, soft and hard)",
            self.check_state_changes.clone(),
        );
        r.register(
            "check_perfdata",
            "Performance data of the check's last run",
            self.check_perfdata.clone(),
        );
        r.register(
            "check_perfdata_limit",
            "Bounds the plugin wrote beside the check's performance data: its thresholds' \
             start and end, min and max",
            self.check_perfdata_limit.clone(),
        );
        r.register(
            "check_perfdata_dropped_items",
            "Performance data items of the check that were dropped: malformed, or cut by the \
             output cap",
            self.check_perfdata_dropped.clone(),
        );
        self.spool.register(r);
        r.register(
            "upstream_sends",
            "Batches sent upstream, by result",
            self.sends.clone(),
        );
        r.register(
            "upstream_backlog_entries",
            "Spooled entries the upstream has not acknowledged yet",
            self.upstream_backlog.clone(),
        );
        r.register(
            "upstream_skipped_entries",
            "Spooled entries dropped by retention before the upstream got them",
            self.upstream_skipped.clone(),
        );
        r.register(
            "plan_age_seconds",
            "Seconds since the plan being run was fetched",
            self.plan_age_seconds.clone(),
        );
        r.register(
            "plan_held",
            "1 while the agent runs its last good plan",
            self.plan_held.clone(),
        );
        r.register("plan_info", "The plan being run", self.plan_info.clone());
        r.register(
            "plan_checks",
            "Checks in the plan being run",
            self.plan_checks.clone(),
        );
    }

    /// Records one run of a check.
    pub fn observe_run(
        &self,
        labels: &CheckLabels,
        state: CheckState,
        hard: bool,
        duration_seconds: f64,
        finished_unix_seconds: f64,
        perfdata: &[(String, f64, String)],
    ) {
        self.observe_state(labels, state, hard, duration_seconds, finished_unix_seconds);
        for (label, value, uom) in perfdata.iter().take(MAX_PERFDATA_PER_CHECK) {
            let series = perfdata_labels(labels, label, uom);
            self.check_perfdata.get_or_create(&series).set(*value);
        }
    }

    /// Records the bounds a plugin wrote beside the values of the series `observe_run` keeps
    /// (the first [`MAX_PERFDATA_PER_CHECK`] labels), replacing the previous run's.
    pub fn observe_limits(
        &self,
        labels: &CheckLabels,
        kept: &[(String, String)],
        limits: &[crate::runner::PerfdataLimit],
    ) {
        for (label, uom) in kept {
            self.forget_limits(labels, label, uom);
        }
        for limit in limits {
            if !kept
                .iter()
                .any(|(l, u)| *l == limit.label && *u == limit.uom)
            {
                continue;
            }
            let series = LimitLabels {
                series: perfdata_labels(labels, &limit.label, &limit.uom),
                limit: limit.kind.name().to_owned(),
            };
            self.check_perfdata_limit
                .get_or_create(&series)
                .set(limit.value);
        }
    }

    /// Counts perfdata items a run dropped.
    pub fn observe_dropped(&self, labels: &CheckLabels, dropped: crate::runner::DroppedPerfdata) {
        for (reason, count) in [("malformed", dropped.malformed), ("cut", dropped.cut)] {
            if count > 0 {
                self.check_perfdata_dropped
                    .get_or_create(&DroppedLabels {
                        check: labels.clone(),
                        reason: reason.to_owned(),
                    })
                    .inc_by(u64::from(count));
            }
        }
    }

    fn forget_limits(&self, labels: &CheckLabels, label: &str, uom: &str) {
        for kind in crate::runner::LimitKind::ALL {
            self.check_perfdata_limit.remove(&LimitLabels {
                series: perfdata_labels(labels, label, uom),
                limit: kind.name().to_owned(),
            });
        }
    }

    fn observe_state(
        &self,
        labels: &CheckLabels,
        state: CheckState,
        hard: bool,
        duration_seconds: f64,
        finished_unix_seconds: f64,
    ) {
        self.check_state
            .get_or_create(labels)
            .set(state.metric_value());
        self.check_state_hard
            .get_or_create(labels)
            .set(i64::from(hard));
        self.check_duration_seconds
            .get_or_create(labels)
            .set(duration_seconds);
        self.check_last_run_timestamp_seconds
            .get_or_create(labels)
            .set(finished_unix_seconds);
        self.check_runs.get_or_create(labels).inc();
    }

    /// Removes every series of a check that left the plan.
    pub fn forget_check(&self, labels: &CheckLabels, series: &[(String, String)]) {
        self.check_state.remove(labels);
        self.check_state_hard.remove(labels);
        self.check_duration_seconds.remove(labels);
        self.check_last_run_timestamp_seconds.remove(labels);
        self.check_runs.remove(labels);
        self.check_state_changes.remove(labels);
        for reason in ["malformed", "cut"] {
            self.check_perfdata_dropped.remove(&DroppedLabels {
                check: labels.clone(),
                reason: reason.to_owned(),
            });
        }
        self.forget_perfdata(labels, series);
    }

    /// Removes perfdata series of a check (labels its plugin or probe no longer reports).
    pub fn forget_perfdata(&self, labels: &CheckLabels, series: &[(String, String)]) {
        for (label, uom) in series {
            self.check_perfdata
                .remove(&perfdata_labels(labels, label, uom));
            self.forget_limits(labels, label, uom);
        }
    }

    /// Records which plan runs and whether it is held.
    pub fn set_plan(&self, hash: &str, held: bool, checks: usize) {
        self.plan_info.clear();
        self.plan_info
            .get_or_create(&PlanLabels {
                hash: hash.to_owned(),
            })
            .set(1);
        self.plan_held.set(i64::from(held));
        self.plan_checks.set(checks as i64);
    }
}

/// A registry holding `metrics` (see [`encode`]).
pub fn registry(metrics: &Metrics) -> Registry {
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    registry
}

/// Encodes a registry in OpenMetrics text (what `/metrics` answers Prometheus with;
/// [`crate::exposition`] derives the classic format from it).
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)
        .expect("writing to a String cannot fail");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_shows_up_and_a_removed_check_disappears() {
        let metrics = Metrics::default();
        let registry = registry(&metrics);
        let id = CheckId {
            namespace: "shop".into(),
            rule_set: "web".into(),
            rule: "http".into(),
        };
        let labels = CheckLabels::new(&id, "web-1");
        let perf = vec![("time".to_owned(), 0.25, "s".to_owned())];
        metrics.observe_run(
            &labels,
            CheckState::Critical,
            true,
            0.25,
            1_700_000_000.0,
            &perf,
        );
        let text = encode(&registry);
        assert!(
            text.contains(
                r#"vedette_check_state{host="web-1",namespace="shop",ruleset="web",check="http"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"label="time",uom="s"} 0.25"#), "{text}");
        metrics.forget_perfdata(&labels, &[("time".to_owned(), "s".to_owned())]);
        let text = encode(&registry);
        assert!(!text.contains(r#"label="time""#), "{text}");
        assert!(text.contains("web-1"), "{text}");
        metrics.forget_check(&labels, &[("time".to_owned(), "s".to_owned())]);
        let text = encode(&registry);
        assert!(!text.contains("web-1"), "{text}");
    }

    #[test]
    fn limits_and_dropped_items_show_up_and_go_with_their_series() {
        use crate::runner::{DroppedPerfdata, LimitKind, PerfdataLimit};
        let metrics = Metrics::default();
        let registry = registry(&metrics);
        let id = CheckId {
            namespace: "shop".into(),
            rule_set: "web".into(),
            rule: "disk".into(),
        };
        let labels = CheckLabels::new(&id, "web-1");
        let kept = [("used".to_owned(), "%".to_owned())];
        let limit = |kind, value| PerfdataLimit {
            label: "used".into(),
            uom: "%".into(),
            kind,
            value,
        };
        let ignored = PerfdataLimit {
            label: "not-kept".into(),
            ..limit(LimitKind::Max, 1.0)
        };
        metrics.observe_limits(
            &labels,
            &kept,
            &[
                limit(LimitKind::WarnHigh, 80.0),
                limit(LimitKind::Max, 100.0),
                ignored,
            ],
        );
        metrics.observe_dropped(
            &labels,
            DroppedPerfdata {
                malformed: 2,
                cut: 1,
            },
        );
        metrics.observe_dropped(
            &labels,
            DroppedPerfdata {
                malformed: 1,
                cut: 0,
            },
        );
        let text = encode(&registry);
        assert!(
            text.contains(r#"uom="%",limit="warn_high"} 80.0"#),
            "{text}"
        );
        assert!(text.contains(r#"uom="%",limit="max"} 100.0"#), "{text}");
        assert!(!text.contains("not-kept"), "{text}");
        assert!(
            text.contains(r#"check="disk",reason="malformed"} 3"#),
            "{text}"
        );
        assert!(text.contains(r#"check="disk",reason="cut"} 1"#), "{text}");
        // The next run wrote no warning threshold: its bound goes.
        metrics.observe_limits(&labels, &kept, &[limit(LimitKind::Max, 100.0)]);
        let text = encode(&registry);
        assert!(!text.contains("warn_high"), "{text}");
        metrics.forget_check(&labels, &kept);
        let text = encode(&registry);
        assert!(!text.contains("web-1"), "{text}");
    }
}
