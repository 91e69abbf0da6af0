//! The ServiceAccounts of a zone's satellites and agents. The agent's never gets an API
//! token mounted: the agent does not talk to the API server, and the only token it holds is
//! the projected one with the `vedette` audience that satellites accept (see
//! [`super::daemon_set`]).

use k8s_openapi::api::core::v1::ServiceAccount;
use vedette_crds::MonitorZone;

use super::BuildContext;
use super::common::{Component, agent_name, object_meta, satellite_name, zone_name};

/// The satellites' ServiceAccount; its token reaches the API server (bundle watch, leases,
/// token reviews).
pub fn satellite_service_account(zone: &MonitorZone, ctx: &BuildContext) -> ServiceAccount {
    ServiceAccount {
        metadata: object_meta(
            zone,
            ctx,
            satellite_name(&zone_name(zone)),
            Component::Satellite,
        ),
        automount_service_account_token: Some(true),
        ..ServiceAccount::default()
    }
}

/// The agents' ServiceAccount, with no API token mounted.
pub fn agent_service_account(zone: &MonitorZone, ctx: &BuildContext) -> ServiceAccount {
    ServiceAccount {
        metadata: object_meta(zone, ctx, agent_name(&zone_name(zone)), Component::Agent),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures::{context, dmz};

    #[test]
    fn satellite_service_account_snapshot() {
        insta::assert_yaml_snapshot!(satellite_service_account(&dmz(), &context()));
    }

    #[test]
    fn agent_service_account_snapshot() {
        insta::assert_yaml_snapshot!(agent_service_account(&dmz(), &context()));
    }
}
