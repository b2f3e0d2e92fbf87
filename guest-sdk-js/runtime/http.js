// Requests and responses between the host's records (`wasmdo:object/http-types`) and the Web
// platform's `Request`/`Response`, both ways: what a handler's `fetch` receives and returns, and
// what `stub.fetch` sends and gets back.
//
// The platform's `Request` drops the headers the Fetch standard forbids scripts to set
// (`upgrade`, `connection`, `sec-websocket-*`, …), but on Cloudflare code sees and forwards them
// (a Worker passes `upgrade: websocket` on to an object, also as `new Request(url, request)`):
// so the global `Request` here keeps every header given to it in its own `headers`, and
// `stub.fetch` sends those.

import { ForwardedWebSocket, PlatformResponse } from "./websockets.js";

export const PlatformRequest = globalThis.Request;

/** Installs the global `Request` that keeps every header (see above). */
export function installRequest() {
  class Request extends PlatformRequest {
    constructor(input, init) {
      super(input, init);
      let headers = null;
      if (init?.headers !== undefined) headers = new Headers(init.headers);
      else if (input instanceof PlatformRequest) headers = new Headers(input.headers);
      if (headers) withHeaders(this, headers);
    }
  }
  globalThis.Request = Request;
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

/** The host's request record as a `Request` for `url`, with every header the host received. */
export function toRequest(record, url) {
  return new Request(url, {
    method: record.method,
    headers: record.headers,
    body: hasBody(record.method) && record.body.length > 0 ? record.body : undefined,
  });
}

/**
 * A handler's `Response` as the host's response record; `who` names the handler in the error
 * for anything else. A 101 carries no body: the host switches the client's connection over.
 */
export async function toResponseRecord(response, who) {
  // (Response.json() and friends make the platform's Response, not the SDK's subclass)
  if (!(response instanceof PlatformResponse)) {
    throw new TypeError(`${who} returned ${typeName(response)}, not a Response`);
  }
  if (response.status === 101) return { status: 101, headers: [...response.headers], body: new Uint8Array() };
  const body = new Uint8Array(await response.arrayBuffer());
  return { status: response.status, headers: [...response.headers], body };
}

/**
 * `stub.fetch(input, init)`'s request as the host's request record: what `new Request(input,
 * init)` makes, every header kept (the upgrade request a Worker received keeps its `upgrade`).
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
    headers: [...request.headers],
    body: hasBody(request.method) ? new Uint8Array(await request.arrayBuffer()) : new Uint8Array(),
  };
}

/** Statuses whose response has no body (the platform's Response refuses one). */
const NULL_BODY = new Set([204, 205, 304]);

/**
 * The host's response record (`stub.fetch`'s answer) as a `Response` with every header. A 101
 * (the callee accepted the WebSocket upgrade passed to it) has `webSocket`: return it in a 101
 * of your own and the client is connected to the callee.
 */
export function fromResponseRecord(record) {
  const headers = new Headers(record.headers);
  if (record.status === 101) {
    return withHeaders(new Response(null, { status: 101, webSocket: new ForwardedWebSocket() }), headers);
  }
  const body = NULL_BODY.has(record.status) || record.body.length === 0 ? null : new Uint8Array(record.body);
  return withHeaders(new Response(body, { status: record.status, headers }), headers);
}
