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
