//! The satellite's drain on SIGTERM, within its grace: new batches are refused (503, so agents
//! fail over to another replica or retry) and the remote checks stop, what was queued is made
//! durable, the final snapshot is written (so the spool may let go of everything the masters
//! have), and the send loops go on until the masters acknowledged every entry or the grace
//! ran out. What is left stays in the spool (the replica's volume) for the next start, which
//! forwards it.

use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};
use vedette_agent::spool::Spool;

use crate::ingest::Ingest;

/// How long the drain waits for batches being applied to reach the snapshot.
const SETTLE: Duration = Duration::from_secs(1);

/// Drains within `grace`; `forwarding`: there are masters to send to.
pub async fn drain(ingest: &Ingest, forwarding: bool, grace: Duration) {
    let deadline = Instant::now() + grace;
    info!(
        message = "Stopping: new batches are refused; forwarding what is left.",
        grace_seconds = grace.as_secs()
    );
    if let Err(error) = ingest.close().await {
        warn!(message = "Failed to flush the spool.", %error);
    }
    final_snapshot(ingest, deadline.min(Instant::now() + SETTLE)).await;
    if forwarding {
        vedette_agent::shutdown::drain(ingest.spool(), deadline).await;
    } else {
        release_covered(ingest, ingest.spool());
    }
}

/// Writes snapshots until one covers every durable entry (batches received just before the
/// close are still being applied) or `until`.
async fn final_snapshot(ingest: &Ingest, until: Instant) {
    loop {
        if let Err(error) = ingest.snapshot().await {
            warn!(message = "Failed to write the snapshot.", %error);
        }
        let covered = ingest.gate().limit() >= ingest.spool().stats().last_sequence;
        if covered || Instant::now() >= until {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Without masters: lets the spool drop what the last snapshot covers.
pub fn release_covered(ingest: &Ingest, spool: &Spool) {
    let up_to = ingest.gate().limit().min(spool.stats().last_sequence);
    if up_to > spool.stats().acked_through
        && let Err(error) = spool.ack(up_to)
    {
        warn!(message = "Failed to release spool entries.", %error);
    }
}
