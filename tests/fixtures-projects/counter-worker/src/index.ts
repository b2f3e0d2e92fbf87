import { DurableObject, type DurableObjectNamespace } from "cloudflare:workers";
import notes from "./notes.md";

interface Env {
  COUNTER: DurableObjectNamespace<Counter>;
  GREETING: string;
  LIMITS: { max: number };
}

/** One counter per name; its value survives rebuilds and redeploys. */
export class Counter extends DurableObject<Env> {
  async increment(by: number): Promise<number> {
    const value = ((await this.ctx.storage.get<number>("value")) ?? 0) + by;
    await this.ctx.storage.put("value", value);
    return value;
  }

  async fetch(request: Request): Promise<Response> {
    const value = (await this.ctx.storage.get<number>("value")) ?? 0;
    return new Response(`${this.env.GREETING} from ${new URL(request.url).pathname}: ${value}`);
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const [, action, name] = new URL(request.url).pathname.split("/");
    const counter = env.COUNTER.getByName(name ?? "");
    switch (action) {
      case "increment": // typed RPC through the binding
        return Response.json({ value: await counter.increment(1), max: env.LIMITS.max });
      case "show": // the object's own fetch
        return counter.fetch(request);
      case "notes": // a Text module
        return new Response(notes);
      default:
        return new Response("not found", { status: 404 });
    }
  },
};
