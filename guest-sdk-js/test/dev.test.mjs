// Development builds (`wasmdo dev`): the bundle the development engines evaluate, and what the
// engines' generated world and entry export. (The engines running real code are tested through
// `wasmdo dev` by the integration tests: js_classic, js_worker, js_live, chat_worker, wrangler.)
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";

import { devBundle, DevBundleError } from "../lib/dev.mjs";
import { devEntryModule, devWitWorld } from "../lib/generate.mjs";

const dir = mkdtempSync(path.join(tmpdir(), "wasmdo-js-dev-test-"));

test("a development bundle is CommonJS that leaves the SDK to the engine and keeps the rest", async () => {
  writeFileSync(path.join(dir, "helper.ts"), "export const twice = (n: number): number => n * 2;\n");
  writeFileSync(path.join(dir, "page.html"), "<p>hi</p>");
  writeFileSync(
    path.join(dir, "index.ts"),
    [
      `import { DurableObject } from "cloudflare:workers";`,
      `import { twice } from "./helper";`,
      `import page from "./page.html";`,
      `export class Room extends DurableObject { double(n: number) { return twice(n); } }`,
      `export default { fetch() { return new Response(page); } };`,
    ].join("\n"),
  );
  const out = path.join(dir, "out", "bundle.js");
  const result = await devBundle({ entry: path.join(dir, "index.ts"), out });
  assert.equal(result.out, out);
  const source = readFileSync(out, "utf8");
  // evaluated as the engine does: `require` gives the SDK, `module.exports` the exports
  class DurableObject {}
  const asked = [];
  const module = { exports: {} };
  new Function("module", "exports", "require", source)(module, module.exports, (name) => {
    asked.push(name);
    return { DurableObject };
  });
  assert.deepEqual(asked, ["cloudflare:workers"]);
  assert.equal(new module.exports.Room().double(21), 42);
  assert.ok(new module.exports.Room() instanceof DurableObject);
  assert.equal(typeof module.exports.default.fetch, "function");
  assert.match(source, /<p>hi<\/p>/, "module rules' defaults: .html is Text");
});

test("a development bundle fails with the file and line, and the Node built-ins hint", async () => {
  writeFileSync(path.join(dir, "node.js"), `import fs from "node:fs";\nexport default fs;\n`);
  await assert.rejects(
    devBundle({ entry: path.join(dir, "node.js"), out: path.join(dir, "x.js") }),
    (e) => e instanceof DevBundleError && /node\.js:1: Could not resolve "node:fs" \(Node\.js built-ins do not exist inside an object/.test(e.message),
  );
  await assert.rejects(devBundle({ entry: path.join(dir, "missing.js"), out: path.join(dir, "x.js") }), /missing\.js does not exist/);
});

test("the development engines' worlds have no class interface and their entries export every handler", () => {
  const object = devWitWorld("object");
  assert.match(object, /include wasmdo:object\/durable-object@0\.1\.0;/);
  assert.match(object, /export wasmdo:object\/dynamic-handler@0\.1\.0;/);
  assert.match(object, /export wasmdo:object\/packed-handler@0\.1\.0;/);
  assert.match(devWitWorld("worker"), /import wasmdo:object\/packed-objects@0\.1\.0;[^]*export wasmdo:object\/packed-handler@0\.1\.0;/);
  assert.doesNotMatch(object, /interface /);
  assert.match(devWitWorld("worker"), /world worker \{/);
  const entry = devEntryModule("object");
  for (const name of ["handler", "packedHandler", "alarmHandler", "websocketHandler", "snapshotHandler", "dynamicHandler", "eventLoopHandler"]) {
    assert.match(entry, new RegExp(`export const ${name} = exports\\.${name};`));
  }
  assert.match(devEntryModule("worker"), /hostDevWorker/);
  assert.doesNotMatch(devEntryModule("worker"), /alarmHandler/);
});
