//! Keeps the plan the agent runs (F10): fetches it from the upstream with `If-None-Match`,
//! validates a new plan before it replaces the current one, persists the last good plan, and
//! keeps running it for up to the hold duration while the upstream is unreachable or sends an
//! invalid plan — saying so in its status.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::runner::{CompiledCheck, compile_check};
use crate::transport::{PlanFetch, Transport};
use vedette_protocol::plan::{Plan, PlanError};
use vedette_protocol::report::PlanState;

/// Where the plan being run is published.
pub type PlanReceiver = watch::Receiver<Option<Arc<ActivePlan>>>;
/// The plan status, shared with keepalives and metrics.
pub type SharedPlanStatus = Arc<Mutex<PlanStatus>>;

/// A plan with its checks compiled. A check the agent cannot run (a probe this build lacks,
/// an impossible timing, a range or condition that does not compile) is refused alone: it
/// stays in `checks` as a [`CompiledCheck::refused`], whose every run is UNKNOWN with the
/// reason, so upstream and the RuleSet's status see why; every other check runs.
#[derive(Debug)]
pub struct ActivePlan {
    /// The plan.
    pub plan: Plan,
    /// Its checks, compiled (or refused), in plan order.
    pub checks: Vec<Arc<CompiledCheck>>,
    /// The checks refused, with why.
    pub refused: Vec<(String, String)>,
    /// Its content hash.
    pub hash: String,
}

impl ActivePlan {
    /// Compiles a plan; only a plan that cannot be read as a whole (two checks with one id) is
    /// an error.
    pub fn new(plan: Plan) -> Result<Self, Vec<PlanError>> {
        let whole = plan.whole_plan_problems();
        if !whole.is_empty() {
            return Err(whole);
        }
        let hash = plan.hash();
        let mut checks = Vec::with_capacity(plan.checks.len());
        let mut refused = Vec::new();
        for check in &plan.checks {
            match compile_check(check, plan.settings.cycle_seconds) {
                Ok(compiled) => checks.push(Arc::new(compiled)),
                Err(reason) => {
                    warn!(message = "Refusing a check of the plan; the others run.", check = %check.id, %reason);
                    refused.push((check.id.to_string(), reason.clone()));
                    checks.push(Arc::new(CompiledCheck::refused(check.clone(), reason)));
                }
            }
        }
        Ok(Self {
            plan,
            checks,
            refused,
            hash,
        })
    }
}

/// The last good plan as stored on disk.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredPlan {
    plan: Plan,
    etag: Option<String>,
    confirmed_at_ms: u64,
}

/// What the keeper knows about the plan, shared with keepalives and metrics.
#[derive(Debug, Clone, Default)]
pub struct PlanStatus {
    /// Hash of the plan run now (empty: none).
    pub hash: String,
    /// The plan is held: the upstream is unreachable or its plan was invalid.
    pub held: bool,
    /// Why it is held, or why there is no plan.
    pub reason: String,
    /// When the upstream last confirmed the plan (200 or 304), Unix ms.
    pub confirmed_at_ms: u64,
}

impl PlanStatus {
    /// The node agent's readiness (`/readyz`): ready once it runs a plan, held or not (a held
    /// plan is still run for its hold); without one, why not.
    pub fn readiness(&self) -> Result<(), String> {
        if !self.hash.is_empty() {
            return Ok(());
        }
        Err(if self.reason.is_empty() {
            "no plan yet: none fetched from the upstream".to_owned()
        } else {
            format!("no plan yet: {}", self.reason)
        })
    }

    /// The keepalive view at `now_ms`.
    pub fn to_report(&self, now_ms: u64) -> PlanState {
        PlanState {
            hash: self.hash.clone(),
            held: self.held,
            reason: self.reason.clone(),
            age_seconds: now_ms.saturating_sub(self.confirmed_at_ms) / 1000,
        }
    }
}

/// Fetches, validates, persists and publishes plans.
pub struct PlanKeeper {
    host: String,
    store: PathBuf,
    etag: Option<String>,
    /// The hold when no plan says otherwise (`--plan-hold-seconds`).
    default_hold: Duration,
    /// The hold of the plan run now: its zone's `planHoldSeconds`, else the default.
    hold: Duration,
    status: Arc<Mutex<PlanStatus>>,
    publish: watch::Sender<Option<Arc<ActivePlan>>>,
}

impl PlanKeeper {
    /// A keeper for `host` that stores the last good plan in `state_dir/plan.json`, loading it
    /// now if one is there. Receivers of the returned channel see every plan change.
    pub fn open(
        host: &str,
        state_dir: &Path,
        hold: Duration,
    ) -> (Self, PlanReceiver, SharedPlanStatus) {
        Self::open_sharing(host, state_dir, hold, SharedPlanStatus::default())
    }

    /// [`PlanKeeper::open`] keeping its status in `status` (created before the keeper, e.g.
    /// for a readiness endpoint that starts first).
    pub fn open_sharing(
        host: &str,
        state_dir: &Path,
        hold: Duration,
        status: SharedPlanStatus,
    ) -> (Self, PlanReceiver, SharedPlanStatus) {
        let (publish, receiver) = watch::channel(None);
        let mut keeper = Self {
            host: host.to_owned(),
            store: state_dir.join("plan.json"),
            etag: None,
            default_hold: hold,
            hold,
            status: status.clone(),
            publish,
        };
        keeper.load_stored();
        (keeper, receiver, status)
    }

