//! `GET /v1/history` and `GET /v1/availability` on the masters (and in standalone mode).
//!
//! **Who sees what** ([`super::access`]): the caller's bearer token is checked with a
//! TokenReview, and every namespace with a SubjectAccessReview: `get` on
//! `rulesets.vedette.dev` in that namespace. A caller that asks
//! for one namespace it may not read is refused (403, naming it); a caller that asks for none
//! sees the namespaces it may read, and agent records (which belong to no namespace) only when
//! it may read rule sets in every namespace. Answers are cached for a minute. Standalone mode
//! (loopback only) and `--insecure-no-auth` answer everyone.
//!
//! **Parameters.** `namespace`, `zone`, `host`, `ruleSet`, `check`, `state` (OK, WARNING,
//! CRITICAL, UNKNOWN), `kind` (state_change, agent_fresh, agent_stale, plan_held,
//! plan_released), `from` and `to` (Unix ms or RFC 3339), `limit` (at most 1000), `cursor`
//! (the `next` of the previous page). `/v1/availability` takes `namespace` and `ruleSet`
//! (required), `check`, `host`, `from`, `to` (default: the last 30 days) and `hardOnly`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use vedette_crds::CheckState;
use vedette_history::query::{AvailabilityQuery, Cursor, DEFAULT_PAGE, HistoryQuery};
use vedette_history::{Kind, Store};
use vedette_protocol::clock::unix_ms;

use super::access::AccessError;

/// Availability's range when none is given: 30 days.
pub const DEFAULT_RANGE_MS: u64 = 30 * 86_400_000;

pub use super::access::{KubeAccess, ReadAccess};

/// What the history endpoints share.
pub struct HistoryApi {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Who may read.
    pub access: ReadAccess,
}

/// `GET /v1/history` and `GET /v1/availability` over `api`.
pub fn router(api: Arc<HistoryApi>) -> Router {
    Router::new()
        .route("/v1/history", get(history))
        .route("/v1/availability", get(availability))
        .with_state(api)
}

/// An answer that is not a page: the status and a message naming the problem.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl ApiError {
    fn bad(message: String) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, message)
    }

    fn unavailable(message: String) -> ApiError {
        ApiError(StatusCode::SERVICE_UNAVAILABLE, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

/// The query parameters of both endpoints.
#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Params {
    namespace: Option<String>,
    zone: Option<String>,
    host: Option<String>,
    rule_set: Option<String>,
    check: Option<String>,
    state: Option<String>,
    kind: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
    hard_only: Option<bool>,
}

/// `value` as Unix ms: an integer, or an RFC 3339 time.
pub fn parse_time(name: &str, value: &str) -> Result<u64, ApiError> {
    if let Ok(ms) = value.parse::<u64>() {
        return Ok(ms);
    }
    value
        .parse::<jiff::Timestamp>()
        .ok()
        .and_then(|t| u64::try_from(t.as_millisecond()).ok())
        .ok_or_else(|| {
            ApiError::bad(format!(
                "{name}={value:?} is neither Unix milliseconds nor an RFC 3339 time"
            ))
        })
}

fn time(name: &str, value: &Option<String>) -> Result<Option<u64>, ApiError> {
    value.as_deref().map(|v| parse_time(name, v)).transpose()
}

/// The history query `params` ask for (without the namespaces the caller may read).
pub fn history_query(params: &Params) -> Result<HistoryQuery, ApiError> {
    let state = params
        .state
        .as_deref()
        .map(|name| {
            CheckState::from_name(&name.to_ascii_uppercase()).ok_or_else(|| {
                ApiError::bad(format!(
                    "state={name:?} is not one of OK, WARNING, CRITICAL, UNKNOWN"
                ))
            })
        })
        .transpose()?;
    let kind = params
        .kind
        .as_deref()
        .map(|name| {
            Kind::from_name(name).ok_or_else(|| {
                let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                ApiError::bad(format!("kind={name:?} is not one of {}", names.join(", ")))
            })
        })
        .transpose()?;
    let after = params
        .cursor
        .as_deref()
        .map(|c| Cursor::decode(c).map_err(|e| ApiError::bad(e.to_string())))
        .transpose()?;
    Ok(HistoryQuery {
        allowed_namespaces: None,
        namespace: params.namespace.clone(),
        zone: params.zone.clone(),
        host: params.host.clone(),
        rule_set: params.rule_set.clone(),
        check: params.check.clone(),
        state,
        kind,
        from_ms: time("from", &params.from)?,
        to_ms: time("to", &params.to)?,
        limit: params.limit.unwrap_or(DEFAULT_PAGE),
        after,
    })
}

/// The availability query `params` ask for, at `now_ms`.
pub fn availability_query(params: &Params, now_ms: u64) -> Result<AvailabilityQuery, ApiError> {
    let required = |name: &str, value: &Option<String>| {
        value
            .clone()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::bad(format!("{name} is required")))
    };
    let to_ms = time("to", &params.to)?.unwrap_or(now_ms);
    let from_ms = time("from", &params.from)?.unwrap_or(to_ms.saturating_sub(DEFAULT_RANGE_MS));
    if from_ms >= to_ms {
        return Err(ApiError::bad(format!(
            "from ({from_ms}) must be before to ({to_ms})"
        )));
    }
    Ok(AvailabilityQuery {
        namespace: required("namespace", &params.namespace)?,
        rule_set: required("ruleSet", &params.rule_set)?,
        check: params.check.clone(),
        host: params.host.clone(),
        from_ms,
        to_ms,
        hard_only: params.hard_only.unwrap_or(false),
    })
}

