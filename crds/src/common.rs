//! Types every Vedette resource shares: status conditions, machine selection, references to
//! templates, and the schema helpers that keep the generated CRDs structural.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// A standard Kubernetes condition, as `kubectl wait --for=condition=…` understands it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Type of the condition: `Ready`, `InvalidSpec` or `Degraded`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase word a program can match on, such as `UnknownTemplate`.
    pub reason: String,
    /// What a person needs to know to act, naming the object and field at fault.
    #[serde(default)]
    pub message: String,
    /// When `status` last changed, RFC 3339.
    pub last_transition_time: String,
    /// The `metadata.generation` this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Which machines something applies to. A machine is selected when it matches every part
/// that is given: the node label selector, one of the zones, and one of the host names.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.nodeSelector) || size(self.zones) > 0 || size(self.hostNames) > 0",
    "message": "a machine set needs at least one of nodeSelector, zones or hostNames"
}]))]
pub struct MachineSelector {
    /// Machines whose (node) labels match this selector. `{}` selects every machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,
    /// Names of MonitorZones; a machine must belong to one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 63)))]
    pub zones: Vec<String>,
    /// Host names (Kubernetes node names, or names of registered machines outside the cluster).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024), inner(length(min = 1, max = 253)))]
    pub host_names: Vec<String>,
}

/// A reference to a CheckTemplate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateReference {
    /// Name of the CheckTemplate.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the CheckTemplate; defaults to the namespace of the referring object.
    /// Another namespace is usually a shared template library such as `vedette-system`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
}

/// Free-form labels carried by notifications and metrics.
pub type Labels = BTreeMap<String, String>;

/// The status every Vedette resource reports, whatever else it says.
pub trait HasConditions {
    /// The conditions of the status.
    fn conditions(&self) -> &[Condition];
}

/// Schema for a value that may be a string, number or boolean (typed parameter values).
/// Structural schemas forbid untyped nodes unless they preserve unknown fields.
pub fn any_scalar_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "x-kubernetes-preserve-unknown-fields": true,
        "description": "A parameter value: string, integer, number or boolean."
    })
}

/// Schema for a port (1–65535) that may instead name a template parameter (`$port$`).
pub fn int_or_parameter_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "x-kubernetes-int-or-string": true,
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "minimum": 1,
        "maximum": 65535,
        "maxLength": 64,
        "x-kubernetes-validations": [{
            "rule": "type(self) == int || self.matches('^\\\\$[A-Za-z_][A-Za-z0-9_]*\\\\$$')",
            "message": "must be a port number or a single template parameter such as $port$"
        }]
    })
}

/// Schema for a map of parameter values keyed by parameter name.
pub fn parameter_map_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "maxProperties": 64,
        "additionalProperties": {
            "x-kubernetes-preserve-unknown-fields": true,
            "description": "A parameter value: string, integer, number or boolean."
        }
    })
}
