//! The wrangler keys wasmdo knows, each with what wasmdo does with it ([`KEYS`], the table of
//! `docs/WRANGLER.md`), and the keys an environment inherits ([`INHERITABLE`]).

/// What wasmdo does with a wrangler key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Treatment {
    /// Read and honoured.
    Honoured,
    /// Accepted, with a note: it changes nothing on a wasmdo host.
    NoEffect(&'static str),
    /// Ignored, with a warning: a Cloudflare feature wasmdo does not provide.
    Ignored(&'static str),
}

use Treatment::{Honoured, Ignored, NoEffect};

const DEPLOY_SETTING: &str = "a Cloudflare deployment setting; no effect on a wasmdo host";
const NO_BUNDLER_SETTING: &str = "wasmdo-js bundles `main` with esbuild's defaults; run your own build step first if you need it";

/// Every top-level wrangler key wasmdo knows and what it does with it. A key not listed is
/// ignored with a warning too ("not a wrangler key wasmdo knows").
pub(super) const KEYS: &[(&str, Treatment)] = &[
    ("name", Honoured),
    ("main", Honoured),
    ("vars", Honoured),
    ("durable_objects", Honoured),
    ("migrations", Honoured),
    ("rules", Honoured),
    ("env", Honoured),
    ("$schema", NoEffect("")),
    (
        "compatibility_date",
        NoEffect("wasmdo has one runtime behaviour; compatibility dates do not change it"),
    ),
    (
        "compatibility_flags",
        NoEffect(
            "wasmdo has one runtime behaviour; compatibility flags do not change it (Node.js built-ins are not available)",
        ),
    ),
    ("account_id", NoEffect(DEPLOY_SETTING)),
    ("workers_dev", NoEffect(DEPLOY_SETTING)),
    ("preview_urls", NoEffect(DEPLOY_SETTING)),
    (
        "routes",
        NoEffect(
            "every request to the host outside /_admin/, /rpc/ and /objects/ goes to the Worker",
        ),
    ),
    (
        "route",
        NoEffect(
            "every request to the host outside /_admin/, /rpc/ and /objects/ goes to the Worker",
        ),
    ),
    ("zone_id", NoEffect(DEPLOY_SETTING)),
    (
        "observability",
        NoEffect("objects log to the host's log (WASMDO_LOG)"),
    ),
    ("logpush", NoEffect(DEPLOY_SETTING)),
    ("upload_source_maps", NoEffect(DEPLOY_SETTING)),
    ("placement", NoEffect(DEPLOY_SETTING)),
    ("usage_model", NoEffect(DEPLOY_SETTING)),
    ("compliance_region", NoEffect(DEPLOY_SETTING)),
    ("first_party_worker", NoEffect(DEPLOY_SETTING)),
    ("send_metrics", NoEffect("wrangler's own telemetry")),
    ("keep_vars", NoEffect(DEPLOY_SETTING)),
    ("minify", NoEffect(DEPLOY_SETTING)),
    ("keep_names", NoEffect("names are kept")),
    (
        "limits",
        Ignored("wasmdo's limits are the host's (wasmdo.toml [limits], see --config)"),
    ),
    (
        "kv_namespaces",
        Ignored("wasmdo does not provide Workers KV"),
    ),
    ("r2_buckets", Ignored("wasmdo does not provide R2")),
    (
        "d1_databases",
        Ignored("wasmdo does not provide D1 (a Durable Object's own SQLite is `ctx.storage.sql`)"),
    ),
    (
        "services",
        Ignored("wasmdo does not provide service bindings"),
    ),
    ("queues", Ignored("wasmdo does not provide Queues")),
    (
        "analytics_engine_datasets",
        Ignored("wasmdo does not provide Analytics Engine"),
    ),
    ("vectorize", Ignored("wasmdo does not provide Vectorize")),
    ("hyperdrive", Ignored("wasmdo does not provide Hyperdrive")),
    ("ai", Ignored("wasmdo does not provide Workers AI")),
    (
        "browser",
        Ignored("wasmdo does not provide Browser Rendering"),
    ),
    ("images", Ignored("wasmdo does not provide Images")),
    (
        "mtls_certificates",
        Ignored("wasmdo does not provide mTLS certificates"),
    ),
    (
        "dispatch_namespaces",
        Ignored("wasmdo does not provide Workers for Platforms"),
    ),
    (
        "send_email",
        Ignored("wasmdo does not provide Email Routing"),
    ),
    ("workflows", Ignored("wasmdo does not provide Workflows")),
    ("pipelines", Ignored("wasmdo does not provide Pipelines")),
    (
        "secrets_store_secrets",
        Ignored("wasmdo does not provide Secrets Store (put secrets in [vars])"),
    ),
    (
        "ratelimits",
        Ignored("wasmdo does not provide the Rate Limiting binding"),
    ),
    (
        "version_metadata",
        Ignored("wasmdo does not provide version metadata"),
    ),
    (
        "worker_loaders",
        Ignored("wasmdo does not provide Worker Loaders"),
    ),
    ("containers", Ignored("wasmdo does not run containers")),
    ("cloudchamber", Ignored("wasmdo does not run containers")),
    (
        "tail_consumers",
        Ignored("wasmdo does not provide Tail Workers"),
    ),
    ("logfwdr", Ignored("wasmdo does not provide log forwarding")),
    ("unsafe", Ignored("wasmdo does not provide unsafe bindings")),
    (
        "triggers",
        Ignored("wasmdo does not run Cron Triggers (a Durable Object alarm can)"),
    ),
    (
        "assets",
        Ignored("wasmdo does not serve static assets: every request goes to the Worker"),
    ),
    (
        "site",
        Ignored("wasmdo does not serve Workers Sites: every request goes to the Worker"),
    ),
    (
        "build",
        Ignored(
            "wasmdo runs no custom build: run your build command first, then point `main` at its output",
        ),
    ),
    ("define", Ignored(NO_BUNDLER_SETTING)),
    ("alias", Ignored(NO_BUNDLER_SETTING)),
    ("tsconfig", Ignored(NO_BUNDLER_SETTING)),
    ("jsx_factory", Ignored(NO_BUNDLER_SETTING)),
    ("jsx_fragment", Ignored(NO_BUNDLER_SETTING)),
    ("no_bundle", Ignored("wasmdo-js always bundles `main`")),
    (
        "find_additional_modules",
        Ignored("wasmdo-js bundles what `main` imports"),
    ),
    (
        "base_dir",
        Ignored("module rule globs are matched as wasmdo-js resolves imports"),
    ),
    ("preserve_file_names", Ignored(NO_BUNDLER_SETTING)),
    (
        "node_compat",
        Ignored("Node.js built-ins are not available in wasmdo"),
    ),
    (
        "wasm_modules",
        Ignored("wasmdo-js does not import WebAssembly modules"),
    ),
    (
        "text_blobs",
        Ignored("service-worker syntax is not supported: use an ES module and a Text rule"),
    ),
    (
        "data_blobs",
        Ignored("service-worker syntax is not supported: use an ES module and a Data rule"),
    ),
    (
        "legacy_env",
        Ignored("environments are `[env.<name>]` with --env"),
    ),
    ("dev", Ignored("use `wasmdo dev --listen`")),
];

/// Keys a named environment inherits from the top level when it does not set them (wrangler's
/// "inheritable" keys); every other key must be set in the environment itself.
pub(super) const INHERITABLE: &[&str] = &[
    "name",
    "account_id",
    "compatibility_date",
    "compatibility_flags",
    "main",
    "find_additional_modules",
    "preserve_file_names",
    "base_dir",
    "workers_dev",
    "preview_urls",
    "routes",
    "route",
    "tsconfig",
    "jsx_factory",
    "jsx_fragment",
    "migrations",
    "triggers",
    "limits",
    "rules",
    "build",
    "no_bundle",
    "minify",
    "keep_names",
    "first_party_worker",
    "logfwdr",
    "logpush",
    "upload_source_maps",
    "placement",
    "assets",
    "observability",
    "compliance_region",
];

/// How wasmdo treats the top-level key `key`, if it knows it.
pub(super) fn treatment(key: &str) -> Option<Treatment> {
    KEYS.iter().find(|(k, _)| *k == key).map(|(_, t)| *t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_listed_once() {
        let mut seen = std::collections::BTreeSet::new();
        for (key, _) in KEYS {
            assert!(seen.insert(key), "{key} twice");
        }
        for key in INHERITABLE {
            assert!(
                treatment(key).is_some(),
                "{key} is inheritable but not in KEYS"
            );
        }
    }
}
