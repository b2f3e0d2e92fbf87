//! HTTP heads packed into one string (`wasmdo:object/packed-http-types`), both ways: what the
//! host hands a component's `packed-handler.fetch` and takes back from it, and what
//! `packed-objects.fetch` (a JavaScript `stub.fetch`) sends and gets back.
//!
//! A head is lines joined by `\n`: the request's method, URL, path and query, then each
//! header's name and value; a response's headers alone. Nothing else changes: the records are
//! `http-types`' with fewer strings, because each string crossing into a componentize-js
//! component costs tens of thousands of fuel (docs/BENCHMARKS.md, "The Worker route, where its
//! time goes").

use crate::bindings::http_types::{Request, Response};
use crate::bindings::packed_http_types::{PackedRequest, PackedResponse};

/// The lines of a request's head before its headers: method, URL, path, query.
const REQUEST_LINES: usize = 4;

/// Whether `request`'s head packs: no field holds a newline, which no line can (a request that
/// does not goes to the component's `handler.fetch`, unpacked).
pub(crate) fn packs(request: &Request) -> bool {
    let fields = [&request.method, &request.url, &request.path, &request.query];
    !fields.iter().any(|f| f.contains('\n')) && header_with_newline(&request.headers).is_none()
}

/// `request` with its head packed; only for a request that [`packs`].
pub(crate) fn pack_request(request: Request) -> PackedRequest {
    debug_assert!(packs(&request), "a head with a newline does not pack");
    let fields = [&request.method, &request.url, &request.path, &request.query];
    let lines = fields
        .map(String::as_str)
        .into_iter()
        .chain(header_lines(&request.headers));
    PackedRequest {
        head: lines.collect::<Vec<_>>().join("\n"),
        body: request.body,
    }
}

/// A guest's packed request as the host's; `Err` says what is wrong with its head.
pub(crate) fn unpack_request(packed: PackedRequest) -> Result<Request, String> {
    let mut lines = packed.head.split('\n');
    let mut field = || lines.next().map(str::to_string);
    let (Some(method), Some(url), Some(path), Some(query)) = (field(), field(), field(), field())
    else {
        return Err(format!(
            "a packed request's head has {REQUEST_LINES} lines before its headers (method, URL, path, query); this one has {}",
            packed.head.split('\n').count()
        ));
    };
    let headers = pairs(lines)?;
    Ok(Request {
        method,
        url,
        path,
        query,
        headers,
        body: packed.body,
    })
}

/// `response` with its headers packed; `Err` names a header that holds a newline, which no
/// line (and no `Headers` of the Web platform) can.
pub(crate) fn pack_response(response: Response) -> Result<PackedResponse, String> {
    if let Some(name) = header_with_newline(&response.headers) {
        return Err(format!(
            "the response's header {name:?} holds a newline, which a header cannot"
        ));
    }
    Ok(PackedResponse {
        status: response.status,
        headers: header_lines(&response.headers)
            .collect::<Vec<_>>()
            .join("\n"),
        body: response.body,
    })
}

/// A guest's packed response as the host's; `Err` says what is wrong with its headers.
pub(crate) fn unpack_response(packed: PackedResponse) -> Result<Response, String> {
    let headers = if packed.headers.is_empty() {
        Vec::new()
    } else {
        pairs(packed.headers.split('\n'))?
    };
    Ok(Response {
        status: packed.status,
        headers,
        body: packed.body,
    })
}

/// The name of the first header whose name or value holds a newline, if any.
fn header_with_newline(headers: &[(String, String)]) -> Option<&str> {
    headers
        .iter()
        .find(|(name, value)| name.contains('\n') || value.contains('\n'))
        .map(|(name, _)| name.as_str())
}

/// Each header's name and value, as lines.
fn header_lines(headers: &[(String, String)]) -> impl Iterator<Item = &str> {
    headers
        .iter()
        .flat_map(|(name, value)| [name.as_str(), value.as_str()])
}

