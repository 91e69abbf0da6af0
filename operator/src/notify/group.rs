//! Grouping as Alertmanager groups (pure, time passed in): alerts of one receiver and route
//! whose `groupBy` labels are equal form a group. A new group waits `groupWaitSeconds` for
//! more, then is sent; afterwards it is looked at every `groupIntervalSeconds` and sent when
//! something in it changed, or again after `repeatIntervalSeconds` while it has problems.
//! A resolved or info alert leaves its group once sent; an empty group is forgotten.
//!
//! Each send is a [`Dispatch`] with an idempotency key made of what it says (the group, and
//! each alert's fingerprint, status and time of change; a repeat adds its number), so two
//! masters that saw the same changes make the same key.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::alert::{Alert, Labels, Status};
use super::route::{ReceiverId, Target};

/// One group's identity: receiver, route and the values of its `groupBy` labels.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct GroupKey {
    /// The receiver.
    pub receiver: ReceiverId,
    /// The route (`None`: a `notify` or the default).
    pub route_index: Option<usize>,
    /// The `groupBy` labels and their values.
    pub labels: Vec<(String, String)>,
}

impl GroupKey {
    /// A readable form: `receiver{label="value",…}`.
    pub fn text(&self) -> String {
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        format!(
            "{}/{}{{{}}}",
            self.receiver,
            self.route_index.map(|i| i.to_string()).unwrap_or_default(),
            labels.join(",")
        )
    }
}

/// What is sent to a receiver at once (stored as JSON in the outbox).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Dispatch {
    /// The group.
    pub group: GroupKey,
    /// Its alerts, by fingerprint order.
    pub alerts: Vec<Alert>,
    /// Unique per notification; the same for a repeat of a send.
    pub key: String,
    /// When it became due, Unix ms.
    pub due_ms: u64,
}

/// What a group said: each alert's status and time of change, by fingerprint.
type Said = BTreeMap<String, (Status, u64)>;

#[derive(Debug)]
struct Group {
    interval_ms: u64,
    repeat_ms: u64,
    alerts: BTreeMap<String, Alert>,
    next_ms: u64,
    /// Fingerprint → (status, change time) as last sent, and when.
    sent: Option<(Said, u64)>,
    repeats: u64,
}

/// Every group of every receiver.
#[derive(Debug, Default)]
pub struct Groups {
    groups: BTreeMap<GroupKey, Group>,
}

impl Groups {
    /// Adds (or replaces, by fingerprint) `alert` in its group for `target`.
    pub fn offer(&mut self, alert: &Alert, target: &Target, now_ms: u64) {
        let key = GroupKey {
            receiver: target.receiver.clone(),
            route_index: target.route_index,
            labels: target
                .route
                .group_by
                .iter()
                .map(|name| {
                    let value = alert.labels.get(name).cloned().unwrap_or_default();
                    (name.clone(), value)
                })
                .collect(),
        };
        let route = &target.route;
        let group = self.groups.entry(key).or_insert_with(|| Group {
            interval_ms: u64::from(route.group_interval_seconds) * 1000,
            repeat_ms: u64::from(route.repeat_interval_seconds) * 1000,
            alerts: BTreeMap::new(),
            next_ms: now_ms + u64::from(route.group_wait_seconds) * 1000,
            sent: None,
            repeats: 0,
        });
        let fingerprint = alert.fingerprint();
        if let Some(held) = group.alerts.get(&fingerprint)
            && held.changed_at_ms() > alert.changed_at_ms()
        {
            return; // an older change arriving late does not replace a newer one
        }
        if alert.status == Status::Resolved
            && !group.alerts.contains_key(&fingerprint)
            && !group
                .sent
                .as_ref()
                .is_some_and(|(sent, _)| sent.contains_key(&fingerprint))
        {
            return; // the end of a problem this group never told of
        }
        group.alerts.insert(fingerprint, alert.clone());
    }

    /// Groups due at `now_ms` that have something to say, as dispatches.
    pub fn due(&mut self, now_ms: u64) -> Vec<Dispatch> {
        let mut out = Vec::new();
        self.groups.retain(|key, group| {
            if group.next_ms > now_ms {
                return true;
            }
            let current: Said = group
                .alerts
                .iter()
                .map(|(f, a)| (f.clone(), (a.status, a.changed_at_ms())))
                .collect();
            let changed = group.sent.as_ref().is_none_or(|(sent, _)| *sent != current);
            let firing = group.alerts.values().any(|a| a.status == Status::Firing);
            let repeat = !changed
                && firing
                && group
                    .sent
                    .as_ref()
                    .is_some_and(|(_, at)| now_ms >= at + group.repeat_ms);
            if (changed && !group.alerts.is_empty()) || repeat {
                if repeat {
                    group.repeats += 1;
                } else {
                    group.repeats = 0;
                }
                out.push(Dispatch {
                    group: key.clone(),
                    alerts: group.alerts.values().cloned().collect(),
                    key: dispatch_key(key, &current, group.repeats),
                    due_ms: group.next_ms,
                });
                group.sent = Some((current, now_ms));
                group.alerts.retain(|_, a| a.status == Status::Firing);
            }
            group.next_ms = now_ms + group.interval_ms;
            !group.alerts.is_empty()
        });
        out
    }

    /// When the next group is due, if any.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.groups.values().map(|g| g.next_ms).min()
    }

    /// Groups held.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether no group is held.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

fn dispatch_key(group: &GroupKey, alerts: &Said, repeat: u64) -> String {
    let mut hash = Sha256::new();
    hash.update(group.text().as_bytes());
    for (fingerprint, (status, at)) in alerts {
        hash.update(fingerprint.as_bytes());
        hash.update(format!("{status:?}{at}").as_bytes());
    }
    hash.update(repeat.to_le_bytes());
    hex::encode(&hash.finalize()[..16])
}

/// The group labels of a dispatch as a map.
pub fn group_labels(dispatch: &Dispatch) -> Labels {
    dispatch.group.labels.iter().cloned().collect()
}
