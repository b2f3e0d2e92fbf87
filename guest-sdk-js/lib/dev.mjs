// `wasmdo-js dev-bundle`: a project's module as the development engines load it (`wasmdo dev`):
// one CommonJS bundle (TypeScript, npm dependencies and module rules as a full build has them),
// with the SDK left out for the engine to provide. No type analysis and no componentize-js:
// this is what an edit costs, so it imports neither TypeScript nor the build.

import { existsSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";

import * as esbuild from "esbuild";

import { BUNDLE_OPTIONS, bundlingFailure } from "./bundling.mjs";
import { checkRule, RuleError, rulesPlugin } from "./rules.mjs";

export class DevBundleError extends Error {}

/** Bundles `entry` into `out`; returns `{ out, bytes, ms }`. */
export async function devBundle({ entry, out, rules = [] }) {
  const started = Date.now();
  entry = path.resolve(entry);
  out = path.resolve(out);
  if (!existsSync(entry)) throw new DevBundleError(`${entry} does not exist`);
  try {
    rules.forEach((r) => checkRule(r, `the rule ${r.type}=${r.glob}`));
  } catch (e) {
    if (e instanceof RuleError) throw new DevBundleError(e.message);
    throw e;
  }
  let result;
  try {
    result = await esbuild.build({
      entryPoints: [entry],
      ...BUNDLE_OPTIONS,
      format: "cjs",
      external: ["cloudflare:workers", "wasmdo"],
      plugins: [rulesPlugin(rules, path.dirname(entry))],
      write: false,
    });
  } catch (e) {
    throw new DevBundleError(bundlingFailure(e));
  }
  const bytes = result.outputFiles[0].contents;
  mkdirSync(path.dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  writeFileSync(tmp, bytes);
  renameSync(tmp, out);
  return { out, bytes: bytes.length, ms: Date.now() - started };
}
