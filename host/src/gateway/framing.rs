//! A second reading of every request's framing, beside hyper's, to refuse the shape request
//! smuggling uses: a head with both `Content-Length` and `Transfer-Encoding`. hyper reads such a
//! body as chunked and closes the connection after it (RFC 9112 §6.1 allows that), but it drops
//! the `Content-Length` before the service sees the request, so only the bytes can tell. A proxy
//! in front may have read the same bytes the other way; refusing (400) is what such a proxy's
//! operator expects.
//!
//! [`FramingWatch`] wraps a connection's socket and follows the request stream as hyper reads
//! it — heads, `Content-Length` bodies, chunked bodies — queueing one verdict per head. The
//! service takes them in order ([`Verdicts::next`]). Whatever it cannot follow (an upgrade, a
//! `CONNECT`, a head it cannot parse, one hyper will refuse anyway) ends the watch: no verdicts,
//! nothing refused, so a misreading can only ever let a request through, never refuse a good one.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest request head followed; a longer one ends the watch (hyper refuses it anyway).
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Headers per head followed (hyper's own limit).
const MAX_HEADERS: usize = 100;

/// The verdicts of one connection's requests, in order: `true` for a head with both lengths.
#[derive(Clone, Default)]
pub(crate) struct Verdicts(Arc<Mutex<VecDeque<bool>>>);

impl Verdicts {
    /// Whether the next request (in the connection's order) has both lengths; `false` when the
    /// watch has ended.
    pub(crate) fn next(&self) -> bool {
        self.0
            .lock()
            .expect("verdicts lock")
            .pop_front()
            .unwrap_or(false)
    }

    fn push(&self, both: bool) {
        self.0.lock().expect("verdicts lock").push_back(both);
    }
}

/// Where in the request stream the watch is.
#[derive(Debug, PartialEq)]
enum State {
    /// Reading a head (the bytes so far).
    Head(Vec<u8>),
    /// Inside a `Content-Length` body: bytes left.
    Body(u64),
    /// Reading a chunk-size line (the bytes so far).
    ChunkSize(Vec<u8>),
    /// Inside a chunk: its bytes and the CRLF after them, left.
    ChunkData(u64),
    /// Reading the trailer section after the last chunk (the bytes so far).
    Trailers(Vec<u8>),
    /// No longer followed.
    Done,
}

/// Follows a request stream fed to it in pieces.
pub(crate) struct Tracker {
    state: State,
    verdicts: Verdicts,
}

impl Tracker {
    pub(crate) fn new(verdicts: Verdicts) -> Tracker {
        Tracker {
            state: State::Head(Vec::new()),
            verdicts,
        }
    }

    /// Takes the next bytes of the stream.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            bytes = match std::mem::replace(&mut self.state, State::Done) {
                State::Done => return,
                State::Head(mut head) => {
                    // a request may be preceded by empty lines (RFC 9112 §2.2)
                    if head.is_empty() {
                        let start = bytes
                            .iter()
                            .position(|b| !matches!(b, b'\r' | b'\n'))
                            .unwrap_or(bytes.len());
                        bytes = &bytes[start..];
                        if bytes.is_empty() {
                            self.state = State::Head(head);
                            return;
                        }
                    }
                    // the common case: a whole head in one read, parsed where it lies
                    if head.is_empty()
                        && let Some(end) = find(bytes, b"\r\n\r\n")
                    {
                        self.state = self.after_head(&bytes[..end + 4]);
                        bytes = &bytes[end + 4..];
                        continue;
                    }
                    let before = head.len();
                    head.extend_from_slice(bytes);
                    match find(&head, b"\r\n\r\n") {
                        Some(end) => {
                            let rest = &bytes[end + 4 - before..];
                            head.truncate(end + 4);
                            self.state = self.after_head(&head);
                            rest
                        }
                        None if head.len() > MAX_HEAD_BYTES => return,
                        None => {
                            self.state = State::Head(head);
                            return;
                        }
                    }
                }
                State::Body(left) => {
                    let take = left.min(bytes.len() as u64);
                    self.state = match left - take {
                        0 => State::Head(Vec::new()),
                        left => State::Body(left),
                    };
                    &bytes[take as usize..]
                }
                State::ChunkSize(mut line) => {
                    let before = line.len();
                    line.extend_from_slice(bytes);
                    let Some(end) = find(&line, b"\r\n") else {
                        if line.len() <= MAX_HEAD_BYTES {
                            self.state = State::ChunkSize(line);
                        }
                        return;
                    };
                    let rest = &bytes[end + 2 - before..];
                    line.truncate(end + 2);
                    match httparse::parse_chunk_size(&line) {
                        Ok(httparse::Status::Complete((_, 0))) => {
                            self.state = State::Trailers(Vec::new());
                        }
                        Ok(httparse::Status::Complete((_, size))) => {
                            self.state = State::ChunkData(size.saturating_add(2));
                        }
                        _ => return,
                    }
                    rest
                }
                State::ChunkData(left) => {
                    let take = left.min(bytes.len() as u64);
                    self.state = match left - take {
                        0 => State::ChunkSize(Vec::new()),
                        left => State::ChunkData(left),
                    };
                    &bytes[take as usize..]
                }
                State::Trailers(mut trailers) => {
                    let before = trailers.len();
                    trailers.extend_from_slice(bytes);
                    let end = match trailers.starts_with(b"\r\n") {
                        true => Some(2),
                        false => find(&trailers, b"\r\n\r\n").map(|at| at + 4),
                    };
                    match end {
                        Some(end) => {
                            self.state = State::Head(Vec::new());
                            &bytes[end - before..]
                        }
                        None if trailers.len() > MAX_HEAD_BYTES => return,
                        None => {
                            self.state = State::Trailers(trailers);
                            return;
                        }
                    }
                }
            };
        }
    }

    /// The verdict on a whole head, and where its body leaves the stream.
    fn after_head(&self, head: &[u8]) -> State {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        let Ok(httparse::Status::Complete(_)) = request.parse(head) else {
            return State::Done; // hyper refuses it, or reads it in a way this does not follow
        };
        let mut lengths = request
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("content-length"));
        let length = lengths.next().map(|h| h.value);
        let same_lengths = lengths.all(|h| Some(h.value) == length);
        let last_encoding = request
            .headers
            .iter()
            .rfind(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
            .map(|h| h.value);
        let upgrade = request
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("upgrade"));
        let both = length.is_some() && last_encoding.is_some();
        self.verdicts.push(both);
        if both || upgrade || request.method == Some("CONNECT") || !same_lengths {
            // refused, switched to another protocol, or refused by hyper: nothing more to read
            return State::Done;
        }
        if let Some(last) = last_encoding {
            let chunked = last
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            return match chunked {
                true => State::ChunkSize(Vec::new()),
                false => State::Done,
            };
        }
        match length.map(|l| std::str::from_utf8(l).ok()?.trim().parse::<u64>().ok()) {
            None => State::Head(Vec::new()),
            Some(Some(0)) => State::Head(Vec::new()),
            Some(Some(n)) => State::Body(n),
            Some(None) => State::Done,
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A socket whose incoming bytes a [`Tracker`] follows.
pub(crate) struct FramingWatch<T> {
    inner: T,
    tracker: Tracker,
}

impl<T> FramingWatch<T> {
    pub(crate) fn new(inner: T, verdicts: Verdicts) -> FramingWatch<T> {
        FramingWatch {
            inner,
            tracker: Tracker::new(verdicts),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FramingWatch<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && this.tracker.state != State::Done
        {
            this.tracker.feed(&buf.filled()[before..]);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FramingWatch<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verdicts for a stream fed in pieces of `step` bytes.
    fn verdicts(stream: &[u8], step: usize) -> Vec<bool> {
        let verdicts = Verdicts::default();
        let mut tracker = Tracker::new(verdicts.clone());
        for piece in stream.chunks(step) {
            tracker.feed(piece);
        }
        let all: Vec<bool> = verdicts.0.lock().unwrap().iter().copied().collect();
        all
    }

    #[test]
    fn follows_lengths_chunks_and_pipelined_heads_whatever_the_pieces() {
        // a body that looks like a request with both lengths: it is only a body
        let inner = "POST /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\nx";
        let stream = format!(
            "\r\nGET /a HTTP/1.1\r\nHost: a\r\n\r\n\
POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\
POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n\
POST /d HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n\
POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{inner}\
PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            inner.len()
        );
        let stream = stream.as_bytes();
        for step in [1, 2, 3, 7, 64, stream.len()] {
            assert_eq!(
                verdicts(stream, step),
                [false, false, false, false, false, true],
                "pieces of {step}"
            );
        }
    }

    #[test]
    fn stops_where_it_cannot_follow() {
        // an upgrade: what follows is not HTTP
        let upgrade = b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n\x81\x85PUT / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(verdicts(upgrade, 5), [false]);
        // a coding hyper refuses, and conflicting lengths
        let gzip = b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        assert_eq!(verdicts(gzip, 9), [false]);
        let two = b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nabGET / HTTP/1.1\r\n\r\n";
        assert_eq!(verdicts(two, 9), [false]);
        // garbage
        assert_eq!(
            verdicts(b"\x16\x03\x01\x02\x00\r\n\r\nGET / HTTP/1.1\r\n\r\n", 4),
            Vec::<bool>::new()
        );
        // the queue is empty: nothing is refused
        assert!(!Verdicts::default().next());
    }
}
