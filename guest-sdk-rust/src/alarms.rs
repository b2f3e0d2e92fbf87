//! The object's alarm: one persistent wake-up at a point in time, delivered to
//! [`DurableObject::alarm`](crate::DurableObject::alarm) at least once.
//!
//! Setting or deleting the alarm is part of the event's transaction: if the event fails, the
//! change is undone. Times are milliseconds since the Unix epoch.
//!
//! ```no_run
//! // flush a batch in ten seconds, unless a flush is already scheduled
//! if wasmdo::alarms::get().is_none() {
//!     wasmdo::alarms::set_in(std::time::Duration::from_secs(10));
//! }
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::bindings::wasmdo::object::alarms as host;

/// About one delivery of the alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmInfo {
    /// How many times this alarm already failed (0 on its first delivery).
    pub retry_count: u32,
    /// True when this delivery retries a failed one.
    pub is_retry: bool,
}

/// Schedules the alarm at `epoch_ms` (milliseconds since the Unix epoch), replacing any alarm
/// already set. A time in the past fires as soon as possible.
pub fn set(epoch_ms: i64) {
    host::set_alarm(epoch_ms);
}

/// Schedules the alarm `delay` from now.
pub fn set_in(delay: Duration) {
    set(now_ms().saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)));
}

/// The time the alarm is set for, or `None`.
pub fn get() -> Option<i64> {
    host::get_alarm()
}

/// Cancels the alarm (nothing happens if none is set).
pub fn delete() {
    host::delete_alarm();
}

/// The current time in milliseconds since the Unix epoch (the host's real clock).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
