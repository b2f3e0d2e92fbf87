// The SDK's type declarations are right: the TypeScript examples and fixtures type-check
// against them (strict), as they would in a user's editor.
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import ts from "typescript";

const sdk = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const repo = path.resolve(sdk, "..");
const types = path.join(sdk, "runtime", "index.d.ts");

test("examples and fixtures type-check against the SDK's declarations", () => {
  const files = [
    "examples/counter-js/src/counter.ts",
    "examples/chat-js/src/chat.ts",
    "examples/rate-limiter-js/src/limiter.ts",
    "examples/room-js/src/room.ts",
    "tests/fixtures-js/storage.ts",
    "tests/fixtures-js/runtime.ts",
  ].map((f) => path.join(repo, f));
  const program = ts.createProgram(files, {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: ["lib.es2022.d.ts", "lib.dom.d.ts"],
    types: [],
    skipLibCheck: false,
    paths: { "cloudflare:workers": [types], wasmdo: [types] },
  });
  const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file ? `${path.relative(repo, d.file.fileName)}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}` : "";
    return `${where} ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`;
  });
  assert.deepEqual(diagnostics, []);
});
