// A chat room's message log in SQL: typed RPC (`post`, `history`, `stats`) and an HTTP face
// (`GET /messages`, `POST /messages`), written against Cloudflare's API.
import { DurableObject, type DurableObjectState } from "cloudflare:workers";

/** One message of the room. */
export interface Message {
  id: number;
  author: string;
  text: string;
  sentAt: number;
}

/** How busy the room is. */
export interface RoomStats {
  messages: number;
  authors: string[];
}

const MAX_TEXT = 2000;

export class ChatRoom extends DurableObject {
  constructor(ctx: DurableObjectState, env: Record<string, string>) {
    super(ctx, env);
    // runs before the first event reaches the object
    ctx.blockConcurrencyWhile(async () => {
      this.ctx.storage.sql.exec(`CREATE TABLE IF NOT EXISTS messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        author TEXT NOT NULL,
        text TEXT NOT NULL,
        sent_at INTEGER NOT NULL
      )`);
    });
  }

  /** Append a message; returns it with its id and time. */
  async post(author: string, text: string): Promise<Message> {
    if (author.trim() === "") throw new TypeError("author must not be empty");
    if (text.length > MAX_TEXT) throw new RangeError(`message longer than ${MAX_TEXT} characters`);
    const row = this.ctx.storage.sql
      .exec<{ id: number; sent_at: number }>(
        "INSERT INTO messages (author, text, sent_at) VALUES (?, ?, ?) RETURNING id, sent_at",
        author,
        text,
        Date.now(),
      )
      .one();
    return { id: row.id, author, text, sentAt: row.sent_at };
  }

  /** The latest `limit` messages (default 50), oldest first; only those before id `before` if given. */
  async history(limit: number = 50, before?: number): Promise<Message[]> {
    const rows = this.ctx.storage.sql
      .exec<{ id: number; author: string; text: string; sent_at: number }>(
        "SELECT id, author, text, sent_at FROM messages WHERE id < ? ORDER BY id DESC LIMIT ?",
        before ?? Number.MAX_SAFE_INTEGER,
        limit,
      )
      .toArray();
    return rows.reverse().map((r) => ({ id: r.id, author: r.author, text: r.text, sentAt: r.sent_at }));
  }

  /** Message count and the distinct authors, alphabetically. */
  async stats(): Promise<RoomStats> {
    const { n } = this.ctx.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM messages").one();
    const authors = [...this.ctx.storage.sql.exec("SELECT DISTINCT author FROM messages ORDER BY author").raw()].map(
      ([a]) => a as string,
    );
    return { messages: n, authors };
  }

  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname !== "/messages") return new Response("not found", { status: 404 });
    if (request.method === "GET") {
      const limit = Number(url.searchParams.get("limit") ?? 50);
      return Response.json(await this.history(limit));
    }
    if (request.method === "POST") {
      const { author, text } = (await request.json()) as { author: string; text: string };
      try {
        return Response.json(await this.post(author, text), { status: 201 });
      } catch (e) {
        return Response.json({ error: (e as Error).message }, { status: 400 });
      }
    }
    return new Response("method not allowed", { status: 405 });
  }
}
