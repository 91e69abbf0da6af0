//! Sends spooled reports upstream (F9, F11). Live entries go out at once; a backlog left by an
//! outage (or found in the spool at start) is replayed oldest first at a bounded rate, beside
//! the live ones, so replay never delays live sends. Entries leave the spool only when the
//! upstream acknowledged them; `(agent, sequence)` makes resends harmless.
//!
//! Both roles use it: the node sends its [`Report`](crate::report::Report)s to satellites,
//! a satellite sends its [`Forwarded`](crate::forward::Forwarded) entries to the masters.
//! The spool's payloads are JSON of the report type `R`.

use std::collections::BTreeSet;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::backoff::Backoff;
use crate::metrics::{SendLabels, SendResult};
use crate::report::{Batch, Envelope};
use crate::spool::{Record, Spool, TokenBucket};
use crate::transport::Transport;

/// A durable spool entry the sender should send now: sequence and payload.
pub type LiveEntry = (u64, Vec<u8>);

/// The highest spool sequence the sender may delete once the upstream acknowledged it.
/// A satellite holds entries back until its snapshot covers them (so that its dedup
/// watermarks survive a crash); an agent's gate is always open.
#[derive(Debug, Clone)]
pub struct AckGate(Arc<AtomicU64>);

impl AckGate {
    /// A gate that never holds anything back.
    pub fn open() -> Self {
        Self(Arc::new(AtomicU64::new(u64::MAX)))
    }

    /// A gate letting nothing through yet.
    pub fn closed() -> Self {
        Self(Arc::new(AtomicU64::new(0)))
    }

    /// Lets entries up to `sequence` be deleted.
    pub fn allow(&self, sequence: u64) {
        self.0.fetch_max(sequence, Ordering::SeqCst);
    }

