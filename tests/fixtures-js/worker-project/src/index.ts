// The entry Worker of the worker-project fixture, and the two Durable Object classes it talks
// to, written as for Cloudflare: `export default { fetch }` in front, `stub.fetch` to objects
// (a WebSocket upgrade passed on), text and data modules, JSON vars, `ctx.waitUntil`.
import { DurableObject } from "cloudflare:workers";
import page from "./index.html";
import notes from "./notes.md";
import table from "./table.bin";

interface Env {
  GREETING: string;
  LIMITS: { joins: number; burst: boolean };
  ROOMS: DurableObjectNamespace<Room>;
  COUNTERS: DurableObjectNamespace;
}

/** A room: its own path and headers on `/info`, posts in storage, members over WebSockets. */
export class Room extends DurableObject<Env> {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (request.headers.get("upgrade") === "websocket") {
      const name = url.searchParams.get("name") ?? "anonymous";
      const [client, server] = Object.values(new WebSocketPair());
      this.ctx.acceptWebSocket(server, [name]);
      server.serializeAttachment({ name });
      return new Response(null, { status: 101, webSocket: client });
    }
    // `/info`, or the Worker's own path when it passes the request on unchanged (`/direct/…`)
    if (url.pathname.endsWith("/info")) {
      return Response.json({
        url: request.url,
        path: url.pathname,
        query: url.search,
        method: request.method,
        body: await request.text(),
        test: request.headers.get("x-test"),
        greeting: this.env.GREETING,
        name: this.ctx.id.name ?? null,
      });
    }
    if (url.pathname === "/post" && request.method === "POST") {
      const posts = ((await this.ctx.storage.get<string[]>("posts")) ?? []).concat(await request.text());
      await this.ctx.storage.put("posts", posts);
      return Response.json({ posts: posts.length }, { status: 201, headers: { "x-room": "posted" } });
    }
    if (url.pathname === "/posts") return Response.json((await this.ctx.storage.get<string[]>("posts")) ?? []);
    if (url.pathname === "/empty") return new Response(null, { status: 204 });
    return new Response(`no route ${url.pathname} in the room`, { status: 404 });
  }

  async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const { name } = ws.deserializeAttachment() as { name: string };
    for (const member of this.ctx.getWebSockets()) member.send(`${name}: ${message}`);
  }

  /** An RPC method: env.ROOMS is bound without a stub package, so the Worker cannot call it. */
  async posts(): Promise<string[]> {
    return (await this.ctx.storage.get<string[]>("posts")) ?? [];
  }
}

/** A counter answering fetch only: `POST /increment`, `GET /`. */
export class Counter extends DurableObject<Env> {
  async fetch(request: Request): Promise<Response> {
    let count = (await this.ctx.storage.get<number>("count")) ?? 0;
    if (request.method === "POST") await this.ctx.storage.put("count", ++count);
    return new Response(String(count));
  }
}

export default {
  async fetch(request, env, ctx): Promise<Response> {
    const url = new URL(request.url);
    const [, first, name, ...rest] = url.pathname.split("/");
    switch (first) {
      case "":
        return new Response(page, { headers: { "content-type": "text/html; charset=utf-8" } });
      case "notes":
        return new Response(notes, { headers: { "content-type": "text/markdown" } });
      case "table":
        return Response.json({ isArrayBuffer: table instanceof ArrayBuffer, bytes: [...new Uint8Array(table)] });
      case "env":
        return Response.json({ greeting: env.GREETING, limits: env.LIMITS, joins: typeof env.LIMITS.joins });
      case "url":
        return Response.json({ url: request.url, method: request.method });
      case "rooms": {
        // Cloudflare's pattern: the room sees its own path, the rest of the request unchanged
        // (a WebSocket upgrade included)
        const target = new Request(`https://room/${rest.join("/")}${url.search}`, request);
        const response = await env.ROOMS.getByName(name).fetch(target);
        if (response.status === 101) return new Response(null, { status: 101, webSocket: response.webSocket });
        return response;
      }
      case "direct":
        // the request passed on as it is: the room sees the Worker's URL
        return env.ROOMS.getByName(name).fetch(request);
      case "count": {
        const counter = env.COUNTERS.get(env.COUNTERS.idFromName(name));
        return counter.fetch("https://counter/increment", { method: "POST" });
      }
      case "later": {
        // answered before the increment runs, but not sent before it has
        ctx.waitUntil(env.COUNTERS.getByName(name).fetch("https://counter/increment", { method: "POST" }));
        return new Response("queued", { status: 202 });
      }
      case "call":
        return Response.json(await env.ROOMS.getByName(name).posts());
      case "counter-method":
        // COUNTERS has no stub package (Counter has no typed methods): a method is called by
        // name (dynamic RPC), and Counter has no `increment`
        try {
          await (env.COUNTERS.getByName(name) as unknown as { increment(): Promise<number> }).increment();
          return new Response("called?");
        } catch (e) {
          return new Response(`${(e as Error).name}: ${(e as Error).message}`, { status: 501 });
        }
      case "throw":
        throw new Error("the worker failed on purpose");
      default:
        return new Response(`${env.GREETING}: no route ${url.pathname}`, { status: 404 });
    }
  },
} satisfies ExportedHandler<Env>;
