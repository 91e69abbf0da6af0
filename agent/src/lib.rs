//! vedette-agent: the check engine that runs on every machine (the `node` role). It reads its
//! plan from a satellite (or a file), runs the checks (built-in probes and unchanged Nagios
//! plugins), evaluates their state, and spools and sends what changed. It never talks to the
//! Kubernetes API: the wire types are `vedette-protocol`'s, and it also runs on machines
//! outside the cluster. The satellite (`vedette-satellite`) reuses its spool, sender,
//! transport and check runner.

pub mod atomic_file;
pub mod backoff;
pub mod check_once;
pub mod cli;
pub mod condition;
pub mod error_chain;
pub mod exposition;
pub mod host_paths;
pub mod http;
pub mod metrics;
pub mod nagios;
pub mod node;
pub mod probe;
pub mod rate;
pub mod runner;
pub mod schedule;
pub mod sender;
pub mod shutdown;
pub mod signal;
pub mod spool;
pub mod state;
pub mod transport;
