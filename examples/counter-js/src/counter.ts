// A counter Durable Object in TypeScript, written against Cloudflare's API.
import { DurableObject } from "cloudflare:workers";

export class Counter extends DurableObject {
  /** Add `by` (default 1) and return the new total. */
  async increment(by: number = 1): Promise<number> {
    const value = ((await this.ctx.storage.get<number>("count")) ?? 0) + by;
    await this.ctx.storage.put("count", value);
    return value;
  }

  /** The current total: 0 until the first increment. */
  async get(): Promise<number> {
    return (await this.ctx.storage.get<number>("count")) ?? 0;
  }

  async fetch(request: Request): Promise<Response> {
    return new Response("hello " + new URL(request.url).pathname);
  }
}
