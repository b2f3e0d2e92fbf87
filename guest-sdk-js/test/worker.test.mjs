// Worker projects: the build options (bindings, module rules, JSON vars, --worker), what they
// generate, the cache key they shape, and a real build of the worker-project fixture.
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import * as esbuild from "esbuild";

import { build, buildKey, describeClass, BuildError } from "../lib/build.mjs";
import { workerEntryModule, workerWitWorld } from "../lib/generate.mjs";
import { DEFAULT_RULES, effectiveRules, globRegExp, parseRule, ruleFor, rulesPlugin } from "../lib/rules.mjs";
import { parseBinding, readStub } from "../lib/stubs.mjs";

const sdk = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const project = path.resolve(sdk, "../tests/fixtures-js/worker-project");
const dir = mkdtempSync(path.join(tmpdir(), "wasmdo-js-worker-test-"));

test("--binding NAME is fetch-only, NAME=file a stub package; bad names are refused", () => {
  assert.deepEqual(parseBinding("ROOMS"), ["ROOMS", null]);
  assert.deepEqual(parseBinding("ROOMS=stubs/rooms.wit"), ["ROOMS", "stubs/rooms.wit"]);
  assert.throws(() => parseBinding("9ROOMS"), /--binding 9ROOMS: the binding name must be a JavaScript identifier/);
  assert.throws(() => parseBinding("ROOMS="), /write NAME=<stub.wit> \(typed calls and fetch\) or NAME \(fetch only\)/);
  assert.deepEqual(readStub("ROOMS", null), { env: "ROOMS", binding: "ROOMS", file: null, text: null, interfaces: [] });
});

test("--rule TYPE=glob takes Text and Data (and JavaScript types, which change nothing)", () => {
  assert.deepEqual(parseRule("Text=**/*.md"), { type: "Text", glob: "**/*.md" });
  assert.deepEqual(parseRule("Data=assets/*.{png,jpg}"), { type: "Data", glob: "assets/*.{png,jpg}" });
  assert.deepEqual(parseRule("ESModule=**/*.js"), { type: "ESModule", glob: "**/*.js" });
  assert.throws(() => parseRule("Text"), /--rule Text: write TYPE=<glob>/);
  assert.throws(() => parseRule("CompiledWasm=**/*.wasm"), /the rule type `CompiledWasm` is not supported; wasmdo loads Text \(a string\) and Data/);
  assert.throws(() => parseRule("Text=a/{b"), /has a `\{` without its `\}`/);
});

test("globs match paths relative to the entry's directory, as wrangler's", () => {
  const matches = (glob, p) => globRegExp(glob).test(p);
  assert.ok(matches("**/*.html", "index.html"));
  assert.ok(matches("**/*.html", "pages/a/index.html"));
  assert.ok(!matches("**/*.html", "index.htm"));
  assert.ok(!matches("**/*.html", "index.html.ts"));
  assert.ok(matches("*.txt", "a.txt"));
  assert.ok(!matches("*.txt", "dir/a.txt"));
  assert.ok(matches("assets/**", "assets/x/y.png"));
  assert.ok(matches("{a,b}.txt", "b.txt"));
  assert.ok(!matches("{a,b}.txt", "c.txt"));
  assert.ok(matches("file?.bin", "file1.bin"));
  assert.ok(matches("[ab].bin", "a.bin"));
  assert.ok(!matches("[!ab].bin", "a.bin"));
  assert.ok(matches("(x)+.txt", "(x)+.txt"));
  assert.ok(!matches("a.txt", "abtxt"));
});

test("the project's rules come before wrangler's defaults, which stay", () => {
  assert.deepEqual(
    DEFAULT_RULES.map((r) => `${r.type}=${r.glob}`),
    ["Text=**/*.txt", "Text=**/*.html", "Data=**/*.bin"],
  );
  const base = path.join(dir, "src");
  const rules = effectiveRules([{ type: "Data", glob: "raw/*.html" }, { type: "Text", glob: "**/*.md" }]);
  assert.equal(ruleFor(rules, base, path.join(base, "raw/page.html")), "Data");
  assert.equal(ruleFor(rules, base, path.join(base, "page.html")), "Text");
  assert.equal(ruleFor(rules, base, path.join(base, "docs/notes.md")), "Text");
  assert.equal(ruleFor(rules, base, path.join(base, "table.bin")), "Data");
  assert.equal(ruleFor(rules, base, path.join(base, "image.png")), null);
});

