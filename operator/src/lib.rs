//! vedette-operator: compiles rule sets into zone bundles, renders satellites and agents, and
//! runs the masters.

pub mod build;
pub mod cli;
pub mod compile;
pub mod dashboard;
pub mod manifests;
pub mod masters;
pub mod metrics;
pub mod notify;
pub mod reconcile;
pub mod standalone;
pub mod status;
