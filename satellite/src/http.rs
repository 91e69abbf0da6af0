//! The satellite's HTTP API:
//!
//! | method and path | request | answer |
//! | --- | --- | --- |
//! | `GET /v1/plan?host=H` | `If-None-Match` (optional) | 200 [`Plan`](vedette_protocol::plan::Plan) + `ETag`, 304, 404 unknown host, 503 no bundle yet |
//! | `POST /v1/results` | [`Batch`](vedette_protocol::report::Batch) JSON | 200 [`Ack`](vedette_protocol::report::Ack); 400 malformed, 401, 403, 413 too large, 503 storage |
//! | `POST /v1/satellite` | [`Batch<Forwarded>`](vedette_protocol::forward::Forwarded) JSON from a child zone's satellite | 200 `Ack`; as `/v1/results`, 403 unless a ServiceAccount of the satellites' namespace |
//! | `GET /v1/state[?host=H]` | | [`StateView`] JSON (of host `H` only when given): states, agents, the last state changes |
//! | `GET /metrics` | | Prometheus text (OpenMetrics when `Accept` asks for it) |
//! | `GET /healthz`, `GET /readyz` | | 200 (`/readyz`: 503 until a bundle is loaded) |
//!
//! Errors are JSON `{"error": "<what failed>"}`. Both `/v1` endpoints need a bearer token
//! unless authentication is disabled.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use prometheus_client::registry::Registry;
use serde::Serialize;
use vedette_crds::template::CheckState;

use vedette_protocol::clock::unix_ms;
use vedette_protocol::forward::Forwarded;
use vedette_protocol::report::Batch;

use super::auth::{self, Auth, Identity};
use super::ingest::Ingest;
use super::metrics::SatelliteMetrics;
use super::plans::{Plans, etag_matches};
use super::table::{AgentView, Applied};

/// Default largest batch body: 4 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// What the handlers share.
pub struct Api {
    /// The zone.
    pub zone: String,
    /// This replica.
    pub replica: String,
    /// Namespace of the satellites: child zones' satellites authenticate as its
    /// ServiceAccounts.
    pub namespace: String,
    /// Plans of the current bundle.
    pub plans: Arc<Plans>,
    /// Where batches go.
    pub ingest: Arc<Ingest>,
    /// How requests are authenticated.
    pub auth: Auth,
    /// Metrics.
    pub metrics: Arc<SatelliteMetrics>,
    /// Their registry.
    pub registry: Registry,
    /// Largest batch body.
    pub max_body_bytes: usize,
}

/// The router of every endpoint.
pub fn router(api: Arc<Api>) -> Router {
    let limit = api.max_body_bytes;
    let (for_metrics, for_ready) = (api.clone(), api.clone());
    let admin =
        vedette_agent::http::admin_router(move || metrics(&for_metrics), move || ready(&for_ready));
    Router::new()
        .route("/v1/plan", get(plan))
        .route(
            "/v1/results",
            post(results).layer(DefaultBodyLimit::max(limit)),
        )
        .route(
            "/v1/satellite",
            post(relayed).layer(DefaultBodyLimit::max(limit)),
        )
        .route("/v1/state", get(state))
        .with_state(api)
        .merge(admin)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    #[derive(Serialize)]
    struct Body {
        error: String,
    }
    (
        status,
        Json(Body {
            error: message.into(),
        }),
    )
        .into_response()
}

