//! The HTTP request an object's `fetch` receives and the response it returns
//! (`ANY /objects/{class}/{name}/{path…}` on the host).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::bindings::wasmdo::object::http_types;

/// An HTTP request delivered to [`DurableObject::fetch`](crate::DurableObject::fetch).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// Method, upper case (`GET`, `POST`, …).
    pub method: String,
    /// The full URL as the host saw it, e.g. `http://127.0.0.1:8080/objects/room/a/path?x=1`.
    pub url: String,
    /// The path below the object, starting with `/` (`/path` in the example above).
    pub path: String,
    /// The query string without `?`, empty if none.
    pub query: String,
    /// Headers in arrival order: lowercase name and value.
    pub headers: Vec<(String, String)>,
    /// The request body.
    pub body: Vec<u8>,
}

impl Request {
    /// Whether this is a WebSocket upgrade request (`Upgrade: websocket`), which `fetch` may
    /// accept with [`websockets::accept`](crate::websockets::accept).
    pub fn is_websocket_upgrade(&self) -> bool {
        self.header("upgrade")
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
    }

    /// The value of the first header called `name` (compared case-insensitively), or `None`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text; [`Error::Serialization`] if it is not UTF-8.
    pub fn text(&self) -> Result<&str, Error> {
        std::str::from_utf8(&self.body)
            .map_err(|e| Error::Serialization(format!("request body is not UTF-8: {e}")))
    }

    /// The body parsed as JSON into `T`; [`Error::Serialization`] if it does not parse.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        Ok(serde_json::from_slice(&self.body)?)
    }
}

impl From<http_types::Request> for Request {
    fn from(r: http_types::Request) -> Self {
        Request {
            method: r.method,
            url: r.url,
            path: r.path,
            query: r.query,
            headers: r.headers,
            body: r.body,
        }
    }
}

/// The response [`DurableObject::fetch`](crate::DurableObject::fetch) returns.
///
/// ```
/// use wasmdo::Response;
///
/// let created = Response::text(201, "created").with_header("location", "/items/7");
/// assert_eq!(created.status, 201);
/// assert_eq!(created.body, b"created");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Headers, sent in this order.
    pub headers: Vec<(String, String)>,
    /// The response body.
    pub body: Vec<u8>,
}

impl Response {
    /// An empty response with `status` and no headers.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `101 Switching Protocols`, the answer of a `fetch` that accepted a WebSocket (its headers
    /// go along with the switch; the status and body are the host's).
    pub fn switching_protocols() -> Self {
        Response::new(101)
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Response::new(status)
            .with_header("content-type", "text/plain; charset=utf-8")
            .with_body(body.into())
    }

    /// An `application/json` response holding `value` encoded as JSON;
    /// [`Error::Serialization`] if `value` cannot be encoded (e.g. a map with non-string keys).
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Result<Self, Error> {
        Ok(Response::new(status)
            .with_header("content-type", "application/json")
            .with_body(serde_json::to_vec(value)?))
    }

    /// This response with one more header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// This response with `body` as its body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
}

impl From<Response> for http_types::Response {
    fn from(r: Response) -> Self {
        http_types::Response {
            status: r.status,
            headers: r.headers,
            body: r.body,
        }
    }
}
