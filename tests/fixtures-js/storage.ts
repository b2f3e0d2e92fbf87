// Exercises every storage method of guest-sdk-js through typed RPC: KV (async and sync),
// SQL cursors, transactions, structured values, alarms.
import { DurableObject } from "cloudflare:workers";

/** `list` options, as JSON-able RPC data. */
export interface ListOptions {
  prefix?: string;
  start?: string;
  startAfter?: string;
  end?: string;
  limit?: number;
  reverse?: boolean;
}

/** What one `sql.exec` gave, every cursor view of it. */
export interface SqlOutcome {
  columns: string[];
  /** `toArray()` as JSON (blobs as arrays of bytes, big integers as strings). */
  rows: string;
  /** `raw().toArray()` of a second, identical exec. */
  raw: string;
  /** Iterating a third exec with for…of. */
  iterated: string;
  rowsRead: number;
  rowsWritten: number;
}

function json(value: unknown): string {
  return JSON.stringify(value, (_k, v) => {
    if (typeof v === "bigint") return v.toString();
    if (v instanceof ArrayBuffer) return [...new Uint8Array(v)];
    return v;
  });
}

/** A value described precisely enough to tell Date from string, Map from object, -0 from 0. */
function describe(v: unknown): string {
  if (v === undefined) return "undefined";
  if (v === null) return "null";
  if (typeof v === "number") return Object.is(v, -0) ? "-0" : `number:${v}`;
  if (typeof v === "bigint") return `bigint:${v}`;
  if (typeof v === "string") return `string:${v}`;
  if (typeof v === "boolean") return `boolean:${v}`;
  if (v instanceof Date) return `Date:${v.toISOString()}`;
  if (v instanceof Map) return `Map{${[...v].map(([k, x]) => `${describe(k)}=>${describe(x)}`).join(",")}}`;
  if (v instanceof Set) return `Set{${[...v].map(describe).join(",")}}`;
  if (v instanceof Uint8Array) return `Uint8Array[${[...v].join(",")}]`;
  if (v instanceof ArrayBuffer) return `ArrayBuffer[${[...new Uint8Array(v)].join(",")}]`;
  if (v instanceof RegExp) return `RegExp:${v.source}/${v.flags}`;
  if (v instanceof Error) return `${v.name}:${v.message}`;
  if (Array.isArray(v)) return `[${v.map(describe).join(",")}]`;
  if (typeof v === "object") {
    return `{${Object.entries(v as object).map(([k, x]) => `${k}:${describe(x)}`).join(",")}}`;
  }
  return `?${typeof v}`;
}

function parse(text: string): unknown {
  return JSON.parse(text);
}

export class StorageProbe extends DurableObject {
  async put(key: string, value: string): Promise<void> {
    await this.ctx.storage.put(key, parse(value));
  }

  async get(key: string): Promise<string | undefined> {
    const v = await this.ctx.storage.get(key);
    return v === undefined ? undefined : json(v);
  }

  async putMany(entries: [string, string][]): Promise<void> {
    await this.ctx.storage.put(Object.fromEntries(entries.map(([k, v]) => [k, parse(v)])));
  }

  async getMany(keys: string[]): Promise<[string, string][]> {
    const map = await this.ctx.storage.get(keys);
    return [...map].map(([k, v]) => [k, json(v)]);
  }

  async delete(key: string): Promise<boolean> {
    return this.ctx.storage.delete(key);
  }

  async deleteMany(keys: string[]): Promise<number> {
    return this.ctx.storage.delete(keys);
  }

  async list(options: ListOptions): Promise<[string, string][]> {
    const map = await this.ctx.storage.list(options);
    return [...map].map(([k, v]) => [k, json(v)]);
  }

  async deleteAll(): Promise<void> {
    await this.ctx.storage.deleteAll();
  }

  /** The synchronous API: put, get, list, delete through `ctx.storage.kv`. */
  async syncKv(key: string, value: string): Promise<string> {
    const kv = this.ctx.storage.kv;
    kv.put(key, parse(value));
    const got = kv.get(key);
    const listed = [...kv.list({ prefix: key })].map(([k]) => k);
    const deleted = kv.delete(key);
    return json({ got, listed, deleted, after: kv.get(key) ?? null });
  }

  /** Stores values only structured clone can hold (read back by `describeExotic`). */
  async putExotic(): Promise<void> {
    await this.ctx.storage.put({
      date: new Date(Date.UTC(2024, 1, 29, 12, 0, 0)),
      map: new Map<unknown, unknown>([["a", 1], [2, new Set(["x"])]]),
      set: new Set([1, "two", 3n]),
      bytes: new Uint8Array([0, 1, 254, 255]),
      buffer: new Uint8Array([9, 8, 7]).buffer,
      big: 12345678901234567890n,
      special: [NaN, Infinity, -Infinity, -0, undefined, null],
      nested: { when: new Date(0), tags: new Set(["a"]), re: /ab+c/gi, err: new RangeError("too far") },
    });
  }

