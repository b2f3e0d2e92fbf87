// `ctx.storage`: Cloudflare's DurableObjectStorage over the host's `wasmdo:object/storage`.
//
// Every call is synchronous underneath (the object's SQLite database is local); the async API
// returns already-settled promises, and `ctx.storage.kv` is the same API without them.

import {
  get as hostGet,
  getMany as hostGetMany,
  put as hostPut,
  putMany as hostPutMany,
  delete as hostDelete,
  deleteMany as hostDeleteMany,
  list as hostList,
  deleteAll as hostDeleteAll,
  beginTransaction,
  commitTransaction,
  rollbackTransaction,
} from "wasmdo:object/storage@0.1.0";
import { setAlarm, getAlarm, deleteAlarm } from "wasmdo:object/alarms@0.1.0";

import { host } from "./host.js";
import { serialize, deserialize } from "./values.js";
import { SqlStorage } from "./sql.js";

function checkKey(key) {
  if (typeof key !== "string") {
    throw new TypeError(`storage keys are strings, got ${key === null ? "null" : typeof key}`);
  }
  return key;
}

/** The decoded entries of a host list/get-many result, as a Map in the host's order. */
function entriesToMap(entries) {
  const map = new Map();
  for (const [k, v] of entries) map.set(k, deserialize(v));
  return map;
}

/** The synchronous key-value API shared by `ctx.storage.kv`, `ctx.storage` and transactions. */
class SyncKv {
  get(keyOrKeys) {
    if (Array.isArray(keyOrKeys)) {
      const keys = keyOrKeys.map(checkKey);
      return entriesToMap(host(hostGetMany, keys));
    }
    const bytes = host(hostGet, checkKey(keyOrKeys));
    return bytes == null ? undefined : deserialize(bytes);
  }

  put(keyOrEntries, value) {
    if (typeof keyOrEntries === "string") {
      if (value === undefined) throw new TypeError("put: a value is required (use delete to remove a key)");
      host(hostPut, keyOrEntries, serialize(value));
      return;
    }
    if (keyOrEntries === null || typeof keyOrEntries !== "object") {
      throw new TypeError("put takes (key, value) or an object of entries");
    }
    const entries = Object.entries(keyOrEntries).map(([k, v]) => {
      if (v === undefined) throw new TypeError(`put: the value of \`${k}\` is undefined`);
      return [k, serialize(v)];
    });
    host(hostPutMany, entries);
  }

  delete(keyOrKeys) {
    if (Array.isArray(keyOrKeys)) return host(hostDeleteMany, keyOrKeys.map(checkKey));
    return host(hostDelete, checkKey(keyOrKeys));
  }

  list(options = {}) {
    const { prefix, start, startAfter, end, limit, reverse = false } = options;
    if (start !== undefined && startAfter !== undefined) {
      throw new TypeError("list: give start or startAfter, not both");
    }
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) {
      throw new TypeError("list: limit must be a positive integer");
    }
    const from = startAfter ?? start;
    // startAfter excludes its own key: ask for one more entry and drop it if present
    const hostLimit = limit === undefined ? undefined : startAfter !== undefined ? limit + 1 : limit;
    let entries = host(hostList, {
      prefix: prefix === undefined ? undefined : checkKey(prefix),
      start: from === undefined ? undefined : checkKey(from),
      end: end === undefined ? undefined : checkKey(end),
      limit: hostLimit,
      reverse: !!reverse,
    });
    if (startAfter !== undefined) {
      entries = entries.filter(([k]) => k !== startAfter);
      if (limit !== undefined) entries = entries.slice(0, limit);
    }
    return entriesToMap(entries);
  }
}

/** `ctx.storage.kv`: the synchronous key-value API (`get`, `put`, `delete`, `list`). */
export class SyncKvStorage {
  #kv = new SyncKv();
  get(key) {
    return this.#kv.get(checkKey(key));
  }
  put(key, value) {
    this.#kv.put(checkKey(key), value);
  }
  delete(key) {
    return this.#kv.delete(checkKey(key));
  }
  list(options) {
    return this.#kv.list(options).entries();
  }
}

