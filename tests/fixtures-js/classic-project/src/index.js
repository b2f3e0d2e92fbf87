import { SocketServer } from "./base.js";

// The classic form: no `extends DurableObject`, the state and env in the constructor.
export class Counter {
  constructor(state, env) {
    this.state = state;
    this.env = env;
  }

  async fetch(request) {
    let value = (await this.state.storage.get("value")) || 0;
    if (new URL(request.url).pathname.endsWith("/increment")) {
      value += 1;
      await this.state.storage.put("value", value);
    }
    return new Response(`count ${value} for ${this.state.id.name}`);
  }
}

// DurableObject through SocketServer.
export class Room extends SocketServer {
  async fetch(request) {
    this.handle(null, { url: request.url });
    const visits = ((await this.ctx.storage.get("visits")) || 0) + 1;
    await this.ctx.storage.put("visits", visits);
    return Response.json({ visits, joined: this.joined });
  }

  // untyped: not a typed RPC method (yet), and no reason to fail the build
  async rename(name) {
    this.name = name;
  }
}

export default {
  async fetch(request, env) {
    const [, kind, name, action = ""] = new URL(request.url).pathname.split("/");
    const namespace = kind === "counter" ? env.COUNTERS : kind === "room" ? env.ROOMS : null;
    if (!namespace || !name) return new Response("not found", { status: 404 });
    const stub = namespace.get(namespace.idFromName(name));
    return stub.fetch(`https://object/${action}`);
  },
};
