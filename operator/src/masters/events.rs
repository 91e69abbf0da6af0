//! Kubernetes Events for hard state changes (F26), on the check's RuleSet: `Warning` with
//! reason `CheckCritical`, `CheckWarning` or `CheckUnknown`, `Normal` with `CheckRecovered`,
//! the note naming host, check and output. Business processes' transitions and violations
//! are Events on the BusinessProcess ([`process_event`]): `ElementRunning`,
//! `ElementCompleted`, `ElementStandby` (`Normal`), `ElementFailed`, `DependencyViolation`,
//! `DeadlineMissed` (`Warning`), the note naming element, machine, message and the clause's
//! `notify` receivers; they are rare, so they are not limited per element, only by the same
//! overall rate (at most [`MAX_PENDING`] waiting).
//!
//! Both masters see every change, but only the Lease holder sends, so an event is sent once.
//! [`Limiter`] keeps the API-server budget: at most one event per (rule set, host, check) per
//! `per_check` (a change that comes sooner waits, and only the latest state is sent when the
//! time comes, if it differs from the last one sent) and at most `per_second` overall.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::watch;
use tokio::time::Instant;
use vedette_agent::rate::TokenBucket;
use vedette_crds::process::{ElementState, ViolationKind};
use vedette_crds::template::CheckState;
use vedette_crds::{BusinessProcess, MonitorZone, RuleSet};
use vedette_protocol::plan::CheckId;

use super::processes::ProcessEvent;
use super::stream::{HardChange, MasterEvent, Subscription};
use crate::metrics::Metrics;
use vedette_protocol::text::sanitize_output;

/// Changes waiting at most; beyond, new keys are dropped (and counted).
pub const MAX_PENDING: usize = 10_000;
/// Longest note, UTF-8 bytes (the API allows 1 KiB); notes pass
/// [`vedette_protocol::text::sanitize_output`].
pub const MAX_NOTE_BYTES: usize = 900;

/// The operator's Event recorder, naming `instance` as the reporting replica.
pub fn recorder(client: kube::Client, instance: &str) -> Recorder {
    Recorder::new(
        client,
        Reporter {
            controller: "vedette-operator".to_owned(),
            instance: Some(instance.to_owned()),
        },
    )
}

type Key = (String, CheckId);

/// Decides which changes become events, and when.
#[derive(Debug)]
pub struct Limiter {
    per_check: Duration,
    last_sent: HashMap<Key, (Instant, CheckState)>,
    pending: BTreeMap<Key, HardChange>,
    budget: TokenBucket,
    /// Changes dropped because too many were waiting.
    pub dropped: u64,
}

impl Limiter {
    /// A limiter allowing one event per check per `per_check`, `per_second` overall.
    pub fn new(per_check: Duration, per_second: u32, now: Instant) -> Self {
        Self {
            per_check,
            last_sent: HashMap::new(),
            pending: BTreeMap::new(),
            budget: TokenBucket::new(per_second, per_second, now.into_std()),
            dropped: 0,
        }
    }

    /// Takes a change; a later change of the same check replaces a waiting one.
    pub fn offer(&mut self, change: HardChange) {
        let key = (change.host.clone(), change.check.clone());
        if self.pending.len() >= MAX_PENDING && !self.pending.contains_key(&key) {
            self.dropped += 1;
            return;
        }
        self.pending.insert(key, change);
    }

    /// The changes to send at `now`, within both limits.
    pub fn due(&mut self, now: Instant) -> Vec<HardChange> {
        let ready: Vec<Key> = self
            .pending
            .keys()
            .filter(|key| {
                self.last_sent
                    .get(*key)
                    .is_none_or(|(at, _)| now.saturating_duration_since(*at) >= self.per_check)
            })
            .cloned()
            .collect();
        let mut out = Vec::new();
        for key in ready {
            if self.budget.wait_time(1, now.into_std()) > Duration::ZERO {
                break;
            }
            let Some(change) = self.pending.remove(&key) else {
                continue;
            };
            let repeat = self
                .last_sent
                .get(&key)
                .is_some_and(|(_, state)| *state == change.state);
            if repeat {
                continue;
            }
            self.budget.take_up_to(1, now.into_std());
            self.last_sent.insert(key, (now, change.state));
            out.push(change);
        }
        self.last_sent
            .retain(|_, (at, _)| now.saturating_duration_since(*at) < self.per_check * 10);
        out
    }

