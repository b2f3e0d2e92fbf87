// Types of wasmdo's JavaScript SDK, the subset of `cloudflare:workers` that wasmdo runs.

/** WIT integer types for RPC signatures: `count: u32` crosses as a WIT `u32` (a JS number). */
export type u8 = number & { readonly __wit?: "u8" };
export type u16 = number & { readonly __wit?: "u16" };
export type u32 = number & { readonly __wit?: "u32" };
export type s8 = number & { readonly __wit?: "s8" };
export type s16 = number & { readonly __wit?: "s16" };
export type s32 = number & { readonly __wit?: "s32" };
/** 64-bit integers are bigints in JS. A plain `bigint` is a WIT `s64`. */
export type u64 = bigint & { readonly __wit?: "u64" };
export type s64 = bigint & { readonly __wit?: "s64" };
export type f32 = number & { readonly __wit?: "f32" };
export type f64 = number & { readonly __wit?: "f64" };

export declare class DurableObjectId {
  /** The id: 64 lowercase hex digits. */
  toString(): string;
  /** The name the object was addressed by (`idFromName`), if any. */
  readonly name?: string;
  equals(other: DurableObjectId): boolean;
}

export interface DurableObjectListOptions {
  start?: string;
  startAfter?: string;
  end?: string;
  prefix?: string;
  reverse?: boolean;
  limit?: number;
}

export interface DurableObjectGetAlarmOptions {
  allowConcurrency?: boolean;
}
export interface DurableObjectSetAlarmOptions {
  allowConcurrency?: boolean;
  allowUnconfirmed?: boolean;
}

export declare class DurableObjectTransaction {
  get<T = unknown>(key: string): Promise<T | undefined>;
  get<T = unknown>(keys: string[]): Promise<Map<string, T>>;
  put<T>(key: string, value: T): Promise<void>;
  put<T>(entries: Record<string, T>): Promise<void>;
  delete(key: string): Promise<boolean>;
  delete(keys: string[]): Promise<number>;
  list<T = unknown>(options?: DurableObjectListOptions): Promise<Map<string, T>>;
  getAlarm(options?: DurableObjectGetAlarmOptions): Promise<number | null>;
  setAlarm(scheduledTime: number | Date, options?: DurableObjectSetAlarmOptions): Promise<void>;
  deleteAlarm(options?: DurableObjectSetAlarmOptions): Promise<void>;
  rollback(): void;
}

export declare class SyncKvStorage {
  get<T = unknown>(key: string): T | undefined;
  put<T>(key: string, value: T): void;
  delete(key: string): boolean;
  list<T = unknown>(options?: DurableObjectListOptions): Iterable<[string, T]>;
}

export type SqlStorageValue = ArrayBuffer | string | number | bigint | null;

export declare class SqlStorageCursor<T extends Record<string, SqlStorageValue> = Record<string, SqlStorageValue>>
  implements IterableIterator<T>
{
  next(): IteratorResult<T>;
  [Symbol.iterator](): IterableIterator<T>;
  toArray(): T[];
  one(): T;
  raw<U extends SqlStorageValue[] = SqlStorageValue[]>(): IterableIterator<U> & { toArray(): U[] };
  readonly columnNames: string[];
  readonly rowsRead: number;
  readonly rowsWritten: number;
}

export declare class SqlStorage {
  exec<T extends Record<string, SqlStorageValue> = Record<string, SqlStorageValue>>(
    query: string,
    ...bindings: unknown[]
  ): SqlStorageCursor<T>;
  readonly databaseSize: number;
}

