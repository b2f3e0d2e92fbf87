#!/usr/bin/env node
// wasmdo-js: build JavaScript/TypeScript Durable Object classes into wasmdo components.

import { parseArgs } from "node:util";

import { build, describeClass, BuildError } from "../lib/build.mjs";

const USAGE = `usage:
  wasmdo-js build <entry.ts|js> -o <out.wasm> [--class <Name>] [--package <ns:name>] [--no-cache]
                  [--weval <path>] [--binding <NAME>=<stub.wit>]...
      Bundle the module's Durable Object class (TypeScript and npm dependencies included) and
      componentize it for wasmdo. Rebuilding unchanged sources is served from the cache
      ($WASMDO_JS_CACHE, default ~/.cache/wasmdo-js). --weval (or $WASMDO_WEVAL) names a weval
      binary (\`cargo install weval --version 0.5.0\`): the JS is then compiled ahead of time.
      --binding COUNTER=stubs/counter.wit gives the class \`env.COUNTER\`, the namespace of the
      class bound as COUNTER in wasmdo.toml, from the stub package \`wasmdo bindgen <class>
      --lang wit-stub --binding COUNTER\` wrote (also: "wasmdo": {"bindings": {…}} in package.json).
  wasmdo-js wit <entry.ts|js> [--class <Name>] [--package <ns:name>]
      Print the WIT world the class is built against (its RPC interface).`;

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
      quiet: { type: "boolean", short: "q" },
    },
  });
} catch (e) {
  fail(`${e.message}\n${USAGE}`);
}
const { values, positionals } = parsed;
if (positionals.length !== 1) fail(USAGE);
const [entry] = positionals;

try {
  if (command === "build") {
    if (!values.out) fail(`build needs -o <out.wasm>\n${USAGE}`);
    const result = await build({
      entry,
      out: values.out,
      className: values.class,
      packageName: values.package,
      weval: values.weval ?? process.env.WASMDO_WEVAL,
      bindings: Object.fromEntries(
        (values.binding ?? []).map((b) => {
          const at = b.indexOf("=");
          if (at < 1) fail(`--binding ${b}: write NAME=<stub.wit>, e.g. COUNTER=stubs/counter.wit`);
          return [b.slice(0, at), b.slice(at + 1)];
        }),
      ),
      cache: !values["no-cache"],
      log: values.quiet ? () => {} : (m) => process.stderr.write(`wasmdo-js: ${m}\n`),
    });
    if (!values.quiet) {
      const mb = (result.size / 1e6).toFixed(1);
      const how = result.cached ? "unchanged, from the cache" : "built";
      process.stderr.write(
        `wasmdo-js: ${result.out}: class ${result.className}, methods [${result.methods.join(", ")}], ${mb} MB, ${how} in ${(result.ms / 1000).toFixed(1)} s\n`,
      );
    }
  } else if (command === "wit") {
    process.stdout.write(describeClass({ entry, className: values.class, packageName: values.package }).wit);
  } else {
    fail(USAGE);
  }
} catch (e) {
  if (e instanceof BuildError || e.constructor?.name === "AnalysisError") fail(e.message);
  throw e;
}
