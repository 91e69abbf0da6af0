//! `/healthz`, `/readyz` and `/metrics`, served by every replica, leader or not, beside the
//! masters' endpoints (`extra`, see [`crate::masters`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use prometheus_client::registry::Registry;

use super::error::{Error, Result};

/// Binds `address`; separate from serving so a bad address fails at startup.
pub async fn bind(address: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|source| Error::Listen {
            address: address.to_owned(),
            source,
        })
}

/// Serves until the process ends. `ready` turns true once every watch has synced.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    ready: Arc<AtomicBool>,
    extra: Router,
) -> Result<()> {
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    axum::serve(listener, router(registry, ready).merge(extra))
        .await
        .map_err(|source| Error::Listen { address, source })
}

fn router(registry: Arc<Registry>, ready: Arc<AtomicBool>) -> Router {
    vedette_agent::http::admin_router(
        move || crate::metrics::encode(&registry),
        move || match ready.load(Ordering::Acquire) {
            true => Ok(()),
            false => Err("watches not synced".to_owned()),
        },
    )
}
