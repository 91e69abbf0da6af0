//! vedette-agent: the check engine that runs on every machine (`node`) and for every zone
//! (`satellite`).

pub mod cli;
pub mod plan;
pub mod probe;
