//! Ingest: batches from agents and the satellite's own reports go into the satellite's spool
//! **before** they are acknowledged or applied, then into the state table.
//!
//! Exactly-once across crashes: the core — per-agent watermarks, the state table, and the
//! watermark of applied spool sequences — is changed under one lock, and written to a
//! snapshot now and then. On start the snapshot is loaded and every spool entry it does not
//! cover is applied again (an agent entry whose `(agent, sequence)` the snapshot's
//! watermark has seen is skipped). The spool may delete an entry (once the masters have it)
//! only after a snapshot covers it: see [`AckGate`].

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::warn;

use vedette_agent::sender::{AckGate, LiveEntry};
use vedette_agent::spool::{self, Priority, Spool};
use vedette_protocol::clock::unix_ms;
use vedette_protocol::forward::Forwarded;
use vedette_protocol::report::{Ack, Batch, Envelope, Report};
use vedette_protocol::watermark::Watermark;

use super::metrics::SatelliteMetrics;
use super::table::StateTable;

/// Why a batch could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spool refused or failed an append.
    #[error("failed to store the batch durably: {0}")]
    Spool(#[from] spool::Error),
    /// The snapshot could not be read or written.
    #[error("failed to {action} snapshot {path}: {message}")]
    Snapshot {
        /// What was done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it failed.
        message: String,
    },
}

/// What a crash must not lose: changed together, under one lock.
#[derive(Serialize, Deserialize, Default, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Core {
    /// Spool sequences whose effect is in this core.
    pub applied: Watermark,
    /// Per agent: its sequences stored.
    pub agents: HashMap<String, Watermark>,
    /// Per satellite replica of a child zone: its sequences stored (relayed upstream).
    #[serde(default)]
    pub satellites: HashMap<String, Watermark>,
    /// The zone's state.
    pub table: StateTable,
    /// Entries received more than once.
    pub duplicates: u64,
    /// Changes since start (not persisted meaning; used to skip unchanged snapshots).
    #[serde(skip)]
    pub version: u64,
}

impl Core {
    /// Applies one spool entry; agent entries already seen are skipped.
    fn apply(&mut self, replica: &str, spool_sequence: u64, entry: &Forwarded, received_ms: u64) {
        if self.applied.seen(spool_sequence) {
            return;
        }
        match entry {
            Forwarded::Agent {
                agent,
                sequence,
                report,
            } => {
                let watermark = self.agents.entry(agent.clone()).or_default();
                if watermark.record(*sequence) {
                    self.table.apply(agent, *sequence, report, received_ms);
                }
            }
            Forwarded::Own { report } => self.table.apply_own(replica, spool_sequence, report),
            // A child zone's entry: relayed upstream; its zone is not this table's.
            Forwarded::Relayed {
                satellite,
                sequence,
                ..
            } => {
                self.satellites
                    .entry(satellite.clone())
                    .or_default()
                    .record(*sequence);
            }
            Forwarded::RuleSetSummary(_) | Forwarded::ZoneSummary(_) => {}
        }
        self.applied.record(spool_sequence);
        self.version += 1;
    }
}

/// The ingest path of one satellite replica.
pub struct Ingest {
    replica: String,
    spool: Spool,
    core: Mutex<Core>,
    agent_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    live: Option<mpsc::Sender<LiveEntry>>,
    metrics: Arc<SatelliteMetrics>,
    gate: AckGate,
    snapshot_path: PathBuf,
    snapshot_lock: tokio::sync::Mutex<u64>,
}

impl Ingest {
    /// Recovers the core from `snapshot_path` and the spool. `live` receives every new
    /// durable entry for forwarding (none: no masters).
    pub fn open(
        replica: &str,
        spool: Spool,
        snapshot_path: &Path,
        live: Option<mpsc::Sender<LiveEntry>>,
        metrics: Arc<SatelliteMetrics>,
    ) -> Result<Self, Error> {
        let mut core = read_snapshot(snapshot_path)?.unwrap_or_default();
        let stats = spool.stats();
        core.applied.advance_floor(stats.acked_through + 1);
        for record in spool.peek(usize::MAX, usize::MAX)? {
            match serde_json::from_slice::<Forwarded>(&record.payload) {
                Ok(entry) => core.apply(replica, record.sequence, &entry, record.timestamp_ms),
                Err(error) => {
                    warn!(message = "Skipping an unreadable spool entry.", %error, sequence = record.sequence);
                    core.applied.record(record.sequence);
                }
            }
        }
        let gate = AckGate::closed();
        gate.allow(stats.acked_through);
        Ok(Self {
            replica: replica.to_owned(),
            spool,
            core: Mutex::new(core),
            agent_locks: Mutex::new(HashMap::new()),
            live,
            metrics,
            gate,
            snapshot_path: snapshot_path.to_owned(),
            snapshot_lock: tokio::sync::Mutex::new(u64::MAX),
        })
    }

