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
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
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
