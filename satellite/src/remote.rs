//! Remote (agentless) checks of the zone (F3): the bundle's `remote` assignments this
//! replica owns (see `ownership`) run with the node's engine, one engine per target (the
//! target is the host their reports are addressed to, F14). Reports go through the ingest
//! path like an agent's, as the satellite's own entries. They stop (their plugins killed) once
//! the ingest is closed, as the satellite shuts down.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use vedette_agent::metrics::Metrics;
use vedette_agent::node::engine::{self, ReportSink, Reporter};
use vedette_agent::node::plan_keeper::ActivePlan;
use vedette_agent::runner::CheckRunner;
use vedette_agent::spool::Priority;
use vedette_protocol::forward::Forwarded;
use vedette_protocol::plan::{Plan, ZoneBundle, with_host};
use vedette_protocol::report::Report;

use super::ingest::Ingest;
use super::metrics::SatelliteMetrics;
use super::ownership::owned;

/// Hands remote check reports to the ingest path.
struct OwnSink {
    ingest: Arc<Ingest>,
}

impl ReportSink for OwnSink {
    fn spool(&self, _priority: Priority, report: &Report) {
        let ingest = self.ingest.clone();
        let entry = Forwarded::Own {
            report: report.clone(),
        };
        tokio::spawn(async move {
            if let Err(error) = ingest.append_own(entry).await {
                warn!(message = "Failed to store a remote check report.", %error);
            }
        });
    }
}

/// The plans (one per target) of the assignments `me` owns among `replicas`.
pub fn owned_plans(bundle: &ZoneBundle, me: &str, replicas: &[String]) -> BTreeMap<String, Plan> {
    let mut plans: BTreeMap<String, Plan> = BTreeMap::new();
    for assignment in owned(bundle, me, replicas) {
        let Some(check) = bundle.checks.get(assignment.check as usize) else {
            continue;
        };
        plans
            .entry(assignment.target.clone())
            .or_insert_with(|| Plan {
                host: assignment.target.clone(),
                zone: bundle.zone.clone(),
                settings: bundle.settings.clone(),
                checks: Vec::new(),
                elements: Vec::new(),
                secrets: Default::default(),
            })
            .checks
            .push(with_host(check, &assignment.target));
    }
    for plan in plans.values_mut() {
        plan.secrets = bundle.secrets.for_checks(&plan.checks);
    }
    plans
}

struct Target {
    plan: Plan,
    publish: watch::Sender<Option<Arc<ActivePlan>>>,
    task: JoinHandle<()>,
}

/// Runs the owned remote checks, following bundle and replica changes.
pub async fn run(
    me: String,
    mut bundles: watch::Receiver<Option<Arc<ZoneBundle>>>,
    mut replicas: watch::Receiver<Vec<String>>,
    ingest: Arc<Ingest>,
    metrics: Arc<SatelliteMetrics>,
    concurrency: usize,
) {
    let runner = Arc::new(CheckRunner::default());
    let closed = ingest.closed();
    let mut closed = std::pin::pin!(closed);
    let sink: Arc<dyn ReportSink> = Arc::new(OwnSink { ingest });
    // The engine's per-check series are not exported: the state table's are.
    let engine_metrics = Arc::new(Metrics::default());
    let mut targets: BTreeMap<String, Target> = BTreeMap::new();
    loop {
        let bundle = bundles.borrow_and_update().clone();
        let live = replicas.borrow_and_update().clone();
        metrics.replicas.set(live.len() as i64);
        let wanted = bundle
            .as_deref()
            .map(|b| owned_plans(b, &me, &live))
            .unwrap_or_default();
        metrics
            .remote_checks_owned
            .set(wanted.values().map(|p| p.checks.len() as i64).sum());
        targets.retain(|target, running| {
            let keep = wanted.contains_key(target);
            if !keep {
                running.task.abort();
                runner.set_secrets(target, &Default::default());
            }
            keep
        });
        for (target, plan) in wanted {
            if targets.get(&target).is_some_and(|t| t.plan == plan) {
                continue;
            }
            let active = match ActivePlan::new(plan.clone()) {
                Ok(active) => Arc::new(active),
                Err(problems) => {
                    warn!(message = "Refusing remote checks.", target = %target, problems = ?problems);
                    continue;
                }
            };
            if let Some(running) = targets.get_mut(&target) {
                running.publish.send_replace(Some(active));
                running.plan = plan;
                continue;
            }
            info!(message = "Running remote checks.", target = %target, checks = plan.checks.len());
            let (publish, plans) = watch::channel(Some(active));
            let reporter = Arc::new(Reporter::new(&target, sink.clone(), engine_metrics.clone()));
            let task = tokio::spawn(engine::run(
                target.clone(),
                plans,
                runner.clone(),
                reporter,
                concurrency,
                None,
            ));
            targets.insert(
                target,
                Target {
                    plan,
                    publish,
                    task,
                },
            );
        }
        tokio::select! {
            changed = bundles.changed() => if changed.is_err() { break },
            changed = replicas.changed() => if changed.is_err() { break },
            () = &mut closed => {
                info!(message = "Stopping the remote checks: the satellite shuts down.");
                break;
            }
        }
    }
    for target in targets.values() {
        target.task.abort();
    }
}
