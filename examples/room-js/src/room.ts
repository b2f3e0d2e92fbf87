// A chat room in TypeScript that calls objects of two other classes:
// - MODERATOR → `moderator` (Python, examples/moderator-py), one object per author: may this text
//   be posted now? (It asks the TypeScript rate limiter and counts refusals in the Rust counter.)
//   Called by name, as Cloudflare's RPC calls any class: no stub needed.
// - COUNTER → `counter` (Rust, examples/counter), one object counting every message of every room,
//   through a typed stub: its WIT and TypeScript types (stubs/) are generated from the deployed
//   class by `wasmdo bindgen` (`npm run stubs`); package.json's `wasmdo.bindings` hands the WIT to
//   the build.
import { DurableObject, type DurableObjectNamespace, type DurableObjectState } from "cloudflare:workers";

import type { Counter } from "../stubs/counter";

/** What the moderator answers (its Python dataclass `Verdict`, as a plain object). */
interface Verdict {
  allowed: boolean;
  reason: "ok" | "banned-word" | "rate-limited";
  remaining: number;
}

interface Moderator {
  review(text: string): Promise<Verdict>;
}

interface Env {
  COUNTER: DurableObjectNamespace<Counter>;
  MODERATOR: DurableObjectNamespace<Moderator>;
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

  /** Posts a message if the author's moderator allows it; throws `RateLimited` (too many
   * messages too fast) or `Rejected` (a banned word) otherwise. */
  async post(author: string, text: string): Promise<Posted> {
    if (author === "" || text === "") throw new TypeError("author and text must not be empty");
    const verdict = await this.env.MODERATOR.getByName(author).review(text);
    if (!verdict.allowed) {
      const limited = verdict.reason === "rate-limited";
      const e = new Error(limited ? `${author} is posting too fast` : `the message has a banned word`);
      e.name = limited ? "RateLimited" : "Rejected";
      throw e;
    }
    // s64 crosses as a bigint
    const seq = Number(await this.env.COUNTER.getByName("messages").increment(1n));
    this.ctx.storage.sql.exec("INSERT INTO messages (seq, author, text) VALUES (?, ?, ?)", seq, author, text);
    return { seq, remaining: verdict.remaining };
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
