//! Time on the wire: every `at_ms` and `*_ms` field is Unix milliseconds.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, as Unix milliseconds (0 if the clock is before 1970).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
