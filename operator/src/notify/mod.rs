//! Notifications (F26): what the masters learn becomes alerts, routed per application to
//! Alertmanager, webhooks and mail.
//!
//! | module | concept |
//! | --- | --- |
//! | [`alert`] | what a notification is about: labels, annotations, firing / resolved / info (pure) |
//! | [`route`] | which receivers an alert goes to (pure) |
//! | [`group`] | Alertmanager's grouping: wait, interval, repeat; idempotency keys (pure) |
//! | [`handover`] | what a replica without the Lease keeps to take over (pure) |
//! | [`payload`] | webhook body and signature, mail, Alertmanager's alerts (pure) |
//! | [`send`] | delivery over HTTP and SMTP, secrets (I/O) |
//!
//! **The task.** [`run`] subscribes to the masters' event stream. Every alert goes to its
//! targets: an Alertmanager receiver gets it at once (Alertmanager groups by itself) and
//! again every minute while it fires, as Alertmanager expects of its clients; a webhook or
//! mail receiver gets it through its group. Each receiver has its own queue and task, so a
//! receiver that is down (retried with exponential backoff, 1 s doubling to 5 min) does not
//! slow the others; after its last try a notification is recorded in the history as
//! `notification_dead`, and each one delivered as `notification_sent`.
//!
//! **Durability.** Both masters group alike (the same events, the same keys); only the Lease
//! holder sends. A webhook or mail notification goes into the history's outbox, durably,
//! before its first try, and is marked done in the write that records it sent or dead
//! ([`vedette_history::outbox`] states the rule): a holder that is killed sends what its
//! outbox holds when it leads again, and with a shared store (PostgreSQL) the next holder
//! sends it. A lane stops trying when its replica loses the Lease. Groups still waiting
//! (`groupWait`) are in memory: the other master's groups hold them. Alertmanager alerts need
//! no outbox: they are re-posted every minute while they fire and expire by themselves.

pub mod alert;
pub mod group;
pub mod handover;
pub mod payload;
pub mod route;
pub mod send;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use vedette_crds::notification::{AlertmanagerReceiver, Receiver, SecretKeyReference};
use vedette_protocol::clock::unix_ms;

use crate::compile::notify::Routing;
use crate::masters::stream::Subscription;
use alert::{Alert, Status};
use group::{Dispatch, Groups};
use route::{DEFAULT_RECEIVER, ReceiverId};

/// Notifications waiting per receiver at most; beyond, a webhook or mail notification waits in
/// the outbox for the next rescan (without a history it is dropped), counted either way.
pub const MAX_QUEUED: usize = 10_000;
/// First retry delay.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Longest retry delay.
pub const MAX_RETRY: Duration = Duration::from_secs(300);
/// How often due groups are looked for and Alertmanager alerts posted: what a notification
/// waits beyond its group wait at most (a pass over idle groups is a comparison each).
pub const TICK: Duration = Duration::from_millis(20);
/// How often the Lease holder reads the outbox for notifications no queue holds (a queue that
/// was full defers to the outbox), ms.
pub const OUTBOX_RESCAN_MS: u64 = 30_000;
/// Tries of a notification before it is recorded as dead (a receiver may say otherwise).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;

/// What the notifier needs besides the event stream.
#[derive(Clone)]
pub struct Settings {
    /// The cluster's default receiver (the chart's `notifications.defaultAlertmanagerUrl`):
    /// alerts no route of their namespace takes, and machine-wide ones (agent lost).
    pub default_alertmanager: Option<String>,
    /// Where HMAC keys and SMTP passwords come from.
    pub secrets: send::Secrets,
    /// Where dead and sent notifications are recorded.
    pub history: Option<crate::masters::History>,
    /// Counters.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The Lease generation this replica holds (when it took the Lease, Unix ms),
    /// checked against the outbox's fence before every try; `None` (standalone) or 0 (the
    /// Lease could not be read): not fenced.
    pub generation: Option<watch::Receiver<u64>>,
}

