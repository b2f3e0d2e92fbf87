// What a full build's bundle and a development bundle share: esbuild's settings for code that
// runs inside an object, and how a failed bundling is explained.

/** The esbuild settings of every bundle: browser-like code, no Node.js, ES2022. */
export const BUNDLE_OPTIONS = {
  bundle: true,
  platform: "neutral",
  mainFields: ["module", "main"],
  target: "es2022",
  logLevel: "silent",
};

/** esbuild's errors `e` as lines of `file:line: message`, with a hint where one helps. */
export function bundlingFailure(e) {
  const messages = (e.errors ?? []).map((m) => {
    const where = m.location ? `${m.location.file}:${m.location.line}: ` : "";
    let hint = "";
    if (/Could not resolve "node:/.test(m.text)) {
      hint = " (Node.js built-ins do not exist inside an object: use the Web APIs, or an npm package that runs in browsers)";
    } else if (/No loader is configured for/.test(m.text)) {
      hint = " (a module rule loads such files: --rule Text=<glob> gives a string, --rule Data=<glob> an ArrayBuffer)";
    }
    return `${where}${m.text}${hint}`;
  });
  return `bundling failed:\n${messages.join("\n") || e.message}`;
}
