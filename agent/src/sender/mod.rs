//! Sends spooled reports upstream (F9, F11). Live entries go out at once; a backlog left by an
//! outage (or found in the spool at start) is replayed oldest first at a bounded rate, beside
//! the live ones, so replay never delays live sends. A send loop reads the spool from its own
//! [`Cursor`] (what its upstream acknowledged); entries leave the spool only when every
//! upstream acknowledged them; `(agent, sequence)` makes resends harmless.
//!
//! Both roles use it: the node sends its [`Report`](vedette_protocol::report::Report)s to one satellite
//! at a time (standbys on failure: [`Cursors::single`]), a satellite sends its
//! [`Forwarded`](vedette_protocol::forward::Forwarded) entries to every master ([`fan_out`]).
//! The spool's payloads are JSON of the report type `R`.
//!
//! After a failure the loop backs off (exponentially, jittered), but an upstream that answers
//! any other request of the same transport (the node's plan fetch) ends the wait and resets
//! the backoff: the upstream is back, and the backlog starts draining at once rather than
//! after a wait grown during the outage. Once the spool is closed (the process shuts down),
//! everything left is sent without the replay limit, retries at most [`DRAIN_RETRY_MAX`]
//! apart.

pub mod cursors;
pub mod fan_out;

use std::collections::BTreeSet;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use crate::backoff::Backoff;
use crate::rate::TokenBucket;
use crate::spool::{Record, Spool};
use crate::transport::Transport;
use vedette_protocol::report::{Batch, Envelope};

pub use cursors::{Cursor, Cursors};

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
/// Longest wait between retries while the spool is closed (draining before exit).
pub const DRAIN_RETRY_MAX: Duration = Duration::from_secs(1);

/// What one send loop counts. Clones share their values: take them from labelled families
/// (per upstream on a satellite); a loop's own defaults count for nobody.
#[derive(Debug, Clone, Default)]
pub struct SendMetrics {
    /// Batches acknowledged.
    pub sent: Counter,
    /// Batches that failed.
    pub failed: Counter,
    /// Sequences the cursor skipped because they left the spool before being sent (dropped by
    /// retention while the upstream was away).
    pub skipped: Counter,
    /// Spooled entries the upstream has not acknowledged.
    pub backlog: Gauge,
}

/// Sender settings.
#[derive(Debug, Clone)]
pub struct SenderConfig<R> {
    /// The agent id sent with every batch.
    pub agent: String,
    /// Backlog entries replayed per second at most.
    pub replay_per_second: u32,
    /// What the loop counts.
    pub metrics: SendMetrics,
    /// The report type the spool holds.
    pub report: PhantomData<fn() -> R>,
}

impl<R> SenderConfig<R> {
    /// Settings for sending as `agent`.
    pub fn new(agent: &str, replay_per_second: u32, metrics: SendMetrics) -> Self {
        Self {
            agent: agent.to_owned(),
            replay_per_second,
            metrics,
            report: PhantomData,
        }
    }
}

/// Where a send loop is: which entries it delivered and which it must still replay.
struct Progress {
    /// Spooled entries below this are backlog (replayed at the bounded rate); entries from it
    /// on arrive on the live channel.
    backlog_end: u64,
    /// Entries the upstream stored but has not acknowledged yet (above a gap).
    delivered: BTreeSet<u64>,
    /// A live entry that arrived while the loop was idle.
    carried: Option<LiveEntry>,
}

