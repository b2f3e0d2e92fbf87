// Object-to-object calls on workerd, the same workload as the wasmdo fixture rpc_calls: the
// object `Calls` calls the trivial method `add(1, 2)` of the object `Types` `n` times, one after
// another, each through a new stub (`getByName(name).add(1, 2)`: JS RPC between Durable
// Objects).
// POST /rpc/calls/{name}/add-many  body ["x", n]  -> the sum
import { DurableObject } from "cloudflare:workers";

export class Types extends DurableObject {
  add(a, b) {
    return a + b;
  }
}

export class Calls extends DurableObject {
  async addMany(name, n) {
    let sum = 0;
    for (let i = 0; i < n; i++) {
      sum += await this.env.TYPES.getByName(name).add(1, 2);
    }
    return sum;
  }
}

export default {
  async fetch(request, env) {
    const [, rpc, , name, method] = new URL(request.url).pathname.split("/");
    if (rpc !== "rpc" || method !== "add-many") return new Response("not found", { status: 404 });
    const [callee, n] = await request.json();
    const result = await env.CALLS.getByName(name).addMany(callee, n);
    return new Response(JSON.stringify(result) + "\n", { headers: { "content-type": "application/json" } });
  },
};
