//! Connection hygiene of one listener: how many connections it holds (in total and per peer
//! address), how long a client may take to send a request head, and what a refused connection
//! is told. A connection past a cap is answered `503` with a JSON error and closed at once, so a
//! flood costs a file descriptor for microseconds, not until the process runs out of them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The open connections of one listener.
#[derive(Debug)]
pub(crate) struct Connections {
    max_total: usize,
    max_per_peer: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_peer: HashMap<IpAddr, usize>,
}

/// One admitted connection; its slot is freed when the last holder drops it (the HTTP
/// connection's task, and the WebSocket task an upgrade hands the socket to).
#[derive(Debug)]
pub(crate) struct Admitted {
    connections: Arc<Connections>,
    peer: IpAddr,
}

impl Connections {
    pub(crate) fn new(max_total: usize, max_per_peer: usize) -> Arc<Connections> {
        Arc::new(Connections {
            max_total: max_total.max(1),
            max_per_peer: max_per_peer.max(1),
            open: Mutex::new(Open::default()),
        })
    }

    /// Takes a slot for a connection from `peer`, or says which cap refuses it.
    pub(crate) fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Admitted, String> {
        let mut open = self.open.lock().expect("connections lock");
        if open.total >= self.max_total {
            return Err(format!(
                "the host holds {} connections, its limit (max-connections); retry later",
                open.total
            ));
        }
        let from_peer = open.per_peer.entry(peer).or_default();
        if *from_peer >= self.max_per_peer {
            return Err(format!(
                "{peer} holds {from_peer} connections, the limit per client address (max-connections-per-peer); close some or retry later"
            ));
        }
        *from_peer += 1;
        open.total += 1;
        Ok(Admitted {
            connections: self.clone(),
            peer,
        })
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.open.lock().expect("connections lock").total
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.connections.open.lock().expect("connections lock");
        open.total -= 1;
        if let Some(count) = open.per_peer.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                open.per_peer.remove(&self.peer);
            }
        }
    }
}

/// Answers a refused connection `503` with a JSON error and closes it, without reading the
/// request (the client may not have sent it yet; it learns why either way).
pub(crate) async fn refuse(mut stream: TcpStream, why: String) {
    let body = serde_json::json!({ "error": format!("overloaded: {why}"), "kind": "Overloaded" });
    let body = format!("{body}\n");
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let write = async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    };
    // a client that does not read must not hold the socket either
    let _ = tokio::time::timeout(REFUSE_TIMEOUT, write).await;
}

/// How long a refused client has to take its `503`.
const REFUSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Logs failed accepts (out of file descriptors, say) at most once per interval, with a count,
/// instead of once per attempt.
pub(crate) struct AcceptErrors {
    last: Option<Instant>,
    suppressed: u64,
}

/// Shortest interval between two logged accept failures.
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(5);

impl AcceptErrors {
    pub(crate) fn new() -> AcceptErrors {
        AcceptErrors {
            last: None,
            suppressed: 0,
        }
    }

    pub(crate) fn failed(&mut self, e: &std::io::Error) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < ACCEPT_LOG_INTERVAL)
        {
            self.suppressed += 1;
            return;
        }
        let more = match self.suppressed {
            0 => String::new(),
            n => format!(" ({n} more since the last report)"),
        };
        tracing::warn!(target: "wasmdo.gateway", "accept failed: {e}{more}");
        self.last = Some(now);
        self.suppressed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_total_and_per_peer() {
        let connections = Connections::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = connections.admit(a).unwrap();
        let _a2 = connections.admit(a).unwrap();
        assert!(connections.admit(a).unwrap_err().contains("per client"));
        let b1 = connections.admit(b).unwrap();
        assert!(
            connections
                .admit(b)
                .unwrap_err()
                .contains("max-connections")
        );
        drop(a1);
        let _a3 = connections.admit(a).unwrap();
        drop(b1);
        assert_eq!(connections.open(), 2);
        assert!(!connections.open.lock().unwrap().per_peer.contains_key(&b));
    }
}