test("Text modules bundle as strings, Data modules as ArrayBuffers", async () => {
  const src = path.join(dir, "rules");
  mkdirSync(path.join(src, "raw"), { recursive: true });
  writeFileSync(path.join(src, "page.html"), "<p>héllo</p>");
  writeFileSync(path.join(src, "notes.md"), "# notes");
  writeFileSync(path.join(src, "table.bin"), Buffer.from([0, 1, 254, 255]));
  writeFileSync(path.join(src, "raw", "blob.html"), "<b>");
  writeFileSync(
    path.join(src, "main.js"),
    `import page from "./page.html"; import notes from "./notes.md"; import table from "./table.bin"; import blob from "./raw/blob.html";
     export default { page, notes, table, blob };`,
  );
  const out = await esbuild.build({
    entryPoints: [path.join(src, "main.js")],
    bundle: true,
    format: "esm",
    target: "es2022", // as the build's (esnext would use Uint8Array.fromBase64)
    write: false,
    plugins: [rulesPlugin([{ type: "Text", glob: "**/*.md" }, { type: "Data", glob: "raw/*" }], src)],
  });
  const { default: m } = await import(`data:text/javascript,${encodeURIComponent(out.outputFiles[0].text)}`);
  assert.equal(m.page, "<p>héllo</p>");
  assert.equal(m.notes, "# notes");
  assert.ok(m.table instanceof ArrayBuffer);
  assert.deepEqual([...new Uint8Array(m.table)], [0, 1, 254, 255]);
  assert.ok(m.blob instanceof ArrayBuffer);
  assert.equal(m.blob.byteLength, 3);
});

test("a Worker's world imports what every object imports and exports its handlers", () => {
  const wit = workerWitWorld({ packageName: "js:worker", imports: ["binding:rooms/room"] });
  assert.match(wit, /package js:worker;/);
  for (const i of ["object", "storage", "alarms", "objects", "websockets", "dynamic", "event-loop", "packed-objects"]) {
    assert.match(wit, new RegExp(`  import wasmdo:object/${i}@0.1.0;`));
  }
  // the sockets it accepts itself (server.accept()) and its timers; no alarms, no RPC
  assert.match(
    wit,
    /  import binding:rooms\/room;\n  export wasmdo:object\/handler@0.1.0;\n  export wasmdo:object\/packed-handler@0.1.0;\n  export wasmdo:object\/websocket-handler@0.1.0;\n  export wasmdo:object\/event-loop-handler@0.1.0;\n\}/,
  );
  assert.doesNotMatch(wit, /alarm-handler|dynamic-handler|include/);

  const entry = workerEntryModule({
    userModule: "/p/src/index.ts",
    stubs: [readStub("COUNTERS", null)],
    jsonVars: ["LIMITS"],
  });
  assert.match(entry, /import worker from "\/p\/src\/index.ts";/);
  assert.match(entry, /registerBinding\("COUNTERS", "COUNTERS", \[\]\);/);
  assert.match(entry, /registerJsonVars\(\["LIMITS"\]\);/);
  assert.match(
    entry,
    /const host = hostWorker\(worker\);\nexport const handler = host.handler;\nexport const packedHandler = host.packedHandler;\nexport const websocketHandler = host.websocketHandler;\nexport const eventLoopHandler = host.eventLoopHandler;/,
  );
});

test("every build option is part of the cache key", () => {
  const base = { sdk: "x", entry: "/p/src/index.ts" };
  const keys = [
    buildKey(base),
    buildKey({ ...base, worker: true }),
    buildKey({ ...base, className: "Room" }),
    buildKey({ ...base, stubs: [{ env: "ROOMS", file: null }] }),
    buildKey({ ...base, stubs: [{ env: "ROOMS", file: "/p/rooms.wit" }] }),
    buildKey({ ...base, rules: [{ type: "Text", glob: "**/*.md" }] }),
    buildKey({ ...base, rules: [{ type: "Data", glob: "**/*.md" }] }),
    buildKey({ ...base, jsonVars: ["LIMITS"] }),
    buildKey({ ...base, packageName: "a:b" }),
    buildKey({ ...base, aot: "weval-hash" }),
    buildKey({ ...base, sdk: "y" }),
  ];
  assert.equal(new Set(keys).size, keys.length);
  // the order of --json-var flags does not matter
  assert.equal(buildKey({ ...base, jsonVars: ["A", "B"] }), buildKey({ ...base, jsonVars: ["B", "A", "B"] }));
});

