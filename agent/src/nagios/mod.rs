//! Nagios plugin compatibility: plugin output and performance data, and running plugins.
//! Threshold ranges are `vedette_protocol::range`: compile and the agent accept the same ones.

pub mod exec;
pub mod perfdata;
