// `import html from "./index.html"`: a Text module rule (wrangler.toml) makes a file its text.
declare module "*.html" {
  const text: string;
  export default text;
}
