//! vedette-protocol: what the tiers say to each other, as data. Plans and zone bundles (and
//! the shard format bundles are stored in), reports and the batches and acks that carry
//! them, business processes' clauses and transitions, what satellites forward to the masters, receiver-side watermarks, the names of a
//! zone's objects, and the rules both ends of a connection must agree on (which report is
//! newer, when an agent is stale, what a valid threshold range is). Pure: serde and the specs of `vedette-crds`, no runtime, no
//! Kubernetes client, so the node agent, the satellite and the operator share it.

pub mod bundle_shards;
pub mod check_secrets;
pub mod clock;
pub mod forward;
pub mod merge;
pub mod names;
pub mod plan;
pub mod process;
pub mod range;
pub mod report;
pub mod text;
pub mod watermark;