    fn load_stored(&mut self) {
        let Ok(bytes) = std::fs::read(&self.store) else {
            return;
        };
        let stored: StoredPlan = match serde_json::from_slice(&bytes) {
            Ok(stored) => stored,
            Err(error) => {
                warn!(message = "Ignoring an unreadable stored plan.", %error, path = %self.store.display());
                return;
            }
        };
        if stored.plan.host != self.host {
            warn!(message = "Ignoring a stored plan of another host.", host = %stored.plan.host);
            return;
        }
        match ActivePlan::new(stored.plan) {
            Ok(active) => {
                info!(message = "Loaded the last good plan.", hash = %active.hash, checks = active.checks.len());
                self.etag = stored.etag;
                self.hold = self.hold_of(&active.plan);
                self.set_status(|s| {
                    s.hash = active.hash.clone();
                    s.confirmed_at_ms = stored.confirmed_at_ms;
                    s.held = true;
                    s.reason = "not yet confirmed by the upstream since start".to_owned();
                });
                self.publish.send_replace(Some(Arc::new(active)));
            }
            Err(problems) => {
                warn!(message = "Ignoring an invalid stored plan.", problems = %join(&problems))
            }
        }
    }

    /// Uses a plan read from a file (standalone use); an invalid one is an error.
    pub fn use_plan(&mut self, plan: Plan, now_ms: u64) -> Result<(), Vec<PlanError>> {
        let active = ActivePlan::new(plan)?;
        self.accept(active, None, now_ms);
        Ok(())
    }

    fn accept(&mut self, active: ActivePlan, etag: Option<String>, now_ms: u64) {
        let stored = StoredPlan {
            plan: active.plan.clone(),
            etag: etag.clone(),
            confirmed_at_ms: now_ms,
        };
        if let Err(error) = crate::atomic_file::replace(
            &self.store,
            &serde_json::to_vec(&stored).unwrap_or_default(),
        ) {
            warn!(message = "Failed to persist the plan.", %error, path = %self.store.display());
        }
        info!(message = "Running a new plan.", hash = %active.hash, checks = active.checks.len());
        self.etag = etag;
        self.hold = self.hold_of(&active.plan);
        self.set_status(|s| {
            s.hash = active.hash.clone();
            s.held = false;
            s.reason.clear();
            s.confirmed_at_ms = now_ms;
        });
        self.publish.send_replace(Some(Arc::new(active)));
    }

    /// One fetch from the upstream, then the hold check.
    pub async fn poll(&mut self, transport: &mut Transport, now_ms: u64) {
        // Without a plan to run there is nothing a "not modified" could confirm.
        let etag = self.publish.borrow().as_ref().and(self.etag.as_deref());
        match transport.fetch_plan(&self.host, etag).await {
            Ok(PlanFetch::NotModified) => self.set_status(|s| {
                s.held = false;
                s.reason.clear();
                s.confirmed_at_ms = now_ms;
            }),
            Ok(PlanFetch::Changed { body, etag }) => {
                match Plan::from_json(&body, &self.host).and_then(ActivePlan::new) {
                    Ok(active) => self.accept(active, etag, now_ms),
                    Err(problems) => {
                        let reason = format!("invalid plan from upstream: {}", join(&problems));
                        warn!(message = "Keeping the last good plan.", %reason);
                        self.set_status(|s| {
                            s.held = true;
                            s.reason = reason;
                        });
                    }
                }
            }
            Err(error) => {
                let reason = format!("upstream unreachable: {error}");
                warn!(message = "Failed to fetch the plan.", %error);
                self.set_status(|s| {
                    s.held = true;
                    s.reason = reason;
                });
            }
        }
        self.expire(now_ms);
    }

    /// Stops running a plan the upstream has not confirmed for longer than the hold.
    pub fn expire(&mut self, now_ms: u64) {
        let status = self.status.lock().expect("plan status lock").clone();
        let expired = self.publish.borrow().is_some()
            && status.held
            && now_ms.saturating_sub(status.confirmed_at_ms) > self.hold.as_millis() as u64;
        if expired {
            warn!(message = "The held plan expired; no checks run until a valid plan arrives.");
            self.set_status(|s| {
                s.hash.clear();
                s.reason = format!(
                    "held plan expired after {}s; {}",
                    self.hold.as_secs(),
                    s.reason
                );
            });
            // The upstream's next answer must be the plan itself: with the old ETag it would
            // answer "not modified" and nothing would run until the plan changed.
            self.etag = None;
            self.publish.send_replace(None);
        }
    }

    /// How long `plan` is held: its zone's `planHoldSeconds` when set, else the default.
    fn hold_of(&self, plan: &Plan) -> Duration {
        u64::try_from(plan.settings.plan_hold_seconds)
            .ok()
            .filter(|&seconds| seconds > 0)
            .map_or(self.default_hold, Duration::from_secs)
    }

    fn set_status(&self, change: impl FnOnce(&mut PlanStatus)) {
        change(&mut self.status.lock().expect("plan status lock"));
    }
}

fn join(problems: &[PlanError]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
