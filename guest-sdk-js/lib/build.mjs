// `wasmdo-js build`: a Durable Object class in TypeScript/JavaScript → a wasmdo component.
//
// 1. analyse the class's method signatures (TypeScript compiler) → its WIT interface;
// 2. generate the entry module that exports the wasmdo handlers and one function per method;
// 3. bundle it with the user's code, npm dependencies and the SDK runtime (esbuild);
// 4. componentize the bundle against the class's world (componentize-js, SpiderMonkey).
// A cache keyed on the content of every input file makes rebuilding an unchanged class instant.

import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, cpSync, readdirSync } from "node:fs";
import { homedir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import * as esbuild from "esbuild";

import { analyze, AnalysisError } from "./analyze.mjs";
import { entryModule, witWorld } from "./generate.mjs";
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
  const imports = stubs.flatMap((s) => s.interfaces.map((i) => `binding:${s.binding}/${i.name}`));
  return { surface, wit: witWorld(surface, { packageName: pkg, imports }), world: `${surface.interfaceName}-object` };
}

/**
 * Builds `entry`'s Durable Object class into a component at `out`.
 * Returns `{ out, size, cached, ms, className, methods, wit }`.
 */
export async function build({
  entry,
  out,
  className,
  packageName,
  weval,
  bindings = {},
  cacheDir = defaultCacheDir(),
  cache = true,
  log = () => {},
}) {
  const started = Date.now();
  entry = path.resolve(entry);
  out = path.resolve(out);
  if (!existsSync(entry)) throw new BuildError(`${entry} does not exist`);

  if (weval && !existsSync(weval)) throw new BuildError(`--weval ${weval}: no such file`);
  const aot = weval ? sha256(readFileSync(weval)) : null;
  // the class's bindings: its package.json's `wasmdo.bindings`, then `--binding`s
  let stubs;
  try {
    stubs = Object.entries({ ...packageBindings(entry), ...bindings }).map(([env, file]) => readStub(env, file));
  } catch (e) {
    if (e instanceof StubError) throw new BuildError(e.message);
    throw e;
  }
  const stubFiles = stubs.map((s) => [s.env, s.file]);
  const key = sha256(JSON.stringify({ sdk: sdkFingerprint(), entry, className, packageName, DISABLED_FEATURES, aot, stubFiles }));
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
    described = describeClass({ entry, className, packageName, stubs });
  } catch (e) {
    if (e instanceof AnalysisError) throw new BuildError(e.message);
    throw e;
  }
  const { surface, wit, world } = described;
  log(`class ${surface.className}: ${surface.methods.length} RPC method(s)`);

  const work = path.join(cacheDir, "work", key);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(path.join(work, "wit", "deps", "wasmdo-object"), { recursive: true });
  cpSync(witDir(), path.join(work, "wit", "deps", "wasmdo-object"), { recursive: true });
  writeFileSync(path.join(work, "wit", "class.wit"), wit);
  for (const stub of stubs) {
    mkdirSync(path.join(work, "wit", "deps", `binding-${stub.binding}`), { recursive: true });
    writeFileSync(path.join(work, "wit", "deps", `binding-${stub.binding}`, "stub.wit"), stub.text);
  }
  const entryFile = path.join(work, "entry.js");
  writeFileSync(entryFile, entryModule(surface, { userModule: entry, stubs }));

  const bundleFile = path.join(work, "bundle.js");
  let bundle;
  try {
    bundle = await esbuild.build({
      entryPoints: [entryFile],
      outfile: bundleFile,
      bundle: true,
      format: "esm",
      platform: "neutral",
      mainFields: ["module", "main"],
      target: "es2022",
      external: ["wasmdo:*", "binding:*"],
      alias: {
        "cloudflare:workers": path.join(RUNTIME, "index.js"),
        "wasmdo/glue": path.join(RUNTIME, "glue.js"),
        wasmdo: path.join(RUNTIME, "index.js"),
      },
      nodePaths: [path.join(SDK, "node_modules")],
      metafile: true,
      logLevel: "silent",
      write: true,
    });
  } catch (e) {
    const messages = (e.errors ?? []).map((m) => {
      const where = m.location ? `${m.location.file}:${m.location.line}: ` : "";
      const hint = /Could not resolve "node:/.test(m.text)
        ? " (Node.js built-ins do not exist inside an object: use the Web APIs, or an npm package that runs in browsers)"
        : "";
      return `${where}${m.text}${hint}`;
    });
    throw new BuildError(`bundling failed:\n${messages.join("\n") || e.message}`);
  }
  // the generated entry is derived from the other inputs and removed after the build
  const bundled = Object.keys(bundle.metafile.inputs)
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
    throw new BuildError(`componentize-js failed: ${e.message ?? e}`);
  }
  writeAtomically(out, component);

  const summary = {
    className: surface.className,
    interface: surface.interfaceName,
    methods: surface.methods.map((m) => m.wit),
    bindings: stubs.map((s) => s.env),
    size: component.length,
    wit,
  };
  if (cache) {
    const files = [...new Set([...surface.files.map((f) => path.resolve(f)), ...bundled, ...stubs.map((s) => s.file)])].sort();
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
