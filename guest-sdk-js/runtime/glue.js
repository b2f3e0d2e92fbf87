// The exports of a JS class's component: `handler.init/fetch`, `alarm-handler.alarm` and one
// function per RPC method, each converting between WIT values and the class's JS values; and
// those of a Worker's component (`handler.init/fetch` calling the default export's `fetch`).

import { className } from "wasmdo:object/object@0.1.0";

import { DurableObject, DurableObjectState, ExecutionContext, installConsole, installFetch, objectEnv, describe } from "./object.js";
import { serialize, deserialize } from "./values.js";
import { bindingNamespaces } from "./namespace.js";
import { isRpcName } from "./rpc-names.js";
import { installRequest, toPackedResponse, toRequest, toResponseRecord, unpackRequest } from "./http.js";
import { installTimers, reportWake, runDue } from "./event-loop.js";
import { discardSends, flushSends, forgetWebSocket, installResponse, webSocket, webSocketData, WebSocketPair, WebSocketRequestResponsePair } from "./websockets.js";

export { registerBinding } from "./namespace.js";
export { registerJsonVars } from "./object.js";

installConsole();
installTimers();
installFetch();
installRequest();
installResponse();
globalThis.WebSocketPair = WebSocketPair;
globalThis.WebSocketRequestResponsePair = WebSocketRequestResponsePair;
warmUp();

/**
 * Runs the runtime's pure-JS paths once at build time. componentize-js snapshots the module
 * after its top level has run, and SpiderMonkey compiles a function's bytecode on its first
 * call: compiled here, that bytecode is part of the shared snapshot instead of being compiled
 * (and allocated) again in every object's private memory. Host imports cannot be called here.
 */
function warmUp() {
  const sample = { a: [1, "two", null, true], b: { c: 1.5 } };
  deserialize(serialize(sample));
  deserialize(serialize(new Map([["k", new Set([1n, new Date(0)])]])));
  const state = new DurableObjectState();
  void state.storage.kv;
  errorRecord(new TypeError("warm-up"));
}

/**
 * Ends an event that succeeded: the `ws.send`s it batched go to the host (a message sent to
 * many sockets in one call), then the host learns when the object's timers are next due.
 */
function endEvent() {
  try {
    flushSends();
  } finally {
    reportWake();
  }
}

/** Ends an event that failed: its batched sends go nowhere (its effects are undone). */
function abandonEvent() {
  discardSends();
  reportWake();
}

/**
 * What an event that failed answers (its `err`), once the host knows when the object's timers
 * are next due: every event ends by telling it (`reportWake`), a failed one too.
 */
function failed(e) {
  abandonEvent();
  return errorRecord(e);
}

export function failedText(e) {
  abandonEvent();
  return errorText(e);
}

/** What an RPC method's `err` carries: the thrown value's name and message. */
function errorRecord(e) {
  if (e instanceof Error) return { name: String(e.name || "Error"), message: String(e.message) };
  return { name: "Error", message: describe(e) };
}

function errorText(e) {
  const { name, message } = errorRecord(e);
  return `${name}: ${message}`;
}

function typeName(v) {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  const name = typeof v === "object" ? (v.constructor?.name ?? "object") : typeof v;
  return `${/^[aeiouAEIOU]/.test(name) ? "an" : "a"} ${name}`;
}

/** A Uint8Array, also one made by the engine's bindings (which may fail `instanceof`). */
function isBytes(v) {
  return ArrayBuffer.isView(v) && Object.prototype.toString.call(v) === "[object Uint8Array]";
}

/** A WIT value (as componentize-js gives it) as the class's JS value. */
function toJs(d, v) {
  switch (d.k) {
    case "option":
      return v === undefined || v === null ? (d.none === "null" ? null : undefined) : toJs(d.of, v);
    case "bytes":
      return new Uint8Array(v);
    case "list":
      return Array.from(v, (x) => toJs(d.of, x));
    case "tuple":
      return d.of.map((td, i) => toJs(td, v[i]));
    case "enum":
      return d.cases.find(([, wit]) => wit === v)[0];
    case "record": {
      const out = {};
      for (const f of d.fields) {
        const x = toJs(f.desc, v[f.js]);
        if (x !== undefined || f.desc.k !== "option") out[f.ts] = x;
      }
      return out;
    }
    default:
      return v;
  }
}

