//! vedette-agent: the check engine that runs on every machine (`node`) and for every zone
//! (`satellite`).

pub mod backoff;
pub mod cli;
pub mod condition;
pub mod metrics;
pub mod nagios;
pub mod plan;
pub mod report;
pub mod schedule;
pub mod spool;
pub mod state;
pub mod transport;
pub mod watermark;
