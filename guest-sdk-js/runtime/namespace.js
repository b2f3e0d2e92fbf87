// Calls to other objects: `env.COUNTER` is a DurableObjectNamespace for each binding the class
// was built with (`wasmdo-js build --binding COUNTER=counter.wit`), and its stubs call the bound
// class's methods through the host's typed stubs (`binding:<name>` WIT packages). Every stub
// also has `fetch` (the host's `objects.fetch`); a binding built without a stub package
// (`--binding COUNTER`) has stubs with only `fetch`.
//
// Values follow componentize-js's mapping of WIT types (jco's): numbers for 8–32-bit integers and
// floats, bigints for 64-bit integers, records with camelCase fields, `option` as the value or
// undefined, variants and nested results as `{tag, val}`, `list<u8>` as Uint8Array. A method of
// a JavaScript class whose signature has records, options, enums or variants is called by name
// instead (dynamic RPC, marked `byName` by the build), so the caller gets exactly what the
// method returned, as on Cloudflare; numbers, strings, booleans, lists and tuples cross a typed
// call unchanged. The callee's
// own error (its `result::err`) is thrown as an Error with the callee's name and message (a JS
// callee's `js-error`), or with `value` holding any other error value; a call that could not run
// throws a `CallError`.

import { idFromName, idFromString, newUniqueId } from "wasmdo:object/objects@0.1.0";
import { fetch as hostFetch } from "wasmdo:object/packed-objects@0.1.0";
import { call as hostCall } from "wasmdo:object/dynamic@0.1.0";

import { DurableObjectId, describe } from "./object.js";
import { fromPackedResponse, packRequest, toRequestRecord } from "./http.js";
import { serialize, deserialize } from "./values.js";

/** A call that did not produce the callee's result: `kind` is the WIT case of `call-error`. */
export class CallError extends Error {
  constructor(kind, message) {
    super(`${kind}: ${message}`);
    this.name = "CallError";
    this.kind = kind;
    /** The callee itself failed (trapped, hit a limit); its writes were rolled back. */
    this.remote = kind === "callee-failed";
    /** The call may succeed if tried again later (the callee was overloaded or going away). */
    this.retryable = kind === "unavailable";
  }
}

function callError(e) {
  const payload = e?.payload;
  if (!payload || typeof payload.tag !== "string") return e;
  const detail = payload.tag === "callee-failed" ? `${payload.val.kind}: ${payload.val.message}` : String(payload.val);
  return new CallError(payload.tag, detail);
}

/** The callee's own error value, thrown as an Error. */
function methodError(value) {
  if (value && typeof value.name === "string" && typeof value.message === "string") {
    const e = new Error(value.message);
    e.name = value.name;
    return e;
  }
  const e = new Error(typeof value === "string" ? value : `the method returned an error: ${describe(value)}`);
  e.value = value;
  return e;
}

/** Calls the host's `objects` function `f`, a `call-error` becoming a CallError. */
function objects(f, ...args) {
  try {
    return f(...args);
  } catch (e) {
    throw callError(e);
  }
}

/** Stubs made but not dropped, per namespace: the host keeps each in the instance's table. */
const MAX_CACHED_STUBS = 1024;

/** `env.BINDING`: Cloudflare's DurableObjectNamespace. */
export class DurableObjectNamespace {
  #binding;
  #interfaces;
  #stubs = new Map();

  constructor(env, binding, interfaces) {
    this.#binding = binding;
    this.#interfaces = interfaces;
  }

