// `import { DurableObject } from "cloudflare:workers"` in an editor: add "wasmdo/cloudflare" to
// `compilerOptions.types` in tsconfig.json.
declare module "cloudflare:workers" {
  export * from "wasmdo";
}
