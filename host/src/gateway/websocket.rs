//! One task per WebSocket connection (tungstenite over hyper's upgrade): the object's outgoing
//! messages to the client, the client's frames to the object as events through the [`Router`]
//! (waking it if it hibernates), auto-responses answered here without an event. The task owns
//! the stream; the hub owns the socket's registration, so both outlive the object's instance.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Control, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

use crate::bindings::websockets_api::Message;
use crate::error::ObjectError;
use crate::ids::ObjectKey;
use crate::router::Router;
use crate::websockets::{HereSocket, Outgoing, SocketEvent, SocketId};

/// Serves one accepted socket's connection until it ends: outgoing messages from the object,
/// incoming ones to it as events (auto-responses answered here).
pub(crate) async fn serve(
    router: Arc<dyn Router>,
    max_message_bytes: u64,
    accepted: HereSocket,
    upgraded: Upgraded,
) {
    let Some((key, id, hub, outbox)) = accepted.connect() else {
        return;
    };
    let limit = usize::try_from(max_message_bytes).unwrap_or(usize::MAX);
    let config = WebSocketConfig::default()
        // idle sockets are the common case: a small eagerly allocated read buffer, no batching
        .read_buffer_size(512)
        .write_buffer_size(0)
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit));
    let mut ws =
        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
    // after the object's close: how long the client has to answer it
    let mut closing: Option<(tokio::time::Instant, u16, String)> = None;
    let closed = loop {
        let deadline = closing.as_ref().map(|(at, ..)| *at);
        tokio::select! {
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                let (_, code, reason) = closing.take().expect("a close under way");
                break Some(SocketEvent::Close { code, reason, clean: false });
            }
            out = outbox.pop() => match out {
                Some(Outgoing::Message(m)) => {
                    if let Err(e) = ws.send(m).await {
                        break Some(lost(e));
                    }
                }
                Some(Outgoing::Close(code, reason)) => {
                    let frame = CloseFrame { code: CloseCode::from(code), reason: reason.clone().into() };
                    if let Err(e) = ws.send(WsMessage::Close(Some(frame))).await {
                        break Some(lost(e));
                    }
                    closing = Some((tokio::time::Instant::now() + CLOSE_TIMEOUT, code, reason));
                }
                // forgotten by the hub: nothing more to do
                None => break None,
            },
            incoming = ws.next() => match incoming {
                Some(Ok(WsMessage::Text(text))) => {
                    if let Some(response) = hub.auto_response(&key, text.as_str()) {
                        if let Err(e) = ws.send(WsMessage::text(response)).await {
                            break Some(lost(e));
                        }
                        continue;
                    }
                    let event = SocketEvent::Message(Message::Text(text.as_str().to_owned()));
                    if !deliver(&*router, &key, id, event).await {
                        let _ = ws.close(Some(overloaded())).await;
                        break Some(lost_quietly());
                    }
                }
                Some(Ok(WsMessage::Binary(data))) => {
                    let event = SocketEvent::Message(Message::Binary(data.to_vec()));
                    if !deliver(&*router, &key, id, event).await {
                        let _ = ws.close(Some(overloaded())).await;
                        break Some(lost_quietly());
                    }
                }
                Some(Ok(WsMessage::Close(frame))) => {
                    // tungstenite answers the close; the stream ends after it
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    let _ = ws.flush().await;
                    break Some(SocketEvent::Close { code, reason, clean: true });
                }
                Some(Ok(_)) => {} // ping, pong (answered by tungstenite), raw frames
                Some(Err(e)) if dropped(&e) => break Some(lost(e)),
                Some(Err(e)) => {
                    let message = match &e {
                        WsError::Capacity(c) => {
                            let frame = CloseFrame { code: CloseCode::Size, reason: "message too big".into() };
                            let _ = ws.close(Some(frame)).await;
                            format!("message too large: {c}")
                        }
                        WsError::Utf8(u) => {
                            // RFC 6455 §8.1: a text message that is not UTF-8 fails the connection with 1007
                            let frame = CloseFrame { code: CloseCode::Invalid, reason: "invalid UTF-8 in a text message".into() };
                            let _ = ws.close(Some(frame)).await;
                            format!("invalid UTF-8 in a text message: {u}")
                        }
                        WsError::Protocol(p) => {
                            let frame = CloseFrame { code: CloseCode::Protocol, reason: "protocol error".into() };
                            let _ = ws.close(Some(frame)).await;
                            format!("protocol error: {p}")
                        }
                        other => other.to_string(),
                    };
                    break Some(SocketEvent::Error(message));
                }
                None => break Some(lost_quietly()),
            },
        }
    };
    hub.mark_closed(&key, id);
    match closed {
        // the close (or error) event forgets the socket once the object has handled it
        Some(event) => {
            if !deliver(&*router, &key, id, event).await {
                hub.forget(&key, id);
            }
        }
        None => hub.forget(&key, id),
    }
}

