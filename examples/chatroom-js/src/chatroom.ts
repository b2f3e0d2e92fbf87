// The chat room of examples/chatroom (Rust), written the Cloudflare way: the WebSocket
// Hibernation API (`ctx.acceptWebSocket`, `webSocketMessage`, attachments), history in SQL.
// Join at ws://…/objects/chatroom-js/<room>/join?name=<name>; this code runs on Cloudflare as is.
import { DurableObject, type DurableObjectState } from "cloudflare:workers";

/** A stored message. */
export interface ChatMessage {
  seq: number;
  author: string;
  text: string;
}

const MAX_TEXT = 2000;
const BACKLOG = 20;

export class ChatRoomJs extends DurableObject {
  constructor(ctx: DurableObjectState, env: Record<string, string>) {
    super(ctx, env);
    ctx.storage.sql.exec(
      "CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, author TEXT NOT NULL, text TEXT NOT NULL)",
    );
    // answered by the host while the room sleeps
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
  }

  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname !== "/join") return new Response("join at /join?name=<your name>", { status: 404 });
    if (request.headers.get("upgrade") !== "websocket") return new Response("/join is a WebSocket", { status: 426 });
    const name = url.searchParams.get("name") ?? "";
    if (!/^[\w-]{1,64}$/.test(name)) return new Response("a name of 1–64 letters, digits, - or _", { status: 400 });

    const [client, server] = Object.values(new WebSocketPair());
    this.ctx.acceptWebSocket(server, [`name:${name}`]);
    server.serializeAttachment({ name });
    server.send(JSON.stringify({ type: "history", messages: await this.history(BACKLOG) }));
    this.broadcast({ type: "joined", name });
    return new Response(null, { status: 101, webSocket: client });
  }

  async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    if (typeof message !== "string" || message.length === 0 || message.length > MAX_TEXT) {
      ws.send(JSON.stringify({ type: "error", error: "a message is 1–2000 characters of text" }));
      return;
    }
    const { name } = ws.deserializeAttachment() as { name: string };
    const { seq } = this.ctx.storage.sql
      .exec<{ seq: number }>("INSERT INTO messages (author, text) VALUES (?, ?) RETURNING seq", name, message)
      .one();
    this.broadcast({ type: "message", seq, author: name, text: message });
  }

  async webSocketClose(ws: WebSocket, code: number, reason: string, wasClean: boolean): Promise<void> {
    const { name } = ws.deserializeAttachment() as { name: string };
    this.broadcast({ type: "left", name });
  }

  /** The latest `limit` messages, oldest first. */
  async history(limit: number = BACKLOG): Promise<ChatMessage[]> {
    const rows = this.ctx.storage.sql
      .exec<{ seq: number; author: string; text: string }>(
        "SELECT seq, author, text FROM messages ORDER BY seq DESC LIMIT ?",
        limit,
      )
      .toArray();
    return rows.reverse().map((r) => ({ seq: r.seq, author: r.author, text: r.text }));
  }

  /** Who is connected now, alphabetically. */
  async online(): Promise<string[]> {
    return this.ctx
      .getWebSockets()
      .map((ws) => (ws.deserializeAttachment() as { name: string }).name)
      .sort();
  }

  private broadcast(event: unknown): void {
    const text = JSON.stringify(event);
    for (const ws of this.ctx.getWebSockets()) ws.send(text);
  }
}