/** A result that does not fit the method's declared type; `path` is filled in as it unwinds. */
class ResultTypeError extends TypeError {
  constructor(value, expected) {
    super();
    this.actual = typeName(value);
    this.expected = expected;
    this.path = "";
  }
}

/**
 * The class's JS value as a WIT value, checked against the method's declared type. Paths for
 * the error message are only built when a value does not fit (calls stay cheap).
 */
function toWit(d, v) {
  const bad = (what) => {
    throw new ResultTypeError(v, what);
  };
  const at = (segment, f) => {
    try {
      return f();
    } catch (e) {
      if (e instanceof ResultTypeError) e.path = segment + e.path;
      throw e;
    }
  };
  switch (d.k) {
    case "unit":
      return undefined;
    case "f64":
      return typeof v === "number" ? v : bad("number");
    case "int":
      return Number.isInteger(v) && v >= d.range[0] && v <= d.range[1] ? v : bad(`${d.wit} (an integer in ${d.range[0]}..=${d.range[1]})`);
    case "bigint":
      return typeof v === "bigint" ? v : bad("bigint");
    case "string":
      return typeof v === "string" ? v : bad("string");
    case "bool":
      return typeof v === "boolean" ? v : bad("boolean");
    case "bytes":
      return isBytes(v) ? v : bad("Uint8Array");
    case "option":
      return v === undefined || v === null ? undefined : toWit(d.of, v);
    case "list": {
      if (!Array.isArray(v)) bad("an array");
      const out = new Array(v.length);
      for (let i = 0; i < v.length; i++) out[i] = at(`[${i}]`, () => toWit(d.of, v[i]));
      return out;
    }
    case "tuple":
      if (!Array.isArray(v) || v.length !== d.of.length) bad(`a tuple of ${d.of.length}`);
      return d.of.map((td, i) => at(`[${i}]`, () => toWit(td, v[i])));
    case "enum": {
      const c = d.cases.find(([ts]) => ts === v);
      return c ? c[1] : bad(`one of ${d.cases.map(([ts]) => JSON.stringify(ts)).join(", ")}`);
    }
    case "record": {
      if (v === null || typeof v !== "object") bad(`a ${d.name} object`);
      const out = {};
      for (const f of d.fields) out[f.js] = at(`.${f.ts}`, () => toWit(f.desc, v[f.ts]));
      return out;
    }
    default:
      throw new TypeError(`unknown descriptor ${d.k}`);
  }
}

function isThenable(v) {
  return v !== null && (typeof v === "object" || typeof v === "function") && typeof v.then === "function";
}

/**
 * Whether `name` is a method of `object` that RPC callers may reach, by Cloudflare's rules: a
 * method of a `DurableObject` subclass or of the project's base classes (not of `Object`, not a
 * handler, not a name starting with `_`; `#private` methods have no name to call).
 */
function rpcCallable(object, name) {
  // a classic class (not a DurableObject) has no RPC, as on Cloudflare
  if (!isRpcName(name) || !(object instanceof DurableObject)) return false;
  for (let proto = Object.getPrototypeOf(object); proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
    if (proto === DurableObject.prototype) return false;
    const own = Object.getOwnPropertyDescriptor(proto, name);
    if (own) return typeof own.value === "function";
  }
  return false;
}