    /// The gate the forwarding sender must respect.
    pub fn gate(&self) -> AckGate {
        self.gate.clone()
    }

    /// What the spool holds now (for metrics).
    pub fn spool_stats(&self) -> spool::SpoolStats {
        self.spool.stats()
    }

    /// The spool entries go to before they are applied.
    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    /// Takes no new entries from now on (a batch is answered 503: its agent goes to another
    /// replica or retries) and waits until what was queued is durable.
    pub async fn close(&self) -> Result<(), Error> {
        Ok(self.spool.close().await?)
    }

    /// Whether [`Ingest::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.spool.is_closed()
    }

    /// Resolves once [`Ingest::close`] is called.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.spool.closed()
    }

    /// The core, locked (for reading views and metrics).
    pub fn core(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores a batch: new entries are appended durably, then applied; the answer says up to
    /// where everything of the agent is stored.
    pub async fn receive(&self, batch: Batch, now_ms: u64) -> Result<Ack, Error> {
        let lock = self.agent_lock(&batch.agent);
        let _one_batch_per_agent = lock.lock().await;
        let (fresh, duplicates) = self.fresh_entries(&batch);
        self.metrics.duplicates.inc_by(duplicates);
        let mut pending = Vec::with_capacity(fresh.len());
        for envelope in fresh {
            let entry = Forwarded::Agent {
                agent: batch.agent.clone(),
                sequence: envelope.sequence,
                report: envelope.report,
            };
            let payload = serde_json::to_vec(&entry).expect("entries always serialize");
            let priority = priority(&entry);
            pending.push((
                self.spool.submit(priority, payload.clone())?,
                entry,
                payload,
            ));
        }
        let mut failure = None;
        for (append, entry, payload) in pending {
            match append.durable().await {
                Ok(sequence) => {
                    self.metrics.observe_received(&entry, now_ms);
                    self.core().apply(&self.replica, sequence, &entry, now_ms);
                    self.hand_on(sequence, payload);
                }
                Err(error) => failure = Some(error),
            }
        }
        if let Some(error) = failure {
            return Err(error.into());
        }
        let mut core = self.core();
        let watermark = core.agents.entry(batch.agent.clone()).or_default();
        watermark.advance_floor(batch.floor);
        Ok(Ack {
            up_to: watermark.contiguous(),
        })
    }

    /// Stores a batch a satellite of a child zone sent (`POST /v1/satellite`): each new entry
    /// is appended durably as [`Forwarded::Relayed`] and handed on upstream; the answer says
    /// up to where everything of that satellite is stored.
    pub async fn receive_relayed(&self, batch: Batch<Forwarded>) -> Result<Ack, Error> {
        let lock = self.agent_lock(&format!("satellite {}", batch.agent));
        let _one_batch_per_sender = lock.lock().await;
        let total = batch.entries.len() as u64;
        let fresh: Vec<Envelope<Forwarded>> = {
            let mut core = self.core();
            let seen = core.satellites.get(&batch.agent);
            let mut in_batch = BTreeSet::new();
            let fresh: Vec<_> = batch
                .entries
                .into_iter()
                .filter(|e| {
                    !seen.is_some_and(|w| w.seen(e.sequence)) && in_batch.insert(e.sequence)
                })
                .collect();
            core.duplicates += total - fresh.len() as u64;
            fresh
        };
        self.metrics.duplicates.inc_by(total - fresh.len() as u64);
        let mut pending = Vec::with_capacity(fresh.len());
        for envelope in fresh {
            let entry = Forwarded::Relayed {
                satellite: batch.agent.clone(),
                sequence: envelope.sequence,
                floor: batch.floor,
                entry: Box::new(envelope.report),
            };
            let payload = serde_json::to_vec(&entry).expect("entries always serialize");
            pending.push((
                self.spool.submit(priority(&entry), payload.clone())?,
                entry,
                payload,
            ));
        }
        let mut failure = None;
        for (append, entry, payload) in pending {
            match append.durable().await {
                Ok(sequence) => {
                    self.metrics.relayed.inc();
                    self.core()
                        .apply(&self.replica, sequence, &entry, unix_ms());
                    self.hand_on(sequence, payload);
                }
                Err(error) => failure = Some(error),
            }
        }
        if let Some(error) = failure {
            return Err(error.into());
        }
        let mut core = self.core();
        let watermark = core.satellites.entry(batch.agent).or_default();
        watermark.advance_floor(batch.floor);
        Ok(Ack {
            up_to: watermark.contiguous(),
        })
    }

    /// Appends one of the satellite's own entries (remote check report, summary).
    pub async fn append_own(&self, entry: Forwarded) -> Result<u64, Error> {
        let payload = serde_json::to_vec(&entry).expect("entries always serialize");
        let sequence = self.spool.append(priority(&entry), payload.clone()).await?;
        self.core()
            .apply(&self.replica, sequence, &entry, unix_ms());
        self.hand_on(sequence, payload);
        Ok(sequence)
    }

    /// Writes a snapshot when the core changed, then opens the gate up to what it covers.
    pub async fn snapshot(&self) -> Result<(), Error> {
        let mut written_version = self.snapshot_lock.lock().await;
        let (core, version) = {
            let core = self.core();
            if core.version == *written_version {
                return Ok(());
            }
            (core.clone(), core.version)
        };
        let path = self.snapshot_path.clone();
        let covered = core.applied.contiguous();
        tokio::task::spawn_blocking(move || write_snapshot(&path, &core))
            .await
            .expect("the snapshot writer does not panic")?;
        *written_version = version;
        self.gate.allow(covered);
        Ok(())
    }

    fn agent_lock(&self, agent: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .agent_locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        locks.entry(agent.to_owned()).or_default().clone()
    }

    /// Entries of the batch not stored yet, and how many were duplicates.
    fn fresh_entries(&self, batch: &Batch) -> (Vec<Envelope>, u64) {
        let core = self.core();
        let watermark = core.agents.get(&batch.agent);
        let mut in_batch = BTreeSet::new();
        let mut duplicates = 0;
        let fresh = batch
            .entries
            .iter()
            .filter(|envelope| {
                let new = !watermark.is_some_and(|w| w.seen(envelope.sequence))
                    && in_batch.insert(envelope.sequence);
                duplicates += u64::from(!new);
                new
            })
            .cloned()
            .collect();
        drop(core);
        self.core().duplicates += duplicates;
        (fresh, duplicates)
    }

    fn hand_on(&self, sequence: u64, payload: Vec<u8>) {
        // A full queue is fine: the entry is in the spool and the sender replays it.
        if let Some(live) = &self.live {
            drop(live.try_send((sequence, payload)));
        }
    }
}

