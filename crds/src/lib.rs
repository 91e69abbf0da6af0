//! Vedette's API (group `vedette.dev`, version `v1alpha1`): the five custom resources and the
//! check specification they share. The CRD YAML beside this crate is generated from these types
//! by `crdgen` (`make generate`) and a test fails when the committed copy is stale.
//!
//! The resource types themselves (`MonitorZone`, …, derived with kube's `CustomResource`) and
//! `generate` need the default feature `kube`; without it the crate is the specs alone, which
//! is what the wire types and the node agent need (no Kubernetes client in the agent).

pub mod check;
pub mod common;
#[cfg(feature = "kube")]
pub mod generate;
pub mod notification;
pub mod process;
pub mod ruleset;
pub mod state;
pub mod template;
pub mod zone;

pub use check::{CheckSpec, ParameterValue};
pub use common::{Condition, MachineSelector, TemplateReference};
#[cfg(feature = "kube")]
pub use notification::NotificationConfig;
pub use notification::{NotificationConfigSpec, NotificationConfigStatus};
#[cfg(feature = "kube")]
pub use process::BusinessProcess;
pub use process::{BusinessProcessSpec, BusinessProcessStatus};
#[cfg(feature = "kube")]
pub use ruleset::RuleSet;
pub use ruleset::{RuleSetSpec, RuleSetStatus};
pub use state::CheckState;
#[cfg(feature = "kube")]
pub use template::CheckTemplate;
pub use template::{CheckTemplateSpec, CheckTemplateStatus};
#[cfg(feature = "kube")]
pub use zone::MonitorZone;
pub use zone::{MonitorZoneSpec, MonitorZoneStatus};

/// The API group of every Vedette resource.
pub const GROUP: &str = "vedette.dev";
/// The API version every Vedette resource is served at.
pub const VERSION: &str = "v1alpha1";
