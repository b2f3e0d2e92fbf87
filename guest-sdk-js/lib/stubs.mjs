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

/** The WIT types whose JS values are the same on both sides of a typed call. */
const PLAIN = new Set(["bool", "s8", "s16", "s32", "s64", "u8", "u16", "u32", "u64", "f32", "f64", "string", "list", "tuple", "_"]);

/** `text` split at its top-level commas (not those inside `<…>`). */
function topLevel(text) {
  const parts = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "<") depth++;
    else if (text[i] === ">") depth--;
    else if (text[i] === "," && depth === 0) {
      parts.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  if (text.trim() !== "") parts.push(text.slice(start).trim());
  return parts;
}

/** Whether a WIT type is made of numbers, strings, booleans, lists and tuples only. */
function plainType(type) {
  return (type.match(/[a-z_][a-z0-9-]*/g) ?? []).every((word) => PLAIN.has(word));
}

/**
 * Whether a typed call of a JavaScript callee gives the caller exactly what the callee's method
 * returned (and the callee exactly what was passed): true when every parameter and the result
 * are plain. Records, options, enums and variants cross a typed call in the WIT mapping (fields
 * in its camelCase, `none` as undefined, enum cases as WIT names), which is not always what the
 * callee's code wrote (`sync_count`, `null`, `"slowIsh"`).
 */
function plainSignature(params, result) {
  const types = topLevel(params).map((p) => p.slice(p.indexOf(":") + 1));
  // `result<T, js-error>`: the method's own value is T
  const own = /^result<(.*)>$/.exec(result);
  const value = own ? topLevel(own[1])[0] : result === "result" ? "_" : result;
  return [...types, value].every(plainType);
}

/**
 * Reads a stub package: `{ env, binding, file, text, interfaces: [{ name, methods: [[jsName,
 * unwrap, byName]] }] }`; `unwrap` marks a method whose callee returns its own `result` (its
 * `err` is thrown); `byName` one of a JavaScript class (its interface declares `js-error`) whose
 * values a typed call would not carry exactly, called by name (dynamic RPC) instead, as
 * Cloudflare would: what the method returned is what the caller gets. Without a file (a
 * fetch-only binding) there are no interfaces, and `binding` is the env name (the host matches
 * bindings case- and `_`/`-`-insensitively).
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
    if (iface && /^\s+record js-error \{/.test(line)) iface.js = true;
    if (/^\s+resource stub \{$/.test(line)) {
      inStub = true;
      continue;
    }
    if (inStub && /^\s+\}$/.test(line)) {
      inStub = false;
      continue;
    }
    const method = inStub && /^\s+(%?[a-z][a-z0-9-]*): func\((.*)\) -> result<(.*), call-error>;$/.exec(line);
    if (method) {
      const inner = method[3];
      const unwrap = inner === "result" || inner.startsWith("result<");
      const byName = Boolean(iface.js) && !plainSignature(method[2], inner);
      iface.methods.push([camel(method[1].replace(/^%/, "")), unwrap, byName]);
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