/// The namespaces the caller may read (`None`: every namespace and the agent records),
/// refusing a `namespace` asked for that it may not read.
async fn allowed(
    api: &HistoryApi,
    headers: &HeaderMap,
    namespace: Option<&str>,
) -> Result<Option<Vec<String>>, ApiError> {
    if matches!(api.access, ReadAccess::Open) {
        return Ok(None);
    }
    let authorization = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let caller = api.access.caller(authorization).await?;
    if let Some(namespace) = namespace {
        if !api.access.may_read(&caller, Some(namespace)).await? {
            return Err(ApiError(
                StatusCode::FORBIDDEN,
                format!(
                    "{} may not get rulesets.{} in namespace {namespace}",
                    caller.name(),
                    vedette_crds::GROUP
                ),
            ));
        }
        return Ok(Some(vec![namespace.to_owned()]));
    }
    if api.access.may_read(&caller, None).await? {
        return Ok(None);
    }
    let store = api.store.clone();
    let candidates = tokio::task::spawn_blocking(move || store.namespaces())
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(api.access.visible(&caller, candidates).await?.as_list())
}

impl From<AccessError> for ApiError {
    fn from(problem: AccessError) -> ApiError {
        match problem {
            AccessError::Unauthenticated(m) => ApiError(StatusCode::UNAUTHORIZED, m),
            AccessError::Unavailable(m) => ApiError::unavailable(m),
        }
    }
}

/// Runs `query` on the store on a blocking thread.
async fn blocking<T: Send + 'static>(
    store: &Arc<dyn Store>,
    query: impl FnOnce(&dyn Store) -> Result<T, vedette_history::Error> + Send + 'static,
) -> Result<T, ApiError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || query(store.as_ref()))
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
        .map_err(|e| ApiError::unavailable(e.to_string()))
}

async fn history(
    State(api): State<Arc<HistoryApi>>,
    headers: HeaderMap,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad(e.body_text()))?;
    let mut query = history_query(&params)?;
    query.allowed_namespaces = allowed(&api, &headers, params.namespace.as_deref()).await?;
    if query.allowed_namespaces.as_ref().is_some_and(Vec::is_empty) {
        return Ok(axum::Json(vedette_history::query::HistoryPage::default()).into_response());
    }
    let page = blocking(&api.store, move |store| store.history(&query)).await?;
    Ok(axum::Json(page).into_response())
}

async fn availability(
    State(api): State<Arc<HistoryApi>>,
    headers: HeaderMap,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad(e.body_text()))?;
    let query = availability_query(&params, unix_ms())?;
    allowed(&api, &headers, Some(&query.namespace)).await?;
    let answer = blocking(&api.store, move |store| store.availability(&query)).await?;
    Ok(axum::Json(answer).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        let text: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        serde_urlencoded::from_str(&text.join("&")).unwrap()
    }

    #[test]
    fn parameters_become_a_query_and_bad_ones_are_named() {
        let query = history_query(&params(&[
            ("namespace", "shop"),
            ("state", "critical"),
            ("kind", "state_change"),
            ("from", "2026-12-01T00:00:00Z"),
            ("to", "1800000000000"),
            ("limit", "5"),
        ]))
        .unwrap();
        assert_eq!(query.state, Some(CheckState::Critical));
        assert_eq!(query.kind, Some(Kind::StateChange));
        assert_eq!(query.from_ms, Some(1_796_083_200_000));
        assert_eq!((query.to_ms, query.limit), (Some(1_800_000_000_000), 5));
        let bad = |pairs: &[(&str, &str)]| history_query(&params(pairs)).unwrap_err().1;
        assert!(bad(&[("state", "bad")]).contains("state=\"bad\" is not one of OK"));
        assert!(bad(&[("kind", "x")]).contains("kind=\"x\" is not one of state_change"));
        assert!(bad(&[("from", "yesterday")]).contains("from=\"yesterday\" is neither"));
        assert!(bad(&[("cursor", "abc")]).contains("cursor \"abc\""));
    }

    #[test]
    fn availability_needs_a_rule_set_and_defaults_to_the_last_30_days() {
        let now = 100 * 86_400_000;
        let query =
            availability_query(&params(&[("namespace", "shop"), ("ruleSet", "web")]), now).unwrap();
        assert_eq!((query.from_ms, query.to_ms), (now - DEFAULT_RANGE_MS, now));
        let missing = availability_query(&params(&[("namespace", "shop")]), now).unwrap_err();
        assert_eq!(missing.1, "ruleSet is required");
        let backwards = availability_query(
            &params(&[
                ("namespace", "a"),
                ("ruleSet", "b"),
                ("from", "5"),
                ("to", "5"),
            ]),
            now,
        )
        .unwrap_err();
        assert!(backwards.1.contains("must be before"));
    }
}
