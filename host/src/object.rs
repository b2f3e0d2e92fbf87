//! The `object` capability: who the object is (id, name, class), the environment variables its
//! class was granted, and its log. Also routes the guest's stdout/stderr (Rust panic messages, JS
//! `console.*` in later SDKs) into the same per-object log, keeping the tail of stderr so a trap
//! can be reported with the panic message that caused it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::bindings::object_api::{self, LogLevel};
use crate::ids::ObjectId;
use crate::limits::MAX_LOG_LINE_BYTES;

/// Bytes of stderr kept to explain a trap.
const STDERR_TAIL_BYTES: usize = 2048;

/// What an object knows about itself; lives in the Store for the instance's lifetime.
pub(crate) struct ObjectCtx {
    pub(crate) id: ObjectId,
    pub(crate) name: Option<String>,
    pub(crate) class: Arc<str>,
    pub(crate) env: Arc<BTreeMap<String, String>>,
}

/// Writes one line to the log of object `id` of `class` (also used by the host for what an
/// object's owner must see, e.g. a denied outbound request).
pub(crate) fn log(class: &str, id: ObjectId, level: LogLevel, message: &str) {
    let message = truncate(message, MAX_LOG_LINE_BYTES);
    let id = id.to_hex();
    match level {
        LogLevel::Trace => tracing::trace!(target: "wasmdo.guest", class, %id, "{message}"),
        LogLevel::Debug => tracing::debug!(target: "wasmdo.guest", class, %id, "{message}"),
        LogLevel::Info => tracing::info!(target: "wasmdo.guest", class, %id, "{message}"),
        LogLevel::Warn => tracing::warn!(target: "wasmdo.guest", class, %id, "{message}"),
        LogLevel::Error => tracing::error!(target: "wasmdo.guest", class, %id, "{message}"),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl object_api::Host for ObjectCtx {
    fn id(&mut self) -> wasmtime::Result<String> {
        Ok(self.id.to_hex())
    }

    fn name(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(self.name.clone())
    }

    fn class_name(&mut self) -> wasmtime::Result<String> {
        Ok(self.class.to_string())
    }

    fn env(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.env.get(&key).cloned())
    }

    fn env_vars(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        log(&self.class, self.id, level, &message);
        Ok(())
    }
}

/// The guest's stdout or stderr: complete lines go to the object's log; the tail of stderr is
/// kept for error reports.
#[derive(Clone)]
pub(crate) struct GuestOutput {
    inner: Arc<Mutex<OutputState>>,
}

struct OutputState {
    class: Arc<str>,
    id: ObjectId,
    level: LogLevel,
    line: Vec<u8>,
    tail: VecDeque<u8>,
}

impl GuestOutput {
    pub(crate) fn new(class: Arc<str>, id: ObjectId, level: LogLevel) -> Self {
        GuestOutput {
            inner: Arc::new(Mutex::new(OutputState {
                class,
                id,
                level,
                line: Vec::new(),
                tail: VecDeque::new(),
            })),
        }
    }

    /// The last bytes written (at most 2 KiB), lossily decoded; empty if nothing was written.
    pub(crate) fn tail(&self) -> String {
        let state = self.inner.lock().expect("output lock");
        let bytes: Vec<u8> = state.tail.iter().copied().collect();
        String::from_utf8_lossy(&bytes).trim().to_string()
    }

    /// Forgets the tail (called at the start of each event, so a report names this event's output).
    pub(crate) fn clear_tail(&self) {
        self.inner.lock().expect("output lock").tail.clear();
    }

    fn write_bytes(&self, bytes: &[u8]) {
        let mut state = self.inner.lock().expect("output lock");
        for &b in bytes {
            if state.tail.len() == STDERR_TAIL_BYTES {
                state.tail.pop_front();
            }
            state.tail.push_back(b);
            if b == b'\n' || state.line.len() >= MAX_LOG_LINE_BYTES {
                let line = std::mem::take(&mut state.line);
                let line = String::from_utf8_lossy(&line);
                log(&state.class, state.id, state.level, line.trim_end());
                if b != b'\n' {
                    state.line.push(b);
                }
            } else {
                state.line.push(b);
            }
        }
    }
}

impl wasmtime_wasi::cli::IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // always ready: lines are logged synchronously
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Adds the `object` interface to `linker`, over the [`ObjectCtx`] `get` returns.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> &mut ObjectCtx,
) -> wasmtime::Result<()> {
    object_api::add_to_linker::<T, wasmtime::component::HasSelf<ObjectCtx>>(linker, get)
}
