// The chat app's Worker: serves the page and sends each room's requests to that room's Durable
// Object (one per room name), after asking the client's rate limiter before a join.
//
//   GET /                              the chat page (index.html)
//   GET /api/rooms/<room>/history      the room's latest messages, as JSON
//   GET /api/rooms/<room>/websocket?name=<name>   (WebSocket) join the room
import html from "./index.html";
import type { ChatRoom } from "./chat-room";
import type { RateLimiter } from "./rate-limiter";

export { ChatRoom } from "./chat-room";
export { RateLimiter } from "./rate-limiter";

/** The bindings and vars of wrangler.toml. */
export interface Env {
  ROOMS: DurableObjectNamespace<ChatRoom>;
  LIMITER: DurableObjectNamespace<RateLimiter>;
  MAX_HISTORY: string;
  RATE_LIMIT: { joins: number; per_seconds: number };
}

const ROOM_ROUTE = /^\/api\/rooms\/([^/]+)\/(history|websocket)$/;
const ROOM_NAME = /^[\w-]{1,64}$/;

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/" && request.method === "GET") {
      return new Response(html, { headers: { "content-type": "text/html; charset=utf-8" } });
    }
    const route = ROOM_ROUTE.exec(url.pathname);
    if (!route) return new Response("not found", { status: 404 });
    const [, room, action] = route;
    if (!ROOM_NAME.test(room)) {
      return new Response("a room name is 1–64 letters, digits, _ or -", { status: 400 });
    }
    const stub = env.ROOMS.get(env.ROOMS.idFromName(room));
    if (action === "history") return stub.fetch(request);

    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("join with a WebSocket", { status: 426 });
    }
    // Cloudflare sets CF-Connecting-IP; a local runtime may not, and then everyone shares "local".
    const client = request.headers.get("cf-connecting-ip") ?? "local";
    const limiter = env.LIMITER.get(env.LIMITER.idFromName(client));
    const decision = await limiter.fetch("https://rate-limiter/take", {
      method: "POST",
      body: JSON.stringify({ capacity: env.RATE_LIMIT.joins, perSeconds: env.RATE_LIMIT.per_seconds }),
    });
    if (decision.status === 429) {
      const retryAfter = decision.headers.get("retry-after") ?? "60";
      return new Response(`too many joins from your address: try again in ${retryAfter} s`, {
        status: 429,
        headers: { "retry-after": retryAfter },
      });
    }
    if (!decision.ok) return new Response("the rate limiter failed", { status: 500 });
    // the room accepts the socket (status 101); answering with its response hands it over
    return stub.fetch(request);
  },
};
