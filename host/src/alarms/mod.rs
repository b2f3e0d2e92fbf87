//! Alarms: one persistent, at-least-once alarm per object.
//!
//! Two owners, kept consistent by the actor:
//! - the object's own database holds its alarm (`_wasmdo_alarm`), written by the guest's
//!   `alarms` calls inside the event's transaction — so a rolled-back event never leaves an alarm
//!   behind, and the object's view is always right;
//! - the host-wide [`Schedule`] (`<data>/alarms.sqlite` plus an in-memory queue) says *when* to
//!   wake which object, so thousands of pending alarms cost no timers and no open databases.
//!
//! The actor writes a new alarm time to the schedule *before* the object's commit and removes a
//! deleted alarm only *after* it: a crash in between can cause a spurious wake-up (the object's
//! database says there is no alarm due, and the schedule is corrected) but never a lost alarm.

mod schedule;

pub use schedule::Schedule;

use crate::bindings::alarms_api;
use crate::storage::StorageView;

/// Storage failures behind the alarm calls trap: the WIT functions have no error case, and a
/// failing database is a host fault the event must not continue past.
impl alarms_api::Host for StorageView<'_> {
    fn set_alarm(&mut self, epoch_ms: i64) -> wasmtime::Result<()> {
        self.0
            .set_alarm(epoch_ms)
            .map_err(|e| wasmtime::format_err!("set-alarm failed: {e}"))
    }

    fn get_alarm(&mut self) -> wasmtime::Result<Option<i64>> {
        self.0
            .get_alarm()
            .map_err(|e| wasmtime::format_err!("get-alarm failed: {e}"))
    }

    fn delete_alarm(&mut self) -> wasmtime::Result<()> {
        self.0
            .delete_alarm()
            .map_err(|e| wasmtime::format_err!("delete-alarm failed: {e}"))
    }
}

/// Adds the `alarms` interface to `linker`, over the backend `get` returns (the alarm is a row
/// of the object's own storage).
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> StorageView<'_>,
) -> wasmtime::Result<()> {
    alarms_api::add_to_linker::<T, crate::storage::StorageApi>(linker, get)
}
