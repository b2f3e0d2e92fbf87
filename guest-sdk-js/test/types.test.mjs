// The SDK's type declarations are right: the TypeScript examples and fixtures type-check
// against them (strict), as they would in a user's editor.
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import ts from "typescript";

const sdk = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const repo = path.resolve(sdk, "..");
const types = path.join(sdk, "runtime", "index.d.ts");

/** Strict, as a user's tsconfig would be, with the SDK's declarations for both module names. */
const compilerOptions = {
  strict: true,
  noEmit: true,
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.ESNext,
  moduleResolution: ts.ModuleResolutionKind.Bundler,
  lib: ["lib.es2022.d.ts", "lib.dom.d.ts"],
  types: [],
  skipLibCheck: false,
  paths: { "cloudflare:workers": [types], wasmdo: [types] },
};

test("examples and fixtures type-check against the SDK's declarations", () => {
  const files = [
    "examples/counter-js/src/counter.ts",
    "examples/chat-js/src/chat.ts",
    "examples/rate-limiter-js/src/limiter.ts",
    "examples/room-js/src/room.ts",
    "examples/chatroom-js/src/chatroom.ts",
    "tests/fixtures-js/storage.ts",
    "tests/fixtures-js/runtime.ts",
  ].map((f) => path.join(repo, f));
  const program = ts.createProgram(files, compilerOptions);
  const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file ? `${path.relative(repo, d.file.fileName)}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}` : "";
    return `${where} ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`;
  });
  assert.deepEqual(diagnostics, []);
});

test("a Worker project type-checks with the SDK's Cloudflare globals (wasmdo/cloudflare)", () => {
  const project = path.join(repo, "tests/fixtures-js/worker-project/src");
  const files = [
    path.join(sdk, "runtime", "cloudflare.d.ts"),
    path.join(project, "index.ts"),
    path.join(project, "modules.d.ts"),
  ];
  const program = ts.createProgram(files, compilerOptions);
  const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file ? `${path.relative(repo, d.file.fileName)}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}` : "";
    return `${where} ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`;
  });
  assert.deepEqual(diagnostics, []);
});

test("the SDK's Worker types catch a wrong handler and a stub without fetch's arguments", async () => {
  const { mkdtempSync, writeFileSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const dir = mkdtempSync(path.join(tmpdir(), "wasmdo-worker-types-"));
  const cases = {
    "ok.ts": "export default { async fetch(r, env, ctx) { ctx.waitUntil(Promise.resolve()); const s = env.NS.getByName('a'); const res = await s.fetch(r); return new Response(null, { status: 101, webSocket: res.webSocket }); } } satisfies ExportedHandler<Env>;",
    "bad-return.ts": "export default { async fetch(r, env, ctx) { return 'text'; } } satisfies ExportedHandler<Env>;",
    "bad-ctx.ts": "export default { async fetch(r, env, ctx) { ctx.acceptWebSocket(); return new Response(''); } } satisfies ExportedHandler<Env>;",
    "bad-fetch.ts": "export default { async fetch(r, env, ctx) { return env.NS.getByName('a').fetch(42); } } satisfies ExportedHandler<Env>;",
  };
  const files = Object.entries(cases).map(([name, body]) => {
    const file = path.join(dir, name);
    writeFileSync(file, `interface Env { NS: DurableObjectNamespace }\n${body}\n`);
    return file;
  });
  const program = ts.createProgram([path.join(sdk, "runtime", "cloudflare.d.ts"), ...files], compilerOptions);
  const failing = new Set(ts.getPreEmitDiagnostics(program).map((d) => path.basename(d.file?.fileName ?? "")));
  assert.deepEqual([...failing].sort(), ["bad-ctx.ts", "bad-fetch.ts", "bad-return.ts"]);
});

test("a stub's generated types reject wrong arguments and results", async () => {
  const { mkdtempSync, writeFileSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const dir = mkdtempSync(path.join(tmpdir(), "wasmdo-stub-types-"));
  const stub = path.join(repo, "examples/room-js/stubs/counter");
  const cases = {
    "ok.ts": "const n: bigint = await c.increment(5n);",
    "number-for-bigint.ts": "await c.increment(5);",
    "string-arg.ts": 'await c.increment("5");',
    "wrong-result.ts": "const s: string = await c.get();",
    "no-such-method.ts": "await c.decrement(1n);",
  };
  const files = Object.entries(cases).map(([name, body]) => {
    const file = path.join(dir, name);
    writeFileSync(
      file,
      `import type { DurableObjectNamespace } from "wasmdo";\nimport type { Counter } from ${JSON.stringify(stub)};\n` +
        `declare const ns: DurableObjectNamespace<Counter>;\nconst c = ns.getByName("x");\n${body}\nexport {};\n`,
    );
    return file;
  });
  const program = ts.createProgram(files, compilerOptions);
  const failing = new Set(
    ts.getPreEmitDiagnostics(program).map((d) => path.basename(d.file?.fileName ?? "")),
  );
  assert.deepEqual([...failing].sort(), ["no-such-method.ts", "number-for-bigint.ts", "string-arg.ts", "wrong-result.ts"]);
});