/// Sends what `cursor` has not been acknowledged until the live channel closes (or forever
/// while running).
pub async fn run<R: Serialize + DeserializeOwned>(
    config: SenderConfig<R>,
    cursor: Cursor,
    mut transport: Transport,
    mut live: mpsc::Receiver<LiveEntry>,
) {
    let spool = cursor.spool().clone();
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
    let mut replay = TokenBucket::new(
        config.replay_per_second,
        config.replay_per_second,
        Instant::now(),
    );
    let metrics = &config.metrics;
    let mut answers = transport.answers();
    // Everything already spooled at start is backlog.
    let mut progress = Progress {
        backlog_end: spool.stats().last_sequence + 1,
        delivered: BTreeSet::new(),
        carried: None,
    };
    loop {
        metrics.skipped.inc_by(cursor.skip_gone());
        cursor.release();
        let acked = cursor.position();
        metrics.backlog.set(spool.count_after(acked) as i64);
        let draining = spool.is_closed();
        if draining {
            // Everything still spooled goes out as fast as the upstream takes it.
            progress.backlog_end = progress.backlog_end.max(spool.stats().last_sequence + 1);
        }
        let live_entries = take_live(&mut live, &mut progress, acked);
        let backlog = read_backlog(&spool, &mut replay, &progress, acked, draining);
        if live_entries.is_empty() && backlog.is_empty() {
            let idle = if acked + 1 < progress.backlog_end {
                100
            } else {
                1000
            };
            tokio::select! {
                entry = live.recv() => match entry {
                    Some(entry) => progress.carried = Some(entry),
                    None => return,
                },
                () = tokio::time::sleep(Duration::from_millis(idle)) => {}
                () = spool.closed(), if !draining => {}
            }
            continue;
        }
        let live_sequences: Vec<u64> = live_entries.iter().map(|(s, _)| *s).collect();
        let batch = Batch {
            agent: config.agent.clone(),
            floor: acked + 1,
            entries: envelopes::<R>(live_entries, backlog),
        };
        // Only answers to other requests from now on end a wait after this one fails.
        answers.mark_unchanged();
        match transport.send(&batch).await {
            Ok(ack) => {
                metrics.sent.inc();
                backoff.reset();
                let up_to = ack.up_to.min(spool.stats().last_sequence);
                progress.acknowledged(batch.entries.iter().map(|e| e.sequence), up_to);
                cursor.advance(up_to);
                debug!(
                    message = "Batch acknowledged.",
                    entries = batch.entries.len(),
                    up_to
                );
            }
            Err(error) => {
                metrics.failed.inc();
                if let Some(last) = live_sequences.iter().max() {
                    progress.backlog_end = progress.backlog_end.max(last + 1);
                }
                // The upstream may come back without what it stored (a restarted master).
                progress.forget_delivered();
                let mut delay = backoff.next_delay();
                if draining {
                    delay = delay.min(DRAIN_RETRY_MAX);
                }
                warn!(message = "Failed to send batch.", %error, upstream = %transport.current_upstream(), retry_in_ms = delay.as_millis() as u64);
                let closing = (!draining).then(|| spool.closed());
                let woken = wait_to_retry(delay, &mut answers, closing).await;
                after_wait(woken, &mut backoff);
                progress.demote_waiting(&mut live);
            }
        }
    }
}

/// What ended the wait before a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Woken {
    /// The backoff delay passed.
    Elapsed,
    /// An upstream answered another request of the transport.
    Answered,
    /// The spool was closed: the process drains before it exits.
    Closing,
}

