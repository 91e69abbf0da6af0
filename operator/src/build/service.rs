//! The satellite Services: one ClusterIP in front of a zone's satellites, where agents send
//! results and fetch plans (and child zones' satellites forward), and a headless one, the
//! StatefulSet's governing Service, whose DNS name resolves to every ready replica.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use vedette_crds::MonitorZone;
use vedette_crds::zone::StandbyUpstream;

use super::BuildContext;
use super::common::{
    Component, SATELLITE_PORT, SATELLITE_PORT_NAME, object_meta, satellite_name,
    satellite_peers_name, selector_labels, zone_name,
};

/// The zone's satellite Service.
pub fn satellite_service(zone: &MonitorZone, ctx: &BuildContext) -> Service {
    let name = zone_name(zone);
    Service {
        metadata: object_meta(zone, ctx, satellite_name(&name), Component::Satellite),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(selector_labels(&name, Component::Satellite)),
            ports: Some(vec![service_port()]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// The zone's headless satellite Service (no virtual IP: its name resolves to the ready
/// replicas' addresses).
pub fn satellite_peers_service(zone: &MonitorZone, ctx: &BuildContext) -> Service {
    let name = zone_name(zone);
    Service {
        metadata: object_meta(zone, ctx, satellite_peers_name(&name), Component::Satellite),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            cluster_ip: Some("None".to_owned()),
            selector: Some(selector_labels(&name, Component::Satellite)),
            ports: Some(vec![service_port()]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

fn service_port() -> ServicePort {
    ServicePort {
        name: Some(SATELLITE_PORT_NAME.to_owned()),
        port: SATELLITE_PORT,
        target_port: Some(IntOrString::String(SATELLITE_PORT_NAME.to_owned())),
        protocol: Some("TCP".to_owned()),
        app_protocol: Some("http".to_owned()),
        ..ServicePort::default()
    }
}

/// The in-cluster URL of the zone's satellites, as agents dial it.
pub fn satellite_url(zone: &MonitorZone, ctx: &BuildContext) -> String {
    service_url(&satellite_name(&zone_name(zone)), ctx)
}

/// The in-cluster URL of the parent zone's satellites, where a zone with a `parentZone`
/// forwards.
pub fn parent_satellite_url(zone: &MonitorZone, ctx: &BuildContext) -> Option<String> {
    let parent = zone.spec.parent_zone.as_deref()?;
    Some(service_url(&satellite_name(parent), ctx))
}

/// Where the zone's agents go when its satellite Service fails (the MonitorZone's
/// `agents.standbyUpstream`; by default the parent zone's satellites, else the zone's own
/// through the headless Service).
pub fn standby_url(zone: &MonitorZone, ctx: &BuildContext) -> Option<String> {
    let own = || service_url(&satellite_peers_name(&zone_name(zone)), ctx);
    match zone.spec.agents.standby_upstream {
        Some(StandbyUpstream::None) => None,
        Some(StandbyUpstream::Zone) => Some(own()),
        Some(StandbyUpstream::ParentZone) => parent_satellite_url(zone, ctx),
        None => parent_satellite_url(zone, ctx).or_else(|| Some(own())),
    }
}

fn service_url(service: &str, ctx: &BuildContext) -> String {
    format!("http://{service}.{}.svc:{SATELLITE_PORT}", ctx.namespace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures::{context, dmz};

    #[test]
    fn satellite_service_snapshot() {
        insta::assert_yaml_snapshot!(satellite_service(&dmz(), &context()));
    }

    #[test]
    fn satellite_peers_service_snapshot() {
        insta::assert_yaml_snapshot!(satellite_peers_service(&dmz(), &context()));
    }

    #[test]
    fn the_standby_is_the_parent_zone_else_the_zones_own_replicas() {
        let mut zone = dmz();
        zone.spec.parent_zone = None;
        let ctx = context();
        assert_eq!(
            standby_url(&zone, &ctx).as_deref(),
            Some("http://vedette-zone-dmz-satellite-peers.vedette-system.svc:7080")
        );
        zone.spec.parent_zone = Some("region".to_owned());
        let parent = "http://vedette-zone-region-satellite.vedette-system.svc:7080";
        assert_eq!(standby_url(&zone, &ctx).as_deref(), Some(parent));
        zone.spec.agents.standby_upstream = Some(StandbyUpstream::Zone);
        assert!(
            standby_url(&zone, &ctx)
                .unwrap()
                .contains("dmz-satellite-peers")
        );
        zone.spec.agents.standby_upstream = Some(StandbyUpstream::None);
        assert_eq!(standby_url(&zone, &ctx), None);
        zone.spec.agents.standby_upstream = Some(StandbyUpstream::ParentZone);
        assert_eq!(standby_url(&zone, &ctx).as_deref(), Some(parent));
    }

    #[test]
    fn agents_dial_the_service_by_its_cluster_name() {
        assert_eq!(
            satellite_url(&dmz(), &context()),
            "http://vedette-zone-dmz-satellite.vedette-system.svc:7080"
        );
    }
}