/// One job for a receiver's task.
#[derive(Debug)]
enum Job {
    /// A group's notification (webhook, mail).
    Dispatch(Dispatch),
    /// Alerts for Alertmanager.
    Alerts(Vec<Alert>),
}

/// Runs until the stream ends; sends only while `leader` is true.
pub async fn run(
    settings: Settings,
    mut stream: Subscription,
    routing: watch::Receiver<Arc<Routing>>,
    leader: watch::Receiver<bool>,
) {
    let mut groups = Groups::default();
    let mut lanes = Lanes {
        lanes: HashMap::new(),
        queued: Arc::default(),
        settings: settings.clone(),
        routing: routing.clone(),
        leader: leader.clone(),
        client: send::HttpClient::new(),
    };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut pending_am: BTreeMap<ReceiverId, Vec<Alert>> = BTreeMap::new();
    let mut handover = handover::Handover::default();
    let mut was_sending = false;
    let mut next_rescan = 0;
    loop {
        tokio::select! {
            event = stream.recv() => {
                let Some(event) = event else { break };
                let routing = routing.borrow().clone();
                let now = unix_ms();
                for alert in alert::alerts_of(&event, &routing) {
                    let has_default = settings.default_alertmanager.is_some();
                    for target in route::targets(&alert, &routing, has_default) {
                        if is_alertmanager(&target.receiver, &routing, &settings) {
                            if alert.status != Status::Info {
                                handover.posted(&target.receiver, &alert);
                                pending_am.entry(target.receiver.clone()).or_default().push(alert.clone());
                            }
                        } else {
                            groups.offer(&alert, &target, now);
                        }
                    }
                }
            }
            _ = tick.tick() => {
                let now = unix_ms();
                let dispatches = groups.due(now);
                let sending = *leader.borrow();
                if !sending {
                    was_sending = false;
                    pending_am.clear();
                    handover.fell_due(dispatches, now);
                    continue;
                }
                if !was_sending {
                    // Taking the Lease: what fell due lately, and what fires at each
                    // Alertmanager, besides the outbox below.
                    let (recent, firing) = handover.take_over();
                    for dispatch in add_to_outbox(&settings, recent, now).await {
                        lanes.dispatch(dispatch);
                    }
                    for (receiver, alerts) in firing {
                        pending_am.entry(receiver).or_default().extend(alerts);
                    }
                }
                if !was_sending || next_rescan <= now {
                    // On taking the Lease, and then now and again for what a full queue
                    // left in the outbox.
                    was_sending = true;
                    next_rescan = now + OUTBOX_RESCAN_MS;
                    for dispatch in outboxed(&settings).await {
                        lanes.dispatch(dispatch);
                    }
                }
                for (receiver, alerts) in std::mem::take(&mut pending_am) {
                    lanes.enqueue(&receiver, Job::Alerts(alerts));
                }
                for dispatch in add_to_outbox(&settings, dispatches, now).await {
                    lanes.dispatch(dispatch);
                }
            }
        }
    }
}

/// Whether a later Lease generation than this replica's was claimed in the store (see
/// [`vedette_history::outbox`]); a store that cannot answer does not stop a send.
async fn fenced_off(settings: &Settings) -> bool {
    let (Some(history), Some(generation)) = (&settings.history, &settings.generation) else {
        return false;
    };
    let generation = *generation.borrow();
    if generation == 0 {
        return false; // unknown (the Lease could not be read): this term is not fenced
    }
    let store = history.store.clone();
    match tokio::task::spawn_blocking(move || store.fence(generation)).await {
        Ok(Ok(highest)) => !highest,
        _ => false,
    }
}

