//! The dashboard (F27): a web portal over every check, zone and business process, served by
//! every master replica and by standalone mode under `/ui/`, from the operator binary with its
//! page, script and style embedded (no CDN, no external font, nothing to build besides Rust).
//!
//! | module | concept |
//! | --- | --- |
//! | [`catalog`] | what is defined: each check's definition, planned hosts, zones (pure) |
//! | [`views`] | each view's answer: rows joined, filtered, sorted, paged (pure) |
//! | [`live`] | the event stream to open pages: coalesced, filtered, server-sent |
//! | this module | the HTTP edge: routes, the caller's token, JSON and the embedded assets |
//!
//! **Pages.** One page (`/ui/…`, every path the same HTML) whose script fetches JSON from
//! `/ui/api/…` and renders it; each view's filters live in its URL, so a URL can be shared.
//! Filtering, sorting and paging happen on the server, so a page of 20,000 checks costs the
//! browser one page of rows.
//!
//! **Access** ([`crate::masters::access`]): the token comes from the `Authorization` header
//! (as an authenticating proxy such as oauth2-proxy passes it) or from the `vedette_token`
//! cookie the login page sets (HttpOnly, SameSite=Strict). A caller sees the checks and
//! processes of the namespaces it may `get` rule sets in, and agents, zones and satellites
//! only when it may `get` monitorzones. The dashboard changes nothing: every route but login
//! and logout is a GET, so a `vedette-view` binding is enough to use all of it.

pub mod catalog;
pub mod live;
pub mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::broadcast;
use vedette_history::query::HistoryQuery;
use vedette_protocol::clock::unix_ms;
use vedette_protocol::plan::CheckId;

use crate::masters::Masters;
use crate::masters::access::{AccessError, Caller, ReadAccess, Visible};
use views::{Column, Filter, Order};

/// The cookie the login page sets.
pub const TOKEN_COOKIE: &str = "vedette_token";
/// How long the cookie lasts: a working day.
pub const TOKEN_COOKIE_SECONDS: u64 = 8 * 3600;
/// History records a check's page shows.
pub const CHECK_HISTORY: usize = 100;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// What the dashboard's handlers share.
pub struct Dashboard {
    masters: Arc<Masters>,
    access: ReadAccess,
    pages: broadcast::Sender<Arc<live::Change>>,
}

impl Dashboard {
    /// The dashboard over `masters`, readable as `access` says, fed by `events` (a subscriber
    /// of the masters' stream; its task ends with the stream).
    pub fn start(
        masters: Arc<Masters>,
        access: ReadAccess,
        events: crate::masters::stream::Subscription,
    ) -> Arc<Dashboard> {
        let (pages, _) = broadcast::channel(live::CAPACITY);
        tokio::spawn(live::run(events, pages.clone()));
        Arc::new(Dashboard {
            masters,
            access,
            pages,
        })
    }

    async fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let authorization = bearer(headers);
        Ok(self.access.caller(authorization.as_deref()).await?)
    }

    /// What `caller` may see: the namespaces, and whether what belongs to none.
    async fn sight(&self, caller: &Caller) -> Result<(Visible, bool), ApiError> {
        let mut candidates = self.masters.catalog().namespaces();
        candidates.extend(
            self.masters
                .state()
                .checks()
                .keys()
                .map(|key| key.check.namespace.clone()),
        );
        let visible = self.access.visible(caller, candidates).await?;
        let cluster = self.access.may_read_cluster(caller).await?;
        Ok((visible, cluster))
    }

    fn rows(&self, visible: &Visible) -> Vec<views::Row> {
        let catalog = self.masters.catalog();
        views::rows(&self.masters.state(), &catalog, visible, unix_ms())
    }
}

/// The `Authorization` header, else the login cookie as one.
fn bearer(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        return Some(value.to_owned());
    }
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == TOKEN_COOKIE)
        .map(|(_, token)| format!("Bearer {token}"))
}

