//! A series: the identity of what records are about — (application, rule set, check, host),
//! with empty check fields for an agent's records — interned as a small integer.
//!
//! **Why.** A record and its timeline index carry the series' number instead of four strings,
//! which keeps rows and index entries small, so inserts stay fast as the store grows (the
//! check index of 10 million records fits the page cache). A series is added the first time a
//! record names it and is never removed (retention removes records), so a number once read is
//! valid for the life of the store, in either store and for both masters sharing one database.
//!
//! **The cache.** Each store keeps the numbers it has read in a [`SeriesCache`]; numbers learnt
//! inside a transaction enter the cache only after it commits, so a rolled-back series is never
//! used.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::record::Record;

/// What a series is: the fields of a record that name it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    /// The application (namespace); empty for agent records.
    pub namespace: String,
    /// The rule set; empty for agent records.
    pub rule_set: String,
    /// The check (the rule's name); empty for agent records.
    pub check: String,
    /// The machine or remote target.
    pub host: String,
}

impl SeriesKey {
    /// The series `record` belongs to.
    pub fn of(record: &Record) -> SeriesKey {
        SeriesKey {
            namespace: record.namespace.clone(),
            rule_set: record.rule_set.clone(),
            check: record.check.clone(),
            host: record.host.clone(),
        }
    }
}

/// The numbers of the series a store has read; see the module documentation.
#[derive(Debug, Default)]
pub struct SeriesCache {
    known: Mutex<HashMap<SeriesKey, i64>>,
}

impl SeriesCache {
    /// The number of `key`, when known.
    pub fn get(&self, key: &SeriesKey) -> Option<i64> {
        self.known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .copied()
    }

    /// The distinct series of `records` whose number is not known, in order (so that two
    /// writers adding the same series lock them in the same order).
    pub fn unknown(&self, records: &[Record]) -> Vec<SeriesKey> {
        let known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        let mut unknown: Vec<SeriesKey> = records
            .iter()
            .map(SeriesKey::of)
            .filter(|key| !known.contains_key(key))
            .collect();
        unknown.sort();
        unknown.dedup();
        unknown
    }

    /// Remembers numbers read in a transaction that committed.
    pub fn learn(&self, committed: HashMap<SeriesKey, i64>) {
        if committed.is_empty() {
            return;
        }
        self.known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(committed);
    }
}

/// The number of each record's series, from `fresh` (learnt in this transaction) or `cache`.
/// `None` when one is in neither (a store's bug: it must look every unknown series up first).
pub fn numbers_of(
    records: &[Record],
    cache: &SeriesCache,
    fresh: &HashMap<SeriesKey, i64>,
) -> Option<Vec<i64>> {
    records
        .iter()
        .map(|record| {
            let key = SeriesKey::of(record);
            fresh.get(&key).copied().or_else(|| cache.get(&key))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Kind;

    fn record(host: &str, check: &str) -> Record {
        Record {
            check: check.into(),
            rule_set: "web".into(),
            namespace: "shop".into(),
            ..Record::agent(Kind::AgentFresh, host, "z", 1, 1, String::new())
        }
    }

    #[test]
    fn unknown_series_are_listed_once_in_order_and_learnt_only_when_committed() {
        let cache = SeriesCache::default();
        let records = [
            record("n2", "tcp"),
            record("n1", "tcp"),
            record("n2", "tcp"),
        ];
        let unknown = cache.unknown(&records);
        assert_eq!(
            unknown.iter().map(|k| k.host.as_str()).collect::<Vec<_>>(),
            ["n1", "n2"]
        );
        let fresh: HashMap<SeriesKey, i64> = unknown.into_iter().zip([7, 9]).collect();
        assert_eq!(numbers_of(&records, &cache, &fresh), Some(vec![9, 7, 9]));
        assert_eq!(numbers_of(&records, &cache, &HashMap::new()), None);
        cache.learn(fresh);
        assert!(cache.unknown(&records).is_empty());
        assert_eq!(
            numbers_of(&records, &cache, &HashMap::new()),
            Some(vec![9, 7, 9])
        );
    }
}
