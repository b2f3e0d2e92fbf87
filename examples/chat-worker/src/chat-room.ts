// One chat room: its members' WebSockets (hibernatable: the room sleeps while they stay
// connected) and its history in storage, one key per message.
//
// The Worker (index.ts) forwards two requests here:
// - `GET …/history` → `{ "messages": [{ time, name, text }, …] }`, oldest first;
// - `GET …/websocket?name=<name>`, a WebSocket upgrade: the member joins. The room sends the new
//   member `{ type: "history", messages }`, everyone `{ type: "joined", name, online }` and
//   `{ type: "left", name, online }`, and each text message a member sends, to everyone, as
//   `{ type: "message", time, name, text }`; a message it refuses gets `{ type: "error", error }`.
import { DurableObject } from "cloudflare:workers";
import type { Env } from "./index";

/** A message as stored (under `msg:<time, zero-padded>`) and as sent. */
export interface ChatMessage {
  time: number;
  name: string;
  text: string;
}

/** What each socket carries across hibernation. */
interface Member {
  name: string;
}

const PREFIX = "msg:";
const MAX_TEXT = 1000;
/** 1–32 characters, none of them a control character. */
const NAME = /^[^\x00-\x1f\x7f]{1,32}$/;

/** Storage keys sort by time: zero-padded to 16 digits (milliseconds until the year 318857). */
function key(time: number): string {
  return PREFIX + String(time).padStart(16, "0");
}

export class ChatRoom extends DurableObject<Env> {
  /** The newest message's time, so that each new message gets a later one (its key is unique);
   * 0 until read from storage (again after hibernation: instance fields do not survive it). */
  private lastTime = 0;

  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname.endsWith("/history") && request.method === "GET") {
      return Response.json({ messages: await this.history() });
    }
    if (url.pathname.endsWith("/websocket")) return this.join(request, url);
    return new Response("not found", { status: 404 });
  }

  async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const text = typeof message === "string" ? message.trim() : "";
    if (text.length === 0 || text.length > MAX_TEXT) {
      ws.send(JSON.stringify({ type: "error", error: `a message is 1–${MAX_TEXT} characters of text` }));
      return;
    }
    const { name } = ws.deserializeAttachment() as Member;
    if (this.lastTime === 0) {
      const [latest] = (await this.ctx.storage.list<ChatMessage>({ prefix: PREFIX, reverse: true, limit: 1 })).values();
      this.lastTime = latest?.time ?? 0;
    }
    const time = Math.max(Date.now(), this.lastTime + 1);
    this.lastTime = time;
    const stored: ChatMessage = { time, name, text };
    await this.ctx.storage.put(key(time), stored);
    this.broadcast({ type: "message", ...stored });
  }

  async webSocketClose(ws: WebSocket, code: number, reason: string, wasClean: boolean): Promise<void> {
    this.leave(ws);
  }

  async webSocketError(ws: WebSocket, error: unknown): Promise<void> {
    this.leave(ws);
  }

  private async join(request: Request, url: URL): Promise<Response> {
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("this is a WebSocket endpoint", { status: 426 });
    }
    const name = (url.searchParams.get("name") ?? "").trim();
    if (!NAME.test(name)) {
      return new Response("a name is 1–32 characters, none of them a control character", { status: 400 });
    }
    const [client, server] = Object.values(new WebSocketPair());
    this.ctx.acceptWebSocket(server);
    server.serializeAttachment({ name } satisfies Member);
    server.send(JSON.stringify({ type: "history", messages: await this.history() }));
    this.broadcast({ type: "joined", name, online: this.online() });
    return new Response(null, { status: 101, webSocket: client });
  }

  /** Tells the others that `ws`'s member left, and completes the closing handshake. */
  private leave(ws: WebSocket): void {
    try {
      ws.close(1000, "goodbye");
    } catch {
      // closed already
    }
    const { name } = ws.deserializeAttachment() as Member;
    this.broadcast({ type: "left", name, online: this.online(ws) }, ws);
  }

  /** The latest MAX_HISTORY messages, oldest first. */
  private async history(): Promise<ChatMessage[]> {
    const limit = Number(this.env.MAX_HISTORY) || 50;
    const newest = await this.ctx.storage.list<ChatMessage>({ prefix: PREFIX, reverse: true, limit });
    return [...newest.values()].reverse();
  }

  /** The names of the members connected now (but `leaving`), alphabetically. */
  private online(leaving?: WebSocket): string[] {
    return this.ctx
      .getWebSockets()
      .filter((ws) => ws !== leaving)
      .map((ws) => (ws.deserializeAttachment() as Member).name)
      .sort();
  }

  private broadcast(event: object, except?: WebSocket): void {
    const text = JSON.stringify(event);
    for (const ws of this.ctx.getWebSockets()) {
      if (ws === except) continue;
      try {
        ws.send(text);
      } catch {
        // a socket that is closing: its webSocketClose tells the others
      }
    }
  }
}
