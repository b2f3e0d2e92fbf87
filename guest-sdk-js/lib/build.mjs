// `wasmdo-js build`: a Durable Object class in TypeScript/JavaScript → a wasmdo component.
//
// 1. analyse the class's method signatures (TypeScript compiler) → its WIT interface;
// 2. generate the entry module that exports the wasmdo handlers and one function per method;
// 3. bundle it with the user's code, npm dependencies and the SDK runtime (esbuild), text and
//    data modules loaded by the module rules;
// 4. componentize the bundle against the class's world (componentize-js, SpiderMonkey).
// With `worker`, the module's default export (a Cloudflare Worker) is built instead: no
// analysis, and a world whose only export is `handler`.
// A cache keyed on the content of every input file makes rebuilding an unchanged class instant.

import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, cpSync, readdirSync } from "node:fs";
import { homedir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import * as esbuild from "esbuild";

import { analyze, AnalysisError } from "./analyze.mjs";
import { BUNDLE_OPTIONS, bundlingFailure } from "./bundling.mjs";
import { devEntryModule, devWitWorld, entryModule, witWorld, workerEntryModule, workerWitWorld } from "./generate.mjs";
import { checkRule, RuleError, rulesPlugin } from "./rules.mjs";
import { packageBindings, readStub, StubError } from "./stubs.mjs";

const SDK = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const RUNTIME = path.join(SDK, "runtime");
const SDK_TYPES = path.join(RUNTIME, "index.d.ts");

/**
 * The componentize-js features a wasmdo object keeps: `stdio` (errors and traps are reported),
 * `clocks` (a real Date.now(), timers), `random` (crypto.getRandomValues) and `http` (the global
 * `fetch()`, over `wasi:http` outgoing: the host lets a class reach only the hosts its `fetch`
 * list in wasmdo.toml names). `fetch-event` (a wasi:http server) is left out: objects answer
 * through `handler`.
 */
export const DISABLED_FEATURES = ["fetch-event"];

export class BuildError extends Error {}

/** The WIT files of the `wasmdo:object` package: the repository's `wit/`, or the packed copy. */
function witDir() {
  for (const dir of [path.join(SDK, "wit"), path.join(SDK, "..", "wit")]) {
    if (existsSync(path.join(dir, "world.wit"))) return dir;
  }
  throw new BuildError(`the wasmdo WIT files are missing (looked in ${SDK}/wit and ${SDK}/../wit)`);
}

function sha256(data) {
  return createHash("sha256").update(data).digest("hex");
}

function defaultCacheDir() {
  if (process.env.WASMDO_JS_CACHE) return process.env.WASMDO_JS_CACHE;
  const base = process.env.XDG_CACHE_HOME || path.join(homedir(), ".cache");
  return path.join(base, "wasmdo-js");
}

/** A fingerprint of the SDK itself: its code and the toolchain versions. */
function sdkFingerprint() {
  const parts = [];
  for (const dir of [path.join(SDK, "lib"), RUNTIME, witDir()]) {
    for (const f of readdirSync(dir).sort()) parts.push(f, readFileSync(path.join(dir, f)));
  }
  for (const pkg of ["@bytecodealliance/componentize-js", "esbuild", "typescript"]) {
    parts.push(pkg, readFileSync(packageJson(pkg)));
  }
  const hash = createHash("sha256");
  for (const p of parts) hash.update(p);
  return hash.digest("hex");
}

/** The package.json of dependency `pkg`: in the SDK's own node_modules, or hoisted above it. */
function packageJson(pkg) {
  for (let dir = SDK; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, "node_modules", pkg, "package.json");
    if (existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir) throw new BuildError(`cannot find the installed ${pkg}: run npm install`);
  }
}

function hashFiles(files) {
  return files.map((f) => [f, existsSync(f) ? sha256(readFileSync(f)) : null]);
}

/** The analysed surface and WIT of `entry`'s class, without building. */
export function describeClass({ entry, className, packageName, stubs = [] }) {
  const surface = analyze({ entry: path.resolve(entry), className, sdkTypes: SDK_TYPES });
  if (["handler", "alarm-handler"].includes(surface.interfaceName)) {
    throw new BuildError(`a class named ${surface.className} would clash with the wasmdo handler interfaces: rename it`);
  }
  const pkg = packageName ?? `js:${surface.interfaceName}`;
  return { surface, wit: witWorld(surface, { packageName: pkg, imports: stubImports(stubs) }), world: `${surface.interfaceName}-object` };
}

/** The WIT of a module's default Worker (it needs no analysis). */
export function describeWorker({ packageName, stubs = [] }) {
  return { surface: null, wit: workerWitWorld({ packageName: packageName ?? "js:worker", imports: stubImports(stubs) }), world: "worker" };
}

