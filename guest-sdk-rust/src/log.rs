//! Lines in the host's log, tagged with this object's class and id.
//!
//! ```no_run
//! let seat = 7;
//! wasmdo::log::info!("seat {seat} booked");
//! wasmdo::log::warn("almost full");
//! ```
//!
//! Lines longer than 16 KiB are truncated by the host.

use crate::bindings::wasmdo::object::object as wit;

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the object handled.
    Warn,
    /// Something failed.
    Error,
}

/// Write `message` to the log at `level`.
pub fn log(level: Level, message: &str) {
    let level = match level {
        Level::Trace => wit::LogLevel::Trace,
        Level::Debug => wit::LogLevel::Debug,
        Level::Info => wit::LogLevel::Info,
        Level::Warn => wit::LogLevel::Warn,
        Level::Error => wit::LogLevel::Error,
    };
    wit::log(level, message);
}

/// Write `message` to the log at [`Level::Trace`].
pub fn trace(message: &str) {
    log(Level::Trace, message);
}

/// Write `message` to the log at [`Level::Debug`].
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Write `message` to the log at [`Level::Info`].
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Write `message` to the log at [`Level::Warn`].
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Write `message` to the log at [`Level::Error`].
pub fn error(message: &str) {
    log(Level::Error, message);
}

// The macros are `#[macro_export]`ed (so at the crate root) under private names, then
// re-exported here so that they read `wasmdo::log::info!` next to the functions.

/// Format a line like `format!` and write it at [`Level::Trace`].
#[doc(hidden)]
#[macro_export]
macro_rules! __log_trace {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Trace, &::std::format!($($arg)+)) };
}

/// Format a line like `format!` and write it at [`Level::Debug`].
#[doc(hidden)]
#[macro_export]
macro_rules! __log_debug {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Debug, &::std::format!($($arg)+)) };
}

/// Format a line like `format!` and write it at [`Level::Info`].
#[doc(hidden)]
#[macro_export]
macro_rules! __log_info {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Info, &::std::format!($($arg)+)) };
}

/// Format a line like `format!` and write it at [`Level::Warn`].
#[doc(hidden)]
#[macro_export]
macro_rules! __log_warn {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Warn, &::std::format!($($arg)+)) };
}

/// Format a line like `format!` and write it at [`Level::Error`].
#[doc(hidden)]
#[macro_export]
macro_rules! __log_error {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Error, &::std::format!($($arg)+)) };
}

#[doc(inline)]
pub use crate::{
    __log_debug as debug, __log_error as error, __log_info as info, __log_trace as trace,
    __log_warn as warn,
};
