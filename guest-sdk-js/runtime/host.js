// Calls into the host's `wasmdo:object/storage`, with its WIT errors as JS errors.

/** A storage call the host refused: `code` is the WIT error case (`value-too-large`, `sql`, …). */
export class StorageError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "StorageError";
    this.code = code;
  }
}

const MESSAGES = {
  "value-too-large": (n) => `value too large: key + value exceed the ${n}-byte limit`,
  "quota-exceeded": () => "storage quota exceeded: the object's database is full",
  "statement-too-large": (n) => `SQL statement too large: the limit is ${n} bytes`,
  "too-many-parameters": (n) => `too many SQL parameters: the limit is ${n}`,
  "result-too-large": (n) => `result too large: one call may return at most ${n} bytes; narrow the query`,
  sql: (m) => m,
  "no-transaction": () => "no transaction is open",
  "invalid-argument": (m) => m,
  internal: (m) => `storage failed: ${m}`,
};

/** Calls a host storage function, turning its WIT error into a `StorageError`. */
export function host(f, ...args) {
  try {
    return f(...args);
  } catch (e) {
    const payload = e?.payload;
    if (payload && typeof payload.tag === "string") {
      const describe = MESSAGES[payload.tag] ?? ((v) => `${payload.tag}: ${v}`);
      throw new StorageError(payload.tag, describe(payload.val));
    }
    throw e;
  }
}

