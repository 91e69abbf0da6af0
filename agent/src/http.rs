//! The admin endpoints every Vedette process serves, in one router: `/metrics` (Prometheus
//! text format), `/healthz` (the process answers) and `/readyz` (it can do its job). The
//! node agent, the satellite and the operator each give it their own metrics text and
//! readiness.

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;

/// The content type of the Prometheus text format.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `/metrics` from `metrics()`, `/healthz`, and `/readyz`: 200 when `ready()` is `Ok`, 503
/// with `{"error": reason}` otherwise.
pub fn admin_router<M, R>(metrics: M, ready: R) -> Router
where
    M: Fn() -> String + Clone + Send + Sync + 'static,
    R: Fn() -> Result<(), String> + Clone + Send + Sync + 'static,
{
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let text = metrics();
                async move { ([(CONTENT_TYPE, METRICS_CONTENT_TYPE)], text).into_response() }
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

/// Serves the node agent's admin endpoints on `listener` until the process ends.
pub async fn serve_metrics(listener: tokio::net::TcpListener, registry: Arc<Registry>) {
    if let Err(error) = axum::serve(listener, metrics_router(registry)).await {
        tracing::error!(message = "The metrics server stopped.", %error);
    }
}

/// The node agent's admin endpoints over `registry` (always ready), for embedding.
pub fn metrics_router(registry: Arc<Registry>) -> Router {
    admin_router(move || crate::metrics::encode(&registry), || Ok(()))
}
