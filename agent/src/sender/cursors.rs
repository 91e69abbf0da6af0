//! The cursors of the send loops reading one spool: per upstream, the highest sequence it
//! acknowledged; and the rule for what may leave the spool given every cursor and the
//! [`AckGate`].
//!
//! A node has one upstream (a satellite, with standbys to fail over to): its cursor is the
//! spool's own acknowledged watermark ([`Cursors::single`]). A satellite sends every entry to
//! each master: one cursor per master, persisted in the spool directory so that a restart
//! resumes each master where it was ([`Cursors::open`]); an entry leaves the spool once every
//! master acknowledged it and the gate allows ([`releasable`]).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tracing::{info, warn};

use crate::spool::cursors::CursorStore;
use crate::spool::{self, Spool};

use super::AckGate;

/// The cursors of every send loop of one spool.
pub struct Cursors {
    spool: Spool,
    gate: AckGate,
    /// Where cursors are persisted; none: the spool's acknowledged watermark is the cursor.
    store: Option<CursorStore>,
    upstreams: Vec<String>,
    positions: Mutex<Vec<u64>>,
}

/// One send loop's handle on its own cursor.
#[derive(Clone)]
pub struct Cursor {
    cursors: Arc<Cursors>,
    index: usize,
}

impl Cursors {
    /// One upstream whose cursor is the spool's acknowledged watermark (nothing else stored).
    pub fn single(spool: Spool, gate: AckGate) -> Arc<Self> {
        let acked = spool.stats().acked_through;
        Arc::new(Self {
            spool,
            gate,
            store: None,
            upstreams: vec![String::new()],
            positions: Mutex::new(vec![acked]),
        })
    }

    /// A cursor per upstream (named by its URL), loaded from the spool directory; cursors of
    /// upstreams no longer listed are dropped, and a new upstream starts at what the spool
    /// still holds.
    pub fn open(spool: Spool, gate: AckGate, upstreams: &[String]) -> spool::Result<Arc<Self>> {
        let (store, loaded) = CursorStore::open(spool.dir(), upstreams)?;
        for upstream in &loaded.removed {
            info!(message = "Dropped the cursor of an upstream no longer configured.", %upstream);
        }
        for path in &loaded.damaged {
            warn!(message = "Dropped a damaged cursor file; its upstream gets the whole spool again.", path = %path.display());
        }
        let stats = spool.stats();
        let positions = loaded
            .cursors
            .iter()
            .map(|stored| start_position(*stored, stats.acked_through, stats.last_sequence))
            .collect();
        let cursors = Arc::new(Self {
            spool,
            gate,
            store: Some(store),
            upstreams: upstreams.to_vec(),
            positions: Mutex::new(positions),
        });
        cursors.release();
        Ok(cursors)
    }

    /// The handle of every cursor, in the order of the upstreams.
    pub fn each(self: &Arc<Self>) -> Vec<Cursor> {
        (0..self.upstreams.len())
            .map(|index| Cursor {
                cursors: self.clone(),
                index,
            })
            .collect()
    }

    /// Every cursor, in the order of the upstreams.
    pub fn positions(&self) -> Vec<u64> {
        self.lock().clone()
    }

