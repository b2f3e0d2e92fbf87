//! Wall-clock time as the host records it (alarm times, deploy times): milliseconds since the
//! Unix epoch, the unit of the WIT `alarms` interface and of `Date.now()`.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
