//! A chat room over hibernatable WebSockets.
//!
//! - `GET /objects/chatroom/{room}/join?name=ann` upgrades to a WebSocket; the name is kept in the
//!   socket's attachment (it survives hibernation) and the socket is tagged with it.
//! - The newcomer gets the latest messages; everyone gets `joined` / `left` notices.
//! - A text message from a client is stored in SQL and broadcast to every socket as
//!   `{"type":"message","seq":…,"author":…,"text":…}`.
//!
//! The room keeps nothing in memory, so it can hibernate between messages: the host holds the
//! sockets, and each message wakes the room for as long as it takes to store and broadcast it.

use serde::{Deserialize, Serialize};
use wasmdo::websockets::{self, Message, WebSocket};
use wasmdo::{DurableObject, Request, Response, sql};

wasmdo::wit_bindgen::generate!({
    world: "chatroom-object",
    runtime_path: "wasmdo::wit_bindgen::rt",
});

use exports::example::chatroom::chatroom::{Guest, Message as Stored};

/// Longest message kept.
const MAX_TEXT: usize = 2_000;
/// Messages a newcomer is sent.
const BACKLOG: u32 = 20;

struct ChatRoom;

/// What a socket carries across hibernation.
#[derive(Serialize, Deserialize)]
struct Member {
    name: String,
}

/// What clients receive.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Event<'a> {
    History { messages: Vec<Entry> },
    Message(Entry),
    Joined { name: &'a str },
    Left { name: &'a str },
    Error { error: &'a str },
}

#[derive(Serialize, Deserialize)]
struct Entry {
    seq: u64,
    author: String,
    text: String,
}

fn history(limit: u32) -> Result<Vec<Entry>, wasmdo::Error> {
    let mut rows: Vec<Entry> = sql::exec(
        "SELECT seq, author, text FROM messages ORDER BY seq DESC LIMIT ?",
        [i64::from(limit).into()],
    )?
    .deserialize()?;
    rows.reverse();
    Ok(rows)
}

fn send(ws: WebSocket, event: &Event) {
    let text = serde_json::to_string(event).expect("events serialize");
    // a socket that closed meanwhile just misses it
    let _ = ws.send_text(&text);
}

fn broadcast(event: &Event) {
    for ws in websockets::get_websockets(None) {
        send(ws, event);
    }
}

fn member(ws: WebSocket) -> Result<Member, String> {
    ws.attachment::<Member>()
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "a socket without a member".to_string())
}

impl DurableObject for ChatRoom {
    fn init() -> Result<(), String> {
        sql::exec(
            "CREATE TABLE IF NOT EXISTS messages (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                author TEXT NOT NULL,
                text TEXT NOT NULL
            )",
            [],
        )?;
        Ok(())
    }

    fn fetch(req: Request) -> Result<Response, String> {
        if req.path != "/join" {
            return Ok(Response::text(404, "join at /join?name=<your name>"));
        }
        if !req.is_websocket_upgrade() {
            return Ok(Response::text(426, "/join is a WebSocket"));
        }
        let name = req
            .query
            .split('&')
            .find_map(|p| p.strip_prefix("name="))
            .unwrap_or("")
            .to_string();
        if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_') {
            return Ok(Response::text(400, "a name of 1–64 letters, digits, - or _"));
        }
        let ws = websockets::accept(&[&format!("name:{name}")]).map_err(|e| format!("{e:?}"))?;
        ws.set_attachment(&Member { name: name.clone() })?;
        send(ws, &Event::History { messages: history(BACKLOG)? });
        broadcast(&Event::Joined { name: &name });
        Ok(Response::switching_protocols())
    }

    fn websocket_message(ws: WebSocket, message: Message) -> Result<(), String> {
        let Message::Text(text) = message else {
            send(ws, &Event::Error { error: "send text" });
            return Ok(());
        };
        if text.is_empty() || text.len() > MAX_TEXT {
            send(ws, &Event::Error { error: "a message is 1–2000 bytes" });
            return Ok(());
        }
        let author = member(ws)?.name;
        let seq: u64 = sql::exec(
            "INSERT INTO messages (author, text) VALUES (?, ?) RETURNING seq",
            [author.clone().into(), text.clone().into()],
        )?
        .one()?
        .get(0)?;
        broadcast(&Event::Message(Entry { seq, author, text }));
        Ok(())
    }

    fn websocket_close(ws: WebSocket, _code: u16, _reason: String, _clean: bool) -> Result<(), String> {
        let name = member(ws)?.name;
        broadcast(&Event::Left { name: &name });
        Ok(())
    }
}

impl Guest for ChatRoom {
    fn history(limit: u32) -> Vec<Stored> {
        history(limit)
            .expect("the message log is readable")
            .into_iter()
            .map(|e| Stored {
                seq: e.seq,
                author: e.author,
                text: e.text,
            })
            .collect()
    }

    fn online() -> Vec<String> {
        let mut names: Vec<String> = websockets::get_websockets(None)
            .into_iter()
            .filter_map(|ws| member(ws).ok().map(|m| m.name))
            .collect();
        names.sort();
        names
    }
}

wasmdo::export_object!(ChatRoom);
export!(ChatRoom);
