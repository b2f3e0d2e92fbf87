// Exercises guest-sdk-js's runtime through typed RPC and fetch: the WIT type mapping, errors,
// limits, console, clocks and randomness, identity, env, blockConcurrencyWhile and waitUntil.
import { DurableObject, type DurableObjectState, type u32, type s32, type u8 } from "cloudflare:workers";
// an npm package (CommonJS, no types), bundled by wasmdo-js
// @ts-ignore
import ms from "ms";

export type Color = "red" | "green" | "dark-blue";

export interface Point {
  x: u32;
  y: s32;
}

/** One value of every kind the SDK maps to WIT. */
export interface Everything {
  n: number;
  s: string;
  b: boolean;
  big: bigint;
  bytes: Uint8Array;
  list: string[];
  pair: [number, string];
  maybe?: string;
  nullable: string | null;
  color: Color;
  point: Point;
  small: u8;
  snake_case_field: number;
  points: Point[];
}

export class RuntimeProbe extends DurableObject {
  activations = 0;

  constructor(ctx: DurableObjectState, env: Record<string, string>) {
    super(ctx, env);
    if (env.FAIL_INIT) throw new Error(`constructor refused: ${env.FAIL_INIT}`);
    ctx.blockConcurrencyWhile(async () => {
      await new Promise((resolve) => setTimeout(resolve, 1));
      this.activations = ((await ctx.storage.get<number>("activations")) ?? 0) + 1;
      await ctx.storage.put("activations", this.activations);
    });
  }

  /** How many times the object was constructed; set by blockConcurrencyWhile before any event. */
  async activationCount(): Promise<number> {
    return this.activations;
  }

  async echo(value: Everything): Promise<Everything> {
    return value;
  }

  // untyped (`any`): no WIT function, so these are reached by dynamic RPC only
  async echoAny(value: any): Promise<any> {
    return value;
  }

  async activationCountAny(): Promise<any> {
    return this.activations;
  }

  async failAny(message: any): Promise<any> {
    throw new TypeError(String(message));
  }

  async describe(value: Everything): Promise<string> {
    return [
      typeof value.big,
      value.bytes instanceof Uint8Array,
      "maybe" in value ? `maybe=${value.maybe}` : "no-maybe",
      value.nullable === null ? "null" : value.nullable,
      value.snake_case_field,
    ].join(",");
  }

  /** A record that looks like a component-model result to componentize-js's bindings. */
  async tagged(tag: string): Promise<{ tag: string; val: number }> {
    return { tag, val: 1 };
  }

  async defaults(a: string, b: number = 7, c?: boolean): Promise<string> {
    return `${a},${b},${c}`;
  }

  /** Throws the error `kind` names; its message reaches the caller. */
  async fail(kind: string): Promise<number> {
    if (kind === "type") throw new TypeError("wrong type of thing");
    if (kind === "string") throw "a bare string";
    if (kind === "custom") {
      class QuotaError extends Error {
        name = "QuotaError";
      }
      throw new QuotaError("over quota");
    }
    throw new Error(`failed: ${kind}`);
  }

  /** Returns a value its signature does not allow (a string where a number is due). */
  async wrongResult(): Promise<number> {
    return "not a number" as unknown as number;
  }

  /** A nested value its signature does not allow. */
  async wrongNested(): Promise<Point[]> {
    return [{ x: 1, y: 2 }, { x: "no", y: 3 } as unknown as Point];
  }

  async spin(): Promise<number> {
    let i = 0;
    for (;;) i++;
  }

