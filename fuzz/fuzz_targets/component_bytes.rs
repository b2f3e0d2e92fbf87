//! Component uploads of arbitrary bytes (`PUT /_admin/classes/{class}`) into a real host:
//! every upload is deployed (201) or refused with a JSON error (400, 413), and the host lives.
#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;
use wasmdo_fuzz::{InProcessHost, assert_json_error};

fn host() -> &'static InProcessHost {
    static SEEDED: std::sync::Once = std::sync::Once::new();
    let host = InProcessHost::get("");
    SEEDED.call_once(|| {
        // the fixtures deploy: the target starts from real components
        for path in [
            wasmdo_test_artifacts::STORAGE_KV,
            wasmdo_test_artifacts::WEBSOCKETS_BASIC,
            wasmdo_test_artifacts::EXAMPLE_COUNTER,
        ] {
            let bytes = std::fs::read(path).expect("a fixture");
            let (status, body) = host.request("PUT", "/_admin/classes/seed", &bytes);
            assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        }
    });
    host
}

fuzz_target!(|data: &[u8]| {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let host = host();
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    let (status, body) = host.request("PUT", &format!("/_admin/classes/fuzz{}", n % 4), data);
    match status {
        201 => {}
        400 | 413 => assert_json_error(status, &body),
        other => panic!(
            "upload answered {other}: {}",
            String::from_utf8_lossy(&body)
        ),
    }
    if n % 64 == 0 {
        host.assert_alive();
    }
});
