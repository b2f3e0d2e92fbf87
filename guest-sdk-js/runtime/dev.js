// Development builds (`wasmdo dev`): one engine component for every class of a project and one
// for its Worker, built once. The project's code is not in them: the host hands each class its
// bundle (CommonJS, the SDK left out) in the env var `WASMDO_DEV_SOURCE`, with the class's name
// in `WASMDO_DEV_CLASS` (and the names of the JSON vars and of the bindings), and the engine evaluates it when the instance is first used. An edit
// then needs a new bundle (esbuild, milliseconds), not a new component (seconds of
// componentize-js and of compiling). Every RPC method is reached by name (dynamic RPC).

import { env } from "wasmdo:object/object@0.1.0";

import * as sdk from "./index.js";
import { registerHiddenVars, registerJsonVars } from "./object.js";
import { failedText, hostObject, hostWorker } from "./glue.js";
import { registerBinding } from "./namespace.js";

const SOURCE = "WASMDO_DEV_SOURCE";
const CLASS = "WASMDO_DEV_CLASS";
const JSON_VARS = "WASMDO_DEV_JSON_VARS";
const BINDINGS = "WASMDO_DEV_BINDINGS";

/** The modules the bundle left out for the engine to provide: the SDK, by its names. */
function provided(name) {
  if (name === "cloudflare:workers" || name === "wasmdo") return sdk;
  throw new Error(`the development bundle imports ${JSON.stringify(name)}, which only a full build (wasmdo deploy) provides`);
}

/** The project's module, evaluated from the bundle the host handed over. */
function evaluate() {
  registerHiddenVars([SOURCE, CLASS, JSON_VARS, BINDINGS]);
  const source = env(SOURCE);
  if (source === undefined) throw new Error(`this is a development build: it needs its code in the env var ${SOURCE} (wasmdo dev sets it)`);
  registerJsonVars(JSON.parse(env(JSON_VARS) ?? "[]"));
  // every binding's namespace: stubs whose methods are all called by name
  for (const name of JSON.parse(env(BINDINGS) ?? "[]")) registerBinding(name, name, []);
  const module = { exports: {} };
  // a CommonJS bundle: `require` gives the SDK, `module.exports` the module's exports
  new Function("module", "exports", "require", source)(module, module.exports, provided);
  return module.exports;
}

/**
 * `shape`'s interfaces with each function forwarding to the same one of `real()`. The first
 * call of an instance, `handler.init`, loads the code first: what it threw while loading is the
 * instance's failure, said as the failure of loading `what`.
 */
function forwarding(shape, real, what) {
  const out = {};
  for (const [iface, fns] of Object.entries(shape)) {
    out[iface] = {};
    for (const fn of Object.keys(fns)) out[iface][fn] = (...args) => real()[iface][fn](...args);
  }
  const init = out.handler.init;
  out.handler.init = (...args) => {
    try {
      real();
    } catch (e) {
      throw `loading ${what} failed: ${failedText(e)}`;
    }
    return init(...args);
  };
  return out;
}

/** The exports of a development build of a Durable Object class. */
export function hostDevObject() {
  let real = null;
  const load = () => {
    if (real === null) {
      const module = evaluate();
      const name = env(CLASS);
      if (typeof module[name] !== "function") {
        const found = Object.keys(module).filter((k) => typeof module[k] === "function");
        throw new Error(`the module exports no class ${name} (it exports: ${found.join(", ") || "nothing"})`);
      }
      real = hostObject(module, name, {});
    }
    return real;
  };
  return forwarding(hostObject({ Shape: class {} }, "Shape", {}), load, "the class");
}

/** The exports of a development build of a module's default export (a Worker). */
export function hostDevWorker() {
  let real = null;
  const load = () => (real ??= hostWorker(evaluate().default));
  return forwarding(hostWorker({ fetch() {} }), load, "the Worker");
}
