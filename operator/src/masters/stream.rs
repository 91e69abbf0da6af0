//! The masters' event stream: what merging satellite batches means, as typed events
//! ([`MasterEvent`], made by the pure merge in [`super::state`]), and the [`Bus`] that hands
//! every event to every subscriber on its own bounded channel.
//!
//! **Topology.** Subscribers are declared on a [`BusBuilder`] before anything runs; `build`
//! validates the set (at least one subscriber, unique names, non-zero capacities) and only then
//! are the subscriber tasks spawned and the HTTP input started (Vector's topology builder is
//! the model). On shutdown the input stops first: the HTTP server stops accepting batches and
//! the last [`Bus`] is dropped, which closes every channel, so each subscriber drains what is
//! queued and ends.
//!
//! **Back-pressure.** A batch is acknowledged once it is merged into memory; the bus never
//! blocks that. A subscriber whose channel is full loses the event, counted in
//! `vedette_operator_master_events_dropped_total{subscriber}`: the merged state stays right (it
//! is the source of status), only that subscriber's view of the stream has a gap.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::mpsc;
use vedette_crds::CheckState;
use vedette_protocol::plan::CheckId;

use super::processes::ProcessEvent;
use crate::metrics::Metrics;

/// One thing the merge learned.
#[derive(Clone, Debug, PartialEq)]
pub enum MasterEvent {
    /// A check report replaced the stored state (a state change, soft or hard, or a result).
    Check(CheckEvent),
    /// An agent sent its first keepalive, or one after it was stale.
    AgentFresh(AgentEvent),
    /// An agent missed its keepalives (found by [`super::state::MasterState::sweep`]).
    AgentStale(AgentEvent),
    /// An agent runs its last good plan, held, with the reason it gave.
    PlanHeld {
        /// The agent.
        agent: AgentEvent,
        /// Why the plan is held.
        reason: String,
    },
    /// An agent that ran a held plan runs a confirmed one again.
    PlanReleased(AgentEvent),
    /// A business process learned something (see [`super::processes`]).
    Process(super::processes::ProcessEvent),
    /// A satellite's periodic zone summary arrived.
    ZoneSummary {
        /// The zone.
        zone: String,
        /// The satellite replica.
        replica: String,
    },
}

/// A check report the masters applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckEvent {
    /// The machine or remote target.
    pub host: String,
    /// The check.
    pub check: CheckId,
    /// Zone of the reporting agent or satellite, when known.
    pub zone: Option<String>,
    /// The state now.
    pub state: CheckState,
    /// The state before (`None`: the first report the masters saw).
    pub previous: Option<CheckState>,
    /// Whether the state is hard.
    pub hard: bool,
    /// The last hard state before this report (OK until a hard problem was seen).
    pub last_hard: CheckState,
    /// Output of the run.
    pub output: String,
    /// When the run finished, Unix ms.
    pub at_ms: u64,
}

impl CheckEvent {
    /// Whether the state differs from the one stored before (a first report is a change).
    pub fn is_state_change(&self) -> bool {
        self.previous != Some(self.state)
    }

    /// Whether this report is a hard state change: a hard state that differs from the last
    /// hard state the masters saw.
    pub fn is_hard_change(&self) -> bool {
        self.hard && self.state != self.last_hard
    }

    /// The hard state change this report is, if any (see [`CheckEvent::is_hard_change`]).
    pub fn hard_change(&self) -> Option<HardChange> {
        self.is_hard_change().then(|| HardChange {
            host: self.host.clone(),
            check: self.check.clone(),
            state: self.state,
            previous: self.last_hard,
            output: self.output.clone(),
            at_ms: self.at_ms,
        })
    }
}

/// A hard state change, for a Kubernetes Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HardChange {
    /// The machine or target.
    pub host: String,
    /// The check.
    pub check: CheckId,
    /// The new hard state.
    pub state: CheckState,
    /// The hard state before.
    pub previous: CheckState,
    /// Output of the run.
    pub output: String,
    /// When the run finished, Unix ms.
    pub at_ms: u64,
}

/// An agent, its zone, and when it was seen (Unix ms).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentEvent {
    /// The agent (its host name).
    pub host: String,
    /// Its zone, as its plan says.
    pub zone: String,
    /// When its newest keepalive was made (bounded by its arrival), Unix ms.
    pub seen_ms: u64,
}

