//! The guest's event loop between events (`wasmdo:object/event-loop`): JavaScript's timers keep
//! running while the object is live. The guest says when it next has work (`wake-after`); the
//! actor keeps that one deadline and, when it comes, runs the guest's `event-loop-handler.run`
//! as an event of the object.
//!
//! The deadline belongs to the instance: it is forgotten when the instance goes (the guest's
//! timers go with it) and when the host runs it (the guest asks again for what is left).

use std::time::Duration;

use tokio::time::Instant;

use crate::bindings::event_loop_api;

/// The longest wake-up delay kept as asked; a later one is woken at this distance (and the guest
/// asks again).
const MAX_WAKE_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// The `event-loop` capability of one object: when its instance next wants to run.
#[derive(Default)]
pub(crate) struct EventLoopCtx {
    wake_at: Option<Instant>,
}

impl EventLoopCtx {
    /// When the instance asked to be woken, if it did.
    pub(crate) fn wake_at(&self) -> Option<Instant> {
        self.wake_at
    }

    /// Forgets the request: the host is running it, or the instance (with its timers) is gone.
    pub(crate) fn forget(&mut self) {
        self.wake_at = None;
    }
}

impl event_loop_api::Host for EventLoopCtx {
    fn wake_after(&mut self, after_ms: Option<u64>) -> wasmtime::Result<()> {
        self.wake_at = after_ms.map(|ms| {
            let after = Duration::from_millis(ms.max(1)).min(MAX_WAKE_AFTER);
            Instant::now() + after
        });
        Ok(())
    }
}

/// Adds the `event-loop` interface to `linker`, over the [`EventLoopCtx`] `get` returns.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> &mut EventLoopCtx,
) -> wasmtime::Result<()> {
    event_loop_api::add_to_linker::<T, wasmtime::component::HasSelf<EventLoopCtx>>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use event_loop_api::Host;

    #[test]
    fn a_request_replaces_the_last_and_none_cancels() {
        let mut ctx = EventLoopCtx::default();
        ctx.wake_after(Some(50)).unwrap();
        let first = ctx.wake_at().expect("a wake-up");
        ctx.wake_after(Some(5_000)).unwrap();
        assert!(ctx.wake_at().expect("a wake-up") > first);
        ctx.wake_after(None).unwrap();
        assert_eq!(ctx.wake_at(), None);
    }

    #[test]
    fn delays_are_at_least_a_millisecond_and_at_most_a_day() {
        let mut ctx = EventLoopCtx::default();
        let before = Instant::now();
        ctx.wake_after(Some(0)).unwrap();
        assert!(ctx.wake_at().unwrap() >= before + Duration::from_millis(1));
        ctx.wake_after(Some(u64::MAX)).unwrap();
        assert!(ctx.wake_at().unwrap() <= Instant::now() + MAX_WAKE_AFTER);
        ctx.forget();
        assert_eq!(ctx.wake_at(), None);
    }
}