/// The outbox's entries not done (none without a history, or when it cannot be read).
async fn outboxed(settings: &Settings) -> Vec<Dispatch> {
    let Some(history) = settings.history.clone() else {
        return Vec::new();
    };
    let entries = tokio::task::spawn_blocking(move || history.store.outbox()).await;
    let entries = match entries {
        Ok(Ok(entries)) => entries,
        Ok(Err(error)) => {
            tracing::error!(message = "The notification outbox cannot be read; what it holds is sent when it can be.", %error);
            return Vec::new();
        }
        Err(_) => return Vec::new(),
    };
    if !entries.is_empty() {
        tracing::info!(
            message = "Sending what the notification outbox holds.",
            notifications = entries.len()
        );
    }
    entries
        .iter()
        .filter_map(|entry| match serde_json::from_str(&entry.payload) {
            Ok(dispatch) => Some(dispatch),
            Err(error) => {
                tracing::error!(message = "An outbox entry cannot be read; it is skipped.", key = %entry.key, %error);
                None
            }
        })
        .collect()
}

/// Adds `dispatches` to the outbox and waits until that is durable (the outbox's rule: on
/// disk before the first try); returns those to send: all but the ones already done (a
/// notification the previous Lease holder sent under the same key).
async fn add_to_outbox(
    settings: &Settings,
    dispatches: Vec<Dispatch>,
    now_ms: u64,
) -> Vec<Dispatch> {
    let Some(history) = &settings.history else {
        return dispatches;
    };
    if dispatches.is_empty() {
        return dispatches;
    }
    let outbox = dispatches
        .iter()
        .map(|dispatch| {
            vedette_history::OutboxChange::Add(vedette_history::OutboxEntry {
                key: dispatch.key.clone(),
                receiver: dispatch.group.receiver.to_string(),
                created_ms: now_ms,
                payload: serde_json::to_string(dispatch).expect("a dispatch always serializes"),
            })
        })
        .collect();
    let write = vedette_history::Write {
        outbox,
        ..Default::default()
    };
    if history.writer.submit(write).durable().await.is_err() {
        tracing::warn!(
            message = "The history's writer stopped; notifications are sent without an outbox."
        );
        return dispatches;
    }
    let keys: Vec<String> = dispatches.iter().map(|d| d.key.clone()).collect();
    let store = history.store.clone();
    match tokio::task::spawn_blocking(move || store.outbox_pending(&keys)).await {
        Ok(Ok(pending)) => {
            let pending: std::collections::HashSet<String> = pending.into_iter().collect();
            dispatches
                .into_iter()
                .filter(|d| pending.contains(&d.key))
                .collect()
        }
        _ => dispatches,
    }
}

/// Each receiver's task and queue, and what is queued.
struct Lanes {
    lanes: HashMap<ReceiverId, mpsc::Sender<Job>>,
    /// Keys of the dispatches queued or being tried, so a restored outbox does not queue one
    /// twice.
    queued: Queued,
    settings: Settings,
    routing: watch::Receiver<Arc<Routing>>,
    leader: watch::Receiver<bool>,
    client: send::HttpClient,
}

/// Keys of the dispatches in the lanes.
type Queued = Arc<std::sync::Mutex<std::collections::HashSet<String>>>;

impl Lanes {
    /// Queues `dispatch` unless it is queued already.
    fn dispatch(&mut self, dispatch: Dispatch) {
        if !lock(&self.queued).insert(dispatch.key.clone()) {
            return;
        }
        let receiver = dispatch.group.receiver.clone();
        self.enqueue(&receiver, Job::Dispatch(dispatch));
    }

    fn enqueue(&mut self, receiver: &ReceiverId, job: Job) {
        let lane = self.lanes.entry(receiver.clone()).or_insert_with(|| {
            let (sender, jobs) = mpsc::channel(MAX_QUEUED);
            tokio::spawn(lane(
                receiver.clone(),
                jobs,
                LaneContext {
                    settings: self.settings.clone(),
                    routing: self.routing.clone(),
                    leader: self.leader.clone(),
                    client: self.client.clone(),
                    queued: self.queued.clone(),
                },
            ));
            sender
        });
        if let Err(refused) = lane.try_send(job) {
            // A dispatch is in the outbox (with a history) and is queued again by the next
            // rescan; without a history, and for Alertmanager posts, it is dropped.
            let deferred = match refused.into_inner() {
                Job::Dispatch(dispatch) => {
                    lock(&self.queued).remove(&dispatch.key);
                    self.settings.history.is_some()
                }
                Job::Alerts(_) => false,
            };
            self.settings
                .metrics
                .notifications
                .get_or_create(&outcome(
                    receiver,
                    if deferred { "deferred" } else { "dropped" },
                ))
                .inc();
        }
    }
}

