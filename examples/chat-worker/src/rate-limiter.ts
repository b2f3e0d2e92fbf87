// A token bucket per client address (the Worker names one object per address). The Worker asks
// before each join:
//   POST /take  {"capacity": 20, "perSeconds": 60}
// → 200 {"allowed": true, "remaining": 19}, or 429 {"allowed": false, "retryAfter": <seconds>}
// with a Retry-After header. The bucket holds `capacity` tokens and refills them over
// `perSeconds`; it is kept in storage, so it holds across hibernation and restarts.
import { DurableObject } from "cloudflare:workers";
import type { Env } from "./index";

interface Bucket {
  tokens: number;
  updatedAt: number;
}

interface Take {
  capacity: number;
  perSeconds: number;
}

export class RateLimiter extends DurableObject<Env> {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname !== "/take" || request.method !== "POST") {
      return new Response("POST /take", { status: 404 });
    }
    const { capacity, perSeconds } = (await request.json()) as Take;
    if (!(capacity >= 1) || !(perSeconds > 0)) {
      return Response.json({ error: "capacity ≥ 1 and perSeconds > 0" }, { status: 400 });
    }
    const now = Date.now();
    const saved = await this.ctx.storage.get<Bucket>("bucket");
    const refillPerMs = capacity / (perSeconds * 1000);
    const tokens = Math.min(capacity, saved ? saved.tokens + (now - saved.updatedAt) * refillPerMs : capacity);
    if (tokens < 1) {
      const retryAfter = Math.ceil((1 - tokens) / refillPerMs / 1000);
      await this.ctx.storage.put<Bucket>("bucket", { tokens, updatedAt: now });
      return Response.json(
        { allowed: false, retryAfter },
        { status: 429, headers: { "retry-after": String(retryAfter) } },
      );
    }
    await this.ctx.storage.put<Bucket>("bucket", { tokens: tokens - 1, updatedAt: now });
    return Response.json({ allowed: true, remaining: Math.floor(tokens - 1) });
  }
}
