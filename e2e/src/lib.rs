//! Vedette's e2e harness: a real kube-apiserver, etcd and kube-controller-manager on loopback,
//! built from Go modules by `e2e/tools/build-control-plane.sh`, plus helpers to apply
//! manifests and wait for conditions.

pub mod browser;
pub mod control_plane;
pub mod fleet;
pub mod http;
pub mod manifests;
pub mod operator;
/// A real PostgreSQL server for the history's shared-store scenarios (the history crate's
/// test helper, one file for both).
#[path = "../../history/tests/common/postgres_server.rs"]
pub mod postgres;
pub mod process;
pub mod prometheus;
pub mod tools;
pub mod wait;
pub mod webhook;

pub use control_plane::ControlPlane;
