//! `MonitorZone`: a zone of machines with its satellites and agents. Zones form a tree through
//! `parentZone`; satellites of a zone report to the masters (or the parent zone's satellites).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
#[cfg(feature = "kube")]
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::check::{CheckSpec, ParameterValue};
use crate::common::{Condition, TemplateReference};

/// A zone: which machines, who checks them, and how agents behave there.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[cfg_attr(feature = "kube", derive(CustomResource))]
#[cfg_attr(
    feature = "kube",
    kube(
        group = "vedette.dev",
        version = "v1alpha1",
        kind = "MonitorZone",
        status = "MonitorZoneStatus",
        shortname = "mz",
        category = "vedette",
        printcolumn = r#"{"name":"Parent","type":"string","jsonPath":".spec.parentZone"}"#,
        printcolumn = r#"{"name":"Satellites","type":"string","jsonPath":".status.satellites"}"#,
        printcolumn = r#"{"name":"Agents","type":"integer","jsonPath":".status.agentsConnected"}"#,
        printcolumn = r#"{"name":"Stale","type":"integer","jsonPath":".status.agentsStale"}"#,
        printcolumn = r#"{"name":"Held Plan","type":"integer","jsonPath":".status.agentsOnHeldPlan","priority":1}"#,
        printcolumn = r#"{"name":"Remote Critical","type":"integer","jsonPath":".status.remoteChecksByState.critical","priority":1}"#,
        printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
        printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.agents) || !has(self.agents.standbyUpstream) || self.agents.standbyUpstream != 'ParentZone' || has(self.parentZone)",
    "message": "agents.standbyUpstream ParentZone needs a parentZone"
}]))]
pub struct MonitorZoneSpec {
    /// Nodes that belong to this zone. `{}` selects every node.
    pub node_selector: LabelSelector,
    /// The zone this one reports to; the masters when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub parent_zone: Option<String>,
    /// The zone's satellites.
    #[serde(default)]
    pub satellites: SatelliteSpec,
    /// The zone's node agents.
    #[serde(default)]
    pub agents: AgentSpec,
}

/// The satellites of a zone: a StatefulSet, active-active, each replica with its own volume
/// for its spool.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SatelliteSpec {
    /// Satellite replicas; at least 2 for high availability (a zone with 1 has a warning
    /// condition: while its pod restarts, the zone's agents only spool).
    #[serde(default = "default_satellite_replicas")]
    #[schemars(range(min = 1, max = 32))]
    pub replicas: i32,
    /// The volume each replica keeps its spool on (a PersistentVolumeClaim per replica), so
    /// that what a satellite acknowledged survives its pod.
    #[serde(default)]
    pub storage: SatelliteStorage,
    /// CPU and memory of each satellite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Agentless checks the satellites run against hosts or endpoints, each owned by exactly
    /// one replica.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub remote_checks: Vec<RemoteCheck>,
}

impl Default for SatelliteSpec {
    fn default() -> Self {
        Self {
            replicas: default_satellite_replicas(),
            storage: SatelliteStorage::default(),
            resources: None,
            remote_checks: Vec::new(),
        }
    }
}

fn default_satellite_replicas() -> i32 {
    2
}

/// The PersistentVolumeClaim of each satellite replica.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SatelliteStorage {
    /// Size of each replica's volume, e.g. `1Gi`; it should hold the spool's
    /// `spoolMaxBytes` (256 MiB by default) with room to spare.
    #[serde(default = "default_storage_size")]
    #[schemars(length(min = 1, max = 32))]
    pub size: String,
    /// StorageClass of the claims; the cluster's default when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub storage_class_name: Option<String>,
}

impl Default for SatelliteStorage {
    fn default() -> Self {
        Self {
            size: default_storage_size(),
            storage_class_name: None,
        }
    }
}

fn default_storage_size() -> String {
    "1Gi".to_owned()
}

/// An agentless check run by the zone's satellites against one or more targets.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.template) != has(self.check)",
    "message": "a remote check needs exactly one of template or check"
}]))]
pub struct RemoteCheck {
    /// Name of the check, unique within the zone.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Hosts or endpoints to check; each result is addressed to its target as `$host$`.
    #[schemars(length(min = 1, max = 1024), inner(length(min = 1, max = 253)))]
    pub targets: Vec<String>,
    /// A CheckTemplate to instantiate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplateReference>,
    /// Values for the template's parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "crate::common::parameter_map_schema")]
    pub parameters: BTreeMap<String, ParameterValue>,
    /// An inline check, instead of a template, run every minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckSpec>,
}

