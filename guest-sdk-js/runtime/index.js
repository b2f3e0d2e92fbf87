// wasmdo's JavaScript SDK, imported as "cloudflare:workers" or "wasmdo".

export { DurableObject, DurableObjectId, DurableObjectState, ExecutionContext, WorkerEntrypoint } from "./object.js";
export { DurableObjectStorage, SyncKvStorage } from "./storage.js";
export { SqlStorage, SqlStorageCursor } from "./sql.js";
export { StorageError } from "./host.js";
export { DataCloneError } from "./values.js";
export { CallError, DurableObjectNamespace } from "./namespace.js";
export { ForwardedWebSocket, WebSocket, WebSocketError, WebSocketPair, WebSocketRequestResponsePair } from "./websockets.js";
