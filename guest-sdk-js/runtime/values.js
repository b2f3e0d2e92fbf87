// Storage values: the bytes behind `ctx.storage.put(key, value)`.
//
// A value that JSON can hold exactly is stored as its UTF-8 JSON text, the same bytes the Rust
// SDK stores (`serde_json`), so data stays readable across SDKs and with plain SQL. Anything else
// that structured clone can copy is stored as byte 0x01 followed by a tagged JSON tree (JSON text
// never starts with 0x01, so the two forms cannot be confused):
//
//   string, finite number other than -0, boolean, null  → themselves
//   array                                                 → ["a", [items…]] (holes become undefined)
//   plain object                                          → ["o", {key: value…}]
//   undefined / NaN / Infinity / -Infinity / -0           → ["u"] / ["n", "NaN" | "Infinity" | "-Infinity" | "-0"]
//   bigint                                                → ["i", "123"]
//   Date                                                  → ["d", epochMs] (an invalid Date: ["d", null])
//   Map / Set                                             → ["m", [[k, v]…]] / ["s", [v…]]
//   ArrayBuffer                                           → ["b", base64]
//   typed array / DataView                                → ["t", "Uint8Array", base64]
//   RegExp                                                → ["r", source, flags]
//   Error (and its standard subclasses)                   → ["e", name, message]
//   boxed Boolean / Number / String / BigInt              → ["x", tagged inner value]
//
// Like structured clone, functions, symbols, class instances with a prototype other than
// Object.prototype or null (they lose their prototype), and anything else throw
// `DataCloneError`. Unlike structured clone, an object reached twice is copied twice and a cycle
// throws `DataCloneError` (structured clone would keep the shared reference).

const EXTENDED = 0x01;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

const TYPED_ARRAYS = {
  Int8Array,
  Uint8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
  DataView,
};

const ERRORS = { Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError };

/** The error structured clone throws for a value it cannot copy. */
export class DataCloneError extends Error {
  constructor(message) {
    super(message);
    this.name = "DataCloneError";
  }
}

/** Encodes `value` into the bytes stored for it. */
export function serialize(value) {
  if (isPlainJson(value, new Set())) {
    return encoder.encode(JSON.stringify(value));
  }
  const text = JSON.stringify(tag(value, new Set()));
  const bytes = encoder.encode(text);
  const out = new Uint8Array(bytes.length + 1);
  out[0] = EXTENDED;
  out.set(bytes, 1);
  return out;
}

/** Decodes bytes written by `serialize` (or by any SDK that stores JSON). */
export function deserialize(bytes) {
  if (bytes.length > 0 && bytes[0] === EXTENDED) {
    return untag(JSON.parse(decoder.decode(bytes.subarray(1))));
  }
  return JSON.parse(decoder.decode(bytes));
}