/// How long a client has to answer the object's close before the connection is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `e` is the connection ending (rather than the client misbehaving).
fn dropped(e: &WsError) -> bool {
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    matches!(
        e,
        WsError::ConnectionClosed
            | WsError::AlreadyClosed
            | WsError::Io(_)
            | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)
    )
}

/// The connection dropped without a closing handshake.
fn lost_quietly() -> SocketEvent {
    SocketEvent::Close {
        code: 1006,
        reason: String::new(),
        clean: false,
    }
}

fn lost(e: WsError) -> SocketEvent {
    tracing::debug!(target: "wasmdo.websockets", "connection lost: {e}");
    lost_quietly()
}

fn overloaded() -> CloseFrame {
    CloseFrame {
        code: CloseCode::Again,
        reason: "the object is overloaded".into(),
    }
}

/// Hands an event to the object, waiting while its mailbox is full (a socket's messages must
/// arrive in order, none dropped); false if it stays full for about 5 s, or the class is gone.
async fn deliver(router: &dyn Router, key: &ObjectKey, id: SocketId, event: SocketEvent) -> bool {
    let mut event = Some(event);
    for _ in 0..500 {
        match router.deliver_websocket(key, id, event.take().expect("an event to deliver")) {
            Ok(()) => return true,
            Err((ObjectError::Overloaded(_), back)) => {
                event = Some(back);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err((e, _)) => {
                tracing::warn!(target: "wasmdo.websockets", class = &*key.class, id = %key.id,
                    "a WebSocket event was not delivered: {e}");
                return false;
            }
        }
    }
    false
}

/// Close code for the clients of a tunnel whose owner host went away: 1012, "service restart"
/// (reconnecting reaches the object on the host that takes it over).
const CLOSE_OWNER_GONE: u16 = 1012;
/// Close code for the clients of a host that is shutting down: 1001, "going away".
pub(crate) const CLOSE_GOING_AWAY: u16 = 1001;
/// The reason sent with [`CLOSE_GOING_AWAY`].
pub(crate) const GOING_AWAY_REASON: &str = "the host is shutting down; reconnect";

/// Pipes a client's WebSocket connection to the object's owner host (in a cluster, a socket
/// lives where its object does), byte for byte. When the owner's side ends without closing
/// the socket (its host died), or this host shuts down, the client gets a close frame of its
/// own (1012 or 1001) instead of a connection cut short, if the stream is between frames.
pub(crate) async fn tunnel(
    client: Upgraded,
    owner: Upgraded,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client_rx, mut client_tx) = tokio::io::split(TokioIo::new(client));
    let (mut owner_rx, mut owner_tx) = tokio::io::split(TokioIo::new(owner));
    let up = async {
        let _ = tokio::io::copy(&mut client_rx, &mut owner_tx).await;
        let _ = owner_tx.shutdown().await;
        // the owner's side still answers (its close frame): the other direction ends the tunnel
        std::future::pending::<()>().await
    };
    let down = async {
        let mut frames = Frames::default();
        let mut buf = vec![0u8; 16 * 1024];
        let (code, reason) = loop {
            tokio::select! {
                read = owner_rx.read(&mut buf) => match read {
                    Ok(0) | Err(_) => break (CLOSE_OWNER_GONE, "the object's host went away; reconnect"),
                    Ok(n) => {
                        frames.feed(&buf[..n]);
                        if client_tx.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                },
                () = super::stopped(&mut stopping) => break (CLOSE_GOING_AWAY, GOING_AWAY_REASON),
            }
        };
        if !frames.closed && frames.between() {
            let _ = client_tx.write_all(&close_frame(code, reason)).await;
        }
        let _ = client_tx.shutdown().await;
    };
    tokio::select! {
        () = down => {}
        () = up => {}
    }
}

/// Where a stream of WebSocket frames stands, read as it passes (RFC 6455 §5.2): whether it is
/// between two frames (where a frame of our own can go in), and whether a close frame passed.
#[derive(Debug, Default)]
struct Frames {
    /// The current frame's header bytes read so far (it is complete at 2 to 14 bytes).
    header: Vec<u8>,
    /// Payload bytes of the current frame still to pass.
    payload: u64,
    /// A close frame passed.
    closed: bool,
    /// A header that is not WebSocket's: where frames begin is unknown from here on.
    lost: bool,
}

impl Frames {
    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && !self.lost {
            if self.payload > 0 {
                let n = self.payload.min(bytes.len() as u64) as usize;
                self.payload -= n as u64;
                bytes = &bytes[n..];
                continue;
            }
            self.header.push(bytes[0]);
            bytes = &bytes[1..];
            match FrameHeader::parse(&mut std::io::Cursor::new(&self.header)) {
                Ok(Some((header, payload))) => {
                    self.closed |= header.opcode == OpCode::Control(Control::Close);
                    self.payload = payload;
                    self.header.clear();
                }
                Ok(None) => {}
                Err(_) => self.lost = true,
            }
        }
    }

    fn between(&self) -> bool {
        !self.lost && self.header.is_empty() && self.payload == 0
    }
}