    /// Deletes from the spool what every upstream acknowledged, as far as the gate allows.
    pub fn release(&self) {
        let stats = self.spool.stats();
        let up_to = releasable(&self.positions(), self.gate.limit(), stats.last_sequence);
        if up_to > stats.acked_through
            && let Err(error) = self.spool.ack(up_to)
        {
            warn!(message = "Failed to acknowledge spool entries.", %error, up_to);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<u64>> {
        self.positions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Cursor {
    /// The spool read.
    pub fn spool(&self) -> &Spool {
        &self.cursors.spool
    }

    /// The upstream's URL (empty for [`Cursors::single`]).
    pub fn upstream(&self) -> &str {
        &self.cursors.upstreams[self.index]
    }

    /// Everything up to this sequence is acknowledged by the upstream (or gone from the spool).
    pub fn position(&self) -> u64 {
        self.cursors.lock()[self.index]
    }

    /// The upstream acknowledged everything up to `up_to`: moves the cursor there (never
    /// back), persists it, and releases what every upstream has.
    pub fn advance(&self, up_to: u64) {
        if up_to <= self.position() {
            return;
        }
        if let Some(store) = &self.cursors.store
            && let Err(error) = store.store(self.upstream(), up_to)
        {
            // The cursor in memory moves on: a stale file only means resending after a restart.
            warn!(message = "Failed to persist a cursor.", %error, upstream = %self.upstream(), up_to);
        }
        let mut positions = self.cursors.lock();
        positions[self.index] = positions[self.index].max(up_to);
        drop(positions);
        self.cursors.release();
    }

    /// Deletes from the spool what every upstream acknowledged, as far as the gate allows now.
    pub fn release(&self) {
        self.cursors.release();
    }

    /// Moves the cursor past sequences no longer in the spool (dropped by retention while the
    /// upstream was away); returns how many were skipped.
    pub fn skip_gone(&self) -> u64 {
        let position = self.position();
        match skip_to(position, self.spool().next_live_after(position)) {
            Some(to) => {
                self.advance(to);
                to - position
            }
            None => 0,
        }
    }
}

/// Up to where the spool may delete: what every upstream acknowledged, the gate allows, and
/// the spool ever held.
pub fn releasable(positions: &[u64], gate_limit: u64, last_sequence: u64) -> u64 {
    positions
        .iter()
        .copied()
        .min()
        .unwrap_or(0)
        .min(gate_limit)
        .min(last_sequence)
}

/// A cursor at start: the stored one, but never below what the spool already deleted (those
/// entries are gone) nor above what it ever held.
pub fn start_position(stored: Option<u64>, acked_through: u64, last_sequence: u64) -> u64 {
    stored
        .unwrap_or(acked_through)
        .max(acked_through)
        .min(last_sequence.max(acked_through))
}

/// Where a cursor at `position` moves when the lowest sequence still in the spool above it is
/// `next_live`: just below it, when something in between is gone.
pub fn skip_to(position: u64, next_live: u64) -> Option<u64> {
    (next_live > position + 1).then(|| next_live - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::{Priority, SpoolConfig};

    #[test]
    fn the_spool_releases_only_what_every_upstream_has_and_the_gate_allows() {
        assert_eq!(releasable(&[7, 3], u64::MAX, 9), 3);
        assert_eq!(releasable(&[7, 8], 5, 9), 5);
        assert_eq!(releasable(&[7], u64::MAX, 6), 6);
        assert_eq!(releasable(&[], u64::MAX, 6), 0);
    }

    #[test]
    fn a_cursor_starts_where_it_was_within_what_the_spool_holds() {
        assert_eq!(start_position(None, 4, 10), 4);
        assert_eq!(start_position(Some(7), 4, 10), 7);
        assert_eq!(start_position(Some(2), 4, 10), 4);
        assert_eq!(start_position(Some(12), 4, 10), 10);
        assert_eq!(start_position(Some(12), 4, 0), 4);
    }

    #[test]
    fn a_cursor_skips_only_a_gap() {
        assert_eq!(skip_to(4, 5), None);
        assert_eq!(skip_to(4, 9), Some(8));
        assert_eq!(skip_to(0, 1), None);
    }

    fn append(spool: &Spool, count: usize) {
        for _ in 0..count {
            spool
                .append_blocking(Priority::StateChange, b"{}".to_vec())
                .unwrap();
        }
    }

    #[test]
    fn cursors_survive_a_restart_and_a_removed_upstream_no_longer_holds_entries() {
        let dir = tempfile::tempdir().unwrap();
        let urls = ["http://m-0".to_owned(), "http://m-1".to_owned()];
        {
            let spool = Spool::open(SpoolConfig::new(dir.path())).unwrap();
            append(&spool, 6);
            let cursors = Cursors::open(spool.clone(), AckGate::open(), &urls).unwrap();
            let [first, second] = <[Cursor; 2]>::try_from(cursors.each()).ok().unwrap();
            first.advance(6);
            second.advance(2);
            second.advance(1);
            assert_eq!(cursors.positions(), [6, 2]);
            assert_eq!(spool.stats().acked_through, 2);
        }
        let spool = Spool::open(SpoolConfig::new(dir.path())).unwrap();
        let cursors = Cursors::open(spool.clone(), AckGate::open(), &urls).unwrap();
        assert_eq!(cursors.positions(), [6, 2]);
        drop(cursors);
        let cursors = Cursors::open(spool.clone(), AckGate::open(), &urls[..1]).unwrap();
        assert_eq!(cursors.positions(), [6]);
        assert_eq!(spool.stats().acked_through, 6);
    }

    #[test]
    fn the_gate_holds_acknowledged_entries_until_it_opens() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(SpoolConfig::new(dir.path())).unwrap();
        append(&spool, 4);
        let gate = AckGate::closed();
        let cursors = Cursors::open(spool.clone(), gate.clone(), &["http://m".into()]).unwrap();
        cursors.each()[0].advance(4);
        assert_eq!(spool.stats().acked_through, 0);
        gate.allow(3);
        cursors.release();
        assert_eq!(spool.stats().acked_through, 3);
    }

    #[test]
    fn a_cursor_skips_entries_retention_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(SpoolConfig::new(dir.path())).unwrap();
        for at in [0, 0, crate::spool::now_ms()] {
            spool
                .submit_at(Priority::Keepalive, at, b"{}".to_vec())
                .unwrap()
                .wait()
                .unwrap();
        }
        spool.enforce_retention().unwrap();
        let cursors = Cursors::single(spool.clone(), AckGate::open());
        let cursor = &cursors.each()[0];
        assert_eq!(cursor.skip_gone(), 2);
        assert_eq!((cursor.position(), cursor.skip_gone()), (2, 0));
    }
}
