// WebSockets in JavaScript with an in-memory count that survives hibernation through
// `snapshot()` / `restore(state)` (wasmdo's snapshots; Cloudflare would lose it).
import { DurableObject, type DurableObjectState } from "cloudflare:workers";

export class Sockets extends DurableObject {
  messages = 0;
  constructed = true;

  constructor(ctx: DurableObjectState, env: Record<string, string>) {
    super(ctx, env);
  }

  async fetch(request: Request): Promise<Response> {
    const [client, server] = Object.values(new WebSocketPair());
    this.ctx.acceptWebSocket(server, ["all"]);
    return new Response(null, { status: 101, webSocket: client });
  }

  async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    if (message === "burst") {
      // broadcasts, interleaved with a binary message changed after sending and a large one:
      // every client gets its messages in the order they were sent
      const all = this.ctx.getWebSockets("all");
      for (const s of all) s.send("one");
      for (const s of all) s.send("two");
      const bytes = new Uint8Array([1, 2, 3]);
      ws.send(bytes);
      bytes[0] = 9;
      ws.send("x".repeat(20_000));
      for (const s of all) s.send("three");
      return;
    }
    if (message === "last words") {
      ws.send("bye");
      ws.close(4001, "done");
      return;
    }
    this.messages += 1;
    ws.send(`${this.messages} ${this.constructed ? "constructed" : "restored"} ${this.ctx.getWebSockets("all").length}`);
  }

  snapshot(): unknown {
    return { messages: this.messages };
  }

  restore(state: { messages: number }): void {
    this.messages = state.messages;
    this.constructed = false;
  }
}