/// Waits `delay`, or less: until `answers` changes (an upstream answered another request) or
/// `closing` resolves.
async fn wait_to_retry(
    delay: Duration,
    answers: &mut watch::Receiver<u64>,
    closing: Option<impl Future<Output = ()>>,
) -> Woken {
    let closing = async move {
        match closing {
            Some(closing) => closing.await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = tokio::time::sleep(delay) => Woken::Elapsed,
        Ok(()) = answers.changed() => Woken::Answered,
        () = closing => Woken::Closing,
    }
}

/// The reset rule: an upstream that answered is back, so the next failure waits the base
/// delay again, not the one grown during the outage.
fn after_wait(woken: Woken, backoff: &mut Backoff) {
    if woken == Woken::Answered {
        backoff.reset();
    }
}

impl Progress {
    /// The upstream stored `sent` and acknowledged everything up to `up_to`.
    fn acknowledged(&mut self, sent: impl Iterator<Item = u64>, up_to: u64) {
        self.delivered.extend(sent);
        self.delivered = self.delivered.split_off(&(up_to + 1));
        if self.delivered.first() == Some(&(up_to + 1)) {
            // It was stored, yet not acknowledged: the upstream lost it (it restarted).
            self.forget_delivered();
        }
    }

    /// Turns the live entries that queued up while the upstream failed into backlog: they are
    /// in the spool, and after an outage they are replayed at the bounded rate, not sent in
    /// one burst; only what arrives once the upstream answers again is live.
    fn demote_waiting(&mut self, live: &mut mpsc::Receiver<LiveEntry>) {
        let waiting = self
            .carried
            .take()
            .into_iter()
            .chain(std::iter::from_fn(|| live.try_recv().ok()));
        if let Some(newest) = waiting.map(|(sequence, _)| sequence).max() {
            self.backlog_end = self.backlog_end.max(newest + 1);
        }
    }

    /// Sends everything delivered but unacknowledged again, from the spool.
    fn forget_delivered(&mut self) {
        if let Some(last) = self.delivered.last() {
            self.backlog_end = self.backlog_end.max(last + 1);
        }
        self.delivered.clear();
    }
}

/// Live entries waiting on the channel that the upstream does not have yet. Entries below the
/// oldest of them that never came (the channel overflowed) become backlog.
fn take_live(
    live: &mut mpsc::Receiver<LiveEntry>,
    progress: &mut Progress,
    acked: u64,
) -> Vec<LiveEntry> {
    let mut entries: Vec<LiveEntry> = progress.carried.take().into_iter().collect();
    while entries.len() < MAX_BATCH {
        match live.try_recv() {
            Ok(entry) => entries.push(entry),
            Err(_) => break,
        }
    }
    entries.retain(|(sequence, _)| *sequence > acked && !progress.delivered.contains(sequence));
    if let Some(oldest) = entries.iter().map(|(sequence, _)| *sequence).min() {
        progress.backlog_end = progress.backlog_end.max(oldest);
    }
    entries
}

/// Oldest spooled entries below the backlog's end the upstream does not have yet, as many as
/// the replay rate allows (a batch's worth when `unlimited`).
fn read_backlog(
    spool: &Spool,
    replay: &mut TokenBucket,
    progress: &Progress,
    acked: u64,
    unlimited: bool,
) -> Vec<Record> {
    if acked + 1 >= progress.backlog_end {
        return Vec::new();
    }
    let allowed = if unlimited {
        MAX_BATCH
    } else {
        replay.take_up_to(MAX_BATCH as u32, Instant::now()) as usize
    };
    if allowed == 0 {
        return Vec::new();
    }
    // Entries the upstream already stored may come first; read past them.
    let delivered = progress.delivered.len().min(4 * MAX_BATCH);
    match spool.peek_after(acked, allowed + delivered, MAX_BATCH_BYTES) {
        Ok(records) => records
            .into_iter()
            .filter(|r| {
                r.sequence < progress.backlog_end && !progress.delivered.contains(&r.sequence)
            })
            .take(allowed)
            .collect(),
        Err(error) => {
            warn!(message = "Failed to read the spool.", %error);
            Vec::new()
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(backlog_end: u64, delivered: &[u64]) -> Progress {
        Progress {
            backlog_end,
            delivered: delivered.iter().copied().collect(),
            carried: None,
        }
    }

    /// A backoff grown by `failures` consecutive failures.
    fn grown(failures: usize) -> Backoff {
        let mut backoff = Backoff::seeded(Duration::from_millis(200), Duration::from_secs(30), 11);
        for _ in 0..failures {
            backoff.next_delay();
        }
        backoff
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_to_another_request_ends_the_wait_and_resets_the_backoff() {
        let (answered, mut answers) = watch::channel(0u64);
        let mut backoff = grown(8);
        let delay = backoff.next_delay();
        assert!(delay >= Duration::from_secs(15), "{delay:?}");
        let start = tokio::time::Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            answered.send_modify(|n| *n += 1);
            // Kept alive so that `changed` does not fail.
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        let woken = wait_to_retry(delay, &mut answers, None::<std::future::Pending<()>>).await;
        assert_eq!(woken, Woken::Answered);
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        after_wait(woken, &mut backoff);
        assert_eq!(backoff.failures(), 0);
        assert!(backoff.next_delay() <= Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn without_an_answer_the_wait_is_the_backoffs_and_it_keeps_growing() {
        let (answered, mut answers) = watch::channel(0u64);
        // An answer before the failed send does not count: it was marked seen.
        answered.send_modify(|n| *n += 1);
        answers.mark_unchanged();
        let mut backoff = grown(8);
        let delay = backoff.next_delay();
        let start = tokio::time::Instant::now();
        let woken = wait_to_retry(delay, &mut answers, None::<std::future::Pending<()>>).await;
        assert_eq!(woken, Woken::Elapsed);
        assert_eq!(start.elapsed(), delay);
        after_wait(woken, &mut backoff);
        assert_eq!(backoff.failures(), 9);
        assert!(backoff.next_delay() >= Duration::from_secs(15));
        drop(answered);
    }

    #[tokio::test(start_paused = true)]
    async fn closing_the_spool_ends_the_wait_without_a_reset() {
        let (_answered, mut answers) = watch::channel(0u64);
        let mut backoff = grown(8);
        let start = tokio::time::Instant::now();
        let closing = tokio::time::sleep(Duration::from_millis(300));
        let woken = wait_to_retry(Duration::from_secs(20), &mut answers, Some(closing)).await;
        assert_eq!(woken, Woken::Closing);
        assert_eq!(start.elapsed(), Duration::from_millis(300));
        after_wait(woken, &mut backoff);
        assert_eq!(backoff.failures(), 8);
    }

    #[test]
    fn entries_stored_above_a_gap_wait_for_it_and_are_not_sent_again() {
        let mut p = progress(5, &[]);
        p.acknowledged([7, 8].into_iter(), 4);
        assert_eq!(p.delivered, [7, 8].into());
        p.acknowledged([5, 6].into_iter(), 8);
        assert!(p.delivered.is_empty());
        assert_eq!(p.backlog_end, 5);
    }

    #[test]
    fn an_upstream_that_lost_what_it_stored_gets_it_again() {
        // 5 and 6 were stored, then the upstream restarted and acknowledges only up to 4.
        let mut p = progress(5, &[5, 6]);
        p.acknowledged([9].into_iter(), 4);
        assert!(p.delivered.is_empty());
        assert_eq!(p.backlog_end, 10);
    }

    #[test]
    fn entries_queued_during_an_outage_become_backlog() {
        let (sender, mut live) = mpsc::channel(8);
        for sequence in [6, 7, 8] {
            sender.try_send((sequence, Vec::new())).unwrap();
        }
        let mut p = progress(5, &[]);
        p.carried = Some((5, Vec::new()));
        p.demote_waiting(&mut live);
        assert_eq!(p.backlog_end, 9);
        assert!(p.carried.is_none());
        assert!(live.try_recv().is_err(), "the queue is drained");
        // Nothing waiting: nothing changes.
        p.demote_waiting(&mut live);
        assert_eq!(p.backlog_end, 9);
    }

    #[test]
    fn live_entries_skip_what_the_upstream_has_and_a_lost_stretch_becomes_backlog() {
        let (sender, mut live) = mpsc::channel(8);
        for sequence in [3, 9, 10, 12] {
            sender.try_send((sequence, Vec::new())).unwrap();
        }
        // 4..=8 never came (the queue overflowed); 10 was delivered already.
        let mut p = progress(4, &[10]);
        let entries = take_live(&mut live, &mut p, 3);
        let sequences: Vec<u64> = entries.iter().map(|(s, _)| *s).collect();
        assert_eq!(sequences, [9, 12]);
        assert_eq!(p.backlog_end, 9);
    }
}
