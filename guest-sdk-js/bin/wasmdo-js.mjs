#!/usr/bin/env node
// wasmdo-js: build JavaScript/TypeScript Durable Object classes (and Workers) into wasmdo
// components.

import { parseArgs } from "node:util";

import { parseRule, RuleError } from "../lib/rules.mjs";
import { parseBinding, StubError } from "../lib/stubs.mjs";

const USAGE = `usage:
  wasmdo-js build <entry.ts|js> -o <out.wasm> [--class <Name> | --worker] [--package <ns:name>]
                  [--binding <NAME>[=<stub.wit>]]... [--rule <Text|Data>=<glob>]...
                  [--json-var <NAME>]... [--weval <path>] [--no-cache] [--quiet]
      Bundle the module's Durable Object class (TypeScript and npm dependencies included) and
      componentize it for wasmdo. Rebuilding unchanged sources is served from the cache
      ($WASMDO_JS_CACHE, default ~/.cache/wasmdo-js). --weval (or $WASMDO_WEVAL) names a weval
      binary (\`cargo install weval --version 0.5.0\`): the JS is then compiled ahead of time.
      --worker: build the module's default export, a Cloudflare Worker
      (\`export default { fetch(request, env, ctx) }\`), instead of a class.
      --binding COUNTER=stubs/counter.wit gives the code \`env.COUNTER\`, the namespace of the
      class bound as COUNTER in wasmdo.toml, from the stub package \`wasmdo bindgen <class>
      --lang wit-stub --binding COUNTER\` wrote (also: "wasmdo": {"bindings": {…}} in package.json);
      its stubs have the class's methods and fetch(). --binding COUNTER: stubs with fetch() only.
      --rule Text=**/*.md: such imports are the file's text; Data=<glob>: an ArrayBuffer (after
      these, wrangler's defaults: Text **/*.txt, **/*.html; Data **/*.bin).
      --json-var LIMITS: env.LIMITS is the JSON.parse of the var's value (wrangler [vars] that
      are not strings).
  wasmdo-js wit <entry.ts|js> [--class <Name> | --worker] [--package <ns:name>]
      Print the WIT world the class is built against (its RPC interface).
  wasmdo-js dev-engine (--object | --worker) -o <out.wasm>
      Build the development engine of a class (or of a Worker) that \`wasmdo dev\` runs: the SDK
      without a project's code, which it loads from the env var WASMDO_DEV_SOURCE (cached).
  wasmdo-js dev-bundle <entry.ts|js> -o <out.js> [--rule <Text|Data>=<glob>]...
      Bundle the module for the development engines (CommonJS, the SDK left out).`;

function fail(message) {
  process.stderr.write(`wasmdo-js: ${message}\n`);
  process.exit(1);
}

const [command, ...rest] = process.argv.slice(2);
let parsed;
try {
  parsed = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      out: { type: "string", short: "o" },
      class: { type: "string" },
      package: { type: "string" },
      "no-cache": { type: "boolean" },
      weval: { type: "string" },
      binding: { type: "string", multiple: true },
      worker: { type: "boolean" },
      object: { type: "boolean" },
      rule: { type: "string", multiple: true },
      "json-var": { type: "string", multiple: true },
      quiet: { type: "boolean", short: "q" },
    },
  });
} catch (e) {
  fail(`${e.message}\n${USAGE}`);
}
const { values, positionals } = parsed;
// (dev-engine builds no project's code: a module named anyway is not read)
if (positionals.length !== 1 && !(command === "dev-engine" && positionals.length === 0)) fail(USAGE);
const [entry] = positionals;

// TypeScript (the analysis) takes a second to load: only the commands that need it load it
const { build, describeClass, describeWorker, BuildError } =
  command === "dev-bundle" ? { BuildError: class {} } : await import("../lib/build.mjs");
const { devBundle, DevBundleError } = await import("../lib/dev.mjs");

try {
  if (command === "dev-bundle") {
    if (!values.out) fail(`dev-bundle needs -o <out.js>\n${USAGE}`);
    const result = await devBundle({ entry, out: values.out, rules: (values.rule ?? []).map(parseRule) });
    if (!values.quiet) process.stderr.write(`wasmdo-js: ${result.out}: ${(result.bytes / 1e3).toFixed(1)} kB in ${result.ms} ms\n`);
  } else if (command === "dev-engine") {
    if (!values.out) fail(`dev-engine needs -o <out.wasm>\n${USAGE}`);
    if (!values.object === !values.worker) fail(`dev-engine needs one of --object and --worker\n${USAGE}`);
    const result = await build({
      entry: ".",
      out: values.out,
      devEngine: values.worker ? "worker" : "object",
      log: values.quiet ? () => {} : (m) => process.stderr.write(`wasmdo-js: ${m}\n`),
    });
    if (!values.quiet) {
      const how = result.cached ? "unchanged, from the cache" : "built";
      process.stderr.write(`wasmdo-js: ${result.out}: ${(result.size / 1e6).toFixed(1)} MB, ${how} in ${(result.ms / 1000).toFixed(1)} s\n`);
    }
  } else if (command === "build") {
    if (!values.out) fail(`build needs -o <out.wasm>\n${USAGE}`);
    const result = await build({
      entry,
      out: values.out,
      className: values.class,
      packageName: values.package,
      weval: values.weval ?? process.env.WASMDO_WEVAL,
      worker: values.worker ?? false,
      bindings: Object.fromEntries((values.binding ?? []).map(parseBinding)),
      rules: (values.rule ?? []).map(parseRule),
      jsonVars: values["json-var"] ?? [],
      cache: !values["no-cache"],
      log: values.quiet ? () => {} : (m) => process.stderr.write(`wasmdo-js: ${m}\n`),
    });
    if (!values.quiet) {
      const mb = (result.size / 1e6).toFixed(1);
      const how = result.cached ? "unchanged, from the cache" : "built";
      const what = result.worker ? "the default export (a Worker)" : `class ${result.className}, methods [${result.methods.join(", ")}]`;
      process.stderr.write(`wasmdo-js: ${result.out}: ${what}, ${mb} MB, ${how} in ${(result.ms / 1000).toFixed(1)} s\n`);
    }
  } else if (command === "wit") {
    const described = values.worker
      ? describeWorker({ packageName: values.package })
      : describeClass({ entry, className: values.class, packageName: values.package });
    process.stdout.write(described.wit);
  } else {
    fail(USAGE);
  }
} catch (e) {
  if (e instanceof BuildError || e instanceof DevBundleError || e instanceof RuleError || e instanceof StubError || e.constructor?.name === "AnalysisError") fail(e.message);
  throw e;
}
