//! Sends spooled reports upstream (F9, F11). Live entries go out at once; a backlog left by an
//! outage (or found in the spool at start) is replayed oldest first at a bounded rate, beside
//! the live ones, so replay never delays live sends. Entries leave the spool only when the
//! upstream acknowledged them; `(agent, sequence)` makes resends harmless.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::backoff::Backoff;
use crate::metrics::{Metrics, SendLabels, SendResult};
use crate::report::{Batch, Envelope, Report};
use crate::spool::{Record, Spool, TokenBucket};
use crate::transport::Transport;

use super::engine::LiveEntry;

/// Most entries in one batch.
const MAX_BATCH: usize = 500;
/// Most payload bytes read from the spool for one batch.
const MAX_BATCH_BYTES: usize = 1 << 20;

/// Sender settings.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// The agent id sent with every batch.
    pub agent: String,
    /// Backlog entries replayed per second at most.
    pub replay_per_second: u32,
}

/// Sends until the live channel closes and the spool is drained (or forever while running).
pub async fn run(
    config: SenderConfig,
    spool: Spool,
    mut transport: Transport,
    mut live: mpsc::Receiver<LiveEntry>,
    metrics: Arc<Metrics>,
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
    loop {
        let mut live_entries = Vec::new();
        while live_entries.len() < MAX_BATCH {
            match live.try_recv() {
                Ok(entry) => live_entries.push(entry),
                Err(_) => break,
            }
        }
        let backlog = read_backlog(&spool, &mut replay, backlog_end, &delivered_above_ack);
        if live_entries.is_empty() && backlog.is_empty() {
            let idle = if spool.stats().acked_through + 1 < backlog_end {
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
            floor: floor(&spool),
            entries: envelopes(live_entries, backlog),
        };
        match transport.send(&batch).await {
            Ok(ack) => {
                metrics
                    .sends
                    .get_or_create(&SendLabels {
                        result: SendResult::Ok,
                    })
                    .inc();
                backoff.reset();
                let up_to = ack.up_to.min(spool.stats().last_sequence);
                delivered_above_ack.extend(live_sequences);
                delivered_above_ack = delivered_above_ack.split_off(&(up_to + 1));
                if let Err(error) = spool.ack(up_to) {
                    warn!(message = "Failed to acknowledge spool entries.", %error, up_to);
                }
                debug!(
                    message = "Batch acknowledged.",
                    entries = batch.entries.len(),
                    up_to
                );
            }
            Err(error) => {
                metrics
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

/// Oldest spooled entries below `backlog_end`, as many as the replay rate allows.
fn read_backlog(
    spool: &Spool,
    replay: &mut TokenBucket,
    backlog_end: u64,
    delivered: &BTreeSet<u64>,
) -> Vec<Record> {
    if spool.stats().acked_through + 1 >= backlog_end {
        return Vec::new();
    }
    let allowed = replay.take_up_to(MAX_BATCH as u32, Instant::now()) as usize;
    if allowed == 0 {
        return Vec::new();
    }
    match spool.peek(allowed, MAX_BATCH_BYTES) {
        Ok(records) => records
            .into_iter()
            .filter(|r| r.sequence < backlog_end && !delivered.contains(&r.sequence))
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

fn envelopes(live: Vec<LiveEntry>, backlog: Vec<Record>) -> Vec<Envelope> {
    let parsed = backlog
        .into_iter()
        .map(|r| (r.sequence, r.payload))
        .chain(live)
        .filter_map(
            |(sequence, payload)| match serde_json::from_slice::<Report>(&payload) {
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