  async describeExotic(): Promise<string> {
    const keys = ["date", "map", "set", "bytes", "buffer", "big", "special", "nested"];
    const map = await this.ctx.storage.get(keys);
    return keys.map((k) => `${k}=${describe(map.get(k))}`).join(";");
  }

  /** Storing a function fails with DataCloneError; returns the error's name and message. */
  async putUnclonable(): Promise<string> {
    try {
      await this.ctx.storage.put("f", { f: () => 1 });
      return "stored";
    } catch (e) {
      return `${(e as Error).name}: ${(e as Error).message}`;
    }
  }

  /** A value over the host's per-entry limit: the StorageError, caught. */
  async putHuge(bytes: number): Promise<string> {
    try {
      await this.ctx.storage.put("huge", "x".repeat(bytes));
      return "stored";
    } catch (e) {
      return `${(e as Error).name}(${(e as { code?: string }).code}): ${(e as Error).message}`;
    }
  }

  async sql(query: string, bindings: string): Promise<SqlOutcome> {
    const args = (parse(bindings) as unknown[]).map((b) =>
      b !== null && typeof b === "object" && "bytes" in (b as object)
        ? new Uint8Array((b as { bytes: number[] }).bytes)
        : typeof b === "string" && b.startsWith("bigint:")
          ? BigInt(b.slice(7))
          : b,
    );
    const sql = this.ctx.storage.sql;
    const cursor = sql.exec(query, ...args);
    const columns = cursor.columnNames;
    const rows = cursor.toArray();
    const outcome = { columns, rows: json(rows), rowsRead: cursor.rowsRead, rowsWritten: cursor.rowsWritten };
    // the same query again for raw() and iteration, only when it is a read
    if (!/^\s*select/i.test(query)) return { ...outcome, raw: "[]", iterated: "[]" };
    const raw = sql.exec(query, ...args).raw().toArray();
    const iterated: unknown[] = [];
    for (const row of sql.exec(query, ...args)) iterated.push(row);
    return { ...outcome, raw: json(raw), iterated: json(iterated) };
  }

  async sqlOne(query: string): Promise<string> {
    return json(this.ctx.storage.sql.exec(query).one());
  }

  async databaseSize(): Promise<number> {
    return this.ctx.storage.sql.databaseSize;
  }

  /** `transaction` whose closure throws: the error propagates, its writes are undone. */
  async transactionThrows(key: string): Promise<string> {
    try {
      await this.ctx.storage.transaction(async (txn) => {
        await txn.put(key, "inside");
        throw new Error("abandon");
      });
      return "committed";
    } catch (e) {
      return `${(e as Error).message}; ${key}=${json((await this.ctx.storage.get(key)) ?? null)}`;
    }
  }

  /** `transaction` with an explicit `txn.rollback()`. */
  async transactionRollback(key: string): Promise<string> {
    const result = await this.ctx.storage.transaction(async (txn) => {
      await txn.put(key, "inside");
      txn.rollback();
      return "returned";
    });
    return `${result}; ${key}=${json((await this.ctx.storage.get(key)) ?? null)}`;
  }

  /** Nested transactions: the inner one rolls back, the outer commits. */
  async transactionNested(key: string): Promise<string> {
    await this.ctx.storage.transaction(async (outer) => {
      await outer.put(`${key}-outer`, 1);
      this.ctx.storage.transactionSync(() => {
        this.ctx.storage.kv.put(`${key}-sync`, 2);
      });
      try {
        this.ctx.storage.transactionSync(() => {
          this.ctx.storage.kv.put(`${key}-inner`, 3);
          throw new Error("inner");
        });
      } catch {
        // the inner transaction's write is gone
      }
    });
    const got = await this.ctx.storage.get([`${key}-outer`, `${key}-sync`, `${key}-inner`]);
    return json(Object.fromEntries(got));
  }

  /** Writes, then throws: the whole event is rolled back by the host. */
  async putThenThrow(key: string): Promise<void> {
    await this.ctx.storage.put(key, "doomed");
    this.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS doomed (x)");
    throw new Error(`rolled back ${key}`);
  }

  async setAlarmIn(ms: number): Promise<number> {
    const at = Date.now() + ms;
    await this.ctx.storage.setAlarm(new Date(at));
    return at;
  }

  async getAlarm(): Promise<number | null> {
    return this.ctx.storage.getAlarm();
  }

  async deleteAlarm(): Promise<void> {
    await this.ctx.storage.deleteAlarm();
  }

  async alarm(info?: { retryCount: number; isRetry: boolean }): Promise<void> {
    const fired = ((await this.ctx.storage.get<number>("alarms-fired")) ?? 0) + 1;
    await this.ctx.storage.put("alarms-fired", fired);
    await this.ctx.storage.put("last-alarm-info", info ?? null);
  }

  async alarmsFired(): Promise<number> {
    return (await this.ctx.storage.get<number>("alarms-fired")) ?? 0;
  }
}
