// `import { DurableObject } from "cloudflare:workers"` in an editor: add "wasmdo/cloudflare" to
// `compilerOptions.types` in tsconfig.json (instead of "@cloudflare/workers-types", whose globals
// these repeat: the Worker types, and the modules the default module rules make).
declare module "cloudflare:workers" {
  export * from "wasmdo";
}

type ExportedHandler<Env = Record<string, unknown>> = import("wasmdo").ExportedHandler<Env>;
type ExecutionContext = import("wasmdo").ExecutionContext;
type DurableObjectNamespace<T = unknown> = import("wasmdo").DurableObjectNamespace<T>;
type DurableObjectStub<T = unknown> = import("wasmdo").DurableObjectStub<T>;
type DurableObjectId = import("wasmdo").DurableObjectId;
type DurableObjectState = import("wasmdo").DurableObjectState;

/** wrangler's default module rules: text modules… */
declare module "*.txt" {
  const text: string;
  export default text;
}
declare module "*.html" {
  const text: string;
  export default text;
}
/** …and data modules. */
declare module "*.bin" {
  const data: ArrayBuffer;
  export default data;
}
