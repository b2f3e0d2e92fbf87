//! The wrangler config reader (`wrangler.toml`, `wrangler.jsonc`, `wrangler.json`) on arbitrary
//! text: every input is a project or a list of diagnostics, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let file = ["wrangler.toml", "wrangler.jsonc", "wrangler.json"][usize::from(selector % 3)];
    let env = (selector & 0x80 != 0).then_some("staging");
    if let Err(errors) = wasmdo::wrangler::parse(Path::new(file), text, env) {
        assert!(!errors.0.is_empty(), "a refusal without a diagnostic");
    }
});
