// Cloudflare's WebSocket Hibernation API over the host's `websockets` interface: the host holds
// the connections, so they stay open while the object sleeps.
//
//   async fetch(request) {
//     const [client, server] = Object.values(new WebSocketPair());
//     this.ctx.acceptWebSocket(server, ["room:lobby"]);
//     return new Response(null, { status: 101, webSocket: client });
//   }
//   async webSocketMessage(ws, message) { ws.send(`echo: ${message}`); }
//
// A WebSocket here is a handle on a host socket id: the same id always gives the same object in
// one instance, and after hibernation `ctx.getWebSockets()` gives handles on the same sockets.
// Event-style listeners (`addEventListener("message")`) are not supported: messages arrive at
// the class's `webSocketMessage`, which is what lets the object hibernate.

import {
  accept,
  sockets,
  tags as hostTags,
  send as hostSend,
  close as hostClose,
  setAttachment,
  attachment,
  setAutoResponse,
} from "wasmdo:object/websockets@0.1.0";

import { serialize, deserialize } from "./values.js";

/** A WebSocket call the host refused: `code` is the WIT error case (`unknown-socket`, …). */
export class WebSocketError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "WebSocketError";
    this.code = code;
  }
}

function call(f, ...args) {
  try {
    return f(...args);
  } catch (e) {
    const p = e?.payload;
    if (p && typeof p.tag === "string") {
      const detail = p.val === undefined ? "" : typeof p.val === "object" ? "" : `: ${p.val}`;
      const messages = {
        "not-upgrade": () => String(p.val),
        "unknown-socket": () => `the WebSocket ${p.val} is closed`,
        "too-many-sockets": () => `the object already holds ${p.val} WebSockets, the limit`,
        "invalid-tags": () => `invalid tags: ${p.val}`,
        "attachment-too-large": () => `the attachment is over the ${p.val}-byte limit`,
        "message-too-large": () => `the message is over the ${p.val}-byte limit`,
        "invalid-close": () => String(p.val),
      };
      throw new WebSocketError(p.tag, (messages[p.tag] ?? (() => `${p.tag}${detail}`))());
    }
    throw e;
  }
}

const handles = new Map();

/** The handle on host socket `id` (one per id). */
export function webSocket(id) {
  let ws = handles.get(id);
  if (!ws) {
    ws = new WebSocket(id);
    handles.set(id, ws);
  }
  return ws;
}

/** Forgets the handle of a socket that closed. */
export function forgetWebSocket(id) {
  handles.delete(id);
}

/** The server end of a WebSocketPair, or a socket the object holds. */
export class WebSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;

  #id;
  constructor(id = null) {
    this.#id = id;
  }

  /** @internal the host socket id, once accepted */
  get _id() {
    if (this.#id === null) throw new WebSocketError("not-accepted", "this WebSocket was not accepted: call ctx.acceptWebSocket(ws) first");
    return this.#id;
  }

  /** @internal */
  _bind(id) {
    this.#id = id;
    handles.set(id, this);
  }

  get readyState() {
    return this.#id === null ? WebSocket.CONNECTING : WebSocket.OPEN;
  }

  send(message) {
    let m;
    if (typeof message === "string") m = { tag: "text", val: message };
    else if (message instanceof ArrayBuffer) m = { tag: "binary", val: new Uint8Array(message) };
    else if (ArrayBuffer.isView(message)) m = { tag: "binary", val: new Uint8Array(message.buffer, message.byteOffset, message.byteLength) };
    else m = { tag: "text", val: String(message) };
    call(hostSend, this._id, m);
  }

  close(code = 1000, reason = "") {
    call(hostClose, this._id, code, reason);
  }

  /** Keeps `value` with the socket (structured-clone-able, at most 2,048 bytes encoded). */
  serializeAttachment(value) {
    call(setAttachment, this._id, value === undefined ? new Uint8Array() : serialize(value));
  }

  deserializeAttachment() {
    const bytes = call(attachment, this._id);
    return bytes.length === 0 ? null : deserialize(bytes);
  }

  accept() {
    throw new TypeError(
      "ws.accept() is the non-hibernating API; a wasmdo object accepts with ctx.acceptWebSocket(ws, tags), and a Worker passes the upgrade request to an object with stub.fetch(request)",
    );
  }

  addEventListener() {
    throw new TypeError("WebSocket events arrive at the class's webSocketMessage/webSocketClose/webSocketError methods (the hibernation API)");
  }
}

