//! What is defined, as the dashboard shows it (pure): from the compiled zone bundles, each
//! check's definition, which host runs which check in which zone, and each zone's parent and
//! satellite replicas. The masters' state says how things are; the catalog says what should
//! be there, so a planned check that never reported shows as PENDING, and a check's page
//! shows its template, parameters and thresholds.
//!
//! Only the [`PlannedCheck`] fields are copied: a bundle's Secret values never reach the
//! catalog, so no dashboard answer can contain one.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use vedette_crds::MonitorZone;
use vedette_protocol::plan::{CheckId, PlannedCheck, ZoneBundle};

/// A check's definition: what its page shows under "definition".
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Definition {
    /// The template it was made from, `namespace/name`.
    pub template: String,
    /// The probe or plugin and its parameters, as the plan carries them (secrets by
    /// reference only).
    pub check: serde_json::Value,
    /// Warning range.
    pub warning: Option<String>,
    /// Critical range.
    pub critical: Option<String>,
    /// CEL condition.
    pub condition: Option<String>,
    /// Seconds between runs.
    pub interval_seconds: u32,
    /// Seconds between retries of a soft problem.
    pub retry_interval_seconds: u32,
    /// Attempts before a problem is hard.
    pub max_attempts: u32,
    /// Seconds a run may take.
    pub timeout_seconds: u32,
    /// The rule set's labels.
    pub labels: BTreeMap<String, String>,
}

impl Definition {
    fn of(check: &PlannedCheck) -> Definition {
        Definition {
            template: check.template.clone(),
            check: serde_json::to_value(&check.check).unwrap_or_default(),
            warning: check.warning.clone(),
            critical: check.critical.clone(),
            condition: check.condition.clone(),
            interval_seconds: check.interval_seconds,
            retry_interval_seconds: check.retry_interval_seconds,
            max_attempts: check.max_attempts,
            timeout_seconds: check.timeout_seconds,
            labels: check.labels.clone(),
        }
    }
}

/// A zone as defined.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneDefinition {
    /// The parent zone, when it has one.
    pub parent: Option<String>,
    /// Satellite replicas it asks for (`None`: not known, as in standalone mode).
    pub replicas: Option<i32>,
    /// Machines with an agent in the zone.
    pub machines: u32,
    /// Remote targets its satellites check.
    pub remote_targets: u32,
}

/// Everything defined, for the dashboard.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Catalog {
    /// Each check's definition (the first zone's, when zones differ only in cadence).
    pub definitions: BTreeMap<CheckId, Definition>,
    /// Each planned `(host, check)`, with its zone.
    pub planned: BTreeMap<(String, CheckId), String>,
    /// Hosts checked remotely by a zone's satellites (devices and endpoints without an agent).
    pub remote_hosts: BTreeSet<String>,
    /// Zones by name.
    pub zones: BTreeMap<String, ZoneDefinition>,
}

impl Catalog {
    /// The catalog of `bundles`, with what `zones` say of parents and replicas.
    pub fn new<'a>(
        bundles: impl IntoIterator<Item = &'a ZoneBundle>,
        zones: &[MonitorZone],
    ) -> Catalog {
        let mut catalog = Catalog::default();
        for bundle in bundles {
            catalog.add(bundle);
        }
        for zone in zones {
            let Some(name) = zone.metadata.name.as_ref() else {
                continue;
            };
            let entry = catalog.zones.entry(name.clone()).or_default();
            entry.parent = zone.spec.parent_zone.clone();
            entry.replicas = Some(zone.spec.satellites.replicas);
        }
        catalog
    }

    fn add(&mut self, bundle: &ZoneBundle) {
        let zone = self.zones.entry(bundle.zone.clone()).or_default();
        zone.machines += u32::try_from(bundle.machines.len()).unwrap_or(u32::MAX);
        let targets: BTreeSet<&str> = bundle.remote.iter().map(|r| r.target.as_str()).collect();
        zone.remote_targets += u32::try_from(targets.len()).unwrap_or(u32::MAX);
        for check in &bundle.checks {
            self.definitions
                .entry(check.id.clone())
                .or_insert_with(|| Definition::of(check));
        }
        let id = |index: u32| bundle.checks.get(index as usize).map(|c| c.id.clone());
        for (host, indices) in &bundle.machines {
            for id in indices.iter().filter_map(|&i| id(i)) {
                self.planned.insert((host.clone(), id), bundle.zone.clone());
            }
        }
        for remote in &bundle.remote {
            if let Some(id) = id(remote.check) {
                self.remote_hosts.insert(remote.target.clone());
                self.planned
                    .insert((remote.target.clone(), id), bundle.zone.clone());
            }
        }
    }

    /// The namespaces of every defined check.
    pub fn namespaces(&self) -> BTreeSet<String> {
        self.definitions
            .keys()
            .map(|id| id.namespace.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vedette_protocol::plan::RemoteAssignment;

    pub(crate) fn planned(namespace: &str, rule_set: &str, rule: &str) -> PlannedCheck {
        serde_json::from_value(serde_json::json!({
            "id": {"namespace": namespace, "ruleSet": rule_set, "rule": rule},
            "template": format!("{namespace}/tcp"),
            "check": {"tcp": {"port": 80}},
            "warning": "1",
            "conditionState": "CRITICAL",
            "intervalSeconds": 60,
            "retryIntervalSeconds": 10,
            "maxAttempts": 3,
            "timeoutSeconds": 10,
            "timeoutState": "UNKNOWN",
        }))
        .unwrap()
    }

    #[test]
    fn every_planned_host_and_remote_target_is_listed_with_its_zone() {
        let mut bundle = ZoneBundle {
            zone: "edge".into(),
            checks: vec![
                planned("shop", "web", "http"),
                planned("shop", "web", "tcp"),
            ],
            ..ZoneBundle::default()
        };
        bundle.machines.insert("node-1".into(), vec![0, 1]);
        bundle.remote.push(RemoteAssignment {
            check: 1,
            target: "switch-1".into(),
        });
        bundle
            .secrets
            .0
            .insert("shop/creds/password".into(), "hunter2".into());
        let catalog = Catalog::new([&bundle], &[]);
        assert_eq!(catalog.planned.len(), 3);
        assert!(catalog.remote_hosts.contains("switch-1"));
        assert_eq!(catalog.zones["edge"].machines, 1);
        assert_eq!(catalog.zones["edge"].remote_targets, 1);
        assert_eq!(catalog.definitions.len(), 2);
        assert_eq!(catalog.namespaces(), ["shop".to_owned()].into());
        let text = format!("{catalog:?}");
        assert!(
            !text.contains("hunter2"),
            "a secret value reached the catalog"
        );
    }
}
