# workerd config: one worker with a SQLite-backed Durable Object class, storage on local disk.
# Started by the host bench (`cargo bench -p wasmdo --bench host`) when bench/workerd is installed.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = .worker),
    (name = "disk", disk = (path = "data", writable = true)),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:8788", http = (), service = "main") ],
);

const worker :Workerd.Worker = (
  modules = [ (name = "counter.js", esModule = embed "counter.js") ],
  compatibilityDate = "2025-04-01",
  durableObjectNamespaces = [ (className = "Counter", uniqueKey = "wasmdo-bench-counter", enableSql = true) ],
  durableObjectStorage = (localDisk = "disk"),
  bindings = [ (name = "COUNTER", durableObjectNamespace = "Counter") ],
);
