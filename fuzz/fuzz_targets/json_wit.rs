//! The JSON ⇄ WIT mapping against arbitrary WIT types: decoding arbitrary JSON never panics,
//! and whatever decodes encodes to JSON that decodes and encodes to itself again — for generated
//! JSON values, and for the raw bytes that follow them as a request body's text.
#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(tree) = wasmdo_fuzz::type_tree(&mut u, 0) else {
        return;
    };
    let ty = wasmdo_fuzz::compile_type(&tree);
    let Ok(json) = wasmdo_fuzz::json(&mut u, 0) else {
        return;
    };
    wasmdo_host::fuzzing::json_round_trip(&ty, &json);
    wasmdo_host::fuzzing::json_text_round_trip(&ty, u.take_rest());
});
