# workerd config: examples/chat-worker (a Cloudflare Workers project) as wrangler would run it:
# its TypeScript bundled by esbuild into chat-worker.js with the HTML left a Text module, its
# wrangler.toml's vars and Durable Object bindings below. Started by
# `cargo bench -p wasmdo --bench worker` (which writes chat-worker.js and index.html beside it)
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
  modules = [
    (name = "index.js", esModule = embed "chat-worker.js"),
    (name = "index.html", text = embed "index.html"),
  ],
  compatibilityDate = "2025-04-01",
  durableObjectNamespaces = [
    (className = "ChatRoom", uniqueKey = "chat-worker-ChatRoom", enableSql = true),
    (className = "RateLimiter", uniqueKey = "chat-worker-RateLimiter", enableSql = true),
  ],
  durableObjectStorage = (localDisk = "disk"),
  bindings = [
    (name = "ROOMS", durableObjectNamespace = "ChatRoom"),
    (name = "LIMITER", durableObjectNamespace = "RateLimiter"),
    (name = "MAX_HISTORY", text = "50"),
    (name = "RATE_LIMIT", json = "{\"joins\": 20, \"per_seconds\": 60}"),
  ],
);
