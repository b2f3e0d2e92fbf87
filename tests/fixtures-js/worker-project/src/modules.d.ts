// The project's own module rule (wrangler.toml: Text for **/*.md); `*.html` and `*.bin` are
// declared by the SDK's types ("wasmdo/cloudflare"), as wrangler's default rules.
declare module "*.md" {
  const text: string;
  export default text;
}