  /** Allocates `mb` MiB and keeps it. */
  async allocate(mb: number): Promise<number> {
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < mb; i++) chunks.push(new Uint8Array(1 << 20).fill(1));
    (globalThis as { hoard?: unknown }).hoard = chunks;
    return chunks.length;
  }

  async recurse(depth: number): Promise<number> {
    const down = (n: number): number => (n === 0 ? 0 : 1 + down(n - 1));
    return down(depth);
  }

  async now(): Promise<number> {
    return Date.now();
  }

  async uuid(): Promise<string> {
    return crypto.randomUUID();
  }

  async randomBytes(): Promise<string> {
    return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");
  }

  /** The Web APIs the SDK documents, minus those this build lacks (so: empty). */
  async missingWebApis(): Promise<string[]> {
    const g = globalThis as unknown as Record<string, unknown>;
    const names = [
      "Request", "Response", "Headers", "URL", "URLSearchParams", "TextEncoder", "TextDecoder",
      "atob", "btoa", "structuredClone", "setTimeout", "clearTimeout", "performance", "crypto",
    ];
    const missing = names.filter((n) => typeof g[n] === "undefined");
    if (typeof crypto.randomUUID !== "function") missing.push("crypto.randomUUID");
    if (typeof crypto.subtle?.digest !== "function") missing.push("crypto.subtle.digest");
    if (typeof performance?.now !== "function") missing.push("performance.now");
    return missing;
  }

  /** Globals through which code written for Node, Deno or Bun reaches the host (files,
   * environment, processes): the ones that exist here (so: none). */
  async ambientAuthority(): Promise<string[]> {
    const g = globalThis as unknown as Record<string, unknown>;
    const names = ["process", "require", "module", "Deno", "Bun", "__dirname", "__filename", "Buffer", "importScripts"];
    return names.filter((n) => typeof g[n] !== "undefined");
  }

  /** Milliseconds in a duration like "2 days", by the npm package `ms`. */
  async duration(text: string): Promise<number> {
    return ms(text) as number;
  }

  /** SHA-256 of `text` through crypto.subtle, as hex. */
  async sha256(text: string): Promise<string> {
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
    return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  }

  async log(message: string): Promise<void> {
    console.log("log:", message, { n: 1 });
    console.warn("warn:", message);
    console.error("error:", message);
  }

  async whoami(): Promise<[string, string | null]> {
    return [this.ctx.id.toString(), this.ctx.id.name ?? null];
  }

  async envVar(key: string): Promise<string | undefined> {
    return (this.env as Record<string, string>)[key];
  }

  /** The whole env, enumerated and serialized as ordinary objects are. */
  async envAll(): Promise<[string[], string, boolean]> {
    const env = this.env as Record<string, string>;
    return [Object.keys(env), JSON.stringify({ ...env }), "GREETING" in env];
  }

  /** Schedules a write through waitUntil; the reply waits for it. */
  async waitUntilWrite(key: string): Promise<void> {
    this.ctx.waitUntil(
      new Promise<void>((resolve) => setTimeout(resolve, 5)).then(() => this.ctx.storage.put(key, "written later")),
    );
  }

  async read(key: string): Promise<string | undefined> {
    return this.ctx.storage.get<string>(key);
  }

  /** `fetch(url)` out to the network: `<status> <body>`, or the error it threw. */
  async fetchUrl(url: string): Promise<string> {
    try {
      const response = await fetch(url);
      return `${response.status} ${await response.text()}`;
    } catch (e) {
      return `threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`;
    }
  }

  async fetch(request: Request): Promise<Response> {
    const pairs = (headers: Headers) => {
      const all: [string, string][] = [];
      headers.forEach((value, name) => all.push([name, value]));
      return all;
    };
    const url = new URL(request.url);
    if (url.pathname === "/throw") throw new Error("fetch blew up");
    // a request without a body: its copies keep every header (its Headers are made when read)
    const copies =
      request.method === "GET"
        ? { cloned: request.clone().headers.get("x-test"), copied: new Request("https://other/", request).headers.get("x-test") }
        : {};
    const body = request.method === "GET" || request.method === "HEAD" ? "" : await request.text();
    return Response.json(
      {
        method: request.method,
        url: request.url,
        path: url.pathname,
        query: url.searchParams.get("q"),
        header: request.headers.get("x-test"),
        headers: pairs(request.headers),
        body,
        ...copies,
      },
      {
        status: 201,
        headers: [
          ["x-object", "runtime"],
          ["set-cookie", "a=1; Path=/"],
          ["set-cookie", "b=2"],
          ["x-empty", ""],
          ["x-odd", "colon: and spaces"],
        ],
      },
    );
  }
}
