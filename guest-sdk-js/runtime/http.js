// Requests and responses between the host's records (`wasmdo:object/http-types`) and the Web
// platform's `Request`/`Response`, both ways: what a handler's `fetch` receives and returns, and
// what `stub.fetch` sends and gets back.
//
// The platform's `Request` drops the headers the Fetch standard forbids scripts to set
// (`upgrade`, `connection`, `sec-websocket-*`, …), but on Cloudflare code sees and forwards them
// (a Worker passes `upgrade: websocket` on to an object, also as `new Request(url, request)`):
// so the global `Request` here keeps every header given to it in its own `headers`, and
// `stub.fetch` sends those.
//
// Heads cross packed (`wasmdo:object/packed-http-types`): lines joined by "\n", the request's
// method, URL, path and query, then each header's name and value. Every string the generated
// bindings carry across costs tens of thousands of fuel; one string splits natively. And a
// `Headers` costs ~11K fuel per header to build (~16K more to copy into a platform `Request`),
// so a request without a body gets its `headers` only when the code first reads them (a Worker
// passing the request on with `stub.fetch(request)` sends the packed lines as they came).

import { ForwardedWebSocket, PlatformResponse } from "./websockets.js";

export const PlatformRequest = globalThis.Request;

/** Marks a `Request` init whose `headers` the request may keep as its own: made for it alone. */
const ADOPT = Symbol("adopt headers");
/**
 * A request's header lines, packed as they came from the host, while its `headers` are not made
 * yet (then nothing can have changed them); also the `Request` init that asks for this.
 */
const PACKED = Symbol("packed headers");

/** Installs the global `Request` that keeps every header (see above). */
export function installRequest() {
  class Request extends PlatformRequest {
    constructor(input, init) {
      super(input, init);
      let headers = null;
      if (init?.[PACKED] !== undefined) return lazyHeaders(this, init[PACKED]);
      if (init?.[ADOPT] === true) headers = init.headers;
      else if (init?.headers !== undefined) headers = new Headers(init.headers);
      else if (input?.[PACKED] !== undefined) return lazyHeaders(this, input[PACKED]);
      else if (input instanceof PlatformRequest) headers = new Headers(input.headers);
      if (headers) withHeaders(this, headers);
    }

    // the platform's copy has the platform's headers alone
    clone() {
      const copy = super.clone();
      if (this[PACKED] !== undefined) return lazyHeaders(copy, this[PACKED]);
      return withHeaders(copy, new Headers(this.headers));
    }
  }
  globalThis.Request = Request;
}

/** `request` with `headers` made from the packed lines `packed` when first read. */
function lazyHeaders(request, packed) {
  request[PACKED] = packed;
  Object.defineProperty(request, "headers", {
    configurable: true,
    get() {
      const headers = unpackHeaders(packed);
      this[PACKED] = undefined;
      return withHeaders(this, headers).headers;
    },
  });
  return request;
}

function typeName(v) {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return typeof v === "object" ? `a ${v.constructor?.name ?? "object"}` : `a ${typeof v}`;
}

function hasBody(method) {
  return method !== "GET" && method !== "HEAD";
}

/** `message` (a Request or Response) with `headers` as its own property: every header kept. */
function withHeaders(message, headers) {
  Object.defineProperty(message, "headers", { value: headers, configurable: true });
  return message;
}

/**
 * The host's request record as a `Request` for `url`, with every header the host received. A
 * packed record's headers (a string) are made when first read, unless the request has a body
 * (the platform's `formData()` and `blob()` read its `content-type`).
 */
export function toRequest(record, url) {
  const body = hasBody(record.method) && record.body.length > 0 ? record.body : undefined;
  if (typeof record.headers !== "string") {
    return new Request(url, { method: record.method, headers: record.headers, body });
  }
  if (body === undefined) return new Request(url, { method: record.method, [PACKED]: record.headers });
  const headers = unpackHeaders(record.headers);
  return new Request(url, { method: record.method, headers, body, [ADOPT]: true });
}

/** Packed header lines, a name and a value each two, as Headers. */
function unpackHeaders(packed) {
  const headers = new Headers();
  if (packed === "") return headers;
  const lines = packed.split("\n");
  for (let i = 0; i + 1 < lines.length; i += 2) headers.append(lines[i], lines[i + 1]);
  return headers;
}