/** The stub interfaces the bindings import (a fetch-only binding imports none). */
function stubImports(stubs) {
  return stubs.flatMap((s) => s.interfaces.map((i) => `binding:${s.binding}/${i.name}`));
}

/**
 * The cache key of a build: everything that shapes the component but is not a file's content
 * (the files' contents are checked against the manifest the key names). Two builds that differ
 * in any option never share an entry.
 */
export function buildKey({ sdk, entry, className, packageName, aot = null, stubs = [], worker = false, rules = [], jsonVars = [], devEngine = null }) {
  return sha256(
    JSON.stringify({
      sdk,
      devEngine,
      entry,
      className: className ?? null,
      packageName: packageName ?? null,
      DISABLED_FEATURES,
      aot,
      stubFiles: stubs.map((s) => [s.env, s.file]),
      worker,
      rules: rules.map((r) => [r.type, r.glob]),
      jsonVars: [...new Set(jsonVars)].sort(),
    }),
  );
}

/**
 * Builds `entry`'s Durable Object class (or, with `worker`, its default export) into a
 * component at `out`. `bindings` maps an env name to a stub package file, or to `null` for a
 * fetch-only binding; `rules` are module rules (`{ type: "Text" | "Data", glob }`) before the
 * default ones; `jsonVars` names the env vars the code sees JSON-parsed.
 * With `devEngine` ("object" or "worker"), builds a development engine instead (`wasmdo dev`: the
 * SDK without a project's code, which it evaluates from an env var; `entry` is ignored).
 * Returns `{ out, size, cached, ms, className, methods, wit, worker }`.
 */
