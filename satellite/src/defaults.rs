//! The satellite's defaults, named once: the CLI's `default_value`s and
//! [`SatelliteConfig`]'s `Default` (standalone mode and tests). Its spool limits are the
//! spool's defaults, which are the MonitorZone's (`vedette_crds::zone`).

use std::path::PathBuf;

use crate::SatelliteConfig;

/// Address of the API (plans, results, state, `/metrics`).
pub const LISTEN: &str = "0.0.0.0:7080";
/// Directory of the spool and the state snapshot.
pub const SPOOL_DIR: &str = "/var/lib/vedette/satellite";
/// This replica's id when `POD_NAME` is not set.
pub const REPLICA: &str = "satellite-0";
/// Namespace of the bundle ConfigMaps and Leases when `POD_NAMESPACE` is not set.
pub const NAMESPACE: &str = "vedette-system";
/// Largest result batch accepted, bytes.
pub const MAX_BODY_BYTES: usize = crate::http::DEFAULT_MAX_BODY_BYTES;
/// Seconds between summaries sent to the masters.
pub const SUMMARY_SECONDS: u64 = 30;
/// Seconds between snapshots of the state table and watermarks.
pub const SNAPSHOT_SECONDS: u64 = 2;
/// Seconds between renewals of this replica's Lease.
pub const LEASE_RENEW_SECONDS: u64 = 5;
/// Seconds a replica's Lease lasts without renewal.
pub const LEASE_DURATION_SECONDS: u64 = 15;
/// Remote checks running at once at most.
pub const CONCURRENCY: usize = 64;
/// Backlog entries replayed to the masters per second.
pub const REPLAY_PER_SECOND: u32 = 1000;
/// Seconds a stop may take to forward what is left (within Kubernetes' default 30 s grace).
pub const SHUTDOWN_GRACE_SECONDS: u64 = vedette_agent::shutdown::DEFAULT_GRACE_SECONDS;

impl Default for SatelliteConfig {
    /// No zone, no masters, authentication on, the defaults above.
    fn default() -> Self {
        SatelliteConfig {
            zone: String::new(),
            replica: REPLICA.to_owned(),
            namespace: NAMESPACE.to_owned(),
            listen: LISTEN.parse().expect("the default address parses"),
            masters: Vec::new(),
            token_file: None,
            spool_dir: PathBuf::from(SPOOL_DIR),
            bundle_file: None,
            insecure_no_auth: false,
            max_body_bytes: MAX_BODY_BYTES,
            summary_seconds: SUMMARY_SECONDS,
            snapshot_seconds: SNAPSHOT_SECONDS,
            lease_renew_seconds: LEASE_RENEW_SECONDS,
            lease_duration_seconds: LEASE_DURATION_SECONDS,
            concurrency: CONCURRENCY,
            replay_per_second: REPLAY_PER_SECOND,
            shutdown_grace_seconds: SHUTDOWN_GRACE_SECONDS,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::Cli;

    #[test]
    fn the_command_line_defaults_are_the_config_defaults() {
        // POD_NAME and POD_NAMESPACE are not set where tests run.
        let cli = Cli::try_parse_from(["vedette-satellite", "--zone", "z"]).unwrap();
        let parsed = SatelliteConfig::from(cli.args);
        let expected = SatelliteConfig {
            zone: "z".to_owned(),
            ..SatelliteConfig::default()
        };
        assert_eq!(format!("{parsed:?}"), format!("{expected:?}"));
    }
}
