//! HTTP load from keep-alive connections, and latency samples with their percentiles. Shared by
//! the bench binaries.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Latency samples, sorted.
pub(crate) struct Stats {
    pub(crate) samples: Vec<Duration>,
}

impl Stats {
    pub(crate) fn new(mut samples: Vec<Duration>) -> Stats {
        samples.sort();
        Stats { samples }
    }

    /// The `p` quantile (0.5: the median), nearest rank.
    pub(crate) fn pct(&self, p: f64) -> Duration {
        let i = ((self.samples.len() as f64 - 1.0) * p).round() as usize;
        self.samples[i]
    }
}

/// The path of the i-th request of a load.
pub(crate) type Paths = Arc<dyn Fn(usize) -> String + Send + Sync>;

/// A browser's request headers (Chromium's, for a `fetch` from a page), besides `host`.
#[allow(dead_code)] // not every bench binary sends them
pub(crate) const BROWSER_HEADERS: &[(&str, &str)] = &[
    ("accept", "*/*"),
    ("accept-language", "en-US,en;q=0.9"),
    ("accept-encoding", "gzip, deflate, br, zstd"),
    (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    ),
    (
        "sec-ch-ua",
        "\"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\"",
    ),
    ("sec-ch-ua-mobile", "?0"),
    ("sec-ch-ua-platform", "\"Linux\""),
    ("sec-fetch-dest", "empty"),
    ("sec-fetch-mode", "cors"),
    ("sec-fetch-site", "same-origin"),
    ("referer", "http://bench/"),
    ("cookie", "session=5f2b9c1e8a7d4e3f; theme=dark"),
];

/// `connections` keep-alive connections, each sending requests back to back until `duration`
/// has passed: `POST body` when there is one, else `GET`; `path(i)` gives the path of the i-th
/// request overall. Every answer must be a success. Returns requests/s and the latencies.
#[allow(dead_code)] // not every bench binary calls it
pub(crate) async fn http_load(
    addr: SocketAddr,
    path: Paths,
    body: Option<&'static str>,
    connections: usize,
    duration: Duration,
) -> (f64, Stats) {
    http_load_with(addr, path, body, &[], connections, duration).await
}

/// [`http_load`], each request with `headers` besides `host`.
pub(crate) async fn http_load_with(
    addr: SocketAddr,
    path: Paths,
    body: Option<&'static str>,
    headers: &'static [(&'static str, &'static str)],
    connections: usize,
    duration: Duration,
) -> (f64, Stats) {
    let deadline = Instant::now() + duration;
    let counter = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (path, counter) = (path.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .expect("handshake");
            tokio::spawn(conn);
            let mut samples = Vec::new();
            while Instant::now() < deadline {
                let uri = path(counter.fetch_add(1, Ordering::Relaxed));
                let mut request = match body {
                    Some(_) => Request::post(uri),
                    None => Request::get(uri),
                }
                .header("host", "bench");
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
                let request = request
                    .body(Full::new(Bytes::from_static(body.unwrap_or("").as_bytes())))
                    .expect("request");
                let start = Instant::now();
                let response = sender.send_request(request).await.expect("response");
                let status = response.status();
                let body = response.into_body().collect().await.expect("body");
                assert!(status.is_success(), "{status}: {:?}", body.to_bytes());
                samples.push(start.elapsed());
            }
            samples
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("client task"));
    }
    (all.len() as f64 / duration.as_secs_f64(), Stats::new(all))
}