fn auth_error(api: &Api, problem: &auth::Error) -> Response {
    api.metrics.refuse(problem.metric_label());
    let status = match problem {
        auth::Error::Missing | auth::Error::Invalid(_) => StatusCode::UNAUTHORIZED,
        auth::Error::Forbidden { .. } => StatusCode::FORBIDDEN,
        auth::Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(status, problem.to_string())
}

/// A refusal, boxed: a `Response` is large.
type Refusal = Box<Response>;

async fn identify(api: &Api, headers: &HeaderMap) -> Result<Option<Identity>, Refusal> {
    let authorization = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    api.auth
        .identify(authorization)
        .await
        .map_err(|problem| Box::new(auth_error(api, &problem)))
}

fn authorize(api: &Api, identity: Option<&Identity>, agent: &str) -> Result<(), Refusal> {
    identity
        .map_or(Ok(()), |identity| identity.authorize(agent))
        .map_err(|problem| Box::new(auth_error(api, &problem)))
}

async fn plan(
    State(api): State<Arc<Api>>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let identity = match identify(&api, &headers).await {
        Ok(identity) => identity,
        Err(response) => return *response,
    };
    let Some(host) = query.get("host").filter(|h| !h.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "query parameter host is required");
    };
    if let Err(response) = authorize(&api, identity.as_ref(), host) {
        return *response;
    }
    let Some(cache) = api.plans.current() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no zone bundle loaded yet");
    };
    let Some(plan) = cache.plan(host) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("host {host} is not a machine of zone {}", api.zone),
        );
    };
    let matches = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| etag_matches(tags, &plan.etag));
    if matches {
        return (StatusCode::NOT_MODIFIED, [(ETAG, plan.etag.clone())]).into_response();
    }
    (
        [
            (ETAG, plan.etag.clone()),
            (CONTENT_TYPE, "application/json".to_owned()),
        ],
        plan.body.clone(),
    )
        .into_response()
}

async fn results(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let identity = match identify(&api, &headers).await {
        Ok(identity) => identity,
        Err(response) => return *response,
    };
    let batch: Batch = match parse_body(&api, body) {
        Ok(batch) => batch,
        Err(response) => return *response,
    };
    if let Err(response) = authorize(&api, identity.as_ref(), &batch.agent) {
        return *response;
    }
    match api.ingest.receive(batch, unix_ms()).await {
        Ok(ack) => Json(ack).into_response(),
        Err(problem) => {
            api.metrics.refuse("storage");
            tracing::warn!(message = "Failed to store a batch.", error = %problem);
            error(StatusCode::SERVICE_UNAVAILABLE, problem.to_string())
        }
    }
}

/// `POST /v1/satellite`: what a satellite of a child zone forwards, stored and relayed upstream.
async fn relayed(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let identity = match identify(&api, &headers).await {
        Ok(identity) => identity,
        Err(response) => return *response,
    };
    if let Some(Err(problem)) = identity
        .as_ref()
        .map(|id| id.authorize_satellite(&api.namespace))
    {
        return auth_error(&api, &problem);
    }
    let batch: Batch<Forwarded> = match parse_body(&api, body) {
        Ok(batch) => batch,
        Err(response) => return *response,
    };
    if let Err(problem) = vedette_protocol::forward::check_relayable(&batch) {
        api.metrics.refuse("malformed");
        return error(StatusCode::BAD_REQUEST, problem.to_string());
    }
    match api.ingest.receive_relayed(batch).await {
        Ok(ack) => Json(ack).into_response(),
        Err(problem) => {
            api.metrics.refuse("storage");
            tracing::warn!(message = "Failed to store a relayed batch.", error = %problem);
            error(StatusCode::SERVICE_UNAVAILABLE, problem.to_string())
        }
    }
}

/// The body as a batch, or the refusal (counted) naming what is wrong with it.
fn parse_body<T: serde::de::DeserializeOwned>(
    api: &Api,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, Refusal> {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            api.metrics.refuse("too_large");
            return Err(Box::new(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("batch is larger than {} bytes", api.max_body_bytes),
            )));
        }
        Err(rejection) => {
            api.metrics.refuse("malformed");
            return Err(Box::new(error(rejection.status(), rejection.body_text())));
        }
    };
    serde_json::from_slice(&body).map_err(|problem| {
        api.metrics.refuse("malformed");
        Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("batch does not parse: {problem}"),
        ))
    })
}

/// The state table as `/v1/state` shows it.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct StateView {
    /// The zone.
    pub zone: String,
    /// This replica.
    pub replica: String,
    /// Hash of the bundle served (empty: none yet).
    pub bundle_hash: String,
    /// What was applied since the spool began (survives restarts).
    pub applied: Applied,
    /// Entries received more than once.
    pub duplicates: u64,
    /// Per agent: every sequence up to this one is stored.
    pub watermarks: BTreeMap<String, u64>,
    /// Per agent: sequences stored above its watermark (sent past a gap).
    pub stored_above: BTreeMap<String, u64>,
    /// Every agent.
    pub agents: Vec<AgentView>,
    /// Every check.
    pub checks: Vec<CheckView>,
    /// The last state changes received, in the order they arrived, oldest first.
    pub recent_changes: Vec<ChangeView>,
}

