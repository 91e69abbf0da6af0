//! Why the satellite cannot start or stopped serving: each variant names what failed and
//! where; the cause is its `source` (printed after it by `main`).

use std::path::PathBuf;

/// A failure that stops the satellite.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API address cannot be bound, or the server failed.
    #[error("failed to serve on {address}")]
    Listen {
        /// The address.
        address: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The spool cannot be opened.
    #[error("failed to open the spool in {}", dir.display())]
    Spool {
        /// The satellite's directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: vedette_agent::spool::Error,
    },
    /// The snapshot cannot be loaded, or the spool replayed into it.
    #[error("failed to recover the satellite's state")]
    Recover(#[source] crate::ingest::Error),
    /// No Kubernetes client can be made (in cluster or from KUBECONFIG).
    #[error("failed to create a Kubernetes client (in cluster or KUBECONFIG)")]
    Client(#[source] kube::Error),
    /// The masters' cursor files cannot be opened.
    #[error("failed to open the masters' cursors in {}", dir.display())]
    Cursors {
        /// The satellite's directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: vedette_agent::spool::Error,
    },
}
