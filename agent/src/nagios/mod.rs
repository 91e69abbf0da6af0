//! Nagios plugin compatibility: threshold ranges, plugin output and performance data, and
//! running plugins.

pub mod exec;
pub mod perfdata;
pub mod range;
