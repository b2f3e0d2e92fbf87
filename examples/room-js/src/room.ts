// A chat room in TypeScript that calls objects of two other classes through typed stubs:
// - LIMITER → `limiter` (TypeScript, examples/rate-limiter-js), one object per author;
// - COUNTER → `counter` (Rust, examples/counter), one object counting every message of every room.
// The stubs' WIT and TypeScript types (stubs/) are generated from the deployed classes by
// `wasmdo bindgen` (`npm run stubs`); package.json's `wasmdo.bindings` hands the WIT to the build.
import { DurableObject, type DurableObjectNamespace, type DurableObjectState } from "cloudflare:workers";

import type { Counter } from "../stubs/counter";
import type { Limiter } from "../stubs/limiter";

interface Env {
  COUNTER: DurableObjectNamespace<Counter>;
  LIMITER: DurableObjectNamespace<Limiter>;
}

/** A message as the room keeps it. */
export interface Message {
  /** Its number among all messages of all rooms (from the global counter). */
  seq: number;
  author: string;
  text: string;
}

/** What `post` answers. */
export interface Posted {
  seq: number;
  /** How many more messages the author may post right now. */
  remaining: number;
}

export class Room extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.blockConcurrencyWhile(async () => {
      ctx.storage.sql.exec(
        "CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY, author TEXT NOT NULL, text TEXT NOT NULL)",
      );
    });
  }

  /** Posts a message if the author's rate limit allows it; throws `RateLimited` otherwise. */
  async post(author: string, text: string): Promise<Posted> {
    if (author === "" || text === "") throw new TypeError("author and text must not be empty");
    const decision = await this.env.LIMITER.getByName(author).take();
    if (!decision.allowed) {
      const e = new Error(`${author} is posting too fast: retry in ${decision.retryAfterMs} ms`);
      e.name = "RateLimited";
      throw e;
    }
    // s64 crosses as a bigint
    const seq = Number(await this.env.COUNTER.getByName("messages").increment(1n));
    this.ctx.storage.sql.exec("INSERT INTO messages (seq, author, text) VALUES (?, ?, ?)", seq, author, text);
    return { seq, remaining: decision.remaining };
  }

  /** The latest `limit` messages (default 20), oldest first. */
  async history(limit: number = 20): Promise<Message[]> {
    const rows = this.ctx.storage.sql
      .exec<{ seq: number; author: string; text: string }>(
        "SELECT seq, author, text FROM messages ORDER BY seq DESC LIMIT ?",
        limit,
      )
      .toArray();
    return rows.reverse().map((r) => ({ seq: r.seq, author: r.author, text: r.text }));
  }

  /** Messages posted in all rooms, from the global counter. */
  async total(): Promise<number> {
    return Number(await this.env.COUNTER.getByName("messages").get());
  }
}