test("a module with a default Worker, several classes and an Env interface: --class picks one", () => {
  const entry = path.join(project, "src/index.ts");
  const room = describeClass({ entry, className: "Room" });
  assert.equal(room.surface.className, "Room");
  assert.match(room.wit, /posts: func\(\) -> result<list<string>, js-error>;/);
  assert.equal(describeClass({ entry, className: "Counter" }).surface.methods.length, 0);
  assert.throws(() => describeClass({ entry }), /exports several Durable Object classes \(Room, Counter\): choose one with --class/);

  // `wasmdo dev` reads the exported classes from these two messages (host/src/dev.rs exports_from)
  assert.throws(() => describeClass({ entry, className: "Lobby" }), /exports no Durable Object class `Lobby`; it exports Room, Counter$/);
  const workerOnly = path.join(dir, "worker-only.ts");
  writeFileSync(workerOnly, `export default { async fetch(request: Request) { return new Response("hi"); } };\n`);
  assert.throws(() => describeClass({ entry: workerOnly }), /exports no Durable Object class: .*\(to build its default export, a Worker, use --worker\)/);
});

test("--worker and --class exclude each other; --worker needs a default export with fetch", async () => {
  const out = path.join(dir, "never.wasm");
  const entry = path.join(project, "src/index.ts");
  await assert.rejects(build({ entry, out, worker: true, className: "Room", cacheDir: dir }), /--worker builds the module's default export; --class Room names/);
  const noDefault = path.join(dir, "no-default.ts");
  writeFileSync(noDefault, "export const x = 1;\n");
  await assert.rejects(build({ entry: noDefault, out, worker: true, cacheDir: dir }), (e) => {
    assert.ok(e instanceof BuildError);
    assert.match(e.message, /no-default\.ts has no default export: --worker builds the module's default export/);
    return true;
  });
  await assert.rejects(build({ entry, out, rules: [{ type: "PythonModule", glob: "**/*.py" }], cacheDir: dir }), /the rule type `PythonModule` is not supported/);
});

test("the worker-project fixture builds into a Worker component, then from the cache", async () => {
  const options = {
    entry: path.join(project, "src/index.ts"),
    out: path.join(dir, "worker.wasm"),
    worker: true,
    bindings: { ROOMS: null, COUNTERS: null },
    rules: [{ type: "Text", glob: "**/*.md" }],
    jsonVars: ["LIMITS"],
    cacheDir: path.join(dir, "cache"),
  };
  const first = await build(options);
  assert.equal(first.cached, false);
  assert.equal(first.worker, true);
  assert.deepEqual(first.bindings, ["ROOMS", "COUNTERS"]);
  const wasm = readFileSync(options.out);
  // a component (layer 1), not a core module
  assert.deepEqual([...wasm.subarray(0, 8)], [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]);
  const text = wasm.toString("latin1");
  assert.ok(text.includes("wasmdo:object/handler@0.1.0"));
  assert.ok(text.includes("wasmdo:object/objects@0.1.0"));
  assert.ok(!text.includes("wasmdo:object/alarm-handler@0.1.0"));
  const again = await build(options);
  assert.equal(again.cached, true);
  assert.equal(again.size, first.size);
});

test("a JavaScript callee's methods whose values a typed call would change are called by name", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "stub-"));
  const file = path.join(dir, "probe.wit");
  writeFileSync(
    file,
    [
      "package binding:probe;",
      "",
      "interface probe {",
      "  use wasmdo:object/objects@0.1.0.{call-error};",
      "",
      "  record js-error {",
      "    name: string,",
      "    message: string,",
      "  }",
      "",
      "  record stats { sync-count: f64 }",
      "",
      "  resource stub {",
      "    constructor(id: string);",
      "    count: func(by: f64, tags: list<tuple<string, s64>>) -> result<result<f64, js-error>, call-error>;",
      "    nothing: func() -> result<result<_, js-error>, call-error>;",
      "    stats: func() -> result<result<stats, js-error>, call-error>;",
      "    maybe: func(x: option<string>) -> result<result<string, js-error>, call-error>;",
      "    named: func() -> result<result<list<option<f64>>, js-error>, call-error>;",
      "  }",
      "}",
      "",
      "interface counter {",
      "  use wasmdo:object/objects@0.1.0.{call-error};",
      "",
      "  record point { x-pos: s64 }",
      "",
      "  resource stub {",
      "    constructor(id: string);",
      "    at: func(p: option<point>) -> result<point, call-error>;",
      "  }",
      "}",
      "",
    ].join("\n"),
  );
  const stub = readStub("PROBE", file);
  assert.deepEqual(stub.interfaces, [
    {
      name: "probe",
      js: true,
      methods: [
        ["count", true, false],
        ["nothing", true, false],
        ["stats", true, true],
        ["maybe", true, true],
        ["named", true, true],
      ],
    },
    // not a JavaScript class (no js-error): its WIT mapping is the callee's own
    { name: "counter", methods: [["at", false, false]] },
  ]);
});