/// The node agents of a zone: a DaemonSet.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.keepaliveIntervalSeconds * 3 <= self.planHoldSeconds",
    "message": "planHoldSeconds must cover at least three keepalive intervals"
}]))]
pub struct AgentSpec {
    /// Run an agent on every node of the zone.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Tolerations of the agent pods, e.g. to run on control-plane nodes too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// CPU and memory of each agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Largest size of the on-disk spool; the oldest entries are dropped first beyond it.
    #[serde(default = "default_spool_max_bytes")]
    #[schemars(range(min = 1048576))]
    pub spool_max_bytes: i64,
    /// Oldest entry the spool keeps, in seconds.
    #[serde(default = "default_spool_max_age_seconds")]
    #[schemars(range(min = 60))]
    pub spool_max_age_seconds: i64,
    /// How long an agent keeps running its last good plan while its satellites are
    /// unreachable or send an invalid plan; 72 hours by default.
    #[serde(default = "default_plan_hold_seconds")]
    #[schemars(range(min = 60))]
    pub plan_hold_seconds: i64,
    /// Seconds between keepalives; an agent is stale after three missed ones.
    #[serde(default = "default_keepalive_interval_seconds")]
    #[schemars(range(min = 1, max = 300))]
    pub keepalive_interval_seconds: i64,
    /// Length of the zone's poll cycle in seconds, for checks that run on every N-th cycle
    /// (`everyCycles`) rather than on their own interval; 60 by default. Cycles start at
    /// Unix-time multiples of it (for 60: on every whole minute), so all agents and
    /// satellites of the zone share them; their clocks should be synchronised (NTP).
    #[serde(default = "default_cycle_seconds")]
    #[schemars(range(min = 5, max = 3600))]
    pub cycle_seconds: u32,
    /// Where agents send when their zone's satellite Service fails: `ParentZone` (the parent
    /// zone's satellites), `Zone` (the zone's satellites directly, through their headless
    /// Service, past the Service's virtual IP) or `None`. By default the parent zone's
    /// when the zone has one, else `Zone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standby_upstream: Option<StandbyUpstream>,
}

/// The standby upstream of a zone's agents.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum StandbyUpstream {
    /// The parent zone's satellite Service.
    ParentZone,
    /// The zone's own satellites, through their headless Service.
    Zone,
    /// No standby.
    None,
}

impl Default for AgentSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            tolerations: Vec::new(),
            resources: None,
            spool_max_bytes: default_spool_max_bytes(),
            spool_max_age_seconds: default_spool_max_age_seconds(),
            plan_hold_seconds: default_plan_hold_seconds(),
            keepalive_interval_seconds: default_keepalive_interval_seconds(),
            cycle_seconds: default_cycle_seconds(),
            standby_upstream: None,
        }
    }
}

fn default_true() -> bool {
    true
}

/// Largest spool by default, bytes (agents and satellites): 256 MiB.
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Oldest spool entry kept by default, seconds (agents and satellites): 7 days. Longer than
/// the plan hold, so that an outage over a long weekend loses nothing a spool acknowledged;
/// the byte limit still bounds the disk.
pub const DEFAULT_SPOOL_MAX_AGE_SECONDS: u64 = 7 * 24 * 3600;
/// How long an agent keeps running its last good plan by default, seconds: 72 hours.
pub const DEFAULT_PLAN_HOLD_SECONDS: u64 = 72 * 3600;
/// Seconds between an agent's keepalives by default.
pub const DEFAULT_KEEPALIVE_INTERVAL_SECONDS: u64 = 10;

fn default_spool_max_bytes() -> i64 {
    DEFAULT_SPOOL_MAX_BYTES as i64
}

fn default_spool_max_age_seconds() -> i64 {
    DEFAULT_SPOOL_MAX_AGE_SECONDS as i64
}

fn default_plan_hold_seconds() -> i64 {
    DEFAULT_PLAN_HOLD_SECONDS as i64
}

fn default_keepalive_interval_seconds() -> i64 {
    DEFAULT_KEEPALIVE_INTERVAL_SECONDS as i64
}

fn default_cycle_seconds() -> u32 {
    60
}

/// What the masters observed about a zone.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitorZoneStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `InvalidSpec`, `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Ready satellites out of desired, as `ready/desired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub satellites: Option<String>,
    /// Machines in the zone.
    #[serde(default)]
    pub machines: u32,
    /// Agents that sent a keepalive within the freshness window.
    #[serde(default)]
    pub agents_connected: u32,
    /// Agents that missed three keepalives.
    #[serde(default)]
    pub agents_stale: u32,
    /// Agents running a held (last good) plan instead of the current one.
    #[serde(default)]
    pub agents_on_held_plan: u32,
    /// Checks the zone's bundle holds.
    #[serde(default)]
    pub checks: u32,
    /// The zone's remote checks (agentless, run by its satellites), one per target, by
    /// current state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_checks_by_state: Option<crate::ruleset::StateCounts>,
    /// The worst current hard problems of its remote checks, worst first (at most 10); `host`
    /// is the target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote_problems: Vec<crate::ruleset::Problem>,
}