/** `new WebSocketPair()`: `[client, server]`; the object accepts the server end. */
export class WebSocketPair {
  constructor() {
    const server = new WebSocket();
    const client = { [CLIENT]: server };
    this[0] = client;
    this[1] = server;
  }
}

const CLIENT = Symbol("client end");

const FORWARDED =
  "a WebSocket from stub.fetch can only be returned in a 101 Response; wasmdo does not proxy it " +
  "(the object that accepted it owns it: send and receive there)";

/**
 * `response.webSocket` of a 101 answer to `stub.fetch`: the client's socket, accepted by the
 * object the upgrade request was passed to. It only stands for that socket: returned in
 * `new Response(null, { status: 101, webSocket })` it connects the client to that object (the
 * host holds the socket); everything else throws.
 */
export class ForwardedWebSocket {
  get readyState() {
    return WebSocket.CONNECTING;
  }
  accept() {
    throw new TypeError(FORWARDED);
  }
  send() {
    throw new TypeError(FORWARDED);
  }
  close() {
    throw new TypeError(FORWARDED);
  }
  serializeAttachment() {
    throw new TypeError(FORWARDED);
  }
  deserializeAttachment() {
    throw new TypeError(FORWARDED);
  }
  addEventListener() {
    throw new TypeError(FORWARDED);
  }
}

/** The auto-response pair of `ctx.setWebSocketAutoResponse`. */
export class WebSocketRequestResponsePair {
  constructor(request, response) {
    this.request = String(request);
    this.response = String(response);
  }
}

/** `ctx.acceptWebSocket(ws, tags)`. */
export function acceptWebSocket(ws, tags = []) {
  if (!(ws instanceof WebSocket)) throw new TypeError("acceptWebSocket takes the server end of a WebSocketPair");
  ws._bind(call(accept, tags.map(String)));
}

/** `ctx.getWebSockets(tag)`. */
export function getWebSockets(tag) {
  return [...call(sockets, tag === undefined ? undefined : String(tag))].map((id) => webSocket(typeof id === "bigint" ? id : BigInt(id)));
}

/** `ctx.getTags(ws)`. */
export function getTags(ws) {
  return call(hostTags, ws._id);
}

/** `ctx.setWebSocketAutoResponse(pair)`. */
export function setWebSocketAutoResponse(pair) {
  call(setAutoResponse, pair ? [pair.request, pair.response] : undefined);
}

/** A received message as Cloudflare gives it: a string, or an ArrayBuffer. */
export function webSocketData(message) {
  if (message.tag === "text") return message.val;
  const bytes = new Uint8Array(message.val);
  return bytes.buffer;
}

/**
 * `Response` that also takes Cloudflare's `{ status: 101, webSocket: client }` (the platform's
 * constructor refuses statuses below 200): the host switches the client over once the event
 * commits. `webSocket` is the client end of a WebSocketPair, or the WebSocket of a 101 answer
 * to `stub.fetch`; on every other response it is `null`, as on Cloudflare.
 */
export const PlatformResponse = globalThis.Response;

export function installResponse() {
  const Platform = PlatformResponse;
  Object.defineProperty(Platform.prototype, "webSocket", { get: () => null, configurable: true });
  class Response extends Platform {
    constructor(body, init) {
      if (init && init.status === 101) {
        if (!init.webSocket || !(init.webSocket[CLIENT] || init.webSocket instanceof ForwardedWebSocket)) {
          throw new TypeError(
            "a 101 response needs `webSocket`: the client end of an accepted WebSocketPair, or the webSocket of a 101 response from stub.fetch",
          );
        }
        const { status, webSocket, ...rest } = init;
        super(body, { ...rest, status: 200 });
        Object.defineProperty(this, "status", { value: 101 });
        Object.defineProperty(this, "webSocket", { value: webSocket });
      } else {
        super(body, init);
      }
    }
  }
  globalThis.Response = Response;
}

