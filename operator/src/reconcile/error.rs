//! The reconciler's errors. Each variant names what failed; `metric_label` is the variant's
//! name for the `vedette_operator_errors_total` counter (never the message).

/// Everything the running operator can fail at. None of these stops it: a failed write is
/// retried on the next pass, a failed watch is restarted with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Building a Kubernetes client failed.
    #[error("failed to create a kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// The masters' event stream does not make a valid topology.
    #[error("failed to build the masters' event stream: {0}")]
    Topology(#[source] crate::masters::stream::TopologyError),
    /// The history store cannot be opened (or is newer than this release).
    #[error("failed to open the history")]
    History(#[source] vedette_history::Error),
    /// A server-side apply of an owned object failed.
    #[error("failed to apply {kind} {name}: {source}")]
    Apply {
        /// Kind of the object.
        kind: String,
        /// `namespace/name` or `name`.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Deleting an object that is no longer wanted failed.
    #[error("failed to delete {kind} {name}: {source}")]
    Delete {
        /// Kind of the object.
        kind: String,
        /// `namespace/name` or `name`.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Writing a status failed.
    #[error("failed to patch status of {kind} {name}: {source}")]
    Status {
        /// Kind of the object.
        kind: String,
        /// `namespace/name` or `name`.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// A zone bundle cannot be written as ConfigMaps (too large).
    #[error("failed to render the bundle of zone {zone}: {source}")]
    Bundle {
        /// The zone.
        zone: String,
        /// Why.
        #[source]
        source: crate::build::BundleError,
    },
    /// A watch stream reported an error (it is retried with backoff).
    #[error("watch of {kind} failed: {source}")]
    Watch {
        /// The watched kind.
        kind: &'static str,
        /// Why.
        #[source]
        source: kube::runtime::watcher::Error,
    },
    /// Leader election failed.
    #[error("leader election failed: {0}")]
    Lease(#[source] kube_lease_manager::LeaseManagerError),
    /// An object did not serialize to JSON.
    #[error("failed to serialize {what}: {source}")]
    Serialize {
        /// What.
        what: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The HTTP listener could not be bound or stopped.
    #[error("failed to serve http on {address}: {source}")]
    Listen {
        /// The address.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The variant's name, as a metric label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Client(_) => "client",
            Error::Topology(_) => "topology",
            Error::History(_) => "history",
            Error::Apply { .. } => "apply",
            Error::Delete { .. } => "delete",
            Error::Status { .. } => "status",
            Error::Bundle { .. } => "bundle",
            Error::Watch { .. } => "watch",
            Error::Lease(_) => "lease",
            Error::Serialize { .. } => "serialize",
            Error::Listen { .. } => "listen",
        }
    }
}

/// Result of the reconciler's operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl crate::metrics::LabelledError for Error {
    fn metric_label(&self) -> &'static str {
        Error::metric_label(self)
    }
}
