//! The node role's defaults, named once: the CLI's `default_value`s, [`NodeConfig`]'s
//! `Default` (standalone mode and tests), and, where the zone has a setting for it, the
//! MonitorZone's own default (`vedette_crds::zone`), so a flag and a zone agree.

use std::path::PathBuf;

use vedette_crds::zone::{
    DEFAULT_KEEPALIVE_INTERVAL_SECONDS, DEFAULT_PLAN_HOLD_SECONDS, DEFAULT_SPOOL_MAX_AGE_SECONDS,
    DEFAULT_SPOOL_MAX_BYTES,
};

use super::NodeConfig;
use crate::host_paths::HostPaths;

/// Directory of the durable spool.
pub const SPOOL_DIR: &str = "/var/lib/vedette/spool";
/// Directory of the last good plan and the check states.
pub const STATE_DIR: &str = "/var/lib/vedette/state";
/// Address of `/metrics`, `/healthz` and `/readyz`.
pub const LISTEN: &str = "0.0.0.0:9710";
/// Checks running at once at most.
pub const CONCURRENCY: usize = 64;
/// Seconds between plan fetches.
pub const PLAN_POLL_SECONDS: u64 = 10;
/// Seconds between keepalives until a plan says otherwise: the zone's default.
pub const KEEPALIVE_SECONDS: u64 = DEFAULT_KEEPALIVE_INTERVAL_SECONDS;
/// Seconds the last good plan keeps running without confirmation: the zone's default (72 h).
pub const PLAN_HOLD_SECONDS: u64 = DEFAULT_PLAN_HOLD_SECONDS;
/// Backlog entries replayed per second after an outage.
pub const REPLAY_PER_SECOND: u32 = 1000;
/// Largest spool, bytes: the zone's default (256 MiB).
pub const SPOOL_MAX_BYTES: u64 = DEFAULT_SPOOL_MAX_BYTES;
/// Oldest spool entry kept, seconds: the zone's default (7 days).
pub const SPOOL_MAX_AGE_SECONDS: u64 = DEFAULT_SPOOL_MAX_AGE_SECONDS;

/// Seconds a stop may take to send what is left (within Kubernetes' default 30 s grace).
pub const SHUTDOWN_GRACE_SECONDS: u64 = crate::shutdown::DEFAULT_GRACE_SECONDS;

impl Default for NodeConfig {
    /// This machine (its host name), no upstream, the defaults above.
    fn default() -> Self {
        NodeConfig {
            host: String::new(),
            upstreams: Vec::new(),
            plan_file: None,
            spool_dir: PathBuf::from(SPOOL_DIR),
            state_dir: PathBuf::from(STATE_DIR),
            token_file: None,
            listen: LISTEN.parse().expect("the default address parses"),
            concurrency: CONCURRENCY,
            plan_poll_seconds: PLAN_POLL_SECONDS,
            keepalive_seconds: KEEPALIVE_SECONDS,
            plan_hold_seconds: PLAN_HOLD_SECONDS,
            replay_per_second: REPLAY_PER_SECOND,
            spool_max_bytes: SPOOL_MAX_BYTES,
            spool_max_age_seconds: SPOOL_MAX_AGE_SECONDS,
            plugin_dirs: Vec::new(),
            host_paths: HostPaths::default(),
            shutdown_grace_seconds: SHUTDOWN_GRACE_SECONDS,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    #[test]
    fn the_command_line_defaults_are_the_config_defaults() {
        let cli = Cli::try_parse_from(["vedette-agent", "node", "--host", "n1"]).unwrap();
        let Command::Node(args) = cli.command else {
            panic!("not the node command");
        };
        let parsed = NodeConfig::from(args);
        let expected = NodeConfig {
            host: "n1".to_owned(),
            ..NodeConfig::default()
        };
        assert_eq!(format!("{parsed:?}"), format!("{expected:?}"));
    }
}
