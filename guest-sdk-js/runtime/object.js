// The object itself: `DurableObject`, its `ctx` (DurableObjectState) and `env`; and a Worker's
// `ctx` (ExecutionContext) and `WorkerEntrypoint`.

import { id as hostId, name as hostName, className, envVars, log } from "wasmdo:object/object@0.1.0";

import { DurableObjectStorage } from "./storage.js";
import { acceptWebSocket, getTags, getWebSockets, setWebSocketAutoResponse } from "./websockets.js";
import { trackIo } from "./event-loop.js";

/** An object's identity: `toString()` is its 64-hex-digit id; `name` the name it was addressed by. */
export class DurableObjectId {
  #id;
  constructor(id, name) {
    this.#id = id;
    if (name !== undefined) this.name = name;
  }
  toString() {
    return this.#id;
  }
  equals(other) {
    return other instanceof DurableObjectId && other.toString() === this.#id;
  }
}

/** `ctx`: the object's state and the host's services. */
export class DurableObjectState {
  #pending = [];
  #waitUntil = [];

  #id = null;
  #storage = null;

  // Both are built on first use: an activation that does not need them skips the host calls
  // and allocations (each dirtied page of the JS heap is per-object memory).
  get id() {
    return (this.#id ??= new DurableObjectId(hostId(), hostName() ?? undefined));
  }

  get storage() {
    return (this.#storage ??= new DurableObjectStorage());
  }

  /**
   * Runs `callback`; events wait until it settles. wasmdo already runs one event at a time to
   * completion, so this matters in the constructor: the activation waits for it, and a rejection
   * fails the activation (the waiting events get `InitFailed`).
   */
  blockConcurrencyWhile(callback) {
    const promise = Promise.resolve().then(callback);
    this.#pending.push(promise);
    return promise;
  }

  /** Accepts the server end of a WebSocketPair for the upgrade request `fetch` is handling. */
  acceptWebSocket(ws, tags) {
    acceptWebSocket(ws, tags);
  }

  /** The object's open WebSockets, or those carrying `tag`. */
  getWebSockets(tag) {
    return getWebSockets(tag);
  }

  getTags(ws) {
    return getTags(ws);
  }

  /** A text message the host answers itself, without waking the object. */
  setWebSocketAutoResponse(pair) {
    setWebSocketAutoResponse(pair);
  }

  /** The event's reply waits for `promise` too (a rejection is logged, not raised). */
  waitUntil(promise) {
    this.#waitUntil.push(Promise.resolve(promise));
  }

  /** Settles everything handed to `blockConcurrencyWhile` (raising the first rejection). */
  async _settleBlocking() {
    while (this.#pending.length > 0) {
      const batch = this.#pending.splice(0);
      await Promise.all(batch);
    }
  }

  /** Whether promises handed to `waitUntil` are outstanding. */
  hasWaitUntil() {
    return this.#waitUntil.length > 0;
  }

  /** Settles everything handed to `waitUntil`, logging rejections. */
  _settleWaitUntil() {
    return settleAll(this.#waitUntil);
  }
}

/** Settles the promises in `pending` (and those added meanwhile), logging rejections. */
async function settleAll(pending) {
  while (pending.length > 0) {
    const batch = pending.splice(0);
    for (const r of await Promise.allSettled(batch)) {
      if (r.status === "rejected") log("error", `waitUntil promise rejected: ${describe(r.reason)}`);
    }
  }
}

/**
 * A Worker's `ctx`, one per request. `waitUntil` promises are settled before the response goes
 * back to the host (a Worker instance has no life after its event); `passThroughOnException`
 * does nothing (there is no origin to pass through to): an error answers 500.
 */
export class ExecutionContext {
  #waitUntil = [];

  /** The response waits for `promise` too (a rejection is logged, not raised). */
  waitUntil(promise) {
    this.#waitUntil.push(Promise.resolve(promise));
  }

  passThroughOnException() {}

  /** Settles everything handed to `waitUntil`, logging rejections. */
  _settle() {
    return settleAll(this.#waitUntil);
  }
}

/** Cloudflare's class form of a Worker: `export default class extends WorkerEntrypoint { fetch(request) {…} }`. */
export class WorkerEntrypoint {
  constructor(ctx, env) {
    this.ctx = ctx;
    this.env = env;
  }
}

/** The base class of every Durable Object class. */
export class DurableObject {
  constructor(ctx, env) {
    this.ctx = ctx;
    this.env = env;
  }
}

/** The env vars the class was built to see JSON-parsed (`wasmdo-js build --json-var NAME`). */
const jsonVars = new Set();

/** Called by the generated entry module with the `--json-var` names. */
/** Env vars the code does not see (a development build's own: its code, its class's name). */
const hiddenVars = new Set();

export function registerHiddenVars(names) {
  for (const name of names) hiddenVars.add(name);
}

export function registerJsonVars(names) {
  for (const name of names) jsonVars.add(name);
}

function parseJsonVar(name, value) {
  try {
    return JSON.parse(value);
  } catch (e) {
    throw new TypeError(`env.${name} was built as JSON (--json-var ${name}), but its value is not JSON (${e.message}): ${value.slice(0, 100)}`);
  }
}

/**
 * The class's environment: its variables from `wasmdo.toml` (strings; JSON-parsed for the
 * `--json-var` names), read from the host on first use (an object that never looks at `env`
 * never pays for it), and a DurableObjectNamespace per binding the class was built with.
 */
export function objectEnv(namespaces = new Map()) {
  let vars = null;
  const load = () => {
    if (vars === null) {
      const loaded = {};
      for (const [k, v] of envVars()) {
        if (!hiddenVars.has(k)) loaded[k] = jsonVars.has(k) ? parseJsonVar(k, v) : v;
      }
      for (const [k, ns] of namespaces) loaded[k] = ns;
      vars = loaded;
    }
    return vars;
  };
  return new Proxy(
    {},
    {
      get: (_t, key) => (vars === null && namespaces.has(key) ? namespaces.get(key) : load()[key]),
      has: (_t, key) => key in load(),
      ownKeys: () => Reflect.ownKeys(load()),
      getOwnPropertyDescriptor: (_t, key) => {
        const d = Reflect.getOwnPropertyDescriptor(load(), key);
        return d && { ...d, configurable: true };
      },
      set: (_t, key, value) => {
        load()[key] = value;
        return true;
      },
      deleteProperty: (_t, key) => delete load()[key],
    },
  );
}

export { className };

/**
 * The global `fetch`, over `wasi:http`: the host lets a class reach only the hosts its `fetch`
 * list in wasmdo.toml names. componentize-js reports a refused (or failed) request as a bare
 * `TypeError: NetworkError…`; this says which host and where to look.
 */
export function installFetch() {
  const platformFetch = globalThis.fetch;
  if (typeof platformFetch !== "function") return;
  // in flight until answered, and so is the reading of the body: an unawaited request goes on
  // between events (see event-loop.js)
  globalThis.fetch = function fetch(input, init) {
    return trackIo(fetched(input, init));
  };
  async function fetched(input, init) {
    // an SDK Request's headers are its own `headers` (the platform's may lack them: see http.js)
    if (input instanceof Request && init?.headers === undefined) init = { ...init, headers: input.headers };
    try {
      return trackBody(await platformFetch(input, init));
    } catch (e) {
      if (e instanceof TypeError && /NetworkError/.test(e.message)) {
        let host = "";
        try {
          host = new URL(input instanceof Request ? input.url : String(input)).host;
        } catch {}
        e.message = `fetch to ${host || "that URL"} failed: ${e.message}. A host that is not in the class's \`fetch\` list (wasmdo.toml) is refused; the object's log says why.`;
      }
      throw e;
    }
  }
}

/** The ways of reading a body, each counted as I/O in flight until it is read. */
const BODY_READERS = ["text", "json", "arrayBuffer", "blob", "formData", "bytes"];

/** `response` with its body readers counted as I/O in flight. */
function trackBody(response) {
  for (const name of BODY_READERS) {
    const read = response?.[name];
    if (typeof read !== "function") continue;
    Object.defineProperty(response, name, {
      value: (...args) => trackIo(read.apply(response, args)),
      configurable: true,
      writable: true,
    });
  }
  return response;
}

/** One console argument as text. */
export function describe(value) {
  if (typeof value === "string") return value;
  if (value instanceof Error) return value.stack ? `${value.name}: ${value.message}\n${value.stack}` : `${value.name}: ${value.message}`;
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "function") return `[Function ${value.name || "anonymous"}]`;
  if (typeof value === "symbol" || value === undefined) return String(value);
  try {
    const seen = new WeakSet();
    return JSON.stringify(value, (_k, v) => {
      if (typeof v === "bigint") return `${v}n`;
      if (v instanceof Map) return Object.fromEntries(v);
      if (v instanceof Set) return [...v];
      if (typeof v === "object" && v !== null) {
        if (seen.has(v)) return "[Circular]";
        seen.add(v);
      }
      return v;
    });
  } catch {
    return String(value);
  }
}

/** Routes `console.*` to the host's per-object log, at the matching level. */
export function installConsole() {
  const line = (level) => (...args) => log(level, args.map(describe).join(" "));
  const console = globalThis.console ?? (globalThis.console = {});
  console.trace = line("trace");
  console.debug = line("debug");
  console.log = line("info");
  console.info = line("info");
  console.warn = line("warn");
  console.error = line("error");
}
