//! Vedette's API (group `vedette.dev`, version `v1alpha1`): the four custom resources and the
//! check specification they share. The CRD YAML beside this crate is generated from these types
//! by `crdgen` (`make generate`) and a test fails when the committed copy is stale.

pub mod check;
pub mod common;
pub mod generate;
pub mod process;
pub mod ruleset;
pub mod template;
pub mod zone;

pub use check::{CheckSpec, ParameterValue};
pub use common::{Condition, MachineSelector, TemplateReference};
pub use process::{BusinessProcess, BusinessProcessSpec, BusinessProcessStatus};
pub use ruleset::{RuleSet, RuleSetSpec, RuleSetStatus};
pub use template::{CheckTemplate, CheckTemplateSpec, CheckTemplateStatus};
pub use zone::{MonitorZone, MonitorZoneSpec, MonitorZoneStatus};

/// The API group of every Vedette resource.
pub const GROUP: &str = "vedette.dev";
/// The API version every Vedette resource is served at.
pub const VERSION: &str = "v1alpha1";
