// Which method names RPC may reach, by Cloudflare's rules: one list for the build's analysis
// (which methods become typed WIT functions) and the runtime's dynamic RPC (which methods a
// caller may reach by name).

/** Methods that are handlers, never RPC methods. */
const HANDLERS = new Set([
  "constructor",
  "fetch",
  "alarm",
  "webSocketMessage",
  "webSocketClose",
  "webSocketError",
  // wasmdo's snapshots of in-memory state across hibernation
  "snapshot",
  "restore",
]);

/** Whether a method called `name` may be an RPC method: not a handler, not `_`- or `#`-named. */
export function isRpcName(name) {
  return typeof name === "string" && !HANDLERS.has(name) && !name.startsWith("_") && !name.startsWith("#");
}
