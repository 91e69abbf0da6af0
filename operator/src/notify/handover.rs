//! What a replica that does not hold the Lease keeps so that it can take over (pure): the
//! group notifications that fell due in the last [`HANDOVER_WINDOW_MS`] (the holder may have
//! died before putting them in the outbox, or while no one held the Lease), and every alert
//! firing at each Alertmanager receiver (re-posted at once by the new holder, before
//! Alertmanager's `endsAt` expires them).
//!
//! On taking the Lease the recent notifications go through the outbox like new ones, so one
//! the previous holder sent under the same key (done in a shared store) is not sent again;
//! with a store of its own the replica cannot know, and sends them again under the same keys.

use std::collections::{BTreeMap, VecDeque};

use super::alert::{Alert, Status};
use super::group::Dispatch;
use super::route::ReceiverId;

/// How long a follower keeps a notification that fell due: four Lease durations, so a
/// hand-over after the holder's Lease expires still finds what fell due before it died.
pub const HANDOVER_WINDOW_MS: u64 = 60_000;

/// What a follower keeps; see the module documentation.
#[derive(Debug, Default)]
pub struct Handover {
    recent: VecDeque<Dispatch>,
    firing: BTreeMap<ReceiverId, BTreeMap<String, Alert>>,
}

impl Handover {
    /// Keeps `dispatches` (fallen due at `now_ms` while not holding the Lease) and forgets
    /// those older than the window.
    pub fn fell_due(&mut self, dispatches: Vec<Dispatch>, now_ms: u64) {
        self.recent.extend(dispatches);
        while self
            .recent
            .front()
            .is_some_and(|d| d.due_ms + HANDOVER_WINDOW_MS < now_ms)
        {
            self.recent.pop_front();
        }
    }

    /// Follows what `receiver` (an Alertmanager) was told of `alert`.
    pub fn posted(&mut self, receiver: &ReceiverId, alert: &Alert) {
        let firing = self.firing.entry(receiver.clone()).or_default();
        match alert.status {
            Status::Firing => {
                firing.insert(alert.fingerprint(), alert.clone());
            }
            Status::Resolved | Status::Info => {
                firing.remove(&alert.fingerprint());
            }
        }
    }

    /// What to send on taking the Lease: the recent notifications (forgotten here) and, per
    /// Alertmanager receiver, every alert firing there.
    pub fn take_over(&mut self) -> (Vec<Dispatch>, Vec<(ReceiverId, Vec<Alert>)>) {
        let recent = self.recent.drain(..).collect();
        let firing = self
            .firing
            .iter()
            .filter(|(_, alerts)| !alerts.is_empty())
            .map(|(receiver, alerts)| (receiver.clone(), alerts.values().cloned().collect()))
            .collect();
        (recent, firing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::alert::Labels;
    use crate::notify::group::GroupKey;

    fn receiver() -> ReceiverId {
        ReceiverId {
            namespace: "shop".into(),
            name: "am".into(),
        }
    }

    fn alert(host: &str, status: Status) -> Alert {
        Alert {
            labels: Labels::from([
                ("kind".into(), "check".into()),
                ("host".into(), host.into()),
            ]),
            annotations: Labels::new(),
            status,
            starts_at_ms: 1,
            ends_at_ms: None,
            notify: Vec::new(),
        }
    }

    fn dispatch(key: &str, due_ms: u64) -> Dispatch {
        Dispatch {
            group: GroupKey {
                receiver: receiver(),
                route_index: Some(0),
                labels: Vec::new(),
            },
            alerts: vec![alert("n1", Status::Firing)],
            key: key.into(),
            due_ms,
        }
    }

    #[test]
    fn a_follower_keeps_the_last_minute_of_notifications_and_what_fires() {
        let mut handover = Handover::default();
        handover.fell_due(vec![dispatch("old", 1_000)], 1_000);
        handover.fell_due(vec![dispatch("new", 50_000)], 50_000);
        handover.fell_due(Vec::new(), 61_001);
        handover.posted(&receiver(), &alert("n1", Status::Firing));
        handover.posted(&receiver(), &alert("n2", Status::Firing));
        handover.posted(&receiver(), &alert("n2", Status::Resolved));
        let (recent, firing) = handover.take_over();
        let keys: Vec<&str> = recent.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(keys, ["new"], "older than a minute is forgotten");
        assert_eq!(firing.len(), 1);
        assert_eq!(firing[0].1.len(), 1, "a resolved alert no longer fires");
        assert_eq!(firing[0].1[0].labels["host"], "n1");
        let (recent, _) = handover.take_over();
        assert!(recent.is_empty(), "taken once");
    }
}
