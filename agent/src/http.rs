//! The agent's own HTTP endpoints: `/metrics` (Prometheus text format) and `/healthz`.

use std::sync::Arc;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;

/// The content type of the Prometheus text format.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves `/metrics` and `/healthz` on `listener` until the process ends.
pub async fn serve_metrics(listener: tokio::net::TcpListener, registry: Arc<Registry>) {
    let app = metrics_router(registry);
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(message = "The metrics server stopped.", %error);
    }
}

/// The router of `/metrics` and `/healthz`, for embedding.
pub fn metrics_router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move {
                    (
                        [(CONTENT_TYPE, METRICS_CONTENT_TYPE)],
                        crate::metrics::encode(&registry),
                    )
                        .into_response()
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
}
