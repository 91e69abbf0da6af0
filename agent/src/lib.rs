//! vedette-agent: the check engine that runs on every machine (`node`) and for every zone
//! (`satellite`).

pub mod backoff;
pub mod bundle_shards;
pub mod check_once;
pub mod cli;
pub mod condition;
pub mod forward;
pub mod host_paths;
pub mod http;
pub mod metrics;
pub mod nagios;
pub mod names;
pub mod node;
pub mod plan;
pub mod probe;
pub mod report;
pub mod runner;
pub mod satellite;
pub mod schedule;
pub mod sender;
pub mod spool;
pub mod state;
pub mod transport;
pub mod watermark;