/** `headers` packed: each name and value a line. */
function packHeaders(headers) {
  let packed = "";
  for (const [name, value] of headers) packed += packed === "" ? `${name}\n${value}` : `\n${name}\n${value}`;
  return packed;
}

/** The host's packed request as its request record, its headers still packed (for `toRequest`). */
export function unpackRequest(packed) {
  const head = packed.head;
  const a = head.indexOf("\n");
  const b = head.indexOf("\n", a + 1);
  const c = head.indexOf("\n", b + 1);
  const d = head.indexOf("\n", c + 1);
  return {
    method: head.slice(0, a),
    url: head.slice(a + 1, b),
    path: head.slice(b + 1, c),
    query: d < 0 ? head.slice(c + 1) : head.slice(c + 1, d),
    headers: d < 0 ? "" : head.slice(d + 1),
    body: packed.body,
  };
}

/** A request record (its headers a Headers, or lines already packed) packed for the host (`packed-objects.fetch`). */
export function packRequest(record) {
  const headers = typeof record.headers === "string" ? record.headers : packHeaders(record.headers);
  const head = `${record.method}\n${record.url}\n${record.path}\n${record.query}`;
  return { head: headers === "" ? head : `${head}\n${headers}`, body: record.body };
}

/**
 * A handler's `Response` as the host's response record; `who` names the handler in the error
 * for anything else. A 101 carries no body: the host switches the client's connection over.
 */
export function toResponseRecord(response, who) {
  return responseRecord(response, who, (headers) => [...headers]);
}

/** `toResponseRecord`, its headers packed (`packed-handler.fetch`). */
export function toPackedResponse(response, who) {
  return responseRecord(response, who, packHeaders);
}

/** A response record of `response`, its headers as `encode` gives them. */
async function responseRecord(response, who, encode) {
  // (Response.json() and friends make the platform's Response, not the SDK's subclass)
  if (!(response instanceof PlatformResponse)) {
    throw new TypeError(`${who} returned ${typeName(response)}, not a Response`);
  }
  const headers = encode(response.headers);
  if (response.status === 101) return { status: 101, headers, body: new Uint8Array() };
  return { status: response.status, headers, body: new Uint8Array(await response.arrayBuffer()) };
}

/**
 * `stub.fetch(input, init)`'s request as the host's request record (its headers a Headers, for
 * `packRequest`): what `new Request(input, init)` makes, every header kept (the upgrade request
 * a Worker received keeps its `upgrade`).
 * The URL must be absolute; `path` and `query` are its pathname and search.
 */
export async function toRequestRecord(input, init) {
  const given = input instanceof PlatformRequest ? input.url : String(input);
  let url;
  try {
    url = new URL(given);
  } catch {
    throw new TypeError(`stub.fetch: ${JSON.stringify(given)} is not an absolute URL; give one such as "https://object${given.startsWith("/") ? given : "/"}"`);
  }
  const request = new Request(input, init);
  return {
    method: request.method,
    url: url.href,
    path: url.pathname,
    query: url.search.slice(1),
    // a request passed on as it came (`stub.fetch(request)`): its lines as they came
    headers: request[PACKED] ?? request.headers,
    body: hasBody(request.method) ? new Uint8Array(await request.arrayBuffer()) : new Uint8Array(),
  };
}

/** Statuses whose response has no body (the platform's Response refuses one). */
const NULL_BODY = new Set([204, 205, 304]);

/**
 * The host's packed response (`stub.fetch`'s answer) as a `Response` with every header. A 101
 * (the callee accepted the WebSocket upgrade passed to it) has `webSocket`: return it in a 101
 * of your own and the client is connected to the callee.
 */
export function fromPackedResponse(packed) {
  const headers = unpackHeaders(packed.headers);
  if (packed.status === 101) {
    return withHeaders(new Response(null, { status: 101, webSocket: new ForwardedWebSocket() }), headers);
  }
  const body = NULL_BODY.has(packed.status) || packed.body.length === 0 ? null : new Uint8Array(packed.body);
  return withHeaders(new Response(body, { status: packed.status, headers }), headers);
}