/// Lines taken two at a time as headers.
fn pairs<'a>(mut lines: impl Iterator<Item = &'a str>) -> Result<Vec<(String, String)>, String> {
    let mut headers = Vec::new();
    while let Some(name) = lines.next() {
        let Some(value) = lines.next() else {
            return Err(format!(
                "the packed header {name:?} has no value line (a head holds a name and a value for each header)"
            ));
        };
        headers.push((name.to_string(), value.to_string()));
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request {
        Request {
            method: "POST".into(),
            url: "http://h/objects/Room/a/x?y=1".into(),
            path: "/x".into(),
            query: "y=1".into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: b"body".to_vec(),
        }
    }

    #[test]
    fn a_request_packs_into_lines_and_unpacks_to_itself() {
        for headers in [
            &[][..],
            &[("accept", "*/*")],
            &[("x-empty", ""), ("cookie", "a=1; b=2"), ("x-colon", "a:b")],
        ] {
            let packed = pack_request(request(headers));
            assert_eq!(packed.body, b"body");
            let back = unpack_request(packed).unwrap();
            assert_eq!(back.headers, request(headers).headers);
            assert_eq!(
                (back.method, back.url, back.path, back.query),
                (
                    "POST".into(),
                    "http://h/objects/Room/a/x?y=1".into(),
                    "/x".into(),
                    "y=1".into()
                )
            );
        }
        let packed = pack_request(request(&[("accept", "*/*")]));
        assert_eq!(
            packed.head,
            "POST\nhttp://h/objects/Room/a/x?y=1\n/x\ny=1\naccept\n*/*"
        );
        let empty_query = Request {
            query: String::new(),
            ..request(&[])
        };
        let packed = pack_request(empty_query);
        assert_eq!(packed.head, "POST\nhttp://h/objects/Room/a/x?y=1\n/x\n");
        assert_eq!(unpack_request(packed).unwrap().query, "");
    }

    #[test]
    fn a_request_with_a_newline_does_not_pack() {
        assert!(packs(&request(&[("x", "a b")])));
        assert!(!packs(&request(&[("x", "a\nb")])));
        assert!(!packs(&request(&[("x\ny", "a")])));
        let bad = Request {
            path: "/a\nb".into(),
            ..request(&[])
        };
        assert!(!packs(&bad));
    }

    #[test]
    fn a_malformed_packed_request_is_refused_with_its_reason() {
        let short = PackedRequest {
            head: "GET\nhttp://h/".into(),
            body: vec![],
        };
        assert!(
            unpack_request(short)
                .unwrap_err()
                .contains("this one has 2")
        );
        let odd = PackedRequest {
            head: "GET\nhttp://h/\n/\n\naccept".into(),
            body: vec![],
        };
        assert!(
            unpack_request(odd)
                .unwrap_err()
                .contains("\"accept\" has no value")
        );
    }

    #[test]
    fn a_response_packs_and_unpacks_and_refuses_a_newline() {
        let response = Response {
            status: 201,
            headers: vec![
                ("content-type".into(), "text/plain".into()),
                ("x".into(), "".into()),
            ],
            body: b"hi".to_vec(),
        };
        let packed = pack_response(response.clone()).unwrap();
        assert_eq!(packed.headers, "content-type\ntext/plain\nx\n");
        let back = unpack_response(packed).unwrap();
        assert_eq!(
            (back.status, back.headers, back.body),
            (201, response.headers, response.body)
        );
        let none = PackedResponse {
            status: 204,
            headers: String::new(),
            body: vec![],
        };
        assert!(unpack_response(none).unwrap().headers.is_empty());
        let bad = Response {
            status: 200,
            headers: vec![("x".into(), "a\nb".into())],
            body: vec![],
        };
        assert!(
            pack_response(bad)
                .unwrap_err()
                .contains("\"x\" holds a newline")
        );
        let odd = PackedResponse {
            status: 200,
            headers: "content-type".into(),
            body: vec![],
        };
        assert!(unpack_response(odd).is_err());
    }
}