    /// Forgets everything waiting (a replica that is not the Lease holder sends nothing).
    pub fn clear(&mut self) {
        self.pending.clear();
    }
}

/// Reason and type of the event of a change.
pub fn reason(change: &HardChange) -> (&'static str, EventType) {
    match change.state {
        CheckState::Ok => ("CheckRecovered", EventType::Normal),
        CheckState::Warning => ("CheckWarning", EventType::Warning),
        CheckState::Critical => ("CheckCritical", EventType::Warning),
        CheckState::Unknown => ("CheckUnknown", EventType::Warning),
    }
}

/// The note of a change's event.
pub fn note(change: &HardChange) -> String {
    let state = serde_json::to_value(change.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let text = format!(
        "{} on {}: {state}: {}",
        change.check.rule, change.host, change.output
    );
    sanitize_output(&text, MAX_NOTE_BYTES)
}

/// The Event a business-process event becomes: process, reason, type and note (`None` for a
/// run's end, which its transition already says).
pub fn process_event(
    event: &ProcessEvent,
) -> Option<(
    &vedette_protocol::process::ProcessId,
    &'static str,
    EventType,
    String,
)> {
    let receivers = |notify: &[String]| {
        if notify.is_empty() {
            String::new()
        } else {
            format!(" (notify: {})", notify.join(", "))
        }
    };
    let (process, reason, type_, text) = match event {
        ProcessEvent::Transition(t) => {
            let (reason, type_) = match t.to {
                ElementState::Standby => ("ElementStandby", EventType::Normal),
                ElementState::Running => ("ElementRunning", EventType::Normal),
                ElementState::Completed => ("ElementCompleted", EventType::Normal),
                ElementState::Failed => ("ElementFailed", EventType::Warning),
            };
            let message = t.message.as_deref().unwrap_or("no message");
            let text = format!(
                "{} {} → {} on {} ({}): {message}{}",
                t.element,
                t.from,
                t.to,
                t.machine,
                t.clause,
                receivers(&t.notify)
            );
            (&t.process, reason, type_, text)
        }
        ProcessEvent::Violation {
            process,
            violation,
            notify,
        } => {
            let reason = match violation.kind {
                ViolationKind::Early => "DependencyViolation",
                ViolationKind::Late => "DeadlineMissed",
            };
            let text = format!("{}{}", violation.message, receivers(notify));
            (process, reason, EventType::Warning, text)
        }
        ProcessEvent::RunEnded { .. } => return None,
    };
    Some((
        process,
        reason,
        type_,
        sanitize_output(&text, MAX_NOTE_BYTES),
    ))
}

/// Settings of the event task.
#[derive(Clone, Debug)]
pub struct EventSettings {
    /// At most one event per check per this long.
    pub per_check: Duration,
    /// At most this many events per second.
    pub per_second: u32,
    /// This replica's identity (the reporting instance).
    pub instance: String,
}

/// The objects Events are published on.
pub struct EventObjects {
    /// Zones (their remote checks).
    pub zones: kube::runtime::reflector::Store<MonitorZone>,
    /// Rule sets (their checks).
    pub rule_sets: kube::runtime::reflector::Store<RuleSet>,
    /// Business processes.
    pub processes: kube::runtime::reflector::Store<BusinessProcess>,
}

/// Subscribes to the masters' stream: sends an Event for each hard change while `leader` is
/// true (on its RuleSet, or on the MonitorZone for a zone's remote check), and one for each
/// business-process transition and violation; looks the objects up in `sources`. Ends when
/// the stream closes, after offering what was queued.
pub async fn run(
    client: kube::Client,
    settings: EventSettings,
    mut stream: Subscription,
    leader: watch::Receiver<bool>,
    sources: EventObjects,
    metrics: Arc<Metrics>,
) {
    let recorder = recorder(client, &settings.instance);
    let mut limiter = Limiter::new(settings.per_check, settings.per_second, Instant::now());
    let mut process_budget = TokenBucket::new(
        settings.per_second,
        settings.per_second,
        Instant::now().into_std(),
    );
    let mut process_queue: std::collections::VecDeque<ProcessEvent> =
        std::collections::VecDeque::new();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            event = stream.recv() => match event.as_deref() {
                Some(MasterEvent::Check(check)) => {
                    if let Some(change) = check.hard_change() {
                        limiter.offer(change);
                    }
                }
                Some(MasterEvent::Process(event)) => {
                    if process_queue.len() < MAX_PENDING {
                        process_queue.push_back(event.clone());
                    } else {
                        limiter.dropped += 1;
                    }
                }
                Some(_) => {}
                None => return,
            },
            _ = tick.tick() => {
                if !*leader.borrow() {
                    limiter.clear();
                    process_queue.clear();
                    continue;
                }
                for change in limiter.due(Instant::now()) {
                    publish(&recorder, &sources.zones, &sources.rule_sets, &change, &metrics).await;
                }
                while !process_queue.is_empty()
                    && process_budget.wait_time(1, Instant::now().into_std()) == Duration::ZERO
                {
                    process_budget.take_up_to(1, Instant::now().into_std());
                    if let Some(event) = process_queue.pop_front() {
                        publish_process(&recorder, &sources.processes, &event, &metrics).await;
                    }
                }
            }
        }
    }
}