export declare class DurableObjectStorage {
  get<T = unknown>(key: string): Promise<T | undefined>;
  get<T = unknown>(keys: string[]): Promise<Map<string, T>>;
  put<T>(key: string, value: T): Promise<void>;
  put<T>(entries: Record<string, T>): Promise<void>;
  delete(key: string): Promise<boolean>;
  delete(keys: string[]): Promise<number>;
  list<T = unknown>(options?: DurableObjectListOptions): Promise<Map<string, T>>;
  deleteAll(): Promise<void>;
  transaction<T>(closure: (txn: DurableObjectTransaction) => Promise<T>): Promise<T>;
  transactionSync<T>(closure: () => T): T;
  getAlarm(options?: DurableObjectGetAlarmOptions): Promise<number | null>;
  setAlarm(scheduledTime: number | Date, options?: DurableObjectSetAlarmOptions): Promise<void>;
  deleteAlarm(options?: DurableObjectSetAlarmOptions): Promise<void>;
  sync(): Promise<void>;
  readonly sql: SqlStorage;
  readonly kv: SyncKvStorage;
}

export declare class DurableObjectState {
  readonly id: DurableObjectId;
  readonly storage: DurableObjectStorage;
  blockConcurrencyWhile<T>(callback: () => Promise<T>): Promise<T>;
  waitUntil(promise: Promise<unknown>): void;
  /** Accepts the server end of a WebSocketPair for the upgrade request `fetch` is handling (up to 10 tags). */
  acceptWebSocket(ws: WebSocket, tags?: string[]): void;
  /** The object's open WebSockets (also after hibernation), or those carrying `tag`. */
  getWebSockets(tag?: string): WebSocket[];
  getTags(ws: WebSocket): string[];
  /** A text message the host answers itself, without waking the object; `null` removes it. */
  setWebSocketAutoResponse(pair?: WebSocketRequestResponsePair | null): void;
}

/** A WebSocket the host holds for the object (the hibernation API). */
export declare class WebSocket {
  static readonly CONNECTING: 0;
  static readonly OPEN: 1;
  static readonly CLOSING: 2;
  static readonly CLOSED: 3;
  readonly readyState: number;
  send(message: string | ArrayBuffer | ArrayBufferView): void;
  close(code?: number, reason?: string): void;
  /** Keeps a structured-clone-able value (≤ 2,048 bytes encoded) with the socket; it survives hibernation. */
  serializeAttachment(value: unknown): void;
  deserializeAttachment(): any;
}

/** `[client, server]`: accept `server` with `ctx.acceptWebSocket`, answer with `client`. */
export declare class WebSocketPair {
  0: WebSocket;
  1: WebSocket;
}

export declare class WebSocketRequestResponsePair {
  constructor(request: string, response: string);
  readonly request: string;
  readonly response: string;
}

/** A WebSocket call the host refused; `code` is the WIT error case (`unknown-socket`, `invalid-tags`, …). */
export declare class WebSocketError extends Error {
  readonly code: string;
}

export interface AlarmInvocationInfo {
  readonly retryCount: number;
  readonly isRetry: boolean;
}

export declare abstract class DurableObject<Env = Record<string, string>> {
  protected ctx: DurableObjectState;
  protected env: Env;
  constructor(ctx: DurableObjectState, env: Env);
  fetch?(request: Request): Response | Promise<Response>;
  alarm?(alarmInfo?: AlarmInvocationInfo): void | Promise<void>;
  webSocketMessage?(ws: WebSocket, message: string | ArrayBuffer): void | Promise<void>;
  webSocketClose?(ws: WebSocket, code: number, reason: string, wasClean: boolean): void | Promise<void>;
  webSocketError?(ws: WebSocket, error: unknown): void | Promise<void>;
  /**
   * wasmdo only: the in-memory state to keep across hibernation (any value storage can hold).
   * On wake the object is rebuilt without its constructor (`ctx` and `env` set) and handed the
   * state by `restore`.
   */
  snapshot?(): unknown;
  restore?(state: any): void;
}

/**
 * The `webSocket` of a 101 answer to `stub.fetch`: the client's socket, which the object the
 * upgrade request was passed to accepted (and owns). It can only be returned in a 101
 * `Response`; `send`, `close`, `accept` and the attachment methods throw.
 */
export declare class ForwardedWebSocket extends WebSocket {}