function settle(f) {
  try {
    return Promise.resolve(f());
  } catch (e) {
    return Promise.reject(e);
  }
}

/** Runs `closure` in a nested transaction: committed if it returns, rolled back if it throws. */
function runSync(closure, arg) {
  host(beginTransaction);
  let result;
  try {
    result = closure(arg);
  } catch (e) {
    host(rollbackTransaction);
    throw e;
  }
  if (result instanceof Promise) {
    host(rollbackTransaction);
    throw new TypeError("transactionSync: the callback must not be async (use transaction)");
  }
  host(commitTransaction);
  return result;
}

/** `ctx.storage`: Cloudflare's DurableObjectStorage. */
export class DurableObjectStorage {
  #kv = new SyncKv();

  constructor() {
    this.sql = new SqlStorage();
    this.kv = new SyncKvStorage();
  }

  get(keyOrKeys, _options) {
    return settle(() => this.#kv.get(keyOrKeys));
  }
  put(keyOrEntries, value, _options) {
    return settle(() => this.#kv.put(keyOrEntries, value));
  }
  delete(keyOrKeys, _options) {
    return settle(() => this.#kv.delete(keyOrKeys));
  }
  list(options) {
    return settle(() => this.#kv.list(options));
  }
  deleteAll(_options) {
    return settle(() => host(hostDeleteAll));
  }

  /** Runs `closure(txn)`; its writes commit if it resolves and roll back if it throws or calls `txn.rollback()`. */
  async transaction(closure) {
    host(beginTransaction);
    const txn = new Transaction(this);
    let result;
    try {
      result = await closure(txn);
    } catch (e) {
      if (!txn.rolledBack) host(rollbackTransaction);
      throw e;
    }
    if (!txn.rolledBack) host(commitTransaction);
    return result;
  }

  transactionSync(closure) {
    return runSync(closure);
  }

  getAlarm(_options) {
    return settle(() => {
      const at = getAlarm();
      return at === undefined || at === null ? null : Number(at);
    });
  }
  setAlarm(scheduledTime, _options) {
    return settle(() => {
      const ms = scheduledTime instanceof Date ? scheduledTime.getTime() : scheduledTime;
      if (typeof ms !== "number" || !Number.isFinite(ms)) {
        throw new TypeError("setAlarm takes a Date or milliseconds since the epoch");
      }
      setAlarm(BigInt(Math.trunc(ms)));
    });
  }
  deleteAlarm(_options) {
    return settle(() => deleteAlarm());
  }

  /** Writes are durable when the event's reply leaves the host; nothing to wait for. */
  sync() {
    return Promise.resolve();
  }
}

/** The `txn` of `storage.transaction(txn => …)`: the storage API plus `rollback()`. */
class Transaction {
  #storage;
  rolledBack = false;
  constructor(storage) {
    this.#storage = storage;
  }
  #live() {
    if (this.rolledBack) throw new Error("the transaction was rolled back");
    return this.#storage;
  }
  get(...a) {
    return this.#live().get(...a);
  }
  put(...a) {
    return this.#live().put(...a);
  }
  delete(...a) {
    return this.#live().delete(...a);
  }
  list(...a) {
    return this.#live().list(...a);
  }
  getAlarm(...a) {
    return this.#live().getAlarm(...a);
  }
  setAlarm(...a) {
    return this.#live().setAlarm(...a);
  }
  deleteAlarm(...a) {
    return this.#live().deleteAlarm(...a);
  }
  /** Undo the transaction's writes now; the closure's later storage calls fail. */
  rollback() {
    if (this.rolledBack) return;
    host(rollbackTransaction);
    this.rolledBack = true;
  }
}
