//! The admin endpoints every Vedette process serves, in one router: `/metrics` (OpenMetrics
//! when the scraper's `Accept` asks for it, the classic Prometheus text format otherwise; see
//! [`crate::exposition`]), `/healthz` (the process answers) and `/readyz` (it can do its job).
//! The node agent, the satellite and the operator each give it their own metrics text and
//! readiness.

use std::sync::Arc;

use axum::Router;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;

use crate::exposition::negotiate;

/// `/metrics` from `metrics()` (OpenMetrics text, as prometheus-client encodes a registry),
/// in the format the request asks for; `/healthz`; and `/readyz`: 200 when `ready()` is `Ok`,
/// 503 with `{"error": reason}` otherwise.
pub fn admin_router<M, R>(metrics: M, ready: R) -> Router
where
    M: Fn() -> String + Clone + Send + Sync + 'static,
    R: Fn() -> Result<(), String> + Clone + Send + Sync + 'static,
{
    Router::new()
        .route(
            "/metrics",
            get(move |headers: HeaderMap| {
                let format = negotiate(headers.get(ACCEPT).and_then(|v| v.to_str().ok()));
                let text = format.render(metrics());
                async move { ([(CONTENT_TYPE, format.content_type())], text).into_response() }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let answer = readiness(ready());
                async move { answer }
            }),
        )
}

fn readiness(ready: Result<(), String>) -> Response {
    match ready {
        Ok(()) => "ok".into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "error": reason })),
        )
            .into_response(),
    }
}

/// Serves `/metrics` of `registry` (always ready) on `listener` until the process ends.
pub async fn serve_metrics(listener: tokio::net::TcpListener, registry: Arc<Registry>) {
    serve(listener, metrics_router(registry)).await;
}

/// Serves `router` (an [`admin_router`]) on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, router: Router) {
    if let Err(error) = axum::serve(listener, router).await {
        tracing::error!(message = "The metrics server stopped.", %error);
    }
}

/// The node agent's admin endpoints over `registry` (always ready), for embedding.
pub fn metrics_router(registry: Arc<Registry>) -> Router {
    admin_router(move || crate::metrics::encode(&registry), || Ok(()))
}
