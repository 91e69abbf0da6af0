//! The satellite PodDisruptionBudget: voluntary disruptions (drains, upgrades) take at most
//! one satellite of a zone at a time.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use vedette_crds::MonitorZone;

use super::BuildContext;
use super::common::{Component, object_meta, satellite_name, selector_labels, zone_name};

/// The zone's satellite PodDisruptionBudget (`maxUnavailable: 1`).
pub fn satellite_pod_disruption_budget(
    zone: &MonitorZone,
    ctx: &BuildContext,
) -> PodDisruptionBudget {
    let name = zone_name(zone);
    PodDisruptionBudget {
        metadata: object_meta(zone, ctx, satellite_name(&name), Component::Satellite),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(&name, Component::Satellite)),
                match_expressions: None,
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fixtures::{context, dmz};

    #[test]
    fn satellite_pod_disruption_budget_snapshot() {
        insta::assert_yaml_snapshot!(satellite_pod_disruption_budget(&dmz(), &context()));
    }
}
