// Calls the runtime fixture (class `probe`, bound as PROBE) through `env.PROBE`: ids, stubs,
// values of every kind in componentize-js's mapping, the callee's thrown errors, call errors.
import { CallError, DurableObject, type DurableObjectNamespace } from "cloudflare:workers";

import type { Everything, Probe } from "./stubs/probe";

interface Env {
  PROBE: DurableObjectNamespace<Probe>;
  /** Bound without a stub package: `fetch`, and methods called by name (a Python class in the tests). */
  OTHER: DurableObjectNamespace;
}

function caught(e: unknown): string {
  if (e instanceof CallError) return `CallError ${e.kind} remote=${e.remote} retryable=${e.retryable}: ${e.message}`;
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return `non-error ${String(e)}`;
}

export class Caller extends DurableObject<Env> {
  /** `defaults(a, b?)` on the probe `name`, trailing arguments left out when undefined. */
  async defaults(name: string, a: string, b?: number): Promise<string> {
    return this.env.PROBE.getByName(name).defaults(a, b);
  }

  /** Sends a value of every kind and says whether it came back equal. */
  async echoEverything(name: string): Promise<string> {
    const sent: Everything = {
      n: 1.5,
      s: "héllo",
      b: true,
      big: -(2n ** 63n),
      bytes: new Uint8Array([0, 255]),
      list: ["a", ""],
      pair: [2, "two"],
      maybe: undefined,
      nullable: "here",
      color: "dark-blue",
      point: { x: 4294967295, y: -5 },
      small: 255,
      snakeCaseField: 7,
      points: [{ x: 1, y: 2 }],
    };
    const back = await this.env.PROBE.getByName(name).echo(sent);
    const text = (v: unknown) =>
      JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? `${x}n` : x instanceof Uint8Array ? [...x] : x));
    return text(back) === text(sent) ? "equal" : `sent ${text(sent)}, got ${text(back)}`;
  }

  /** The probe's thrown errors, as the caller catches them. */
  async failures(name: string): Promise<string[]> {
    const probe = this.env.PROBE.getByName(name);
    const out = [];
    for (const kind of ["type", "custom", "string"]) {
      try {
        await probe.fail(kind);
        out.push("no error");
      } catch (e) {
        out.push(caught(e));
      }
    }
    return out;
  }

  /** Call errors: a malformed id, an id refused by idFromString, a callee out of CPU. */
  async callErrors(name: string): Promise<string[]> {
    const out = [];
    for (const attempt of [
      () => this.env.PROBE.get("not-an-id").now(),
      async () => this.env.PROBE.idFromString("00"),
      () => this.env.PROBE.getByName(name).spin(),
    ]) {
      try {
        await attempt();
        out.push("no error");
      } catch (e) {
        out.push(caught(e));
      }
    }
    return out;
  }

  /**
   * A value with what a typed call would change — a `null`, a snake_case field, an absent
   * optional — sent to the probe's `echo` and read back: it arrives as the probe's code wrote it
   * (the call goes by name, as on Cloudflare).
   */
  async echoExactly(name: string): Promise<string[]> {
    const sent = {
      n: 1, s: "", b: false, big: 1n, bytes: new Uint8Array(), list: [], pair: [1, "one"],
      nullable: null, color: "red", point: { x: 0, y: 0 }, small: 1, snake_case_field: 7, points: [],
    } as unknown as Everything;
    const back = (await this.env.PROBE.getByName(name).echo(sent)) as unknown as Record<string, unknown>;
    return [String(back.nullable === null), String(back.snake_case_field), String("maybe" in back)];
  }

  /** Makes `n` ids and stubs without calling them: nothing is activated. */
  async makeStubs(n: number): Promise<number> {
    const ns = this.env.PROBE;
    let made = 0;
    for (let i = 0; i < n; i++) {
      ns.getByName(`lazy-${i}`);
      ns.get(ns.idFromName(`lazy-id-${i}`));
      ns.get(ns.newUniqueId());
      made += 3;
    }
    return made;
  }

  /** Ids and stubs agree: by name, by idFromName, by newUniqueId (then nameless). */
  async ids(name: string): Promise<string[]> {
    const ns = this.env.PROBE;
    const id = ns.idFromName(name);
    const [byName, nameSeen] = await ns.getByName(name).whoami();
    const [byId] = await ns.get(id).whoami();
    const again = ns.idFromString(id.toString());
    const unique = ns.newUniqueId();
    const [uniqueId, uniqueName] = await ns.get(unique).whoami();
    return [
      String(byName === id.toString() && byId === byName),
      String(nameSeen),
      String(again.equals(id)),
      String(uniqueId === unique.toString() && uniqueId !== byName),
      String(uniqueName),
    ];
  }

  /** `method(...args)` by name on the object `name` of the class bound as OTHER: what it
   * returned, or what it threw as `{thrown: "Name: message"}`. */
  async callOther(name: string, method: string, args: any): Promise<any> {
    const stub = this.env.OTHER.getByName(name) as any;
    try {
      return { ok: await stub[method](...args) };
    } catch (e) {
      return { thrown: caught(e) };
    }
  }
}
