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

  // untyped: not a typed RPC method, reached by dynamic RPC (as on Cloudflare)
  async rename(name) {
    this.name = name;
  }

  async stats(since) {
    return {
      since,
      when: new Date(0),
      tags: new Set(["a", "b"]),
      nothing: null,
      missing: undefined,
      big: 10n ** 20n,
      name: this.name ?? null,
    };
  }

  async fail() {
    throw new RangeError("nope");
  }
}

export default {
  async fetch(request, env) {
    const [, kind, name, action = ""] = new URL(request.url).pathname.split("/");
    if (kind === "dynamic") return Response.json(await dynamicCalls(env, name));
    const namespace = kind === "counter" ? env.COUNTERS : kind === "room" ? env.ROOMS : null;
    if (!namespace || !name) return new Response("not found", { status: 404 });
    const stub = namespace.get(namespace.idFromName(name));
    return stub.fetch(`https://object/${action}`);
  },
};

// Calls Room's untyped methods as Cloudflare code does: through the stub, by name, with
// structured-clone values both ways.
async function dynamicCalls(env, name) {
  const room = env.ROOMS.get(env.ROOMS.idFromName(name));
  const out = {};
  // `id` is the stub's DurableObjectId, not a method called by name
  out.stubId = String(room.id) === String(env.ROOMS.idFromName(name));
  const byName = env.ROOMS.getByName(name);
  out.byNameId = String(byName.id) === String(room.id) && byName.id.name === name;
  out.renamed = await room.rename("renamed");
  const stats = await room.stats(5);
  out.stats = {
    since: stats.since,
    when: stats.when instanceof Date ? stats.when.toISOString() : "not a Date",
    tags: stats.tags instanceof Set ? [...stats.tags] : "not a Set",
    nothing: stats.nothing,
    missing: "missing" in stats && stats.missing === undefined,
    big: typeof stats.big === "bigint" ? String(stats.big) : "not a bigint",
    name: stats.name,
  };
  try {
    await room.fail();
  } catch (e) {
    out.fail = `${e.name}: ${e.message}`;
  }
  try {
    await room.nope();
  } catch (e) {
    out.nope = `${e.name} ${e.kind}`;
  }
  try {
    await env.COUNTERS.getByName("a").anything();
  } catch (e) {
    out.classic = e.kind;
  }
  return out;
}