function isPlainObject(value) {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

// True when JSON.stringify(value) then JSON.parse gives back an equal value.
function isPlainJson(value, seen) {
  switch (typeof value) {
    case "string":
    case "boolean":
      return true;
    case "number":
      return Number.isFinite(value) && !Object.is(value, -0);
    case "object":
      break;
    default:
      return false;
  }
  if (value === null) return true;
  if (seen.has(value)) return false;
  seen.add(value);
  let plain;
  if (Array.isArray(value)) {
    plain = true;
    for (let i = 0; i < value.length && plain; i++) {
      plain = i in value && isPlainJson(value[i], seen);
    }
  } else if (isPlainObject(value)) {
    plain = Object.values(value).every((v) => isPlainJson(v, seen));
  } else {
    plain = false;
  }
  seen.delete(value);
  return plain;
}

function tag(value, seen) {
  switch (typeof value) {
    case "string":
    case "boolean":
      return value;
    case "number":
      if (Number.isFinite(value) && !Object.is(value, -0)) return value;
      return ["n", Object.is(value, -0) ? "-0" : String(value)];
    case "undefined":
      return ["u"];
    case "bigint":
      return ["i", value.toString()];
    case "object":
      break;
    default:
      throw new DataCloneError(`a ${typeof value} cannot be stored`);
  }
  if (value === null) return null;
  if (seen.has(value)) {
    throw new DataCloneError("the value contains a cycle, which storage cannot hold");
  }
  seen.add(value);
  try {
    return tagObject(value, seen);
  } finally {
    seen.delete(value);
  }
}

function tagObject(value, seen) {
  if (Array.isArray(value)) {
    const items = [];
    for (let i = 0; i < value.length; i++) items.push(tag(value[i], seen));
    return ["a", items];
  }
  if (value instanceof Date) {
    const ms = value.getTime();
    return ["d", Number.isNaN(ms) ? null : ms];
  }
  if (value instanceof Map) {
    return ["m", [...value].map(([k, v]) => [tag(k, seen), tag(v, seen)])];
  }
  if (value instanceof Set) return ["s", [...value].map((v) => tag(v, seen))];
  if (value instanceof ArrayBuffer) return ["b", toBase64(new Uint8Array(value))];
  if (ArrayBuffer.isView(value)) {
    const name = value.constructor.name;
    if (!(name in TYPED_ARRAYS)) throw new DataCloneError(`a ${name} cannot be stored`);
    return ["t", name, toBase64(new Uint8Array(value.buffer, value.byteOffset, value.byteLength))];
  }
  if (value instanceof RegExp) return ["r", value.source, value.flags];
  if (value instanceof Error) {
    const name = value.name in ERRORS ? value.name : "Error";
    return ["e", name, String(value.message)];
  }
  if (
    value instanceof Boolean ||
    value instanceof Number ||
    value instanceof String ||
    value instanceof BigInt
  ) {
    return ["x", tag(value.valueOf(), seen)];
  }
  if (!isPlainObject(value)) {
    const name = value.constructor?.name ?? "object";
    throw new DataCloneError(
      `a ${name} instance cannot be stored: store plain data (objects, arrays, Map, Set, Date, …)`,
    );
  }
  const fields = {};
  for (const [k, v] of Object.entries(value)) fields[k] = tag(v, seen);
  return ["o", fields];
}

function untag(node) {
  if (node === null || typeof node !== "object") return node;
  const [kind, a, b] = node;
  switch (kind) {
    case "a":
      return a.map(untag);
    case "o": {
      const out = {};
      for (const [k, v] of Object.entries(a)) out[k] = untag(v);
      return out;
    }
    case "u":
      return undefined;
    case "n":
      return a === "-0" ? -0 : Number(a);
    case "i":
      return BigInt(a);
    case "d":
      return new Date(a === null ? NaN : a);
    case "m":
      return new Map(a.map(([k, v]) => [untag(k), untag(v)]));
    case "s":
      return new Set(a.map(untag));
    case "b":
      return fromBase64(a).buffer;
    case "t": {
      const bytes = fromBase64(b);
      const Ctor = TYPED_ARRAYS[a];
      if (!Ctor) throw new TypeError(`stored value has unknown array type ${a}`);
      if (Ctor === DataView) return new DataView(bytes.buffer);
      return new Ctor(bytes.buffer, 0, bytes.byteLength / Ctor.BYTES_PER_ELEMENT);
    }
    case "r":
      return new RegExp(a, b);
    case "e":
      return new (ERRORS[a] ?? Error)(b);
    case "x":
      return Object(untag(a));
    default:
      throw new TypeError(`stored value has unknown tag ${JSON.stringify(kind)}`);
  }
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

function toBase64(bytes) {
  let out = "";
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + B64[n & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i] << 16;
    out += B64[n >> 18] + B64[(n >> 12) & 63] + "==";
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + "=";
  }
  return out;
}

function fromBase64(text) {
  const clean = text.replace(/=+$/, "");
  const out = new Uint8Array(Math.floor((clean.length * 3) / 4));
  let bits = 0;
  let acc = 0;
  let o = 0;
  for (const ch of clean) {
    const v = B64.indexOf(ch);
    if (v < 0) throw new TypeError("stored value has invalid base64");
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}