/** A host-facing object for the class `exportName` of the user's module. */
export function hostObject(userModule, exportName, methods) {
  const Class = userModule[exportName];
  let ctx = null;
  let instance = null;

  function live() {
    if (!instance) throw new Error(`the ${exportName} object was not initialised`);
    return instance;
  }

  /** The class's WebSocket handler `name` (if it has one), for a socket it accepted. */
  async function toClass(name, ws, args) {
    const object = live();
    if (typeof object[name] === "function") await object[name](ws, ...args);
  }

  /**
   * `result`, once the event's `waitUntil` promises settle (at once when there are none), and
   * the host told when the object's timers are next due.
   */
  function settle(result) {
    if (!ctx.hasWaitUntil()) {
      endEvent();
      return result;
    }
    return ctx._settleWaitUntil().then(() => {
      endEvent();
      return result;
    });
  }

  /** A `fetch` event: the object's `fetch` answers `req`; `answer` makes the host's response. */
  async function fetchEvent(req, answer) {
    try {
      const object = live();
      if (typeof object.fetch !== "function") {
        throw new Error(`${exportName} has no fetch() method`);
      }
      // the object sees its own path: `/objects/room/a/x?y` arrives as `<origin>/x?y`
      const url = new URL(req.path + (req.query ? `?${req.query}` : ""), req.url);
      const response = await object.fetch(toRequest(req, url));
      return settle(await answer(response, `${exportName}.fetch`));
    } catch (e) {
      throw failedText(e);
    }
  }

  return {
    handler: {
      async init() {
        try {
          ctx = new DurableObjectState();
          instance = new Class(ctx, objectEnv(bindingNamespaces()));
          await ctx._settleBlocking();
          endEvent();
        } catch (e) {
          instance = null;
          abandonEvent();
          throw `constructing ${exportName} (class ${className()}) failed: ${errorText(e)}`;
        }
      },

      fetch: (req) => fetchEvent(req, toResponseRecord),
    },

    // the same, the request's and response's heads packed (what the host uses when it can)
    packedHandler: {
      fetch: (packed) => fetchEvent(unpackRequest(packed), toPackedResponse),
    },

    alarmHandler: {
      async alarm(info) {
        try {
          const object = live();
          if (typeof object.alarm === "function") {
            await object.alarm({ retryCount: info.retryCount, isRetry: info.isRetry });
          }
          await settle();
        } catch (e) {
          throw failedText(e);
        }
      },
    },

    // beyond Cloudflare: a class with `snapshot()` keeps its in-memory state across hibernation;
    // on wake the object is rebuilt without its constructor and handed the state by `restore`
    snapshotHandler: {
      snapshot() {
        if (!instance || typeof instance.snapshot !== "function") return undefined;
        return serialize(instance.snapshot());
      },
      restore(state) {
        try {
          if (typeof Class.prototype.restore !== "function") throw new Error(`${exportName} has no restore(state) method`);
          ctx = new DurableObjectState();
          instance = Object.create(Class.prototype);
          instance.ctx = ctx;
          instance.env = objectEnv(bindingNamespaces());
          instance.restore(deserialize(new Uint8Array(state)));
          endEvent();
        } catch (e) {
          instance = null;
          throw failedText(e);
        }
      },
    },

    // timers between events: the host calls this when the earliest pending one is due
    eventLoopHandler: {
      async run() {
        try {
          await runDue();
          if (ctx) await settle();
          else endEvent();
        } catch (e) {
          throw failedText(e);
        }
      },
    },

    websocketHandler: webSocketHandler(toClass, () => settle()),

    // Cloudflare's dynamic RPC: any method callers may reach, by name, with the arguments and
    // result in the storage encoding (typed methods are reachable this way too)
    dynamicHandler: {
      call(name, args) {
        const threw = (e) => ({ tag: "threw", val: failed(e) });
        let object;
        try {
          object = live();
        } catch (e) {
          throw threw(e);
        }
        if (!rpcCallable(object, name)) {
          abandonEvent();
          throw { tag: "unknown-method", val: `${exportName} has no method \`${name}\` that callers may reach` };
        }
        let list;
        try {
          list = deserialize(new Uint8Array(args));
        } catch (e) {
          abandonEvent();
          throw { tag: "bad-arguments", val: `the arguments are not encoded values: ${e.message}` };
        }
        if (!Array.isArray(list)) {
          abandonEvent();
          throw { tag: "bad-arguments", val: "the arguments must be a list of values" };
        }
        const finish = (result) => {
          let bytes;
          try {
            bytes = serialize(result);
          } catch (e) {
            throw threw(e);
          }
          return settle(bytes);
        };
        let result;
        try {
          result = object[name](...list);
        } catch (e) {
          throw threw(e);
        }
        if (!isThenable(result)) return finish(result);
        return Promise.resolve(result).then(finish, (e) => {
          throw threw(e);
        });
      },
    },

    // Not async: a method that returns a plain value is answered without a promise, and an
    // async one with a single `then` (every promise hop costs interpreted work, ~10% of a call).
    call(name, args) {
      const m = methods[name];
      const finish = (result) => {
        let value;
        try {
          value = toWit(m.result, result);
        } catch (e) {
          if (!(e instanceof ResultTypeError)) throw failed(e);
          throw failed(
            new TypeError(`the result of ${exportName}.${m.name}${e.path} is ${e.actual}, but the signature says ${e.expected}`),
          );
        }
        return settle(value);
      };
      let result;
      try {
        const object = live();
        const jsArgs = m.params.map((d, i) => toJs(d, args[i]));
        // let default parameters apply: drop trailing arguments that are absent
        while (jsArgs.length > 0 && jsArgs[jsArgs.length - 1] === undefined) jsArgs.pop();
        result = object[m.name](...jsArgs);
      } catch (e) {
        throw failed(e);
      }
      if (!isThenable(result)) return finish(result);
      return Promise.resolve(result).then(finish, (e) => {
        throw failed(e);
      });
    },
  };
}

