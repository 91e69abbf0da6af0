//! The notification outbox: notifications the masters decided to send, kept until they are
//! delivered or given up.
//!
//! **Durability rule.** A notification is added to the outbox, durably, before its first try;
//! it is marked done in the same write as its `notification_sent` or `notification_dead`
//! record. A master that starts, or becomes the Lease holder, sends every entry not done, so
//! a notification decided before a `kill -9` is delivered after it. Between a delivery and its
//! done mark a kill makes it sent again, with the same idempotency key (at least once; the key
//! lets a receiver make it exactly once). A done entry stays (a tombstone) for
//! [`DONE_KEPT_MS`], so a replica that decides the same notification again (same key) in a
//! shared store does not send it twice.
//!
//! **Fencing.** Only the Lease holder sends; the store keeps the highest Lease generation
//! (when its holder acquired the Lease) any holder claimed, and a holder checks its own against it
//! before every try: a holder deposed by a later one (paused, cut off from the API server
//! while its Lease expired) finds a higher generation there and stops, leaving the entry to
//! the new holder. With a store per replica the fence only orders one replica's own terms.

/// How long a done entry is kept: 7 days.
pub const DONE_KEPT_MS: u64 = 7 * 86_400_000;

/// One notification waiting to be delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Its idempotency key (unique).
    pub key: String,
    /// The receiver (`namespace/name`).
    pub receiver: String,
    /// When it was decided, Unix ms.
    pub created_ms: u64,
    /// What to send, as the notifier serialized it (JSON).
    pub payload: String,
}

/// A change to the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutboxChange {
    /// Adds an entry; an entry with the same key (pending or done) is kept instead.
    Add(OutboxEntry),
    /// Marks the entry with this key done at `at_ms`.
    Done {
        /// The key.
        key: String,
        /// When, Unix ms.
        at_ms: u64,
    },
}
