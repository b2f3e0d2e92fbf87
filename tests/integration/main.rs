//! Integration tests: the real `wasmdo` binary, started on an ephemeral port with a temporary
//! data dir, driven over HTTP and through its CLI with guest fixtures built from source
//! (`tests/fixtures`, `examples`) by `wasmdo-test-artifacts`.

mod harness;

mod alarms_basic;
mod bindgen;
mod chat_worker;
mod cli;
mod cluster;
mod connections;
mod control_plane;
mod durability;
mod entry_worker;
mod examples;
mod http_outbound;
mod js_calls;
mod js_classic;
mod js_live;
mod js_sdk;
mod js_worker;
mod limits_runaway;
mod object_info;
mod postgres;
mod projects;
mod python;
mod quotas;
mod registry;
mod rpc_calls;
mod rpc_to_js;
mod rpc_types;
mod sandbox;
mod storage_kv;
mod websockets_basic;
mod wrangler;

/// Which test module covers each fixture: a fixture without a line here fails the build
/// (`foreach_fixture!` lists every directory under `tests/fixtures`, `foreach_js_fixture!` every
/// `tests/fixtures-js/<name>.ts` as `js_<name>`).
mod coverage {
    pub(crate) use crate::alarms_basic::COVERS as alarms_basic;
    pub(crate) use crate::entry_worker::COVERS as worker_front;
    pub(crate) use crate::http_outbound::COVERS as http_outbound;
    pub(crate) use crate::js_calls::COVERS as js_caller;
    pub(crate) use crate::js_sdk::COVERS as js_runtime;
    pub(crate) use crate::js_sdk::COVERS as js_storage;
    pub(crate) use crate::limits_runaway::COVERS as limits_runaway;
    pub(crate) use crate::object_info::COVERS as object_info;
    pub(crate) use crate::python::COVERS as py_caller;
    pub(crate) use crate::python::COVERS as py_probe;
    pub(crate) use crate::python::COVERS as py_sockets;
    pub(crate) use crate::registry::COVERS as registry_missing_handler;
    pub(crate) use crate::registry::COVERS as registry_unknown_import;
    pub(crate) use crate::rpc_calls::COVERS as rpc_calls;
    pub(crate) use crate::rpc_to_js::COVERS as rpc_to_js;
    pub(crate) use crate::rpc_types::COVERS as rpc_types;
    pub(crate) use crate::sandbox::COVERS as object_sandbox;
    pub(crate) use crate::storage_kv::COVERS as storage_kv;
    pub(crate) use crate::websockets_basic::COVERS as js_sockets;
    pub(crate) use crate::websockets_basic::COVERS as websockets_basic;
}

macro_rules! covered {
    ($name:ident) => {
        const _: () = coverage::$name;
    };
}
wasmdo_test_artifacts::foreach_fixture!(covered);
wasmdo_test_artifacts::foreach_js_fixture!(covered);
wasmdo_test_artifacts::foreach_py_fixture!(covered);