fn lock(queued: &Queued) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
    queued
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a lane needs besides its queue.
struct LaneContext {
    settings: Settings,
    routing: watch::Receiver<Arc<Routing>>,
    leader: watch::Receiver<bool>,
    client: send::HttpClient,
    queued: Queued,
}

fn is_alertmanager(receiver: &ReceiverId, routing: &Routing, settings: &Settings) -> bool {
    if receiver.namespace.is_empty() {
        return settings.default_alertmanager.is_some();
    }
    lookup(receiver, routing).is_some_and(|r| r.alertmanager.is_some())
}

fn lookup<'a>(receiver: &ReceiverId, routing: &'a Routing) -> Option<&'a Receiver> {
    routing
        .namespaces
        .get(&receiver.namespace)
        .and_then(|ns| ns.receivers.get(&receiver.name))
}

fn outcome(receiver: &ReceiverId, outcome: &str) -> crate::metrics::NotificationLabels {
    crate::metrics::NotificationLabels {
        receiver: receiver.to_string(),
        outcome: outcome.to_owned(),
    }
}

/// One receiver's deliveries, in order, each retried until it is delivered or dead, or this
/// replica stops holding the Lease (a dispatch then stays in the outbox for the next holder).
async fn lane(receiver: ReceiverId, mut jobs: mpsc::Receiver<Job>, context: LaneContext) {
    let mut firing: BTreeMap<String, Alert> = BTreeMap::new();
    let mut repost = tokio::time::interval(Duration::from_millis(payload::ALERTMANAGER_REPOST_MS));
    repost.tick().await;
    loop {
        let job = tokio::select! {
            job = jobs.recv() => match job { Some(job) => job, None => return },
            _ = repost.tick() => {
                if firing.is_empty() || !*context.leader.borrow() { continue; }
                Job::Alerts(firing.values().cloned().collect())
            }
        };
        if let Job::Alerts(alerts) = &job {
            for alert in alerts {
                match alert.status {
                    Status::Firing => {
                        firing.insert(alert.fingerprint(), alert.clone());
                    }
                    _ => {
                        firing.remove(&alert.fingerprint());
                    }
                }
            }
        }
        match receiver_config(&receiver, &context) {
            Some(config) => deliver(&receiver, &config, &job, &context).await,
            None => {
                tracing::warn!(message = "A notification's receiver no longer exists; it is dropped.", %receiver);
                record(
                    &context.settings,
                    &receiver,
                    &job,
                    Some("the receiver no longer exists".to_owned()),
                )
                .await;
            }
        }
        if let Job::Dispatch(dispatch) = &job {
            lock(&context.queued).remove(&dispatch.key);
        }
    }
}

/// The receiver's configuration: its NotificationConfig's, or the cluster's default.
fn receiver_config(receiver: &ReceiverId, context: &LaneContext) -> Option<Receiver> {
    let config = lookup(receiver, &context.routing.borrow()).cloned();
    match (
        config,
        receiver.namespace.is_empty(),
        &context.settings.default_alertmanager,
    ) {
        (Some(config), _, _) => Some(config),
        (None, true, Some(url)) => Some(Receiver {
            name: DEFAULT_RECEIVER.to_owned(),
            alertmanager: Some(AlertmanagerReceiver::at(url)),
            webhook: None,
            email: None,
        }),
        _ => None,
    }
}