/// The spool priority of an entry: state changes are kept longest.
pub fn priority(entry: &Forwarded) -> Priority {
    match entry {
        Forwarded::Agent { report, .. } | Forwarded::Own { report } => match report {
            Report::StateChange(_) | Report::ElementTransition(_) => Priority::StateChange,
            Report::Result(_) => Priority::Result,
            Report::Keepalive(_) => Priority::Keepalive,
        },
        Forwarded::Relayed { entry, .. } => priority(entry),
        Forwarded::RuleSetSummary(_) | Forwarded::ZoneSummary(_) => Priority::Keepalive,
    }
}

fn read_snapshot(path: &Path) -> Result<Option<Core>, Error> {
    let error = |action, message: String| Error::Snapshot {
        action,
        path: path.to_owned(),
        message,
    };
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| error("parse", e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(error("read", e.to_string())),
    }
}

/// Writes the snapshot atomically: a temporary file, fsync, rename, fsync of the directory.
fn write_snapshot(path: &Path, core: &Core) -> Result<(), Error> {
    let bytes = serde_json::to_vec(core).expect("the core always serializes");
    vedette_agent::atomic_file::replace(path, &bytes).map_err(|error| Error::Snapshot {
        action: "write",
        path: path.to_owned(),
        message: error.to_string(),
    })
}

#[cfg(test)]
#[path = "ingest_tests.rs"]
mod tests;
