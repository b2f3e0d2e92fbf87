# workerd config: two SQLite-backed Durable Object classes, one calling the other over JS RPC
# (calls.js). Started by the host bench (`BENCH_ONLY=calls cargo bench -p wasmdo --bench host`)
# when bench/workerd is installed.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = .worker),
    (name = "disk", disk = (path = "data", writable = true)),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:8788", http = (), service = "main") ],
);

const worker :Workerd.Worker = (
  modules = [ (name = "calls.js", esModule = embed "calls.js") ],
  compatibilityDate = "2025-04-01",
  durableObjectNamespaces = [
    (className = "Calls", uniqueKey = "wasmdo-bench-calls", enableSql = true),
    (className = "Types", uniqueKey = "wasmdo-bench-types", enableSql = true),
  ],
  durableObjectStorage = (localDisk = "disk"),
  bindings = [
    (name = "CALLS", durableObjectNamespace = "Calls"),
    (name = "TYPES", durableObjectNamespace = "Types"),
  ],
);
