//! The library half of the `wasmdo` command: the parts other tools reuse (and the fuzz targets
//! exercise) — today the reader of Cloudflare Worker projects' wrangler configuration.

pub mod wrangler;
