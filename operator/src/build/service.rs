//! The satellite Service: one ClusterIP in front of a zone's satellites, where agents send
//! results and fetch plans.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use vedette_crds::MonitorZone;

use super::BuildContext;
use super::common::{
    Component, SATELLITE_PORT, SATELLITE_PORT_NAME, object_meta, satellite_name, selector_labels,
    zone_name,
};

/// The zone's satellite Service.
pub fn satellite_service(zone: &MonitorZone, ctx: &BuildContext) -> Service {
    let name = zone_name(zone);
    Service {
        metadata: object_meta(zone, ctx, satellite_name(&name), Component::Satellite),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(selector_labels(&name, Component::Satellite)),
            ports: Some(vec![ServicePort {
                name: Some(SATELLITE_PORT_NAME.to_owned()),
                port: SATELLITE_PORT,
                target_port: Some(IntOrString::String(SATELLITE_PORT_NAME.to_owned())),
                protocol: Some("TCP".to_owned()),
                app_protocol: Some("http".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// The in-cluster URL of the zone's satellites, as agents dial it.
pub fn satellite_url(zone: &MonitorZone, ctx: &BuildContext) -> String {
    format!(
        "http://{}.{}.svc:{SATELLITE_PORT}",
        satellite_name(&zone_name(zone)),
        ctx.namespace
    )
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
    fn agents_dial_the_service_by_its_cluster_name() {
        assert_eq!(
            satellite_url(&dmz(), &context()),
            "http://vedette-zone-dmz-satellite.vedette-system.svc:7080"
        );
    }
}