/// An answer that is not a view: the status and a message naming the problem.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl From<AccessError> for ApiError {
    fn from(problem: AccessError) -> ApiError {
        match problem {
            AccessError::Unauthenticated(m) => ApiError(StatusCode::UNAUTHORIZED, m),
            AccessError::Unavailable(m) => ApiError(StatusCode::SERVICE_UNAVAILABLE, m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

type Params<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

fn params<T>(params: Params<T>) -> Result<T, ApiError> {
    params.map(|Query(p)| p).map_err(|e| bad(e.body_text()))
}

/// The dashboard's routes: the page under `/ui/`, its assets and its JSON API; `/`
/// redirects to it.
pub fn router(dashboard: Arc<Dashboard>) -> Router {
    Router::new()
        .route("/", get(|| async { redirect("/ui/") }))
        .route("/ui", get(|| async { redirect("/ui/") }))
        .route("/ui/", get(index))
        .route("/ui/{*path}", get(index))
        .route(
            "/ui/assets/app.js",
            get(|| asset(APP_JS, "text/javascript")),
        )
        .route("/ui/assets/app.css", get(|| asset(APP_CSS, "text/css")))
        .route("/ui/api/me", get(me))
        .route("/ui/api/problems", get(problems))
        .route("/ui/api/checks", get(checks))
        .route("/ui/api/check", get(check))
        .route("/ui/api/host", get(host))
        .route("/ui/api/zones", get(zones))
        .route("/ui/api/processes", get(processes))
        .route("/ui/api/matrix", get(matrix))
        .route("/ui/api/events", get(events))
        .route("/ui/api/login", post(login))
        .route("/ui/api/logout", post(logout))
        .with_state(dashboard)
}

fn redirect(to: &'static str) -> Response {
    (StatusCode::FOUND, [(LOCATION, to)]).into_response()
}

async fn index() -> Response {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
        ],
        INDEX_HTML,
    )
        .into_response()
}

async fn asset(body: &'static str, kind: &'static str) -> Response {
    ([(CONTENT_TYPE, kind), (CACHE_CONTROL, "no-cache")], body).into_response()
}

/// `GET /ui/api/me`: who the caller is and what it may see.
async fn me(State(d): State<Arc<Dashboard>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let caller = d.caller(&headers).await?;
    let (visible, cluster) = d.sight(&caller).await?;
    Ok(axum::Json(serde_json::json!({
        "user": caller.name(),
        "login": matches!(d.access, ReadAccess::Kube(_)),
        "allNamespaces": visible == Visible::All,
        "namespaces": visible.as_list(),
        "cluster": cluster,
    }))
    .into_response())
}

/// `GET /ui/api/problems`.
async fn problems(
    State(d): State<Arc<Dashboard>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (visible, cluster) = d.sight(&d.caller(&headers).await?).await?;
    let catalog = d.masters.catalog();
    let state = d.masters.state();
    let now = unix_ms();
    let not_ok = |e: Option<&crate::masters::state::CheckEntry>| {
        e.is_some_and(|e| e.state != vedette_crds::CheckState::Ok)
    };
    let rows = views::rows_where(&state, &catalog, &visible, now, not_ok);
    let counts = views::visible_counts(&state, &catalog, &visible);
    let problems = views::problems(rows, counts, &state, cluster, now);
    drop(state);
    Ok(axum::Json(problems).into_response())
}

/// The all-checks view's query: the filter, `sort`, `order`, `offset`, `limit`.
#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct ChecksParams {
    #[serde(flatten)]
    filter: Filter,
    #[serde(default)]
    sort: Option<Column>,
    #[serde(default)]
    order: Option<Order>,
    #[serde(default)]
    offset: Option<usize>,
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /ui/api/checks`.
async fn checks(
    State(d): State<Arc<Dashboard>>,
    headers: HeaderMap,
    query: Params<ChecksParams>,
) -> Result<Response, ApiError> {
    let query = params(query)?;
    let matcher = query.filter.matcher().map_err(|e| bad(e.to_string()))?;
    let (visible, _) = d.sight(&d.caller(&headers).await?).await?;
    let rows = d.rows(&visible);
    let page = views::checks_page(
        rows,
        &matcher,
        (
            query.sort.unwrap_or_default(),
            query.order.unwrap_or_default(),
        ),
        query.offset.unwrap_or(0),
        query.limit.unwrap_or(views::DEFAULT_PAGE),
    );
    Ok(axum::Json(page).into_response())
}

#[derive(Deserialize, Debug)]
struct CheckParams {
    host: String,
    check: String,
}

fn check_id(text: &str) -> Result<CheckId, ApiError> {
    let mut parts = text.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(namespace), Some(rule_set), Some(rule))
            if !namespace.is_empty() && !rule_set.is_empty() && !rule.is_empty() =>
        {
            Ok(CheckId {
                namespace: namespace.to_owned(),
                rule_set: rule_set.to_owned(),
                rule: rule.to_owned(),
            })
        }
        _ => Err(bad(format!("check={text:?} is not namespace/ruleSet/rule"))),
    }
}

/// `GET /ui/api/check?host=&check=namespace/ruleSet/rule`: its row, definition and history.
async fn check(
    State(d): State<Arc<Dashboard>>,
    headers: HeaderMap,
    query: Params<CheckParams>,
) -> Result<Response, ApiError> {
    let query = params(query)?;
    let id = check_id(&query.check)?;
    let caller = d.caller(&headers).await?;
    if !d.access.may_read(&caller, Some(&id.namespace)).await? {
        return Err(not_found(&query.host, &query.check));
    }
    let visible = Visible::Namespaces([id.namespace.clone()].into());
    let catalog = d.masters.catalog();
    let view = views::check(d.rows(&visible), &catalog, &query.host, &id)
        .ok_or_else(|| not_found(&query.host, &query.check))?;
    let history = match d.masters.history_store() {
        Some(store) => {
            let history = HistoryQuery {
                allowed_namespaces: Some(vec![id.namespace.clone()]),
                namespace: Some(id.namespace.clone()),
                rule_set: Some(id.rule_set.clone()),
                check: Some(id.rule.clone()),
                host: Some(query.host.clone()),
                limit: CHECK_HISTORY,
                ..HistoryQuery::default()
            };
            let page = tokio::task::spawn_blocking(move || store.history(&history))
                .await
                .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?
                .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
            serde_json::to_value(page.records).unwrap_or_default()
        }
        None => serde_json::Value::Null,
    };
    let mut body = serde_json::to_value(view).unwrap_or_default();
    body["history"] = history;
    Ok(axum::Json(body).into_response())
}

/// Unknown and not visible look the same: a caller learns nothing of namespaces it may not read.
fn not_found(host: &str, check: &str) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!("no check {check} on host {host} that you may see"),
    )
}

#[derive(Deserialize, Debug)]
struct HostParams {
    name: String,
}

/// `GET /ui/api/host?name=`.
async fn host(
    State(d): State<Arc<Dashboard>>,
    headers: HeaderMap,
    query: Params<HostParams>,
) -> Result<Response, ApiError> {
    let query = params(query)?;
    let (visible, cluster) = d.sight(&d.caller(&headers).await?).await?;
    let rows = d.rows(&visible);
    let catalog = d.masters.catalog();
    let view = views::host(
        &query.name,
        rows,
        &d.masters.state(),
        &catalog,
        cluster,
        unix_ms(),
    );
    Ok(axum::Json(view).into_response())
}

/// `GET /ui/api/zones`: for callers who may see the cluster's zones.
async fn zones(State(d): State<Arc<Dashboard>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let caller = d.caller(&headers).await?;
    if !d.access.may_read_cluster(&caller).await? {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            format!(
                "{} may not get monitorzones.{}: zones, satellites and agents are not shown",
                caller.name(),
                vedette_crds::GROUP
            ),
        ));
    }
    let catalog = d.masters.catalog();
    let zones = views::zones(&d.masters.state(), &catalog, unix_ms());
    Ok(axum::Json(zones).into_response())
}

/// `GET /ui/api/processes`: every visible business process, its elements as a graph.
async fn processes(
    State(d): State<Arc<Dashboard>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (visible, _) = d.sight(&d.caller(&headers).await?).await?;
    let views = crate::masters::process_view::views(&d.masters.state(), unix_ms());
    let shown: Vec<_> = views
        .into_iter()
        .filter(|view| {
            view.process
                .split_once('/')
                .is_some_and(|(namespace, _)| visible.includes(namespace))
        })
        .collect();
    Ok(axum::Json(shown).into_response())
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct MatrixParams {
    rule_set: String,
}

/// `GET /ui/api/matrix?ruleSet=namespace/name`.
async fn matrix(
    State(d): State<Arc<Dashboard>>,
    headers: HeaderMap,
    query: Params<MatrixParams>,
) -> Result<Response, ApiError> {
    let query = params(query)?;
    let Some((namespace, name)) = query.rule_set.split_once('/') else {
        return Err(bad(format!(
            "ruleSet={:?} is not namespace/name",
            query.rule_set
        )));
    };
    let caller = d.caller(&headers).await?;
    let visible = if d.access.may_read(&caller, Some(namespace)).await? {
        Visible::Namespaces([namespace.to_owned()].into())
    } else {
        Visible::Namespaces(Default::default())
    };
    let matrix = views::matrix(&d.rows(&visible), namespace, name);
    Ok(axum::Json(matrix).into_response())
}

/// `GET /ui/api/events`: server-sent events, one `changes` message per burst (see [`live`]).
async fn events(State(d): State<Arc<Dashboard>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let (visible, cluster) = d.sight(&d.caller(&headers).await?).await?;
    let pages = d.pages.subscribe();
    let until = tokio::time::Instant::now() + live::RECHECK;
    let stream = futures::stream::unfold(
        (pages, visible, cluster),
        move |(mut pages, visible, cluster)| async move {
            let message = tokio::time::timeout_at(until, live::next(&mut pages, &visible, cluster))
                .await
                .ok()??;
            let event = match message {
                live::Message::Changes(changes) => {
                    let changes: Vec<&live::Change> = changes.iter().map(AsRef::as_ref).collect();
                    Event::default()
                        .event("changes")
                        .json_data(&changes)
                        .unwrap_or_default()
                }
                live::Message::Resync => Event::default().event("resync").data("{}"),
            };
            Some((
                Ok::<_, std::convert::Infallible>(event),
                (pages, visible, cluster),
            ))
        },
    );
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

#[derive(Deserialize)]
struct Login {
    token: String,
}

/// `POST /ui/api/login` `{"token": …}`: the token is checked (TokenReview) and, when the API
/// server accepts it, kept in an HttpOnly cookie.
async fn login(
    State(d): State<Arc<Dashboard>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Login { token } = serde_json::from_slice(&body)
        .map_err(|e| bad(format!("the login body is not {{\"token\": \"…\"}}: {e}")))?;
    let token = token.trim();
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad(
            "the token is empty or has characters a token cannot have",
        ));
    }
    let caller = d.access.caller(Some(&format!("Bearer {token}"))).await?;
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes() == b"https");
    let cookie = format!(
        "{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={TOKEN_COOKIE_SECONDS}{}",
        if secure { "; Secure" } else { "" }
    );
    let mut response = axum::Json(serde_json::json!({ "user": caller.name() })).into_response();
    let value = HeaderValue::from_str(&cookie).map_err(|e| bad(e.to_string()))?;
    response.headers_mut().insert(SET_COOKIE, value);
    Ok(response)
}

/// `POST /ui/api/logout`: forgets the cookie.
async fn logout() -> Response {
    (
        [(
            SET_COOKIE,
            format!("{TOKEN_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
        )],
        axum::Json(serde_json::json!({})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_comes_from_the_header_else_the_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, "a=b; vedette_token=abc.def".parse().unwrap());
        assert_eq!(bearer(&headers).as_deref(), Some("Bearer abc.def"));
        headers.insert(AUTHORIZATION, "Bearer from-proxy".parse().unwrap());
        assert_eq!(bearer(&headers).as_deref(), Some("Bearer from-proxy"));
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn a_check_is_named_by_namespace_rule_set_and_rule() {
        assert_eq!(check_id("shop/web/http").unwrap().rule, "http");
        assert!(
            check_id("shop/web")
                .unwrap_err()
                .1
                .contains("namespace/ruleSet/rule")
        );
        assert!(check_id("shop//http").is_err());
    }
}
