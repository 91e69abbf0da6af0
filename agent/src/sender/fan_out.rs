//! One spool, several upstreams that each need every entry (a satellite's masters): one send
//! loop per upstream, each with its own [`Cursor`], backoff and replay rate, and a task that
//! hands every live entry to each loop at once. An upstream that is down slows nobody else:
//! what queues up for it while it fails becomes its backlog, replayed from the spool at the
//! replay rate once it is back, and it holds entries in the spool (within retention) until it
//! has them.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::transport::Transport;

use super::{Cursors, LiveEntry, SendMetrics, SenderConfig};

/// Live entries queued per upstream; beyond, the upstream gets them from the spool.
pub const QUEUE: usize = 10_000;

/// One upstream of a fan-out: how to reach it and what its loop counts.
pub struct Upstream {
    /// A transport to this upstream alone.
    pub transport: Transport,
    /// Its loop's metrics.
    pub metrics: SendMetrics,
}

/// Starts a send loop per upstream (in the order of `cursors`) and the task handing them
/// `live`; returns their handles. Every loop sends as `agent`.
pub fn spawn<R: Serialize + DeserializeOwned + Send + Sync + 'static>(
    agent: &str,
    replay_per_second: u32,
    cursors: &Arc<Cursors>,
    upstreams: Vec<Upstream>,
    mut live: mpsc::Receiver<LiveEntry>,
) -> Vec<JoinHandle<()>> {
    let mut queues = Vec::new();
    let mut handles = Vec::new();
    for (cursor, upstream) in cursors.each().into_iter().zip(upstreams) {
        let (queue, receiver) = mpsc::channel(QUEUE);
        queues.push(queue);
        let config: SenderConfig<R> = SenderConfig::new(agent, replay_per_second, upstream.metrics);
        handles.push(tokio::spawn(super::run(
            config,
            cursor,
            upstream.transport,
            receiver,
        )));
    }
    handles.push(tokio::spawn(async move {
        while let Some(entry) = live.recv().await {
            for queue in &queues {
                // A full queue is fine: the entry is in the spool and that loop replays it.
                drop(queue.try_send(entry.clone()));
            }
        }
    }));
    handles
}