/// Why a topology does not build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// Nothing subscribed: every event would be lost.
    #[error("the masters' event stream has no subscriber")]
    NoSubscriber,
    /// Two subscribers share a name (their drop counters would mix).
    #[error("two subscribers of the masters' event stream are named {0}")]
    DuplicateName(&'static str),
    /// A channel that holds nothing.
    #[error("subscriber {0} of the masters' event stream has a capacity of 0")]
    ZeroCapacity(&'static str),
}

/// Where events go once the bus is built; see the module documentation.
#[derive(Debug, Default)]
pub struct BusBuilder {
    subscribers: Vec<Subscriber>,
    problems: Vec<TopologyError>,
}

#[derive(Debug, Clone)]
struct Subscriber {
    name: &'static str,
    sender: mpsc::Sender<Arc<MasterEvent>>,
}

/// The receiving end of one subscriber.
pub type Subscription = mpsc::Receiver<Arc<MasterEvent>>;

impl BusBuilder {
    /// Adds a subscriber `name` with a channel of `capacity` events.
    #[must_use = "the subscription receives the events"]
    pub fn subscribe(&mut self, name: &'static str, capacity: usize) -> Subscription {
        if capacity == 0 {
            self.problems.push(TopologyError::ZeroCapacity(name));
        }
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        self.subscribers.push(Subscriber { name, sender });
        receiver
    }

    /// The bus, when the subscribers make a valid topology.
    pub fn build(self, metrics: Arc<Metrics>) -> Result<Bus, TopologyError> {
        if let Some(problem) = self.problems.into_iter().next() {
            return Err(problem);
        }
        if self.subscribers.is_empty() {
            return Err(TopologyError::NoSubscriber);
        }
        let mut names = BTreeSet::new();
        for subscriber in &self.subscribers {
            if !names.insert(subscriber.name) {
                return Err(TopologyError::DuplicateName(subscriber.name));
            }
        }
        Ok(Bus {
            subscribers: self.subscribers,
            metrics,
        })
    }
}

/// Hands every event to every subscriber without waiting; see the module documentation.
#[derive(Debug)]
pub struct Bus {
    subscribers: Vec<Subscriber>,
    metrics: Arc<Metrics>,
}

impl Bus {
    /// Publishes `events` in order to every subscriber.
    pub fn publish(&self, events: Vec<MasterEvent>) {
        for event in events.into_iter().map(Arc::new) {
            self.metrics.master_event(kind(&event));
            for subscriber in &self.subscribers {
                if let Err(mpsc::error::TrySendError::Full(_)) =
                    subscriber.sender.try_send(event.clone())
                {
                    self.metrics.master_event_dropped(subscriber.name);
                }
            }
        }
    }
}

/// The event's kind, as a metric label.
pub fn kind(event: &MasterEvent) -> &'static str {
    match event {
        MasterEvent::Check(check) if check.is_hard_change() => "hard_change",
        MasterEvent::Check(check) if check.is_state_change() => "state_change",
        MasterEvent::Check(_) => "result",
        MasterEvent::AgentFresh(_) => "agent_fresh",
        MasterEvent::AgentStale(_) => "agent_stale",
        MasterEvent::PlanHeld { .. } => "plan_held",
        MasterEvent::PlanReleased(_) => "plan_released",
        MasterEvent::ZoneSummary { .. } => "zone_summary",
        MasterEvent::Process(ProcessEvent::Transition(_)) => "process_transition",
        MasterEvent::Process(ProcessEvent::Violation { .. }) => "process_violation",
        MasterEvent::Process(ProcessEvent::RunEnded { .. }) => "process_run",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> Arc<Metrics> {
        Arc::new(Metrics::new(
            &mut prometheus_client::registry::Registry::default(),
        ))
    }

    fn summary(zone: &str) -> MasterEvent {
        MasterEvent::ZoneSummary {
            zone: zone.to_owned(),
            replica: "r".to_owned(),
        }
    }

    #[test]
    fn a_topology_without_subscribers_or_with_two_of_one_name_is_refused() {
        assert_eq!(
            BusBuilder::default().build(metrics()).unwrap_err(),
            TopologyError::NoSubscriber
        );
        let mut builder = BusBuilder::default();
        let _a = builder.subscribe("status", 4);
        let _b = builder.subscribe("status", 4);
        assert_eq!(
            builder.build(metrics()).unwrap_err(),
            TopologyError::DuplicateName("status")
        );
        let mut builder = BusBuilder::default();
        let _c = builder.subscribe("events", 0);
        assert_eq!(
            builder.build(metrics()).unwrap_err(),
            TopologyError::ZeroCapacity("events")
        );
    }

    #[tokio::test]
    async fn every_subscriber_gets_every_event_in_order_and_a_full_one_drops_and_counts() {
        let metrics = metrics();
        let mut builder = BusBuilder::default();
        let mut wide = builder.subscribe("wide", 8);
        let mut narrow = builder.subscribe("narrow", 1);
        let bus = builder.build(metrics.clone()).unwrap();
        bus.publish(vec![summary("a"), summary("b"), summary("c")]);
        drop(bus);
        let mut seen = Vec::new();
        while let Some(event) = wide.recv().await {
            seen.push((*event).clone());
        }
        assert_eq!(seen, [summary("a"), summary("b"), summary("c")]);
        assert_eq!(*narrow.recv().await.unwrap(), summary("a"));
        assert!(narrow.recv().await.is_none(), "closed once the bus is gone");
        assert_eq!(metrics.master_events_dropped_for("narrow"), 2);
        assert_eq!(metrics.master_events_dropped_for("wide"), 0);
    }

    #[test]
    fn a_hard_report_that_differs_from_the_last_hard_state_is_a_hard_change() {
        let event = CheckEvent {
            host: "n1".into(),
            check: CheckId {
                namespace: "shop".into(),
                rule_set: "web".into(),
                rule: "tcp".into(),
            },
            zone: None,
            state: CheckState::Critical,
            previous: Some(CheckState::Critical),
            hard: true,
            last_hard: CheckState::Ok,
            output: "refused".into(),
            at_ms: 5,
        };
        assert!(!event.is_state_change(), "soft CRITICAL before");
        let change = event.hard_change().unwrap();
        assert_eq!(
            (change.state, change.previous),
            (CheckState::Critical, CheckState::Ok)
        );
        let soft = CheckEvent {
            hard: false,
            ..event.clone()
        };
        assert_eq!(soft.hard_change(), None);
        let repeated = CheckEvent {
            last_hard: CheckState::Critical,
            ..event
        };
        assert_eq!(repeated.hard_change(), None);
    }
}