/** A Worker's `ctx`: one per request. */
export declare class ExecutionContext {
  /** The response waits for `promise` too (a rejection is logged, not raised). */
  waitUntil(promise: Promise<unknown>): void;
  /** Does nothing on wasmdo (there is no origin): a thrown error answers 500. */
  passThroughOnException(): void;
}

/**
 * A Worker: the module's default export, built with `wasmdo-js build --worker`. It receives
 * every request outside the host's own routes, with its full URL.
 */
export interface ExportedHandler<Env = Record<string, unknown>> {
  fetch?(request: Request, env: Env, ctx: ExecutionContext): Response | Promise<Response>;
}

/** The class form of a Worker (`export default class extends WorkerEntrypoint { fetch(request) {…} }`). */
export declare abstract class WorkerEntrypoint<Env = Record<string, unknown>> {
  protected ctx: ExecutionContext;
  protected env: Env;
  constructor(ctx: ExecutionContext, env: Env);
  fetch?(request: Request): Response | Promise<Response>;
}

type WasmdoWebSocket = WebSocket;
type WebSocketPairClass = typeof WebSocketPair;
type WebSocketRequestResponsePairClass = typeof WebSocketRequestResponsePair;

declare global {
  /**
   * Cloudflare's `new Response(null, { status: 101, webSocket: client })`: the client end of an
   * accepted WebSocketPair, or the `webSocket` of a 101 answer to `stub.fetch`.
   */
  interface ResponseInit {
    webSocket?: WasmdoWebSocket | null;
  }
  interface Response {
    /** The WebSocket of a 101 response (see ResponseInit); `null` on every other response. */
    readonly webSocket: WasmdoWebSocket | null;
  }
  /** The attachment methods of the hibernation API, on the platform's WebSocket type. */
  interface WebSocket {
    serializeAttachment(value: unknown): void;
    deserializeAttachment(): any;
  }
  var WebSocketPair: WebSocketPairClass;
  var WebSocketRequestResponsePair: WebSocketRequestResponsePairClass;
}

/** A storage call the host refused; `code` is the WIT error case (`value-too-large`, `sql`, …). */
export declare class StorageError extends Error {
  readonly code: string;
}

/** A value storage cannot hold (a function, a class instance, a cycle). */
export declare class DataCloneError extends Error {}

/**
 * `env.BINDING` for a binding the class was built with (`wasmdo-js build --binding
 * COUNTER=counter.wit`); `T` is the bound class's interface (`wasmdo bindgen <class> --lang
 * ts-stub`). Built with `--binding COUNTER` (no stub package), its stubs have only `fetch`.
 * Making ids and stubs activates nothing.
 */
export declare class DurableObjectNamespace<T = unknown> {
  idFromName(name: string): DurableObjectId;
  newUniqueId(): DurableObjectId;
  /** The id `id` of this namespace; an id of another class throws a `CallError` (`invalid-id`). */
  idFromString(id: string): DurableObjectId;
  get(id: DurableObjectId | string): DurableObjectStub<T>;
  getByName(name: string): DurableObjectStub<T>;
}

/** One object of a bound class: its methods, each call an event of that object, and `fetch`. */
export type DurableObjectStub<T = unknown> = T & {
  readonly id?: DurableObjectId;
  readonly name?: string;
  /**
   * Sends a request to the object's `fetch` (Cloudflare's `stub.fetch`): an event of that
   * object. The URL must be absolute; every header is sent, `upgrade` included. A WebSocket
   * upgrade request the caller is handling may be passed on: if the object accepts it, the
   * answer is a 101 whose `webSocket` the caller returns in its own 101 response. A failed
   * call throws a `CallError`.
   */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
};

/** A call to another object that did not produce the callee's result. */
export declare class CallError extends Error {
  /** The WIT case of `call-error`. */
  readonly kind: "unknown-binding" | "invalid-id" | "bad-call" | "cycle" | "callee-failed" | "unavailable";
  /** The callee itself failed (trapped, hit a limit); its writes were rolled back. */
  readonly remote: boolean;
  /** The call may succeed later (the callee was overloaded or going away). */
  readonly retryable: boolean;
}
