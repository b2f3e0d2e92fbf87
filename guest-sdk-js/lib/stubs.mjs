// The stubs a class calls other classes through: `wasmdo-js build --binding COUNTER=counter.wit`
// names a stub package written by `wasmdo bindgen counter --lang wit-stub --binding COUNTER`.
// The build imports its interfaces into the class's world, and the entry module hands each
// interface's `stub` resource to the runtime, which serves `env.COUNTER`. A binding without a
// stub package (`--binding COUNTER`) serves `env.COUNTER` too, its stubs having only `fetch`.

import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

import { camel } from "./analyze.mjs";

export class StubError extends Error {}

/**
 * `--binding COUNTER=stubs/counter.wit` → `["COUNTER", "stubs/counter.wit"]`; `--binding
 * COUNTER` (fetch only) → `["COUNTER", null]`.
 */
export function parseBinding(spec) {
  const at = spec.indexOf("=");
  const [env, file] = at < 0 ? [spec, null] : [spec.slice(0, at), spec.slice(at + 1)];
  checkBindingName(env, `--binding ${spec}`);
  if (file === "") throw new StubError(`--binding ${spec}: write NAME=<stub.wit> (typed calls and fetch) or NAME (fetch only)`);
  return [env, file];
}

function checkBindingName(env, where) {
  if (!/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(env)) {
    throw new StubError(`${where}: the binding name must be a JavaScript identifier (e.g. COUNTER)`);
  }
}

/**
 * Reads a stub package: `{ env, binding, file, text, interfaces: [{ name, methods: [[jsName,
 * unwrap]] }] }`; `unwrap` marks a method whose callee returns its own `result` (its `err` is
 * thrown). Without a file (a fetch-only binding) there are no interfaces, and `binding` is the
 * env name (the host matches bindings case- and `_`/`-`-insensitively).
 */
export function readStub(env, file) {
  checkBindingName(env, `--binding ${env}${file ? "=…" : ""}`);
  if (file === null || file === undefined) {
    return { env, binding: env, file: null, text: null, interfaces: [] };
  }
  if (!existsSync(file)) {
    throw new StubError(`--binding ${env}=${file}: no such file (write it with \`wasmdo bindgen <class> --lang wit-stub --binding ${env} -o ${file}\`)`);
  }
  const text = readFileSync(file, "utf8");
  const pkg = /^package binding:([a-z][a-z0-9-]*);$/m.exec(text);
  if (!pkg) {
    throw new StubError(`${file}: not a stub package (no \`package binding:<name>;\`); write it with \`wasmdo bindgen <class> --lang wit-stub --binding ${env}\``);
  }
  const binding = pkg[1];
  const expected = env.toLowerCase().replaceAll("_", "-");
  if (binding !== expected) {
    throw new StubError(`${file} is the stub of the binding \`${binding}\`, but it is bound as ${env} (the host would look for \`binding:${expected}\`): regenerate it with --binding ${env}`);
  }
  const interfaces = [];
  let iface = null;
  let inStub = false;
  for (const line of text.split("\n")) {
    const start = /^interface (%?[a-z][a-z0-9-]*) \{$/.exec(line);
    if (start) {
      iface = { name: start[1].replace(/^%/, ""), methods: [] };
      interfaces.push(iface);
      continue;
    }
    if (/^\s+resource stub \{$/.test(line)) {
      inStub = true;
      continue;
    }
    if (inStub && /^\s+\}$/.test(line)) {
      inStub = false;
      continue;
    }
    const method = inStub && /^\s+(%?[a-z][a-z0-9-]*): func\(.*\) -> result<(.*), call-error>;$/.exec(line);
    if (method) {
      const inner = method[2];
      iface.methods.push([camel(method[1].replace(/^%/, "")), inner === "result" || inner.startsWith("result<")]);
    }
  }
  if (interfaces.length === 0 || interfaces.every((i) => i.methods.length === 0)) {
    throw new StubError(`${file}: no stub methods found; regenerate it with \`wasmdo bindgen <class> --lang wit-stub --binding ${env}\``);
  }
  return { env, binding, file: path.resolve(file), text, interfaces };
}

/**
 * The bindings in the `wasmdo.bindings` field of the package.json nearest to `entry`: a stub
 * file each, or `null` for a fetch-only binding.
 */
export function packageBindings(entry) {
  for (let dir = path.dirname(path.resolve(entry)); ; dir = path.dirname(dir)) {
    const pj = path.join(dir, "package.json");
    if (existsSync(pj)) {
      const bindings = JSON.parse(readFileSync(pj, "utf8")).wasmdo?.bindings ?? {};
      return Object.fromEntries(
        Object.entries(bindings).map(([env, f]) => [env, typeof f === "string" ? path.resolve(dir, f) : null]),
      );
    }
    if (path.dirname(dir) === dir) return {};
  }
}
