// The same workload as examples/counter, as a Cloudflare Durable Object on workerd.
// POST /rpc/counter/{name}/increment  body [by]  -> total   (one durable write)
// POST /rpc/counter/{name}/get                   -> total
import { DurableObject } from "cloudflare:workers";

export class Counter extends DurableObject {
  async increment(by) {
    const v = ((await this.ctx.storage.get("count")) ?? 0) + by;
    await this.ctx.storage.put("count", v);
    return v;
  }
  async get() {
    return (await this.ctx.storage.get("count")) ?? 0;
  }
}

export default {
  async fetch(request, env) {
    const [, rpc, , name, method] = new URL(request.url).pathname.split("/");
    if (rpc !== "rpc") return new Response("not found", { status: 404 });
    const stub = env.COUNTER.get(env.COUNTER.idFromName(name));
    const args = request.method === "POST" ? await request.json().catch(() => []) : [];
    const result = method === "increment" ? await stub.increment(args[0] ?? 1) : await stub.get();
    return new Response(JSON.stringify(result) + "\n", { headers: { "content-type": "application/json" } });
  },
};
