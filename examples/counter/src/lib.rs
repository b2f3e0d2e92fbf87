//! A counter Durable Object: one number in key-value storage, behind typed RPC
//! (`increment`, `get`) and HTTP (`GET /` answers the count).

use wasmdo::{DurableObject, Request, Response, storage};

wasmdo::wit_bindgen::generate!({
    world: "counter-object",
    runtime_path: "wasmdo::wit_bindgen::rt",
});

use exports::example::counter::counter::Guest;

/// The storage key of the count.
const COUNT: &str = "count";

struct Counter;

impl Counter {
    fn load() -> i64 {
        // The RPC signatures have no error case; a storage failure is a fault of the host,
        // so trap: the event's writes are rolled back and the caller gets a 500.
        storage::get(COUNT).expect("reading the count").unwrap_or(0)
    }
}

impl Guest for Counter {
    fn increment(by: i64) -> i64 {
        // past the largest s64 the count would wrap around: refuse (a trap rolls the event
        // back, and the caller gets a 500 naming the trap) rather than store a wrong count
        let total = Counter::load()
            .checked_add(by)
            .expect("the count would overflow s64");
        storage::put(COUNT, &total).expect("storing the count");
        total
    }

    fn get() -> i64 {
        Counter::load()
    }
}

impl DurableObject for Counter {
    fn fetch(req: Request) -> Result<Response, String> {
        Ok(match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/") => Response::text(200, Counter::load().to_string()),
            _ => Response::text(404, "not found"),
        })
    }
}

wasmdo::export_object!(Counter);
export!(Counter);
