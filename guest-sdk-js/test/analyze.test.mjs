// The TypeScript → WIT mapping: what a class's signatures become, and the build errors.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";

import { kebab, camel } from "../lib/analyze.mjs";
import { describeClass } from "../lib/build.mjs";

const dir = mkdtempSync(path.join(tmpdir(), "wasmdo-js-test-"));
let n = 0;
function wit(source, options = {}) {
  const file = path.join(dir, `case${n++}.ts`);
  writeFileSync(file, `import { DurableObject } from "cloudflare:workers";\n${source}`);
  return describeClass({ entry: file, ...options }).wit;
}

test("names become kebab-case WIT identifiers and back", () => {
  assert.equal(kebab("putMany"), "put-many");
  assert.equal(kebab("HTTPServer"), "http-server");
  assert.equal(kebab("user_name"), "user-name");
  assert.equal(kebab("v2Name"), "v2-name");
  assert.equal(camel("put-many"), "putMany");
  assert.throws(() => kebab("_"), /cannot be a WIT name/);
});

test("signatures map to WIT types", () => {
  const out = wit(`
    export type Mode = "fast" | "slow-ish";
    export interface Item { name: string; qty?: number; tags: string[]; }
    export class Shop extends DurableObject {
      async add(item: Item, mode: Mode, at: bigint, raw: Uint8Array, pair: [boolean, string]): Promise<Item[]> { return []; }
      sync(n: number | null): string | undefined { return undefined; }
      async nothing(): Promise<void> {}
      private hidden(): void {}
      _internal(): void {}
      async fetch(r: Request) { return new Response(""); }
    }`);
  assert.match(out, /package js:shop;/);
  assert.match(out, /enum mode \{ fast, slow-ish \}/);
  assert.match(out, /record item \{ name: string, qty: option<f64>, tags: list<string> \}/);
  assert.match(
    out,
    /add: func\(item: item, mode: mode, at: s64, raw: list<u8>, pair: tuple<bool, string>\) -> result<list<item>, js-error>;/,
  );
  assert.match(out, /sync: func\(n: option<f64>\) -> result<option<string>, js-error>;/);
  assert.match(out, /nothing: func\(\) -> result<_, js-error>;/);
  assert.doesNotMatch(out, /hidden|internal|fetch/);
  assert.match(
    out,
    /world shop-object \{\n  include wasmdo:object\/durable-object@0.1.0;\n  import wasmdo:object\/dynamic@0.1.0;\n  import wasmdo:object\/event-loop@0.1.0;\n  import wasmdo:object\/packed-objects@0.1.0;\n  export wasmdo:object\/dynamic-handler@0.1.0;\n  export wasmdo:object\/event-loop-handler@0.1.0;\n  export wasmdo:object\/packed-handler@0.1.0;\n  export shop;/,
  );
});

test("the SDK's integer aliases give WIT integer types", () => {
  const out = wit(`
    import type { u8, u32, s64 } from "wasmdo";
    export class Ints extends DurableObject { f(a: u8, b: u32, c: s64): u32 { return 0; } }`);
  assert.match(out, /f: func\(a: u8, b: u32, c: s64\) -> result<u32, js-error>;/);
});

function surface(source, options = {}, header = `import { DurableObject } from "cloudflare:workers";\n`) {
  const file = path.join(dir, `case${n++}.ts`);
  writeFileSync(file, `${header}${source}`);
  return describeClass({ entry: file, ...options });
}

test("methods without a WIT form are not RPC methods, and the build says why", () => {
  const bad = [
    ["f(x: any) {}", /parameter `x` of C.f has no type/],
    ["f(x: unknown): void {}", /parameter `x` of C.f has no type/],
    ["async f(): Promise<unknown> { return 1; }", /the result of C.f has no type/],
    ["f(x: Date) {}", /is a Date, which has no WIT type/],
    ["f(x: string | number) {}", /is a union/],
    ["f(x: Record<string, number>) {}", /index signature/],
    ["f(...xs: number[]) {}", /rest parameters/],
    ["f(x: {}) {}", /field|no fields/],
  ];
  for (const [method, message] of bad) {
    const { surface: s, wit: out } = surface(`
      export interface Kept { n: number }
      export class C extends DurableObject { ${method}\n ok(k: Kept): number { return 1; } }`);
    assert.deepEqual(s.methods.map((m) => m.name), ["ok"], method);
    assert.equal(s.skipped.length, 1, method);
    assert.equal(s.skipped[0].name, "f");
    assert.match(s.skipped[0].why, message);
    assert.match(out, /\/\/ note: `f` is not an RPC method: /);
    assert.match(out, /ok: func\(k: kept\) -> result<f64, js-error>;/);
    assert.doesNotMatch(out, /\bf: func/);
  }
  // what a left-out method registered is forgotten with it
  const { wit: out } = surface(`
    interface Half { a: number; b: any }
    export class C extends DurableObject { f(h: Half) {} }`);
  assert.doesNotMatch(out, /record half/);
  // a method that hides this.env is a mistake on Cloudflare too
  assert.throws(() => wit(`export class C extends DurableObject { env() {} }`), /DurableObject's this.env hides it/);
});

test("which exported classes are Durable Objects", () => {
  assert.throws(() => wit(`export class NotAnObject {}\nexport class Other {}`), /could be Durable Objects \(NotAnObject, Other\)/);
  assert.throws(() => wit(`export const x = 1;`), /exports no Durable Object class/);
  assert.throws(
    () => wit(`export class A extends DurableObject {}\nexport class B extends DurableObject {}`),
    /choose one with --class/,
  );
  assert.match(
    wit(`export class A extends DurableObject {}\nexport class B extends DurableObject { f(): void {} }`, {
      className: "B",
    }),
    /interface b/,
  );
  // a DurableObject subclass is chosen over a plain helper class
  assert.equal(surface(`export class Helper {}\nexport class Room extends DurableObject {}`).surface.className, "Room");
  // `export default Room` next to `export class Room` is one class
  const both = surface(`export class Room extends DurableObject { n(): number { return 1; } }\nexport default Room;`);
  assert.equal(both.surface.className, "Room");
  assert.deepEqual(both.surface.methods.map((m) => m.name), ["n"]);
  // a Worker entrypoint is not a Durable Object, even when a binding names it
  assert.throws(
    () =>
      surface(
        `export class Api extends WorkerEntrypoint {}`,
        { className: "Api" },
        `import { WorkerEntrypoint } from "cloudflare:workers";\n`,
      ),
    /Api extends WorkerEntrypoint, which is not a Durable Object/,
  );
  assert.throws(() => wit(`export class A extends DurableObject {}`, { className: "B" }), /exports no Durable Object class `B`; it exports A/);
});

test("the classic form: a plain class with constructor(state, env)", () => {
  const classic = surface(
    `export class Room {
       constructor(state, env) { this.state = state; }
       async fetch(request) { return new Response("hi"); }
       async helper(socket, meta) {}
       count(): number { return 1; }
     }`,
    {},
    "",
  );
  assert.equal(classic.surface.kind, "classic");
  assert.match(classic.wit, /\/\/ note: Room is a plain class/);
  // RPC is for DurableObject subclasses, as on Cloudflare: no method is typed RPC, none fails
  assert.deepEqual(classic.surface.methods, []);
  assert.match(classic.wit, /interface room \{/);
  // named by a binding, a plain class is accepted next to others
  const named = surface(`export class Room { constructor(state, env) {} }\nexport class Lobby { constructor(state, env) {} }`, {
    className: "Lobby",
  });
  assert.equal(named.surface.className, "Lobby");
});

test("a class extends DurableObject through the project's own base classes", () => {
  const base = path.join(dir, "socket-server.ts");
  writeFileSync(
    base,
    `import { DurableObject } from "cloudflare:workers";
     export class SocketServer<E = unknown> extends DurableObject<E> {
       broadcast(text: string): number { return 0; }
       handle(socket: WebSocket, meta) {}
     }
     export class Middle extends SocketServer {}`,
  );
  const reexport = path.join(dir, "servers.ts");
  writeFileSync(reexport, `export { Middle as Base } from "./socket-server";`);
  const { surface: s } = surface(
    `import { Base } from "./servers";
     export class Room extends Base { join(name: string): string { return name; } }`,
    {},
    "",
  );
  assert.equal(s.kind, "durable-object");
  assert.deepEqual(s.methods.map((m) => m.name).sort(), ["broadcast", "join"]);
  assert.deepEqual(s.skipped.map((m) => m.name), ["handle"]);
  // and in plain JavaScript, without any types
  const js = path.join(dir, "chain.js");
  writeFileSync(
    js,
    `import { DurableObject } from "cloudflare:workers";
     class Base extends DurableObject { helper(x) { return x; } }
     export class Chat extends Base { async send(message) { return message; } }
     export default { async fetch() { return new Response(""); } };`,
  );
  const chat = describeClass({ entry: js });
  assert.equal(chat.surface.className, "Chat");
  assert.deepEqual(chat.surface.methods, []);
  assert.deepEqual(chat.surface.skipped.map((m) => m.name).sort(), ["helper", "send"]);
});

test("plain JavaScript with JSDoc types works", () => {
  const file = path.join(dir, "plain.js");
  writeFileSync(
    file,
    `import { DurableObject } from "cloudflare:workers";
     export class Counter extends DurableObject {
       /** @param {number} by @returns {Promise<number>} */
       async increment(by) { return by; }
     }`,
  );
  assert.match(describeClass({ entry: file }).wit, /increment: func\(by: f64\) -> result<f64, js-error>;/);
});

test("a --weval binary that does not exist is a clear build error", async () => {
  const { build, BuildError } = await import("../lib/build.mjs");
  const file = path.join(dir, "weval.ts");
  writeFileSync(file, `import { DurableObject } from "cloudflare:workers";\nexport class W extends DurableObject {}`);
  await assert.rejects(
    build({ entry: file, out: path.join(dir, "w.wasm"), weval: "/nonexistent/weval", cache: false }),
    (e) => e instanceof BuildError && /--weval \/nonexistent\/weval: no such file/.test(e.message),
  );
});

test("bundling errors name the file and line, and explain Node built-ins", async () => {
  const { build, BuildError } = await import("../lib/build.mjs");
  const cases = [
    ['export class S extends DurableObject { f(): number { return 1 +; } }', /case-syntax\.ts:2: Unexpected/],
    ['import fs from "node:fs";\nexport class N extends DurableObject { f(): boolean { return !!fs; } }', /Could not resolve "node:fs" \(Node\.js built-ins do not exist inside an object/],
  ];
  for (const [i, [source, message]] of cases.entries()) {
    const file = path.join(dir, i === 0 ? "case-syntax.ts" : "case-node.ts");
    writeFileSync(file, `import { DurableObject } from "cloudflare:workers";\n${source}\n`);
    await assert.rejects(build({ entry: file, out: path.join(dir, "x.wasm"), cache: false }), (e) => e instanceof BuildError && message.test(e.message));
  }
});