/**
 * A host-facing Worker: the module's default export, `{ fetch(request, env, ctx) }` or a class
 * (`WorkerEntrypoint`'s form: made with `(ctx, env)` for each request, then `fetch(request)`).
 * It sees the full URL the host received; `env` is the class's vars and bindings, `ctx` an
 * ExecutionContext whose `waitUntil` promises settle before the response goes back. Checked at
 * build time (the module's top level runs then).
 */
export function hostWorker(worker) {
  const isClass = typeof worker === "function" && typeof worker.prototype?.fetch === "function";
  if (!isClass && typeof worker?.fetch !== "function") {
    throw new TypeError(
      `the module's default export is ${typeName(worker)} without a fetch method; a Worker is \`export default { async fetch(request, env, ctx) { … } }\` (or a class with fetch(request))`,
    );
  }
  let env = null;

  /** A `fetch` event: the Worker answers `req`; `answer` makes the host's response. */
  async function fetchEvent(req, answer) {
    const ctx = new ExecutionContext();
    try {
      const request = toRequest(req, req.url);
      const response = isClass ? await new worker(ctx, env).fetch(request) : await worker.fetch(request, env, ctx);
      const record = await answer(response, "the Worker's fetch");
      await ctx._settle();
      endEvent();
      return record;
    } catch (e) {
      await ctx._settle();
      throw failedText(e);
    }
  }

  return {
    handler: {
      init() {
        env = objectEnv(bindingNamespaces());
      },
      fetch: (req) => fetchEvent(req, toResponseRecord),
    },

    // the same, the request's and response's heads packed (what the host uses when it can)
    packedHandler: {
      fetch: (packed) => fetchEvent(unpackRequest(packed), toPackedResponse),
    },

    // the sockets a Worker accepted itself (`server.accept()`): their events go to the
    // socket's listeners (a Worker has no handler methods)
    websocketHandler: webSocketHandler(() => {}, endEvent),

    eventLoopHandler: {
      async run() {
        try {
          await runDue();
          endEvent();
        } catch (e) {
          throw failedText(e);
        }
      },
    },
  };
}

/**
 * The `websocket-handler` export: each event of a socket goes to the socket's listeners if the
 * instance accepted it itself (`server.accept()`), else to `toClass(name, ws, args)` (the class's
 * handler method `name`); then `end()` finishes the event. A socket is forgotten once closed.
 */
function webSocketHandler(toClass, end) {
  async function deliver(name, socket, args) {
    try {
      const ws = webSocket(socket);
      if (ws._inMemory) await ws._dispatch(name, args);
      else await toClass(name, ws, args);
      await end();
    } catch (e) {
      throw failedText(e);
    } finally {
      if (name !== "webSocketMessage") forgetWebSocket(socket);
    }
  }
  return {
    websocketMessage: (socket, message) => deliver("webSocketMessage", socket, [webSocketData(message)]),
    websocketClose: (socket, code, reason, wasClean) => deliver("webSocketClose", socket, [code, reason, wasClean]),
    websocketError: (socket, error) => deliver("webSocketError", socket, [new Error(error)]),
  };
}