/// One check on `/v1/state`.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct CheckView {
    /// Machine or target.
    pub host: String,
    /// `namespace/ruleSet/rule`.
    pub check: String,
    /// State, `PENDING` when never reported.
    pub state: String,
    /// Hard state.
    pub hard: bool,
    /// Output.
    pub output: String,
    /// When it was reported (agent's clock), Unix ms.
    pub at_ms: u64,
    /// Who reported it and with which sequence.
    pub writer: Option<(String, u64)>,
}

/// One state change of the recent history on `/v1/state`.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct ChangeView {
    /// Machine or target.
    pub host: String,
    /// `namespace/ruleSet/rule`.
    pub check: String,
    /// The new state.
    pub state: String,
    /// Hard state.
    pub hard: bool,
    /// When the run finished (sender's clock), Unix ms.
    pub at_ms: u64,
    /// Who reported it and with which sequence.
    pub writer: (String, u64),
    /// It arrived after a newer state of the check.
    pub outdated: bool,
}

/// The current state view.
pub fn state_view(api: &Api) -> StateView {
    state_view_for(api, None)
}

/// The current state view, of one host only when `host` is given (`/v1/state?host=H`).
pub fn state_view_for(api: &Api, host: Option<&str>) -> StateView {
    let now = unix_ms();
    let core = api.ingest.core();
    let entries: Box<dyn Iterator<Item = _>> = match host {
        Some(host) => Box::new(core.table.checks_of(host)),
        None => Box::new(core.table.checks()),
    };
    let wanted = |agent: &String| host.is_none_or(|host| host == agent);
    let checks = entries
        .map(|(key, entry)| CheckView {
            host: key.host.clone(),
            check: key.check.to_string(),
            state: entry.state.map_or("PENDING", CheckState::name).to_owned(),
            hard: entry.hard,
            output: entry.output.clone(),
            at_ms: entry.at_ms,
            writer: entry.writer.as_ref().map(|w| (w.agent.clone(), w.sequence)),
        })
        .collect();
    StateView {
        zone: api.zone.clone(),
        replica: api.replica.clone(),
        bundle_hash: api
            .plans
            .current()
            .map(|c| c.bundle_hash().to_owned())
            .unwrap_or_default(),
        applied: core.table.applied().clone(),
        duplicates: core.duplicates,
        watermarks: core
            .agents
            .iter()
            .filter(|(agent, _)| wanted(agent))
            .map(|(agent, w)| (agent.clone(), w.contiguous()))
            .collect(),
        stored_above: core
            .agents
            .iter()
            .filter(|(agent, _)| wanted(agent))
            .map(|(agent, w)| (agent.clone(), w.stored_above()))
            .collect(),
        agents: match host {
            Some(host) => core.table.agent(host, now).into_iter().collect(),
            None => core.table.agents(now),
        },
        checks,
        recent_changes: core
            .table
            .recent_changes()
            .filter(|change| host.is_none_or(|host| host == change.host))
            .map(|change| ChangeView {
                host: change.host.clone(),
                check: change.check.to_string(),
                state: change.state.name().to_owned(),
                hard: change.hard,
                at_ms: change.at_ms,
                writer: (change.writer.agent.clone(), change.writer.sequence),
                outdated: change.outdated,
            })
            .collect(),
    }
}

async fn state(
    State(api): State<Arc<Api>>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let host = query.get("host").map(String::as_str);
    Json(state_view_for(&api, host)).into_response()
}

/// The metrics text, with the state table's gauges refreshed first.
fn metrics(api: &Api) -> String {
    {
        let spool = api.ingest.spool_stats();
        let core = api.ingest.core();
        api.metrics
            .refresh(&api.zone, &core.table, &spool, unix_ms());
    }
    vedette_agent::metrics::encode(&api.registry)
}

/// Ready once a bundle is loaded.
fn ready(api: &Api) -> Result<(), String> {
    match api.plans.current() {
        Some(_) => Ok(()),
        None => Err("no zone bundle loaded yet".to_owned()),
    }
}