    /// Up to where entries may be deleted.
    pub fn limit(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Most entries in one batch.
const MAX_BATCH: usize = 500;
/// Most payload bytes read from the spool for one batch.
const MAX_BATCH_BYTES: usize = 1 << 20;

/// Sender settings.
#[derive(Debug, Clone)]
pub struct SenderConfig<R> {
    /// The agent id sent with every batch.
    pub agent: String,
    /// Backlog entries replayed per second at most.
    pub replay_per_second: u32,
    /// Up to where acknowledged entries may leave the spool.
    pub gate: AckGate,
    /// Batches sent, by result.
    pub sends: Family<SendLabels, Counter>,
    /// The report type the spool holds.
    pub report: PhantomData<fn() -> R>,
}

impl<R> SenderConfig<R> {
    /// Settings with an open gate.
    pub fn new(agent: &str, replay_per_second: u32, sends: Family<SendLabels, Counter>) -> Self {
        Self {
            agent: agent.to_owned(),
            replay_per_second,
            gate: AckGate::open(),
            sends,
            report: PhantomData,
        }
    }
}

/// Sends until the live channel closes and the spool is drained (or forever while running).
pub async fn run<R: Serialize + DeserializeOwned>(
    config: SenderConfig<R>,
    spool: Spool,
    mut transport: Transport,
    mut live: mpsc::Receiver<LiveEntry>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
    let mut replay = TokenBucket::new(
        config.replay_per_second,
        config.replay_per_second,
        Instant::now(),
    );
    // Everything already spooled at start is backlog.
    let mut backlog_end = spool.stats().last_sequence + 1;
    // Live entries the upstream stored but has not acknowledged yet (above a backlog gap).
    let mut delivered_above_ack: BTreeSet<u64> = BTreeSet::new();
    // Highest sequence the upstream acknowledged (the gate may keep it in the spool).
    let mut upstream_acked = spool.stats().acked_through;
    loop {
        apply_ack(&spool, upstream_acked, &config.gate);
        let mut live_entries = Vec::new();
        while live_entries.len() < MAX_BATCH {
            match live.try_recv() {
                Ok(entry) => live_entries.push(entry),
                Err(_) => break,
            }
        }
        let backlog = read_backlog(
            &spool,
            &mut replay,
            backlog_end,
            upstream_acked,
            &delivered_above_ack,
        );
        if live_entries.is_empty() && backlog.is_empty() {
            let idle = if upstream_acked + 1 < backlog_end {
                100
            } else {
                1000
            };
            tokio::select! {
                entry = live.recv() => match entry {
                    Some(entry) => { live_entries.push(entry); }
                    None => return,
                },
                () = tokio::time::sleep(Duration::from_millis(idle)) => {}
            }
            if live_entries.is_empty() {
                continue;
            }
        }
        let live_sequences: Vec<u64> = live_entries.iter().map(|(s, _)| *s).collect();
        let batch = Batch {
            agent: config.agent.clone(),
            floor: floor(&spool).max(upstream_acked + 1),
            entries: envelopes::<R>(live_entries, backlog),
        };
        match transport.send(&batch).await {
            Ok(ack) => {
                config
                    .sends
                    .get_or_create(&SendLabels {
                        result: SendResult::Ok,
                    })
                    .inc();
                backoff.reset();
                let up_to = ack.up_to.min(spool.stats().last_sequence);
                delivered_above_ack.extend(live_sequences);
                delivered_above_ack = delivered_above_ack.split_off(&(up_to + 1));
                upstream_acked = upstream_acked.max(up_to);
                apply_ack(&spool, upstream_acked, &config.gate);
                debug!(
                    message = "Batch acknowledged.",
                    entries = batch.entries.len(),
                    up_to
                );
            }
            Err(error) => {
                config
                    .sends
                    .get_or_create(&SendLabels {
                        result: SendResult::Failed,
                    })
                    .inc();
                if let Some(last) = live_sequences.iter().max() {
                    backlog_end = backlog_end.max(last + 1);
                }
                let delay = backoff.next_delay();
                warn!(message = "Failed to send batch.", %error, retry_in_ms = delay.as_millis() as u64);
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Deletes what the upstream acknowledged, as far as the gate allows.
fn apply_ack(spool: &Spool, upstream_acked: u64, gate: &AckGate) {
    let up_to = upstream_acked.min(gate.limit());
    if up_to > spool.stats().acked_through
        && let Err(error) = spool.ack(up_to)
    {
        warn!(message = "Failed to acknowledge spool entries.", %error, up_to);
    }
}

/// Oldest spooled entries below `backlog_end` the upstream does not have yet, as many as
/// the replay rate allows.
fn read_backlog(
    spool: &Spool,
    replay: &mut TokenBucket,
    backlog_end: u64,
    upstream_acked: u64,
    delivered: &BTreeSet<u64>,
) -> Vec<Record> {
    if upstream_acked + 1 >= backlog_end {
        return Vec::new();
    }
    let allowed = replay.take_up_to(MAX_BATCH as u32, Instant::now()) as usize;
    if allowed == 0 {
        return Vec::new();
    }
    // Entries the upstream has but the gate keeps in the spool come first; skip past them.
    let held_back = upstream_acked.saturating_sub(spool.stats().acked_through) as usize;
    let held_back = held_back.min(4 * MAX_BATCH);
    match spool.peek(allowed + held_back, MAX_BATCH_BYTES) {
        Ok(records) => records
            .into_iter()
            .filter(|r| {
                r.sequence > upstream_acked
                    && r.sequence < backlog_end
                    && !delivered.contains(&r.sequence)
            })
            .take(allowed)
            .collect(),
        Err(error) => {
            warn!(message = "Failed to read the spool.", %error);
            Vec::new()
        }
    }
}

/// The oldest sequence the agent still holds.
fn floor(spool: &Spool) -> u64 {
    match spool.peek(1, usize::MAX) {
        Ok(records) if !records.is_empty() => records[0].sequence,
        _ => spool.stats().last_sequence + 1,
    }
}

fn envelopes<R: DeserializeOwned>(live: Vec<LiveEntry>, backlog: Vec<Record>) -> Vec<Envelope<R>> {
    let parsed = backlog
        .into_iter()
        .map(|r| (r.sequence, r.payload))
        .chain(live)
        .filter_map(
            |(sequence, payload)| match serde_json::from_slice::<R>(&payload) {
                Ok(report) => Some(Envelope { sequence, report }),
                Err(error) => {
                    warn!(message = "Skipping an unreadable spool entry.", %error, sequence);
                    None
                }
            },
        );
    let mut seen = BTreeSet::new();
    parsed.filter(|e| seen.insert(e.sequence)).collect()
}
