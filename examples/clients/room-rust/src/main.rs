//! Posts a message to a chat room of the `room` class (examples/room-js) and prints the room's
//! history, through the typed client in `room.rs` (`wasmdo bindgen room --lang rust`): a wrong
//! argument type is a compile error, a method's own error comes back typed.
//!
//! Usage: `room-client <host URL> <room> <author> <text>`

#[rustfmt::skip] // generated: `wasmdo bindgen room --lang rust -o src/room.rs`
mod room;

use room::{Error, Room};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, room_name, author, text] = args.as_slice() else {
        eprintln!("usage: room-client <host URL> <room> <author> <text>");
        std::process::exit(2);
    };
    let rooms = Room::new(url);
    let room = rooms.get(room_name);
    match room.post(author.clone(), text.clone()) {
        Ok(posted) => println!(
            "posted #{} ({} more allowed now)",
            posted.seq, posted.remaining
        ),
        // the room's own error (a thrown JavaScript error): its name and message, typed
        Err(Error::Method(e)) => println!("refused: {}: {}", e.name, e.message),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
    match room.history(Some(10.0)) {
        Ok(messages) => {
            for m in messages {
                println!("#{} {}: {}", m.seq, m.author, m.text);
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
    match room.total() {
        Ok(total) => println!("{total} messages in all rooms"),
        Err(e) => eprintln!("error: {e}"),
    }
}
