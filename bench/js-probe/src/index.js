// What the pieces of a request's path cost a JavaScript object, in fuel (deterministic: one unit
// per wasm instruction of the engine): each method does its operation `n` times, and
// scripts/js-probe diffs the host's fuel counter between n = 0 and n = 100. Not an example: a
// measuring instrument (docs/BENCHMARKS.md, "The Worker route, where its time goes").
import { DurableObject } from "cloudflare:workers";
const H = [["host", "x"], ["accept", "*/*"], ["user-agent", "curl/8"], ["cf-connecting-ip", "127.0.0.1"]];
const H20 = Array.from({ length: 20 }, (_, i) => [`x-h${i}`, `value${i}`]);
const P20 = H20.map(([n, v]) => `${n}\n${v}`).join("\n");
export class Probe extends DurableObject {
  noop(n) { return n; }
  req(n) { for (let i = 0; i < n; i++) new Request("https://x/api/rooms/r/history", { method: "GET", headers: H }); return n; }
  platformReq(n) { const P = Object.getPrototypeOf(Request); for (let i = 0; i < n; i++) new P("https://x/api/rooms/r/history", { method: "GET", headers: H }); return n; }
  headers(n) { for (let i = 0; i < n; i++) new Headers(H); return n; }
  url(n) { for (let i = 0; i < n; i++) new URL("https://x/api/rooms/r/history"); return n; }
  resp(n) { for (let i = 0; i < n; i++) new Response("x"); return n; }
  respHeaders(n) { const r = new Response("x"); for (let i = 0; i < n; i++) [...r.headers]; return n; }
  async body(n) { for (let i = 0; i < n; i++) await new Response("x").arrayBuffer(); return n; }
  async hop(n) { for (let i = 0; i < n; i++) await null; return n; }
  json(n) { const v = { messages: [] }; for (let i = 0; i < n; i++) JSON.stringify(v); return n; }
  async stubFetch(n) { const s = this.env.P.get(this.env.P.idFromName("other")); for (let i = 0; i < n; i++) await s.fetch("https://x/a"); return n; }
  unpack20(n) { for (let i = 0; i < n; i++) { const lines = P20.split("\n"); const h = new Headers(); for (let j = 0; j + 1 < lines.length; j += 2) h.append(lines[j], lines[j + 1]); } return n; }
  split20(n) { for (let i = 0; i < n; i++) P20.split("\n"); return n; }
  headers20(n) { for (let i = 0; i < n; i++) new Headers(H20); return n; }
  platformReq20(n) { const P = Object.getPrototypeOf(Request); const h = new Headers(H20); for (let i = 0; i < n; i++) new P("https://x/api/rooms/r/history", { method: "GET", headers: h }); return n; }
  fetch() { return new Response("x"); }
}
export default { fetch() { return new Response("x"); } };
