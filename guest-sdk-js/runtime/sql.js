// `ctx.storage.sql`: Cloudflare's SqlStorage over the host's `exec`.

import { exec as hostExec, databaseSize as hostDatabaseSize } from "wasmdo:object/storage@0.1.0";

import { host } from "./host.js";

/** A JS value bound to a `?` parameter, as the host's `sql-value`. */
function bind(value, index) {
  switch (typeof value) {
    case "number":
      return Number.isSafeInteger(value) ? { tag: "integer", val: BigInt(value) } : { tag: "real", val: value };
    case "bigint":
      return { tag: "integer", val: value };
    case "string":
      return { tag: "text", val: value };
    case "boolean":
      return { tag: "integer", val: value ? 1n : 0n };
    case "object":
      if (value === null) return { tag: "null" };
      if (value instanceof ArrayBuffer) return { tag: "blob", val: new Uint8Array(value) };
      if (ArrayBuffer.isView(value)) {
        return { tag: "blob", val: new Uint8Array(value.buffer, value.byteOffset, value.byteLength) };
      }
      break;
  }
  throw new TypeError(
    `SQL parameter ${index + 1} is ${value === undefined ? "undefined" : `a ${typeof value}`}; bind null, a number, a bigint, a string, a boolean or bytes`,
  );
}

/** A host `sql-value` as a JS value: integers are numbers (bigint beyond 2^53), blobs ArrayBuffers. */
function unbind(value) {
  switch (value.tag) {
    case "null":
      return null;
    case "integer": {
      const n = value.val;
      return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
    }
    case "real":
    case "text":
      return value.val;
    case "blob": {
      const bytes = value.val;
      return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    }
    default:
      throw new TypeError(`unknown SQL value ${value.tag}`);
  }
}

export class SqlStorage {
  /** Runs `query` (`?` parameters bound to `bindings`) and returns a cursor over its rows. */
  exec(query, ...bindings) {
    if (typeof query !== "string") throw new TypeError("exec takes the SQL text first");
    const result = host(hostExec, query, bindings.map(bind));
    return new SqlStorageCursor(result);
  }

  /** The size of the object's database in bytes. */
  get databaseSize() {
    return Number(host(hostDatabaseSize));
  }
}

/** The rows of one `exec`: iterate it, or take `toArray()`, `one()` or `raw()`. */
export class SqlStorageCursor {
  #columns;
  #rows;
  #next = 0;
  #rowsRead;
  #rowsWritten;

  constructor(result) {
    this.#columns = result.columns;
    this.#rows = result.rows;
    this.#rowsRead = Number(result.rowsRead);
    this.#rowsWritten = Number(result.rowsWritten);
  }

  get columnNames() {
    return [...this.#columns];
  }
  get rowsRead() {
    return this.#rowsRead;
  }
  get rowsWritten() {
    return this.#rowsWritten;
  }

  #object(row) {
    const out = {};
    this.#columns.forEach((c, i) => {
      out[c] = unbind(row[i]);
    });
    return out;
  }

  next() {
    if (this.#next >= this.#rows.length) return { done: true, value: undefined };
    return { done: false, value: this.#object(this.#rows[this.#next++]) };
  }

  [Symbol.iterator]() {
    return this;
  }

  /** The remaining rows as objects keyed by column name. */
  toArray() {
    const out = [];
    for (const row of this) out.push(row);
    return out;
  }

  /** The only row; throws unless the query returned exactly one. */
  one() {
    const rest = this.toArray();
    if (rest.length === 0) throw new Error("Expected exactly one result from SQL query, but got no results.");
    if (rest.length > 1) throw new Error("Expected exactly one result from SQL query, but got multiple results.");
    return rest[0];
  }

  /** The remaining rows as arrays of values, in column order. */
  raw() {
    const cursor = this;
    const rows = this.#rows;
    const it = {
      next() {
        if (cursor.#next >= rows.length) return { done: true, value: undefined };
        return { done: false, value: rows[cursor.#next++].map(unbind) };
      },
      [Symbol.iterator]() {
        return it;
      },
      toArray() {
        return [...it];
      },
      get columnNames() {
        return cursor.columnNames;
      },
    };
    return it;
  }
}