export async function build({
  entry,
  out,
  className,
  packageName,
  weval,
  worker = false,
  bindings = {},
  rules = [],
  jsonVars = [],
  cacheDir = defaultCacheDir(),
  cache = true,
  log = () => {},
  devEngine = null,
}) {
  const started = Date.now();
  if (devEngine !== null) {
    if (!["object", "worker"].includes(devEngine)) throw new BuildError(`a development engine is "object" or "worker", not ${devEngine}`);
    entry = path.join(RUNTIME, "dev.js");
    worker = devEngine === "worker";
    className = undefined;
  }
  entry = path.resolve(entry);
  out = path.resolve(out);
  if (!existsSync(entry)) throw new BuildError(`${entry} does not exist`);
  if (worker && className) throw new BuildError(`--worker builds the module's default export; --class ${className} names a Durable Object class: give one of them`);
  try {
    rules.forEach((r) => checkRule(r, `the rule ${r.type}=${r.glob}`));
  } catch (e) {
    if (e instanceof RuleError) throw new BuildError(e.message);
    throw e;
  }
  for (const name of jsonVars) {
    if (typeof name !== "string" || name === "") throw new BuildError(`--json-var needs the name of an env var`);
  }

  if (weval && !existsSync(weval)) throw new BuildError(`--weval ${weval}: no such file`);
  const aot = weval ? sha256(readFileSync(weval)) : null;
  // the class's bindings: its package.json's `wasmdo.bindings`, then `--binding`s
  let stubs;
  try {
    const declared = devEngine === null ? packageBindings(entry) : {};
    stubs = Object.entries({ ...declared, ...bindings }).map(([env, file]) => readStub(env, file));
  } catch (e) {
    if (e instanceof StubError) throw new BuildError(e.message);
    throw e;
  }
  const key = buildKey({ sdk: sdkFingerprint(), entry, className, packageName, aot, stubs, worker, rules, jsonVars, devEngine });
  const manifestPath = path.join(cacheDir, "builds", `${key}.json`);
  if (cache && existsSync(manifestPath)) {
    const manifest = JSON.parse(readFileSync(manifestPath, "utf8"));
    const current = hashFiles(manifest.files.map(([f]) => f));
    const wasm = path.join(cacheDir, "components", `${manifest.wasm}.wasm`);
    if (JSON.stringify(current) === JSON.stringify(manifest.files) && existsSync(wasm)) {
      writeAtomically(out, readFileSync(wasm));
      return { ...manifest.summary, out, cached: true, ms: Date.now() - started };
    }
  }

  let described;
  try {
    if (devEngine !== null) described = { surface: null, wit: devWitWorld(devEngine), world: devEngine };
    else described = worker ? describeWorker({ packageName, stubs }) : describeClass({ entry, className, packageName, stubs });
  } catch (e) {
    if (e instanceof AnalysisError) throw new BuildError(e.message);
    throw e;
  }
  const { surface, wit, world } = described;
  if (surface) {
    const form = surface.kind === "classic" ? " (a plain class: fetch, alarms and WebSockets, no RPC, as on Cloudflare)" : "";
    log(`class ${surface.className}${form}: ${surface.methods.length} RPC method(s)`);
    for (const { name, why } of surface.skipped) log(`  ${name} is not an RPC method: ${why}`);
  }
  else if (devEngine !== null) log(`the development engine of ${devEngine === "worker" ? "a Worker" : "a class"}`);
  else log("the module's default export, as a Worker");

  const work = path.join(cacheDir, "work", key);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(path.join(work, "wit", "deps", "wasmdo-object"), { recursive: true });
  cpSync(witDir(), path.join(work, "wit", "deps", "wasmdo-object"), { recursive: true });
  writeFileSync(path.join(work, "wit", "class.wit"), wit);
  for (const stub of stubs.filter((s) => s.interfaces.length > 0)) {
    mkdirSync(path.join(work, "wit", "deps", `binding-${stub.binding}`), { recursive: true });
    writeFileSync(path.join(work, "wit", "deps", `binding-${stub.binding}`, "stub.wit"), stub.text);
  }
  const entryFile = path.join(work, "entry.js");
  const setup = { userModule: entry, stubs, jsonVars };
  const generated = devEngine !== null ? devEntryModule(devEngine) : surface ? entryModule(surface, setup) : workerEntryModule(setup);
  writeFileSync(entryFile, generated);

  const bundleFile = path.join(work, "bundle.js");
  let bundle;
  try {
    bundle = await esbuild.build({
      entryPoints: [entryFile],
      outfile: bundleFile,
      ...BUNDLE_OPTIONS,
      format: "esm",
      external: ["wasmdo:*", "binding:*"],
      alias: {
        "cloudflare:workers": path.join(RUNTIME, "index.js"),
        "wasmdo/glue": path.join(RUNTIME, "glue.js"),
        "wasmdo/dev": path.join(RUNTIME, "dev.js"),
        wasmdo: path.join(RUNTIME, "index.js"),
      },
      nodePaths: [path.join(SDK, "node_modules")],
      plugins: [rulesPlugin(rules, path.dirname(entry))],
      metafile: true,
      write: true,
    });
  } catch (e) {
    if (worker && (e.errors ?? []).some((m) => /No matching export .* for import "default"/.test(m.text) && m.location?.file.endsWith("entry.js"))) {
      throw new BuildError(`${entry} has no default export: --worker builds the module's default export, e.g. \`export default { async fetch(request, env, ctx) { … } }\``);
    }
    throw new BuildError(bundlingFailure(e));
  }
  // the generated entry is derived from the other inputs and removed after the build; inputs in
  // a plugin's namespace (`wasmdo-data:<file>`) are also inputs as themselves
  const bundled = Object.keys(bundle.metafile.inputs)
    .filter((f) => !/^[a-z-]+:/.test(f))
    .map((f) => path.resolve(f))
    .filter((f) => !f.startsWith(work + path.sep));

  const { componentize } = await import("@bytecodealliance/componentize-js");
  let component;
  try {
    ({ component } = await componentize({
      sourcePath: bundleFile,
      witPath: path.join(work, "wit"),
      worldName: world,
      disableFeatures: DISABLED_FEATURES,
      // ahead-of-time compilation of the JS (weval partially evaluates SpiderMonkey's
      // interpreter over the bundle's bytecode); needs a weval binary (`cargo install weval`)
      ...(weval ? { enableAot: true, wevalBin: weval } : {}),
    }));
  } catch (e) {
    // the module's top level runs at build time: say what it threw, without the engine's noise
    const thrown = /Exception while evaluating top-level script\n(?:bundle\.js:\d+:\d+ )?(.*)/.exec(String(e.message ?? e));
    if (thrown) throw new BuildError(`the module's top level (run at build time) threw: ${thrown[1]}`);
    throw new BuildError(`componentize-js failed: ${e.message ?? e}`);
  }
  writeAtomically(out, component);

  const summary = {
    className: surface?.className ?? null,
    interface: surface?.interfaceName ?? null,
    methods: surface?.methods.map((m) => m.wit) ?? [],
    worker,
    bindings: stubs.map((s) => s.env),
    size: component.length,
    wit,
  };
  if (cache) {
    const analysed = surface?.files.map((f) => path.resolve(f)) ?? [];
    const stubsRead = stubs.map((s) => s.file).filter(Boolean);
    const files = [...new Set([...analysed, ...bundled, ...stubsRead])].sort();
    const wasmHash = sha256(component);
    mkdirSync(path.join(cacheDir, "components"), { recursive: true });
    mkdirSync(path.join(cacheDir, "builds"), { recursive: true });
    writeAtomically(path.join(cacheDir, "components", `${wasmHash}.wasm`), component);
    writeAtomically(manifestPath, JSON.stringify({ files: hashFiles(files), wasm: wasmHash, summary }));
  }
  rmSync(work, { recursive: true, force: true });
  return { ...summary, out, cached: false, ms: Date.now() - started };
}

function writeAtomically(file, bytes) {
  mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, bytes);
  renameSync(tmp, file);
}
