//! Arbitrary bytes as the frames of an accepted WebSocket (a real host, a real object holding
//! the socket in the hub): whatever the client sends, the host closes or serves that socket and
//! stays up for everyone else.
#![no_main]

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use wasmdo_fuzz::InProcessHost;

fn host() -> &'static InProcessHost {
    InProcessHost::get(&format!(
        "[classes.rooms]\ncomponent = {:?}\n[limits]\nmax-websocket-message-bytes = 65536\n",
        wasmdo_test_artifacts::WEBSOCKETS_BASIC
    ))
}

fuzz_target!(|data: &[u8]| {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let host = host();
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    let mut stream = host.connect();
    let upgrade = format!(
        "GET /objects/rooms/fuzz{}/ws HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        n % 8
    );
    stream
        .write_all(upgrade.as_bytes())
        .expect("write the upgrade");
    // the 101 head
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => panic!(
                "no answer to the upgrade: {}",
                String::from_utf8_lossy(&head)
            ),
        }
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let _ = stream.write_all(data);
    // whatever the host answers (messages, a close frame), until it closes or goes quiet
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let mut sink = [0u8; 4096];
    while let Ok(read) = stream.read(&mut sink) {
        if read == 0 {
            break;
        }
    }
    drop(stream);
    if n % 32 == 0 {
        host.assert_alive();
    }
});