async fn deliver(receiver: &ReceiverId, config: &Receiver, job: &Job, context: &LaneContext) {
    let settings = &context.settings;
    let max_attempts = config
        .webhook
        .as_ref()
        .and_then(|w| w.max_attempts)
        .unwrap_or(DEFAULT_MAX_ATTEMPTS);
    let mut delay = FIRST_RETRY;
    for attempt in 1..=max_attempts {
        if !*context.leader.borrow() {
            tracing::info!(message = "No longer the Lease holder: a notification is left to the next one.", %receiver);
            return;
        }
        if fenced_off(settings).await {
            tracing::warn!(message = "A later Lease holder fenced this replica off: a notification is left to it.", %receiver);
            return;
        }
        match try_once(receiver, config, job, settings, &context.client).await {
            Ok(()) => {
                settings
                    .metrics
                    .notifications
                    .get_or_create(&outcome(receiver, "sent"))
                    .inc();
                record(settings, receiver, job, None).await;
                return;
            }
            Err(error) => {
                settings
                    .metrics
                    .notifications
                    .get_or_create(&outcome(receiver, "failed"))
                    .inc();
                tracing::warn!(message = "A notification could not be delivered.", %receiver, attempt, max_attempts, %error);
                if attempt == max_attempts {
                    settings
                        .metrics
                        .notifications
                        .get_or_create(&outcome(receiver, "dead"))
                        .inc();
                    record(settings, receiver, job, Some(error)).await;
                    return;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY);
            }
        }
    }
}

async fn try_once(
    receiver: &ReceiverId,
    config: &Receiver,
    job: &Job,
    settings: &Settings,
    client: &send::HttpClient,
) -> Result<(), String> {
    match job {
        Job::Alerts(alerts) => {
            let Some(am) = &config.alertmanager else {
                return Err(format!("receiver {receiver} is not an Alertmanager"));
            };
            let now = unix_ms();
            let postable: Vec<_> = alerts
                .iter()
                .filter_map(|a| payload::postable(a, now))
                .collect();
            if postable.is_empty() {
                return Ok(());
            }
            send::alertmanager(client, am, &receiver.namespace, &postable).await
        }
        Job::Dispatch(dispatch) => {
            if let Some(webhook) = &config.webhook {
                let key = match &webhook.hmac_secret {
                    Some(reference) => {
                        Some(settings.secrets.get(&receiver.namespace, reference).await?)
                    }
                    None => None,
                };
                send::webhook(
                    client,
                    webhook,
                    key.as_deref(),
                    &dispatch.key,
                    payload::webhook_body(dispatch),
                )
                .await
            } else if let Some(email) = &config.email {
                let secret = async |reference: &Option<SecretKeyReference>| match reference {
                    Some(reference) => settings
                        .secrets
                        .get(&receiver.namespace, reference)
                        .await
                        .map(Some),
                    None => Ok(None),
                };
                let password = secret(&email.password_secret).await?;
                let ca = secret(&email.ca_secret).await?;
                send::email(email, password, ca, &payload::mail(dispatch)).await
            } else {
                Err(format!(
                    "receiver {receiver} takes no grouped notifications"
                ))
            }
        }
    }
}

/// Records a delivered (`error: None`) or dead notification in the history.
async fn record(settings: &Settings, receiver: &ReceiverId, job: &Job, error: Option<String>) {
    let Some(history) = &settings.history else {
        return;
    };
    let record = match (job, error) {
        (Job::Dispatch(dispatch), error) => {
            crate::masters::recorder::notification_record(receiver, dispatch, error)
        }
        // Alertmanager posts are re-sent every minute; only their failures are recorded.
        (Job::Alerts(_), None) => return,
        (Job::Alerts(_), Some(error)) => {
            crate::masters::recorder::alertmanager_dead_record(receiver, unix_ms(), error)
        }
    };
    // The record and the outbox's done mark in one write (the outbox's rule).
    let outbox = match job {
        Job::Dispatch(dispatch) => vec![vedette_history::OutboxChange::Done {
            key: dispatch.key.clone(),
            at_ms: unix_ms(),
        }],
        Job::Alerts(_) => Vec::new(),
    };
    let write = vedette_history::Write {
        records: vec![record],
        outbox,
        ..Default::default()
    };
    if history.writer.submit(write).durable().await.is_err() {
        tracing::warn!(message = "The history's writer stopped; a notification record is lost.");
    }
}
