//! What can be asked of the history: a filtered page of records, newest first, continued
//! with an opaque cursor; and availability over a time range per check or per rule set.

use serde::Serialize;
use vedette_crds::CheckState;

use crate::availability::StateTimes;
use crate::record::{Kind, Record};

/// Most records in one page.
pub const MAX_PAGE: usize = 1000;
/// Records in a page when the caller does not say.
pub const DEFAULT_PAGE: usize = 100;

/// A filter over records; every field that is set must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Only these namespaces (what the caller may read); `None`: every namespace. Agent
    /// records (no namespace) are shown only when this is `None`.
    pub allowed_namespaces: Option<Vec<String>>,
    /// The application.
    pub namespace: Option<String>,
    /// The zone.
    pub zone: Option<String>,
    /// The machine or target.
    pub host: Option<String>,
    /// The rule set.
    pub rule_set: Option<String>,
    /// The check (rule).
    pub check: Option<String>,
    /// The state after.
    pub state: Option<CheckState>,
    /// The kind.
    pub kind: Option<Kind>,
    /// At or after, Unix ms.
    pub from_ms: Option<u64>,
    /// Before, Unix ms.
    pub to_ms: Option<u64>,
    /// Page size (at most [`MAX_PAGE`]).
    pub limit: usize,
    /// Where the previous page ended.
    pub after: Option<Cursor>,
}

/// Where a page ended: the last record's position in the order (time, sequence, row).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// Its time.
    pub at_ms: u64,
    /// Its source's sequence.
    pub sequence: u64,
    /// Its row.
    pub id: i64,
}

/// Why a cursor was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cursor {0:?} is not one this API gave out")]
pub struct BadCursor(pub String);

impl Cursor {
    /// The opaque text given to clients.
    pub fn encode(&self) -> String {
        format!("c1.{:x}.{:x}.{:x}", self.at_ms, self.sequence, self.id)
    }

    /// The cursor `text` encodes.
    pub fn decode(text: &str) -> Result<Cursor, BadCursor> {
        let bad = || BadCursor(text.to_owned());
        let mut parts = text.split('.');
        if parts.next() != Some("c1") {
            return Err(bad());
        }
        let mut number = || {
            parts
                .next()
                .and_then(|p| u64::from_str_radix(p, 16).ok())
                .ok_or_else(bad)
        };
        let (at_ms, sequence, id) = (number()?, number()?, number()?);
        if parts.next().is_some() || i64::try_from(id).is_err() {
            return Err(bad());
        }
        Ok(Cursor {
            at_ms,
            sequence,
            id: id as i64,
        })
    }
}

/// A record as stored, with its row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredRecord {
    /// Its row in this store.
    #[serde(skip)]
    pub id: i64,
    /// The record.
    #[serde(flatten)]
    pub record: Record,
}

impl StoredRecord {
    /// The cursor that continues after this record.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            at_ms: self.record.at_ms,
            sequence: self.record.sequence,
            id: self.id,
        }
    }
}

/// One page of records, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPage {
    /// The records.
    pub records: Vec<StoredRecord>,
    /// The cursor of the next page, when there may be one.
    pub next: Option<String>,
}

/// Which checks availability is computed for: one check on one host, every check of a rule
/// set, or (host unset) one rule on every host of the rule set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AvailabilityQuery {
    /// The application.
    pub namespace: String,
    /// The rule set.
    pub rule_set: String,
    /// Only this rule.
    pub check: Option<String>,
    /// Only this machine.
    pub host: Option<String>,
    /// Range start, Unix ms.
    pub from_ms: u64,
    /// Range end, Unix ms.
    pub to_ms: u64,
    /// Count only hard states (a soft problem counts as the hard state before it).
    pub hard_only: bool,
}

/// Time per state of one check over the range.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckAvailability {
    /// The machine.
    pub host: String,
    /// The rule.
    pub check: String,
    /// Time per state.
    pub times: StateTimes,
    /// The share of the range in OK.
    pub ok_share: f64,
}

/// Availability of the checks a query selects, and of all of them together.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Availability {
    /// Range start, Unix ms.
    pub from_ms: u64,
    /// Range end, Unix ms.
    pub to_ms: u64,
    /// Every check's time, summed.
    pub total: StateTimes,
    /// The share of all checks' time in OK.
    pub ok_share: f64,
    /// Per check.
    pub checks: Vec<CheckAvailability>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_anything_else_is_refused() {
        let cursor = Cursor {
            at_ms: 1_700_000_000_000,
            sequence: 42,
            id: 7,
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
        for bad in [
            "",
            "c1",
            "c1.1.2",
            "c2.1.2.3",
            "c1.1.2.3.4",
            "c1.x.2.3",
            "c1.1.2.ffffffffffffffff",
        ] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
    }
}