/// A server's (unmasked) close frame with `code` and `reason` (cut to the 123 bytes a control
/// frame has room for).
fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let close = CloseFrame {
        code: CloseCode::from(code),
        reason: reason[..end].into(),
    };
    let mut frame = Vec::new();
    Frame::close(Some(close))
        .format(&mut frame)
        .expect("a frame is written to memory");
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_followed_across_reads_of_any_size() {
        // a text frame of 3 bytes, a binary frame of 300 (16-bit length), a masked ping of 1
        let mut stream = vec![0x81, 3, b'a', b'b', b'c', 0x82, 126, 1, 44];
        stream.extend(std::iter::repeat_n(7u8, 300));
        stream.extend([0x89, 0x81, 1, 2, 3, 4, 9]);
        for chunk in [1, 2, 5, 64, stream.len()] {
            let mut frames = Frames::default();
            let mut boundaries = 0;
            for piece in stream.chunks(chunk) {
                frames.feed(piece);
                boundaries += usize::from(frames.between());
            }
            assert!(frames.between(), "chunks of {chunk}");
            assert!(!frames.closed);
            assert!(boundaries >= 1);
        }
        let mut frames = Frames::default();
        frames.feed(&stream[..20]);
        assert!(!frames.between(), "inside the binary frame");
        frames.feed(&[]);
        assert!(!frames.between());
    }

    #[test]
    fn a_close_frame_is_noticed_and_ours_is_well_formed() {
        let ours = close_frame(1012, "bye");
        let mut frames = Frames::default();
        frames.feed(&ours[..3]);
        assert!(
            !frames.between() && frames.closed,
            "the header is read first"
        );
        frames.feed(&ours[3..]);
        assert!(frames.between() && frames.closed);
        assert_eq!(&ours[..4], &[0x88, 5, 0x03, 0xf4]);
        // a reason too long for a control frame is cut to fit
        assert_eq!(close_frame(1001, &"x".repeat(200)).len(), 2 + 125);
    }
}