async fn publish_process(
    recorder: &Recorder,
    processes: &kube::runtime::reflector::Store<BusinessProcess>,
    event: &ProcessEvent,
    metrics: &Metrics,
) {
    let Some((id, reason, type_, note)) = process_event(event) else {
        return;
    };
    let key =
        kube::runtime::reflector::ObjectRef::<BusinessProcess>::new(&id.name).within(&id.namespace);
    let Some(process) = processes.get(&key) else {
        return;
    };
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: "Evaluate".to_owned(),
        secondary: None,
    };
    send(
        recorder,
        "BusinessProcess",
        &process.metadata,
        &event,
        metrics,
    )
    .await;
}

async fn publish(
    recorder: &Recorder,
    zones: &kube::runtime::reflector::Store<MonitorZone>,
    rule_sets: &kube::runtime::reflector::Store<RuleSet>,
    change: &HardChange,
    metrics: &Metrics,
) {
    let (reason, type_) = reason(change);
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note(change)),
        action: "StateChange".to_owned(),
        secondary: None,
    };
    // A zone's remote check: the Event is on the MonitorZone.
    if let Some(zone) = change.check.remote_zone() {
        let key = kube::runtime::reflector::ObjectRef::<MonitorZone>::new(zone);
        if let Some(zone) = zones.get(&key) {
            send(recorder, "MonitorZone", &zone.metadata, &event, metrics).await;
        }
        return;
    }
    let key = kube::runtime::reflector::ObjectRef::<RuleSet>::new(&change.check.rule_set)
        .within(&change.check.namespace);
    let Some(rule_set) = rule_sets.get(&key) else {
        return;
    };
    send(recorder, "RuleSet", &rule_set.metadata, &event, metrics).await;
}

/// Publishes `event` on the `kind` object described by `meta`, counting the write or the
/// failure.
async fn send(
    recorder: &Recorder,
    kind: &str,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    event: &Event,
    metrics: &Metrics,
) {
    let reference = ObjectReference {
        api_version: Some("vedette.dev/v1alpha1".to_owned()),
        kind: Some(kind.to_owned()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        ..ObjectReference::default()
    };
    match recorder.publish(event, &reference).await {
        Ok(()) => metrics.wrote("Event", "create"),
        Err(error) => {
            tracing::warn!(message = "Failed to publish an event.", %error, reason = %event.reason);
            metrics.event_failed();
        }
    }
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
