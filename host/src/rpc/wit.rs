//! A deployed class's RPC surface as WIT text, decoded from its component: the packages of the
//! interfaces it exports, with their type and parameter names as written (`GET
//! /_admin/classes/{class}/wit`, `wasmdo wit`). Callers feed it to the ecosystem's generators
//! (`wit-bindgen`, `jco types`) to get typed bindings in their language.

use wit_component::{DecodedWasm, WitPrinter};
use wit_parser::{PackageId, WorldItem};

use crate::error::BoxError;

/// The WIT of the class's own exported interfaces; the `wasmdo:object` handlers and WASI are
/// left out (they are the same for every class). Empty when the class exports none.
pub fn class_wit(component: &[u8]) -> Result<String, BoxError> {
    let DecodedWasm::Component(resolve, world) = wit_component::decode(component)? else {
        return Err("not a component".into());
    };
    let mut packages: Vec<PackageId> = Vec::new();
    for item in resolve.worlds[world].exports.values() {
        let WorldItem::Interface { id, .. } = item else {
            continue;
        };
        let Some(package) = resolve.interfaces[*id].package else {
            continue;
        };
        let name = &resolve.packages[package].name;
        let shared =
            name.namespace == "wasi" || (name.namespace == "wasmdo" && name.name == "object");
        if !shared && !packages.contains(&package) {
            packages.push(package);
        }
    }
    let Some((first, rest)) = packages.split_first() else {
        return Ok(String::new());
    };
    let mut printer = WitPrinter::default();
    printer.print(&resolve, *first, rest)?;
    Ok(printer.output.to_string())
}
