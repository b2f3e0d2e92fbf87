# workerd config: the chat room of examples/chatroom-js (its TypeScript transpiled to chatroom.js
# by the websockets bench) behind a Worker that routes `/objects/chatroom-js/{room}/…` to the
# room's Durable Object, as wasmdo's gateway does. Started by
# `cargo bench -p wasmdo --bench websockets` when bench/workerd is installed.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = .worker),
    (name = "disk", disk = (path = "data", writable = true)),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:8788", http = (), service = "main") ],
);

const worker :Workerd.Worker = (
  modules = [
    (name = "worker.js", esModule = embed "chatroom-worker.js"),
    (name = "chatroom.js", esModule = embed "chatroom.js"),
  ],
  compatibilityDate = "2025-04-01",
  durableObjectNamespaces = [ (className = "ChatRoomJs", uniqueKey = "wasmdo-bench-chatroom", enableSql = true) ],
  durableObjectStorage = (localDisk = "disk"),
  bindings = [ (name = "ROOMS", durableObjectNamespace = "ChatRoomJs") ],
);
