import { DurableObject } from "cloudflare:workers";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class Ticker extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.heard = [];
  }

  async fetch(request) {
    const path = new URL(request.url).pathname;
    if (path === "/later") {
      // fire-and-forget: not awaited, it must still run while the object is live
      this.later(Number(new URL(request.url).searchParams.get("ms") || 300));
      return new Response("scheduled");
    }
    if (path === "/fetch-later") {
      // fire-and-forget I/O: the answer arrives after the event ended, and what follows it
      // (reading the body, a second request) must still happen while the object is live
      const target = new URL(request.url).searchParams.get("url");
      fetch(target)
        .then((response) => response.text())
        .then((text) => fetch(`${target}/report?got=${encodeURIComponent(text)}`));
      return new Response("fetching");
    }
    if (path === "/state") {
      return Response.json({
        later: (await this.ctx.storage.get("later")) ?? null,
        closed: (await this.ctx.storage.get("closed")) ?? null,
        hibernatable: this.ctx.getWebSockets().length,
        heard: this.heard,
      });
    }
    if (request.headers.get("Upgrade") !== "websocket") return new Response("not found", { status: 404 });
    const [client, server] = Object.values(new WebSocketPair());
    if (path === "/hibernatable") {
      this.ctx.acceptWebSocket(server);
    } else {
      // the standard API: this instance's socket, its events to its listeners
      server.accept();
      server.addEventListener("message", (event) => this.onMessage(server, event.data));
      server.addEventListener("close", async (event) => {
        await this.ctx.storage.put("closed", `${event.code} ${event.reason}`);
      });
    }
    return new Response(null, { status: 101, webSocket: client });
  }

  onMessage(ws, data) {
    this.heard.push(data);
    if (data === "ticks") {
      // three ticks from an interval, then it stops itself
      let n = 0;
      const timer = setInterval(() => {
        n += 1;
        ws.send(`tick ${n}`);
        if (n === 3) clearInterval(timer);
      }, 100);
    } else if (data === "late") {
      setTimeout(() => ws.send("late"), 200);
    } else if (data === "spin") {
      // a runaway listener: the CPU limit stops it and the instance goes, its sockets with it
      for (;;);
    } else if (data === "cancelled") {
      const timer = setTimeout(() => ws.send("should not arrive"), 100);
      clearTimeout(timer);
      setTimeout(() => ws.send("after the cancelled one"), 300);
    } else {
      ws.send(`echo ${data}`);
    }
  }

  // hibernation API: a timer set in a handler also fires while the object is live
  async webSocketMessage(ws, message) {
    setTimeout(() => ws.send(`late ${message}`), 150);
  }

  async later(ms) {
    await sleep(ms);
    await this.ctx.storage.put("later", "ran");
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const [, kind, name = "", rest = ""] = url.pathname.split("/");
    if (kind === "worker-ws") {
      const [client, server] = Object.values(new WebSocketPair());
      server.accept();
      if (name === "refuse") {
        // the common idiom: say why over the socket, then close it
        server.send(JSON.stringify({ error: "no room for you" }));
        server.close(1011, "refused");
      } else {
        server.addEventListener("message", (event) => server.send(`worker ${event.data}`));
      }
      return new Response(null, { status: 101, webSocket: client });
    }
    if (kind === "ticker" && name) {
      const stub = env.TICKERS.get(env.TICKERS.idFromName(name));
      return stub.fetch(new Request(`https://object/${rest}${url.search}`, request));
    }
    return new Response("not found", { status: 404 });
  },
};
