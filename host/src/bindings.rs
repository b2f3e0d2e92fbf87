//! The one `bindgen!` for the `wasmdo:object` world. Generated code stays private to the crate;
//! capability modules implement its `Host` traits (`object`, `storage`) and the actor calls the
//! handler exports through [`DurableObjectHostIndices`].
//!
//! Imports are synchronous (storage is a local SQLite database owned by the actor) and
//! `trappable`, so a host-side fault can stop the guest; `objects.fetch` alone is async (it waits
//! for another object). Exports are async so a busy guest yields to the runtime (fuel yield
//! interval) instead of blocking a worker thread.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "durable-object-host",
    imports: {
        "wasmdo:object/objects.fetch": async | trappable,
        "wasmdo:object/dynamic.call": async | trappable,
        "wasmdo:object/packed-objects.fetch": async | trappable,
        default: trappable,
    },
    exports: { default: async },
});

pub(crate) use self::wasmdo::object::alarms as alarms_api;
pub(crate) use self::wasmdo::object::dynamic as dynamic_api;
pub(crate) use self::wasmdo::object::event_loop as event_loop_api;
pub(crate) use self::wasmdo::object::http_types;
pub(crate) use self::wasmdo::object::object as object_api;
pub(crate) use self::wasmdo::object::objects as objects_api;
pub(crate) use self::wasmdo::object::packed_http_types;
pub(crate) use self::wasmdo::object::packed_objects as packed_objects_api;
pub(crate) use self::wasmdo::object::storage as storage_api;
pub(crate) use self::wasmdo::object::websockets as websockets_api;

/// Name of the exported handler interface every class must provide.
pub(crate) const HANDLER_INTERFACE: &str = "wasmdo:object/handler@0.1.0";
/// Name of the optional exported alarm handler interface.
pub(crate) const ALARM_HANDLER_INTERFACE: &str = "wasmdo:object/alarm-handler@0.1.0";
/// Name of the optional exported WebSocket handler interface.
pub(crate) const WEBSOCKET_HANDLER_INTERFACE: &str = "wasmdo:object/websocket-handler@0.1.0";
/// Name of the optional exported interface of dynamic RPC (methods called by name).
pub(crate) const DYNAMIC_HANDLER_INTERFACE: &str = "wasmdo:object/dynamic-handler@0.1.0";
/// Name of the optional exported interface of the guest's event loop (timers between events).
pub(crate) const EVENT_LOOP_HANDLER_INTERFACE: &str = "wasmdo:object/event-loop-handler@0.1.0";
/// Name of the optional exported `handler.fetch` with the request's and response's head packed.
pub(crate) const PACKED_HANDLER_INTERFACE: &str = "wasmdo:object/packed-handler@0.1.0";
/// Name of the optional exported snapshot interface.
pub(crate) const SNAPSHOT_HANDLER_INTERFACE: &str = "wasmdo:object/snapshot-handler@0.1.0";
/// Package prefix of the interfaces that belong to the platform, not to a class's RPC surface.
pub(crate) const PLATFORM_PACKAGE: &str = "wasmdo:object/";
