//! The masters: `POST /v1/satellite` on the operator's `--listen` server, served by every
//! replica. Satellites send [`Batch<Forwarded>`](vedette_protocol::report::Batch) (the batch's
//! `agent` is the satellite replica); the batch is merged into the in-memory
//! [`MasterState`](state::MasterState) and acknowledged with `Ack {upTo}` **after being
//! applied to memory**. The masters keep nothing on disk: their durability is the satellites'
//! spool, which resends whatever is not acknowledged, and a restarted master is brought back
//! by the entries and periodic summaries that follow (see docs/architecture.md).
//!
//! | module | concept |
//! | --- | --- |
//! | [`state`] | the merge (pure): watermarks, last writer wins, keepalives, summaries → events |
//! | [`stream`] | the event stream: typed events and the bus to bounded subscriber channels |
//! | [`events`] | Kubernetes Events for hard state changes, rate-limited, Lease holder only |
//!
//! What the merge learns goes out on the [`stream::Bus`]; the status subscriber marks the
//! live statuses stale and the Events subscriber turns hard changes into Kubernetes Events.
//! History, business processes, notifications and the dashboard subscribe the same way.
//!
//! Satellites authenticate with a bearer token checked by TokenReview (audience `vedette`,
//! cached a minute); the token must belong to a ServiceAccount of the operator's namespace
//! (where the satellites run). `--insecure-no-auth` turns this off for tests and standalone.

pub mod events;
pub mod state;
pub mod stream;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde::Serialize;
use vedette_protocol::clock::unix_ms;
use vedette_protocol::forward::Forwarded;
use vedette_protocol::report::Batch;
use vedette_satellite::auth::{self, Auth, Identity};

use crate::metrics::Metrics;
use state::MasterState;
use stream::Bus;

/// Largest batch body: 8 MiB (a satellite sends at most 1 MiB of entries per batch).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// What the handlers share.
pub struct Masters {
    state: Mutex<MasterState>,
    bus: Bus,
    auth: Auth,
    namespace: String,
    metrics: Arc<Metrics>,
}

impl Masters {
    /// Masters accepting satellites of `namespace` authenticated by `auth`; what the merge
    /// learns is published on `bus`.
    pub fn new(auth: Auth, namespace: &str, bus: Bus, metrics: Arc<Metrics>) -> Self {
        Self {
            state: Mutex::new(MasterState::default()),
            bus,
            auth,
            namespace: namespace.to_owned(),
            metrics,
        }
    }

    /// The state, locked.
    pub fn state(&self) -> MutexGuard<'_, MasterState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies a batch received now and returns the acknowledgement.
    pub fn receive(&self, batch: Batch<Forwarded>) -> vedette_protocol::report::Ack {
        // Published under the lock, so subscribers see every batch's events in merge order.
        let mut state = self.state();
        let before = state.applied().entries;
        let (ack, events) = state.receive(batch, unix_ms());
        self.metrics
            .satellite_entries
            .inc_by(state.applied().entries - before);
        self.bus.publish(events);
        ack
    }

    /// Publishes the agents that went stale by now.
    pub fn sweep(&self) {
        let mut state = self.state();
        let events = state.sweep(unix_ms());
        self.bus.publish(events);
    }

    fn authorize(&self, identity: Option<&Identity>) -> Result<(), auth::Error> {
        let prefix = format!("system:serviceaccount:{}:", self.namespace);
        match identity {
            Some(identity) if !identity.username.starts_with(&prefix) => {
                Err(auth::Error::Forbidden {
                    user: identity.username.clone(),
                    agent: format!("satellites of namespace {}", self.namespace),
                })
            }
            _ => Ok(()),
        }
    }
}

/// `POST /v1/satellite` and `GET /v1/masters/state`.
pub fn router(masters: Arc<Masters>) -> Router {
    Router::new()
        .route(
            "/v1/satellite",
            post(receive).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .route("/v1/masters/state", get(view))
        .with_state(masters)
}

fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

async fn receive(
    State(masters): State<Arc<Masters>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let authorization = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let identity = masters.auth.identify(authorization).await;
    if let Err(problem) = identity.and_then(|id| masters.authorize(id.as_ref())) {
        masters.metrics.batch(problem.metric_label());
        let status = match problem {
            auth::Error::Missing | auth::Error::Invalid(_) => StatusCode::UNAUTHORIZED,
            auth::Error::Forbidden { .. } => StatusCode::FORBIDDEN,
            auth::Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        return error(status, problem.to_string());
    }
    let batch = body
        .map_err(|rejection| (rejection.status(), rejection.body_text()))
        .and_then(|body| {
            serde_json::from_slice::<Batch<Forwarded>>(&body).map_err(|problem| {
                (
                    StatusCode::BAD_REQUEST,
                    format!("batch does not parse: {problem}"),
                )
            })
        });
    match batch {
        Ok(batch) => {
            masters.metrics.batch("ok");
            axum::Json(masters.receive(batch)).into_response()
        }
        Err((status, message)) => {
            masters.metrics.batch("malformed");
            error(status, message)
        }
    }
}

/// The masters' state as `GET /v1/masters/state` shows it (for people and tests).
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct StateView {
    /// Per satellite replica: every spool sequence up to this one is applied.
    pub satellites: std::collections::BTreeMap<String, u64>,
    /// Entries applied.
    pub entries: u64,
    /// Entries received again.
    pub duplicates: u64,
    /// Check reports older than the stored state.
    pub outdated: u64,
    /// Every check: host, `namespace/ruleSet/rule`, state, hard, output.
    pub checks: Vec<(String, String, String, bool, String)>,
    /// Every agent: host, zone, stale, plan held.
    pub agents: Vec<(String, String, bool, bool)>,
}

async fn view(State(masters): State<Arc<Masters>>) -> Response {
    let now = unix_ms();
    let state = masters.state();
    let applied = state.applied();
    let view = StateView {
        satellites: state.satellite_watermarks(),
        entries: applied.entries,
        duplicates: applied.duplicates,
        outdated: applied.outdated,
        checks: state
            .checks()
            .iter()
            .map(|(key, entry)| {
                let state = serde_json::to_value(entry.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                (
                    key.host.clone(),
                    key.check.to_string(),
                    state,
                    entry.hard,
                    entry.output.clone(),
                )
            })
            .collect(),
        agents: state
            .agents()
            .iter()
            .map(|(host, a)| (host.clone(), a.zone.clone(), a.stale(now), a.plan_held))
            .collect(),
    };
    axum::Json(view).into_response()
}
