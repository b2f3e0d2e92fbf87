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
//
// The standard API works too, in objects and Workers: `server.accept()`, then
// `addEventListener("message" | "close" | "error", …)` (or `onmessage`, …). Such a socket is the
// instance's (`websockets.accept-in-memory`): its events go to its listeners, it keeps the
// object from hibernating, and it is closed (1001) if the instance goes.

import {
  accept,
  acceptInMemory,
  sockets,
  tags as hostTags,
  send as hostSend,
  sendMany as hostSendMany,
  close as hostClose,
  setAttachment,
  attachment,
  setAutoResponse,
} from "wasmdo:object/websockets@0.1.0";

import { serialize, deserialize } from "./values.js";

// `ws.send` of a small message is batched until the event ends (or the next close, or a large
// send): a broadcast — the same message to many sockets — is then one host call
// (`websockets.send-many`) instead of one per socket. Order is kept: consecutive sends of the
// same message become one call, in the order they were made, and the host releases every send
// after the event commits anyway. A failed event's sends are dropped, as the host drops them.
// Larger messages go out at once, so their size errors are thrown by `send` itself.
const BATCHED_BYTES = 16 * 1024;
/** Sockets and messages, in send order: `[id, message, id, message, …]`. */
let pending = [];

/** Sends what the event batched, a run of the same message as one call. */
export function flushSends() {
  if (pending.length === 0) return;
  const sends = pending;
  pending = [];
  for (let i = 0; i < sends.length; ) {
    const m = sends[i + 1];
    const ids = [];
    for (; i < sends.length && sameMessage(sends[i + 1], m); i += 2) ids.push(sends[i]);
    // a socket gone since (the client left) is skipped, as the network would drop the message
    call(hostSendMany, new BigUint64Array(ids.map(BigInt)), m);
  }
}

/** Drops what the event batched (it failed: the host undoes its sends). */
export function discardSends() {
  pending = [];
}

function sameMessage(a, b) {
  return a === b || (a.tag === b.tag && a.val === b.val);
}

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

/** An event of a socket accepted with `server.accept()`, as its listeners get it. */
class SocketEvent {
  constructor(type, target, fields) {
    this.type = type;
    this.target = target;
    this.currentTarget = target;
    Object.assign(this, fields);
  }
}

/** What each handler of the hibernation API is as an event of the standard API. */
const EVENTS = {
  webSocketMessage: (data) => ["message", { data }],
  webSocketClose: (code, reason, wasClean) => ["close", { code, reason, wasClean }],
  webSocketError: (error) => ["error", { error, message: error?.message ?? String(error) }],
};

/** The server end of a WebSocketPair, or a socket the object holds. */
export class WebSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;

  #id;
  #inMemory = false;
  #closing = false;
  #closed = false;
  #listeners = new Map();
  onmessage = null;
  onclose = null;
  onerror = null;
  constructor(id = null) {
    this.#id = id;
  }

  /** @internal accepted with `accept()`: its events go to its listeners */
  get _inMemory() {
    return this.#inMemory;
  }

  /** @internal delivers the host's event `name` (a handler's name) to the listeners */
  async _dispatch(name, args) {
    const [type, fields] = EVENTS[name](...args);
    if (type !== "message") this.#closed = true;
    const event = new SocketEvent(type, this, fields);
    const listeners = [...(this.#listeners.get(type) ?? [])];
    const property = this[`on${type}`];
    if (typeof property === "function") listeners.push(property);
    for (const listener of listeners) {
      // a listener's promise is part of the event (its writes commit with it)
      if (typeof listener === "function") await listener.call(this, event);
      else if (listener && typeof listener.handleEvent === "function") await listener.handleEvent(event);
    }
  }

  /** @internal the host socket id, once accepted */
  get _id() {
    if (this.#id === null) throw new WebSocketError("not-accepted", "this WebSocket was not accepted: call ctx.acceptWebSocket(ws) (or ws.accept()) first");
    return this.#id;
  }

  /** @internal */
  _bind(id) {
    this.#id = id;
    handles.set(id, this);
  }

  get readyState() {
    if (this.#closed) return WebSocket.CLOSED;
    if (this.#closing) return WebSocket.CLOSING;
    return this.#id === null ? WebSocket.CONNECTING : WebSocket.OPEN;
  }

  send(message) {
    let m;
    if (typeof message === "string") m = { tag: "text", val: message };
    else if (message instanceof ArrayBuffer) m = { tag: "binary", val: new Uint8Array(message) };
    else if (ArrayBuffer.isView(message)) m = { tag: "binary", val: new Uint8Array(message.buffer, message.byteOffset, message.byteLength) };
    else m = { tag: "text", val: String(message) };
    const id = this._id;
    // a UTF-16 code unit is at most 3 bytes of UTF-8
    const bytes = m.tag === "text" ? m.val.length * 3 : m.val.byteLength;
    if (bytes <= BATCHED_BYTES) {
      // a batched binary message must not change before it goes: copy it
      pending.push(id, m.tag === "text" ? m : { tag: "binary", val: m.val.slice() });
      return;
    }
    flushSends();
    call(hostSend, id, m);
  }

  close(code = 1000, reason = "") {
    flushSends();
    call(hostClose, this._id, code, reason);
    this.#closing = true;
  }

  /** Keeps `value` with the socket (structured-clone-able, at most 2,048 bytes encoded). */
  serializeAttachment(value) {
    call(setAttachment, this._id, value === undefined ? new Uint8Array() : serialize(value));
  }

  deserializeAttachment() {
    const bytes = call(attachment, this._id);
    return bytes.length === 0 ? null : deserialize(bytes);
  }

  /**
   * Accepts the server end for this instance alone (the standard API): events go to the
   * listeners; the object does not hibernate while the socket is open. Only in `fetch` of a
   * WebSocket upgrade request; `ctx.acceptWebSocket(ws, tags)` is the hibernatable way.
   */
  accept() {
    if (this.#id !== null) throw new WebSocketError("not-upgrade", "this WebSocket was already accepted");
    this._bind(call(acceptInMemory));
    this.#inMemory = true;
  }

  /** Listens for `message`, `close` or `error` (of a socket accepted with `accept()`). */
  addEventListener(type, listener) {
    if (this.#id !== null && !this.#inMemory) {
      throw new TypeError(
        "this WebSocket was accepted with ctx.acceptWebSocket (hibernatable): its events arrive at the class's webSocketMessage/webSocketClose/webSocketError methods",
      );
    }
    if (listener === null || listener === undefined) return;
    let list = this.#listeners.get(String(type));
    if (!list) this.#listeners.set(String(type), (list = []));
    if (!list.includes(listener)) list.push(listener);
  }

  removeEventListener(type, listener) {
    const list = this.#listeners.get(String(type));
    const at = list ? list.indexOf(listener) : -1;
    if (at >= 0) list.splice(at, 1);
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