  idFromName(name) {
    return new DurableObjectId(objects(idFromName, this.#binding, String(name)), String(name));
  }

  newUniqueId() {
    return new DurableObjectId(objects(newUniqueId, this.#binding));
  }

  idFromString(id) {
    return new DurableObjectId(objects(idFromString, this.#binding, String(id)));
  }

  /** The stub of the object `id` (a DurableObjectId or its string). Activates nothing. */
  get(id) {
    const hex = String(id);
    const stub = this.#stub(`id:${hex}`, (Stub) => new Stub(hex), () => hex);
    if (id instanceof DurableObjectId) stub.id = id;
    return stub;
  }

  /** The stub of the object named `name` (Cloudflare's `getByName`). Activates nothing. */
  getByName(name) {
    name = String(name);
    const stub = this.#stub(`name:${name}`, (Stub) => Stub.getByName(name), () => objects(idFromName, this.#binding, name));
    stub.name = name;
    return stub;
  }

  /** The stub for `key`: `make` makes a typed host stub, `idOf` gives the object's id. */
  #stub(key, make, idOf) {
    let stub = this.#stubs.get(key);
    if (stub) return stub;
    if (this.#stubs.size >= MAX_CACHED_STUBS) {
      const [oldest, old] = this.#stubs.entries().next().value;
      this.#stubs.delete(oldest);
      for (const raw of old[RAW]) raw?.[Symbol.dispose]?.();
    }
    // the host's typed stubs, made at the first typed call (a stub used for `fetch` or calls by
    // name never needs one)
    const interfaces = this.#interfaces;
    const raws = new Array(interfaces.length);
    const raw = (i) => (raws[i] ??= make(interfaces[i].Stub));
    const binding = this.#binding;
    let id = null;
    const hexId = () => (id ??= idOf());
    let idObject = null;
    stub = {
      [RAW]: raws,
      // Cloudflare's stub properties, own properties so the Proxy never takes them for methods:
      // `id` (for a stub made by name, resolved when first read) and `name`
      get id() {
        return (idObject ??= new DurableObjectId(hexId(), this.name));
      },
      set id(value) {
        idObject = value;
      },
      name: undefined,
      /** Cloudflare's `stub.fetch`: the object's `fetch` handler answers the request. */
      fetch: (input, init) => stubFetch(binding, hexId, input, init),
    };
    this.#interfaces.forEach(({ methods }, i) => {
      // a method called by name (`byName`) is left to the dynamic methods below
      for (const [method, unwrap, byName] of methods) {
        if (method in stub || byName) continue;
        stub[method] = (...args) => call(raw, i, method, unwrap, args);
      }
    });
    stub = withDynamicMethods(stub, binding, hexId);
    this.#stubs.set(key, stub);
    return stub;
  }
}

const RAW = Symbol("raw stubs");

/** Property names code (and `await`) probes on any object: never taken for method calls. */
const NOT_METHODS = new Set(["then", "toJSON", "constructor", "asymmetricMatch", "$$typeof", "nodeType", "inspect"]);

/**
 * `stub` with Cloudflare's dynamic RPC: a method the stub has no typed function for (every
 * method, for a binding built without a stub package) is called by name through the host
 * (`dynamic.call`), its arguments and result crossing in the storage encoding — structured-clone
 * values (Date, Map, Set, typed arrays, bigint, undefined, nested objects, errors) arrive as
 * they were sent.
 */
function withDynamicMethods(stub, binding, idOf) {
  const methods = new Map();
  return new Proxy(stub, {
    get(target, key, receiver) {
      if (typeof key === "symbol" || key in target || NOT_METHODS.has(key)) return Reflect.get(target, key, receiver);
      let method = methods.get(key);
      if (!method) {
        method = (...args) => callDynamic(binding, idOf, key, args);
        methods.set(key, method);
      }
      return method;
    },
  });
}

/** A dynamic call: what the method returned, or what it threw, rethrown here. */
async function callDynamic(binding, idOf, method, args) {
  const encoded = serialize(args);
  let out;
  try {
    out = hostCall(binding, idOf(), method, encoded);
  } catch (e) {
    throw callError(e);
  }
  if (out?.tag === "err") throw methodError(out.val);
  return deserialize(new Uint8Array(out?.tag === "ok" ? out.val : out));
}

/** `stub.fetch(input, init)`: sends the request to the object `idOf()` through the host. */
async function stubFetch(binding, idOf, input, init) {
  const request = packRequest(await toRequestRecord(input, init));
  let response;
  try {
    response = hostFetch(binding, idOf(), request);
  } catch (e) {
    throw callError(e);
  }
  return fromPackedResponse(response);
}

/** One call through host stub `raw(i)`; a promise, as calls to Cloudflare stubs are. */
async function call(raw, i, method, unwrap, args) {
  // trailing undefined arguments are absent options
  while (args.length > 0 && args[args.length - 1] === undefined) args.pop();
  let out;
  try {
    out = raw(i)[method](...args);
  } catch (e) {
    throw callError(e);
  }
  if (!unwrap) return ownTypedArrays(out);
  if (out?.tag === "ok") return ownTypedArrays(out.val);
  throw methodError(out?.val);
}

/**
 * `v` with the typed arrays the engine's bindings made (which fail `instanceof Uint8Array` in
 * the object's code) replaced by the object's own.
 */
function ownTypedArrays(v) {
  if (typeof v !== "object" || v === null) return v;
  if (ArrayBuffer.isView(v)) {
    const Own = globalThis[Object.prototype.toString.call(v).slice(8, -1)];
    return v instanceof Own ? v : new Own(v);
  }
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = ownTypedArrays(v[i]);
    return v;
  }
  for (const k of Object.keys(v)) v[k] = ownTypedArrays(v[k]);
  return v;
}

const namespaces = new Map();

/** Called by the generated entry module for each binding the class was built with. */
export function registerBinding(envName, binding, interfaces) {
  namespaces.set(envName, new DurableObjectNamespace(envName, binding, interfaces));
}

/** The namespaces of the class's bindings, by their `env` name. */
export function bindingNamespaces() {
  return namespaces;
}
