//! Why the node role cannot start: each variant names what failed and where; the cause is
//! its `source` (printed after it by `main`).

use std::path::PathBuf;

use vedette_protocol::plan::PlanError;

/// A failure that stops the node role before it runs a check.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The metrics address cannot be bound.
    #[error("failed to listen on {address}")]
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
        /// The spool directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: crate::spool::Error,
    },
    /// A plan file cannot be read.
    #[error("failed to read plan {}", path.display())]
    ReadPlan {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A plan file is not a plan.
    #[error("plan {} does not parse", path.display())]
    ParsePlan {
        /// The file.
        path: PathBuf,
        /// Where and why.
        #[source]
        source: serde_json::Error,
    },
    /// A plan file is another machine's.
    #[error("plan {} is for host {plan_host:?}, this agent is {host:?}", path.display())]
    OtherHost {
        /// The file.
        path: PathBuf,
        /// The plan's host.
        plan_host: String,
        /// This agent's host.
        host: String,
    },
    /// A plan file is a plan, but not one this agent can run.
    #[error("plan {} is invalid: {}", path.display(), joined(problems))]
    InvalidPlan {
        /// The file.
        path: PathBuf,
        /// Every problem.
        problems: Vec<PlanError>,
    },
}

fn joined(problems: &[PlanError]) -> String {
    let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
    list.join("; ")
}
