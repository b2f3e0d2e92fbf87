// Module rules, as wrangler's `[[rules]]`: which imported files are not JavaScript but text
// (`import page from "./index.html"` is a string) or data (an ArrayBuffer).
//
// A rule is `{ type, glob }`; a file is matched by its path relative to the entry module's
// directory (wrangler's base directory), `/`-separated. The first matching rule decides, the
// user's rules before the defaults (wrangler's defaults: `**/*.txt` and `**/*.html` are Text,
// `**/*.bin` is Data). wrangler drops a type's defaults when a project rule of that type lacks
// `fallthrough = true`; wasmdo always keeps them after the project's rules, which only makes
// more imports work.

import { readFileSync } from "node:fs";
import path from "node:path";

export class RuleError extends Error {}

/** The rule types wasmdo loads: the file as a string, or as an ArrayBuffer. */
export const LOADING_TYPES = new Set(["Text", "Data"]);

/** Rule types that name JavaScript (which esbuild bundles as such whatever the rule says). */
const JAVASCRIPT_TYPES = new Set(["ESModule", "CommonJS"]);

/** wrangler's default rules (after the project's own). */
export const DEFAULT_RULES = [
  { type: "Text", glob: "**/*.txt" },
  { type: "Text", glob: "**/*.html" },
  { type: "Data", glob: "**/*.bin" },
];

/** `--rule Text=**\/*.md` → `{ type: "Text", glob: "**\/*.md" }`. */
export function parseRule(spec) {
  const at = spec.indexOf("=");
  if (at < 1 || at === spec.length - 1) {
    throw new RuleError(`--rule ${spec}: write TYPE=<glob>, e.g. Text=**/*.md or Data=**/*.png`);
  }
  const type = spec.slice(0, at);
  const glob = spec.slice(at + 1);
  checkRule({ type, glob }, `--rule ${spec}`);
  return { type, glob };
}

/** Throws a RuleError naming `where` unless `rule` is a rule wasmdo can apply. */
export function checkRule(rule, where) {
  if (!LOADING_TYPES.has(rule.type) && !JAVASCRIPT_TYPES.has(rule.type)) {
    throw new RuleError(
      `${where}: the rule type \`${rule.type}\` is not supported; wasmdo loads Text (a string) and Data ` +
        `(an ArrayBuffer) modules (ESModule/CommonJS files are bundled as JavaScript anyway; ` +
        `CompiledWasm and Python modules cannot run inside a component)`,
    );
  }
  try {
    globRegExp(rule.glob);
  } catch (e) {
    throw new RuleError(`${where}: ${e.message}`);
  }
}

/**
 * A glob as a RegExp over a relative `/`-separated path: `*` any run of characters but `/`,
 * `?` one such character, `**` any run including `/` (`**\/` also none at all, so `**\/*.html`
 * matches `index.html`), `{a,b}` either, `[abc]` a character class; anything else literally.
 */
export function globRegExp(glob) {
  let re = "";
  let braces = 0;
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*") {
      if (glob[i + 1] === "*") {
        i++;
        if (glob[i + 1] === "/") {
          i++;
          re += "(?:.*/)?";
        } else {
          re += ".*";
        }
      } else {
        re += "[^/]*";
      }
    } else if (c === "?") {
      re += "[^/]";
    } else if (c === "{") {
      braces++;
      re += "(?:";
    } else if (c === "}" && braces > 0) {
      braces--;
      re += ")";
    } else if (c === "," && braces > 0) {
      re += "|";
    } else if (c === "[") {
      const end = glob.indexOf("]", i + 2);
      if (end < 0) throw new Error(`the glob \`${glob}\` has a \`[\` without its \`]\``);
      let cls = glob.slice(i + 1, end).replace(/[\\\]^]/g, (m, at) => (m === "^" && at === 0 ? "^" : `\\${m}`));
      if (cls.startsWith("!")) cls = `^${cls.slice(1)}`;
      re += `[${cls}]`;
      i = end;
    } else {
      re += c.replace(/[.+^$()|\\\]{}]/g, "\\$&");
    }
  }
  if (braces > 0) throw new Error(`the glob \`${glob}\` has a \`{\` without its \`}\``);
  return new RegExp(`^${re}$`);
}

/** The rules to apply: the project's, then wrangler's defaults. */
export function effectiveRules(rules = []) {
  return [...rules, ...DEFAULT_RULES].map((r) => ({ ...r, re: globRegExp(r.glob) }));
}

/** The type of the first rule matching `file` (absolute), relative to `baseDir`; or null. */
export function ruleFor(rules, baseDir, file) {
  const relative = path.relative(baseDir, file).split(path.sep).join("/");
  for (const rule of rules) {
    if (rule.re.test(relative)) return rule.type;
  }
  return null;
}

const DATA_NAMESPACE = "wasmdo-data";

/** Source files no rule applies to: they are always bundled as JavaScript/TypeScript/JSON. */
const NEVER_MATCHED = /\.(?:[cm]?[jt]s|[jt]sx|json)$/;

/**
 * An esbuild plugin loading the files the rules match: Text as a string, Data as an
 * ArrayBuffer (esbuild's `binary` loader gives a Uint8Array; a small module hands on its
 * buffer). JavaScript, TypeScript and JSON files (the SDK's among them) are never matched:
 * an ESModule/CommonJS rule changes nothing.
 */
export function rulesPlugin(rules, baseDir) {
  const effective = effectiveRules(rules);
  return {
    name: "wasmdo-module-rules",
    setup(build) {
      build.onLoad({ filter: /.*/, namespace: "file" }, (args) => {
        if (NEVER_MATCHED.test(args.path)) return undefined;
        const type = ruleFor(effective, baseDir, args.path);
        if (type === "Text") return { contents: readFileSync(args.path), loader: "text" };
        if (type === "Data") {
          return {
            contents:
              `import bytes from ${JSON.stringify(`${DATA_NAMESPACE}:${args.path}`)};\n` +
              `export default bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);\n`,
            loader: "js",
            resolveDir: path.dirname(args.path),
          };
        }
        return undefined;
      });
      build.onResolve({ filter: new RegExp(`^${DATA_NAMESPACE}:`) }, (args) => ({
        path: args.path.slice(DATA_NAMESPACE.length + 1),
        namespace: DATA_NAMESPACE,
      }));
      build.onLoad({ filter: /.*/, namespace: DATA_NAMESPACE }, (args) => ({
        contents: readFileSync(args.path),
        loader: "binary",
      }));
    },
  };
}
